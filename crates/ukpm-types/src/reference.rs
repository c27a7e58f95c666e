//! Image references (`unikraft.org/nginx:1.25`), parsed with KraftKit's defaults.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry a name without one resolves to, as in KraftKit.
pub const DEFAULT_REGISTRY: &str = "unikraft.org";
/// The tag a name without one gets, as in KraftKit and Docker.
pub const DEFAULT_TAG: &str = "latest";

/// Why a reference string was refused; each names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The string is empty.
    #[error("reference is empty")]
    Empty,
    /// The registry host is not a valid host name, IP address or `host:port`.
    #[error("reference `{reference}` has an invalid registry `{registry}`")]
    Registry {
        /// The whole reference.
        reference: String,
        /// The registry part.
        registry: String,
    },
    /// The repository path has an invalid component.
    #[error(
        "reference `{reference}` has an invalid repository `{repository}`: components are lowercase letters, digits and `._-`, starting and ending with a letter or digit"
    )]
    Repository {
        /// The whole reference.
        reference: String,
        /// The repository part.
        repository: String,
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
/// `library/` prefix), so `nginx` and `unikraft.org/nginx:latest` are the same package. A value
/// always holds a registry, and a tag unless it was given by digest alone.
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
    /// The first path component is a registry when it contains `.` or `:` or is `localhost`
    /// (Docker's rule, which crane users expect). The tag defaults to `latest` unless a digest is
    /// given.
    pub fn parse_with_registry(s: &str, default_registry: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
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
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest)
            }
            _ => (default_registry.to_string(), name),
        };
        if !valid_registry(&registry) {
            return Err(ReferenceError::Registry {
                reference: s.to_string(),
                registry,
            });
        }
        if !valid_repository(repository) {
            return Err(ReferenceError::Repository {
                reference: s.to_string(),
                repository: repository.to_string(),
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
            registry,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// A reference from its parts, checked as a parsed one would be.
    pub fn new(registry: &str, repository: &str, tag: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_with_registry(&format!("{registry}/{repository}:{tag}"), registry)
    }

    /// The registry host, with its port if it has one.
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

/// Whether a reference string names its registry (first component with `.` or `:`, or
/// `localhost`), so that short names can be tried against a list of registries instead.
pub fn has_registry(s: &str) -> bool {
    let name = s.split('@').next().unwrap_or(s);
    match name.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
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

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (host, Some(port)),
        _ => (registry, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|ip| !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'));
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.len() <= 255
        && repository.split('/').all(|component| {
            let bytes = component.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        })
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
            registry in "(ghcr\\.io|unikraft\\.org|127\\.0\\.0\\.1:5000|localhost)",
            repo in "[a-z0-9]{1,8}(/[a-z0-9]([a-z0-9._-]{0,6}[a-z0-9])?){0,3}",
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
