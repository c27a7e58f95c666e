//! Real OCI registries for tests: `docker-registry` (CNCF Distribution 2.8) on 127.0.0.1 with a
//! temp root, either plain, with htpasswd Basic auth, with bearer tokens from a token server of
//! our own, or with TLS from a throwaway CA.
//!
//! Every server binds 127.0.0.1 only, gets its own temp directory and config (never Debian's
//! `/etc/docker/registry/config.yml`), and is killed and reaped when its guard drops, so nothing
//! outlives the test. A missing program fails the test with an install hint; it never skips.
//!
//! Programs are found with [`crate::require_program`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::poll_until;

/// How long a server may take to answer before the test fails with its log.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The `service` the token-auth registry names in its challenges.
pub const TOKEN_SERVICE: &str = "ukpm-test-registry";

/// The issuer the token server signs as and the registry trusts.
const TOKEN_ISSUER: &str = "ukpm-test-issuer";

/// A running `docker-registry`, killed and reaped on drop, with its temp directory removed.
///
/// Each value is its own registry with its own storage, so tests do not see each other's data.
pub struct Registry {
    // Fields drop in order: the registry first, then the token server, the temp dir last.
    process: Process,
    token_server: Option<TokenServer>,
    ca_pem: Option<Vec<u8>>,
    port: u16,
    scheme: &'static str,
    dir: TempDir,
}

impl Registry {
    /// A registry over plain HTTP that anyone may push to and pull from.
    pub fn plain() -> Registry {
        let dir = temp_dir();
        Registry::launch(dir, "", "", "http", None, None)
    }

    /// A plain registry with deletion switched off (`storage.delete.enabled: false`, docker-
    /// registry's default), which answers `DELETE` with 405 `UNSUPPORTED`, as most public
    /// registries do. Every other constructor enables deletion.
    pub fn plain_without_delete() -> Registry {
        let dir = temp_dir();
        Registry::launch_with(dir, "", "", "http", None, None, false)
    }

    /// A registry that wants HTTP Basic auth for everything, checked against an htpasswd file
    /// (bcrypt, made by `htpasswd -Bbn`) holding the one `user`.
    pub fn basic(user: &str, password: &str) -> Registry {
        let dir = temp_dir();
        let htpasswd = crate::require_program("htpasswd", "apache2-utils");
        let line = run(Command::new(htpasswd).args(["-Bbn", user, password]));
        let path = dir.path().join("htpasswd");
        write(&path, &line);
        let auth = format!(
            "auth:\n  htpasswd:\n    realm: ukpm-test\n    path: {}\n",
            yaml_path(&path)
        );
        Registry::launch(dir, &auth, "", "http", None, None)
    }

    /// A registry that wants bearer tokens from a token server started alongside it (see
    /// [`Registry::token_requests`]), as public registries do. `user` with `password` gets every
    /// action it asks for; anonymous callers get `pull` only; a wrong password gets a 401.
    pub fn token(user: &str, password: &str) -> Registry {
        let dir = temp_dir();
        let server = TokenServer::start(dir.path(), user, password);
        let auth = format!(
            "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    \
             rootcertbundle: {}\n",
            yaml_quote(&server.realm()),
            yaml_path(&server.signer_cert),
        );
        Registry::launch(dir, &auth, "", "http", Some(server), None)
    }

