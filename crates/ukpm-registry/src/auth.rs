//! Credentials, challenges and tokens.
//!
//! Credentials are only ever sent to a registry after it asked for them (a 401 with a
//! `WWW-Authenticate` challenge), and a bearer token is requested for exactly the scopes the
//! request needs, so a token leaked from one operation grants nothing else.
//!
//! The [`Authenticator`] is the whole flow: the client asks it for the `Authorization` value
//! of a request and hands it the challenges of a 401; it remembers per registry which scheme
//! was asked for and caches bearer tokens per scope set. A [`CredentialSource`] may run a
//! `docker-credential-*` program, so it is only ever asked on the blocking pool, and never
//! while the state lock is held.

mod challenge;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};

pub use challenge::Challenge;

use crate::client::{is_loopback, read_capped};
use crate::error::{RegistryError, Result};
use crate::pace::{Pace, execute};
use crate::retry::RetryPolicy;

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

/// What an operation needs from a repository: the bearer-token scopes it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The repository path.
    pub repository: String,
    /// Whether pushing is needed (else pull only).
    pub push: bool,
    /// Whether deleting is needed: token registries (Distribution, Harbor) want the `delete`
    /// action in the token for `DELETE`, which `pull,push` does not grant.
    pub delete: bool,
}

impl Scope {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            push: false,
            delete: false,
        }
    }

    /// Pull and push access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            push: true,
            delete: false,
        }
    }

    /// Delete access to `repository` (the `delete` action alone).
    pub fn delete(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            push: false,
            delete: true,
        }
    }

    /// `repository:NAME:pull[,push]`, or `repository:NAME:delete`.
    pub fn to_scope_string(&self) -> String {
        let actions = match (self.delete, self.push) {
            (true, _) => "delete",
            (false, true) => "pull,push",
            (false, false) => "pull",
        };
        format!("repository:{}:{actions}", self.repository)
    }
}

/// A bearer token and when it stops being usable.
#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    expires: Instant,
}

/// How a registry wants to be authenticated, learnt from its challenges, and the tokens it gave.
#[derive(Debug, Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Token>,
}

