//! `ukpm inspect`: a package's index, manifests and configs, from the store or (`--remote`, or
//! for a name the store lacks) from the registry.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use ukpm::{Descriptor, ErrorKind, Inspection, PackageManager};

use crate::args::InspectArgs;
use crate::output::{Escaped, Output, PackageJson, Printer, escape_json, human_size, sorted_keys};

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
    source: &'static str,
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
            source: i.source.as_str(),
        }
    }

    /// A summary, then each document, pretty-printed; the documents are whatever their
    /// writer put in them (annotations, media types), so the summary is escaped and the
    /// documents show their controls as JSON escapes.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let i = &self.0;
        writeln!(
            out,
            "{} -> {} ({}){}",
            Escaped(&i.name),
            i.descriptor.digest,
            Escaped(&i.descriptor.media_type),
            if i.source == ukpm::Source::Remote {
                " on the registry"
            } else {
                ""
            }
        )?;
        for m in &i.manifests {
            writeln!(out, "  {}", summary(&m.package.platform))?;
        }
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

/// One line per manifest: `qemu/x86_64, version 0.18.0, 3 kconfig features: A=y, B=y, C=y`.
fn summary(platform: &ukpm::Platform) -> String {
    let mut line = Escaped(&platform.short()).to_string();
    if !platform.os_version.is_empty() {
        line.push_str(&format!(", version {}", Escaped(&platform.os_version)));
    }
    let features = &platform.os_features;
    match features.len() {
        0 => line.push_str(", no kconfig features"),
        n => {
            let list: Vec<String> = features.iter().map(|f| Escaped(f).to_string()).collect();
            let s = if n == 1 { "" } else { "s" };
            line.push_str(&format!(", {n} kconfig feature{s}: {}", list.join(", ")));
        }
    }
    line
}

/// Reads what the reference names: from the store, else (or with `--remote`) from the
/// registry, saying so on stderr when it falls back.
pub async fn run(manager: &PackageManager, args: &InspectArgs, printer: &Printer) -> Result<Inspected> {
    if args.remote {
        let inspection = manager
            .inspect_remote_name(&args.reference)
            .await
            .with_context(|| format!("failed to inspect {} on the registry", args.reference))?;
        return Ok(Inspected(inspection));
    }
    let reference = manager.local_name(&args.reference)?;
    let local = match manager.inspect(&reference).await {
        Ok(inspection) => return Ok(Inspected(inspection)),
        Err(err) if err.kind() == ErrorKind::NotFound => err,
        Err(err) => return Err(err).with_context(|| format!("failed to inspect {reference}")),
    };
    if reference.reference().is_none() {
        // A bare ref name another tool wrote names nothing on a registry.
        return Err(local).with_context(|| format!("failed to inspect {reference}"));
    }
    printer.note(&format!(
        "{} is not in the store; reading it from the registry",
        Escaped(&args.reference)
    ));
    match manager.inspect_remote_name(&args.reference).await {
        Ok(inspection) => Ok(Inspected(inspection)),
        // Offline, the answer is still that the store lacks it; why the registry could not
        // tell is a note.
        Err(remote) if remote.kind() == ErrorKind::Network => {
            printer.note(&format!(
                "cannot ask the registry either: {}",
                Escaped(&remote.to_string())
            ));
            Err(local).with_context(|| format!("failed to inspect {reference}"))
        }
        Err(remote) if remote.kind() == ErrorKind::NotFound => {
            Err(local).with_context(|| format!("failed to inspect {reference} (nor is it on the registry)"))
        }
        Err(remote) => Err(remote).with_context(|| format!("failed to inspect {reference} on the registry")),
    }
}
