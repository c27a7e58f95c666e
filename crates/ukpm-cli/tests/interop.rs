//! Other tools read what ukpm writes, and ukpm reads what they write: skopeo (containers/image)
//! and umoci (opencontainers/umoci) through their `oci:` layout transports. Both are required:
//! a missing one fails the test with its `apt-get` line.
//!
//! What umoci 0.4.7 can and cannot do with a ukpm store (found while writing these tests):
//! - `umoci ls` and `umoci stat` read it;
//! - `umoci raw unpack` extracts a single-platform package (it resolves the index to its one
//!   manifest) with contents and modes intact, but refuses a multi-platform index with
//!   "tag is ambiguous": it has no platform selection;
//! - `umoci unpack` (a runtime bundle) fails with "unsupported OS: qemu" after resolving the
//!   index, because it generates a runtime-spec `config.json` only for Linux images. That is
//!   umoci's limit, not a format problem, so it is not tested.

mod common;

use std::path::PathBuf;

use common::{pack_conformance, ukpm};
use serde_json::{Value, json};
use ukpm_test::{Outcome, TestEnv, UkpmCommand, conformance, mode_of, require_program};

fn skopeo() -> PathBuf {
    require_program("skopeo", "skopeo")
}

fn umoci() -> PathBuf {
    require_program("umoci", "umoci")
}

/// skopeo with a signature policy that accepts anything: these are local copies between
/// layouts, and the test must not depend on the host's `/etc/containers/policy.json`.
fn skopeo_cmd(env: &TestEnv) -> UkpmCommand {
    env.command(skopeo()).arg("--insecure-policy")
}

/// `unikraft.org/helloworld:latest` for qemu/x86_64 (kernel and initrd) and fc/arm64 (a
/// different kernel, mode 0700, no initrd).
fn pack_two_platforms(env: &TestEnv) {
    env.conformance_inputs();
    env.write("arm-kernel", b"ARM64 KERNEL\n", 0o700);
    ukpm(env)
        .args([
            "pack",
            conformance::REFERENCE,
            "--kernel",
            "kernel",
            "--initrd",
            "initramfs.cpio",
        ])
        .args(["--arch", "x86_64", "--plat", "qemu", "--cmd", "/helloworld"])
        .run()
        .assert_success();
    ukpm(env)
        .args([
            "pack",
            conformance::REFERENCE,
            "--kernel",
            "arm-kernel",
            "--arch",
            "arm64",
            "--plat",
            "fc",
        ])
        .run()
        .assert_success();
}

/// The descriptor a layout's `index.json` gives for `reference`.
fn layout_entry(env: &TestEnv, layout: &str, reference: &str) -> Value {
    let index: Value = serde_json::from_slice(&env.read(format!("{layout}/index.json"))).unwrap();
    let entries: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "{layout}/index.json names {reference} once: {index}"
    );
    entries[0].clone()
}

fn blob_json(env: &TestEnv, layout: &str, digest: &Value) -> Value {
    serde_json::from_slice(&env.blob(layout, digest.as_str().unwrap())).unwrap()
}

/// `ls --json` rows as `arch/plat manifest-digest`.
fn ls_rows(out: &Outcome) -> Vec<String> {
    out.assert_success();
    out.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}/{} {}", p["architecture"], p["platform"], p["manifest"]).replace('"', ""))
        .collect()
}

