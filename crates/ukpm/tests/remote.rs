//! The library's pull and push against a real registry, watched through a `Reporter`: the
//! progress events are a contract with front ends (bars, JSON lines), so they are checked here.

use std::sync::{Arc, Mutex};

use ukpm::{
    Architecture, PackOptions, PackageManager, Plat, PullOptions, Reporter, Skip, Subject, Target, TransferId,
};
use ukpm_test::registry::Registry;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    next: std::sync::atomic::AtomicU64,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    fn push(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

/// `kernel:sha256:...`: what the blob is, and which.
fn label(subject: &Subject) -> String {
    let digest = subject.digest.map(|d| d.to_string()).unwrap_or_default();
    format!("{}:{digest}", subject.kind)
}

impl Reporter for Recorder {
    fn on_transfer_start(&self, subject: &Subject) -> TransferId {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.push(format!("start {id} {} {:?}", label(subject), subject.size));
        TransferId(id)
    }
    fn on_transfer_progress(&self, id: TransferId, done: u64) {
        self.push(format!("bytes {} {done}", id.0));
    }
    fn on_transfer_complete(&self, id: TransferId) {
        self.push(format!("done {}", id.0));
    }
    fn on_transfer_skipped(&self, subject: &Subject, why: &Skip) {
        let why = match why {
            Skip::InStore => "already in the store".to_string(),
            Skip::InRegistry => "already in the registry".to_string(),
            Skip::Mounted { from } => format!("from {from} mounted"),
            other => format!("{other:?}"),
        };
        self.push(format!("skipped {} {why}", label(subject)));
    }
}

fn manager(dir: &std::path::Path, recorder: &Arc<Recorder>) -> PackageManager {
    PackageManager::builder()
        .store_dir(dir)
        .reporter(recorder.clone())
        .credentials(Arc::new(ukpm::registry::Anonymous))
        .build()
        .unwrap()
}

/// For every blob started: its last byte count equals its total, and it is finished.
fn assert_complete(events: &[String]) -> usize {
    let mut blobs = 0;
    for event in events.iter().filter(|e| e.starts_with("start ")) {
        let parts: Vec<&str> = event.split(' ').collect();
        let (id, total) = (parts[1], parts[3]);
        let last = events
            .iter()
            .rfind(|e| e.starts_with(&format!("bytes {id} ")))
            .unwrap_or_else(|| panic!("no bytes for {event}: {events:?}"));
        assert_eq!(
            format!("Some({})", last.rsplit(' ').next().unwrap()),
            total,
            "{events:?}"
        );
        assert!(
            events.contains(&format!("done {id}")),
            "{event} never finished: {events:?}"
        );
        blobs += 1;
    }
    blobs
}

#[test]
fn pull_and_push_report_every_blob_byte_accurately() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    fs_err::write(&kernel, vec![7u8; 300 << 10]).unwrap();
    let recorder = Arc::new(Recorder::default());
    let source = manager(&dir.path().join("a"), &recorder);
    let name = format!("{}/watch/me:v1", registry.host()).parse().unwrap();
    runtime
        .block_on(source.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(name),
        ))
        .unwrap();
    recorder.take();

    let reference = format!("{}/watch/me:v1", registry.host()).parse().unwrap();
    let report = runtime.block_on(source.push(&reference, None)).unwrap();
    assert_eq!(report.uploaded, 2);
    let events = recorder.take();
    assert_eq!(assert_complete(&events), 2, "{events:?}");

    runtime.block_on(source.push(&reference, None)).unwrap();
    let events = recorder.take();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.ends_with("already in the registry"))
            .count(),
        2,
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e.starts_with("start ")), "{events:?}");

    let sibling = format!("{}/watch/other:v1", registry.host()).parse().unwrap();
    let report = runtime.block_on(source.push(&reference, Some(&sibling))).unwrap();
    assert_eq!(report.mounted, 2, "{report:?}");
    assert_eq!(
        recorder.take().iter().filter(|e| e.ends_with(" mounted")).count(),
        2
    );

    let target = manager(&dir.path().join("b"), &recorder);
    let options = PullOptions {
        all_platforms: true,
        ..PullOptions::default()
    };
    runtime.block_on(target.pull(&reference, &options)).unwrap();
    let events = recorder.take();
    assert_eq!(assert_complete(&events), 2, "{events:?}");
    assert!(
        events.iter().any(|e| e.ends_with("Some(308736)")),
        "the kernel layer (300 KiB + header + trailer): {events:?}"
    );

    runtime.block_on(target.pull(&reference, &options)).unwrap();
    let events = recorder.take();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.ends_with("already in the store"))
            .count(),
        2,
        "{events:?}"
    );
}

