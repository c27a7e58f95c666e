//! The library's `save` and `load` (issue 12 item 6) without the CLI: an archive written into
//! memory loads into another store with every digest kept, and a load that fails on a bad
//! archive sets no name.

use ukpm::{Architecture, PackOptions, PackageManager, Plat, Query, Target};

fn manager(dir: &std::path::Path) -> PackageManager {
    PackageManager::builder().store_dir(dir).build().unwrap()
}

/// `reference manifest plat/arch` per listed package, sorted.
async fn listing(manager: &PackageManager) -> Vec<String> {
    let mut rows: Vec<String> = manager
        .list(&Query::default())
        .await
        .unwrap()
        .iter()
        .map(|p| format!("{} {} {}", p.reference, p.manifest.digest, p.plat_arch()))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn an_archive_in_memory_round_trips_and_a_bad_one_sets_no_name() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    fs_err::write(&kernel, vec![9u8; 10_000]).unwrap();
    let source = manager(&dir.path().join("a"));
    let name: ukpm::Reference = "unikraft.org/lib:1".parse().unwrap();
    for (arch, plat) in [
        (Architecture::X86_64, Plat::Qemu),
        (Architecture::Arm64, Plat::Fc),
    ] {
        source
            .pack(&Target::new(&kernel, arch, plat), &PackOptions::new(name.clone()))
            .await
            .unwrap();
    }

    let (report, archive) = source.save(&["lib:1".to_string()], Vec::new()).await.unwrap();
    assert_eq!(report.saved.len(), 1);
    assert_eq!(report.saved[0].name, "unikraft.org/lib:1");
    let (_, again) = source.save(&[], Vec::new()).await.unwrap();
    assert_eq!(archive, again, "deterministic bytes");

    let target = manager(&dir.path().join("b"));
    let loaded = target.load(std::io::Cursor::new(archive.clone())).await.unwrap();
    assert_eq!(loaded.loaded.len(), 1);
    assert_eq!(
        loaded.loaded[0].descriptor.digest,
        report.saved[0].descriptor.digest
    );
    assert_eq!(listing(&target).await, listing(&source).await);
    assert_eq!(listing(&target).await.len(), 2);

    // Cut off before index.json: an error, and no name set.
    let empty = manager(&dir.path().join("c"));
    let cut = archive[..archive.len() - 3 * 1024].to_vec();
    let err = empty.load(std::io::Cursor::new(cut)).await.unwrap_err();
    assert_eq!(err.kind(), ukpm::ErrorKind::InvalidInput, "{err}");
    assert!(empty.list(&Query::default()).await.unwrap().is_empty());
}
