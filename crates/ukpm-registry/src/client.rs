//! The transport: scheme choice, authentication on challenge, retries with backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use crate::auth::{AuthState, Challenge, Credential, CredentialSource, Scope, Secret, Token, scope_key};
use crate::error::{ErrorCode, RegistryError, Result};

/// How the client talks to registries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Hosts (with port, if any) spoken to over plain HTTP; loopback hosts always are, as Docker
    /// and crane do.
    pub plain_http: Vec<String>,
    /// Extra trusted CA certificates, PEM, added to the system roots.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// How many times a request is retried after a connection error, 429 or 502/503/504.
    pub retries: u32,
    /// The first backoff delay; each retry doubles it.
    pub backoff: Duration,
    /// The longest single wait, whatever `Retry-After` says.
    pub max_backoff: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// Blobs of at least this many bytes are uploaded in chunks, so a failure resends only the
    /// rest.
    pub chunk_threshold: u64,
    /// The chunk size of chunked uploads (raised to the registry's `OCI-Chunk-Min-Length`).
    pub chunk_size: u64,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            plain_http: Vec::new(),
            extra_roots_pem: Vec::new(),
            user_agent: concat!("ukpm/", env!("CARGO_PKG_VERSION")).to_string(),
            retries: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            chunk_threshold: 128 << 20,
            chunk_size: 64 << 20,
        }
    }
}

/// An OCI distribution client shared by every operation of a process.
///
/// Cheap to clone. It remembers, per registry, how the registry wants to be authenticated and
/// the bearer tokens it handed out, so a pull of many blobs authenticates once.
#[derive(Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    config: Arc<ClientConfig>,
    credentials: Arc<dyn CredentialSource>,
    auth: Arc<Mutex<HashMap<String, AuthState>>>,
    schemes: Arc<Mutex<HashMap<String, &'static str>>>,
    probing: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A request factory: called again for every retry, so bodies are rebuilt.
pub(crate) type Build<'a> = &'a (dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync);

