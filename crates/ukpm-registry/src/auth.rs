//! Credentials, challenges and tokens.
//!
//! Credentials are only ever sent to a registry after it asked for them (a 401 with a
//! `WWW-Authenticate` challenge), and a bearer token is requested for exactly the scopes the
//! request needs, so a token leaked from one operation grants nothing else.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// A secret string whose `Debug` and `Display` never show it, so it cannot leak into logs,
/// errors or `--json` output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What a registry may be given to prove who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or token used as one).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth2 refresh token (docker `identitytoken`), exchanged at the token endpoint.
    IdentityToken(Secret),
    /// A registry token used as it is.
    Bearer(Secret),
}

/// Where credentials for a registry come from (the docker `config.json`, a helper, a test).
pub trait CredentialSource: Send + Sync {
    /// Credentials for `registry` (a host, with port if any), or `None` for anonymous access.
    fn credential(&self, registry: &str) -> Option<Credential>;

    /// A description of where credentials come from, for "refused" messages (never secrets).
    fn describe(&self, registry: &str) -> String {
        let _ = registry;
        "no credentials".to_string()
    }
}

/// No credentials: every registry is accessed anonymously.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credential(&self, _registry: &str) -> Option<Credential> {
        None
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service to ask a token for.
        service: Option<String>,
        /// The scope the registry suggested.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses a challenge; `None` for schemes ukpm does not speak.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `key="value", key=value` pairs, with commas allowed inside quotes.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// What an operation needs from a repository: the bearer-token scopes it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The repository path.
    pub repository: String,
    /// Whether pushing is needed (else pull only).
    pub push: bool,
}

impl Scope {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            push: false,
        }
    }

    /// Pull and push access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            push: true,
        }
    }

    /// `repository:NAME:pull[,push]`.
    pub fn to_scope_string(&self) -> String {
        let actions = if self.push { "pull,push" } else { "pull" };
        format!("repository:{}:{actions}", self.repository)
    }
}

/// A bearer token and when it stops being usable.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) value: Secret,
    pub(crate) expires: Instant,
}

/// How a registry wants to be authenticated, learnt from its challenges, and the tokens it gave.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    pub(crate) challenge: Option<Challenge>,
    pub(crate) tokens: HashMap<String, Token>,
}

impl AuthState {
    /// A still-valid token for exactly these scopes.
    pub(crate) fn token(&self, key: &str) -> Option<&Token> {
        self.tokens
            .get(key)
            .filter(|t| t.expires > Instant::now() + Duration::from_secs(5))
    }
}

/// The cache key of a set of scopes: sorted, joined.
pub(crate) fn scope_key(scopes: &[Scope]) -> String {
    let mut parts: Vec<String> = scopes.iter().map(Scope::to_scope_string).collect();
    parts.sort();
    parts.dedup();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_commas_in_quotes() {
        let c = Challenge::parse(
            r#"Bearer realm="http://127.0.0.1:5081/token",service="test-registry",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "http://127.0.0.1:5081/token".into(),
                service: Some("test-registry".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::Basic {
            username: "me".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("x").to_string(), "***");
    }

    #[test]
    fn scope_keys_are_order_independent() {
        let a = scope_key(&[Scope::push("x"), Scope::pull("y")]);
        let b = scope_key(&[Scope::pull("y"), Scope::push("x")]);
        assert_eq!(a, b);
        assert_eq!(a, "repository:x:pull,push repository:y:pull");
    }
}
