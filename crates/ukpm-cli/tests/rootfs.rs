//! `pack --rootfs` from every source KraftKit takes: a CPIO file and a folder (their initrd
//! digests unchanged), an OCI image from a layout on disk, from the store and from a real
//! registry (its layers flattened, whiteouts applied, compared with `umoci unpack`'s rootfs and
//! read back with GNU cpio), a Dockerfile (refused, nothing written), `--compress` (gzip that
//! `gzip -dc | cpio` reads) and a kconfig that embeds the initrd (no initrd layer).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{pack, pack_conformance, ukpm};
use serde_json::{Value, json};
use ukpm_test::registry::Registry;
use ukpm_test::{OciLayoutWriter, RawTar, TestEnv, conformance, gnutar, require_program};

/// The initrd layer a folder rootfs of [`folder_tree`] gives; what ukpm wrote before rootfs
/// sources were added, so a folder's package keeps its digest.
const FOLDER_INITRD_LAYER: &str = "sha256:b652db7c2b9a581c0cd88255fa36767ff6143661889237add33d2401b976dff5";

fn umoci() -> PathBuf {
    require_program("umoci", "umoci")
}

fn skopeo() -> PathBuf {
    require_program("skopeo", "skopeo")
}

/// A two-layer image made by umoci in the layout `img` as `img:v1`: the second layer deletes a
/// file, a tree and a folder's old contents (whiteouts, an opaque one among them), replaces a
/// file and adds a symlink; its config has an entrypoint, a command and an environment. umoci's
/// own unpack of it is left in `reference/rootfs`.
fn umoci_image(env: &TestEnv) {
    let image = "img:v1";
    let umoci = |args: &[&str]| env.command(umoci()).args(args).run().assert_success().clone();
    umoci(&["init", "--layout", "img"]);
    umoci(&["new", "--image", image]);
    umoci(&["unpack", "--image", image, "bundle"]);
    for (rel, data, mode) in [
        ("etc/gone", "1", 0o644),
        ("etc/kept", "kept\n", 0o600),
        ("etc/replaced", "old", 0o644),
        ("opq/old", "1", 0o644),
        ("opq/sub/old", "1", 0o644),
        ("tree/a/b", "1", 0o644),
        ("bin/app", "#!/bin/app\n", 0o755),
    ] {
        env.write(format!("bundle/rootfs/{rel}"), data, mode);
    }
    umoci(&["repack", "--image", image, "bundle"]);
    fs_err::remove_file(env.path("bundle/rootfs/etc/gone")).unwrap();
    fs_err::remove_dir_all(env.path("bundle/rootfs/tree")).unwrap();
    fs_err::remove_dir_all(env.path("bundle/rootfs/opq/sub")).unwrap();
    env.write("bundle/rootfs/opq/new", "2", 0o600);
    env.write("bundle/rootfs/etc/replaced", "new content", 0o640);
    fs_err::os::unix::fs::symlink("../bin/app", env.path("bundle/rootfs/etc/app-link")).unwrap();
    umoci(&["repack", "--image", image, "bundle"]);
    umoci(&[
        "config",
        "--image",
        image,
        "--config.entrypoint",
        "/bin/app",
        "--config.cmd",
        "--serve",
        "--config.env",
        "GREETING=hi",
    ]);
    umoci(&["unpack", "--image", image, "reference"]);
}

/// The tree of the initrd packed as `name`, extracted by GNU cpio into `dir`.
fn initrd_tree(env: &TestEnv, name: &str, dir: &str) -> BTreeMap<Vec<u8>, gnutar::Node> {
    let out = ukpm(env)
        .args(["--json", "unpack", name, &format!("{dir}-unpacked")])
        .run();
    out.assert_success();
    let initrd = env.read(format!("{dir}-unpacked/unikraft/bin/initrd"));
    assert!(
        ukpm_test::cpio::list(&initrd)
            .iter()
            .all(|e| e.uid == 0 && e.gid == 0)
    );
    fs_err::create_dir_all(env.path(dir)).unwrap();
    ukpm_test::cpio::extract(&initrd, &env.path(dir));
    gnutar::tree(&env.path(dir)).0
}

