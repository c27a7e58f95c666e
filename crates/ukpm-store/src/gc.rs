//! Garbage collection: delete exactly the blobs no ref reaches.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use ukpm_types::{Descriptor, Digest, Index, Manifest, annotation, limits};

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

/// Where a descriptor was found, which decides how the collector treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// A root in `index.json`, an index's entry, a subject, or a descriptor found in a document
    /// gc does not know: it may be a document, so it is read and followed.
    Document {
        /// Whether its absence is normal (an index entry a pull skipped) rather than damage.
        optional: bool,
    },
    /// A manifest's config or layer: content, required, not followed.
    Content,
}

impl LocalStore {
    /// The blobs reachable from every ref: indexes, manifests, configs, layers and subjects.
    ///
    /// A reachable blob that is absent goes into the second set, except an index's manifest: a
    /// pull keeps the registry's whole index but fetches only the platforms asked for.
    ///
    /// What gc cannot prove unreachable it keeps: a root (or index entry, or subject) of a media
    /// type it does not know (an artifact manifest, a signature, a plain descriptor) is read as
    /// JSON, and every descriptor-shaped object anywhere in it (`{"digest": ...}`) is kept and
    /// followed in turn; a blob that is not JSON, or is over [`limits::MANIFEST_LIMIT`], is taken
    /// as content. A stored index or manifest that cannot be parsed or is over the cap, or a
    /// document whose name holds a symlink or a fifo, is an error naming the ref, since
    /// collecting on a guess could delete what it references.
    pub fn reachable(&self) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>)> {
        let refs = self.refs()?;
        let mut seen = BTreeSet::new();
        let mut missing = BTreeSet::new();
        let mut followed = BTreeSet::new();
        for (i, root) in refs.roots().iter().enumerate() {
            let name = root
                .annotations
                .get(annotation::OCI_REF_NAME)
                .cloned()
                .unwrap_or_else(|| format!("index.json entry {i}"));
            self.walk(root, &mut seen, &mut missing, &mut followed)
                .map_err(|source| StoreError::GcRefused {
                    root: name,
                    source: Box::new(source),
                })?;
        }
        Ok((seen, missing))
    }

    /// Adds everything `root` reaches to `seen` (and what is absent to `missing`).
    fn walk(
        &self,
        root: &Descriptor,
        seen: &mut BTreeSet<Digest>,
        missing: &mut BTreeSet<Digest>,
        followed: &mut BTreeSet<Digest>,
    ) -> Result<()> {
        let mut stack = vec![(root.clone(), Edge::Document { optional: false })];
        while let Some((descriptor, edge)) = stack.pop() {
            let size = match self.stat_blob(&descriptor.digest) {
                Ok(Some(size)) => size,
                Ok(None) => {
                    if edge != (Edge::Document { optional: true }) {
                        missing.insert(descriptor.digest);
                    }
                    continue;
                }
                // Damaged content is kept (fsck reports it); a damaged document cannot be
                // followed, so nothing under it can be proven unreachable.
                Err(err @ StoreError::NotAFile { .. }) => {
                    if edge == Edge::Content {
                        missing.insert(descriptor.digest);
                        continue;
                    }
                    return Err(err);
                }
                Err(err) => return Err(err),
            };
            seen.insert(descriptor.digest);
            // A blob listed as content somewhere and as a document elsewhere is still followed.
            if edge == Edge::Content || !followed.insert(descriptor.digest) {
                continue;
            }
            let known = descriptor.is_index() || descriptor.is_manifest();
            if !known && size > limits::MANIFEST_LIMIT {
                continue;
            }
            let what = if descriptor.is_index() {
                "image index"
            } else {
                "image manifest"
            };
            if known && size > limits::MANIFEST_LIMIT {
                return Err(StoreError::TooLarge {
                    digest: descriptor.digest,
                    what,
                    size,
                    limit: limits::MANIFEST_LIMIT,
                });
            }
            let bytes = self.read_raw(&descriptor.digest)?;
            let bad = |source| StoreError::BadDocument {
                digest: descriptor.digest,
                what,
                source,
            };
            if descriptor.is_index() {
                let index: Index = serde_json::from_slice(&bytes).map_err(bad)?;
                let child = Edge::Document { optional: true };
                stack.extend(index.manifests.into_iter().map(|d| (d, child)));
                stack.extend(index.subject.map(|d| (d, child)));
            } else if descriptor.is_manifest() {
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(bad)?;
                stack.push((manifest.config, Edge::Content));
                stack.extend(manifest.layers.into_iter().map(|d| (d, Edge::Content)));
                stack.extend(manifest.subject.map(|d| (d, Edge::Document { optional: true })));
            } else if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                // A document gc does not know: keep whatever it may reference.
                let mut found = Vec::new();
                descriptors_in(&value, &mut found);
                stack.extend(found.into_iter().map(|d| (d, Edge::Document { optional: true })));
            }
        }
        Ok(())
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
            // A reachable name holding a symlink or a fifo is damage to report, not garbage.
            if reachable.contains(&digest) || report.missing.contains(&digest) {
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

/// Every object in `value` that has a `digest` string naming a sha256 digest, as a descriptor:
/// how gc keeps what a document of an unknown type (an artifact manifest's `blobs`, a
/// signature's payload) may reference.
fn descriptors_in(value: &serde_json::Value, out: &mut Vec<Descriptor>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(digest) = map
                .get("digest")
                .and_then(serde_json::Value::as_str)
                .and_then(|d| d.parse::<Digest>().ok())
            {
                let media = map
                    .get("mediaType")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                let size = map.get("size").and_then(serde_json::Value::as_u64).unwrap_or(0);
                out.push(Descriptor::new(media, digest, size));
            }
            for v in map.values() {
                descriptors_in(v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                descriptors_in(v, out);
            }
        }
        _ => {}
    }
}
