//! KraftKit's own directory store (research §3.2): `--store kraftkit:DIR` reads it, `import`
//! copies it into ukpm's store and `export --to-kraftkit` writes ukpm's packages into it.
//!
//! The KraftKit store here is written by hand, file by file, as KraftKit lays it out
//! (`oci/digests/sha256/<hex>` raw blobs, `oci/indexes/<name>/<tag>` absolute symlinks), from the
//! spec's conformance vectors whose bytes are KraftKit's own; nothing of it comes from ukpm.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ukpm_test::{RawTar, TestEnv, conformance, sha256_digest};

/// Every blob of the conformance package, as (digest, bytes).
fn conformance_blobs() -> Vec<(String, Vec<u8>)> {
    let kernel = RawTar::new()
        .file("unikraft/bin/kernel", 0o755, conformance::KERNEL_BYTES)
        .finish();
    let initrd = RawTar::new()
        .file("unikraft/bin/initrd", 0o644, conformance::INITRD_BYTES)
        .finish();
    let blobs = vec![
        (conformance::KERNEL_LAYER.to_string(), kernel),
        (conformance::INITRD_LAYER.to_string(), initrd),
        (
            conformance::CONFIG.to_string(),
            conformance::CONFIG_JSON.as_bytes().to_vec(),
        ),
        (
            conformance::MANIFEST.to_string(),
            conformance::MANIFEST_JSON.as_bytes().to_vec(),
        ),
        (
            conformance::INDEX.to_string(),
            conformance::INDEX_JSON.as_bytes().to_vec(),
        ),
    ];
    for (digest, bytes) in &blobs {
        assert_eq!(&sha256_digest(bytes), digest, "the fixture's bytes");
    }
    blobs
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// KraftKit's runtime folder `rel` holding the conformance package under the short name
/// `helloworld:latest` (`indexes/helloworld/latest`, as `kraft pkg --name helloworld` leaves it).
fn kraftkit_store(env: &TestEnv, rel: &str) -> PathBuf {
    let oci = env.path(rel).join("oci");
    let digests = oci.join("digests").join("sha256");
    fs_err::create_dir_all(&digests).unwrap();
    for (digest, bytes) in conformance_blobs() {
        fs_err::write(digests.join(hex(&digest)), bytes).unwrap();
    }
    let link = oci.join("indexes").join("helloworld").join("latest");
    fs_err::create_dir_all(link.parent().unwrap()).unwrap();
    fs_err::os::unix::fs::symlink(digests.join(hex(conformance::INDEX)), &link).unwrap();
    env.path(rel)
}

/// The files under `dir` (recursively), as relative paths.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn ls_and_unpack_read_kraftkits_store() {
    let env = TestEnv::new();
    kraftkit_store(&env, "kk");
    let ls = ukpm(&env).args(["--json", "--store", "kraftkit:kk", "ls"]).run();
    ls.assert_success();
    let listed = ls.json();
    let packages = listed["packages"].as_array().expect("packages");
    assert_eq!(packages.len(), 1, "{listed}");
    assert_eq!(packages[0]["reference"], conformance::REFERENCE, "{listed}");
    assert_eq!(packages[0]["index"], conformance::INDEX, "{listed}");
    assert_eq!(packages[0]["manifest"], conformance::MANIFEST, "{listed}");

    // `kraftkit:` alone is KraftKit's default place: $KRAFTKIT_RUNTIME_DIR...
    let by_env = ukpm(&env)
        .env("KRAFTKIT_RUNTIME_DIR", env.path("kk"))
        .args(["--json", "--store", "kraftkit:", "ls"])
        .run();
    by_env.assert_success();
    assert_eq!(by_env.json()["packages"], listed["packages"]);
    // ...else $XDG_DATA_HOME/kraftkit/runtime.
    kraftkit_store(&env, "xdg/kraftkit/runtime");
    let by_xdg = ukpm(&env).args(["--json", "--store", "kraftkit:", "ls"]).run();
    by_xdg.assert_success();
    assert_eq!(by_xdg.json()["packages"].as_array().unwrap().len(), 1);

    let unpack = ukpm(&env)
        .args(["--store", "kraftkit:kk", "unpack", "helloworld", "out"])
        .run();
    unpack.assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    assert_eq!(env.read("out/unikraft/bin/initrd"), conformance::INITRD_BYTES);

    let inspect = ukpm(&env)
        .args(["--json", "--store", "kraftkit:kk", "inspect", "helloworld"])
        .run();
    inspect.assert_success();
}

#[test]
fn a_moved_store_still_reads_and_a_corrupt_blob_is_refused_on_read() {
    let env = TestEnv::new();
    kraftkit_store(&env, "kk");
    // The links are absolute: after a move they point at the old place, which is gone.
    fs_err::rename(env.path("kk"), env.path("moved")).unwrap();
    let ls = ukpm(&env)
        .args(["--json", "--store", "kraftkit:moved", "ls"])
        .run();
    ls.assert_success();
    assert_eq!(ls.json()["packages"].as_array().unwrap().len(), 1);

    let layer = format!("moved/oci/digests/sha256/{}", hex(conformance::KERNEL_LAYER));
    env.flip_bit(&layer, 600);
    let unpack = ukpm(&env)
        .args([
            "--json",
            "--store",
            "kraftkit:moved",
            "unpack",
            "helloworld",
            "out",
        ])
        .run();
    unpack.assert_failure();
    assert_eq!(unpack.json()["error"]["code"], "integrity", "{}", unpack.stdout);
}

