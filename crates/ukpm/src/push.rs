//! Pushing packages to a registry (KraftKit's `Push`).
//!
//! Blobs go first (skipping what the registry has, mounting what another repository of the
//! same registry has), then manifests by digest, then the index under its tag; whether the
//! registry already has each manifest and the tag is asked while the blobs go up.

use bytes::Bytes;
use ukpm_registry::PushOutcome;
use ukpm_types::{Descriptor, Digest, Manifest, Reference};

use crate::catalog::parse;
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::pull::{describe_entry, digest_reference, unique_blobs};
use crate::reporter::{Direction, Plan, Skip, Step, Subject};
use crate::transfer::Transfer;

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Where it went.
    pub reference: Option<Reference>,
    /// The digest of the pushed index or manifest.
    pub digest: Option<Digest>,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs the registry already had.
    pub existed: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Manifests and indexes written.
    pub manifests_written: usize,
    /// With `push_merge`: how many entries the destination's index holds after the merge.
    pub merged_platforms: Option<usize>,
}

/// What every push (plain or `--merge`) starts from: the transfer engine, a lease on the store,
/// the package as stored and where it goes.
pub(crate) struct PushStart {
    pub(crate) transfer: Transfer,
    pub(crate) _lease: crate::store::StoreLease,
    /// The package's stored name.
    pub(crate) stored: Reference,
    /// Where it goes (default: its stored name).
    pub(crate) target: Reference,
    /// What the stored ref points at, with its annotations.
    pub(crate) entry: Descriptor,
    /// The same without annotations: the index or manifest to put.
    pub(crate) top: Descriptor,
}

impl PackageManager {
    /// Resolves `source` in the store under a lease and checks it is an image.
    pub(crate) async fn start_push(
        &self,
        source: crate::LocalName,
        target: Option<&Reference>,
    ) -> Result<PushStart> {
        let transfer = self.transfer()?;
        let _lease = self.store().lease().await?;
        let resolved = self.catalog().resolve(&source).await?;
        let stored = self.catalog().stored_reference(&resolved, &source)?;
        let target = target.cloned().unwrap_or_else(|| stored.clone());
        let entry = resolved.entry.descriptor;
        let top = Descriptor::new(&entry.media_type, entry.digest, entry.size);
        if !top.is_index() && !top.is_manifest() {
            return Err(Error::NotAnImage {
                reference: stored,
                media_type: top.media_type,
            });
        }
        Ok(PushStart {
            transfer,
            _lease,
            stored,
            target,
            entry,
            top,
        })
    }

    /// Pushes the package `source` to `target` (default: where its name says).
    pub async fn push(
        &self,
        source: impl Into<crate::LocalName>,
        target: Option<&Reference>,
    ) -> Result<PushReport> {
        let PushStart {
            transfer,
            _lease,
            stored,
            target,
            top,
            ..
        } = self.start_push(source.into(), target).await?;
        let client = &transfer.client;
        if target.tag().is_none() && target.digest().is_none() {
            return Err(Error::InvalidInput(format!("{target} needs a tag to push to")));
        }
        self.reporter().on_step(&Step::Push {
            source: stored.clone(),
            target: target.clone(),
        });
        let mount_from = mount_source(&stored, &target);
        let mut report = PushReport::default();
        // What the tag points at now is asked while the rest goes up.
        let children = self.push_contents(
            &transfer,
            &stored,
            &top,
            &target,
            mount_from.as_deref(),
            &mut report,
        );
        let (bytes, present) = tokio::join!(children, client.head_manifest(&target));
        let (bytes, present) = (bytes?, present?);
        if present.is_none_or(|d| d.digest != top.digest) {
            client
                .put_manifest(&target, &top.media_type, Bytes::from(bytes))
                .await?;
            report.manifests_written += 1;
        }
        report.reference = Some(target);
        report.digest = Some(top.digest);
        Ok(report)
    }

    /// Pushes everything `top` (a stored index or manifest) needs under `target`'s repository:
    /// blobs, then manifests by digest, but no tag; returns `top`'s bytes. An index entry the
    /// store lacks must already be in the registry (a partial pull's other platforms).
    pub(crate) async fn push_contents(
        &self,
        transfer: &Transfer,
        stored: &Reference,
        top: &Descriptor,
        target: &Reference,
        mount_from: Option<&str>,
        report: &mut PushReport,
    ) -> Result<Vec<u8>> {
        let store = self.store();
        let mut seen = Vec::new();
        if top.is_manifest() {
            let bytes = self
                .push_manifest(transfer, target, top, mount_from, report, &mut seen)
                .await?;
            self.remember(seen).await?;
            return Ok(bytes);
        }
        let bytes = store.read_bytes(top.clone()).await?;
        let index: ukpm_types::Index = parse(top, &bytes, "image index")?;
        for child in index.manifests.iter().filter(|d| d.is_manifest()) {
            if store.has_blob(child.digest, None).await? {
                self.push_manifest(transfer, target, child, mount_from, report, &mut seen)
                    .await?;
            } else if transfer
                .client
                .head_manifest(&digest_reference(target, child.digest)?)
                .await?
                .is_none()
            {
                return Err(Error::InvalidInput(format!(
                    "cannot push {stored}: its manifest {} ({}) is neither in the store nor in {}; pull it with --all-platforms first",
                    child.digest,
                    describe_entry(child),
                    target.name()
                )));
            }
        }
        self.remember(seen).await?;
        Ok(bytes)
    }