#[test]
fn skopeo_reads_the_index_ukpm_wrote() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let image = format!("oci:store:{}", conformance::REFERENCE);
    let raw = skopeo_cmd(&env).args(["inspect", "--raw", &image]).run();
    raw.assert_success();

    // skopeo returns the very blob the store's index.json names.
    let entry = layout_entry(&env, "store", conformance::REFERENCE);
    assert_eq!(entry["mediaType"], "application/vnd.oci.image.index.v1+json");
    let blob = env.blob("store", entry["digest"].as_str().unwrap());
    assert_eq!(raw.stdout.trim_end().as_bytes(), blob.as_slice());
    assert_eq!(entry["size"], blob.len());
    assert_eq!(raw.stdout.trim_end(), conformance::INDEX_JSON);

    // Field by field, as the spec describes the index.
    let index: Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(
        index["annotations"],
        json!({
            "io.containerd.image.name": "unikraft.org/helloworld:latest",
            "org.opencontainers.image.ref.name": "unikraft.org/helloworld",
            "sh.kraftkit.version": "0.9.2",
        }),
        "no created time on the index"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let m = &manifests[0];
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["digest"], conformance::MANIFEST);
    assert_eq!(m["size"], 1092);
    let platform = &m["platform"];
    assert_eq!(platform["architecture"], "x86_64");
    assert_eq!(platform["os"], "qemu");
    assert_eq!(
        platform["os.features"],
        json!([
            "CONFIG_ARCH_X86_64=y",
            "CONFIG_KVM_VMM_QEMU=y",
            "CONFIG_PLAT_KVM=y"
        ])
    );
    assert_eq!(
        platform.as_object().unwrap().len(),
        3,
        "no os.version without a kernel version"
    );
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "unikraft.org/helloworld:latest"
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        "unikraft.org/helloworld"
    );
    assert_eq!(m["annotations"]["sh.kraftkit.version"], "0.9.2");
    assert_eq!(
        m["annotations"]["org.unikraft.image.name"],
        "unikraft.org/helloworld"
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.created"],
        "2024-10-21T12:00:00Z"
    );

    // The manifest it points at: a copy of its annotations, the config descriptor carrying the
    // platform (KraftKit's readers need it), one uncompressed tar layer per file.
    let manifest = blob_json(&env, "store", &m["digest"]);
    assert_eq!(manifest["annotations"], m["annotations"]);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], conformance::CONFIG);
    assert_eq!(manifest["config"]["platform"], *platform);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (layer, digest, key, path) in [
        (
            &layers[0],
            conformance::KERNEL_LAYER,
            "org.unikraft.kernel.image",
            "/unikraft/bin/kernel",
        ),
        (
            &layers[1],
            conformance::INITRD_LAYER,
            "org.unikraft.kernel.initrd",
            "/unikraft/bin/initrd",
        ),
    ] {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(layer["digest"], digest);
        assert_eq!(layer["size"], 2048);
        assert_eq!(layer["annotations"], json!({ key: path }));
    }
    let config = blob_json(&env, "store", &manifest["config"]["digest"]);
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([conformance::KERNEL_LAYER, conformance::INITRD_LAYER])
    );
}

#[test]
fn skopeo_sees_kraftkits_marker_on_every_level_by_default() {
    // KraftKit ignores an index, manifest or descriptor without sh.kraftkit.version; ukpm writes
    // its own name and version there unless told otherwise.
    let env = TestEnv::new();
    env.conformance_inputs();
    ukpm(&env)
        .args([
            "pack", "app", "--kernel", "kernel", "--arch", "arm", "--plat", "xen",
        ])
        .run()
        .assert_success();
    let raw = skopeo_cmd(&env)
        .args(["inspect", "--raw", "oci:store:unikraft.org/app:latest"])
        .run();
    raw.assert_success();
    let index: Value = serde_json::from_str(&raw.stdout).unwrap();
    let manifest = blob_json(&env, "store", &index["manifests"][0]["digest"]);
    for (what, annotations) in [
        ("index", &index["annotations"]),
        ("index entry", &index["manifests"][0]["annotations"]),
        ("manifest", &manifest["annotations"]),
    ] {
        let version = annotations["sh.kraftkit.version"].as_str().unwrap_or_default();
        assert!(
            version.contains("ukpm"),
            "{what} sh.kraftkit.version names ukpm: {annotations}"
        );
    }
    assert_eq!(
        index["manifests"][0]["platform"],
        json!({"architecture": "arm", "os": "xen", "os.features": ["CONFIG_ARCH_ARM_32=y", "CONFIG_PLAT_XEN=y"]})
    );
}