    /// A registry over HTTPS with a leaf certificate (SAN `IP:127.0.0.1`, `DNS:localhost`) from a
    /// throwaway CA, whose certificate [`Registry::ca_pem`] returns. No auth.
    pub fn tls() -> Registry {
        let dir = temp_dir();
        let ca_pem = make_tls_certs(dir.path());
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_path(&dir.path().join("leaf.crt")),
            yaml_path(&dir.path().join("leaf.key")),
        );
        Registry::launch(dir, "", &tls, "https", None, Some(ca_pem))
    }

    /// `127.0.0.1:PORT`: the registry part of a reference to this registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://...`: its base URL, for tools that want one.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.host())
    }

    /// The PEM of the CA that signed a TLS registry's certificate, for clients to trust.
    ///
    /// Panics for registries started without TLS, since asking is a bug in the test.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.ca_pem
            .clone()
            .expect("ca_pem() is only for registries started with Registry::tls()")
    }

    /// The OAuth2 refresh token (a docker `identitytoken`) the token server accepts for its user.
    ///
    /// Panics for registries started without token auth.
    pub fn identity_token(&self) -> String {
        self.token_server().refresh_token.clone()
    }

    /// `http://127.0.0.1:PORT/token`: the token server's endpoint (the `realm`).
    ///
    /// Panics for registries started without token auth.
    pub fn token_realm(&self) -> String {
        self.token_server().realm()
    }

    /// Every request the token server answered so far, in order, so tests can assert which
    /// scopes a client asked for (both repositories for a cross-repository mount, say).
    ///
    /// Panics for registries started without token auth.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        let log = fs_err::read_to_string(&self.token_server().grants).unwrap_or_default();
        log.lines().filter_map(TokenRequest::parse).collect()
    }

    /// What the registry has written to stdout and stderr so far (warnings and the access
    /// log), for failure messages.
    pub fn log(&self) -> String {
        self.process.output()
    }

    /// The requests the registry has served so far, as `METHOD PATH` (from its access log), so
    /// tests can count round trips.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| {
                let quoted = line.split('"').nth(1)?;
                let mut parts = quoted.split(' ');
                let method = parts.next()?;
                let path = parts.next()?;
                path.starts_with("/v2").then(|| format!("{method} {path}"))
            })
            .collect()
    }

    /// Its temp directory (config, storage under `data/`, certificates, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn token_server(&self) -> &TokenServer {
        self.token_server
            .as_ref()
            .expect("this is only for registries started with Registry::token()")
    }

    /// Writes the config for a free port and starts the registry, retrying with another port
    /// when someone else took the one we picked between probing and binding.
    fn launch(
        dir: TempDir,
        auth: &str,
        tls: &str,
        scheme: &'static str,
        token_server: Option<TokenServer>,
        ca_pem: Option<Vec<u8>>,
    ) -> Registry {
        Registry::launch_with(dir, auth, tls, scheme, token_server, ca_pem, true)
    }

    /// [`Registry::launch`], with `delete` saying whether `DELETE` is allowed.
    fn launch_with(
        dir: TempDir,
        auth: &str,
        tls: &str,
        scheme: &'static str,
        token_server: Option<TokenServer>,
        ca_pem: Option<Vec<u8>>,
        delete: bool,
    ) -> Registry {
        let program = crate::require_program("docker-registry", "docker-registry");
        let data = dir.path().join("data");
        fs_err::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
        let secret = format!("ukpm-test-{}-{}", std::process::id(), nanos());
        for attempt in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            let yaml = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: {delete}\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\n{tls}{auth}",
                data = yaml_path(&data),
                secret = yaml_quote(&secret),
            );
            write(&config, yaml.as_bytes());
            let mut command = Command::new(&program);
            command.arg("serve").arg(&config).current_dir(dir.path());
            // Distribution lets REGISTRY_* variables override the config file; ours must win.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            let log = dir.path().join(format!("registry-{attempt}.log"));
            let mut process = Process::spawn("docker-registry", command, log, false);
            match wait_for_registry(&mut process, port) {
                Started::Ready => {
                    return Registry {
                        process,
                        token_server,
                        ca_pem,
                        port,
                        scheme,
                        dir,
                    };
                }
                Started::PortTaken => continue,
            }
        }
        panic!("docker-registry found its port taken five times in a row");
    }
}

enum Started {
    Ready,
    PortTaken,
}