#[test]
fn import_keeps_kraftkits_bytes_and_fsck_is_clean() {
    let env = TestEnv::new();
    kraftkit_store(&env, "kk");
    let out = ukpm(&env)
        .args(["--json", "import", "--from-kraftkit", "kk"])
        .run();
    out.assert_success();
    let report = out.json();
    assert_eq!(report["copied"][0]["source"], conformance::REFERENCE, "{report}");
    assert_eq!(report["copied"][0]["target"], conformance::REFERENCE, "{report}");
    assert_eq!(report["copied"][0]["digest"], conformance::INDEX, "{report}");
    assert_eq!(report["copied"][0]["blobs_written"], 5, "{report}");
    assert_eq!(report["failed"], serde_json::json!([]));
    for (digest, bytes) in conformance_blobs() {
        assert_eq!(env.blob("store", &digest), bytes, "{digest}");
    }
    ukpm(&env).args(["fsck"]).run().assert_success();
    let ls = ukpm(&env).args(["--json", "ls"]).run();
    assert_eq!(ls.json()["packages"][0]["reference"], conformance::REFERENCE);
    assert_eq!(ls.json()["packages"][0]["index"], conformance::INDEX);

    // Again: nothing new to write, same result.
    let again = ukpm(&env)
        .args(["--json", "import", "--from-kraftkit", "kk", "helloworld"])
        .run();
    again.assert_success();
    assert_eq!(again.json()["copied"][0]["blobs_written"], 0);
    assert_eq!(again.json()["copied"][0]["digest"], conformance::INDEX);
}

#[test]
fn a_corrupt_kraftkit_blob_is_refused_and_nothing_is_half_imported() {
    let env = TestEnv::new();
    kraftkit_store(&env, "kk");
    env.flip_bit(
        format!("kk/oci/digests/sha256/{}", hex(conformance::INITRD_LAYER)),
        1000,
    );
    let out = ukpm(&env)
        .env("KRAFTKIT_RUNTIME_DIR", env.path("kk"))
        .args(["--json", "import"])
        .run();
    out.assert_code(1);
    let report = out.json();
    assert_eq!(report["copied"], serde_json::json!([]), "{report}");
    assert_eq!(report["failed"][0]["source"], conformance::REFERENCE, "{report}");
    assert_eq!(report["failed"][0]["code"], "integrity", "{report}");
    // No name reaches anything: the store lists nothing, and fsck finds no problem.
    let ls = ukpm(&env).args(["--json", "ls"]).run();
    ls.assert_success();
    assert_eq!(ls.json()["packages"], serde_json::json!([]));
    ukpm(&env).args(["fsck"]).run().assert_success();
    assert!(
        !env.blob_names("store")
            .contains(&hex(conformance::INITRD_LAYER).to_string()),
        "the damaged layer was stored"
    );

    // A folder that holds no KraftKit store is an error, not an empty import.
    let nowhere = ukpm(&env)
        .args(["--json", "import", "--from-kraftkit", "nowhere"])
        .run();
    nowhere.assert_failure();
    assert_eq!(nowhere.json()["error"]["code"], "invalid_input");

    // The human form names the package and says why.
    let human = ukpm(&env).args(["import", "--from-kraftkit", "kk"]).run();
    human.assert_code(1);
    assert!(
        human
            .stdout
            .contains("could not copy unikraft.org/helloworld:latest"),
        "{}",
        human.stdout
    );
}

#[test]
fn export_writes_the_layout_kraft_reads() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let out = ukpm(&env).args(["--json", "export", "--to-kraftkit=kk2"]).run();
    out.assert_success();
    assert_eq!(out.json()["copied"][0]["digest"], conformance::INDEX);
    let oci = env.path("kk2/oci");
    // Blobs, raw, under their hex; nothing else under digests/ (KraftKit reads every file).
    let mut expected: Vec<String> = conformance_blobs()
        .iter()
        .map(|(d, _)| format!("sha256/{}", hex(d)))
        .collect();
    expected.sort();
    assert_eq!(files(&oci.join("digests")), expected);
    for (digest, bytes) in conformance_blobs() {
        assert_eq!(
            fs_err::read(oci.join("digests/sha256").join(hex(&digest))).unwrap(),
            bytes
        );
    }
    // One tag link, `:` made `/`, absolute, to the index blob; nothing else under indexes/.
    assert_eq!(files(&oci.join("indexes")), ["unikraft.org/helloworld/latest"]);
    let link = oci.join("indexes/unikraft.org/helloworld/latest");
    let target = fs_err::read_link(&link).unwrap();
    assert!(target.is_absolute(), "{}", target.display());
    assert_eq!(
        fs_err::canonicalize(&target).unwrap(),
        fs_err::canonicalize(oci.join("digests/sha256").join(hex(conformance::INDEX))).unwrap()
    );

    // ukpm's reader sees the same package.
    let ls = ukpm(&env).args(["--json", "--store", "kraftkit:kk2", "ls"]).run();
    ls.assert_success();
    assert_eq!(ls.json()["packages"][0]["reference"], conformance::REFERENCE);
    assert_eq!(ls.json()["packages"][0]["manifest"], conformance::MANIFEST);
    ukpm(&env)
        .args(["--store", "kraftkit:kk2", "unpack", "helloworld", "out"])
        .run()
        .assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);

    // A name that is not stored: an error, and KraftKit's store is left as it was.
    let before = env.dir_state("kk2");
    let missing = ukpm(&env)
        .args(["--json", "export", "--to-kraftkit=kk2", "nosuch"])
        .run();
    missing.assert_failure();
    assert_eq!(missing.json()["error"]["code"], "not_found");
    assert_eq!(env.dir_state("kk2"), before);
}

