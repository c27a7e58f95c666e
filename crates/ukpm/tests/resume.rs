//! Resume in the same process: a blob body cut mid-response (a sequential or a ranged download)
//! continues with a `Range` request at the byte reached, a chunked upload cut mid-body starts a
//! new session, and the bytes moved stay close to the blob; a registry that lies on the
//! resumption is caught by the digest and nothing is stored.
//!
//! Cuts are deterministic: the fault proxy strikes only connections that carry at least
//! `fault_after`'s minimum (the blobs, not the small documents), and exactly `max_cuts` times.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use ukpm::registry::Anonymous;
use ukpm::{
    Architecture, ClientConfig, Descriptor, Digest, PackOptions, PackageManager, Plat, PullOptions,
    Reference, Target,
};
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;

const MIB: u64 = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn manager(store: &Path, config: ClientConfig) -> PackageManager {
    PackageManager::builder()
        .store_dir(store)
        .credentials(Arc::new(Anonymous))
        .client_config(config)
        .build()
        .unwrap()
}

/// Bytes that do not repeat within a blob, so a piece written at the wrong offset shows.
fn kernel_bytes(len: u64) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// Packs a kernel of `len` bytes as `reference` in a store under `dir`; the store and the
/// kernel layer's descriptor.
fn packed(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    reference: &Reference,
    len: u64,
) -> (PackageManager, Descriptor) {
    let kernel = dir.join("kernel");
    fs_err::write(&kernel, kernel_bytes(len)).unwrap();
    let source = manager(&dir.join("source"), ClientConfig::default());
    let package = runtime
        .block_on(source.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(reference.clone()),
        ))
        .unwrap();
    let manifest: ukpm::types::Manifest = serde_json::from_slice(
        &fs_err::read(
            dir.join("source/blobs/sha256")
                .join(package.manifest.digest.hex()),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest.layers.iter().max_by_key(|l| l.size).unwrap().clone();
    (source, layer)
}

fn all_platforms() -> PullOptions {
    PullOptions {
        all_platforms: true,
        ..PullOptions::default()
    }
}

/// A pull of a `len`-byte kernel through a proxy that cuts three blob responses mid-body
/// completes in one call, and the proxy moves less than 1.3 times the blob.
fn pull_cut_three_times(len: u64) {
    let runtime = runtime();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let direct: Reference = format!("{}/cut/pull:v1", registry.host()).parse().unwrap();
    let (source, layer) = packed(&runtime, dir.path(), &direct, len);
    runtime.block_on(source.push(&direct, None)).unwrap();

    // Only connections past 1 MiB are cut: the blob bodies, never the small documents.
    let proxy = Proxy::start(
        registry.host(),
        Faults::none()
            .drop_mid_body(1.0)
            .fault_after(MIB, 2 * MIB)
            .max_cuts(3),
    );
    let through: Reference = format!("{}/cut/pull:v1", proxy.addr()).parse().unwrap();
    let store = dir.path().join("pulled");
    runtime
        .block_on(manager(&store, ClientConfig::default()).pull(&through, &all_platforms()))
        .expect("a pull cut three times completes in one process");
    let stats = proxy.stats();
    assert_eq!(stats.dropped, 3, "{stats}");
    assert!(
        (stats.bytes_down as f64) < 1.3 * layer.size as f64,
        "{} bytes moved for a {}-byte blob: {stats}",
        stats.bytes_down,
        layer.size
    );
    let stored = fs_err::read(store.join("blobs/sha256").join(layer.digest.hex())).unwrap();
    assert_eq!(Digest::of(&stored), layer.digest);
    let fsck = runtime
        .block_on(manager(&store, ClientConfig::default()).fsck(false))
        .unwrap();
    assert!(fsck.report.problems.is_empty(), "{:?}", fsck.report.problems);
    assert_eq!(fs_err::read_dir(store.join("ingest")).unwrap().count(), 0);
}

#[test]
fn a_sequential_pull_cut_three_times_mid_body_resumes_in_the_same_process() {
    pull_cut_three_times(6 * MIB);
}

#[test]
fn a_ranged_pull_cut_three_times_mid_body_resumes_in_the_same_process() {
    pull_cut_three_times(40 * MIB);
}

/// A chunked upload whose PATCHes are cut mid-body three times: docker-registry ends such a
/// session (its file no longer matches the offset it recorded), so the client asks the
/// session's status, learns it is gone, and starts over in a new one; the cuts strike early,
/// so little is sent twice.
#[test]
fn a_chunked_upload_cut_three_times_mid_body_completes() {
    let runtime = runtime();
    let registry = Registry::plain();
    let proxy = Proxy::start(
        registry.host(),
        Faults::none()
            .drop_mid_upload(1.0)
            .fault_after(64 << 10, 256 << 10)
            .max_cuts(3),
    );
    let dir = tempfile::tempdir().unwrap();
    let reference: Reference = format!("{}/cut/upload:v1", proxy.addr()).parse().unwrap();
    let (_, layer) = packed(&runtime, dir.path(), &reference, 6 * MIB);
    let chunked = ClientConfig {
        chunk_threshold: MIB,
        chunk_size: MIB,
        ..ClientConfig::default()
    };
    let report = runtime
        .block_on(manager(&dir.path().join("source"), chunked).push(&reference, None))
        .expect("a push cut three times completes");
    assert_eq!(report.uploaded, 2, "{report:?}");
    let stats = proxy.stats();
    assert_eq!(stats.dropped_up, 3, "{stats}");
    assert!(
        (stats.bytes_up as f64) < 1.3 * layer.size as f64,
        "{} bytes sent for a {}-byte blob: {stats}",
        stats.bytes_up,
        layer.size
    );
    // What the registry holds is the blob.
    let direct: Reference = format!("{}/cut/upload:v1", registry.host()).parse().unwrap();
    let check = dir.path().join("check");
    runtime
        .block_on(manager(&check, ClientConfig::default()).pull(&direct, &all_platforms()))
        .unwrap();
    let stored = fs_err::read(check.join("blobs/sha256").join(layer.digest.hex())).unwrap();
    assert_eq!(Digest::of(&stored), layer.digest);
}

/// Serves the images of an OCI layout (`root`) under any repository, over plain HTTP, one
/// request per connection. Every response for `liar` (a blob) is cut after half its body;
/// a request that starts where an earlier response was cut (a resumption) gets other bytes.
/// A liar no real registry imitates, so a small server stands in.
fn serve_and_lie(root: &Path, tag_target: Descriptor, liar: Digest) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let blobs = root.join("blobs/sha256");
    let cut_at: Arc<Mutex<HashSet<u64>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (blobs, cut_at, tag_target) = (blobs.clone(), cut_at.clone(), tag_target.clone());
            std::thread::spawn(move || answer(stream, &blobs, &cut_at, &tag_target, liar));
        }
    });
    addr
}

