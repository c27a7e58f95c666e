//! Registry errors: the distribution spec's error envelope as typed codes.

use std::time::Duration;

use ukpm_types::Digest;

/// Which way bytes were going when a registry stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flow {
    /// The registry was sending (a response head or body).
    Download,
    /// The registry was taking an upload body.
    Upload,
}

/// The error codes of the OCI distribution spec (and Docker's additions), so callers can
/// branch on them and the CLI can hint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`.
    ManifestUnknown,
    /// `NAME_INVALID`.
    NameInvalid,
    /// `NAME_UNKNOWN`.
    NameUnknown,
    /// `SIZE_INVALID`.
    SizeInvalid,
    /// `UNAUTHORIZED`.
    Unauthorized,
    /// `DENIED`.
    Denied,
    /// `UNSUPPORTED`.
    Unsupported,
    /// `TOOMANYREQUESTS`.
    TooManyRequests,
    /// Any other code, as sent.
    Other(String),
}

impl ErrorCode {
    /// Parses a code from the envelope.
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Other(other.to_string()),
        }
    }

    /// The code as the registry sends it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Other(code) => code,
        }
    }
}

/// Everything a registry operation can fail with; messages name the registry and object and
/// never contain credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry answered with an error status.
    #[error("registry {registry} answered {status} for {what}{}", describe_codes(.codes, .message))]
    Status {
        /// The registry host.
        registry: String,
        /// What was asked for (`manifest nginx:1.25`, `blob sha256:...`).
        what: String,
        /// The HTTP status.
        status: u16,
        /// The codes of the error envelope, if any.
        codes: Vec<ErrorCode>,
        /// The first message of the envelope.
        message: Option<String>,
    },
    /// Credentials were missing or refused. When the registry (or its token endpoint) judged a
    /// user name and password and said no, the message says so plainly, naming the user (a
    /// wrong or expired password is the likely cause, not a missing login).
    #[error("{}", describe_unauthorized(.registry, .what, .reason, .user.as_deref()))]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What was asked for.
        what: String,
        /// Which credentials were tried (where they came from), never their value; with `user`,
        /// where they came from, or empty when the caller gave them directly (`ukpm login`).
        reason: String,
        /// The user whose password the registry refused, when a user name and password were
        /// sent and judged; `None` when none were sent, or access was refused for another
        /// reason (a token without the scope).
        user: Option<String>,
    },
    /// The registry could not be reached.
    #[error("cannot reach registry {registry}")]
    Network {
        /// The registry host.
        registry: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry went silent: no byte of a response (or no piece of an upload taken) for
    /// [`crate::ClientConfig::read_timeout`].
    #[error("registry {registry} stopped {} {what}: nothing for {}", flow_verb(*.flow), seconds(*.idle))]
    Stalled {
        /// The registry host.
        registry: String,
        /// What was being moved.
        what: String,
        /// Which way.
        flow: Flow,
        /// How long it was silent.
        idle: Duration,
    },
    /// The registry moved bytes slower than [`crate::ClientConfig::min_rate`].
    #[error(
        "registry {registry} {} {what} at {rate} bytes/s over {}, below the minimum of {minimum} bytes/s",
        flow_rate_verb(*.flow),
        seconds(*.window)
    )]
    TooSlow {
        /// The registry host.
        registry: String,
        /// What was being moved.
        what: String,
        /// Which way.
        flow: Flow,
        /// The rate it managed.
        rate: u64,
        /// Over how long.
        window: Duration,
        /// The minimum rate.
        minimum: u64,
    },
    /// Content did not match its digest.
    #[error("registry {registry} sent content for {expected} that hashes to {actual}")]
    DigestMismatch {
        /// The registry host.
        registry: String,
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// Content was larger than its descriptor or a cap allows.
    #[error("registry {registry} sent more than {limit} bytes for {what}")]
    TooLarge {
        /// The registry host.
        registry: String,
        /// What was being read.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// Content was shorter than its descriptor.
    #[error("registry {registry} sent {actual} bytes for {what}, expected {expected}")]
    Truncated {
        /// The registry host.
        registry: String,
        /// What was being read.
        what: String,
        /// The expected size.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// The registry broke the protocol (a missing header, an unparsable document).
    #[error("registry {registry} broke the protocol: {problem}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What was wrong.
        problem: String,
    },
    /// Asking the credential source (a `docker-credential-*` helper, say) did not finish: it
    /// panicked or the runtime shut down under it.
    #[error("cannot look up the credentials for registry {registry}")]
    CredentialLookup {
        /// The registry host.
        registry: String,
        /// Why the lookup task ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The client could not be set up (a bad CA file).
    #[error("cannot set up the registry client: {0}")]
    Config(String),
}

fn flow_verb(flow: Flow) -> &'static str {
    match flow {
        Flow::Download => "sending",
        Flow::Upload => "taking",
    }
}

fn flow_rate_verb(flow: Flow) -> &'static str {
    match flow {
        Flow::Download => "sent",
        Flow::Upload => "took",
    }
}

