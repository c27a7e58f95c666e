//! What each command prints, on the built binary: `pack`, `ls`, `inspect` and `unpack`, their
//! human and `--json` forms pinned by insta snapshots (under `tests/snapshots/`), and what they
//! leave on disk checked against the spec's conformance vectors.

mod common;

use common::*;
use serde_json::{Value, json};
use ukpm_test::{TestEnv, conformance, mode_of};

// --- pack -----------------------------------------------------------------------------------

#[test]
fn pack_reproduces_the_conformance_vectors() {
    let env = TestEnv::new();
    let out = pack_conformance(&env);
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("{}@{}\n", conformance::NAME, conformance::INDEX)
    );
    insta::assert_snapshot!("pack_conformance", out.snapshot_text());

    // Exactly the five blobs, each named by its content's digest, with KraftKit's bytes.
    let mut expected: Vec<String> = [
        conformance::KERNEL_LAYER,
        conformance::INITRD_LAYER,
        conformance::CONFIG,
        conformance::MANIFEST,
        conformance::INDEX,
    ]
    .iter()
    .map(|d| d.strip_prefix("sha256:").unwrap().to_string())
    .collect();
    expected.sort();
    assert_eq!(env.blob_names("store"), expected);
    for hex in &expected {
        assert_eq!(&ukpm_test::sha256_hex(env.blob("store", hex)), hex);
    }
    assert_eq!(
        env.blob("store", conformance::INDEX),
        conformance::INDEX_JSON.as_bytes()
    );
    assert_eq!(
        env.blob("store", conformance::MANIFEST),
        conformance::MANIFEST_JSON.as_bytes()
    );
    assert_eq!(
        env.blob("store", conformance::CONFIG),
        conformance::CONFIG_JSON.as_bytes()
    );
    assert_eq!(env.blob("store", conformance::KERNEL_LAYER).len(), 2048);
    assert_eq!(env.blob("store", conformance::INITRD_LAYER).len(), 2048);

    // The store's own index.json names the index under the full reference.
    let layout = read_json(&env, "store/index.json");
    let entries: Vec<&Value> = layout["manifests"].as_array().unwrap().iter().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], conformance::INDEX);
    assert_eq!(entries[0]["size"], 819);
    assert_eq!(entries[0]["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        conformance::REFERENCE
    );
    assert_eq!(
        read_json(&env, "store/oci-layout"),
        json!({"imageLayoutVersion": "1.0.0"})
    );

    // skopeo, an independent reader, sees the same documents.
    let skopeo = ukpm_test::require_program("skopeo", "skopeo");
    let image = format!("oci:store:{}", conformance::REFERENCE);
    let raw = env.command(&skopeo).args(["inspect", "--raw", &image]).run();
    raw.assert_success();
    assert_eq!(raw.stdout.trim_end(), conformance::INDEX_JSON);
    let platform = ["--override-os", "qemu", "--override-arch", "x86_64"];
    let config = env
        .command(&skopeo)
        .args(["inspect", "--config", "--raw"])
        .args(platform)
        .arg(&image)
        .run();
    config.assert_success();
    assert_eq!(config.stdout.trim_end(), conformance::CONFIG_JSON);
    let summary = env
        .command(&skopeo)
        .arg("inspect")
        .args(platform)
        .arg(&image)
        .run()
        .json();
    assert_eq!(summary["Digest"], conformance::INDEX);
    assert_eq!(
        summary["Layers"],
        json!([conformance::KERNEL_LAYER, conformance::INITRD_LAYER])
    );
}