fn names(tree: &BTreeMap<Vec<u8>, gnutar::Node>) -> Vec<String> {
    tree.keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// The digests of the layers of the one manifest `name` has.
fn layers(env: &TestEnv, name: &str) -> Vec<Value> {
    let out = ukpm(env).args(["--json", "inspect", name]).run();
    out.assert_success();
    out.json()["manifests"][0]["manifest"]["layers"]
        .as_array()
        .unwrap()
        .clone()
}

fn initrd_layer(env: &TestEnv, name: &str) -> String {
    let layers = layers(env, name);
    let layer = layers
        .iter()
        .find(|l| l["annotations"]["org.unikraft.kernel.initrd"] == "/unikraft/bin/initrd")
        .expect("an initrd layer");
    layer["digest"].as_str().unwrap().to_string()
}

#[test]
fn an_image_layout_is_flattened_into_the_initrd_as_umoci_unpacks_it() {
    let env = TestEnv::new();
    umoci_image(&env);
    let out = pack(&env, "app:layout", "x86_64", "qemu", &["--rootfs", "oci:img:v1"]);
    out.assert_success();
    assert!(out.stderr.contains("linux/amd64"), "{}", out.stderr);
    let ours = initrd_tree(&env, "app:layout", "from-layout");
    let (theirs, _) = gnutar::tree(&env.path("reference/rootfs"));
    assert_eq!(
        names(&ours),
        [
            "bin",
            "bin/app",
            "etc",
            "etc/app-link",
            "etc/kept",
            "etc/replaced",
            "opq",
            "opq/new",
            "opq/old"
        ]
    );
    assert_eq!(ours, theirs);
    // The image's entrypoint + command and environment are the package's defaults (KraftKit).
    let unpacked = ukpm(&env).args(["--json", "unpack", "app:layout", "again"]).run();
    unpacked.assert_success();
    assert_eq!(unpacked.json()["cmd"], json!(["/bin/app", "--serve"]));
    let env_list = unpacked.json()["env"].clone();
    assert!(
        env_list.as_array().unwrap().contains(&json!("GREETING=hi")),
        "{env_list}"
    );
    // A folder holding `oci-layout` is the same layout; a command given wins over the image's.
    pack(
        &env,
        "app:folder",
        "x86_64",
        "qemu",
        &["--rootfs", "img", "--cmd", "/other"],
    )
    .assert_success();
    assert_eq!(initrd_layer(&env, "app:folder"), initrd_layer(&env, "app:layout"));
    let unpacked = ukpm(&env).args(["--json", "unpack", "app:folder", "third"]).run();
    assert_eq!(unpacked.json()["cmd"], json!(["/other"]));
    // Nothing of the image is left in the store: only the two packages.
    let listed = ukpm(&env).args(["--json", "ls"]).run();
    listed.assert_success();
    assert_eq!(listed.json()["packages"].as_array().unwrap().len(), 2);
}

#[test]
fn an_image_index_gives_the_manifest_of_the_target_architecture() {
    let env = TestEnv::new();
    let mut layout = OciLayoutWriter::create(env.path("multi"));
    let image = |layout: &mut OciLayoutWriter, arch: &str, data: &[u8]| {
        let tar = RawTar::new()
            .dir("data", 0o755)
            .file("data/arch", 0o644, data)
            .finish();
        let layer = layout.blob("application/vnd.oci.image.layer.v1.tar", &tar);
        layout.image(arch, "linux", &[layer])
    };
    let amd = image(&mut layout, "amd64", b"amd64");
    let arm = image(&mut layout, "arm64", b"arm64");
    let index = layout.json_blob(
        "application/vnd.oci.image.index.v1+json",
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [arm, amd],
        }),
    );
    layout.tag("v1", &index);
    layout.finish();
    for (arch, want) in [("x86_64", "amd64"), ("arm64", "arm64")] {
        let name = format!("multi:{arch}");
        let out = pack(&env, &name, arch, "qemu", &["--rootfs", "oci:multi:v1"]);
        out.assert_success();
        assert!(out.stderr.contains(&format!("linux/{want}")), "{}", out.stderr);
        let tree = initrd_tree(&env, &name, &format!("tree-{arch}"));
        assert_eq!(tree[&b"data/arch".to_vec()].content, want.as_bytes());
    }
    // No manifest for the architecture: the error lists what the index has; nothing is packed.
    let out = pack(&env, "multi:arm", "arm", "qemu", &["--rootfs", "oci:multi:v1"]);
    out.assert_failure();
    assert!(
        out.stderr.contains("linux/arm64") && out.stderr.contains("linux/amd64"),
        "{}",
        out.stderr
    );
    assert!(!ukpm(&env).args(["inspect", "multi:arm"]).run().succeeded());
}

