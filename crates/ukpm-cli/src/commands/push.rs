//! `ukpm push`: a stored package sent to a registry.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{PackageManager, PushReport};

use crate::args::PushArgs;
use crate::output::{Escaped, Output};

/// What a push sent.
pub struct Pushed(PushReport);

/// `ukpm push --json`; `reference` and `digest` are empty strings when the library reports
/// none.
#[derive(Serialize)]
pub struct PushedJson {
    digest: String,
    existed: usize,
    manifests_written: usize,
    mounted: usize,
    reference: String,
    uploaded: usize,
    uploaded_bytes: u64,
    /// With `--merge`: the entries of the destination's index after the merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    merged_platforms: Option<usize>,
}

impl Pushed {
    fn reference(&self) -> String {
        self.0
            .reference
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    fn digest(&self) -> String {
        self.0.digest.map(|d| d.to_string()).unwrap_or_default()
    }
}

impl Pushed {
    /// The `--json` document, also `pack --push`'s `"pushed"`.
    pub fn document(&self) -> PushedJson {
        let r = &self.0;
        PushedJson {
            digest: self.digest(),
            existed: r.existed,
            manifests_written: r.manifests_written,
            mounted: r.mounted,
            reference: self.reference(),
            uploaded: r.uploaded,
            uploaded_bytes: r.uploaded_bytes,
            merged_platforms: r.merged_platforms,
        }
    }
}

impl Output for Pushed {
    fn json(&self) -> impl Serialize + '_ {
        self.document()
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}@{}", Escaped(self.reference()), self.digest())
    }
}

/// Pushes the package, under `--to` if given.
pub async fn run(manager: &PackageManager, args: &PushArgs) -> Result<Pushed> {
    let target = args.to.as_deref().map(|t| manager.parse_name(t)).transpose()?;
    if args.merge {
        let source = manager.local_name(&args.reference)?;
        let report = manager
            .push_merge(&source, target.as_ref())
            .await
            .with_context(|| format!("failed to merge {source} into its tag's index"))?;
        return Ok(Pushed(report));
    }
    push(manager, &args.reference, target.as_ref()).await
}

/// Pushes a stored package (`push`, and `pack --push`).
pub async fn push(
    manager: &PackageManager,
    reference: &str,
    target: Option<&ukpm::Reference>,
) -> Result<Pushed> {
    let source = manager.local_name(reference)?;
    let report = manager
        .push(&source, target)
        .await
        .with_context(|| format!("failed to push {source}"))?;
    Ok(Pushed(report))
}
