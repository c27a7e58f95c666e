//! `PackageManager::remote_digest` against a registry whose `HEAD` lacks
//! `Docker-Content-Digest` (allowed by the distribution spec): the digest then comes from the
//! bytes of a `GET`. No real registry omits the header, so a small fake stands in.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

use ukpm::{Digest, PackageManager, Reference};

/// Serves `body` for every manifest request, without `Docker-Content-Digest`; records each
/// request line.
fn serve_without_digest_header(body: &'static [u8]) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap_or_default();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            log.lock().unwrap().push(request_line.trim_end().to_string());
            let content: &[u8] = if request_line.contains("/manifests/") {
                body
            } else {
                b"{}"
            };
            let mut reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            )
            .into_bytes();
            if !request_line.starts_with("HEAD ") {
                reply.extend_from_slice(content);
            }
            let _ = stream.write_all(&reply);
        }
    });
    (addr, seen)
}

#[test]
fn a_head_without_the_digest_header_falls_back_to_hashing_a_get() {
    const INDEX: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let (host, seen) = serve_without_digest_header(INDEX);
    let dir = tempfile::tempdir().unwrap();
    let manager = PackageManager::builder()
        .store_dir(dir.path())
        .credentials(Arc::new(ukpm::registry::Anonymous))
        .build()
        .unwrap();
    let reference: Reference = format!("{host}/uk/app:v1").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = runtime.block_on(manager.remote_digest(&reference, None)).unwrap();
    assert_eq!(digest, Digest::of(INDEX));
    let seen = seen.lock().unwrap().clone();
    let manifests: Vec<&String> = seen.iter().filter(|r| r.contains("/manifests/")).collect();
    assert_eq!(manifests.len(), 2, "{seen:?}");
    assert!(
        manifests[0].starts_with("HEAD ") && manifests[1].starts_with("GET "),
        "{seen:?}"
    );
}
