//! Image references (`unikraft.org/nginx:1.25`), parsed as the distribution reference grammar
//! says, with KraftKit's defaults.
//!
//! The grammar (distribution's `reference` package, which Docker, containerd and
//! go-containerregistry follow):
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ registry "/" ] path
//! registry       := host [ ":" port ]
//! host           := domain-name | "[" IPv6address "]"
//! domain-name    := component ( "." component )*   ; [A-Za-z0-9] or [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
//! path           := path-component ( "/" path-component )*      ; at most 255 characters
//! path-component := [a-z0-9]+ ( ( [._] | "__" | "-"* ) [a-z0-9]+ )*
//! tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! Deliberate differences, each KraftKit's (go-containerregistry's) choice where Docker's differs:
//! a name without a registry resolves to `unikraft.org`, not `docker.io/library`; a first
//! component is a registry when it has a `.` or `:`, is `localhost` or is bracketed, but not
//! merely because it has capitals (Docker takes `Foo/bar` as registry `Foo`; ukpm refuses it);
//! the 255-character limit is on the path (what registries enforce), not on the whole name; a
//! bracketed host must be an IPv6 address (`[::1]`, `[fe80::1]`), without a zone, and a port
//! is at most 65535.
//!
//! Docker Hub's names are normalised as Docker does: `index.docker.io` is `docker.io`, and a
//! one-component path there gets `library/` (`docker.io/nginx` is `docker.io/library/nginx`).
//! A name that is only 64 hex characters is refused, as Docker refuses it: it is an image id or
//! a digest without its `sha256:`, never a package.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry a name without one resolves to, as in KraftKit.
pub const DEFAULT_REGISTRY: &str = "unikraft.org";
/// The tag a name without one gets, as in KraftKit and Docker.
pub const DEFAULT_TAG: &str = "latest";

/// Docker Hub's registry name, which other spellings of it normalise to.
const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's legacy name, normalised to [`DOCKER_HUB`] as Docker does.
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The namespace a one-component path on Docker Hub lives in.
const DOCKER_HUB_OFFICIAL: &str = "library/";
/// The longest path (repository) the grammar allows.
const PATH_MAX: usize = 255;

/// Why a reference string was refused; each names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The string is empty.
    #[error("reference is empty")]
    Empty,
    /// The registry host is not a host name, an IPv4 address or a bracketed IPv6 address,
    /// optionally with a port.
    #[error("reference `{reference}` has an invalid registry `{registry}`: {reason}")]
    Registry {
        /// The whole reference.
        reference: String,
        /// The registry part.
        registry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The repository path has an invalid component.
    #[error(
        "reference `{reference}` has an invalid repository `{repository}`: components are lowercase letters and digits, separated by one `.`, one or two `_`, or any number of `-`"
    )]
    Repository {
        /// The whole reference.
        reference: String,
        /// The repository part.
        repository: String,
    },
    /// The repository path is longer than the 255 characters the grammar allows.
    #[error("reference `{reference}` has a repository of {length} characters; at most 255 are allowed")]
    TooLong {
        /// The whole reference.
        reference: String,
        /// The length of the repository part.
        length: usize,
    },
    /// The name is 64 hex characters: an image id or a bare digest, not a package name.
    #[error(
        "reference `{reference}` is 64 hex characters, which is a digest, not a name: write NAME@sha256:HEX"
    )]
    Identifier {
        /// The whole reference.
        reference: String,
    },
    /// The tag is not `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "reference `{reference}` has an invalid tag `{tag}`: tags are up to 128 letters, digits and `_.-`, not starting with `.` or `-`"
    )]
    Tag {
        /// The whole reference.
        reference: String,
        /// The tag part.
        tag: String,
    },
    /// The `@` part is not a valid digest.
    #[error("reference `{reference}` has an invalid digest")]
    Digest {
        /// The whole reference.
        reference: String,
        /// Why the digest was refused.
        #[source]
        source: DigestError,
    },
}