impl Client {
    /// A client with `config`, taking credentials from `credentials`.
    pub fn new(config: ClientConfig, credentials: Arc<dyn CredentialSource>) -> Result<Client> {
        let mut roots = Vec::new();
        for pem in &config.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| RegistryError::Config(format!("a CA file is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(RegistryError::Config("a CA file holds no certificate".into()));
            }
            roots.extend(certs);
        }
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        Ok(Client {
            http,
            config: Arc::new(config),
            credentials,
            auth: Arc::new(Mutex::new(HashMap::new())),
            schemes: Arc::new(Mutex::new(HashMap::new())),
            probing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// `scheme://host/v2/` for a registry: HTTPS, plain HTTP for `--plain-http` hosts, and for
    /// loopback hosts HTTPS if they speak it, else plain HTTP (as Docker and go-containerregistry
    /// decide). The choice is probed once per registry and remembered.
    pub async fn base_url(&self, registry: &str) -> String {
        let host = transport_host(registry);
        if self.config.plain_http.iter().any(|h| h == registry || h == host) {
            return format!("http://{host}/v2/");
        }
        if !is_loopback(host) {
            return format!("https://{host}/v2/");
        }
        let known = || {
            self.schemes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(host)
                .copied()
        };
        if let Some(scheme) = known() {
            return format!("{scheme}://{host}/v2/");
        }
        // One probe per host, however many blobs ask at once.
        let _probing = self.probing.lock().await;
        let scheme = match known() {
            Some(scheme) => scheme,
            None => {
                // Plain HTTP first: it is what loopback registries speak, and it spares a TLS
                // handshake (and loading the system roots) on every run. A TLS server answers
                // it with Go's "HTTP request to an HTTPS server" 400, or hangs up.
                let plain = self
                    .http
                    .get(format!("http://{host}/v2/"))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let scheme = match plain {
                    Ok(response) if response.status() == StatusCode::BAD_REQUEST => {
                        let tls = response.text().await.is_ok_and(|body| body.contains("HTTPS"));
                        Some(if tls { "https" } else { "http" })
                    }
                    Ok(_) => Some("http"),
                    // Nothing listens: say plain HTTP, and let the request report the refusal
                    // (without remembering, so a registry started later is probed again).
                    Err(e) if e.is_connect() => None,
                    // The plain probe broke off: ask over TLS before believing it is TLS, since
                    // one broken connection must not switch a plain registry to HTTPS.
                    Err(_) => {
                        let tls = self
                            .http
                            .get(format!("https://{host}/v2/"))
                            .timeout(Duration::from_secs(5))
                            .send()
                            .await;
                        tls.is_ok().then_some("https")
                    }
                };
                let Some(scheme) = scheme else {
                    tracing::debug!(
                        registry,
                        "loopback registry scheme unknown; using plain HTTP this time"
                    );
                    return format!("http://{host}/v2/");
                };
                self.schemes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host.to_string(), scheme);
                scheme
            }
        };
        format!("{scheme}://{host}/v2/")
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends a request like [`Client::send`] but without retrying transport failures or
    /// transient statuses: the caller recovers itself (a chunked upload asks where it stands).
    pub(crate) async fn send_once(
        &self,
        registry: &str,
        scopes: &[Scope],
        what: &str,
        build: Build<'_>,
    ) -> Result<Response> {
        let quiet = ClientConfig {
            retries: 0,
            ..(*self.config).clone()
        };
        let once = Client {
            http: self.http.clone(),
            config: Arc::new(quiet),
            credentials: self.credentials.clone(),
            auth: self.auth.clone(),
            schemes: self.schemes.clone(),
            probing: self.probing.clone(),
        };
        once.send(registry, scopes, what, build).await
    }

    /// Where credentials come from, for messages.
    pub fn describe_credentials(&self, registry: &str) -> String {
        self.credentials.describe(registry)
    }

    /// Sends a request built by `build`, authenticating when challenged and retrying
    /// transient failures. Returns the response whatever its status, except 401 (an error).
    pub(crate) async fn send(
        &self,
        registry: &str,
        scopes: &[Scope],
        what: &str,
        build: Build<'_>,
    ) -> Result<Response> {
        let mut attempt = 0u32;
        let mut challenged = false;
        loop {
            self.prepare_token(registry, scopes).await?;
            let mut request = build(&self.http);
            if let Some(value) = self.authorization(registry, scopes) {
                let mut header = HeaderValue::from_str(value.expose()).map_err(|_| {
                    RegistryError::Config("a credential holds characters a header cannot".into())
                })?;
                header.set_sensitive(true);
                request = request.header(AUTHORIZATION, header);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(source) if attempt < self.config.retries && is_transient(&source) => {
                    tracing::debug!(registry, what, error = %source, attempt, "retrying after a transport error");
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    attempt += 1;
                    continue;
                }
                Err(source) => {
                    return Err(RegistryError::Network {
                        registry: registry.to_string(),
                        source,
                    });
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                if !challenged && let Some(challenge) = challenge {
                    challenged = true;
                    if self.on_challenge(registry, scopes, challenge).await? {
                        continue;
                    }
                }
                return Err(self.unauthorized(registry, what));
            }
            if matches!(status.as_u16(), 429 | 502 | 503 | 504) && attempt < self.config.retries {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                tracing::debug!(registry, what, %status, attempt, "retrying after a transient status");
                tokio::time::sleep(self.backoff(attempt, retry_after)).await;
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self.config.backoff.saturating_mul(1 << attempt.min(16));
        retry_after.unwrap_or(exponential).min(self.config.max_backoff)
    }

    fn unauthorized(&self, registry: &str, what: &str) -> RegistryError {
        let reason = match self.credentials.credential(registry) {
            Some(_) => format!(
                "the credentials from {} were refused",
                self.credentials.describe(registry)
            ),
            None => format!(
                "it needs credentials and {} has none for it",
                self.credentials.describe(registry)
            ),
        };
        RegistryError::Unauthorized {
            registry: registry.to_string(),
            what: what.to_string(),
            reason,
        }
    }

    /// Remembers a challenge; fetches a token if it is a bearer one. `Ok(false)` when retrying
    /// cannot help (Basic with no credentials).
    async fn on_challenge(&self, registry: &str, scopes: &[Scope], challenge: Challenge) -> Result<bool> {
        let credential = self.credentials.credential(registry);
        let retry = match &challenge {
            Challenge::Basic => matches!(credential, Some(Credential::Basic { .. })),
            Challenge::Bearer { .. } => true,
        };
        self.with_state(registry, |state| {
            state.challenge = Some(challenge.clone());
            state.tokens.remove(&scope_key(scopes));
        });
        if let Challenge::Bearer { realm, service, .. } = challenge {
            self.fetch_token(registry, scopes, &realm, service.as_deref())
                .await?;
        }
        Ok(retry)
    }

    /// Fetches a token up front when the registry is known to want one and none is cached for
    /// these scopes, saving the 401 round trip.
    async fn prepare_token(&self, registry: &str, scopes: &[Scope]) -> Result<()> {
        let needed = self.with_state(registry, |state| match &state.challenge {
            Some(Challenge::Bearer { realm, service, .. }) if state.token(&scope_key(scopes)).is_none() => {
                Some((realm.clone(), service.clone()))
            }
            _ => None,
        });
        if let Some((realm, service)) = needed {
            self.fetch_token(registry, scopes, &realm, service.as_deref())
                .await?;
        }
        Ok(())
    }

    fn authorization(&self, registry: &str, scopes: &[Scope]) -> Option<Secret> {
        let credential = self.credentials.credential(registry);
        self.with_state(registry, |state| match &state.challenge {
            Some(Challenge::Basic) => match credential {
                Some(Credential::Basic { username, password }) => Some(basic(&username, &password)),
                _ => None,
            },
            Some(Challenge::Bearer { .. }) => match credential {
                Some(Credential::Bearer(token)) => Some(Secret::new(format!("Bearer {}", token.expose()))),
                _ => state
                    .token(&scope_key(scopes))
                    .map(|t| Secret::new(format!("Bearer {}", t.value.expose()))),
            },
            None => None,
        })
    }

    async fn fetch_token(
        &self,
        registry: &str,
        scopes: &[Scope],
        realm: &str,
        service: Option<&str>,
    ) -> Result<()> {
        let key = scope_key(scopes);
        let credential = self.credentials.credential(registry);
        if let Some(Credential::Bearer(_)) = credential {
            return Ok(());
        }
        let realm_url = url::Url::parse(realm).map_err(|_| RegistryError::Protocol {
            registry: registry.to_string(),
            problem: format!("the token realm `{realm}` is not a URL"),
        })?;
        let secure = realm_url.scheme() == "https"
            || realm_url
                .host_str()
                .is_some_and(|h| is_loopback(h) || self.config.plain_http.iter().any(|p| p == h));
        let credential = if secure { credential } else { None };
        let scope_strings: Vec<String> = scopes.iter().map(Scope::to_scope_string).collect();
        let http = self.http.clone();
        let build = move |_: &reqwest::Client| match &credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh.expose().to_string()),
                    ("client_id", "ukpm".to_string()),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_string()));
                }
                if !scope_strings.is_empty() {
                    form.push(("scope", scope_strings.join(" ")));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                http.post(realm_url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
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
                let request = http.get(url);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        request.header(AUTHORIZATION, basic(username, password).expose())
                    }
                    _ => request,
                }
            }
        };
        let mut attempt = 0;
        let response = loop {
            match build(&self.http).send().await {
                Ok(r)
                    if matches!(r.status().as_u16(), 429 | 502 | 503 | 504)
                        && attempt < self.config.retries => {}
                Ok(r) => break r,
                Err(e) if attempt < self.config.retries && is_transient(&e) => {}
                Err(source) => {
                    return Err(RegistryError::Network {
                        registry: registry.to_string(),
                        source,
                    });
                }
            }
            tokio::time::sleep(self.backoff(attempt, None)).await;
            attempt += 1;
        };
        if response.status() == StatusCode::UNAUTHORIZED || response.status() == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(registry, &format!("a token for {key}")));
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
        let bytes = read_capped(response, 1 << 20, registry, "a token").await?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| RegistryError::Protocol {
            registry: registry.to_string(),
            problem: "the token endpoint sent no JSON token".into(),
        })?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                registry: registry.to_string(),
                problem: "the token endpoint sent an empty token".into(),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(10));
        self.with_state(registry, |state| {
            state.tokens.insert(
                key,
                Token {
                    value: Secret::new(value),
                    expires: Instant::now() + lifetime,
                },
            );
        });
        Ok(())
    }

    fn with_state<T>(&self, registry: &str, f: impl FnOnce(&mut AuthState) -> T) -> T {
        let mut map = self.auth.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(map.entry(registry.to_string()).or_default())
    }

    /// Turns an error response into a typed error, reading at most 64 KiB of its body.
    pub(crate) async fn status_error(&self, registry: &str, what: &str, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        let body = read_capped(response, 64 << 10, registry, what)
            .await
            .unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default)]
            errors: Vec<EnvelopeError>,
        }
        #[derive(serde::Deserialize)]
        struct EnvelopeError {
            code: Option<String>,
            message: Option<String>,
        }
        let envelope: Envelope = serde_json::from_slice(&body).unwrap_or(Envelope { errors: Vec::new() });
        RegistryError::Status {
            registry: registry.to_string(),
            what: what.to_string(),
            status,
            codes: envelope
                .errors
                .iter()
                .filter_map(|e| e.code.as_deref().map(ErrorCode::parse))
                .collect(),
            message: envelope.errors.iter().find_map(|e| e.message.clone()),
        }
    }
}