#[test]
fn an_interrupted_pull_resumes_from_what_it_has_and_refetches_a_bad_prefix() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    let bytes: Vec<u8> = (0..(512u32 << 10)).map(|i| (i % 251) as u8).collect();
    fs_err::write(&kernel, &bytes).unwrap();
    let recorder = Arc::new(Recorder::default());
    let source = manager(&dir.path().join("a"), &recorder);
    let reference: ukpm::Reference = format!("{}/resume/me:v1", registry.host()).parse().unwrap();
    let packed = runtime
        .block_on(source.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(reference.clone()),
        ))
        .unwrap();
    runtime.block_on(source.push(&reference, None)).unwrap();
    let manifest: ukpm::types::Manifest = serde_json::from_slice(
        &fs_err::read(
            dir.path()
                .join("a/blobs/sha256")
                .join(packed.manifest.digest.hex()),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest.layers[0].clone();
    let layer_bytes = fs_err::read(dir.path().join("a/blobs/sha256").join(layer.digest.hex())).unwrap();
    let options = PullOptions {
        all_platforms: true,
        ..PullOptions::default()
    };

    for (store, prefix) in [
        ("good", layer_bytes[..400 << 10].to_vec()),
        ("bad", vec![0xAA; 400 << 10]),
    ] {
        // What a pull killed after 400 KiB of the kernel layer leaves behind.
        let root = dir.path().join(store);
        fs_err::create_dir_all(root.join("ingest")).unwrap();
        fs_err::write(
            root.join("ingest")
                .join(format!("partial-{}", layer.digest.hex())),
            &prefix,
        )
        .unwrap();
        let target = manager(&root, &recorder);
        recorder.take();
        runtime.block_on(target.pull(&reference, &options)).unwrap();
        let events = recorder.take();
        let start = events
            .iter()
            .find(|e| e.contains(&layer.digest.to_string()) && e.starts_with("start "))
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        let first: u64 = events
            .iter()
            .find(|e| e.starts_with(&format!("bytes {start} ")))
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let fsck = runtime.block_on(target.fsck(false)).unwrap();
        assert!(
            fsck.report.problems.is_empty(),
            "{store}: {:?}",
            fsck.report.problems
        );
        assert_eq!(
            fs_err::read(root.join("blobs/sha256").join(layer.digest.hex())).unwrap(),
            layer_bytes
        );
        if store == "good" {
            assert!(
                first > 400 << 10,
                "the good prefix was not resumed: first progress at {first}"
            );
        } else {
            // The bad prefix was tried, refused whole, and the blob fetched again from the start.
            assert!(
                events
                    .iter()
                    .any(|e| e == &format!("bytes {start} {}", layer.size)),
                "{events:?}"
            );
        }
        assert!(
            !root
                .join("ingest")
                .join(format!("partial-{}", layer.digest.hex()))
                .exists()
        );
    }
}

#[test]
fn a_large_blob_is_pulled_in_ranges_and_a_killed_ranged_pull_fetches_only_what_is_missing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    let bytes: Vec<u8> = (0..(20u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs_err::write(&kernel, &bytes).unwrap();
    let recorder = Arc::new(Recorder::default());
    let source = manager(&dir.path().join("a"), &recorder);
    let reference: ukpm::Reference = format!("{}/ranged/me:v1", registry.host()).parse().unwrap();
    let packed = runtime
        .block_on(source.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(reference.clone()),
        ))
        .unwrap();
    runtime.block_on(source.push(&reference, None)).unwrap();
    let blobs = dir.path().join("a/blobs/sha256");
    let manifest: ukpm::types::Manifest =
        serde_json::from_slice(&fs_err::read(blobs.join(packed.manifest.digest.hex())).unwrap()).unwrap();
    let layer = manifest.layers[0].clone();
    let layer_bytes = fs_err::read(blobs.join(layer.digest.hex())).unwrap();
    let options = PullOptions {
        all_platforms: true,
        ..PullOptions::default()
    };

    // A whole pull: the layer arrives in several ranges, out of order, and verifies.
    let fresh = dir.path().join("fresh");
    runtime
        .block_on(manager(&fresh, &recorder).pull(&reference, &options))
        .unwrap();
    assert_eq!(
        fs_err::read(fresh.join("blobs/sha256").join(layer.digest.hex())).unwrap(),
        layer_bytes
    );

    // What a ranged pull killed midway leaves: the first half landed and is recorded.
    let half = layer.size / 2;
    let resumed = dir.path().join("resumed");
    fs_err::create_dir_all(resumed.join("ingest")).unwrap();
    let partial = resumed
        .join("ingest")
        .join(format!("partial-{}", layer.digest.hex()));
    let mut sparse = layer_bytes.clone();
    sparse[half as usize..].fill(0);
    fs_err::write(&partial, &sparse).unwrap();
    fs_err::write(
        resumed
            .join("ingest")
            .join(format!("partial-{}.ranges", layer.digest.hex())),
        format!("0 {}\n", half - 1),
    )
    .unwrap();
    recorder.take();
    runtime
        .block_on(manager(&resumed, &recorder).pull(&reference, &options))
        .unwrap();
    let events = recorder.take();
    let start = events
        .iter()
        .find(|e| e.contains(&layer.digest.to_string()) && e.starts_with("start "))
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    let first: u64 = events
        .iter()
        .find(|e| e.starts_with(&format!("bytes {start} ")))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first, half, "the landed half was counted, not fetched again");
    assert_eq!(
        fs_err::read(resumed.join("blobs/sha256").join(layer.digest.hex())).unwrap(),
        layer_bytes
    );
    assert_eq!(fs_err::read_dir(resumed.join("ingest")).unwrap().count(), 0);

    // A record that lies (the bytes are wrong) is caught whole and the blob fetched again.
    let lied = dir.path().join("lied");
    fs_err::create_dir_all(lied.join("ingest")).unwrap();
    fs_err::write(
        lied.join("ingest")
            .join(format!("partial-{}", layer.digest.hex())),
        vec![0xEEu8; layer.size as usize],
    )
    .unwrap();
    fs_err::write(
        lied.join("ingest")
            .join(format!("partial-{}.ranges", layer.digest.hex())),
        format!("0 {}\n", half - 1),
    )
    .unwrap();
    runtime
        .block_on(manager(&lied, &recorder).pull(&reference, &options))
        .unwrap();
    let fsck = runtime.block_on(manager(&lied, &recorder).fsck(false)).unwrap();
    assert!(fsck.report.problems.is_empty(), "{:?}", fsck.report.problems);
}

