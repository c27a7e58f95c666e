//! `PackageManager::list_remote` through pages of two (docker-registry honours `n=` on
//! `_catalog`), every tag, and the cache it writes.

use std::sync::Arc;

use ukpm::{Architecture, PackOptions, PackageManager, Plat, Query, RemoteOptions, Target};
use ukpm_test::registry::Registry;

#[test]
fn list_remote_reads_every_page_and_tag() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::plain();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    fs_err::write(&kernel, vec![7u8; 4096]).unwrap();
    let manager = PackageManager::builder()
        .store_dir(dir.path().join("store"))
        .registries(vec![host.clone()])
        .credentials(Arc::new(ukpm::registry::Anonymous))
        .concurrency(2)
        .build()
        .unwrap();
    let local = format!("{host}/p/app:v1").parse().unwrap();
    runtime
        .block_on(manager.pack(
            &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
            &PackOptions::new(local),
        ))
        .unwrap();
    let source: ukpm::Reference = format!("{host}/p/app:v1").parse().unwrap();
    let mut expected = Vec::new();
    for repo in ["p/a", "p/b", "p/c", "p/d", "p/e"] {
        for tag in ["v1", "v2", "v3"] {
            let to = format!("{host}/{repo}:{tag}");
            runtime
                .block_on(manager.push(&source, Some(&to.parse::<ukpm::Reference>().unwrap())))
                .unwrap();
            expected.push(to);
        }
    }
    expected.push(format!("{host}/p/app:v1"));
    runtime.block_on(manager.push(&source, None)).unwrap();
    expected.sort();

    let cache = dir.path().join("cache");
    let options = RemoteOptions {
        refresh: true,
        cache_dir: Some(cache.clone()),
        page_size: 2,
        ..RemoteOptions::default()
    };
    let listing = runtime
        .block_on(manager.list_remote(&Query::default(), &options))
        .unwrap();
    let found: Vec<String> = listing.packages.iter().map(|p| p.reference.to_string()).collect();
    assert_eq!(found, expected);
    assert!(listing.warnings.is_empty(), "{:?}", listing.warnings);
    assert_eq!(listing.cached_at, None);
    let catalog_pages = registry
        .requests()
        .iter()
        .filter(|r| r.contains("/v2/_catalog"))
        .count();
    assert!(catalog_pages >= 3, "{catalog_pages} catalog pages");
    // Sixteen tags of one package: each index is asked for by tag, the manifest they share once.
    let by_digest = |requests: &[String]| {
        requests
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains("/manifests/sha256:"))
            .count()
    };
    assert_eq!(by_digest(&registry.requests()), 1, "{:#?}", registry.requests());

    // A refresh asks again for every tag, but not for a document the cache already holds.
    let seen = registry.requests().len();
    let refreshed = runtime
        .block_on(manager.list_remote(&Query::default(), &options))
        .unwrap();
    assert_eq!(refreshed.packages.len(), expected.len());
    assert_eq!(by_digest(&registry.requests()[seen..]), 0);

    // From the cache, the same rows; the filters apply to it as to a live listing.
    let cached = runtime
        .block_on(manager.list_remote(
            &Query::default(),
            &RemoteOptions {
                refresh: false,
                ..options.clone()
            },
        ))
        .unwrap();
    assert!(cached.cached_at.is_some());
    let again: Vec<String> = cached.packages.iter().map(|p| p.reference.to_string()).collect();
    assert_eq!(again, expected);
    let fc = Query {
        platform: Some(Plat::Fc),
        ..Query::default()
    };
    let none = runtime
        .block_on(manager.list_remote(
            &fc,
            &RemoteOptions {
                refresh: false,
                ..options
            },
        ))
        .unwrap();
    assert!(none.packages.is_empty());
}
