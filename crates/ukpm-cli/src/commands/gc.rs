//! `ukpm gc`: blobs no reference reaches, deleted.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{GcReport, PackageManager};

use crate::output::{Output, human_size};

/// What collecting garbage did.
pub struct Collected(GcReport);

/// `ukpm gc --json`.
#[derive(Serialize)]
struct CollectedJson {
    bytes_freed: u64,
    kept: usize,
    missing: Vec<String>,
    removed: Vec<String>,
}

impl Output for Collected {
    fn json(&self) -> impl Serialize + '_ {
        let r = &self.0;
        CollectedJson {
            bytes_freed: r.bytes_freed,
            kept: r.kept,
            missing: r.missing.iter().map(ToString::to_string).collect(),
            removed: r.removed.iter().map(ToString::to_string).collect(),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let r = &self.0;
        writeln!(
            out,
            "removed {} blobs, freed {}, kept {}",
            r.removed.len(),
            human_size(r.bytes_freed),
            r.kept
        )?;
        for digest in &r.missing {
            writeln!(out, "missing: {digest}")?;
        }
        Ok(())
    }
}

/// Collects the store's garbage.
pub async fn run(manager: &PackageManager) -> Result<Collected> {
    let report = manager.gc().await.context("failed to collect garbage")?;
    Ok(Collected(report))
}