#[test]
fn a_blob_pushed_once_is_mounted_into_other_repositories_of_the_registry() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    fs_err::write(&kernel, vec![3u8; 100 << 10]).unwrap();
    let recorder = Arc::new(Recorder::default());
    let manager = manager(&dir.path().join("store"), &recorder);
    let target = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
    let first: ukpm::Reference = "app:1".parse().unwrap();
    runtime
        .block_on(manager.pack(&target, &PackOptions::new(first.clone())))
        .unwrap();
    let mut other = target.clone();
    other.command = vec!["other".into()];
    let second: ukpm::Reference = "other:1".parse().unwrap();
    runtime
        .block_on(manager.pack(&other, &PackOptions::new(second.clone())))
        .unwrap();

    let to = |repo: &str| -> ukpm::Reference { format!("{}/{repo}:1", registry.host()).parse().unwrap() };
    let report = runtime
        .block_on(manager.push(&first, Some(&to("team/a"))))
        .unwrap();
    assert_eq!((report.uploaded, report.mounted), (2, 0));
    // Same content, another repository: both blobs mount, nothing is uploaded.
    let report = runtime
        .block_on(manager.push(&first, Some(&to("team/b"))))
        .unwrap();
    assert_eq!((report.uploaded, report.mounted), (0, 2), "{report:?}");
    // Another package sharing the kernel: the kernel mounts, only its config is uploaded.
    let report = runtime
        .block_on(manager.push(&second, Some(&to("team/c"))))
        .unwrap();
    assert_eq!((report.uploaded, report.mounted), (1, 1), "{report:?}");
}