/// Polls `GET /v2/` with a raw request until the registry answers like a registry.
fn wait_for_registry(process: &mut Process, port: u16) -> Started {
    let started = poll_until(READY_TIMEOUT, || {
        if let Some(status) = process.exited() {
            let output = process.output();
            if output.contains("address already in use") {
                return Some(Started::PortTaken);
            }
            panic!("docker-registry exited with {status} before answering on port {port}:\n{output}");
        }
        probe(port)
            .is_some_and(|answer| is_registry_answer(&answer))
            .then_some(Started::Ready)
    });
    started.unwrap_or_else(|| {
        panic!(
            "docker-registry did not answer GET /v2/ on 127.0.0.1:{port} within {READY_TIMEOUT:?}; \
             its output:\n{}",
            process.output()
        )
    })
}

/// One plain-HTTP `GET /v2/` on a fresh connection; the raw answer, if any.
fn probe(port: u16) -> Option<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.take(64 << 10).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.starts_with("HTTP/1.").then_some(answer)
}

/// Distribution sends its API version header on `/v2/` (200 or 401); over TLS, Go's server
/// answers a plain request with a 400 that says so. Anything else is someone else's server.
fn is_registry_answer(answer: &str) -> bool {
    answer
        .to_ascii_lowercase()
        .contains("docker-distribution-api-version")
        || answer.contains("HTTP request to an HTTPS server")
}

/// One request the token server answered, as it logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// How the token was asked for: `get` (query string, optional Basic auth), or `password` or
    /// `refresh_token` (the `grant_type` of a POSTed OAuth2 form).
    pub grant: String,
    /// The user the caller authenticated (or tried to) as; `None` for anonymous callers.
    pub user: Option<String>,
    /// The `service` parameter, if the caller sent one.
    pub service: Option<String>,
    /// The scopes asked for, as `repository:NAME:ACTIONS`, in the order sent.
    pub requested: Vec<String>,
    /// The scopes granted, in the same form; anonymous callers get `pull` only.
    pub granted: Vec<String>,
    /// Whether the credentials were refused (a 401 and no token).
    pub refused: bool,
}

impl TokenRequest {
    /// A line of the token server's log: five tab-separated fields, `-` for none.
    fn parse(line: &str) -> Option<TokenRequest> {
        let fields: Vec<&str> = line.split('\t').collect();
        let [grant, user, service, requested, granted] = fields[..] else {
            return None;
        };
        let optional = |s: &str| (s != "-").then(|| s.to_string());
        let list = |s: &str| {
            s.split(' ')
                .filter(|x| !x.is_empty() && *x != "-")
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let refused = granted == "REFUSED";
        Some(TokenRequest {
            grant: grant.to_string(),
            user: optional(user),
            service: optional(service),
            requested: list(requested),
            granted: if refused { Vec::new() } else { list(granted) },
            refused,
        })
    }
}

/// Our token server: a Python script (stdlib only, RS256 through the `openssl` CLI).
struct TokenServer {
    process: Process,
    port: u16,
    signer_cert: PathBuf,
    grants: PathBuf,
    refresh_token: String,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let python = crate::require_program("python3", "python3");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "signer.key",
                "-out",
                "signer.crt",
                "-days",
                "2",
                "-subj",
                "/CN=ukpm-test-token-signer",
            ],
        );
        let script = dir.join("tokenserver.py");
        write(&script, TOKEN_SERVER_PY.as_bytes());
        let port_file = dir.join("token.port");
        let grants = dir.join("token-requests.log");
        let refresh_token = format!("ukpm-refresh-{}-{}", std::process::id(), nanos());
        let mut command = Command::new(python);
        command
            .arg("-u")
            .arg(&script)
            .arg(dir.join("signer.key"))
            .arg(dir.join("signer.crt"))
            .arg(&port_file)
            .arg(&grants)
            .args([TOKEN_SERVICE, TOKEN_ISSUER, user, password, &refresh_token])
            .current_dir(dir);
        let mut process = Process::spawn("token server", command, dir.join("tokenserver.log"), true);
        let port = poll_until(READY_TIMEOUT, || {
            if let Some(status) = process.exited() {
                panic!(
                    "the token server exited with {status} before listening:\n{}",
                    process.output()
                );
            }
            fs_err::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
        })
        .unwrap_or_else(|| {
            panic!(
                "the token server did not start within {READY_TIMEOUT:?}:\n{}",
                process.output()
            )
        });
        TokenServer {
            process,
            port,
            signer_cert: dir.join("signer.crt"),
            grants,
            refresh_token,
        }
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        // The process guard kills it; this only keeps its output for a failing test's eyes.
        if std::thread::panicking() {
            eprintln!("token server output:\n{}", self.process.output());
        }
    }
}

