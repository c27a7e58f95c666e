//! `ClientConfig::insecure_tls` (KraftKit's `verify_ssl: false`): a registry with a certificate
//! from an unknown CA is reached over TLS without verification, and only that host.

use std::sync::Arc;
use std::time::Duration;

use ukpm_registry::{Anonymous, Client, ClientConfig};
use ukpm_test::registry::Registry;

fn client(insecure_tls: Vec<String>) -> Client {
    Client::new(
        ClientConfig {
            insecure_tls,
            retries: 0,
            backoff: Duration::from_millis(10),
            ..ClientConfig::default()
        },
        Arc::new(Anonymous),
    )
    .expect("a client")
}

#[tokio::test]
async fn an_insecure_host_connects_without_the_ca_and_others_are_still_verified() {
    let registry = Registry::tls();
    let other = Registry::tls();
    // 127.1 is not "localhost" and not 127.0.0.1: a plain host name as far as the client cares.
    let host = format!("127.1:{}", registry.port());
    let other_host = format!("127.1:{}", other.port());

    let insecure = client(vec![host.clone()]);
    assert_eq!(insecure.base_url(&host).await, format!("https://{host}/v2/"));
    insecure
        .ping(&host)
        .await
        .expect("a verify_ssl: false host connects without its CA");
    let err = insecure
        .ping(&other_host)
        .await
        .expect_err("another host with an unknown CA is still refused");
    assert!(err.is_network(), "{err:?}");

    let verifying = client(Vec::new());
    let err = verifying
        .ping(&host)
        .await
        .expect_err("without the entry the unknown CA is refused");
    assert!(err.is_network(), "{err:?}");
}

#[tokio::test]
async fn an_insecure_loopback_registry_is_probed_and_reached_over_tls() {
    let registry = Registry::tls();
    let insecure = client(vec![registry.host()]);
    insecure
        .ping(&registry.host())
        .await
        .expect("a verify_ssl: false loopback TLS registry is reachable");
    assert!(insecure.base_url(&registry.host()).await.starts_with("https://"));
}

/// A registry serving its own bearer tokens over TLS with a certificate from an unknown CA (as a
/// self-signed Harbor does): Python's `http.server`, since docker-registry's token realm is
/// another program. Returns the child, the port, and the log of paths it answered.
fn self_signed_registry_with_its_own_token_realm(
    dir: &std::path::Path,
    cert_dir: &std::path::Path,
) -> (std::process::Child, u16, std::path::PathBuf) {
    let python = ukpm_test::require_program("python3", "python3");
    let log = dir.join("requests.log");
    let script = dir.join("server.py");
    fs_err::write(
        &script,
        r#"import http.server, ssl, sys
cert, key, log = sys.argv[1], sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        with open(log, "a") as f: f.write(self.path.split("?")[0] + "\n")
        port = self.server.server_address[1]
        if self.path.startswith("/token"):
            body = b'{"token":"fake-token"}'
            self.send_response(200)
        elif self.headers.get("Authorization") == "Bearer fake-token":
            body = b"{}"
            self.send_response(200)
        else:
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}'
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="https://127.0.0.1:%d/token",service="fake"' % port)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#,
    )
    .unwrap();
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .arg(cert_dir.join("leaf.crt"))
        .arg(cert_dir.join("leaf.key"))
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().parse().expect("the server prints its port");
    (child, port, log)
}

#[tokio::test]
async fn a_token_realm_on_the_insecure_host_is_asked_without_verification_too() {
    let certs = Registry::tls();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, log) = self_signed_registry_with_its_own_token_realm(dir.path(), certs.dir());
    let host = format!("127.0.0.1:{port}");
    let result = client(vec![host.clone()]).ping(&host).await;
    let refused = client(Vec::new()).ping(&host).await;
    let _ = child.kill();
    let _ = child.wait();
    result.expect("the registry and its realm are both reached without verification");
    let asked = fs_err::read_to_string(&log).unwrap_or_default();
    assert!(asked.contains("/token"), "the realm was never asked: {asked}");
    assert!(
        refused.is_err(),
        "without the entry the unknown CA must be refused"
    );
}