impl AuthState {
    /// A still-valid token for exactly these scopes.
    fn token(&self, key: &str) -> Option<&Token> {
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

/// The cache key of a token: the realm and service that issued it, then its scopes. A token is
/// only ever reused for the issuer that gave it, so a registry that moves its token endpoint
/// (or a challenge that names another) never gets a token meant for another realm.
fn token_key(realm: &str, service: Option<&str>, scopes: &[Scope]) -> String {
    format!("{realm} {} {}", service.unwrap_or(""), scope_key(scopes))
}

/// The authentication flow of a [`crate::Client`]: credentials, the challenge each registry
/// sent, and the tokens it handed out.
pub(crate) struct Authenticator {
    http: reqwest::Client,
    policy: RetryPolicy,
    pace: Pace,
    plain_http: Vec<String>,
    /// The unverified client and the hosts it is for ([`crate::ClientConfig::insecure_tls`]):
    /// a realm on such a host (a self-signed registry serving its own tokens) is asked with it.
    insecure: Option<(reqwest::Client, Vec<String>)>,
    credentials: Arc<dyn CredentialSource>,
    state: Mutex<HashMap<String, AuthState>>,
}

impl Authenticator {
    /// An authenticator fetching tokens with `http`, retried by `policy` and held to `pace`;
    /// realms on `plain_http` hosts are trusted with credentials like HTTPS ones.
    pub(crate) fn new(
        http: reqwest::Client,
        policy: RetryPolicy,
        pace: Pace,
        plain_http: Vec<String>,
        credentials: Arc<dyn CredentialSource>,
    ) -> Authenticator {
        Authenticator {
            http,
            policy,
            pace,
            plain_http,
            insecure: None,
            credentials,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Asks realms on `hosts` with `http`, a client that does not verify certificates.
    pub(crate) fn with_insecure(mut self, http: reqwest::Client, hosts: Vec<String>) -> Authenticator {
        self.insecure = Some((http, hosts));
        self
    }

    /// The client for a realm: the unverified one only when the realm's host (with its port, or
    /// without when the entry names none) is an insecure host.
    fn http_for_realm(&self, realm: &url::Url) -> &reqwest::Client {
        if let Some((insecure, hosts)) = &self.insecure
            && let Some(host) = realm.host_str()
        {
            let authority = match realm.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            if hosts.iter().any(|h| *h == authority || *h == host) {
                return insecure;
            }
        }
        &self.http
    }

    /// Where credentials come from, for messages.
    pub(crate) fn describe(&self, registry: &str) -> String {
        self.credentials.describe(registry)
    }

    /// The credentials for `registry`, looked up on the blocking pool: a credential helper is
    /// a program, and waiting for it must not stall the runtime's workers.
    async fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        let source = self.credentials.clone();
        let host = registry.to_string();
        tokio::task::spawn_blocking(move || source.credential(&host))
            .await
            .map_err(|source| RegistryError::CredentialLookup {
                registry: registry.to_string(),
                source,
            })
    }

    /// The `Authorization` value for a request to `registry` needing `scopes`: nothing until
    /// the registry has challenged, then Basic credentials or a bearer token for exactly these
    /// scopes (fetched now if none is cached, saving the 401 round trip).
    pub(crate) async fn authorization(
        &self,
        registry: &str,
        scopes: &[Scope],
    ) -> Result<Option<HeaderValue>> {
        let Some(challenge) = self.with_state(registry, |state| state.challenge.clone()) else {
            return Ok(None);
        };
        let credential = self.credential(registry).await?;
        let value = match (challenge, credential) {
            (Challenge::Basic, Some(Credential::Basic { username, password })) => basic(&username, &password),
            (Challenge::Basic, _) => return Ok(None),
            (Challenge::Bearer { .. }, Some(Credential::Bearer(token))) => bearer(&token),
            (Challenge::Bearer { realm, service, .. }, credential) => {
                let key = token_key(&realm, service.as_deref(), scopes);
                let cached = self.with_state(registry, |state| state.token(&key).map(|t| t.value.clone()));
                let token = match cached {
                    Some(token) => token,
                    None => {
                        self.fetch_token(registry, scopes, &realm, service.as_deref(), credential)
                            .await?
                    }
                };
                bearer(&token)
            }
        };
        let mut header = HeaderValue::from_str(value.expose())
            .map_err(|_| RegistryError::Config("a credential holds characters a header cannot".into()))?;
        header.set_sensitive(true);
        Ok(Some(header))
    }

    /// Takes in the challenges of a 401 (every `WWW-Authenticate` value): remembers the one
    /// ukpm answers and fetches a token if it is a bearer one. `Ok(false)` when retrying cannot
    /// help (no challenge ukpm speaks, or Basic with no Basic credentials).
    pub(crate) async fn on_challenge(
        &self,
        registry: &str,
        scopes: &[Scope],
        headers: &HeaderMap,
    ) -> Result<bool> {
        let values = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(challenge) = Challenge::select(values) else {
            return Ok(false);
        };
        let credential = self.credential(registry).await?;
        let retry = match &challenge {
            Challenge::Basic => matches!(credential, Some(Credential::Basic { .. })),
            Challenge::Bearer { .. } => true,
        };
        self.with_state(registry, |state| {
            if let Challenge::Bearer { realm, service, .. } = &challenge {
                state.tokens.remove(&token_key(realm, service.as_deref(), scopes));
            }
            state.challenge = Some(challenge.clone());
        });
        if let Challenge::Bearer { realm, service, .. } = challenge
            && !matches!(credential, Some(Credential::Bearer(_)))
        {
            self.fetch_token(registry, scopes, &realm, service.as_deref(), credential)
                .await?;
        }
        Ok(retry)
    }

    /// The error for a request the registry still refused: says whether credentials were
    /// missing or refused, and where they came from. `judged` says the refusal was a verdict
    /// on the credentials themselves (a second 401 to Basic credentials, or the token endpoint
    /// refusing them); then the error names the user whose password was refused.
    pub(crate) async fn unauthorized(&self, registry: &str, what: &str, judged: bool) -> RegistryError {
        let (reason, user) = match self.credential(registry).await {
            Ok(Some(Credential::Basic { username, .. })) if judged => {
                (self.describe(registry), Some(username))
            }
            Ok(Some(_)) => match self.describe(registry) {
                source if source.is_empty() => ("the credentials given were refused".into(), None),
                source => (format!("the credentials from {source} were refused"), None),
            },
            Ok(None) => (
                format!(
                    "it needs credentials and {} has none for it",
                    self.describe(registry)
                ),
                None,
            ),
            Err(error) => return error,
        };
        RegistryError::Unauthorized {
            registry: registry.to_string(),
            what: what.to_string(),
            reason,
            user,
        }
    }

    /// Whether `registry` asked for Basic credentials: its refusal of a second attempt is then
    /// a verdict on the user name and password.
    pub(crate) fn wants_basic(&self, registry: &str) -> bool {
        self.with_state(registry, |state| {
            matches!(state.challenge, Some(Challenge::Basic))
        })
    }

    /// Asks the token endpoint `realm` for a token for `scopes`, caches and returns it.
    /// Credentials go to the realm only over HTTPS (or to loopback and `--plain-http` hosts).
    async fn fetch_token(
        &self,
        registry: &str,
        scopes: &[Scope],
        realm: &str,
        service: Option<&str>,
        credential: Option<Credential>,
    ) -> Result<Secret> {
        let key = token_key(realm, service, scopes);
        let realm_url = url::Url::parse(realm).map_err(|_| RegistryError::Protocol {
            registry: registry.to_string(),
            problem: format!("the token realm `{realm}` is not a URL"),
        })?;
        let secure = realm_url.scheme() == "https"
            || realm_url
                .host_str()
                .is_some_and(|h| is_loopback(h) || self.plain_http.iter().any(|p| p == h));
        let credential = if secure { credential } else { None };
        let scope_strings: Vec<String> = scopes.iter().map(Scope::to_scope_string).collect();
        let build = || match &credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh.expose())
                    .append_pair("client_id", "ukpm");
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                if !scope_strings.is_empty() {
                    form.append_pair("scope", &scope_strings.join(" "));
                }
                self.http_for_realm(&realm_url)
                    .post(realm_url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            other => {
                let mut url = realm_url.clone();
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scope_strings {
                        query.append_pair("scope", scope);
                    }
                }
                let request = self.http_for_realm(&realm_url).get(url);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        request.header(AUTHORIZATION, basic(username, password).expose())
                    }
                    _ => request,
                }
            }
        };
        let what = format!("a token for {}", scope_key(scopes));
        let response = self
            .policy
            .run(registry, &what, || async {
                let request = build()
                    .build()
                    .map_err(|source| RegistryError::network(registry, source))?;
                execute(
                    self.http_for_realm(&realm_url),
                    request,
                    self.pace,
                    registry,
                    &what,
                )
                .await
            })
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED || response.status() == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(registry, &what, true).await);
        }
        if !response.status().is_success() {
            return Err(RegistryError::Protocol {
                registry: registry.to_string(),
                problem: format!("the token endpoint answered {}", response.status()),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let bytes = read_capped(response, 1 << 20, self.pace, registry, "a token").await?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| RegistryError::Protocol {
            registry: registry.to_string(),
            problem: "the token endpoint sent no JSON token".into(),
        })?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| RegistryError::Protocol {
                registry: registry.to_string(),
                problem: "the token endpoint sent an empty token".into(),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(10));
        self.with_state(registry, |state| {
            state.tokens.insert(
                key,
                Token {
                    value: value.clone(),
                    expires: Instant::now() + lifetime,
                },
            );
        });
        Ok(value)
    }

    /// Runs `f` on the state of `registry` under the lock. `f` is synchronous, so the guard can
    /// never be held across an `.await` or a credential lookup.
    fn with_state<T>(&self, registry: &str, f: impl FnOnce(&mut AuthState) -> T) -> T {
        let mut map = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(map.entry(registry.to_string()).or_default())
    }
}

/// `Basic base64(user:password)`.
fn basic(username: &str, password: &Secret) -> Secret {
    use base64::Engine;
    let raw = format!("{username}:{}", password.expose());
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
}

/// `Bearer TOKEN`.
fn bearer(token: &Secret) -> Secret {
    Secret::new(format!("Bearer {}", token.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
