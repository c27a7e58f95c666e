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
}

impl PackageManager {
    /// Checks the store; with `repair`, fetches missing or corrupt blobs again from the registry
    /// their ref names, then collects garbage, then checks again.
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
            match self.refetch(problem.refs(), descriptor).await {
                Ok(()) => outcome.repaired.push(digest),
                Err(reason) => outcome.unrepaired.push((digest, reason)),
            }
        }
        drop(_lease);
        outcome.collected = Some(store.gc().await?);
        outcome.report = maintenance.fsck().await?;
        Ok(outcome)
    }

    /// Fetches one blob again from the registry of the first ref that names one.
    async fn refetch(
        &self,
        refs: &[String],
        descriptor: &ukpm_types::Descriptor,
    ) -> std::result::Result<(), String> {
        let transfer = self.transfer().map_err(|e| e.to_string())?;
        let mut last = "no ref names a registry".to_string();
        for name in refs {
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
