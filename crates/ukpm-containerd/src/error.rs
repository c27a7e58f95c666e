//! containerd errors, each naming the socket and what was being done.

use std::path::PathBuf;

use containerd_client::tonic::Code;
use ukpm_types::Digest;

/// Everything talking to containerd can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerdError {
    /// Nothing is at the socket path.
    #[error("no containerd socket at {}", address.display())]
    NoSocket {
        /// The path given.
        address: PathBuf,
        /// Why it could not be looked at.
        #[source]
        source: std::io::Error,
    },
    /// The path exists but is not a socket.
    #[error("{} is not a containerd socket (it is not a socket at all)", address.display())]
    NotASocket {
        /// The path given.
        address: PathBuf,
    },
    /// The socket exists but this user may not use it.
    #[error("permission denied on the containerd socket {}", address.display())]
    PermissionDenied {
        /// The path given.
        address: PathBuf,
    },
    /// The socket does not answer.
    #[error("containerd does not answer on {}", address.display())]
    Unreachable {
        /// The path given.
        address: PathBuf,
        /// The transport error.
        #[source]
        source: containerd_client::tonic::transport::Error,
    },
    /// The socket accepted but containerd did not answer in time.
    #[error("containerd at {} did not answer within {} s", address.display(), after.as_secs())]
    Timeout {
        /// The socket.
        address: PathBuf,
        /// How long we waited.
        after: std::time::Duration,
    },
    /// Something answers on the socket, but not as containerd.
    #[error("{} does not answer as containerd: {message}", address.display())]
    NoAnswer {
        /// The socket.
        address: PathBuf,
        /// What the first call failed with.
        message: String,
    },
    /// An RPC failed.
    #[error("containerd at {} refused {what}: {message} ({code:?})", address.display())]
    Rpc {
        /// The socket.
        address: PathBuf,
        /// What was asked for.
        what: String,
        /// The gRPC status code.
        code: Code,
        /// containerd's message.
        message: String,
    },
    /// A blob is not in containerd.
    #[error("blob {digest} is not in containerd")]
    NotFound {
        /// The blob.
        digest: Digest,
    },
    /// containerd refused content on commit (digest or size mismatch).
    #[error("containerd refused blob {digest}: {message}")]
    Rejected {
        /// The blob.
        digest: Digest,
        /// containerd's reason.
        message: String,
    },
    /// A blob read back from containerd has another size than its descriptor says.
    #[error("blob {digest} in containerd is {actual} bytes, not the {expected} its descriptor says")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// What containerd returned.
        actual: u64,
    },
    /// A blob read back from containerd does not hash to its digest.
    #[error("blob {digest} in containerd is damaged: its content hashes to {actual}")]
    Corrupt {
        /// The blob.
        digest: Digest,
        /// What the content hashes to.
        actual: Digest,
    },
    /// An image record would point at content containerd does not have.
    #[error("image {name} would point at blob {digest}, which is not in containerd")]
    MissingTarget {
        /// The image name.
        name: String,
        /// The missing blob.
        digest: Digest,
    },
    /// The lock that serialises image updates among ukpm processes could not be taken.
    #[error("cannot lock {} to update images in containerd", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading the content to send failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ContainerdError {
    /// Whether containerd could not be reached at all (not running, wrong socket, no access).
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            ContainerdError::NoSocket { .. }
                | ContainerdError::NotASocket { .. }
                | ContainerdError::PermissionDenied { .. }
                | ContainerdError::Unreachable { .. }
                | ContainerdError::Timeout { .. }
                | ContainerdError::NoAnswer { .. }
        ) || matches!(
            self,
            ContainerdError::Rpc {
                code: Code::Unavailable,
                ..
            }
        )
    }

    /// Whether something asked for is absent.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ContainerdError::NotFound { .. }
                | ContainerdError::MissingTarget { .. }
                | ContainerdError::Rpc {
                    code: Code::NotFound,
                    ..
                }
        )
    }

    /// Whether content failed verification.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            ContainerdError::Rejected { .. }
                | ContainerdError::SizeMismatch { .. }
                | ContainerdError::Corrupt { .. }
        )
    }

    /// Whether the socket refused this user.
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            ContainerdError::PermissionDenied { .. }
                | ContainerdError::Rpc {
                    code: Code::PermissionDenied,
                    ..
                }
        )
    }
}

/// Whether a transport error comes from a permission-denied connect.
pub(crate) fn is_permission_denied(err: &containerd_client::tonic::transport::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The containerd client's result type.
pub type Result<T, E = ContainerdError> = std::result::Result<T, E>;
