//! `ukpm import`: KraftKit's packages copied into this store, verified, digests kept. The
//! report shape is shared with `ukpm export`.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{CopyReport, KraftKitStore, PackageManager};

use crate::args::ImportArgs;
use crate::output::{Escaped, JsonPath, Output};

/// What a copy between stores did: the packages copied and those that failed (which make the
/// command exit 1 after printing).
pub struct CopyOutput {
    /// KraftKit's `oci` folder, the other side of the copy.
    pub kraftkit: std::path::PathBuf,
    /// The library's report.
    pub report: CopyReport,
}

/// `ukpm import --json` / `ukpm export --json`.
#[derive(Serialize)]
struct CopyJson<'a> {
    copied: Vec<CopiedJson<'a>>,
    failed: Vec<FailedJson<'a>>,
    kraftkit: JsonPath<'a>,
}

/// One package copied.
#[derive(Serialize)]
struct CopiedJson<'a> {
    blobs_written: usize,
    bytes_written: u64,
    digest: String,
    manifests_absent: usize,
    source: &'a str,
    target: &'a str,
}

/// One package not copied.
#[derive(Serialize)]
struct FailedJson<'a> {
    causes: Vec<String>,
    code: &'static str,
    message: String,
    source: &'a str,
}

impl Output for CopyOutput {
    fn json(&self) -> impl Serialize + '_ {
        CopyJson {
            copied: self
                .report
                .copied
                .iter()
                .map(|c| CopiedJson {
                    blobs_written: c.blobs_written,
                    bytes_written: c.bytes_written,
                    digest: c.descriptor.digest.to_string(),
                    manifests_absent: c.manifests_absent,
                    source: &c.source,
                    target: &c.target,
                })
                .collect(),
            failed: self
                .report
                .failed
                .iter()
                .map(|f| FailedJson {
                    causes: causes(&f.error),
                    code: f.error.kind().as_str(),
                    message: f.error.to_string(),
                    source: &f.source,
                })
                .collect(),
            kraftkit: JsonPath(&self.kraftkit),
        }
    }

    /// `SOURCE -> TARGET@DIGEST` per package copied, then one line per failure with its causes.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        for c in &self.report.copied {
            writeln!(
                out,
                "{} -> {}@{}",
                Escaped(&c.source),
                Escaped(&c.target),
                c.descriptor.digest
            )?;
        }
        for f in &self.report.failed {
            write!(
                out,
                "could not copy {}: {}",
                Escaped(&f.source),
                Escaped(&f.error)
            )?;
            for cause in causes(&f.error) {
                write!(out, ": {}", Escaped(&cause))?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    fn is_failure(&self) -> bool {
        !self.report.failed.is_empty()
    }
}

/// The error's causes, outermost first, as `--json` errors list them.
fn causes(error: &ukpm::Error) -> Vec<String> {
    let mut out = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        out.push(e.to_string());
        source = e.source();
    }
    out
}

/// KraftKit's store at `dir`, or at its default place.
pub fn kraftkit_store(dir: Option<&std::path::Path>) -> Result<KraftKitStore> {
    Ok(match dir {
        Some(dir) => KraftKitStore::new(dir),
        None => KraftKitStore::open_default()?,
    })
}

/// Copies the packages named (every one when none is) from KraftKit's store.
pub async fn run(manager: &PackageManager, args: &ImportArgs) -> Result<CopyOutput> {
    let from = kraftkit_store(args.from_kraftkit.as_deref())?;
    let report = manager
        .import_from_kraftkit(&from, &args.references)
        .await
        .with_context(|| format!("failed to import from {}", from.root().display()))?;
    Ok(CopyOutput {
        kraftkit: from.root().to_path_buf(),
        report,
    })
}