/// A fully resolved reference: registry, repository, and a tag and/or a digest.
///
/// Parsing applies KraftKit's defaults (registry `unikraft.org`, tag `latest`, no Docker
/// `library/` prefix off Docker Hub), so `nginx` and `unikraft.org/nginx:latest` are the same
/// package. A value always holds a registry, and a tag unless it was given by digest alone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `s`, resolving a name without a registry against `default_registry`.
    ///
    /// The first path component is a registry when it contains `.` or `:`, is `localhost`, or
    /// is a bracketed IPv6 address (Docker's rule, which crane users expect). The tag defaults
    /// to `latest` unless a digest is given. Docker Hub's names are normalised as Docker does
    /// (`index.docker.io/x` is `docker.io/library/x`).
    pub fn parse_with_registry(s: &str, default_registry: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::Identifier {
                reference: s.to_string(),
            });
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, digest)) => {
                let digest = digest
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::Digest {
                        reference: s.to_string(),
                        source,
                    })?;
                (name, Some(digest))
            }
            None => (s, None),
        };
        let (name, tag) = match name.rfind(':') {
            Some(i) if !name[i + 1..].contains('/') => (&name[..i], Some(&name[i + 1..])),
            _ => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if names_a_registry(first) => (first, rest),
            _ => (default_registry, name),
        };
        check_registry(registry).map_err(|reason| ReferenceError::Registry {
            reference: s.to_string(),
            registry: registry.to_string(),
            reason,
        })?;
        if !valid_path(repository) {
            return Err(ReferenceError::Repository {
                reference: s.to_string(),
                repository: repository.to_string(),
            });
        }
        let registry = if registry == DOCKER_HUB_LEGACY {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("{DOCKER_HUB_OFFICIAL}{repository}")
        } else {
            repository.to_string()
        };
        if repository.len() > PATH_MAX {
            return Err(ReferenceError::TooLong {
                reference: s.to_string(),
                length: repository.len(),
            });
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Tag {
                reference: s.to_string(),
                tag: tag.to_string(),
            });
        }
        let tag = match (tag, digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// A reference from its parts, checked as a parsed one would be.
    pub fn new(registry: &str, repository: &str, tag: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_with_registry(&format!("{registry}/{repository}:{tag}"), registry)
    }

    /// The registry host, with its port if it has one (`[::1]:5000` keeps its brackets).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`nginx`, `official/base`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, absent only when the reference was given by digest alone.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference pins one.
    pub fn digest(&self) -> Option<Digest> {
        self.digest
    }

    /// `registry/repository`: the package name KraftKit writes in `org.unikraft.image.name`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same package with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        Reference::new(&self.registry, &self.repository, tag)
    }

    /// The same reference without its digest, the key under which a store keeps a tag.
    pub fn without_digest(&self) -> Reference {
        Reference {
            digest: None,
            tag: Some(self.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string())),
            ..self.clone()
        }
    }
}

/// Whether a reference string names its registry (first component with `.` or `:`, `localhost`
/// or a bracketed address), so that short names can be tried against a list of registries
/// instead.
pub fn has_registry(s: &str) -> bool {
    let name = s.split('@').next().unwrap_or(s);
    name.split_once('/')
        .is_some_and(|(first, _)| names_a_registry(first))
}

/// Docker's rule for the first component of a name: a registry when it has a `.` (a domain or
/// an IPv4 address) or a `:` (a port, or an IPv6 address), is `localhost`, or is bracketed.
fn names_a_registry(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.starts_with('[')
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Parses with KraftKit's default registry, `unikraft.org`.
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_with_registry(s, DEFAULT_REGISTRY)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

/// Checks `host[:port]` where host is a domain name, an IPv4 address or a bracketed IPv6
/// address; the error says what is wrong.
fn check_registry(registry: &str) -> Result<(), &'static str> {
    let port = if let Some(rest) = registry.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return Err("a `[` opens an IPv6 address that no `]` closes");
        };
        if address.is_empty()
            || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            || address.parse::<std::net::Ipv6Addr>().is_err()
        {
            return Err("a bracketed host must be an IPv6 address in hex, without a zone, as in `[::1]`");
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("only `:PORT` may follow a bracketed IPv6 address")?,
            ),
        }
    } else {
        if registry.matches(':').count() > 1 {
            return Err("an IPv6 address must be in brackets, as in `[::1]:5000`");
        }
        let (host, port) = match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        if !valid_domain(host) {
            return Err(
                "a host is letters, digits and `-` in parts separated by `.`, no part starting or ending with `-`",
            );
        }
        port
    };
    match port {
        Some(port)
            if port.is_empty()
                || port.len() > 5
                || !port.bytes().all(|b| b.is_ascii_digit())
                || port.parse::<u16>().is_err() =>
        {
            Err("a port is a number from 0 to 65535")
        }
        _ => Ok(()),
    }
}

