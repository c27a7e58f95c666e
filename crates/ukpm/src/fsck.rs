//! Checking and repairing a store (`ukpm fsck [--repair]`).

use ukpm_store::{FsckReport, GcReport, Problem};
use ukpm_types::{Digest, Reference};

use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::pull::digest_reference;
use crate::transfer::Transfer;

/// What `fsck` found and, with repair, did.
#[derive(Debug, Clone, Default)]
pub struct FsckOutcome {
    /// The check (after repair, the second check).
    pub report: FsckReport,
    /// Blobs fetched again from a registry.
    pub repaired: Vec<Digest>,
    /// Blobs that could not be repaired, with the reason.
    pub unrepaired: Vec<(Digest, String)>,
    /// What collecting garbage freed, when repairing.
    pub collected: Option<GcReport>,
    /// The refs whose damage could not be repaired because no registry is recorded as where
    /// they came from (packed here, never pulled or pushed): nothing is fetched for them.
    pub no_source: Vec<String>,
}

impl PackageManager {
    /// Checks the store; with `repair`, fetches missing or corrupt blobs again from where they
    /// came from, then collects garbage, then checks again.
    ///
    /// "Where they came from" is the store's record of the repositories a blob, or the root of
    /// a ref needing it, was pulled from or pushed to. A ref's name is never asked: a package
    /// packed here as `unikraft.org/app` must not be replaced by whatever that registry serves
    /// under the name (issue 13). Such refs are listed in [`FsckOutcome::no_source`].
    pub async fn fsck(&self, repair: bool) -> Result<FsckOutcome> {
        let store = self.store();
        let maintenance = store.maintenance().ok_or_else(|| Error::Unsupported {
            store: store.describe(),
            what: "fsck (its content is checked as it is read, or by the store itself)",
        })?;
        let report = maintenance.fsck().await?;
        if !repair {
            return Ok(FsckOutcome {
                report,
                ..FsckOutcome::default()
            });
        }
        let _lease = store.lease().await?;
        let mut outcome = FsckOutcome::default();
        let roots = store.refs().await?;
        for problem in &report.problems {
            let (descriptor, corrupt) = match problem {
                Problem::Missing { descriptor, .. } => (descriptor, false),
                Problem::Corrupt { descriptor, .. } | Problem::BadDocument { descriptor, .. } => {
                    (descriptor, true)
                }
                _ => continue,
            };
            if problem.refs().is_empty() {
                // Garbage: collecting it is the repair.
                continue;
            }
            let digest = descriptor.digest;
            if corrupt {
                maintenance.discard_blob(digest).await?;
            }
            let sources = self.sources_of(digest, problem.refs(), &roots).await?;
            if sources.is_empty() {
                outcome.unrepaired.push((
                    digest,
                    "no registry is recorded as its source (packed here?): nothing was fetched".into(),
                ));
                for name in problem.refs() {
                    if !outcome.no_source.contains(name) {
                        outcome.no_source.push(name.clone());
                    }
                }
                continue;
            }
            match self.refetch(&sources, descriptor).await {
                Ok(()) => outcome.repaired.push(digest),
                Err(reason) => outcome.unrepaired.push((digest, reason)),
            }
        }
        drop(_lease);
        outcome.collected = Some(store.gc().await?);
        outcome.report = maintenance.fsck().await?;
        Ok(outcome)
    }

    /// The repositories (`registry/repository`) recorded for `digest`, then for the roots of
    /// the refs that need it, without repeats.
    async fn sources_of(
        &self,
        digest: Digest,
        refs: &[String],
        roots: &[ukpm_store::RefEntry],
    ) -> Result<Vec<String>> {
        let Some(hints) = self.store().mount_hints() else {
            return Ok(Vec::new());
        };
        let mut sources = hints.sources(digest).await?;
        for root in roots.iter().filter(|r| refs.contains(&r.name)) {
            sources.extend(hints.sources(root.descriptor.digest).await?);
        }
        let mut seen = std::collections::HashSet::new();
        sources.retain(|s| seen.insert(s.clone()));
        Ok(sources)
    }

    /// Fetches one blob again from the first of `sources` (`registry/repository`) that has it.
    async fn refetch(
        &self,
        sources: &[String],
        descriptor: &ukpm_types::Descriptor,
    ) -> std::result::Result<(), String> {
        let transfer = self.transfer().map_err(|e| e.to_string())?;
        let mut last = "no source names a registry".to_string();
        for name in sources {
            let Ok(reference) = name.parse::<Reference>() else {
                continue;
            };
            let result = if descriptor.is_index() || descriptor.is_manifest() {
                self.refetch_document(&transfer, &reference, descriptor).await
            } else {
                transfer.download(&reference, descriptor).await
            };
            match result {
                Ok(()) => return Ok(()),
                Err(err) => last = format!("{reference}: {err}"),
            }
        }
        Err(last)
    }

    /// Fetches an index or manifest again by digest (the client checks the digest).
    async fn refetch_document(
        &self,
        transfer: &Transfer,
        reference: &Reference,
        descriptor: &ukpm_types::Descriptor,
    ) -> Result<()> {
        let by_digest = digest_reference(reference, descriptor.digest)?;
        let fetched = transfer.client.get_manifest(&by_digest).await?;
        self.store().put_bytes(fetched.bytes.to_vec()).await?;
        Ok(())
    }
}
