//! The library's error type and its stable kinds.

use std::io;
use std::path::PathBuf;

use ukpm_archive::{CpioError, ExtractError, LayerError};
use ukpm_store::StoreError;
use ukpm_types::{Digest, PlatformError, Reference, ReferenceError};

/// Everything an operation of [`crate::PackageManager`] can fail with. Messages are lowercase
/// and name the object; the cause is in [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference string was malformed.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// An architecture or platform name was unknown.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// A `.config` file could not be used.
    #[error("invalid kconfig file {path}")]
    KConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: PlatformError,
    },
    /// An input file (kernel, initrd, `.config`) is missing or unreadable.
    #[error("cannot read the {what} {path}")]
    InputFile {
        /// What the file was for (`kernel`, `initrd`...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Some other input was invalid; the message says which.
    #[error("{0}")]
    InvalidInput(String),
    /// No ref of that name is in the store.
    #[error("{reference} is not in the store")]
    NotFound {
        /// The reference asked for.
        reference: Reference,
    },
    /// No ref is named by this text, which is not a reference either (a bare tag such as `V1`,
    /// which only matches a ref name literally).
    #[error("no ref named `{name}` is in the store")]
    NameNotFound {
        /// The name asked for.
        name: String,
    },
    /// The ref exists but none of its manifests matches the query.
    #[error("{reference} has no manifest for {query}")]
    NoMatch {
        /// The reference.
        reference: Reference,
        /// The query, as text (`qemu/x86_64`).
        query: String,
    },
    /// Several manifests match where one is needed.
    #[error("{reference} has {} manifests matching; choose one with --arch and --plat: {}", candidates.len(), candidates.join(", "))]
    Ambiguous {
        /// The reference.
        reference: Reference,
        /// The platforms that matched (`qemu/x86_64`).
        candidates: Vec<String>,
    },
    /// An index has no manifest for the platform asked for.
    #[error("{reference} has no manifest for {query}; it has: {}", if available.is_empty() { "nothing".to_string() } else { available.join(", ") })]
    NoPlatform {
        /// The reference.
        reference: Reference,
        /// The query, as text.
        query: String,
        /// The platforms the index does hold.
        available: Vec<String>,
    },
    /// containerd failed or refused.
    #[cfg(feature = "containerd")]
    #[error(transparent)]
    Containerd(#[from] ukpm_containerd::ContainerdError),
    /// The containerd namespace asked for does not exist.
    #[error("containerd has no namespace `{namespace}`")]
    Namespace {
        /// The namespace.
        namespace: String,
    },
    /// A registry failed or refused.
    #[error(transparent)]
    Registry(#[from] ukpm_registry::RegistryError),
    /// A registry answered against the distribution protocol (a manifest of another size than
    /// its index says, a whole blob where a range was asked for).
    #[error("the registry broke the protocol for {reference}: {message}")]
    RegistryProtocol {
        /// What was being fetched.
        reference: Reference,
        /// What it did.
        message: String,
    },
    /// A document a registry served is not valid JSON of the kind it claims; nothing of it was
    /// stored.
    #[error("the registry served a malformed {what} {digest} for {reference}")]
    BadRemoteDocument {
        /// What was being fetched.
        reference: Reference,
        /// The document's digest.
        digest: Digest,
        /// What it should have been (`image index`, `image manifest`).
        what: &'static str,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A document is neither an image index nor an image manifest where one of them is needed.
    #[error("{reference} is a `{media_type}`, neither an image index nor a manifest")]
    NotAnImage {
        /// The reference.
        reference: Reference,
        /// The media type it has.
        media_type: String,
    },
    /// The pack would replace a manifest while the strategy says abort. A slot is the
    /// platform, kernel version and kconfig: a different kconfig would have made a new entry.
    #[error(
        "{reference} already has a manifest for {platform} with the same kernel version and kconfig ({existing}), and the strategy is abort"
    )]
    Conflict {
        /// The reference.
        reference: Reference,
        /// The platform slot that is taken.
        platform: String,
        /// The manifest in the slot (its digest), or why it is not known.
        existing: String,
    },
    /// A layer has a media type ukpm cannot unpack.
    #[error("layer {digest} has the unsupported media type `{media_type}`")]
    UnsupportedMediaType {
        /// The layer.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// Other processes kept changing a ref while this one tried to update it.
    #[error("{reference} kept changing while it was being updated; another process is writing the same name")]
    Contended {
        /// The reference.
        reference: Reference,
    },
    /// The store lacks a capability the operation needs (fsck on containerd).
    #[error("{store} does not support {what}")]
    Unsupported {
        /// The store, described.
        store: String,
        /// What was asked for.
        what: &'static str,
    },
    /// The store failed or holds damaged content.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file cannot be written as a single-file tar layer (its path or size does not fit).
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// An initrd folder could not be archived.
    #[error("cannot build the initrd")]
    Cpio(#[from] CpioError),
    /// A layer could not be unpacked safely.
    #[error("cannot unpack layer {digest}")]
    Extract {
        /// The layer.
        digest: Digest,
        /// Why.
        #[source]
        source: ExtractError,
    },
    /// An I/O error outside the store; the message names the path.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A background task died (a bug, or the runtime shutting down); reported instead of
    /// panicking the caller.
    #[error("internal error: a background task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The small, stable classification of errors that `--json` output and hints rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Something asked for is absent.
    NotFound,
    /// Credentials were missing or refused.
    Unauthorized,
    /// Content did not match its digest or size.
    Integrity,
    /// A registry or daemon could not be reached.
    Network,
    /// The caller's input was wrong.
    InvalidInput,
    /// The operation would overwrite something the caller asked to keep.
    Conflict,
    /// The file system failed.
    Io,
    /// A registry answered against the protocol or served malformed documents.
    Protocol,
}

impl ErrorKind {
    /// The code in `--json` error output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Network => "network",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
        }
    }
}

/// Which part of the world an error comes from, so front ends can say where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The caller's input or local files.
    Local,
    /// The local store (its files, its content).
    Store,
    /// A registry.
    Registry,
    /// containerd.
    Containerd,
}

