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

/// The process's umask, read from /proc (setting it to read it would race other tests).
fn umask() -> u32 {
    let status = fs_err::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

/// Issue 13, point 7: a store a group shares (umask 002) needs blobs and `index.json` the group
/// can read; temp files are 0600 whatever the umask, so they are created 0666 before it.
#[test]
fn files_follow_the_umask_not_a_fixed_0600() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store) = store();
    let layer = put(&store, b"a layer", media_type::LAYER_TAR);
    store
        .remember_sources(&[(layer.digest, "r.example/a".into())])
        .unwrap();
    let _lease = store.lease().unwrap();
    let mode = |p: &std::path::Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o7777;
    let want = 0o666 & !umask();
    for path in [
        store.blob_path(&layer.digest),
        store.root().join("index.json"),
        store.root().join("oci-layout"),
        store.root().join("ukpm-sources.json"),
        store.root().join("ukpm.lock"),
        store.root().join("ukpm-gc.lock"),
    ] {
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    let partial = store.partial(layer.digest, 7, 0).unwrap().unwrap();
    assert_eq!(
        mode(&store.ingest_dir().join(format!("partial-{}", layer.digest.hex()))),
        want
    );
    drop(partial);
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

/// How a ref in the model was written: by ukpm, or in the shape another tool leaves.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// ukpm's own: index -> OCI manifest, full reference as the name.
    Ukpm,
    /// Docker media types (a manifest list and a schema 2 manifest).
    Docker,
    /// A bare-tag ref name (`v1`, as skopeo and umoci write it) on a single OCI manifest.
    BareTag,
    /// An artifact manifest (`blobs`, `subject`) gc does not model.
    Artifact,
    /// A root of a media type nothing knows, holding JSON with descriptors in odd places.
    Unknown,
    /// A plain layer descriptor put in `index.json`.
    PlainLayer,
}

#[derive(Debug, Clone)]
enum Op {
    Pack { name: u8, layers: Vec<u8>, shape: Shape },
    Remove { name: u8 },
    Stray { blob: u8 },
    Gc,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Ukpm),
        Just(Shape::Docker),
        Just(Shape::BareTag),
        Just(Shape::Artifact),
        Just(Shape::Unknown),
        Just(Shape::PlainLayer),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, proptest::collection::vec(0u8..6, 1..4), shape())
            .prop_map(|(name, layers, shape)| Op::Pack { name, layers, shape }),
        (0u8..4).prop_map(|name| Op::Remove { name }),
        (0u8..6).prop_map(|blob| Op::Stray { blob }),
        Just(Op::Gc),
    ]
}

/// The ref name of model slot `name` in `shape` (bare tags are names too).
fn model_name(name: u8, shape: Shape) -> String {
    match shape {
        Shape::BareTag => format!("v{name}"),
        _ => format!("n{name}:latest"),
    }
}