/// `component ("." component)*`, each `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`: the grammar's
/// domain name, which IPv4 addresses in dotted decimal also are.
fn valid_domain(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `path-component ("/" path-component)*`.
fn valid_path(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(valid_path_component)
}

/// `[a-z0-9]+ ( ( [._] | "__" | "-"* ) [a-z0-9]+ )*`: runs of lowercase letters and digits,
/// separated by one `.`, one `_`, two `_`, or any number of `-`. So `..`, `a..b`, `a._b`,
/// `a___b`, `-a`, `a-` are refused.
fn valid_path_component(component: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    // First and last are alphanumeric, so every run of other bytes lies between two runs of
    // alphanumerics: each such run must be a separator.
    bytes
        .split(alnum)
        .filter(|run| !run.is_empty())
        .all(|run| matches!(run, b"." | b"_" | b"__") || run.iter().all(|&b| b == b'-'))
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn short_names_get_kraftkit_defaults() {
        assert_eq!(parse("nginx").to_string(), "unikraft.org/nginx:latest");
        assert_eq!(parse("nginx:1.25").to_string(), "unikraft.org/nginx:1.25");
        assert_eq!(
            parse("official/base").to_string(),
            "unikraft.org/official/base:latest"
        );
        assert_eq!(parse("nginx").name(), "unikraft.org/nginx");
    }

    #[test]
    fn a_first_component_with_a_dot_or_port_is_a_registry() {
        let r = parse("ghcr.io/acme/app:v1");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("ghcr.io", "acme/app", Some("v1"))
        );
        let r = parse("127.0.0.1:5000/app");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "app", Some("latest"))
        );
        let r = parse("localhost/app");
        assert_eq!(r.registry(), "localhost");
        let r = parse("localhost:5000/a/b:c");
        assert_eq!((r.registry(), r.repository()), ("localhost:5000", "a/b"));
    }

    #[test]
    fn registry_detection() {
        assert!(has_registry("ghcr.io/a/b:1"));
        assert!(has_registry("localhost:5000/a"));
        assert!(has_registry("localhost/a"));
        assert!(!has_registry("nginx:1.25"));
        assert!(!has_registry("official/base"));
    }

    #[test]
    fn digests_pin_and_drop_the_default_tag() {
        let hex = "a".repeat(64);
        let r = parse(&format!("unikraft.org/nginx@sha256:{hex}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), hex);
        assert_eq!(r.to_string(), format!("unikraft.org/nginx@sha256:{hex}"));
        let r = parse(&format!("nginx:1@sha256:{hex}"));
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.without_digest().to_string(), "unikraft.org/nginx:1");
    }

    #[test]
    fn malformed_references_name_the_bad_part() {
        assert_eq!("".parse::<Reference>(), Err(ReferenceError::Empty));
        assert!(matches!(
            "Nginx".parse::<Reference>(),
            Err(ReferenceError::Repository { .. })
        ));
        assert!(matches!(
            "a//b".parse::<Reference>(),
            Err(ReferenceError::Repository { .. })
        ));
        assert!(matches!(
            "nginx:".parse::<Reference>(),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(matches!(
            "nginx:-x".parse::<Reference>(),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(matches!(
            "nginx@sha256:zz".parse::<Reference>(),
            Err(ReferenceError::Digest { .. })
        ));
        assert!(matches!(
            "bad_host.io/x".parse::<Reference>(),
            Err(ReferenceError::Registry { .. })
        ));
        assert!(matches!(
            "host.io:99x/x".parse::<Reference>(),
            Err(ReferenceError::Registry { .. })
        ));
        assert!(matches!(
            "ng inx".parse::<Reference>(),
            Err(ReferenceError::Repository { .. })
        ));
        let err = "UPPER/x".parse::<Reference>().unwrap_err().to_string();
        assert!(err.contains("`UPPER/x`"), "{err}");
    }

    proptest! {
        #[test]
        fn display_round_trips(
            registry in "(ghcr\\.io|unikraft\\.org|127\\.0\\.0\\.1:5000|localhost|\\[::1\\]:5000|\\[fe80::1\\])",
            repo in "[a-z0-9]{1,4}(([._]|__|-{1,3})[a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,4}(([._]|__|-{1,3})[a-z0-9]{1,4}){0,2}){0,3}",
            tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        ) {
            let r = Reference::new(&registry, &repo, &tag).unwrap();
            prop_assert_eq!(r.to_string().parse::<Reference>().unwrap(), r.clone());
            prop_assert_eq!(r.repository(), repo.as_str());
            prop_assert_eq!(r.tag(), Some(tag.as_str()));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,64}") {
            let _ = s.parse::<Reference>();
        }
    }
}