impl Error {
    /// Where this error comes from.
    pub fn origin(&self) -> Origin {
        match self {
            Error::Registry(_) | Error::RegistryProtocol { .. } | Error::BadRemoteDocument { .. } => {
                Origin::Registry
            }
            Error::Store(_) | Error::Contended { .. } => Origin::Store,
            Error::Namespace { .. } => Origin::Containerd,
            #[cfg(feature = "containerd")]
            Error::Containerd(_) => Origin::Containerd,
            _ => Origin::Local,
        }
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Reference(_)
            | Error::Platform(_)
            | Error::KConfig { .. }
            | Error::InputFile { .. }
            | Error::InvalidInput(_)
            | Error::Ambiguous { .. }
            | Error::UnsupportedMediaType { .. }
            | Error::NotAnImage { .. }
            | Error::Unsupported { .. }
            | Error::Layer(_)
            | Error::Cpio(_) => ErrorKind::InvalidInput,
            Error::RegistryProtocol { .. } | Error::BadRemoteDocument { .. } => ErrorKind::Protocol,
            Error::Contended { .. } => ErrorKind::Conflict,
            Error::NotFound { .. }
            | Error::NameNotFound { .. }
            | Error::NoMatch { .. }
            | Error::NoPlatform { .. } => ErrorKind::NotFound,
            Error::Registry(e) if e.is_not_found() => ErrorKind::NotFound,
            Error::Registry(e) if e.is_unauthorized() => ErrorKind::Unauthorized,
            Error::Registry(e) if e.is_integrity() => ErrorKind::Integrity,
            Error::Registry(ukpm_registry::RegistryError::Config(_)) => ErrorKind::InvalidInput,
            Error::Registry(ukpm_registry::RegistryError::Protocol { .. }) => ErrorKind::Protocol,
            Error::Registry(_) => ErrorKind::Network,
            Error::Namespace { .. } => ErrorKind::NotFound,
            #[cfg(feature = "containerd")]
            Error::Containerd(e) if e.is_permission() => ErrorKind::Unauthorized,
            #[cfg(feature = "containerd")]
            Error::Containerd(e) if e.is_connection() => ErrorKind::Network,
            #[cfg(feature = "containerd")]
            Error::Containerd(e) if e.is_not_found() => ErrorKind::NotFound,
            #[cfg(feature = "containerd")]
            Error::Containerd(e) if e.is_integrity() => ErrorKind::Integrity,
            #[cfg(feature = "containerd")]
            Error::Containerd(_) => ErrorKind::Io,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Store(e) if e.is_integrity() => ErrorKind::Integrity,
            Error::Store(StoreError::NotALayout { .. }) => ErrorKind::InvalidInput,
            Error::Store(StoreError::BlobNotFound { .. }) => ErrorKind::Integrity,
            Error::Extract { .. } => ErrorKind::InvalidInput,
            Error::Store(_) | Error::Io(_) | Error::Task(_) => ErrorKind::Io,
        }
    }

    /// Recovers the typed error that travelled inside an `io::Error` through a `Read` chain (a
    /// registry's failure under a download stream, a store's verdict under a verifying reader),
    /// so it is reported as what it is; any other I/O error stays I/O.
    pub(crate) fn from_io(err: io::Error) -> Error {
        let inner = err.get_ref();
        if inner.is_some_and(|inner| inner.is::<ukpm_registry::RegistryError>()) {
            let kind = err.kind();
            return match err
                .into_inner()
                .map(|inner| inner.downcast::<ukpm_registry::RegistryError>())
            {
                Some(Ok(registry)) => Error::Registry(*registry),
                Some(Err(other)) => Error::Io(io::Error::new(kind, other)),
                None => Error::Io(io::Error::from(kind)),
            };
        }
        if inner.is_some_and(|inner| inner.is::<StoreError>()) {
            return Error::Store(ukpm_store::unwrap_store_error(err));
        }
        Error::Io(err)
    }

    /// [`Error::from_io`] for an error met while moving bytes into or out of the local store:
    /// a plain I/O failure there is the store's.
    pub(crate) fn from_store_io(err: io::Error) -> Error {
        match Error::from_io(err) {
            Error::Io(err) => Error::Store(StoreError::Io(err)),
            other => other,
        }
    }

    /// Whether a store lacks a blob (either store's word for it).
    pub(crate) fn is_missing_blob(&self) -> bool {
        match self {
            Error::Store(StoreError::BlobNotFound { .. }) => true,
            #[cfg(feature = "containerd")]
            Error::Containerd(ukpm_containerd::ContainerdError::NotFound { .. }) => true,
            _ => false,
        }
    }

    /// The size a stored blob really has, when it differs from its descriptor's (KraftKit's
    /// merged indexes say `size: 32`; the digest still decides).
    pub(crate) fn stored_size(&self) -> Option<u64> {
        match self {
            Error::Store(StoreError::StoredSizeMismatch { actual, .. }) => Some(*actual),
            #[cfg(feature = "containerd")]
            Error::Containerd(ukpm_containerd::ContainerdError::SizeMismatch { actual, .. }) => Some(*actual),
            _ => None,
        }
    }

    /// Wraps an extraction failure, surfacing a corrupt blob (detected by the verifying reader
    /// underneath the tar parser) as the store integrity error it is.
    pub(crate) fn extract(digest: Digest, source: ExtractError) -> Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
        while let Some(err) = cause {
            let store = err
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<StoreError>())
                .or_else(|| err.downcast_ref::<StoreError>());
            if let Some(StoreError::Corrupt { digest, actual }) = store {
                return Error::Store(StoreError::Corrupt {
                    digest: *digest,
                    actual: *actual,
                });
            }
            cause = err.source();
        }
        Error::Extract { digest, source }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tokio::task::JoinError> for Error {
    fn from(err: tokio::task::JoinError) -> Error {
        Error::Task(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_come_back_out_of_io_errors() {
        let registry = ukpm_registry::RegistryError::Truncated {
            registry: "unikraft.org".into(),
            what: "blob".into(),
            expected: 10,
            actual: 3,
        };
        let err = Error::from_io(io::Error::other(registry));
        assert!(
            matches!(
                err,
                Error::Registry(ukpm_registry::RegistryError::Truncated { .. })
            ),
            "{err:?}"
        );
        assert_eq!(err.origin(), Origin::Registry);
        let digest = Digest::of(b"x");
        let corrupt = StoreError::Corrupt {
            digest,
            actual: digest,
        };
        let err = Error::from_store_io(io::Error::new(io::ErrorKind::InvalidData, corrupt));
        assert!(matches!(err, Error::Store(StoreError::Corrupt { .. })), "{err:?}");
        let disk = Error::from_store_io(io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(disk, Error::Store(StoreError::Io(_))), "{disk:?}");
        assert_eq!(disk.origin(), Origin::Store);
        let plain = Error::from_io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(plain, Error::Io(_)), "{plain:?}");
    }
}