/// `30 s`, `1.5 s`: a timeout as people read it.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn describe_unauthorized(registry: &str, what: &str, reason: &str, user: Option<&str>) -> String {
    match user {
        Some(user) if reason.is_empty() => {
            format!("registry {registry} refused the credentials for user {user}")
        }
        Some(user) => format!("registry {registry} refused the credentials for user {user} (from {reason})"),
        None => format!("registry {registry} refused access to {what}: {reason}"),
    }
}

fn describe_codes(codes: &[ErrorCode], message: &Option<String>) -> String {
    let mut out = String::new();
    if !codes.is_empty() {
        out.push_str(": ");
        out.push_str(&codes.iter().map(ErrorCode::as_str).collect::<Vec<_>>().join(", "));
    }
    if let Some(message) = message {
        out.push_str(&format!(" ({message})"));
    }
    out
}

impl RegistryError {
    /// Whether the registry said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            RegistryError::Status { status, codes, .. } => {
                *status == 404
                    || codes.iter().any(|c| {
                        matches!(
                            c,
                            ErrorCode::ManifestUnknown | ErrorCode::NameUnknown | ErrorCode::BlobUnknown
                        )
                    })
            }
            _ => false,
        }
    }

    /// Whether credentials were the problem.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            RegistryError::Unauthorized { .. } => true,
            RegistryError::Status { status, codes, .. } => {
                *status == 401
                    || *status == 403
                    || codes
                        .iter()
                        .any(|c| matches!(c, ErrorCode::Unauthorized | ErrorCode::Denied))
            }
            _ => false,
        }
    }

    /// Whether the content received was wrong.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            RegistryError::DigestMismatch { .. }
                | RegistryError::TooLarge { .. }
                | RegistryError::Truncated { .. }
        )
    }

    /// The user whose password the registry refused (a wrong or expired password), if that is
    /// what happened.
    pub fn refused_user(&self) -> Option<&str> {
        match self {
            RegistryError::Unauthorized { user, .. } => user.as_deref(),
            _ => None,
        }
    }

    /// Whether the network failed (the registry unreachable, or stalled).
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            RegistryError::Network { .. } | RegistryError::Stalled { .. } | RegistryError::TooSlow { .. }
        )
    }

    /// Whether the registry stalled or went below the minimum rate: worth another attempt, but
    /// never an unbounded number.
    pub fn is_stall(&self) -> bool {
        matches!(
            self,
            RegistryError::Stalled { .. } | RegistryError::TooSlow { .. }
        )
    }

    /// A transport error of `registry`.
    pub(crate) fn network(registry: &str, source: reqwest::Error) -> RegistryError {
        RegistryError::Network {
            registry: registry.to_string(),
            source,
        }
    }
}

/// The registry client's result type.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
