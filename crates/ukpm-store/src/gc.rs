//! Garbage collection: delete exactly the blobs no ref reaches.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use ukpm_types::{Descriptor, Digest, Index, Manifest};

use crate::error::Result;
use crate::{GC_LOCK, LocalStore, StoreError};

/// How long an interrupted download waits to be resumed before `gc` deletes it.
pub const PARTIAL_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub removed: Vec<Digest>,
    /// Bytes freed (blobs and stale temp files).
    pub bytes_freed: u64,
    /// Blobs kept because a ref reaches them.
    pub kept: usize,
    /// Blobs a ref reaches that are missing: a damaged store, reported rather than hidden.
    pub missing: Vec<Digest>,
}

impl LocalStore {
    /// The blobs reachable from every ref: indexes, manifests, configs, layers and subjects.
    ///
    /// A reachable blob that is absent goes into the second set, except an index's manifest: a
    /// pull keeps the registry's whole index but fetches only the platforms asked for. A stored
    /// document that cannot be parsed is an error, since collecting on a guess could delete what
    /// it references.
    pub fn reachable(&self) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>)> {
        let refs = self.refs()?;
        let mut seen = BTreeSet::new();
        let mut missing = BTreeSet::new();
        let mut stack: Vec<(Descriptor, bool)> = refs.roots().iter().map(|d| (d.clone(), false)).collect();
        while let Some((descriptor, optional)) = stack.pop() {
            if self.blob_size(&descriptor.digest).is_none() {
                if !optional {
                    missing.insert(descriptor.digest);
                }
                continue;
            }
            if !seen.insert(descriptor.digest) {
                continue;
            }
            if descriptor.is_index() {
                let bytes = self.read_raw(&descriptor.digest)?;
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::BadDocument {
                        digest: descriptor.digest,
                        what: "image index",
                        source,
                    })?;
                stack.extend(index.manifests.into_iter().map(|d| (d, true)));
                stack.extend(index.subject.map(|d| (d, true)));
            } else if descriptor.is_manifest() {
                let bytes = self.read_raw(&descriptor.digest)?;
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::BadDocument {
                        digest: descriptor.digest,
                        what: "image manifest",
                        source,
                    })?;
                stack.push((manifest.config, false));
                stack.extend(manifest.layers.into_iter().map(|d| (d, false)));
                stack.extend(manifest.subject.map(|d| (d, true)));
            }
        }
        Ok((seen, missing))
    }

    /// Deletes every blob no ref reaches, leftover temp files of interrupted writes, and
    /// interrupted downloads older than [`PARTIAL_GRACE`] (younger ones wait to be resumed).
    ///
    /// Waits for every [`crate::Lease`] to be dropped first, so blobs of an operation in flight
    /// are never taken.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with_grace(PARTIAL_GRACE)
    }

    /// [`LocalStore::gc`] with another grace period for interrupted downloads.
    pub fn gc_with_grace(&self, grace: Duration) -> Result<GcReport> {
        let lock = self.lock_file(GC_LOCK)?;
        lock.file().lock()?;
        let (reachable, missing) = self.reachable()?;
        let mut report = GcReport {
            missing: missing.into_iter().collect(),
            ..GcReport::default()
        };
        for entry in read_dir_or_empty(&self.blobs_dir())? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(digest) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                continue;
            };
            if reachable.contains(&digest) {
                report.kept += 1;
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs_err::remove_file(entry.path())?;
            report.bytes_freed += size;
            report.removed.push(digest);
        }
        for entry in read_dir_or_empty(&self.ingest_dir())? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let resumable = entry.file_name().to_string_lossy().starts_with("partial-");
            let age = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .unwrap_or_default();
            if resumable && age < grace {
                continue;
            }
            report.bytes_freed += meta.len();
            fs_err::remove_file(entry.path())?;
        }
        report.removed.sort();
        tracing::debug!(removed = report.removed.len(), kept = report.kept, "gc done");
        Ok(report)
    }

    /// A whole blob, digest-checked, without a descriptor (for the collector's walk).
    fn read_raw(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut self.open_blob(digest)?, &mut bytes).map_err(crate::unwrap_store_error)?;
        Ok(bytes)
    }
}

fn read_dir_or_empty(dir: &std::path::Path) -> Result<Vec<io::Result<fs_err::DirEntry>>> {
    match fs_err::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}
