//! The transport: scheme choice, then every request through the retry policy
//! ([`crate::retry`]) and the authentication flow ([`crate::auth`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use reqwest::{Response, StatusCode};

use crate::auth::{Authenticator, CredentialSource, Scope};
use crate::error::{ErrorCode, RegistryError, Result};
use crate::pace::{BodyWatch, Pace, execute};
use crate::retry::RetryPolicy;

/// How the client talks to registries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Hosts (with port, if any) spoken to over plain HTTP; loopback hosts always are, as Docker
    /// and crane do.
    pub plain_http: Vec<String>,
    /// Hosts (with port, if any) whose TLS certificate is not verified: KraftKit's per-host
    /// `verify_ssl: false`, for a registry with a self-signed certificate. Only these hosts; the
    /// scheme stays HTTPS (this is not plain HTTP).
    pub insecure_tls: Vec<String>,
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
    /// How long a registry may stay silent: no byte of a response head or body, or no piece of
    /// an upload body taken, for this long is a stall (a transient failure, retried like a
    /// dropped connection).
    pub read_timeout: Duration,
    /// The slowest a body may move, in bytes per second, measured over
    /// [`ClientConfig::min_rate_window`] of the registry's time; 0 for no minimum.
    pub min_rate: u64,
    /// The span [`ClientConfig::min_rate`] is measured over.
    pub min_rate_window: Duration,
    /// Blobs of at least this many bytes are uploaded in chunks, so a failure resends only the
    /// rest.
    pub chunk_threshold: u64,
    /// The chunk size of chunked uploads (raised to the registry's `OCI-Chunk-Min-Length`).
    pub chunk_size: u64,
}

