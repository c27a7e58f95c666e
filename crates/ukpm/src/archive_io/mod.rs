//! Packages across an air gap: `ukpm save` writes packages as an OCI image layout in a tar
//! (what `skopeo copy oci-archive:FILE.tar:NAME` reads), and `ukpm load`
//! reads such a tar back, verified, into the store.
//!
//! The archive is deterministic: entries sorted (`blobs/`, `blobs/sha256/`, every blob by
//! digest, `index.json`, `oci-layout`), mtime 0, uid and gid 0, modes 0755 and 0644, ustar
//! headers; saving the same packages twice gives the same bytes. Blobs stream from the store
//! into the tar, verified as they are read, never whole in memory.
//!
//! Loading streams the tar once. Every blob is written through a verified ingest (its digest is
//! its name, its size the tar header's) into a **staging layout** in the temp folder
//! (`TMPDIR`), so that a hostile or damaged archive (a `../` name, a link, a blob that does not
//! match its name, a missing blob, conflicting duplicates, a truncated tar) leaves the store
//! exactly as it was. Only once the whole archive is read and every package's tree checked
//! (every descriptor's size, every manifest's config and layers present) are the blobs copied
//! into the store, each through the store's own verified ingest, and each name set after all
//! of its package's blobs. The cost is writing each new blob twice; the temp folder needs room
//! for the archive's blobs.

mod load;
mod save;

use ukpm_types::{Descriptor, annotation};

use crate::error::Result;

/// What `oci-layout` says in an archive ukpm writes.
pub(crate) const OCI_LAYOUT: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}";
/// How deep indexes may nest (an index of indexes of manifests is already unusual).
pub(crate) const MAX_DEPTH: usize = 4;

/// One package written into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// Its name in the store and in the archive's `index.json`.
    pub name: String,
    /// What the name points at.
    pub descriptor: Descriptor,
    /// Manifests of its index the store does not hold (a pull of one platform), which the
    /// archive does not hold either.
    pub manifests_absent: usize,
}

/// What [`crate::PackageManager::save`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// The packages, sorted by name.
    pub saved: Vec<Saved>,
    /// Blobs in the archive (each once, however many packages share it).
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// One package loaded into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Its name, as the archive's `index.json` gives it (a full reference, or a bare tag kept
    /// as written, as for any other tool's layout).
    pub name: String,
    /// What the name now points at.
    pub descriptor: Descriptor,
    /// Blobs written into the store (those it already had are not counted).
    pub blobs_written: usize,
    /// Bytes written into the store.
    pub bytes_written: u64,
    /// Manifests of its index the archive does not hold.
    pub manifests_absent: usize,
}

/// What [`crate::PackageManager::load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The packages loaded, in the archive's `index.json` order.
    pub loaded: Vec<Loaded>,
    /// Entries of the archive's `index.json` without a name, which were not loaded.
    pub unnamed: usize,
    /// Blobs read from the archive (each verified).
    pub blobs_read: usize,
    /// Their bytes.
    pub bytes_read: u64,
}

pub(crate) fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(annotation::OCI_REF_NAME).map(String::as_str)
}

/// Runs blocking work (tar, file I/O) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}