#[test]
fn pack_json_and_quiet() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let args = ["pack", "helloworld", "-k", "kernel", "-m", "amd64", "-p", "kvm"];
    let quiet = ukpm(&env).arg("-q").args(args).run();
    quiet.assert_success();
    assert_eq!(quiet.stderr, "", "-q prints nothing on stderr");
    assert!(
        quiet.stdout.starts_with("unikraft.org/helloworld@sha256:"),
        "{}",
        quiet.stdout
    );

    let out = ukpm(&env)
        .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
        .args(
            "--json pack helloworld:v1 --kernel kernel --arch x86_64 --plat qemu --cmd -x".split_whitespace(),
        )
        .args(["--annotation", conformance::KRAFTKIT_VERSION_ANNOTATION])
        .run();
    out.assert_success();
    let package = &out.json()["package"];
    assert_eq!(package["reference"], "unikraft.org/helloworld:v1");
    assert_eq!(package["name"], "unikraft.org/helloworld");
    assert_eq!(package["tag"], "v1");
    assert_eq!(package["architecture"], "x86_64");
    assert_eq!(package["platform"], "qemu");
    assert_eq!(package["kernel_version"], Value::Null);
    assert_eq!(
        package["features"],
        json!([
            "CONFIG_ARCH_X86_64=y",
            "CONFIG_KVM_VMM_QEMU=y",
            "CONFIG_PLAT_KVM=y"
        ])
    );
    assert_eq!(package["size"], 2048);
    assert_eq!(package["created"], "2024-10-21T12:00:00Z");
    assert!(package["manifest"].as_str().unwrap().starts_with("sha256:"));
    let index = package["index"].as_str().unwrap();
    assert_eq!(ukpm_test::sha256_digest(env.blob("store", index)), index);
}

// --- ls -------------------------------------------------------------------------------------

const KCONFIG: &str = "\
# Automatically generated file; DO NOT EDIT.
#
CONFIG_LIBPOSIX_SOCKET=y
CONFIG_UK_NAME=\"nginx\"
CONFIG_UK_APP=/home/dev/nginx
# CONFIG_LIBVFSCORE is not set

CONFIG_UK_FULLVERSION=\"0.17.0~5fb4fd4\"
";

/// Two names on two platforms each; only nginx has a `.config` (with the socket library).
fn two_names_two_platforms(env: &TestEnv) {
    env.conformance_inputs();
    env.write("nginx.config", KCONFIG, 0o644);
    let hello = ["--initrd", "initramfs.cpio", "--cmd", "/helloworld"];
    pack(env, "unikraft.org/helloworld:latest", "x86_64", "qemu", &hello).assert_success();
    pack(env, "unikraft.org/helloworld:latest", "arm64", "fc", &hello).assert_success();
    let nginx = ["--kconfig", "nginx.config", "--", "-c", "/nginx/conf/nginx.conf"];
    pack(env, "nginx:1.25", "x86_64", "qemu", &nginx).assert_success();
    pack(env, "nginx:1.25", "arm64", "xen", &nginx).assert_success();
}

