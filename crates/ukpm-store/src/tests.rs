use std::collections::BTreeMap;
use std::io::{Read, Write};

use proptest::prelude::*;
use ukpm_types::{Descriptor, Digest, Index, Manifest, media_type, to_go_json};

use super::*;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open_or_create(dir.path().join("oci")).unwrap();
    (dir, store)
}

fn put(store: &LocalStore, bytes: &[u8], media: &str) -> Descriptor {
    let digest = store.put_bytes(bytes).unwrap();
    Descriptor::new(media, digest, bytes.len() as u64)
}

/// Stores index -> manifest -> (config, layers) and returns the index descriptor.
fn put_image(store: &LocalStore, config: &[u8], layers: &[&[u8]]) -> Descriptor {
    let manifest = Manifest {
        schema_version: 2,
        media_type: media_type::IMAGE_MANIFEST.into(),
        artifact_type: String::new(),
        config: put(store, config, media_type::IMAGE_CONFIG),
        layers: layers
            .iter()
            .map(|l| put(store, l, media_type::LAYER_TAR))
            .collect(),
        subject: None,
        annotations: BTreeMap::new(),
    };
    let manifest = put(store, &to_go_json(&manifest), media_type::IMAGE_MANIFEST);
    let mut index = Index::new();
    index.manifests.push(manifest);
    put(store, &to_go_json(&index), media_type::IMAGE_INDEX)
}

#[test]
fn a_new_store_is_a_layout() {
    let (_dir, store) = store();
    let layout = fs_err::read_to_string(store.root().join("oci-layout")).unwrap();
    assert_eq!(layout, r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = fs_err::read_to_string(store.root().join("index.json")).unwrap();
    assert_eq!(
        index,
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
    );
}

#[test]
fn a_folder_that_is_not_a_layout_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = LocalStore::open_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotALayout { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    let names: Vec<_> = fs_err::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    fs_err::write(dir.path().join("oci-layout"), "{}").unwrap();
    assert!(matches!(
        LocalStore::open_or_create(dir.path()),
        Err(StoreError::NotALayout { .. })
    ));
}

#[test]
fn ingest_refuses_content_that_does_not_match_its_announcement() {
    let (_dir, store) = store();
    let mut ingest = store.ingest().unwrap();
    ingest.write_all(b"hello").unwrap();
    let err = ingest.commit(Some((Digest::of(b"other"), 5))).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert!(!store.blob_path(&Digest::of(b"hello")).exists());
    let mut ingest = store.ingest().unwrap();
    ingest.write_all(b"hello").unwrap();
    let err = ingest.commit(Some((Digest::of(b"hello"), 4))).unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { .. }));
    assert!(!store.blob_path(&Digest::of(b"hello")).exists());
    // Nothing is left in ingest/ either.
    assert_eq!(fs_err::read_dir(store.ingest_dir()).unwrap().count(), 0);
}

#[test]
fn a_flipped_byte_is_caught_on_read() {
    let (_dir, store) = store();
    let d = put(&store, b"kernel bytes", media_type::LAYER_TAR);
    let path = store.blob_path(&d.digest);
    let mut bytes = fs_err::read(&path).unwrap();
    bytes[3] ^= 1;
    fs_err::write(&path, bytes).unwrap();
    let err = store.read_blob(&d).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { digest, .. } if digest == d.digest),
        "{err}"
    );
    let mut reader = store.open_blob(&d.digest).unwrap();
    let mut sink = Vec::new();
    let io_err = reader.read_to_end(&mut sink).unwrap_err();
    assert!(unwrap_store_error(io_err).is_integrity());
    // A partial read followed by finish() is checked too.
    let mut reader = store.open_blob(&d.digest).unwrap();
    let mut two = [0u8; 2];
    reader.read_exact(&mut two).unwrap();
    assert!(matches!(reader.finish(), Err(StoreError::Corrupt { .. })));
}

#[test]
fn a_damaged_blob_of_the_wrong_size_is_replaced_on_ingest() {
    let (_dir, store) = store();
    let d = put(&store, b"0123456789", media_type::LAYER_TAR);
    fs_err::write(store.blob_path(&d.digest), b"012").unwrap();
    put(&store, b"0123456789", media_type::LAYER_TAR);
    assert_eq!(store.read_blob(&d).unwrap(), b"0123456789");
}

#[test]
fn refs_cannot_dangle() {
    let (_dir, store) = store();
    let ghost = Descriptor::new(media_type::IMAGE_INDEX, Digest::of(b"ghost"), 5);
    let err = store
        .update_refs(|refs| {
            refs.set("unikraft.org/x:latest", ghost);
            Ok::<_, StoreError>(())
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::DanglingRef { .. }));
    assert!(store.refs().unwrap().entries().is_empty());
}

