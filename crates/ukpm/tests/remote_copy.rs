//! `PackageManager::copy` through faulty links: uploads in chunks whose bodies are ranged GETs
//! on the source, read on from where a cut source connection stopped, so the destination never
//! sees a chunk cut short. The destination ends with the source's exact documents and blobs.

use std::sync::Arc;

use ukpm::registry::{Anonymous, Client};
use ukpm::{
    Architecture, ClientConfig, Digest, PackOptions, PackageManager, Plat, Reference, RemoteCopyOptions,
    Target,
};
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;

const MIB: u64 = 1 << 20;

#[test]
fn a_chunked_copy_reads_on_where_the_source_broke_off() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = (Registry::plain(), Registry::plain());
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    let bytes: Vec<u8> = (0..6 * MIB as usize).map(|i| (i * 31 % 251) as u8).collect();
    fs_err::write(&kernel, &bytes).unwrap();
    let packer = PackageManager::builder()
        .store_dir(dir.path().join("store"))
        .credentials(Arc::new(Anonymous))
        .build()
        .unwrap();
    let source: Reference = format!("{}/uk/chunky:1", a.host()).parse().unwrap();
    runtime
        .block_on(packer.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(source.clone()),
        ))
        .unwrap();
    runtime.block_on(packer.push(&source, None)).unwrap();

    // Chunks of 1 MiB, each body a ranged GET, through a source link that cuts responses.
    let down = Proxy::start(
        a.host(),
        // Every response past 64 KiB is cut, twice in all: the cuts strike whatever order the
        // connections come in.
        Faults::none()
            .seed(7)
            .drop_mid_body(1.0)
            .fault_after(64 << 10, MIB)
            .max_cuts(2),
    );
    let chunked = ClientConfig {
        chunk_threshold: MIB,
        chunk_size: MIB,
        ..ClientConfig::default()
    };
    let from: Reference = format!("{}/uk/chunky:1", down.addr()).parse().unwrap();
    let to: Reference = format!("{}/mirror/chunky:1", b.host()).parse().unwrap();
    let report = runtime
        .block_on(copier(dir.path(), chunked).copy(&from, &to, &RemoteCopyOptions::default()))
        .unwrap();
    assert!(report.digest_kept);
    assert_eq!(report.copied, 2, "{report:?}");
    assert!(down.stats().dropped > 0, "no fault struck: {}", down.stats());
    check_same(&runtime, &source, &to, &report.digest);

    assert!(!dir.path().join("unused").exists(), "a copy touches no store");
}

/// A manager for copies, over a store that must stay untouched.
fn copier(dir: &std::path::Path, config: ClientConfig) -> PackageManager {
    PackageManager::builder()
        .store_dir(dir.join("unused"))
        .credentials(Arc::new(Anonymous))
        .client_config(config)
        .build()
        .unwrap()
}

/// What `target` serves is what `source` serves, document for document and blob for blob.
fn check_same(runtime: &tokio::runtime::Runtime, source: &Reference, target: &Reference, digest: &Digest) {
    let client = Client::new(ClientConfig::default(), Arc::new(Anonymous)).unwrap();
    runtime.block_on(async {
        let theirs = client.get_manifest(source).await.unwrap();
        let ours = client.get_manifest(target).await.unwrap();
        assert_eq!(ours.bytes, theirs.bytes);
        assert_eq!(*digest, theirs.digest);
        let index: ukpm::types::Index = serde_json::from_slice(&theirs.bytes).unwrap();
        for entry in &index.manifests {
            let by_digest: Reference = format!("{}@{}", target.name(), entry.digest).parse().unwrap();
            let manifest = client.get_manifest(&by_digest).await.unwrap();
            let manifest: ukpm::types::Manifest = serde_json::from_slice(&manifest.bytes).unwrap();
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                assert_eq!(
                    client.blob_size(target, blob.digest).await.unwrap(),
                    Some(blob.size)
                );
            }
            let kernel_layer = manifest.layers.iter().find(|l| l.size > 6 * MIB).unwrap();
            let mut download = client.get_blob(target, kernel_layer, 0).await.unwrap();
            let mut all = Vec::new();
            while let Some(chunk) = download.chunk().await.unwrap() {
                all.extend_from_slice(&chunk);
            }
            assert_eq!(Digest::of(&all), kernel_layer.digest);
        }
    });
}

/// Records what a copy reports: starts with their sizes, the last byte count, completions and
/// skips.
#[derive(Default)]
struct Recorder {
    next: std::sync::atomic::AtomicU64,
    started: std::sync::Mutex<Vec<(u64, u64)>>,
    last: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    completed: std::sync::Mutex<Vec<u64>>,
    skipped: std::sync::Mutex<Vec<String>>,
}

impl ukpm::Reporter for Recorder {
    fn on_transfer_start(&self, subject: &ukpm::Subject) -> ukpm::TransferId {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.started.lock().unwrap().push((id, subject.size.unwrap()));
        ukpm::TransferId(id)
    }
    fn on_transfer_progress(&self, id: ukpm::TransferId, done: u64) {
        self.last.lock().unwrap().insert(id.0, done);
    }
    fn on_transfer_complete(&self, id: ukpm::TransferId) {
        self.completed.lock().unwrap().push(id.0);
    }
    fn on_transfer_skipped(&self, subject: &ukpm::Subject, why: &ukpm::Skip) {
        self.skipped
            .lock()
            .unwrap()
            .push(format!("{} {why:?}", subject.kind));
    }
}

#[test]
fn a_copy_reports_every_byte_and_every_mount() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = (Registry::plain(), Registry::plain());
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    fs_err::write(&kernel, vec![9u8; 3 * MIB as usize + 5]).unwrap();
    let packer = copier(dir.path(), ClientConfig::default());
    let source: Reference = format!("{}/uk/watched:1", a.host()).parse().unwrap();
    runtime
        .block_on(packer.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(source.clone()),
        ))
        .unwrap();
    runtime.block_on(packer.push(&source, None)).unwrap();

    let recorder = Arc::new(Recorder::default());
    let watched = PackageManager::builder()
        .store_dir(dir.path().join("unused-too"))
        .credentials(Arc::new(Anonymous))
        .reporter(recorder.clone())
        .client_config(ClientConfig {
            chunk_threshold: MIB,
            chunk_size: MIB,
            ..ClientConfig::default()
        })
        .build()
        .unwrap();
    let to: Reference = format!("{}/uk/watched:1", b.host()).parse().unwrap();
    let report = runtime
        .block_on(watched.copy(&source, &to, &RemoteCopyOptions::default()))
        .unwrap();
    assert_eq!(report.copied, 2, "{report:?}");
    let started = recorder.started.lock().unwrap().clone();
    assert_eq!(started.len(), 2);
    for (id, size) in &started {
        assert_eq!(recorder.last.lock().unwrap().get(id), Some(size), "transfer {id}");
        assert!(recorder.completed.lock().unwrap().contains(id), "transfer {id}");
    }

    // Within one registry: mounts, reported as skips, and no transfer.
    let sibling: Reference = format!("{}/other/watched:1", b.host()).parse().unwrap();
    let report = runtime
        .block_on(watched.copy(&to, &sibling, &RemoteCopyOptions::default()))
        .unwrap();
    assert_eq!((report.mounted, report.copied), (2, 0), "{report:?}");
    assert_eq!(
        recorder.started.lock().unwrap().len(),
        2,
        "a mount started a transfer"
    );
    let skipped = recorder.skipped.lock().unwrap().clone();
    assert_eq!(
        skipped.iter().filter(|s| s.contains("Mounted")).count(),
        2,
        "{skipped:?}"
    );
}