fn answer(
    mut stream: std::net::TcpStream,
    blobs: &Path,
    cut_at: &Mutex<HashSet<u64>>,
    tag_target: &Descriptor,
    liar: Digest,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = value.trim().split_once('-').unwrap();
            range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().ok()));
        }
        line.clear();
    }
    let mut words = request_line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let last = path.rsplit('/').next().unwrap_or("");
    let digest = if path.contains("/manifests/") && !last.starts_with("sha256:") {
        Some(tag_target.digest)
    } else {
        last.parse::<Digest>().ok()
    };
    let reply = |stream: &mut std::net::TcpStream, status: &str, headers: String, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        if method != "HEAD" {
            let _ = stream.write_all(body);
        }
    };
    let Some(bytes) = digest.and_then(|d| fs_err::read(blobs.join(d.hex())).ok()) else {
        return reply(&mut stream, "404 Not Found", String::new(), b"");
    };
    let digest = digest.unwrap();
    if path.contains("/manifests/") {
        #[derive(serde::Deserialize)]
        struct Typed {
            #[serde(rename = "mediaType")]
            media_type: String,
        }
        let typed: Typed = serde_json::from_slice(&bytes).unwrap();
        let headers = format!(
            "Content-Type: {}\r\nDocker-Content-Digest: {digest}\r\n",
            typed.media_type
        );
        return reply(&mut stream, "200 OK", headers, &bytes);
    }
    let size = bytes.len() as u64;
    let (start, end) = match range {
        Some((a, b)) => (a, b.unwrap_or(size - 1).min(size - 1)),
        None => (0, size - 1),
    };
    let status = if range.is_some() {
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let headers = if range.is_some() {
        format!("Content-Range: bytes {start}-{end}/{size}\r\n")
    } else {
        String::new()
    };
    let body = &bytes[start as usize..=end as usize];
    if digest != liar {
        return reply(&mut stream, status, headers, body);
    }
    let resumed = cut_at.lock().unwrap().contains(&start);
    if resumed {
        let other: Vec<u8> = body.iter().map(|b| b ^ 0x5A).collect();
        return reply(&mut stream, status, headers, &other);
    }
    let half = body.len() / 2;
    cut_at.lock().unwrap().insert(start + half as u64);
    let head = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body[..half]);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn a_registry_that_lies_on_resumption(len: u64) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let name: Reference = "unikraft.org/liar/app:v1".parse().unwrap();
    let (source, layer) = packed(&runtime, dir.path(), &name, len);
    let index = runtime
        .block_on(source.list(&ukpm::Query::default()))
        .unwrap()
        .into_iter()
        .find_map(|p| p.index)
        .expect("the packed index");
    let host = serve_and_lie(&dir.path().join("source"), index, layer.digest);
    let reference: Reference = format!("{host}/liar/app:v1").parse().unwrap();
    let store = dir.path().join("pulled");
    let target = manager(&store, ClientConfig::default());
    let err = runtime
        .block_on(target.pull(&reference, &all_platforms()))
        .expect_err("other bytes on resumption must fail the pull");
    assert_eq!(err.kind(), ukpm::ErrorKind::Integrity, "{err:?}");
    assert!(format!("{err:?}").contains("DigestMismatch"), "{err:?}");
    assert!(
        !store.join("blobs/sha256").join(layer.digest.hex()).exists(),
        "the lie was stored"
    );
    let partials: Vec<_> = fs_err::read_dir(store.join("ingest"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(partials.is_empty(), "{partials:?}");
    assert!(
        runtime
            .block_on(target.list(&ukpm::Query::default()))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_registry_that_lies_on_a_sequential_resumption_fails_the_digest_and_stores_nothing() {
    a_registry_that_lies_on_resumption(3 * MIB);
}

#[test]
fn a_registry_that_lies_on_ranged_resumptions_fails_the_digest_and_stores_nothing() {
    a_registry_that_lies_on_resumption(20 * MIB);
}