#[test]
fn an_image_on_a_registry_is_pulled_and_flattened_and_one_in_the_store_is_used_as_is() {
    let env = TestEnv::new();
    umoci_image(&env);
    let registry = Registry::plain();
    let remote = format!("{}/rootfs/app:v1", registry.host());
    env.command(skopeo())
        .args(["copy", "--dest-tls-verify=false", "oci:img:v1"])
        .arg(format!("docker://{remote}"))
        .run()
        .assert_success();
    pack(&env, "app:layout", "x86_64", "qemu", &["--rootfs", "oci:img:v1"]).assert_success();
    let out = pack(&env, "app:remote", "x86_64", "qemu", &["--rootfs", &remote]);
    out.assert_success();
    assert!(
        out.stderr.contains(&format!("pulling {remote}")),
        "{}",
        out.stderr
    );
    assert_eq!(initrd_layer(&env, "app:remote"), initrd_layer(&env, "app:layout"));
    let ours = initrd_tree(&env, "app:remote", "from-registry");
    let (theirs, _) = gnutar::tree(&env.path("reference/rootfs"));
    assert_eq!(ours, theirs);
    // The pulled image went to a temp store, not the user's.
    let listed = ukpm(&env).args(["--json", "ls"]).run();
    assert_eq!(listed.json()["packages"].as_array().unwrap().len(), 2);

    // An image in the store is used from there (a short name means Docker Hub, as in KraftKit,
    // which this test never reaches).
    env.command(skopeo())
        .arg("copy")
        .arg("oci:img:v1")
        .arg(format!(
            "oci:{}:docker.io/library/myrootfs:v1",
            env.store().display()
        ))
        .run()
        .assert_success();
    let out = pack(&env, "app:stored", "x86_64", "qemu", &["--rootfs", "myrootfs:v1"]);
    out.assert_success();
    assert!(out.stderr.contains("in the store"), "{}", out.stderr);
    assert_eq!(initrd_layer(&env, "app:stored"), initrd_layer(&env, "app:layout"));
}

#[test]
fn a_dockerfile_is_refused_with_advice_and_nothing_is_written() {
    let env = TestEnv::new();
    env.conformance_inputs();
    for dockerfile in ["Dockerfile", "app.Dockerfile", "docker/Dockerfile.prod"] {
        env.write(dockerfile, "FROM alpine:3.19\n", 0o644);
        let out = pack(&env, "app", "x86_64", "qemu", &["--rootfs", dockerfile]);
        out.assert_failure();
        assert!(
            out.stderr.contains("does not build Dockerfiles") && out.stderr.contains("docker build"),
            "{}",
            out.stderr
        );
        assert!(!env.store().exists(), "{dockerfile}: the store was created");
    }
}