#[test]
fn import_then_export_is_byte_identical() {
    let env = TestEnv::new();
    let kk = kraftkit_store(&env, "kk");
    ukpm(&env)
        .args(["import", "--from-kraftkit", "kk"])
        .run()
        .assert_success();
    ukpm(&env)
        .env("KRAFTKIT_RUNTIME_DIR", env.path("kk2"))
        .args(["export", "--to-kraftkit"])
        .run()
        .assert_success();
    let (a, b) = (kk.join("oci/digests"), env.path("kk2/oci/digests"));
    assert_eq!(files(&a), files(&b));
    for file in files(&a) {
        assert_eq!(
            fs_err::read(a.join(&file)).unwrap(),
            fs_err::read(b.join(&file)).unwrap(),
            "{file}"
        );
    }
    // The index reached through each tag link is the same bytes (the short name came back full).
    assert_eq!(
        fs_err::read(kk.join("oci/indexes/helloworld/latest")).unwrap(),
        fs_err::read(env.path("kk2/oci/indexes/unikraft.org/helloworld/latest")).unwrap()
    );
    // Exporting into the store it came from adds the full name beside the short one.
    ukpm(&env)
        .args(["export", "--to-kraftkit=kk"])
        .run()
        .assert_success();
    assert_eq!(
        files(&kk.join("oci/indexes")),
        ["helloworld/latest", "unikraft.org/helloworld/latest"]
    );
}

#[test]
fn push_from_and_pull_into_kraftkits_store() {
    let env = TestEnv::new();
    kraftkit_store(&env, "kk");
    let registry = ukpm_test::registry::Registry::plain();
    let remote = format!("{}/hello/world:v1", registry.host());
    ukpm(&env)
        .args(["--store", "kraftkit:kk", "push", "helloworld", "--to", &remote])
        .run()
        .assert_success();
    // Pulled into another KraftKit store: the tag link keeps the port as KraftKit writes it
    // (`127.0.0.1/PORT/...`), and ukpm reads the name back with its port.
    let pull = ukpm(&env)
        .args([
            "--json",
            "--store",
            "kraftkit:kk3",
            "pull",
            &remote,
            "--all-platforms",
        ])
        .run();
    pull.assert_success();
    let link = env.path(format!(
        "kk3/oci/indexes/127.0.0.1/{}/hello/world/v1",
        registry.port()
    ));
    assert!(fs_err::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let ls = ukpm(&env).args(["--json", "--store", "kraftkit:kk3", "ls"]).run();
    ls.assert_success();
    assert_eq!(ls.json()["packages"][0]["reference"], remote.as_str());
    assert_eq!(ls.json()["packages"][0]["index"], conformance::INDEX);
    // rm takes the link away, never the blob.
    ukpm(&env)
        .args(["--store", "kraftkit:kk3", "rm", &remote])
        .run()
        .assert_success();
    assert!(fs_err::symlink_metadata(&link).is_err());
    assert!(
        env.path(format!("kk3/oci/digests/sha256/{}", hex(conformance::INDEX)))
            .exists()
    );
}

#[test]
fn tag_in_kraftkits_store_names_indexes_only() {
    let env = TestEnv::new();
    kraftkit_store(&env, "kk");
    ukpm(&env)
        .args([
            "--store",
            "kraftkit:kk",
            "tag",
            "helloworld",
            "unikraft.org/other:v2",
        ])
        .run()
        .assert_success();
    let link = env.path("kk/oci/indexes/unikraft.org/other/v2");
    assert_eq!(
        fs_err::read(&link).unwrap(),
        conformance::INDEX_JSON.as_bytes(),
        "the new link reaches the same index"
    );
    // A manifest cannot be named there: KraftKit would not read it.
    let by_manifest = format!("helloworld@{}", conformance::MANIFEST);
    let out = ukpm(&env)
        .args([
            "--json",
            "--store",
            "kraftkit:kk",
            "tag",
            &by_manifest,
            "unikraft.org/m:v1",
        ])
        .run();
    out.assert_failure();
    assert_eq!(out.json()["error"]["code"], "invalid_input");
    assert!(!env.path("kk/oci/indexes/unikraft.org/m").exists());
}