#[test]
fn skopeo_copies_a_two_platform_package_blob_for_blob() {
    let env = TestEnv::new();
    pack_two_platforms(&env);
    let from = format!("oci:store:{}", conformance::REFERENCE);
    let to = format!("oci:other:{}", conformance::REFERENCE);
    // Without --preserve-digests skopeo gzips uncompressed layers on the way into an `oci:`
    // layout (see ukpm_reads_a_copy_skopeo_wrote); with it, the copy must be exact or fail.
    let copy = skopeo_cmd(&env)
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--multi-arch",
            "all",
            &from,
            &to,
        ])
        .run();
    copy.assert_success();

    let ours = layout_entry(&env, "store", conformance::REFERENCE);
    let theirs = layout_entry(&env, "other", conformance::REFERENCE);
    assert_eq!(theirs["digest"], ours["digest"]);
    assert_eq!(theirs["size"], ours["size"]);
    // The first pack's one-platform index became garbage when the second merged into it.
    ukpm(&env).arg("gc").run().assert_success();
    let blobs = env.blob_names("store");
    assert_eq!(
        blobs.len(),
        1 + 2 * 2 + 3,
        "index, two manifests and configs, three layers"
    );
    assert_eq!(env.blob_names("other"), blobs);
    for blob in &blobs {
        assert_eq!(env.blob("other", blob), env.blob("store", blob), "blob {blob}");
    }
    // And ukpm sees the same two packages there.
    let ls = |store: &str| ls_rows(&ukpm(&env).args(["--store", store, "--json", "ls"]).run());
    assert_eq!(ls("other"), ls("store"));
    assert_eq!(ls("other").len(), 2);
}