#[test]
fn gc_keeps_a_layer_shared_by_two_images_while_either_remains() {
    let (_dir, store) = store();
    let a = put_image(&store, b"config-a", &[b"shared-kernel", b"initrd-a"]);
    let b = put_image(&store, b"config-b", &[b"shared-kernel"]);
    let stray = put(&store, b"stray", media_type::LAYER_TAR);
    store
        .update_refs(|refs| {
            refs.set("a:latest", a.clone());
            refs.set("b:latest", b.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.removed, vec![stray.digest]);
    let shared = Digest::of(b"shared-kernel");
    store
        .update_refs(|refs| Ok::<_, StoreError>(refs.remove("a:latest")))
        .unwrap();
    let report = store.gc().unwrap();
    assert!(store.blob_size(&shared).is_some());
    assert!(!report.removed.contains(&shared));
    assert!(report.removed.contains(&Digest::of(b"initrd-a")));
    store
        .update_refs(|refs| Ok::<_, StoreError>(refs.remove("b:latest")))
        .unwrap();
    store.gc().unwrap();
    assert_eq!(fs_err::read_dir(store.blobs_dir()).unwrap().count(), 0);
}

#[test]
fn gc_removes_leftover_temp_files() {
    let (_dir, store) = store();
    let mut ingest = store.ingest().unwrap();
    ingest.write_all(b"partial").unwrap();
    std::mem::forget(ingest);
    assert_eq!(fs_err::read_dir(store.ingest_dir()).unwrap().count(), 1);
    let report = store.gc().unwrap();
    assert_eq!(report.bytes_freed, 7);
    assert_eq!(fs_err::read_dir(store.ingest_dir()).unwrap().count(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Pack { name: u8, layers: Vec<u8> },
    Remove { name: u8 },
    Stray { blob: u8 },
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, proptest::collection::vec(0u8..6, 1..4))
            .prop_map(|(name, layers)| Op::Pack { name, layers }),
        (0u8..4).prop_map(|name| Op::Remove { name }),
        (0u8..6).prop_map(|blob| Op::Stray { blob }),
        Just(Op::Gc),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random pack/rm/gc sequences never leave a ref dangling and never delete a reachable blob.
    #[test]
    fn store_model(ops in proptest::collection::vec(op(), 1..24)) {
        let (_dir, store) = store();
        for op in ops {
            match op {
                Op::Pack { name, layers } => {
                    let layer_bytes: Vec<Vec<u8>> = layers.iter().map(|l| format!("layer-{l}").into_bytes()).collect();
                    let refs: Vec<&[u8]> = layer_bytes.iter().map(Vec::as_slice).collect();
                    let index = put_image(&store, format!("config-{name}").as_bytes(), &refs);
                    store.update_refs(|t| { t.set(&format!("n{name}:latest"), index); Ok::<_, StoreError>(()) }).unwrap();
                }
                Op::Remove { name } => {
                    store.update_refs(|t| Ok::<_, StoreError>(t.remove(&format!("n{name}:latest")))).unwrap();
                }
                Op::Stray { blob } => {
                    put(&store, format!("layer-{blob}").as_bytes(), media_type::LAYER_TAR);
                }
                Op::Gc => {
                    let (before, _) = store.reachable().unwrap();
                    store.gc().unwrap();
                    for d in &before {
                        prop_assert!(store.blob_size(d).is_some(), "gc deleted reachable {d}");
                    }
                    let on_disk = fs_err::read_dir(store.blobs_dir()).unwrap().count();
                    prop_assert_eq!(on_disk, before.len(), "gc left unreachable blobs");
                }
            }
            let (_, missing) = store.reachable().unwrap();
            prop_assert!(missing.is_empty(), "dangling: {missing:?}");
        }
    }
}

#[test]
fn a_layout_half_made_by_another_process_is_completed_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("oci");
    fs_err::create_dir_all(root.join("blobs").join("sha256")).unwrap();
    fs_err::write(root.join("ukpm.lock"), "").unwrap();
    let store = LocalStore::open_or_create(&root).unwrap();
    assert!(store.root().join("oci-layout").is_file());
    assert!(store.refs().unwrap().entries().is_empty());
}

#[test]
fn many_threads_creating_one_store_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("oci");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let store = LocalStore::open_or_create(&root).unwrap();
                put(&store, format!("blob {i}").as_bytes(), media_type::LAYER_TAR);
                let index = put(&store, &to_go_json(&Index::new()), media_type::IMAGE_INDEX);
                store
                    .update_refs(|refs| {
                        refs.set(&format!("r{i}:latest"), index);
                        Ok::<_, StoreError>(())
                    })
                    .unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let store = LocalStore::open_or_create(&root).unwrap();
    assert_eq!(store.refs().unwrap().entries().len(), 8);
}

#[test]
fn an_index_whose_other_platforms_were_not_pulled_is_not_damage() {
    let (_dir, store) = store();
    let pulled = put_image(&store, b"config", &[b"kernel"]);
    let index_bytes = fs_err::read(store.blob_path(&pulled.digest)).unwrap();
    let mut index: Index = serde_json::from_slice(&index_bytes).unwrap();
    // A second platform the pull skipped: its manifest is not local.
    index.manifests.push(Descriptor::new(
        media_type::IMAGE_MANIFEST,
        Digest::of(b"other platform"),
        14,
    ));
    let partial = put(&store, &to_go_json(&index), media_type::IMAGE_INDEX);
    store
        .update_refs(|refs| {
            refs.set("partial:latest", partial.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let (reachable, missing) = store.reachable().unwrap();
    assert!(missing.is_empty(), "{missing:?}");
    assert!(reachable.contains(&Digest::of(b"kernel")));
    let report = store.gc().unwrap();
    assert!(report.missing.is_empty());
    assert!(store.blob_size(&Digest::of(b"kernel")).is_some());
    // A manifest's missing layer, however, is damage.
    fs_err::remove_file(store.blob_path(&Digest::of(b"kernel"))).unwrap();
    let (_, missing) = store.reachable().unwrap();
    assert_eq!(
        missing.into_iter().collect::<Vec<_>>(),
        vec![Digest::of(b"kernel")]
    );
}

#[test]
fn fsck_names_corrupt_and_missing_blobs_by_ref() {
    let (_dir, store) = store();
    let image = put_image(&store, b"config", &[b"kernel", b"initrd"]);
    store
        .update_refs(|refs| {
            refs.set("unikraft.org/app:latest", image.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    put(&store, b"garbage", media_type::LAYER_TAR);
    let clean = store.fsck().unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.blobs_checked, 6);
    assert_eq!(clean.unreachable, 1);

    let kernel = Digest::of(b"kernel");
    fs_err::write(store.blob_path(&kernel), b"kernex").unwrap();
    fs_err::remove_file(store.blob_path(&Digest::of(b"initrd"))).unwrap();
    let report = store.fsck().unwrap();
    let text: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(report.problems.len(), 2, "{text:?}");
    assert!(
        text.iter().any(|t| t.contains(&kernel.to_string())
            && t.contains("corrupt")
            && t.contains("unikraft.org/app:latest")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains(&Digest::of(b"initrd").to_string()) && t.contains("missing")),
        "{text:?}"
    );

    store.quarantine(&kernel).unwrap();
    assert!(store.blob_size(&kernel).is_none());
    fs_err::write(store.root().join("index.json"), b"{not json").unwrap();
    let report = store.fsck().unwrap();
    assert!(
        matches!(report.problems[..], [Problem::BadIndex { .. }]),
        "{:?}",
        report.problems
    );
}

#[test]
fn an_interrupted_download_resumes_and_verifies_whole() {
    let (_dir, store) = store();
    let blob = vec![9u8; 10_000];
    let digest = Digest::of(&blob);
    let mut first = store.partial(digest, 10_000, 0).unwrap().unwrap();
    first.write_all(&blob[..4_000]).unwrap();
    drop(first);
    assert_eq!(store.partial_len(&digest), 4_000);
    // While one process holds it, another is told to download elsewhere.
    let held = store.partial(digest, 10_000, 4_000).unwrap().unwrap();
    assert!(store.partial(digest, 10_000, 4_000).unwrap().is_none());
    drop(held);
    let mut second = store.partial(digest, 10_000, 4_000).unwrap().unwrap();
    assert_eq!(second.offset(), 4_000);
    second.write_all(&blob[4_000..]).unwrap();
    assert!(second.write_all(b"x").is_err(), "a byte past the size is refused");
    assert_eq!(second.commit().unwrap(), (digest, 10_000));
    assert_eq!(fs_err::read(store.blob_path(&digest)).unwrap(), blob);
    assert_eq!(store.partial_len(&digest), 0);
}

#[test]
fn a_resumed_download_with_a_bad_prefix_is_refused_and_forgotten() {
    let (_dir, store) = store();
    let blob = vec![1u8; 1000];
    let digest = Digest::of(&blob);
    let mut p = store.partial(digest, 1000, 0).unwrap().unwrap();
    p.write_all(&[2u8; 500]).unwrap();
    drop(p);
    let mut p = store.partial(digest, 1000, 500).unwrap().unwrap();
    p.write_all(&blob[500..]).unwrap();
    assert!(matches!(p.commit(), Err(StoreError::DigestMismatch { .. })));
    assert_eq!(store.partial_len(&digest), 0);
    assert!(store.blob_size(&digest).is_none());
}

#[test]
fn gc_keeps_young_interrupted_downloads_and_drops_old_ones() {
    let (_dir, store) = store();
    let digest = Digest::of(b"big");
    let mut p = store.partial(digest, 3, 0).unwrap().unwrap();
    p.write_all(b"b").unwrap();
    drop(p);
    store.gc().unwrap();
    assert_eq!(store.partial_len(&digest), 1);
    store.gc_with_grace(std::time::Duration::ZERO).unwrap();
    assert_eq!(store.partial_len(&digest), 0);
}

#[test]
fn a_ranged_download_records_what_landed_and_resumes_the_rest() {
    let (_dir, store) = store();
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let digest = Digest::of(&blob);
    let ranged = store.ranged(digest, 100_000).unwrap().unwrap();
    assert_eq!(ranged.missing(), [(0, 99_999)]);
    // Two ranges land out of order, then the process dies.
    ranged.write_at(60_000, &blob[60_000..80_000]).unwrap();
    ranged.landed(60_000, 79_999).unwrap();
    ranged.write_at(0, &blob[..10_000]).unwrap();
    ranged.landed(0, 9_999).unwrap();
    assert!(
        ranged.write_at(99_999, b"xy").is_err(),
        "bytes past the end are refused"
    );
    drop(ranged);
    assert_eq!(
        store.partial_len(&digest),
        0,
        "a ranged file is not a sequential prefix"
    );
    let ranged = store.ranged(digest, 100_000).unwrap().unwrap();
    assert!(
        store.ranged(digest, 100_000).unwrap().is_none(),
        "one process at a time"
    );
    assert_eq!(ranged.missing(), [(10_000, 59_999), (80_000, 99_999)]);
    for (a, b) in ranged.missing() {
        ranged.write_at(a, &blob[a as usize..=b as usize]).unwrap();
    }
    assert_eq!(ranged.commit().unwrap(), (digest, 100_000));
    assert_eq!(fs_err::read(store.blob_path(&digest)).unwrap(), blob);
    assert_eq!(fs_err::read_dir(store.ingest_dir()).unwrap().count(), 0);
}

#[test]
fn landed_ranges_are_recorded_in_batches_and_on_drop() {
    let (_dir, store) = store();
    let size = 1u64 << 20;
    let blob = vec![9u8; size as usize];
    let digest = Digest::of(&blob);
    let ranges = store
        .ingest_dir()
        .join(format!("partial-{}.ranges", digest.hex()));
    let ranged = store.ranged(digest, size).unwrap().unwrap();
    // Small stretches stay in memory: no write per network chunk.
    for start in (0..64 << 10).step_by(16 << 10) {
        ranged.write_at(start, &blob[..16 << 10]).unwrap();
        ranged.landed(start, start + (16 << 10) - 1).unwrap();
    }
    assert_eq!(fs_err::read_to_string(&ranges).unwrap(), "");
    // Once they cover enough bytes, one write puts them all on disk.
    for start in ((64 << 10)..(320 << 10)).step_by(64 << 10) {
        ranged.write_at(start, &blob[..64 << 10]).unwrap();
        ranged.landed(start, start + (64 << 10) - 1).unwrap();
    }
    // 4 × 16 KiB + 3 × 64 KiB reach 256 KiB; the fourth 64 KiB waits for the next batch.
    assert_eq!(fs_err::read_to_string(&ranges).unwrap().lines().count(), 7);
    ranged.write_at(320 << 10, &blob[..1]).unwrap();
    ranged.landed(320 << 10, 320 << 10).unwrap();
    drop(ranged);
    let ranged = store.ranged(digest, size).unwrap().unwrap();
    assert_eq!(
        ranged.missing(),
        [((320 << 10) + 1, size - 1)],
        "the last stretch was kept on drop"
    );
}

#[test]
fn a_sequential_prefix_becomes_the_first_range_and_back() {
    let (_dir, store) = store();
    let blob = vec![5u8; 50_000];
    let digest = Digest::of(&blob);
    let mut seq = store.partial(digest, 50_000, 0).unwrap().unwrap();
    seq.write_all(&blob[..20_000]).unwrap();
    drop(seq);
    let ranged = store.ranged(digest, 50_000).unwrap().unwrap();
    assert_eq!(ranged.missing(), [(20_000, 49_999)]);
    // The registry turns out not to serve ranges: back to a sequential prefix.
    assert_eq!(ranged.into_sequential().unwrap(), 20_000);
    assert_eq!(store.partial_len(&digest), 20_000);
}

#[test]
fn a_ranged_download_that_does_not_verify_is_forgotten() {
    let (_dir, store) = store();
    let digest = Digest::of(b"the real bytes");
    let ranged = store.ranged(digest, 14).unwrap().unwrap();
    ranged.write_at(0, b"some other one").unwrap();
    assert!(matches!(ranged.commit(), Err(StoreError::DigestMismatch { .. })));
    assert_eq!(fs_err::read_dir(store.ingest_dir()).unwrap().count(), 0);
}
