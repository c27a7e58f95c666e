//! `ukpm rm`: references removed from the store (their blobs stay until `ukpm gc`).

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::PackageManager;

use crate::args::RmArgs;
use crate::output::{Escaped, Output};

/// The references removed; it is its own `--json` document, `{"removed": [...]}`.
#[derive(Serialize)]
pub struct Removed {
    removed: Vec<String>,
}

impl Output for Removed {
    fn json(&self) -> impl Serialize + '_ {
        self
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        for name in &self.removed {
            writeln!(out, "{}", Escaped(name))?;
        }
        Ok(())
    }
}

/// Removes the references given, or every one with `--all`.
pub async fn run(manager: &PackageManager, args: &RmArgs) -> Result<Removed> {
    let removed = if args.all {
        manager
            .remove_all()
            .await
            .context("failed to remove every package")?
    } else {
        let references = args
            .references
            .iter()
            .map(|r| Ok(manager.local_name(r)?))
            .collect::<Result<Vec<_>>>()?;
        manager
            .remove(&references)
            .await
            .context("failed to remove")?
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    Ok(Removed { removed })
}