/// The default [`ClientConfig::read_timeout`]: a registry silent for this long has stalled.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`ClientConfig::min_rate`], 1 KiB/s: slower than this over a minute is a stall.
pub const DEFAULT_MIN_RATE: u64 = 1024;

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            plain_http: Vec::new(),
            insecure_tls: Vec::new(),
            extra_roots_pem: Vec::new(),
            user_agent: concat!("ukpm/", env!("CARGO_PKG_VERSION")).to_string(),
            retries: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            read_timeout: DEFAULT_READ_TIMEOUT,
            min_rate: DEFAULT_MIN_RATE,
            min_rate_window: Duration::from_secs(60),
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
    /// The client for [`ClientConfig::insecure_tls`] hosts, certificates unverified; `None` when
    /// there are none. A second client (not a custom verifier on one) so a verifying request can
    /// never take the unverified path by mistake.
    insecure_http: Option<reqwest::Client>,
    config: Arc<ClientConfig>,
    policy: RetryPolicy,
    pace: Pace,
    auth: Arc<Authenticator>,
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
        let builder = || {
            reqwest::Client::builder()
                .user_agent(config.user_agent.clone())
                .connect_timeout(config.connect_timeout)
        };
        let http = builder()
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        let insecure_http = if config.insecure_tls.is_empty() {
            None
        } else {
            Some(
                builder()
                    .tls_danger_accept_invalid_certs(true)
                    .build()
                    .map_err(|e| RegistryError::Config(e.to_string()))?,
            )
        };
        let policy = RetryPolicy::from_config(&config);
        let pace = Pace::from_config(&config);
        let mut auth = Authenticator::new(http.clone(), policy, pace, config.plain_http.clone(), credentials);
        if let Some(insecure) = &insecure_http {
            auth = auth.with_insecure(insecure.clone(), config.insecure_tls.clone());
        }
        Ok(Client {
            http,
            insecure_http,
            config: Arc::new(config),
            policy,
            pace,
            auth: Arc::new(auth),
            schemes: Arc::new(Mutex::new(HashMap::new())),
            probing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// `scheme://host/v2/` for a registry: HTTPS, plain HTTP for `--plain-http` hosts, and for
    /// loopback hosts plain HTTP until the host shows it speaks TLS (as Docker and
    /// go-containerregistry decide). There is no probe: the first real request learns the
    /// scheme (`Client::send` switches to HTTPS when a TLS server refuses plain HTTP), which
    /// saves a round trip on every run of a short command.
    pub async fn base_url(&self, registry: &str) -> String {
        let host = transport_host(registry);
        let scheme = if self.config.plain_http.iter().any(|h| h == registry || h == host) {
            "http"
        } else if !is_loopback(host) {
            "https"
        } else {
            self.learnt_scheme(host).unwrap_or("http")
        };
        format!("{scheme}://{host}/v2/")
    }

    /// The scheme a loopback host was seen to speak, if any request has told yet.
    fn learnt_scheme(&self, host: &str) -> Option<&'static str> {
        self.schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .copied()
    }

    fn learn_scheme(&self, host: &str, scheme: &'static str) {
        tracing::debug!(host, scheme, "loopback registry scheme learnt");
        self.schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_string(), scheme);
    }

    /// Whether a loopback registry speaks TLS, asked apart from any request, when a request's
    /// own answer could not tell (a 400 to a HEAD has no body to read; a broken-off plain
    /// request may be a TLS server hanging up). A plain `GET /v2/` first, read whole; over TLS
    /// only if that broke off too, since one broken connection must not switch a plain
    /// registry to HTTPS. Learnt for the rest of the process; `false` when nothing answers.
    async fn speaks_tls(&self, registry: &str) -> bool {
        let host = transport_host(registry);
        let _probing = self.probing.lock().await;
        if let Some(scheme) = self.learnt_scheme(host) {
            return scheme == "https";
        }
        let probe = self.pace.idle.min(Duration::from_secs(5));
        let get = |scheme: &str| {
            self.http_for(registry)
                .get(format!("{scheme}://{host}/v2/"))
                .timeout(probe)
                .send()
        };
        let scheme = match get("http").await {
            Ok(response) if response.status() == StatusCode::BAD_REQUEST => {
                let tls = response.text().await.is_ok_and(|body| body.contains("HTTPS"));
                Some(if tls { "https" } else { "http" })
            }
            Ok(_) => Some("http"),
            Err(e) if e.is_connect() => None,
            Err(_) => get("https").await.is_ok().then_some("https"),
        };
        if let Some(scheme) = scheme {
            self.learn_scheme(host, scheme);
        }
        scheme == Some("https")
    }

    /// The HTTP client for requests to `registry`: the unverified one only for an
    /// [`ClientConfig::insecure_tls`] host.
    pub(crate) fn http_for(&self, registry: &str) -> &reqwest::Client {
        let host = transport_host(registry);
        match &self.insecure_http {
            Some(insecure)
                if self
                    .config
                    .insecure_tls
                    .iter()
                    .any(|h| h == registry || h == host) =>
            {
                insecure
            }
            _ => &self.http,
        }
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
        self.send_with(self.policy.once(), registry, scopes, what, build)
            .await
    }

    /// Where credentials come from, for messages.
    pub fn describe_credentials(&self, registry: &str) -> String {
        self.auth.describe(registry)
    }

    /// The retry policy every request follows.
    pub(crate) fn policy(&self) -> RetryPolicy {
        self.policy
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
        self.send_with(self.policy, registry, scopes, what, build).await
    }

    async fn send_with(
        &self,
        policy: RetryPolicy,
        registry: &str,
        scopes: &[Scope],
        what: &str,
        build: Build<'_>,
    ) -> Result<Response> {
        // Credentials go only where the registry itself is: a URL it hands back (an upload
        // `Location`, a redirect) on another scheme, host or port gets none.
        // A loopback registry whose scheme no request had told when this one started: its
        // answer tells, and a TLS server's refusal sends it again over HTTPS (`upgrade`).
        let learning = !self.origin(registry)?.scheme_known;
        let mut upgrade = false;
        let host = transport_host(registry);
        let plain = url::Url::parse(&format!("http://{host}/")).ok();
        let mut challenged = false;
        loop {
            // Taken again each round: once the scheme is learnt, a URL on the other scheme is
            // not the registry's and gets no credentials.
            let origin = self.origin(registry)?;
            // Asked once per round, outside the retries: a token request retries on its own,
            // and its failure must not be retried again here.
            let authorization = self.auth.authorization(registry, scopes).await?;
            let response = policy
                .run(registry, what, || {
                    let request = build(self.http_for(registry)).build();
                    let authorization = authorization.clone();
                    let origin = &origin;
                    let plain = &plain;
                    async move {
                        let mut request =
                            request.map_err(|source| RegistryError::network(registry, source))?;
                        // Built before the scheme was learnt (or by a caller that read the
                        // tentative base URL): follow what the registry said it speaks.
                        if upgrade
                            && request.url().scheme() == "http"
                            && plain
                                .as_ref()
                                .is_some_and(|plain| same_origin(request.url(), plain))
                        {
                            let _ = request.url_mut().set_scheme("https");
                        }
                        if let Some(value) = authorization
                            && origin.holds(request.url())
                        {
                            request.headers_mut().insert(AUTHORIZATION, value);
                        }
                        execute(self.http_for(registry), request, self.pace, registry, what).await
                    }
                })
                .await;
            let response = match response {
                Ok(response) if learning && !upgrade => match self.learn_from(registry, response).await {
                    Some(response) => response,
                    // A TLS server refused plain HTTP: the same request again, over TLS.
                    None => {
                        upgrade = true;
                        continue;
                    }
                },
                Ok(response) => response,
                // The plain request broke off: a TLS server may hang up rather than answer.
                Err(RegistryError::Network { source, .. })
                    if learning && !upgrade && !source.is_connect() && self.speaks_tls(registry).await =>
                {
                    upgrade = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // Another host's challenge is not the registry's: never learnt, never answered.
            if !origin.holds(response.url()) {
                return Err(self.status_error(registry, what, response).await);
            }
            // One answer to a challenge; a second 401 means the credentials were refused.
            if !challenged
                && self
                    .auth
                    .on_challenge(registry, scopes, response.headers())
                    .await?
            {
                challenged = true;
                continue;
            }
            let judged = challenged && self.auth.wants_basic(registry);
            return Err(self.auth.unauthorized(registry, what, judged).await);
        }
    }

    /// What the first answer of a loopback registry over plain HTTP says of its scheme: a TLS
    /// server answers plain HTTP with a 400 that says "HTTPS" (Go's and nginx's words; a 400
    /// without them, as to a HEAD, is checked with one TLS request), and then `None` (ask
    /// again over TLS); any other answer is plain HTTP's, given back whole.
    async fn learn_from(&self, registry: &str, response: Response) -> Option<Response> {
        let host = transport_host(registry);
        if response.url().scheme() != "http" {
            return Some(response);
        }
        // Another request may have learnt it meanwhile; the first to learn decides.
        let learn = |scheme| {
            if self.learnt_scheme(host).is_none() {
                self.learn_scheme(host, scheme);
            }
        };
        if response.status() != StatusCode::BAD_REQUEST {
            learn("http");
            return Some(response);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = self
            .read_capped(response, 64 << 10, registry, "its first answer")
            .await
            .unwrap_or_default();
        if String::from_utf8_lossy(&body).contains("HTTPS") {
            learn("https");
            return None;
        }
        // An answer to HEAD has no body to read the refusal from: ask over TLS once.
        if self.speaks_tls(registry).await {
            return None;
        }
        learn("http");
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = status;
        *rebuilt.headers_mut() = headers;
        Some(Response::from(rebuilt))
    }

    /// Where `registry` is, for deciding what may carry its credentials: its scheme (when known
    /// without asking it: a loopback registry not yet probed is known by host and port only),
    /// host and port.
    fn origin(&self, registry: &str) -> Result<Origin> {
        let host = transport_host(registry);
        let scheme = if self.config.plain_http.iter().any(|h| h == registry || h == host) {
            Some("http")
        } else if !is_loopback(host) {
            Some("https")
        } else {
            self.schemes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(host)
                .copied()
        };
        let url = url::Url::parse(&format!("{}://{host}/", scheme.unwrap_or("http")))
            .map_err(|_| RegistryError::Config(format!("registry {registry} makes no valid URL")))?;
        Ok(Origin {
            url,
            scheme_known: scheme.is_some(),
        })
    }

    /// Reads a whole body like [`read_capped`], held to this client's read timeout and minimum
    /// rate.
    pub(crate) async fn read_capped(
        &self,
        response: Response,
        limit: u64,
        registry: &str,
        what: &str,
    ) -> Result<Vec<u8>> {
        read_capped(response, limit, self.pace, registry, what).await
    }

    /// The read timeout and minimum rate every body is held to.
    pub(crate) fn pace(&self) -> Pace {
        self.pace
    }

    /// Turns an error response into a typed error, reading at most 64 KiB of its body.
    pub(crate) async fn status_error(&self, registry: &str, what: &str, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        let body = self
            .read_capped(response, 64 << 10, registry, what)
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

/// Reads a whole body, refusing more than `limit` bytes before buffering them, and a registry
/// that stalls or trickles it (`pace`).
pub(crate) async fn read_capped(
    mut response: Response,
    limit: u64,
    pace: Pace,
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
    let mut watch = BodyWatch::new(pace);
    let mut out = Vec::new();
    while let Some(chunk) = watch.chunk(&mut response, registry, what).await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Where a registry is: the URLs that may carry its credentials.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    url: url::Url,
    /// False for a loopback registry whose scheme was not probed yet: then host and port decide.
    scheme_known: bool,
}

impl Origin {
    /// Whether `url` is the registry's scheme, host and port.
    fn holds(&self, url: &url::Url) -> bool {
        if self.scheme_known {
            return same_origin(url, &self.url);
        }
        url.host_str() == self.url.host_str() && url.port() == self.url.port()
    }
}

/// Whether `url` is on the same scheme, host and port as `origin`: where a registry's
/// credentials may go.
pub(crate) fn same_origin(url: &url::Url, origin: &url::Url) -> bool {
    url.scheme() == origin.scheme()
        && url.host_str() == origin.host_str()
        && url.port_or_known_default() == origin.port_or_known_default()
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
        || name
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        let origin = url::Url::parse("https://reg.example:5000/v2/").unwrap();
        let same = |u: &str| same_origin(&url::Url::parse(u).unwrap(), &origin);
        assert!(same("https://reg.example:5000/v2/x/blobs/uploads/1?_state=a"));
        assert!(same("https://REG.example:5000/other"));
        assert!(!same("http://reg.example:5000/v2/"));
        assert!(!same("https://reg.example:5001/v2/"));
        assert!(!same("https://reg.example/v2/"));
        assert!(!same("https://storage.example:5000/v2/"));
        assert!(!same("https://reg.example.evil:5000/v2/"));
        let default = url::Url::parse("https://reg.example/v2/").unwrap();
        assert!(same_origin(
            &url::Url::parse("https://reg.example:443/a").unwrap(),
            &default
        ));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
            "[0:0:0:0:0:0:0:1]:5000",
            "a.localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "unikraft.org",
            "10.0.0.1:5000",
            "192.168.1.1",
            "localhost.example.com",
            "[fe80::1]:5000",
            "[::2]",
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
}
