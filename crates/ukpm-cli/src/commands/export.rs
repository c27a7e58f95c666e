//! `ukpm export --to-kraftkit`: this store's packages copied into KraftKit's store, in the
//! layout `kraft run` and `kraft pkg ls` read (blobs under `digests/sha256/`, a tag link per
//! name under `indexes/`), each file written atomically.

use anyhow::{Context, Result};
use ukpm::PackageManager;

use super::import::{CopyOutput, kraftkit_store};
use crate::args::ExportArgs;

/// Copies the packages named (every one when none is) into KraftKit's store.
pub async fn run(manager: &PackageManager, args: &ExportArgs) -> Result<CopyOutput> {
    let to = kraftkit_store(args.to_kraftkit.as_ref().and_then(Option::as_deref))?;
    let report = manager
        .export_to_kraftkit(&to, &args.references)
        .await
        .with_context(|| format!("failed to export to {}", to.root().display()))?;
    Ok(CopyOutput {
        kraftkit: to.root().to_path_buf(),
        report,
    })
}