#[test]
fn ukpm_reads_a_copy_skopeo_wrote() {
    let env = TestEnv::new();
    pack_two_platforms(&env);
    let from = format!("oci:store:{}", conformance::REFERENCE);
    let to = format!("oci:other:{}", conformance::REFERENCE);
    skopeo_cmd(&env)
        .args(["copy", "--quiet", "--multi-arch", "all", &from, &to])
        .run()
        .assert_success();

    // skopeo rewrote the layers as tar+gzip, so every manifest and the index are new documents
    // that ukpm did not write.
    let entry = layout_entry(&env, "other", conformance::REFERENCE);
    assert_ne!(
        entry["digest"],
        layout_entry(&env, "store", conformance::REFERENCE)["digest"]
    );
    let index = blob_json(&env, "other", &entry["digest"]);
    for m in index["manifests"].as_array().unwrap() {
        let manifest = blob_json(&env, "other", &m["digest"]);
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
                "{manifest}"
            );
        }
    }

    let ls = ukpm(&env).args(["--store", "other", "--json", "ls"]).run();
    ls.assert_success();
    let packages = ls.json()["packages"].as_array().unwrap().clone();
    let platforms: Vec<String> = packages
        .iter()
        .map(|p| format!("{} {}/{}", p["reference"], p["architecture"], p["platform"]).replace('"', ""))
        .collect();
    assert_eq!(
        platforms,
        [
            "unikraft.org/helloworld:latest x86_64/qemu",
            "unikraft.org/helloworld:latest arm64/fc"
        ]
    );
    for p in &packages {
        assert_eq!(p["index"], entry["digest"]);
        assert_eq!(p["created"], Value::Null, "skopeo records no local time");
    }

    let x86 = ukpm(&env)
        .args([
            "--store",
            "other",
            "unpack",
            "helloworld",
            "x86",
            "--arch",
            "x86_64",
        ])
        .run();
    x86.assert_success();
    assert_eq!(env.read("x86/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    assert_eq!(env.read("x86/unikraft/bin/initrd"), conformance::INITRD_BYTES);
    assert_eq!(mode_of(env.path("x86/unikraft/bin/kernel")), 0o755);
    assert_eq!(mode_of(env.path("x86/unikraft/bin/initrd")), 0o644);
    let arm = ukpm(&env)
        .args([
            "--store",
            "other",
            "--json",
            "unpack",
            "helloworld",
            "arm",
            "--plat",
            "fc",
            "--arch",
            "arm64",
        ])
        .run();
    arm.assert_success();
    assert_eq!(arm.json()["initrd"], Value::Null);
    assert_eq!(env.read("arm/unikraft/bin/kernel"), b"ARM64 KERNEL\n");
    assert_eq!(mode_of(env.path("arm/unikraft/bin/kernel")), 0o700);
    ukpm(&env)
        .args(["--store", "other", "inspect", "helloworld"])
        .run()
        .assert_success();
}

#[test]
fn umoci_lists_stats_and_unpacks_the_store() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    ukpm(&env)
        .args([
            "pack",
            "nginx:1.25",
            "--kernel",
            "kernel",
            "--arch",
            "x86_64",
            "--plat",
            "fc",
        ])
        .run()
        .assert_success();
    let umoci = umoci();

    let ls = env.command(&umoci).args(["ls", "--layout", "store"]).run();
    ls.assert_success();
    let mut names: Vec<&str> = ls.stdout.lines().collect();
    names.sort();
    assert_eq!(
        names,
        ["unikraft.org/helloworld:latest", "unikraft.org/nginx:1.25"]
    );

    let image = format!("store:{}", conformance::REFERENCE);
    let stat = env
        .command(&umoci)
        .args(["stat", "--json", "--image", &image])
        .run();
    stat.assert_success();
    stat.json();

    let unpack = env
        .command(&umoci)
        .args(["raw", "unpack", "--rootless", "--image", &image, "rootfs"])
        .run();
    unpack.assert_success();
    assert_eq!(env.read("rootfs/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    assert_eq!(env.read("rootfs/unikraft/bin/initrd"), conformance::INITRD_BYTES);
    assert_eq!(mode_of(env.path("rootfs/unikraft/bin/kernel")), 0o755);
    assert_eq!(mode_of(env.path("rootfs/unikraft/bin/initrd")), 0o644);
    // The layers hold exactly one file each and no folders; umoci makes the parents itself.
    assert_eq!(
        env.dir_state("rootfs").paths(),
        [
            "unikraft",
            "unikraft/bin",
            "unikraft/bin/initrd",
            "unikraft/bin/kernel"
        ]
    );
}

#[test]
fn ukpm_reads_a_name_umoci_tagged() {
    // umoci tag resolves the index to its single manifest and names that manifest directly,
    // with no index and no ukpm annotations on the entry: a single-manifest image, as KraftKit
    // 0.6 also wrote.
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let tag = env
        .command(umoci())
        .args([
            "tag",
            "--image",
            &format!("store:{}", conformance::REFERENCE),
            "unikraft.org/alias:v1",
        ])
        .run();
    tag.assert_success();
    let entry = layout_entry(&env, "store", "unikraft.org/alias:v1");
    assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json");

    let ls = ukpm(&env)
        .args(["--json", "ls", "--name", "unikraft.org/alias"])
        .run();
    ls.assert_success();
    let packages = ls.json()["packages"].clone();
    assert_eq!(packages.as_array().unwrap().len(), 1, "{packages}");
    assert_eq!(packages[0]["reference"], "unikraft.org/alias:v1");
    assert_eq!(packages[0]["manifest"], conformance::MANIFEST);
    assert_eq!(packages[0]["index"], Value::Null);
    let out = ukpm(&env).args(["unpack", "alias:v1", "out"]).run();
    out.assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    // gc keeps what umoci's name reaches once ukpm's own name is gone.
    ukpm(&env)
        .args(["rm", conformance::REFERENCE])
        .run()
        .assert_success();
    ukpm(&env).arg("gc").run().assert_success();
    assert!(
        env.blob_names("store")
            .contains(&conformance::KERNEL_LAYER[7..].to_string())
    );
    ukpm(&env)
        .args(["unpack", "alias:v1", "again"])
        .run()
        .assert_success();
}