    /// Pushes a manifest's blobs, then the manifest by digest; returns its bytes and adds where
    /// its blobs now are to `seen`, which the caller records once for the whole push (once per
    /// manifest would rewrite the record once per manifest: quadratic in a big index).
    async fn push_manifest(
        &self,
        transfer: &Transfer,
        target: &Reference,
        entry: &Descriptor,
        mount_from: Option<&str>,
        report: &mut PushReport,
        seen: &mut Vec<(Digest, String)>,
    ) -> Result<Vec<u8>> {
        let client = &transfer.client;
        let bytes = self.catalog().read_by_digest(entry).await?;
        let manifest: Manifest = parse(entry, &bytes, "image manifest")?;
        let blobs = unique_blobs(&manifest);
        self.reporter()
            .on_plan(&Plan::of(target, Direction::Upload, blobs.iter().copied()));
        let by_digest = digest_reference(target, entry.digest)?;
        // Whether the registry has the manifest is asked while the blobs go up: a round trip
        // less on every push.
        let pushes = futures_util::future::try_join_all(blobs.iter().map(|blob| async move {
            let _permit = transfer.permit().await;
            let outcome = self.push_blob(transfer, target, blob, mount_from).await?;
            Ok::<_, Error>((outcome, blob.size))
        }));
        let (outcomes, present) = tokio::join!(pushes, client.head_manifest(&by_digest));
        let (outcomes, present) = (outcomes?, present?);
        seen.extend(blobs.iter().map(|b| (b.digest, target.name())));
        seen.push((entry.digest, target.name()));
        for (outcome, size) in outcomes {
            match outcome {
                PushOutcome::Exists => report.existed += 1,
                PushOutcome::Mounted => report.mounted += 1,
                PushOutcome::Uploaded => {
                    report.uploaded += 1;
                    report.uploaded_bytes += size;
                }
            }
        }
        if present.is_none_or(|d| d.digest != entry.digest) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match client
                    .put_manifest(&by_digest, &entry.media_type, Bytes::from(bytes.clone()))
                    .await
                {
                    Ok(_) => break,
                    Err(e) if attempt < RACE_ATTEMPTS && racing(&e) => {
                        tracing::debug!(error = %e, attempt, "manifest put raced another push; again");
                        tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            report.manifests_written += 1;
        }
        Ok(bytes)
    }

    /// Pushes one blob: skipped if the registry has it, mounted from `mount_from` or from where
    /// the store last saw it in the same registry, else uploaded.
    async fn push_blob(
        &self,
        transfer: &Transfer,
        target: &Reference,
        blob: &Descriptor,
        mount_from: Option<&str>,
    ) -> Result<PushOutcome> {
        let store = self.store();
        if !store.has_blob(blob.digest, Some(blob.size)).await? {
            return Err(Error::Store(ukpm_store::StoreError::BlobNotFound {
                digest: blob.digest,
            }));
        }
        let remembered = match store.mount_hints() {
            Some(hints) => hints.sources(blob.digest).await?,
            None => Vec::new(),
        };
        let prefix = format!("{}/", target.registry());
        let seen_in = remembered
            .iter()
            .filter_map(|name| name.strip_prefix(&prefix))
            .find(|repo| *repo != target.repository());
        let from = mount_from.or(seen_in);
        let subject = Subject::of(target, blob, Direction::Upload);
        // The transfer starts when the first body is built: a blob the registry has or mounts
        // is reported as skipped, not as an upload.
        let started = std::sync::Arc::new(std::sync::OnceLock::new());
        let body = transfer.upload_body(blob, &subject, started.clone());
        let outcome = transfer.client.push_blob(target, blob, from, &body).await;
        if let Some(id) = started.get() {
            self.reporter().on_transfer_complete(*id);
        }
        let outcome = outcome?;
        match outcome {
            PushOutcome::Exists => self.reporter().on_transfer_skipped(&subject, &Skip::InRegistry),
            PushOutcome::Mounted => self.reporter().on_transfer_skipped(
                &subject,
                &Skip::Mounted {
                    from: from.unwrap_or_default().to_string(),
                },
            ),
            PushOutcome::Uploaded => {}
        }
        Ok(outcome)
    }
}

/// The repository blobs may be mounted from: the package's own, when it goes to another
/// repository of the same registry.
pub(crate) fn mount_source(stored: &Reference, target: &Reference) -> Option<String> {
    (stored.registry() == target.registry() && stored.repository() != target.repository())
        .then(|| stored.repository().to_string())
}

/// How many times a manifest put that raced another client's push of the same blobs is made.
const RACE_ATTEMPTS: u64 = 6;

/// Whether a registry error may come from another client pushing the same content at the same
/// moment, so that the same request may succeed a moment later. `docker-registry`'s filesystem
/// storage rewrites a repository's blob and tag link files in place: while another client's
/// upload of a blob this manifest uses completes, the manifest put is refused with
/// `MANIFEST_BLOB_UNKNOWN`, and a read of the link answers 500.
pub(crate) fn racing(error: &ukpm_registry::RegistryError) -> bool {
    match error {
        ukpm_registry::RegistryError::Status { status, codes, .. } => {
            *status >= 500 || codes.contains(&ukpm_registry::ErrorCode::ManifestBlobUnknown)
        }
        _ => false,
    }
}
