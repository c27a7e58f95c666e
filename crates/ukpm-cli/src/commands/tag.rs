//! `ukpm tag`: another name for a stored package.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{LocalName, PackageManager, Reference};

use crate::args::TagArgs;
use crate::output::{Escaped, Output};

/// The name tagged and its new name.
pub struct Tagged {
    source: LocalName,
    target: Reference,
}

/// `ukpm tag --json`.
#[derive(Serialize)]
struct TaggedJson {
    source: String,
    target: String,
}

impl Output for Tagged {
    fn json(&self) -> impl Serialize + '_ {
        TaggedJson {
            source: self.source.to_string(),
            target: self.target.to_string(),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", Escaped(&self.target))
    }
}

/// Points the target name at what the source name points at.
pub async fn run(manager: &PackageManager, args: &TagArgs) -> Result<Tagged> {
    let source = manager.local_name(&args.source)?;
    let target = manager.parse_name(&args.target)?;
    manager
        .tag(&source, &target)
        .await
        .with_context(|| format!("failed to tag {source} as {target}"))?;
    Ok(Tagged { source, target })
}
