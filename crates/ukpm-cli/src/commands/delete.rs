//! `ukpm delete`: a manifest or index removed from its registry.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{Deleted, PackageManager};

use crate::args::DeleteArgs;
use crate::output::{Escaped, Output};

/// What the registry deleted.
pub struct Removed(Deleted);

/// `ukpm delete --json`.
#[derive(Serialize)]
struct DeletedJson {
    deleted: String,
    reference: String,
}

impl Output for Removed {
    fn json(&self) -> impl Serialize + '_ {
        DeletedJson {
            deleted: self.0.digest.to_string(),
            reference: self.0.reference.to_string(),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "deleted {}@{}",
            Escaped(&self.0.reference.name()),
            self.0.digest
        )
    }
}

/// Deletes what the reference names on its registry (a short name: on the first registry only).
pub async fn run(manager: &PackageManager, args: &DeleteArgs) -> Result<Removed> {
    let reference = manager.parse_name(&args.reference)?;
    let deleted = manager
        .delete_remote(&reference)
        .await
        .with_context(|| format!("failed to delete {reference}"))?;
    Ok(Removed(deleted))
}