#[test]
fn ls_shows_every_platform_of_every_name() {
    let env = TestEnv::new();
    two_names_two_platforms(&env);
    let table = ukpm(&env).arg("ls").run();
    table.assert_success();
    insta::assert_snapshot!("ls_table", table.snapshot_text());

    let out = ukpm(&env).args(["ls", "--json"]).run();
    out.assert_success();
    assert_eq!(out.stderr, "");
    insta::assert_snapshot!("ls_json", pretty(&out));
    let packages = out.json()["packages"].as_array().unwrap().clone();
    assert_eq!(packages.len(), 4);
    let nginx = &packages[2];
    assert_eq!(nginx["reference"], "unikraft.org/nginx:1.25");
    assert_eq!(nginx["kernel_version"], "0.17.0~5fb4fd4");
    let features: Vec<&str> = nginx["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(features.contains(&"CONFIG_LIBPOSIX_SOCKET=y"), "{features:?}");
    assert!(
        features.contains(&"CONFIG_UK_NAME=nginx"),
        "quotes are dropped: {features:?}"
    );
    assert!(
        !features.iter().any(|f| f.starts_with("CONFIG_UK_APP")),
        "host paths are never packed"
    );
    assert!(features.is_sorted(), "{features:?}");
    for p in &packages {
        assert_eq!(p["created"], "2024-10-21T12:00:00Z");
    }
}

#[test]
fn ls_filters() {
    let env = TestEnv::new();
    two_names_two_platforms(&env);
    let ls = |filters: &str| {
        rows(
            &ukpm(&env)
                .args(["--json", "ls"])
                .args(filters.split_whitespace())
                .run(),
        )
    };
    let hello_x86 = "unikraft.org/helloworld:latest x86_64/qemu";
    let hello_arm = "unikraft.org/helloworld:latest arm64/fc";
    let nginx_x86 = "unikraft.org/nginx:1.25 x86_64/qemu";
    let nginx_arm = "unikraft.org/nginx:1.25 arm64/xen";
    let none: [&str; 0] = [];

    assert_eq!(ls(""), [hello_x86, hello_arm, nginx_x86, nginx_arm]);
    assert_eq!(ls("--arch arm64"), [hello_arm, nginx_arm]);
    assert_eq!(ls("--plat qemu"), [hello_x86, nginx_x86]);
    assert_eq!(ls("--arch amd64 --plat kvm"), [hello_x86, nginx_x86], "aliases");
    assert_eq!(ls("--plat fc --arch x86_64"), none);
    assert_eq!(ls("--kconfig CONFIG_LIBPOSIX_SOCKET=y"), [nginx_x86, nginx_arm]);
    assert_eq!(
        ls("--kconfig CONFIG_LIBPOSIX_SOCKET"),
        [nginx_x86, nginx_arm],
        "any value"
    );
    assert_eq!(ls("--kconfig CONFIG_LIBPOSIX_SOCKET=n"), none);
    assert_eq!(ls("--kconfig CONFIG_UK_NAME=nginx"), [nginx_x86, nginx_arm]);
    let both = "--kconfig CONFIG_LIBPOSIX_SOCKET=y --kconfig CONFIG_PLAT_XEN=y";
    assert_eq!(ls(both), [nginx_arm], "every entry must match");
    assert_eq!(ls("--kconfig CONFIG_UK_APP"), none, "host paths are never packed");
    assert_eq!(
        ls("--kconfig CONFIG_KVM_VMM_FIRECRACKER=y"),
        [hello_arm],
        "implied features"
    );
    assert_eq!(ls("--name nginx*"), [nginx_x86, nginx_arm]);
    assert_eq!(ls("--name unikraft.org/hello*"), [hello_x86, hello_arm]);
    assert_eq!(ls("--name unikraft.org/hello?orld"), [hello_x86, hello_arm]);
    assert_eq!(ls("--name *"), [hello_x86, hello_arm, nginx_x86, nginx_arm]);
    assert_eq!(ls("--name redis*"), none);
    assert_eq!(ls("--name nginx* --arch x86_64"), [nginx_x86]);

    let table = ukpm(&env)
        .args(["ls", "--plat", "qemu", "--kconfig", "CONFIG_LIBPOSIX_SOCKET=y"])
        .run();
    insta::assert_snapshot!("ls_filtered_table", table.snapshot_text());
    let empty = ukpm(&env).args(["ls", "--name", "redis*"]).run();
    insta::assert_snapshot!("ls_nothing_matches", empty.snapshot_text());

    let bad = ukpm(&env).args(["--json", "ls", "--arch", "mips"]).run();
    bad.assert_code(2);
    assert_eq!(bad.json()["error"]["code"], "invalid_input");
}

// --- inspect --------------------------------------------------------------------------------

#[test]
fn inspect_shows_index_manifest_and_config() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let human = ukpm(&env).args(["inspect", "unikraft.org/helloworld"]).run();
    human.assert_success();
    insta::assert_snapshot!("inspect_human", human.snapshot_text());

    let by_digest = format!("{}@{}", conformance::NAME, conformance::INDEX);
    for reference in ["helloworld", "unikraft.org/helloworld:latest", by_digest.as_str()] {
        let out = ukpm(&env).args(["inspect", "--json", reference]).run();
        out.assert_success();
        assert_eq!(out.stdout.lines().count(), 1);
        let doc = out.json();
        assert_eq!(doc["descriptor"]["digest"], conformance::INDEX, "{reference}");
        assert_eq!(doc["descriptor"]["size"], 819);
        assert_eq!(
            doc["descriptor"]["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(
            doc["index"],
            serde_json::from_str::<Value>(conformance::INDEX_JSON).unwrap()
        );
        let manifests = doc["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1);
        let m = &manifests[0];
        assert_eq!(
            m["manifest"],
            serde_json::from_str::<Value>(conformance::MANIFEST_JSON).unwrap()
        );
        assert_eq!(
            m["config"],
            serde_json::from_str::<Value>(conformance::CONFIG_JSON).unwrap()
        );
        assert_eq!(m["package"]["manifest"], conformance::MANIFEST);
        assert_eq!(m["package"]["index"], conformance::INDEX);
        assert_eq!(m["package"]["size"], 4096);
        assert_eq!(m["config"]["config"]["Cmd"], json!(conformance::ARGS));
    }
    assert_eq!(
        ukpm(&env).args(["--json", "inspect", "helloworld"]).run().json()["reference"],
        conformance::REFERENCE
    );

    // Not in the store: inspect asks the registry (which lacks it too) and says so.
    let registry = ukpm_test::registry::Registry::plain();
    let missing = ukpm(&env)
        .args(["inspect", &format!("{}/nothere", registry.host())])
        .run();
    missing.assert_failure();
    let text = missing.snapshot_text().replace(&registry.host(), "REGISTRY");
    insta::assert_snapshot!("inspect_not_found", text);
}

// --- unpack ---------------------------------------------------------------------------------

#[test]
fn unpack_writes_kernel_and_initrd_with_their_modes() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let out = ukpm(&env)
        .args(["unpack", "unikraft.org/helloworld:latest", "out"])
        .run();
    out.assert_success();
    insta::assert_snapshot!("unpack_human", out.snapshot_text());
    let kernel = env.path("out/unikraft/bin/kernel");
    let initrd = env.path("out/unikraft/bin/initrd");
    assert_eq!(env.read(&kernel), conformance::KERNEL_BYTES);
    assert_eq!(env.read(&initrd), conformance::INITRD_BYTES);
    assert_eq!(mode_of(&kernel), 0o755);
    assert_eq!(mode_of(&initrd), 0o644);
    assert_eq!(
        env.dir_state("out").paths(),
        [
            "unikraft",
            "unikraft/bin",
            "unikraft/bin/initrd",
            "unikraft/bin/kernel"
        ]
    );

    let out = ukpm(&env)
        .args(["--json", "unpack", "helloworld", "json-out"])
        .run();
    out.assert_success();
    insta::assert_snapshot!("unpack_json", pretty(&out));
    let doc = out.json();
    assert_eq!(doc["directory"], "json-out");
    assert_eq!(doc["kernel"], "json-out/unikraft/bin/kernel");
    assert_eq!(doc["initrd"], "json-out/unikraft/bin/initrd");
    assert_eq!(doc["cmd"], json!(conformance::ARGS));
    assert_eq!(doc["env"], json!([]));
    assert_eq!(
        doc["files"],
        json!(["unikraft/bin/initrd", "unikraft/bin/kernel"])
    );
    assert_eq!(doc["package"]["manifest"], conformance::MANIFEST);
    assert_eq!(mode_of(env.path("json-out/unikraft/bin/kernel")), 0o755);
}

#[test]
fn unpack_chooses_among_platforms() {
    let env = TestEnv::new();
    pack(&env, "app", "x86_64", "qemu", &["--cmd", "x86"]).assert_success();
    env.write("arm-kernel", b"ARM KERNEL\n", 0o700);
    ukpm(&env)
        .args("pack app --kernel arm-kernel --arch arm64 --plat fc --env A=1".split_whitespace())
        .run()
        .assert_success();
    let ambiguous = ukpm(&env).args(["unpack", "app", "both"]).run();
    ambiguous.assert_failure();
    insta::assert_snapshot!("unpack_ambiguous", ambiguous.snapshot_text());
    assert!(env.dir_state("both").paths().is_empty());

    let out = ukpm(&env)
        .args("--json unpack app arm --arch arm64 --plat fc".split_whitespace())
        .run();
    out.assert_success();
    assert_eq!(out.json()["env"], json!(["A=1"]));
    assert_eq!(out.json()["initrd"], Value::Null);
    assert_eq!(env.read("arm/unikraft/bin/kernel"), b"ARM KERNEL\n");
    assert_eq!(mode_of(env.path("arm/unikraft/bin/kernel")), 0o700);
    let out = ukpm(&env)
        .args("unpack app x86 --kconfig CONFIG_PLAT_KVM=y -m x86_64".split_whitespace())
        .run();
    out.assert_success();
    assert_eq!(env.read("x86/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
}
