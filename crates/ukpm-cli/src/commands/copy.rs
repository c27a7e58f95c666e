//! `ukpm copy SRC DST` (alias `cp`): a package copied between registries, blobs streamed
//! across, the local store untouched.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{PackageManager, RemoteCopyOptions, RemoteCopyReport};

use super::query;
use crate::args::CopyArgs;
use crate::output::{Escaped, Output};

/// What a copy did.
pub struct Copied(RemoteCopyReport);

/// `ukpm copy --json`.
#[derive(Serialize)]
struct CopiedJson {
    copied: usize,
    copied_bytes: u64,
    digest: String,
    digest_kept: bool,
    existed: usize,
    manifests_written: usize,
    mounted: usize,
    platforms: Vec<String>,
    referrers: usize,
    source: String,
    target: String,
}

impl Output for Copied {
    fn json(&self) -> impl Serialize + '_ {
        let r = &self.0;
        CopiedJson {
            copied: r.copied,
            copied_bytes: r.copied_bytes,
            digest: r.digest.to_string(),
            digest_kept: r.digest_kept,
            existed: r.existed,
            manifests_written: r.manifests_written,
            mounted: r.mounted,
            platforms: r.platforms.clone(),
            referrers: r.referrers,
            source: r.source.to_string(),
            target: r.target.to_string(),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}@{}", Escaped(self.0.target.to_string()), self.0.digest)
    }
}

/// Copies SRC to DST with the chosen platforms (all by default) and, with `--referrers`, their
/// referrers.
pub async fn run(manager: &PackageManager, args: &CopyArgs) -> Result<Copied> {
    let source = manager.parse_name(&args.source)?;
    let target = manager.parse_name(&args.target)?;
    let options = RemoteCopyOptions {
        query: query(&args.filters)?,
        referrers: args.referrers,
    };
    let report = manager
        .copy(&source, &target, &options)
        .await
        .with_context(|| format!("failed to copy {source} to {target}"))?;
    Ok(Copied(report))
}
