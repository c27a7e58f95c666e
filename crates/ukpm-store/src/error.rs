//! The store's errors.

use std::io;
use std::path::PathBuf;

use ukpm_types::Digest;

/// Everything that can go wrong in a local store; each variant names the object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The folder exists but is not an OCI image layout, so ukpm will not write into it.
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout {
        /// The folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob the caller needs is absent.
    #[error("blob {digest} is not in the store")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
    },
    /// A blob's bytes do not hash to its name: the store was damaged on disk.
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    Corrupt {
        /// The name of the blob.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// New content did not match the digest it was announced with.
    #[error("content announced as {expected} hashes to {actual}")]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// New content did not have the size it was announced with.
    #[error("content {digest} was announced as {expected} bytes but has {actual}")]
    SizeMismatch {
        /// The announced digest.
        digest: Digest,
        /// The announced size.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// A blob on disk has another size than a descriptor says.
    #[error("blob {digest} has {actual} bytes on disk but its descriptor says {expected}")]
    StoredSizeMismatch {
        /// The blob.
        digest: Digest,
        /// The size in the descriptor.
        expected: u64,
        /// The size on disk.
        actual: u64,
    },
    /// `index.json` cannot be parsed.
    #[error("{path} is not a valid OCI index")]
    BadIndex {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored JSON document (index or manifest) cannot be parsed.
    #[error("blob {digest} is not a valid {what}")]
    BadDocument {
        /// The blob.
        digest: Digest,
        /// What it was expected to be.
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// What sits under a blob's name is not a regular file (a symlink, a fifo, a folder): the
    /// store is damaged, and ukpm never opens it, since a read of a fifo would block forever and
    /// a symlink could point anywhere.
    #[error("blob {digest} is a {kind}, not a regular file")]
    NotAFile {
        /// The blob.
        digest: Digest,
        /// What it is instead (`symlink`, `fifo`, `folder`, `socket`, `device`).
        kind: &'static str,
    },
    /// A document (manifest, index, config) is over the size ukpm reads whole into memory.
    #[error("blob {digest} is a {what} of {size} bytes, over the {limit}-byte cap on a {what}")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// What it was expected to be.
        what: &'static str,
        /// Its size (as stored, or as its descriptor says).
        size: u64,
        /// The cap ([`ukpm_types::limits`]).
        limit: u64,
    },
    /// Garbage collection stopped because a ref reaches content it cannot follow (an index or
    /// manifest that does not parse or is over the cap, a document that is a symlink or fifo):
    /// it never deletes what it cannot prove unreachable.
    #[error("refusing to collect garbage: ref {root} reaches content gc cannot follow")]
    GcRefused {
        /// The ref (its name, or `index.json entry N`).
        root: String,
        /// What could not be followed.
        #[source]
        source: Box<StoreError>,
    },
    /// A ref would point at a blob the store does not have.
    #[error("cannot point {name} at {digest}: the blob is not in the store")]
    DanglingRef {
        /// The ref name.
        name: String,
        /// The missing target.
        digest: Digest,
    },
    /// Another process is downloading the same blob right now.
    #[error("another process is downloading blob {digest}")]
    Busy {
        /// The blob.
        digest: Digest,
    },
    /// An I/O error; fs_err has already put the path into the message.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl StoreError {
    /// Whether this error means the stored data is damaged (as opposed to absent or unreadable).
    pub fn is_integrity(&self) -> bool {
        if let StoreError::GcRefused { source, .. } = self {
            return source.is_integrity();
        }
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::StoredSizeMismatch { .. }
                | StoreError::DigestMismatch { .. }
                | StoreError::SizeMismatch { .. }
                | StoreError::BadDocument { .. }
                | StoreError::NotAFile { .. }
                | StoreError::TooLarge { .. }
        )
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
