//! Layers other tools write, unpacked as those tools unpack them: umoci's whiteouts across
//! layers (compared with `umoci unpack`), zstd layers, and the kernel and initrd paths a package
//! names in its annotations, which must resolve inside the target or be refused.

mod common;

use std::path::PathBuf;

use common::ukpm;
use serde_json::json;
use ukpm_test::{OciLayoutWriter, RawTar, TestEnv, gnutar, require_program};

fn umoci() -> PathBuf {
    require_program("umoci", "umoci")
}

#[test]
fn whiteouts_apply_across_layers_as_umoci_applies_them() {
    let env = TestEnv::new();
    let image = "store:example.org/whiteouts:v1";
    let umoci = |args: &[&str]| env.command(umoci()).args(args).run().assert_success().clone();
    umoci(&["init", "--layout", "store"]);
    umoci(&["new", "--image", image]);
    umoci(&["unpack", "--image", image, "bundle"]);
    for (rel, data) in [
        ("etc/gone", "1"),
        ("etc/kept", "1"),
        ("opq/old", "1"),
        ("opq/sub/old", "1"),
        ("tree/a/b", "1"),
        ("tree/a/c", "1"),
    ] {
        env.write(format!("bundle/rootfs/{rel}"), data, 0o644);
    }
    umoci(&["repack", "--image", image, "bundle"]);
    // The second layer removes a file, a whole tree and a folder, and adds one file.
    fs_err::remove_file(env.path("bundle/rootfs/etc/gone")).unwrap();
    fs_err::remove_dir_all(env.path("bundle/rootfs/tree")).unwrap();
    fs_err::remove_dir_all(env.path("bundle/rootfs/opq/sub")).unwrap();
    env.write("bundle/rootfs/opq/new", "2", 0o600);
    umoci(&["repack", "--image", image, "bundle"]);
    umoci(&["unpack", "--image", image, "reference"]);

    let out = ukpm(&env)
        .args(["--json", "unpack", "example.org/whiteouts:v1", "out"])
        .run();
    out.assert_success();
    let (ours, _) = gnutar::tree(&env.path("out"));
    let (theirs, _) = gnutar::tree(&env.path("reference/rootfs"));
    let names = |t: &std::collections::BTreeMap<Vec<u8>, gnutar::Node>| {
        t.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&ours), ["etc", "etc/kept", "opq", "opq/new", "opq/old"]);
    assert_eq!(names(&ours), names(&theirs));
    for (name, node) in &theirs {
        if node.kind == 'f' {
            assert_eq!(&ours[name], node, "{}", String::from_utf8_lossy(name));
        }
    }
    // The files reported are the ones left, not the ones removed.
    let files = out.json()["files"].clone();
    let text = files.to_string();
    assert!(
        !text.contains("gone") && !text.contains(".wh.") && text.contains("opq/new"),
        "{text}"
    );
}

/// A store holding `example.org/pkg:v1`, one tar layer (compressed with `zstd` when asked)
/// whose descriptor carries `annotations`.
fn package(env: &TestEnv, tar: &[u8], zstd: bool, annotations: serde_json::Value) {
    let mut layout = OciLayoutWriter::create(env.store());
    let (media_type, bytes) = if zstd {
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            gnutar::zstd(tar, 3),
        )
    } else {
        ("application/vnd.oci.image.layer.v1.tar", tar.to_vec())
    };
    let mut layer = layout.blob(media_type, &bytes);
    layer["annotations"] = annotations;
    let manifest = layout.image("amd64", "linux", &[layer]);
    layout.tag("example.org/pkg:v1", &manifest);
    layout.finish();
}

#[test]
fn zstd_layers_unpack() {
    let env = TestEnv::new();
    let tar = RawTar::new()
        .file("unikraft/bin/kernel", 0o755, b"KERNEL")
        .finish();
    package(&env, &tar, true, json!({}));
    ukpm(&env)
        .args(["unpack", "example.org/pkg:v1", "out"])
        .run()
        .assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), b"KERNEL");
}

#[test]
fn kernel_paths_from_annotations_resolve_inside_the_target() {
    let key = "org.unikraft.kernel.image";
    let tar = RawTar::new()
        .dir("boot", 0o755)
        .file("boot/kernel", 0o755, b"KERNEL")
        .symlink("kernel-link", "boot/kernel")
        .finish();
    // Inside: reported at the real file, through an inside symlink.
    for (named, want) in [
        ("boot/kernel", "boot/kernel"),
        ("/boot/kernel", "boot/kernel"),
        ("kernel-link", "boot/kernel"),
    ] {
        let env = TestEnv::new();
        package(&env, &tar, false, json!({ key: named }));
        let out = ukpm(&env)
            .args(["--json", "unpack", "example.org/pkg:v1", "out"])
            .run();
        out.assert_success();
        let kernel = out.json()["kernel"].as_str().unwrap_or_default().to_string();
        assert_eq!(PathBuf::from(&kernel), PathBuf::from("out").join(want), "{named}");
    }
    // Outside, or through `..`: refused, and the target is left as it was.
    for named in ["../../etc/passwd", "boot/../../x", "/../etc/passwd"] {
        let env = TestEnv::new();
        package(&env, &tar, false, json!({ key: named }));
        let out = ukpm(&env).args(["unpack", "example.org/pkg:v1", "out"]).run();
        out.assert_failure();
        assert!(out.stderr.contains(key), "{named}: {}", out.stderr);
        assert!(!env.path("out/boot").exists(), "{named}");
    }
}
