//! The fake registry the fault tests share: an in-process HTTP/1.1 server written here (tokio,
//! no framework) that answers `/v2/` with 200 and everything else from a script, and records
//! every request, so a test can also use one as a listener that only records what reaches it.
//!
//! Mocked because a real registry will not misbehave on cue (house rule 8).

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use ukpm_registry::{Anonymous, Client, ClientConfig, Credential, CredentialSource, RegistryError, Secret};
use ukpm_types::{Descriptor, Digest, Reference, media_type};

pub const REPO: &str = "ukpm/fault";

// ---------------------------------------------------------------------------------------------
// The fake registry
// ---------------------------------------------------------------------------------------------

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The values of a query parameter, decoded, in order.
    pub fn query(&self, key: &str) -> Vec<String> {
        let query = self.target.split_once('?').map_or("", |(_, q)| q);
        url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .collect()
    }
}

/// How the fake frames a body.
#[derive(Debug, Clone, Copy)]
pub enum Length {
    /// `Content-Length` is the body's length.
    Exact,
    /// `Content-Length` says this, whatever the body holds; the connection closes after the body.
    Declared(u64),
    /// No `Content-Length`: the body ends when the connection closes.
    UntilClose,
}

#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Vec<u8>),
    /// Zeros until the client stops reading (or 64 MiB, so a client that reads it all still ends).
    Endless,
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub length: Length,
    /// Close the connection without answering at all.
    pub hang_up: bool,
    /// Go silent, keeping the connection open: a registry that stalls.
    pub silence: Option<Silence>,
}

/// Where a reply goes silent (for a minute, longer than any test waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// After reading the request, before the status line.
    BeforeHead,
    /// After the head and the body sent so far (declare more with [`Length::Declared`]).
    AfterBody,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            length: Length::Exact,
            hang_up: false,
            silence: None,
        }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::status(200).body(body)
    }

    pub fn hang_up() -> Reply {
        Reply {
            hang_up: true,
            ..Reply::status(500)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = Body::Bytes(body.into());
        self
    }

    pub fn endless(mut self) -> Reply {
        self.body = Body::Endless;
        self.length = Length::UntilClose;
        self
    }

    pub fn length(mut self, length: Length) -> Reply {
        self.length = length;
        self
    }

    /// Goes silent at `silence`, holding the connection open.
    pub fn silence(mut self, silence: Silence) -> Reply {
        self.silence = Some(silence);
        self
    }
}

pub type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// An in-process registry on 127.0.0.1 that answers `/v2/` with 200 and every other request
/// from its handler. One request per connection (`Connection: close`), so each can be logged and
/// a lie cannot poison a pooled connection.
pub struct Fake {
    pub address: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Fake {
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &*handler, &log).await;
                });
            }
        });
        Fake {
            address,
            requests,
            task,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// `localhost:PORT`: the same socket under another host name, which reqwest treats as
    /// another host.
    pub fn localhost(&self) -> String {
        format!("localhost:{}", self.address.port())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests other than the `/v2/` ping whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path() == path).collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let request = read_request(&mut stream).await?;
    let reply = if request.path() == "/v2/" {
        Reply::ok("{}").header("Content-Type", "application/json")
    } else {
        handler(&request)
    };
    log.lock().unwrap().push(request);
    let mut stream = stream.into_inner();
    if reply.hang_up {
        return stream.shutdown().await;
    }
    let stall = || tokio::time::sleep(Duration::from_secs(60));
    if reply.silence == Some(Silence::BeforeHead) {
        stall().await;
        return Ok(());
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    head.push_str("Docker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n");
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match (reply.length, &reply.body) {
        (Length::Exact, Body::Bytes(bytes)) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        (Length::Declared(n), _) => head.push_str(&format!("Content-Length: {n}\r\n")),
        _ => {}
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    match reply.body {
        Body::Bytes(bytes) => stream.write_all(&bytes).await?,
        Body::Endless => {
            let chunk = vec![b' '; 64 << 10];
            for _ in 0..1024 {
                stream.write_all(&chunk).await?;
            }
        }
    }
    stream.flush().await?;
    if reply.silence == Some(Silence::AfterBody) {
        stall().await;
        return Ok(());
    }
    stream.shutdown().await
}

pub async fn read_request(stream: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or_else(|| bad("no method"))?.to_string();
    let target = parts.next().ok_or_else(|| bad("no target"))?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Err(bad("headers cut short"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| bad("bad header"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad Content-Length"))?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        request.body = body;
    }
    Ok(request)
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Fast retries, so fault tests take milliseconds, not the default backoff's seconds.
pub fn config(retries: u32) -> ClientConfig {
    ClientConfig {
        retries,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

pub fn anonymous(retries: u32) -> Client {
    Client::new(config(retries), Arc::new(Anonymous)).unwrap()
}

/// Basic credentials for one registry only.
pub struct Fixed {
    pub registry: String,
    pub credential: Credential,
}

impl CredentialSource for Fixed {
    fn credential(&self, registry: &str) -> Option<Credential> {
        (registry == self.registry).then(|| self.credential.clone())
    }
}

pub fn with_basic(registry: &str, user: &str, password: &str) -> Client {
    let credentials = Fixed {
        registry: registry.to_string(),
        credential: Credential::Basic {
            username: user.to_string(),
            password: Secret::new(password),
        },
    };
    Client::new(config(0), Arc::new(credentials)).unwrap()
}

pub fn tagged(fake: &Fake) -> Reference {
    Reference::new(&fake.host(), REPO, "v1").unwrap()
}

pub fn pinned(fake: &Fake, digest: Digest) -> Reference {
    Reference::parse_with_registry(&format!("{}/{REPO}@{digest}", fake.host()), "unused.example").unwrap()
}

pub fn blob_path(digest: Digest) -> String {
    format!("/v2/{REPO}/blobs/{digest}")
}

pub fn manifest_path(id: &str) -> String {
    format!("/v2/{REPO}/manifests/{id}")
}

/// A small, valid OCI manifest whose bytes depend on `seed`.
pub fn manifest(seed: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::IMAGE_MANIFEST,
        "config": {
            "mediaType": media_type::IMAGE_CONFIG,
            "digest": Digest::of(seed.as_bytes()).to_string(),
            "size": seed.len(),
        },
        "layers": [],
    }))
    .unwrap()
}

pub fn manifest_reply(bytes: &[u8]) -> Reply {
    Reply::ok(bytes).header("Content-Type", media_type::IMAGE_MANIFEST)
}

pub fn blob(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Fails the test instead of hanging it when the client never gives up.
pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the client hung")
}

/// Downloads a whole blob; the first error wins.
pub async fn download(
    client: &Client,
    reference: &Reference,
    descriptor: &Descriptor,
) -> Result<Vec<u8>, RegistryError> {
    let mut download = client.get_blob(reference, descriptor, 0).await?;
    let mut out = Vec::new();
    while let Some(chunk) = download.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