#[test]
fn a_repush_and_a_repull_make_the_minimum_of_requests() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    fs_err::write(&kernel, vec![4u8; 64 << 10]).unwrap();
    let recorder = Arc::new(Recorder::default());
    let reference: ukpm::Reference = format!("{}/count/me:v1", registry.host()).parse().unwrap();
    let source = manager(&dir.path().join("a"), &recorder);
    runtime
        .block_on(source.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(reference.clone()),
        ))
        .unwrap();
    runtime.block_on(source.push(&reference, None)).unwrap();
    let options = PullOptions {
        all_platforms: true,
        ..PullOptions::default()
    };
    runtime
        .block_on(manager(&dir.path().join("b"), &recorder).pull(&reference, &options))
        .unwrap();

    // Each run is a new process in real life: a new client, which knows nothing of the registry.
    let seen = registry.requests().len();
    let again = manager(&dir.path().join("a"), &recorder);
    let report = runtime.block_on(again.push(&reference, None)).unwrap();
    assert_eq!((report.uploaded, report.manifests_written), (0, 0));
    let repush: Vec<String> = registry.requests()[seen..].to_vec();
    // A HEAD per blob (config, kernel), the manifest by digest and the tag; no scheme probe
    // (`GET /v2/`): the first request tells the scheme.
    assert!(repush.iter().all(|r| r.starts_with("HEAD ")), "{repush:?}");
    assert_eq!(repush.len(), 4, "{repush:?}");

    let seen = registry.requests().len();
    runtime
        .block_on(manager(&dir.path().join("b"), &recorder).pull(&reference, &options))
        .unwrap();
    let repull: Vec<String> = registry.requests()[seen..].to_vec();
    // The index by tag, and nothing else: the manifest and blobs are all here already.
    assert_eq!(repull.len(), 1, "{repull:?}");
    assert!(repull.iter().all(|r| !r.contains("/blobs/")), "{repull:?}");
}

/// A registry that serves one manifest document, whatever is asked: a liar no real registry
/// imitates (distribution validates what is pushed), so a small fake stands in.
fn serve_one_document(media_type: &'static str, body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let digest = ukpm::Digest::of(&body);
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
            let head = request_line.starts_with("HEAD ");
            let (status, content): (&str, &[u8]) = if request_line.contains("/manifests/") {
                ("200 OK", &body)
            } else {
                ("200 OK", b"{}")
            };
            let mut reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {media_type}\r\nDocker-Content-Digest: {digest}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            )
            .into_bytes();
            if !head {
                reply.extend_from_slice(content);
            }
            let _ = stream.write_all(&reply);
        }
    });
    addr
}

#[test]
fn a_malformed_index_from_a_registry_is_the_registrys_fault_and_nothing_is_stored() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = serve_one_document(
        "application/vnd.oci.image.index.v1+json",
        br#"{"schemaVersion":2,"manifests":"not a list"}"#.to_vec(),
    );
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let manager = manager(&dir.path().join("store"), &recorder);
    let reference: ukpm::Reference = format!("{host}/liar/app:v1").parse().unwrap();
    let err = runtime
        .block_on(manager.pull(&reference, &PullOptions::default()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ukpm::Error::BadRemoteDocument {
                what: "image index",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ukpm::ErrorKind::Protocol);
    assert_eq!(err.origin(), ukpm::Origin::Registry);
    assert!(
        err.to_string()
            .contains("registry served a malformed image index"),
        "{err}"
    );
    let listed = runtime.block_on(manager.list(&ukpm::Query::default())).unwrap();
    assert!(listed.is_empty(), "nothing of a malformed pull is visible");
}

/// A push whose blob upload is cut mid-body: docker-registry then forgets the session (the next
/// PUT on it is 404 `BLOB_UPLOAD_INVALID`), so the retry must open a new session, not resend to
/// the dead one. The proxy cuts the first upload that passes 64 KiB, and only that one.
#[test]
fn an_upload_cut_mid_body_is_retried_in_a_new_session() {
    use ukpm_test::proxy::{Faults, Proxy};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let proxy = Proxy::start(
        registry.host(),
        Faults::none()
            .drop_mid_upload(1.0)
            .fault_after(64 << 10, 512 << 10)
            .max_cuts(1),
    );
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    fs_err::write(&kernel, vec![3u8; 1 << 20]).unwrap();
    let recorder = Arc::new(Recorder::default());
    let manager = manager(&dir.path().join("store"), &recorder);
    let reference: ukpm::Reference = format!("{}/cut/upload:v1", proxy.addr()).parse().unwrap();
    runtime
        .block_on(manager.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(reference.clone()),
        ))
        .unwrap();
    let report = runtime.block_on(manager.push(&reference, None)).unwrap();
    assert_eq!(report.uploaded, 2, "{report:?}");
    assert!(
        proxy.stats().faults() > 0,
        "the proxy cut no upload: {:?}",
        proxy.stats()
    );
}
