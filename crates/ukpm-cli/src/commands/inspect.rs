//! `ukpm inspect`: a package's index, manifests and configs.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use ukpm::{Descriptor, Inspection, PackageManager};

use crate::args::InspectArgs;
use crate::output::{Escaped, Output, PackageJson, escape_json, human_size, sorted_keys};

/// What `inspect` found.
pub struct Inspected(Inspection);

/// `ukpm inspect --json`.
#[derive(Serialize)]
struct InspectionJson<'a> {
    #[serde(serialize_with = "sorted_keys")]
    descriptor: &'a Descriptor,
    index: Option<&'a Value>,
    manifests: Vec<ManifestJson<'a>>,
    reference: String,
}

/// One manifest of `ukpm inspect --json`.
#[derive(Serialize)]
struct ManifestJson<'a> {
    config: &'a Value,
    manifest: &'a Value,
    package: PackageJson<'a>,
}

impl Output for Inspected {
    fn json(&self) -> impl Serialize + '_ {
        let i = &self.0;
        InspectionJson {
            descriptor: &i.descriptor,
            index: i.index.as_ref(),
            manifests: i
                .manifests
                .iter()
                .map(|m| ManifestJson {
                    config: &m.config,
                    manifest: &m.manifest,
                    package: PackageJson::from(&m.package),
                })
                .collect(),
            reference: i.name.clone(),
        }
    }

    /// A summary, then each document, pretty-printed; the documents are whatever their
    /// writer put in them (annotations, media types), so the summary is escaped and the
    /// documents show their controls as JSON escapes.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let i = &self.0;
        writeln!(
            out,
            "{} -> {} ({})",
            Escaped(&i.name),
            i.descriptor.digest,
            Escaped(&i.descriptor.media_type)
        )?;
        if let Some(index) = &i.index {
            writeln!(out, "\nindex:")?;
            writeln!(out, "{}", pretty(index))?;
        }
        for m in &i.manifests {
            writeln!(
                out,
                "\nmanifest {} ({}, {}):",
                m.package.manifest.digest,
                Escaped(m.package.plat_arch()),
                human_size(m.package.size)
            )?;
            writeln!(out, "{}", pretty(&m.manifest))?;
            writeln!(out, "config:")?;
            writeln!(out, "{}", pretty(&m.config))?;
        }
        Ok(())
    }
}

/// A document for people: pretty JSON, with what JSON leaves raw (C1 controls, bidi
/// overrides) escaped too.
fn pretty(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    escape_json(&text).into_owned()
}

/// Reads what the reference names.
pub async fn run(manager: &PackageManager, args: &InspectArgs) -> Result<Inspected> {
    let reference = manager.local_name(&args.reference)?;
    let inspection = manager
        .inspect(&reference)
        .await
        .with_context(|| format!("failed to inspect {reference}"))?;
    Ok(Inspected(inspection))
}