/// Writes a ref of `shape` and returns its root and every blob it needs.
fn put_shape(store: &LocalStore, name: u8, layers: &[Vec<u8>], shape: Shape) -> (Descriptor, Vec<Digest>) {
    let mut needed = Vec::new();
    let blob = |bytes: &[u8], media: &str, needed: &mut Vec<Digest>| {
        let d = put(store, bytes, media);
        needed.push(d.digest);
        d
    };
    let layer_media = match shape {
        Shape::Docker => media_type::DOCKER_LAYER_TAR_GZIP,
        _ => media_type::LAYER_TAR,
    };
    let layer_ds: Vec<Descriptor> = layers.iter().map(|l| blob(l, layer_media, &mut needed)).collect();
    let root = match shape {
        Shape::Ukpm | Shape::Docker | Shape::BareTag => {
            let (manifest_media, index_media) = match shape {
                Shape::Docker => (media_type::DOCKER_MANIFEST, media_type::DOCKER_MANIFEST_LIST),
                _ => (media_type::IMAGE_MANIFEST, media_type::IMAGE_INDEX),
            };
            let manifest = Manifest {
                schema_version: 2,
                media_type: manifest_media.into(),
                artifact_type: String::new(),
                config: blob(
                    format!("config-{name}").as_bytes(),
                    media_type::IMAGE_CONFIG,
                    &mut needed,
                ),
                layers: layer_ds,
                subject: None,
                annotations: BTreeMap::new(),
            };
            let manifest = blob(&to_go_json(&manifest), manifest_media, &mut needed);
            if matches!(shape, Shape::BareTag) {
                manifest
            } else {
                let mut index = Index::new();
                index.media_type = index_media.into();
                index.manifests.push(manifest);
                blob(&to_go_json(&index), index_media, &mut needed)
            }
        }
        Shape::Artifact => {
            let signed = Manifest {
                schema_version: 2,
                media_type: media_type::IMAGE_MANIFEST.into(),
                artifact_type: String::new(),
                config: blob(
                    format!("signed-{name}").as_bytes(),
                    media_type::IMAGE_CONFIG,
                    &mut needed,
                ),
                layers: Vec::new(),
                subject: None,
                annotations: BTreeMap::new(),
            };
            let subject = blob(&to_go_json(&signed), media_type::IMAGE_MANIFEST, &mut needed);
            let doc = serde_json::json!({
                "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
                "artifactType": "application/vnd.example.signature",
                "blobs": layer_ds,
                "subject": subject,
            });
            blob(
                doc.to_string().as_bytes(),
                "application/vnd.oci.artifact.manifest.v1+json",
                &mut needed,
            )
        }
        Shape::Unknown => {
            let doc = serde_json::json!({
                "payload": {"nested": [{"digest": layer_ds[0].digest.to_string()}]},
                "rest": layer_ds[1..],
            });
            blob(
                doc.to_string().as_bytes(),
                "application/vnd.example.unknown+json",
                &mut needed,
            )
        }
        Shape::PlainLayer => {
            // Only the root itself: the other layers were put but nothing names them.
            needed = vec![layer_ds[0].digest];
            layer_ds[0].clone()
        }
    };
    (root, needed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random pack/rm/gc sequences, with refs in the shapes ukpm and other tools write (bare
    /// tags, Docker media types, artifact manifests, unknown and plain-layer roots), never leave
    /// a ref dangling and never delete a blob any live ref needs (by the model, not by gc's own
    /// idea of reachability); what nothing needs is collected.
    #[test]
    fn store_model(ops in proptest::collection::vec(op(), 1..24)) {
        let (_dir, store) = store();
        // slot -> (ref name, blobs it needs)
        let mut live: BTreeMap<u8, (String, Vec<Digest>)> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Pack { name, layers, shape } => {
                    let layer_bytes: Vec<Vec<u8>> = layers.iter().map(|l| format!("layer-{l}").into_bytes()).collect();
                    let (root, needed) = put_shape(&store, name, &layer_bytes, shape);
                    let ref_name = model_name(name, shape);
                    let old = live.insert(name, (ref_name.clone(), needed));
                    store.update_refs(|t| {
                        if let Some((old_name, _)) = &old {
                            t.remove(old_name);
                        }
                        t.set(&ref_name, root);
                        Ok::<_, StoreError>(())
                    }).unwrap();
                }
                Op::Remove { name } => {
                    if let Some((ref_name, _)) = live.remove(&name) {
                        store.update_refs(|t| Ok::<_, StoreError>(t.remove(&ref_name))).unwrap();
                    }
                }
                Op::Stray { blob } => {
                    put(&store, format!("layer-{blob}").as_bytes(), media_type::LAYER_TAR);
                }
                Op::Gc => {
                    store.gc().unwrap();
                    let needed: std::collections::BTreeSet<Digest> =
                        live.values().flat_map(|(_, n)| n.iter().copied()).collect();
                    for d in &needed {
                        prop_assert!(store.blob_size(d).is_some(), "gc deleted {d}, which a live ref needs");
                    }
                    let on_disk = fs_err::read_dir(store.blobs_dir()).unwrap().count();
                    prop_assert_eq!(on_disk, needed.len(), "gc left blobs nothing needs");
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

#[test]
fn a_ranged_download_is_hashed_in_order_as_its_prefix_completes() {
    let (_dir, store) = store();
    let blob: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = Digest::of(&blob);
    let ranged = store.ranged(digest, 400_000).unwrap().unwrap();
    let part = |a: usize, b: usize| &blob[a..b];
    // Later stretches land first: nothing can be hashed yet.
    ranged.write_at(200_000, part(200_000, 300_000)).unwrap();
    ranged.write_at(100_000, part(100_000, 200_000)).unwrap();
    assert_eq!(ranged.hashed(), 0);
    // The first stretch lands: it and the two waiting behind it are hashed at once.
    ranged.write_at(0, part(0, 100_000)).unwrap();
    assert_eq!(ranged.hashed(), 300_000);
    // Bytes written twice are refused, hashed or not.
    assert!(ranged.write_at(50_000, part(50_000, 60_000)).is_err());
    ranged.write_at(350_000, part(350_000, 400_000)).unwrap();
    assert!(ranged.write_at(340_000, part(340_000, 360_000)).is_err());
    ranged.write_at(300_000, part(300_000, 350_000)).unwrap();
    assert_eq!(ranged.hashed(), 400_000, "commit has nothing left to read back");
    assert_eq!(ranged.commit().unwrap(), (digest, 400_000));
    assert_eq!(fs_err::read(store.blob_path(&digest)).unwrap(), blob);
}

#[test]
fn a_resumed_ranged_download_hashes_what_the_last_process_left_once() {
    let (_dir, store) = store();
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let digest = Digest::of(&blob);
    let ranged = store.ranged(digest, 300_000).unwrap().unwrap();
    for (a, b) in [(0, 100_000), (150_000, 200_000)] {
        ranged.write_at(a, &blob[a as usize..b as usize]).unwrap();
        ranged.landed(a, b - 1).unwrap();
    }
    drop(ranged);
    let ranged = store.ranged(digest, 300_000).unwrap().unwrap();
    assert_eq!(ranged.missing(), [(100_000, 149_999), (200_000, 299_999)]);
    ranged.write_at(100_000, &blob[100_000..150_000]).unwrap();
    assert_eq!(
        ranged.hashed(),
        200_000,
        "the kept prefix was read back once, then the rest followed"
    );
    ranged.write_at(200_000, &blob[200_000..]).unwrap();
    assert_eq!(ranged.commit().unwrap(), (digest, 300_000));
}

#[test]
fn a_ranged_download_whose_bytes_lie_is_refused_even_when_hashed_in_order() {
    let (_dir, store) = store();
    let blob = vec![7u8; 100_000];
    let digest = Digest::of(&blob);
    let ranged = store.ranged(digest, 100_000).unwrap().unwrap();
    ranged.write_at(0, &blob[..50_000]).unwrap();
    ranged.write_at(50_000, &[8u8; 50_000]).unwrap();
    assert_eq!(ranged.hashed(), 100_000);
    assert!(matches!(ranged.commit(), Err(StoreError::DigestMismatch { .. })));
    assert!(store.blob_size(&digest).is_none());
    assert_eq!(fs_err::read_dir(store.ingest_dir()).unwrap().count(), 0);
}

/// Makes a fifo at `path` with mkfifo(1) (no libc in this crate).
fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_blob_that_is_a_fifo_or_a_symlink_is_damage_and_never_opened() {
    let (dir, store) = store();
    let image = put_image(&store, b"config", &[b"kernel", b"initrd"]);
    store
        .update_refs(|refs| {
            refs.set("unikraft.org/app:latest", image.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let kernel = Digest::of(b"kernel");
    let initrd = Digest::of(b"initrd");
    // The kernel becomes a fifo nobody writes to: a blocking open would hang this test.
    fs_err::remove_file(store.blob_path(&kernel)).unwrap();
    mkfifo(&store.blob_path(&kernel));
    // The initrd becomes a symlink to a file with the right bytes, outside the store.
    let outside = dir.path().join("outside");
    fs_err::write(&outside, b"initrd").unwrap();
    fs_err::remove_file(store.blob_path(&initrd)).unwrap();
    fs_err::os::unix::fs::symlink(&outside, store.blob_path(&initrd)).unwrap();

    for (digest, kind) in [(kernel, "fifo"), (initrd, "symlink")] {
        let d = Descriptor::new(media_type::LAYER_TAR, digest, 6);
        let err = store.read_blob(&d).unwrap_err();
        assert!(
            matches!(&err, StoreError::NotAFile { kind: k, .. } if *k == kind),
            "{err}"
        );
        assert!(err.is_integrity());
        assert!(err.to_string().contains(kind), "{err}");
        assert!(matches!(
            store.open_blob(&digest),
            Err(StoreError::NotAFile { .. })
        ));
        assert!(matches!(
            store.read_capped(&d, "image config", 100),
            Err(StoreError::NotAFile { .. })
        ));
        assert_eq!(store.blob_size(&digest), None);
    }

    let report = store.fsck().unwrap();
    let text: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::NotAFile { digest, kind: "fifo" } if *digest == kernel)),
        "{text:?}"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::NotAFile { digest, kind: "symlink" } if *digest == initrd)),
        "{text:?}"
    );

    // gc neither opens nor deletes them (fsck --repair replaces them), and reports them.
    let gc = store.gc().unwrap();
    assert!(!gc.removed.contains(&kernel) && !gc.removed.contains(&initrd));
    assert!(gc.missing.contains(&kernel) && gc.missing.contains(&initrd));
    assert!(fs_err::symlink_metadata(store.blob_path(&kernel)).is_ok());
    assert_eq!(
        fs_err::read(&outside).unwrap(),
        b"initrd",
        "the link's target is untouched"
    );

    // Writing the blob again replaces the fifo and the link with the verified file.
    put(&store, b"kernel", media_type::LAYER_TAR);
    put(&store, b"initrd", media_type::LAYER_TAR);
    assert!(
        store
            .read_blob(&Descriptor::new(media_type::LAYER_TAR, kernel, 6))
            .is_ok()
    );
    assert!(
        fs_err::symlink_metadata(store.blob_path(&initrd))
            .unwrap()
            .is_file()
    );
}

#[test]
fn a_manifest_that_is_a_fifo_makes_gc_refuse_naming_the_ref() {
    let (_dir, store) = store();
    let image = put_image(&store, b"config", &[b"kernel"]);
    let index = store.read_index(&image).unwrap();
    let manifest = index.manifests[0].clone();
    store
        .update_refs(|refs| {
            refs.set("unikraft.org/app:latest", image.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    fs_err::remove_file(store.blob_path(&manifest.digest)).unwrap();
    mkfifo(&store.blob_path(&manifest.digest));
    let err = store.gc().unwrap_err();
    assert!(err.to_string().contains("unikraft.org/app:latest"), "{err}");
    assert!(err.is_integrity());
    // The manifest's config and layer are still there: nothing was deleted.
    assert!(store.blob_size(&Digest::of(b"kernel")).is_some());
    assert!(store.blob_size(&Digest::of(b"config")).is_some());
}

#[test]
fn gc_refuses_a_manifest_it_cannot_parse_and_names_the_ref() {
    let (_dir, store) = store();
    put(&store, b"kernel", media_type::LAYER_TAR);
    let bogus = put(&store, b"{\"not\": \"a manifest\"", media_type::IMAGE_MANIFEST);
    store
        .update_refs(|refs| {
            refs.set("v1", bogus.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let err = store.gc().unwrap_err();
    assert!(
        matches!(&err, StoreError::GcRefused { root, .. } if root == "v1"),
        "{err}"
    );
    assert!(err.to_string().contains("v1"), "{err}");
    assert!(store.blob_size(&Digest::of(b"kernel")).is_some());
}

#[test]
fn gc_keeps_what_a_foreign_layouts_roots_reference() {
    let (_dir, store) = store();
    // go-containerregistry and umoci: a bare tag on a single manifest.
    let image = put_image(&store, b"config", &[b"kernel"]);
    let manifest = store.read_index(&image).unwrap().manifests[0].clone();
    // A cosign-style signature: an unknown-type root whose JSON names a payload.
    let payload = put(
        &store,
        b"signature payload",
        "application/vnd.dev.cosign.simplesigning.v1+json",
    );
    let signature = serde_json::json!({"critical": {"image": {"docker-manifest-digest": manifest.digest.to_string()}}, "payload": payload});
    let signature = put(
        &store,
        signature.to_string().as_bytes(),
        "application/vnd.example.signature+json",
    );
    // A root that is not JSON at all.
    let opaque = put(&store, b"\x00\x01binary", "application/octet-stream");
    let stray = put(&store, b"stray", media_type::LAYER_TAR);
    store
        .update_refs(|refs| {
            refs.set("v1", manifest.clone());
            refs.set("sig", signature.clone());
            refs.set("blob", opaque.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let report = store.gc().unwrap();
    // The index put_image wrote is named by no ref (`v1` names its manifest).
    let mut expected = vec![stray.digest, image.digest];
    expected.sort();
    assert_eq!(report.removed, expected);
    for d in [
        manifest.digest,
        Digest::of(b"config"),
        Digest::of(b"kernel"),
        payload.digest,
        signature.digest,
        opaque.digest,
    ] {
        assert!(store.blob_size(&d).is_some(), "gc deleted {d}");
    }
}

#[test]
fn documents_over_the_cap_are_refused_before_they_are_read() {
    let (_dir, store) = store();
    let big = vec![b' '; (ukpm_types::limits::MANIFEST_LIMIT + 1) as usize];
    let d = put(&store, &big, media_type::IMAGE_MANIFEST);
    let err = store.read_manifest(&d).unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { limit, .. } if limit == ukpm_types::limits::MANIFEST_LIMIT),
        "{err}"
    );
    assert!(err.to_string().contains(&d.digest.to_string()), "{err}");
    assert!(
        err.to_string()
            .contains(&ukpm_types::limits::MANIFEST_LIMIT.to_string()),
        "{err}"
    );
    // A descriptor that lies small about a big blob is refused by the size on disk.
    let mut lying = d.clone();
    lying.size = 10;
    assert!(matches!(
        store.read_capped(&lying, "image manifest", 100),
        Err(StoreError::TooLarge { size, .. }) if size == big.len() as u64
    ));
    // gc refuses to follow it rather than guess, naming the ref.
    store
        .update_refs(|refs| {
            refs.set("huge:latest", d.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let err = store.gc().unwrap_err();
    assert!(err.to_string().contains("huge:latest"), "{err}");
}

#[test]
fn opening_a_blob_never_follows_a_symlink_nor_waits_on_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs_err::write(&target, b"elsewhere").unwrap();
    let link = dir.path().join("link");
    fs_err::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(crate::open_regular(&link).is_err(), "a symlink is not followed");
    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    // Without O_NONBLOCK this open would wait for a writer forever.
    let opened = crate::open_regular(&fifo).unwrap();
    assert!(!opened.metadata().unwrap().is_file());
    assert!(
        crate::open_regular(&target)
            .unwrap()
            .metadata()
            .unwrap()
            .is_file()
    );
}