/// Reads a whole body, refusing more than `limit` bytes before buffering them.
pub(crate) async fn read_capped(
    mut response: Response,
    limit: u64,
    registry: &str,
    what: &str,
) -> Result<Vec<u8>> {
    let too_large = || RegistryError::TooLarge {
        registry: registry.to_string(),
        what: what.to_string(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| RegistryError::Network {
        registry: registry.to_string(),
        source,
    })? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn basic(username: &str, password: &Secret) -> Secret {
    use base64::Engine;
    let raw = format!("{username}:{}", password.expose());
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn is_transient(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
}

/// Docker Hub's names all mean one host for transport.
pub fn transport_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port: spoken to over plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "a.localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "unikraft.org",
            "10.0.0.1:5000",
            "192.168.1.1",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[tokio::test]
    async fn schemes() {
        let client = Client::new(ClientConfig::default(), Arc::new(crate::Anonymous)).unwrap();
        assert_eq!(client.base_url("unikraft.org").await, "https://unikraft.org/v2/");
        assert_eq!(
            client.base_url("docker.io").await,
            "https://registry-1.docker.io/v2/"
        );
        // Nothing listens on port 1: TLS fails, so a loopback host falls back to plain HTTP.
        assert_eq!(client.base_url("127.0.0.1:1").await, "http://127.0.0.1:1/v2/");
        let client = Client::new(
            ClientConfig {
                plain_http: vec!["reg.internal:5000".into()],
                ..ClientConfig::default()
            },
            Arc::new(crate::Anonymous),
        )
        .unwrap();
        assert_eq!(
            client.base_url("reg.internal:5000").await,
            "http://reg.internal:5000/v2/"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let client = Client::new(ClientConfig::default(), Arc::new(crate::Anonymous)).unwrap();
        assert_eq!(client.backoff(0, None), Duration::from_millis(200));
        assert_eq!(client.backoff(2, None), Duration::from_millis(800));
        assert_eq!(client.backoff(10, None), Duration::from_secs(10));
        assert_eq!(
            client.backoff(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            client.backoff(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }
}