/// The tree whose folder initrd [`FOLDER_INITRD_LAYER`] pins.
fn folder_tree(env: &TestEnv) {
    env.write("tree/etc/hostname", "unikraft\n", 0o644);
    env.write("tree/bin/app", "APP", 0o755);
    fs_err::os::unix::fs::symlink("hostname", env.path("tree/etc/name")).unwrap();
    for dir in ["tree/etc", "tree/bin"] {
        fs_err::set_permissions(env.path(dir), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn file_and_folder_rootfs_keep_their_digests() {
    let env = TestEnv::new();
    let out = pack_conformance(&env);
    out.assert_success();
    // `--rootfs` is `--initrd` by KraftKit's name: the same bytes.
    let env2 = TestEnv::new();
    env2.conformance_inputs();
    common::ukpm(&env2)
        .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
        .args([
            "pack",
            conformance::REFERENCE,
            "--kernel",
            "kernel",
            "--rootfs",
            "initramfs.cpio",
        ])
        .args(["--plat", "qemu", "--arch", "x86_64"])
        .args(["--annotation", conformance::KRAFTKIT_VERSION_ANNOTATION])
        .arg("--")
        .args(conformance::ARGS)
        .run()
        .assert_success();
    assert_eq!(env.blob_names(env.store()), env2.blob_names(env2.store()));
    assert_eq!(
        initrd_layer(&env2, conformance::REFERENCE),
        conformance::INITRD_LAYER
    );

    folder_tree(&env);
    pack(&env, "fs:v1", "x86_64", "qemu", &["--rootfs", "tree"]).assert_success();
    assert_eq!(initrd_layer(&env, "fs:v1"), FOLDER_INITRD_LAYER);
}

/// `gzip -dc` of `bytes`.
fn gunzip(env: &TestEnv, bytes: &[u8]) -> Vec<u8> {
    let gzip = require_program("gzip", "gzip");
    let out = std::process::Command::new(gzip)
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "gzip -dc failed in {}",
        env.root().display()
    );
    out.stdout
}

#[test]
fn compress_gzips_the_initrd_that_gzip_and_cpio_read() {
    let env = TestEnv::new();
    folder_tree(&env);
    pack(&env, "fs:plain", "x86_64", "qemu", &["--rootfs", "tree"]).assert_success();
    pack(&env, "fs:gz", "x86_64", "qemu", &["--rootfs", "tree", "-c"]).assert_success();
    let read = |name: &str, dir: &str| {
        ukpm(&env).args(["unpack", name, dir]).run().assert_success();
        env.read(format!("{dir}/unikraft/bin/initrd"))
    };
    let plain = read("fs:plain", "plain");
    let gz = read("fs:gz", "gz");
    assert_eq!(&gz[..2], [0x1f, 0x8b]);
    // Go's gzip header: no name, mtime 0, OS 255.
    assert_eq!(&gz[3..10], [0, 0, 0, 0, 0, 0, 255]);
    let inflated = gunzip(&env, &gz);
    assert_eq!(inflated, plain);
    let listed: Vec<String> = ukpm_test::cpio::list(&inflated)
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, ["/bin", "/bin/app", "/etc", "/etc/hostname", "/etc/name"]);

    // A CPIO file is gzipped too; one already gzipped stays as it is.
    env.write("initrd.cpio", &plain, 0o644);
    env.write("initrd.cpio.gz", &gz, 0o644);
    pack(
        &env,
        "file:gz",
        "x86_64",
        "qemu",
        &["--rootfs", "initrd.cpio", "--compress"],
    )
    .assert_success();
    assert_eq!(gunzip(&env, &read("file:gz", "file-gz")), plain);
    pack(
        &env,
        "file:pre",
        "x86_64",
        "qemu",
        &["--rootfs", "initrd.cpio.gz", "-c"],
    )
    .assert_success();
    assert_eq!(read("file:pre", "file-pre"), gz);
}

#[test]
fn an_embedded_initrd_writes_no_initrd_layer() {
    let env = TestEnv::new();
    folder_tree(&env);
    for key in [
        "CONFIG_LIBVFSCORE_AUTOMOUNT_EINITRD",
        "CONFIG_LIBVFSCORE_ROOTFS_EINITRD",
        "CONFIG_LIBVFSCORE_AUTOMOUNT_CI_EINITRD",
    ] {
        let config = format!("{key}.config");
        env.write(&config, format!("CONFIG_LIBVFSCORE=y\n{key}=y\n"), 0o644);
        let name = format!("embedded:{}", key.len());
        let out = pack(
            &env,
            &name,
            "x86_64",
            "qemu",
            &["--rootfs", "tree", "--kconfig", &config],
        );
        out.assert_success();
        assert!(
            out.stderr.contains("no initrd layer") && out.stderr.contains(key),
            "{}",
            out.stderr
        );
        let layers = layers(&env, &name);
        assert_eq!(layers.len(), 1, "{layers:?}");
        assert_eq!(
            layers[0]["annotations"]["org.unikraft.kernel.image"],
            "/unikraft/bin/kernel"
        );
    }
    // `=n` embeds nothing.
    env.write("n.config", "CONFIG_LIBVFSCORE_AUTOMOUNT_EINITRD=n\n", 0o644);
    pack(
        &env,
        "not:embedded",
        "x86_64",
        "qemu",
        &["--rootfs", "tree", "--kconfig", "n.config"],
    )
    .assert_success();
    assert_eq!(initrd_layer(&env, "not:embedded"), FOLDER_INITRD_LAYER);
}

#[test]
fn a_missing_rootfs_names_the_path() {
    let env = TestEnv::new();
    for missing in ["./nope", "nope.cpio", "oci:nolayout:v1"] {
        let out = pack(&env, "app", "x86_64", "qemu", &["--rootfs", missing]);
        out.assert_failure();
        let shown = missing.trim_start_matches("./").trim_start_matches("oci:");
        let shown = shown.split(':').next().unwrap();
        assert!(out.stderr.contains(shown), "{missing}: {}", out.stderr);
        assert!(!env.store().exists(), "{missing}: the store was created");
    }
}

#[test]
fn a_user_who_is_not_root_packs_an_image_with_unreadable_files_and_leaves_no_temp_files() {
    let env = TestEnv::new();
    let tar = RawTar::new()
        .dir("etc", 0o755)
        .file("etc/shadow", 0o000, b"secret")
        .dir("root", 0o550)
        .file("root/.profile", 0o644, b"profile")
        .dir("ro", 0o555)
        .file("ro/f", 0o444, b"r")
        .finish();
    let mut layout = OciLayoutWriter::create(env.path("img"));
    let layer = layout.blob("application/vnd.oci.image.layer.v1.tar", &tar);
    let manifest = layout.image("amd64", "linux", &[layer]);
    layout.tag("v1", &manifest);
    layout.finish();
    env.write("kernel", b"KERNEL", 0o644);
    // nobody reaches the folder and owns a store folder and a temp folder.
    fs_err::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["nobody", "tmp"] {
        fs_err::create_dir_all(env.path(dir)).unwrap();
        let chown = std::process::Command::new("chown")
            .arg("65534:65534")
            .arg(env.path(dir))
            .status()
            .unwrap();
        assert!(chown.success());
    }
    let store = env.path("nobody/store");
    env.command(require_program("setpriv", "util-linux"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(common::UKPM)
        .env("HOME", env.path("nobody"))
        .env("TMPDIR", env.path("tmp"))
        .arg("--store")
        .arg(&store)
        .args([
            "pack", "app", "--kernel", "kernel", "--arch", "x86_64", "--plat", "qemu",
        ])
        .args(["--rootfs", "oci:img:v1"])
        .run()
        .assert_success();
    let left: Vec<_> = fs_err::read_dir(env.path("tmp")).unwrap().collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    ukpm(&env)
        .arg("--store")
        .arg(&store)
        .args(["unpack", "app", "out"])
        .run()
        .assert_success();
    let listed: Vec<(String, String)> = ukpm_test::cpio::list(&env.read("out/unikraft/bin/initrd"))
        .into_iter()
        .map(|e| (e.name, e.mode))
        .collect();
    let want = [
        ("/etc", "drwxr-xr-x"),
        ("/etc/shadow", "----------"),
        ("/ro", "dr-xr-xr-x"),
        ("/ro/f", "-r--r--r--"),
        ("/root", "dr-xr-x---"),
        ("/root/.profile", "-rw-r--r--"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(n, m)| (n.to_string(), m.to_string())).collect();
    assert_eq!(listed, want);
}
