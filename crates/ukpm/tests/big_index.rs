//! An index of thousands of manifests is pulled with bounded concurrency, in time linear in its
//! size: `pull --all-platforms` of a 2,000-entry index on a real `docker-registry`, watched
//! through the fault proxy, finishes within a generous deadline and never opens more
//! connections than the manager's concurrency allows (each request in flight needs one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use ukpm::registry::{Anonymous, Client, ClientConfig};
use ukpm::{Architecture, PackOptions, PackageManager, Plat, PullOptions, Reference, Target};
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;

const ENTRIES: usize = 2_000;
const CONCURRENCY: usize = 4;

fn manager(dir: &std::path::Path) -> PackageManager {
    PackageManager::builder()
        .store_dir(dir)
        .credentials(Arc::new(Anonymous))
        .concurrency(CONCURRENCY)
        .build()
        .unwrap()
}

/// Pushes an index of `ENTRIES` manifests to `registry` as `big/index:v1`: one packed package,
/// its manifest made `ENTRIES` times distinct by an annotation (all share the kernel and config).
async fn push_big_index(registry: &Registry, dir: &std::path::Path) -> Reference {
    let kernel = dir.join("kernel");
    fs_err::write(&kernel, vec![7u8; 4 << 10]).unwrap();
    let seed: Reference = format!("{}/big/index:seed", registry.host()).parse().unwrap();
    let packer = manager(&dir.join("packer"));
    packer
        .pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(seed.clone()),
        )
        .await
        .unwrap();
    packer.push(&seed, None).await.unwrap();

    let client = Client::new(ClientConfig::default(), Arc::new(Anonymous)).unwrap();
    let index: Value = serde_json::from_slice(&client.get_manifest(&seed).await.unwrap().bytes).unwrap();
    let entry = index["manifests"][0].clone();
    let pinned =
        |digest: &str| -> Reference { format!("{}/big/index@{digest}", registry.host()).parse().unwrap() };
    let manifest: Value = serde_json::from_slice(
        &client
            .get_manifest(&pinned(entry["digest"].as_str().unwrap()))
            .await
            .unwrap()
            .bytes,
    )
    .unwrap();
    let media_type = entry["mediaType"].as_str().unwrap().to_string();
    let entries: Vec<Value> = futures_util::stream::iter(0..ENTRIES)
        .map(|i| {
            let (client, media_type, mut manifest, mut entry) =
                (&client, &media_type, manifest.clone(), entry.clone());
            async move {
                manifest["annotations"]["test.entry"] = json!(i.to_string());
                let bytes = serde_json::to_vec(&manifest).unwrap();
                let digest = ukpm::Digest::of(&bytes).to_string();
                client
                    .put_manifest(&pinned(&digest), media_type, Bytes::from(bytes.clone()))
                    .await?;
                entry["digest"] = json!(digest);
                entry["size"] = json!(bytes.len());
                entry["platform"]["os.version"] = json!(format!("0.{i}"));
                Ok::<_, ukpm::registry::RegistryError>(entry)
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await
        .unwrap();
    let mut big = index.clone();
    big["manifests"] = Value::Array(entries);
    let target: Reference = format!("{}/big/index:v1", registry.host()).parse().unwrap();
    client
        .put_manifest(
            &target,
            index["mediaType"].as_str().unwrap(),
            Bytes::from(serde_json::to_vec(&big).unwrap()),
        )
        .await
        .unwrap();
    target
}

#[test]
fn an_index_of_thousands_is_pulled_with_bounded_connections_in_bounded_time() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(push_big_index(&registry, dir.path()));

    let proxy = Proxy::start(registry.host(), Faults::none());
    let through: Reference = format!("{}/big/index:v1", proxy.addr()).parse().unwrap();
    let puller = manager(&dir.path().join("puller"));
    let options = PullOptions {
        all_platforms: true,
        ..PullOptions::default()
    };
    let started = Instant::now();
    let packages = runtime
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(300), puller.pull(&through, &options)).await
        })
        .expect("the pull of a big index hung")
        .expect("the pull of a big index");
    let took = started.elapsed();
    assert_eq!(packages.len(), ENTRIES);
    let stats = proxy.stats();
    // Every request in flight holds a connection; the slots allow CONCURRENCY at once, plus the
    // scheme probe, the ping-less first GET of the index and a pooled connection or two that the
    // pool opened while another was being handed back.
    assert!(
        stats.connections <= (2 * CONCURRENCY + 4) as u64,
        "{ENTRIES} manifests opened {} connections (concurrency {CONCURRENCY}); {stats}",
        stats.connections
    );
    assert!(took < Duration::from_secs(240), "the pull took {took:?}");
}

/// A config the manifest declares larger than any document may be is refused before a byte of
/// it is fetched (a 5 MiB "config" would otherwise be downloaded whole and read whole by `ls`).
#[test]
fn a_config_over_the_document_cap_is_refused_before_it_is_fetched() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let reference: Reference = format!("{}/big/config:v1", registry.host()).parse().unwrap();
    runtime.block_on(async {
        let client = Client::new(ClientConfig::default(), Arc::new(Anonymous)).unwrap();
        let mut descriptors = Vec::new();
        for (media_type, bytes) in [
            (ukpm::types::media_type::IMAGE_CONFIG, vec![b' '; 5 << 20]),
            (ukpm::types::media_type::LAYER_TAR, vec![1u8; 1024]),
        ] {
            let descriptor = ukpm::Descriptor::for_bytes(media_type, &bytes);
            let body = Bytes::from(bytes);
            client
                .push_blob(&reference, &descriptor, None, &move |offset, len| {
                    ukpm::registry::Body::from(body.slice(offset as usize..(offset + len) as usize))
                })
                .await
                .unwrap();
            descriptors.push(descriptor);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": ukpm::types::media_type::IMAGE_MANIFEST,
            "config": descriptors[0],
            "layers": [descriptors[1]],
        });
        client
            .put_manifest(
                &reference,
                ukpm::types::media_type::IMAGE_MANIFEST,
                Bytes::from(serde_json::to_vec(&manifest).unwrap()),
            )
            .await
            .unwrap();
    });
    let proxy = Proxy::start(registry.host(), Faults::none());
    let through: Reference = format!("{}/big/config:v1", proxy.addr()).parse().unwrap();
    let puller = manager(&dir.path().join("puller"));
    let err = runtime
        .block_on(puller.pull(&through, &PullOptions::default()))
        .expect_err("a 5 MiB config is over the cap");
    assert_eq!(err.kind(), ukpm::ErrorKind::Protocol, "{err:?}");
    let message = format!("{err:#}");
    assert!(
        message.contains("config") && message.contains("limit"),
        "{message}"
    );
    assert!(
        proxy.stats().bytes_down < 1 << 20,
        "the config was fetched anyway: {}",
        proxy.stats()
    );
}