/// A child process that is killed and reaped when dropped, its output going to a file.
struct Process {
    name: &'static str,
    child: Child,
    output: PathBuf,
    /// Held open so a child that watches its stdin dies with us even if we are killed.
    stdin: Option<ChildStdin>,
}

impl Process {
    fn spawn(name: &'static str, mut command: Command, output: PathBuf, watch_stdin: bool) -> Process {
        let file = fs_err::File::create(&output)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_file();
        let stderr = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share {}: {e}", output.display()));
        command
            .stdin(if watch_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let stdin = child.stdin.take();
        Process {
            name,
            child,
            output,
            stdin,
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn output(&self) -> String {
        fs_err::read_to_string(&self.output)
            .unwrap_or_else(|e| format!("({} output unreadable: {e})", self.name))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway CA and a leaf for 127.0.0.1 signed by it, in `dir`; returns the CA's PEM.
///
/// The leaf says `CA:FALSE` explicitly: rustls refuses a CA certificate used as an end entity.
fn make_tls_certs(dir: &Path) -> Vec<u8> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=ukpm-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    write(
        &dir.join("leaf.ext"),
        b"basicConstraints=critical,CA:FALSE\n\
          subjectAltName=IP:127.0.0.1,DNS:localhost\n\
          keyUsage=critical,digitalSignature\n\
          extendedKeyUsage=serverAuth\n",
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
    );
    fs_err::read(dir.join("ca.crt")).unwrap_or_else(|e| panic!("{e}"))
}

fn openssl(dir: &Path, args: &[&str]) {
    let program = crate::require_program("openssl", "openssl");
    run(Command::new(program).args(args).current_dir(dir));
}

/// Runs a command to completion; its stdout, or a panic with its stderr.
fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("ukpm-registry-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"))
}

fn write(path: &Path, contents: &[u8]) {
    fs_err::write(path, contents).unwrap_or_else(|e| panic!("{e}"));
}

/// A port that was free a moment ago. Whoever binds it next may race us; callers retry.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn yaml_path(path: &Path) -> String {
    yaml_quote(&path.to_string_lossy())
}

/// The token server, written to the registry's temp dir at start.
///
/// Arguments: signing key, signing cert, port file, request log, service, issuer, user,
/// password, refresh token. It binds 127.0.0.1:0 and writes the port it got to the port file, so
/// it never races for a port, and exits when its stdin closes (the harness holds it).
const TOKEN_SERVER_PY: &str = r#"
"""A Docker/OCI bearer-token endpoint for ukpm's tests (stdlib only; RS256 via the openssl CLI).

GET  /token?service=S&scope=repository:NAME:ACTIONS...   optional Basic auth
POST /token  grant_type=password (username, password) | refresh_token (refresh_token)
The one user gets the actions it asks for; anonymous callers get pull only; bad credentials 401.
Each answer is logged to the request log as: grant TAB user TAB service TAB requested TAB granted.
"""
import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KEY, CERT, PORT_FILE, REQUEST_LOG, SERVICE, ISSUER, USER, PASSWORD, REFRESH = sys.argv[1:10]
ACTIONS = ("pull", "push", "delete")
LOG_LOCK = threading.Lock()


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def compact(value):
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


CERT_DER = subprocess.run(
    ["openssl", "x509", "-in", CERT, "-outform", "DER"], stdout=subprocess.PIPE, check=True
).stdout
# The registry trusts the key because the certificate in x5c is in its rootcertbundle.
JOSE_HEADER = b64url(compact({"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(CERT_DER).decode("ascii")]}))


def jwt(claims):
    signing_input = JOSE_HEADER + "." + b64url(compact(claims))
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", KEY],
        input=signing_input.encode("ascii"),
        stdout=subprocess.PIPE,
        check=True,
    ).stdout
    return signing_input + "." + b64url(signature)


def parse_scopes(values):
    """(type, name, actions) for each space-separated scope in each scope parameter."""
    scopes = []
    for value in values:
        for scope in value.split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                scopes.append((kind, name, [a for a in actions.split(",") if a]))
    return scopes


def render(scopes):
    return " ".join(f"{kind}:{name}:{','.join(actions)}" for kind, name, actions in scopes) or "-"


def first(params, key):
    values = params.get(key)
    return values[0] if values else None


def record(grant, user, service, requested, granted):
    fields = [grant, user or "-", service or "-", render(requested), "REFUSED" if granted is None else render(granted)]
    with LOG_LOCK, open(REQUEST_LOG, "a", encoding="utf-8") as log:
        log.write("\t".join(fields) + "\n")


class TokenHandler(BaseHTTPRequestHandler):
    server_version = "ukpm-test-token/1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path != "/token":
            return self.answer(404, {"error": "not_found"})
        user, ok = None, True
        header = self.headers.get("Authorization") or ""
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                ok = False
            else:
                try:
                    user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
                except ValueError:
                    user, password = None, None
                ok = user == USER and password == PASSWORD
        self.issue("get", parse_qs(url.query), user, ok)

    def do_POST(self):
        if urlsplit(self.path).path != "/token":
            return self.answer(404, {"error": "not_found"})
        length = int(self.headers.get("Content-Length") or "0")
        form = parse_qs(self.rfile.read(length).decode("utf-8"))
        grant = first(form, "grant_type")
        if grant == "password":
            user = first(form, "username")
            ok = user == USER and first(form, "password") == PASSWORD
        elif grant == "refresh_token":
            ok = first(form, "refresh_token") == REFRESH
            user = USER if ok else None
        else:
            return self.answer(400, {"error": "unsupported_grant_type"})
        self.issue(grant, form, user, ok)

    def issue(self, grant, params, user, ok):
        requested = parse_scopes(params.get("scope", []))
        service = first(params, "service")
        if not ok:
            record(grant, user, service, requested, None)
            return self.answer(401, {"error": "invalid_grant"}, [("WWW-Authenticate", 'Basic realm="ukpm-test-token"')])
        granted = [
            (kind, name, [a for a in actions if a in ACTIONS and (user or a == "pull")])
            for kind, name, actions in requested
            if kind == "repository"
        ]
        now = int(time.time())
        token = jwt({
            "iss": ISSUER,
            "sub": user or "",
            "aud": SERVICE,
            "iat": now,
            "nbf": now - 60,
            "exp": now + 600,
            "jti": secrets.token_hex(12),
            "access": [{"type": kind, "name": name, "actions": actions} for kind, name, actions in granted],
        })
        body = {"token": token, "access_token": token, "expires_in": 600,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if grant == "password" and first(params, "access_type") == "offline":
            body["refresh_token"] = REFRESH
        record(grant, user, service, requested, granted)
        self.answer(200, body)

    def answer(self, status, body, headers=()):
        data = compact(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def exit_when_stdin_closes():
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    with open(PORT_FILE + ".tmp", "w", encoding="ascii") as f:
        f.write(str(server.server_address[1]))
    os.replace(PORT_FILE + ".tmp", PORT_FILE)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.serve_forever()


main()
"#;
