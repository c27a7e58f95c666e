//! Stores other tools wrote, and local oddities: layouts whose refs are bare tags (`skopeo copy
//! ... oci:DIR:v1`, `umoci new --image DIR:v1`), roots of media types ukpm does not understand,
//! blobs that are fifos or symlinks, documents over the size caps, a store the user cannot
//! write, and `--concurrency` out of range. skopeo and umoci are required: a missing one fails
//! the test with its `apt-get` line.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{pack_conformance, ukpm};
use serde_json::{Value, json};
use ukpm_test::registry::Registry;
use ukpm_test::{OciLayoutWriter, Outcome, TestEnv, UkpmCommand, conformance, require_program};

/// Long enough for any of these commands, short enough that a blocking read fails the test.
const DEADLINE: Duration = Duration::from_secs(30);

fn skopeo_cmd(env: &TestEnv) -> UkpmCommand {
    env.command(require_program("skopeo", "skopeo"))
        .arg("--insecure-policy")
}

fn umoci_cmd(env: &TestEnv) -> UkpmCommand {
    env.command(require_program("umoci", "umoci"))
}

/// `ukpm --store DIR` with a deadline.
fn ukpm_in(env: &TestEnv, store: &str, args: &[&str]) -> Outcome {
    ukpm(env).args(["--store", store]).args(args).run_within(DEADLINE)
}

/// The `reference` of every `ls --json` package, in order.
fn listed(out: &Outcome) -> Vec<String> {
    out.assert_success();
    out.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reference"].as_str().unwrap().to_string())
        .collect()
}

fn ref_names(env: &TestEnv, layout: &str) -> Vec<String> {
    let index: Value = serde_json::from_slice(&env.read(format!("{layout}/index.json"))).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect()
}

/// A ukpm package copied by skopeo into `other` under the bare tag `tag`, as `skopeo copy
/// oci:DIR:TAG` writes it.
fn skopeo_copy_as(env: &TestEnv, tag: &str) {
    let from = format!("oci:store:{}", conformance::REFERENCE);
    let to = format!("oci:other:{tag}");
    skopeo_cmd(env)
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--multi-arch",
            "all",
            &from,
            &to,
        ])
        .run()
        .assert_success();
    assert!(
        ref_names(env, "other").contains(&tag.to_string()),
        "skopeo wrote the bare tag"
    );
}

#[test]
fn a_bare_tag_skopeo_wrote_is_usable_by_that_name_in_every_command() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    skopeo_copy_as(&env, "v1");

    // ls shows the name as written, not as `unikraft.org/v1:latest`.
    let ls = ukpm_in(&env, "other", &["--json", "ls"]);
    assert_eq!(listed(&ls), ["v1"]);
    let package = &ls.json()["packages"][0];
    assert_eq!(package["name"], "v1");
    assert_eq!(package["tag"], Value::Null);
    let table = ukpm_in(&env, "other", &["ls"]);
    table.assert_success();
    assert!(
        table.stdout.lines().nth(1).unwrap().starts_with("v1 "),
        "{}",
        table.stdout
    );
    // The glob matches the name as written.
    assert_eq!(
        listed(&ukpm_in(&env, "other", &["--json", "ls", "--name", "v*"])),
        ["v1"]
    );

    let inspect = ukpm_in(&env, "other", &["--json", "inspect", "v1"]);
    inspect.assert_success();
    assert_eq!(inspect.json()["reference"], "v1");
    assert_eq!(inspect.json()["manifests"].as_array().unwrap().len(), 1);

    let unpack = ukpm_in(&env, "other", &["--json", "unpack", "v1", "out"]);
    unpack.assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), env.read("kernel"));

    // tag gives it a full name; rm takes the bare tag away; gc keeps what the new name needs.
    ukpm_in(&env, "other", &["tag", "v1", "unikraft.org/copy:1"]).assert_success();
    let removed = ukpm_in(&env, "other", &["--json", "rm", "v1"]);
    removed.assert_success();
    assert_eq!(removed.json()["removed"], json!(["v1"]));
    assert_eq!(ref_names(&env, "other"), ["unikraft.org/copy:1"]);
    ukpm_in(&env, "other", &["gc"]).assert_success();
    ukpm_in(&env, "other", &["fsck"]).assert_success();
    ukpm_in(&env, "other", &["unpack", "unikraft.org/copy:1", "out2"]).assert_success();
}

#[test]
fn a_bare_tag_is_pushed_by_that_name() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack_conformance(&env).assert_success();
    skopeo_copy_as(&env, "v1");
    let to = format!("{}/foreign/app:v1", registry.host());
    let push = ukpm_in(&env, "other", &["--json", "push", "v1", "--to", &to]);
    push.assert_success();
    assert_eq!(push.json()["reference"], to.as_str());
    let pulled = ukpm(&env)
        .args(["--json", "pull", "--all-platforms", &to])
        .run_within(DEADLINE);
    pulled.assert_success();
}

#[test]
fn a_bare_tag_that_is_not_a_repository_name_matches_literally() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    // Capitals are valid in a tag but not in a repository: it only ever matches as written.
    skopeo_copy_as(&env, "V1.0-RC");
    assert_eq!(listed(&ukpm_in(&env, "other", &["--json", "ls"])), ["V1.0-RC"]);
    let inspect = ukpm_in(&env, "other", &["--json", "inspect", "V1.0-RC"]);
    inspect.assert_success();
    assert_eq!(inspect.json()["reference"], "V1.0-RC");
    ukpm_in(&env, "other", &["unpack", "V1.0-RC", "out"]).assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), env.read("kernel"));
    let registry = Registry::plain();
    let to = format!("{}/foreign/rc:V1.0-RC", registry.host());
    ukpm_in(&env, "other", &["push", "V1.0-RC", "--to", &to]).assert_success();
    ukpm_in(&env, "other", &["tag", "V1.0-RC", "rc:1"]).assert_success();
    let missing = ukpm_in(&env, "other", &["inspect", "V2"]);
    missing.assert_code(1);
    assert!(missing.stderr.contains("no ref named `V2`"), "{}", missing.stderr);
    ukpm_in(&env, "other", &["rm", "V1.0-RC"]).assert_success();
    assert_eq!(ref_names(&env, "other"), ["unikraft.org/rc:1"]);
}

#[test]
fn an_exact_ref_name_wins_over_the_reference_it_parses_to() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    skopeo_copy_as(&env, "v1");
    // A second package, stored under the full name `v1` parses to.
    env.write("other-kernel", b"OTHER KERNEL\n", 0o644);
    ukpm(&env)
        .args([
            "--store",
            "other",
            "pack",
            "unikraft.org/v1:latest",
            "--kernel",
            "other-kernel",
        ])
        .args(["--arch", "arm64", "--plat", "fc"])
        .run()
        .assert_success();
    let by_bare = ukpm_in(&env, "other", &["--json", "inspect", "v1"]);
    assert_eq!(by_bare.json()["reference"], "v1");
    let by_full = ukpm_in(&env, "other", &["--json", "inspect", "unikraft.org/v1:latest"]);
    assert_eq!(by_full.json()["reference"], "unikraft.org/v1:latest");
    assert_ne!(by_bare.json()["descriptor"], by_full.json()["descriptor"]);
    // unpack resolves the same way.
    ukpm_in(&env, "other", &["unpack", "v1", "bare"]).assert_success();
    assert_eq!(env.read("bare/unikraft/bin/kernel"), env.read("kernel"));
    ukpm_in(&env, "other", &["unpack", "unikraft.org/v1:latest", "full"]).assert_success();
    assert_eq!(env.read("full/unikraft/bin/kernel"), b"OTHER KERNEL\n");
}

#[test]
fn an_image_umoci_made_is_listed_inspected_and_kept_by_gc() {
    let env = TestEnv::new();
    umoci_cmd(&env)
        .args(["init", "--layout", "umoci"])
        .run()
        .assert_success();
    umoci_cmd(&env)
        .args(["new", "--image", "umoci:v1"])
        .run()
        .assert_success();
    assert_eq!(ref_names(&env, "umoci"), ["v1"]);
    let blobs_before = env.blob_names("umoci");

    let ls = ukpm_in(&env, "umoci", &["--json", "ls"]);
    assert_eq!(listed(&ls), ["v1"]);
    assert_eq!(ls.json()["packages"][0]["platform"], "linux");
    let inspect = ukpm_in(&env, "umoci", &["--json", "inspect", "v1"]);
    inspect.assert_success();
    assert_eq!(inspect.json()["manifests"][0]["config"]["os"], "linux");

    // gc keeps the config and manifest of the image umoci made.
    ukpm_in(&env, "umoci", &["gc"]).assert_success();
    assert_eq!(env.blob_names("umoci"), blobs_before);
    umoci_cmd(&env)
        .args(["stat", "--image", "umoci:v1"])
        .run()
        .assert_success();

    // ukpm's tag is a name umoci reads; ukpm's rm of the bare tag leaves umoci's layout valid.
    ukpm_in(&env, "umoci", &["tag", "v1", "unikraft.org/base:v1"]).assert_success();
    ukpm_in(&env, "umoci", &["rm", "v1"]).assert_success();
    umoci_cmd(&env)
        .args(["stat", "--image", "umoci:unikraft.org/base:v1"])
        .run()
        .assert_success();
}

/// A layout with an image under `v1`, and beside it roots ukpm does not understand: an artifact
/// manifest that signs the image and carries a blob, a cosign-style signature of an unknown media
/// type, and a plain layer descriptor. Returns the image's blob names.
fn foreign_roots_layout(env: &TestEnv) -> Vec<String> {
    let mut layout = OciLayoutWriter::create(env.path("foreign"));
    let kernel = layout.blob("application/vnd.oci.image.layer.v1.tar", b"not really a tar");
    let image = layout.image("amd64", "linux", &[kernel]);
    layout.tag("v1", &image);
    let signature = layout.blob("application/vnd.example.signature", b"sig bytes");
    let artifact = layout.json_blob(
        "application/vnd.oci.artifact.manifest.v1+json",
        &json!({
            "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
            "artifactType": "application/vnd.example.signature",
            "blobs": [signature],
            "subject": image,
        }),
    );
    layout.tag("v1.sig", &artifact);
    let payload = layout.blob("application/vnd.dev.cosign.simplesigning.v1+json", b"{}");
    let cosign = layout.json_blob(
        "application/vnd.example.cosign+json",
        &json!({"layers": [payload], "critical": {"image": {"docker-manifest-digest": image["digest"]}}}),
    );
    layout.tag("sha256-abc.sig", &cosign);
    let plain = layout.blob("application/vnd.oci.image.layer.v1.tar+gzip", b"\x1f\x8b plain");
    layout.tag("a-layer", &plain);
    layout.finish();
    env.blob_names("foreign")
}

#[test]
fn roots_of_unknown_media_types_are_skipped_by_ls_and_kept_by_gc() {
    let env = TestEnv::new();
    let blobs = foreign_roots_layout(&env);
    let ls = ukpm_in(&env, "foreign", &["--json", "ls"]);
    ls.assert_success();
    assert_eq!(listed(&ls), ["v1"]);
    let mut skipped: Vec<String> = ls.json()["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["name"].as_str().unwrap(),
                s["media_type"].as_str().unwrap()
            )
        })
        .collect();
    skipped.sort();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (row, name) in skipped.iter().zip(["a-layer", "sha256-abc.sig", "v1.sig"]) {
        assert!(row.starts_with(&format!("{name} ")), "{skipped:?}");
    }
    assert!(skipped[2].ends_with("artifact.manifest.v1+json"), "{skipped:?}");
    // For people: the table on stdout, a note per skipped root on stderr.
    let human = ukpm_in(&env, "foreign", &["ls"]);
    human.assert_success();
    assert!(!human.stdout.contains("v1.sig"), "{}", human.stdout);
    for name in ["v1.sig", "sha256-abc.sig", "a-layer"] {
        assert!(
            human.stderr.contains(&format!("note: skipped {name}: ")),
            "ls notes that it skipped {name}: {}",
            human.stderr
        );
    }
    // A name filter applies to them too.
    let filtered = ukpm_in(&env, "foreign", &["--json", "ls", "--name", "v1*"]);
    assert_eq!(filtered.json()["skipped"].as_array().unwrap().len(), 1);
    let inspect = ukpm_in(&env, "foreign", &["inspect", "v1.sig"]);
    inspect.assert_code(1);
    assert!(inspect.stderr.contains("artifact.manifest"), "{}", inspect.stderr);

    // A stray blob goes; everything a root may reference stays.
    let stray = env.write(
        "foreign/blobs/sha256/".to_string() + &ukpm_test::sha256_hex(b"stray"),
        b"stray",
        0o644,
    );
    assert!(stray.exists());
    let gc = ukpm_in(&env, "foreign", &["--json", "gc"]);
    gc.assert_success();
    assert_eq!(env.blob_names("foreign"), blobs);
    // fsck agrees: nothing there is collectable.
    let fsck = ukpm_in(&env, "foreign", &["--json", "fsck"]);
    fsck.assert_success();
    assert_eq!(fsck.json()["unreachable"], 0, "{}", fsck.stdout);
}

/// The store path of the conformance package's kernel layer.
fn kernel_layer(env: &TestEnv) -> PathBuf {
    let inspect = ukpm(env)
        .args(["--json", "inspect", conformance::REFERENCE])
        .run();
    inspect.assert_success();
    let digest = inspect.json()["manifests"][0]["manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    env.store()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn a_blob_that_is_a_fifo_is_damage_and_never_blocks_a_read() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let path = kernel_layer(&env);
    fs_err::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(status.success());

    let fsck = ukpm(&env).args(["--json", "fsck"]).run_within(DEADLINE);
    assert!(!fsck.timed_out, "fsck blocked on the fifo");
    fsck.assert_code(1);
    let problems = fsck.json()["problems"].clone();
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "not_a_file" && p["message"].as_str().unwrap().contains("fifo")),
        "{problems}"
    );
    let unpack = ukpm(&env)
        .args(["unpack", conformance::REFERENCE, "out"])
        .run_within(DEADLINE);
    assert!(!unpack.timed_out, "unpack blocked on the fifo");
    unpack.assert_code(1);
    assert!(unpack.stderr.contains("fifo"), "{}", unpack.stderr);
    // ls and inspect read only documents: they still work.
    ukpm(&env).arg("ls").run_within(DEADLINE).assert_success();
}

#[test]
fn a_blob_that_is_a_symlink_is_damage_even_when_its_target_is_right() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let path = kernel_layer(&env);
    fs_err::remove_file(&path).unwrap();
    fs_err::os::unix::fs::symlink(env.path("kernel"), &path).unwrap();
    let unpack = ukpm(&env)
        .args(["unpack", conformance::REFERENCE, "out"])
        .run_within(DEADLINE);
    unpack.assert_code(1);
    assert!(unpack.stderr.contains("symlink"), "{}", unpack.stderr);
    let fsck = ukpm(&env).args(["--json", "fsck"]).run_within(DEADLINE);
    fsck.assert_code(1);
    assert!(fsck.stdout.contains("not_a_file"), "{}", fsck.stdout);
}

#[test]
fn a_config_over_the_cap_is_refused_by_ls_and_unpack_naming_blob_and_cap() {
    let env = TestEnv::new();
    let mut layout = OciLayoutWriter::create(env.path("big"));
    let kernel = layout.blob("application/vnd.oci.image.layer.v1.tar", b"kernel");
    // A valid config padded past 8 MiB with whitespace.
    let mut config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    config.resize((ukpm::types::limits::CONFIG_LIMIT + 1) as usize, b' ');
    let config = layout.blob("application/vnd.oci.image.config.v1+json", &config);
    let manifest = layout.json_blob(
        "application/vnd.oci.image.manifest.v1+json",
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": [kernel]}),
    );
    layout.tag("v1", &manifest);
    layout.finish();
    let digest = config["digest"].as_str().unwrap();
    let cap = ukpm::types::limits::CONFIG_LIMIT.to_string();
    for args in [&["ls"][..], &["unpack", "v1", "out"][..], &["inspect", "v1"][..]] {
        let out = ukpm_in(&env, "big", args);
        out.assert_code(1);
        assert!(
            out.stderr.contains(digest) && out.stderr.contains(&cap) && out.stderr.contains("cap"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_manifest_over_the_cap_is_refused_naming_blob_and_cap() {
    let env = TestEnv::new();
    let mut layout = OciLayoutWriter::create(env.path("big"));
    let mut manifest = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":0},"layers":[]}"#.to_vec();
    manifest.resize((ukpm::types::limits::MANIFEST_LIMIT + 1) as usize, b' ');
    let manifest = layout.blob("application/vnd.oci.image.manifest.v1+json", &manifest);
    layout.tag("v1", &manifest);
    layout.finish();
    let digest = manifest["digest"].as_str().unwrap();
    for args in [&["ls"][..], &["inspect", "v1"][..], &["gc"][..]] {
        let out = ukpm_in(&env, "big", args);
        out.assert_code(1);
        assert!(out.stderr.contains(digest), "{args:?}: {}", out.stderr);
    }
    let ls = ukpm_in(&env, "big", &["ls"]);
    assert!(
        ls.stderr
            .contains(&ukpm::types::limits::MANIFEST_LIMIT.to_string()),
        "{}",
        ls.stderr
    );
}

#[test]
fn concurrency_out_of_range_is_a_usage_error_never_a_panic() {
    let env = TestEnv::new();
    for n in ["0", "65", "18446744073709551615", "-1", "many"] {
        let flag = ukpm(&env)
            .args([format!("--concurrency={n}").as_str(), "ls"])
            .run_within(DEADLINE);
        flag.assert_code(2);
        assert!(flag.stderr.contains("--concurrency"), "{n}: {}", flag.stderr);
        assert!(!flag.stderr.contains("panicked"), "{}", flag.stderr);
        let var = ukpm(&env)
            .env("UKPM_CONCURRENCY", n)
            .arg("ls")
            .run_within(DEADLINE);
        var.assert_code(2);
        assert!(!var.stderr.contains("panicked"), "{}", var.stderr);
    }
    for n in ["1", "64"] {
        ukpm(&env)
            .args(["--concurrency", n, "ls"])
            .run_within(DEADLINE)
            .assert_success();
    }
    for n in [0u64, 65, u64::MAX] {
        env.write("config.json", format!("{{\"concurrency\": {n}}}"), 0o644);
        let file = ukpm(&env)
            .env("UKPM_CONFIG", env.path("config.json"))
            .arg("ls")
            .run_within(DEADLINE);
        file.assert_code(1);
        assert!(
            file.stderr.contains("concurrency")
                && file.stderr.contains("1..=64")
                && file.stderr.contains("config.json"),
            "{n}: {}",
            file.stderr
        );
        assert!(!file.stderr.contains("panicked"), "{}", file.stderr);
    }
}

/// Makes `path` and everything under it unwritable (folders 0555, files 0444).
fn make_read_only(path: &Path) {
    let meta = fs_err::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        for entry in fs_err::read_dir(path).unwrap() {
            make_read_only(&entry.unwrap().path());
        }
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
    } else if meta.is_file() {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
}

/// `ukpm` run as `nobody` (uid and gid 65534, no groups) through util-linux's setpriv: the tests
/// run as root, who may write anything.
fn ukpm_as_nobody<'e>(env: &'e TestEnv, out_dir: &Path) -> impl Fn(&[&str]) -> Outcome + 'e {
    let setpriv = require_program("setpriv", "util-linux");
    let out_dir: PathBuf = out_dir.to_path_buf();
    move |args: &[&str]| {
        env.command(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(common::UKPM)
            .env("HOME", &out_dir)
            .args(args)
            .run_within(DEADLINE)
    }
}

#[test]
fn a_store_the_user_cannot_write_can_be_listed_inspected_and_unpacked() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    // nobody must reach the folder, and own a place to unpack into.
    fs_err::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.path("nobody");
    fs_err::create_dir_all(&out).unwrap();
    std::process::Command::new("chown")
        .args(["65534:65534"])
        .arg(&out)
        .status()
        .unwrap();
    // No lock files yet: a reader must not need to create them.
    for lock in ["ukpm.lock", "ukpm-gc.lock"] {
        let _ = fs_err::remove_file(env.store().join(lock));
    }
    make_read_only(&env.store());
    let before = env.dir_state(env.store());
    let nobody = ukpm_as_nobody(&env, &out);

    // The harness works: nobody really cannot write the store.
    let touch = std::process::Command::new(require_program("setpriv", "util-linux"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "touch"])
        .arg(env.store().join("probe"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!touch.success(), "nobody could write the read-only store");

    let ls = nobody(&["--json", "ls"]);
    assert_eq!(listed(&ls), [conformance::REFERENCE]);
    nobody(&["--json", "inspect", conformance::REFERENCE]).assert_success();
    let unpack_dir = out.join("unpacked");
    let unpack_dir = unpack_dir.to_str().unwrap();
    nobody(&["--json", "unpack", conformance::REFERENCE, unpack_dir]).assert_success();
    assert_eq!(
        fs_err::read(out.join("unpacked/unikraft/bin/kernel")).unwrap(),
        env.read("kernel")
    );
    nobody(&["fsck"]).assert_success();
    // Writing still fails, clearly, and nothing changed.
    let tag = nobody(&["tag", conformance::REFERENCE, "other:1"]);
    tag.assert_code(1);
    assert!(tag.stderr.contains("ermission denied"), "{}", tag.stderr);
    assert_eq!(env.dir_state(env.store()), before);
}

#[test]
fn login_and_logout_write_through_a_docker_config_that_is_a_symlink() {
    let env = TestEnv::new();
    let registry = Registry::basic("tester", "s3cret-pw");
    // A dotfiles manager's link, relative, to a config that holds another registry's login.
    env.write(
        "dotfiles/docker-config.json",
        br#"{"auths":{"other.example":{"auth":"b3RoZXI6cHc="}}}"#,
        0o600,
    );
    fs_err::create_dir_all(env.path("docker")).unwrap();
    let link = env.path("docker/config.json");
    fs_err::os::unix::fs::symlink("../dotfiles/docker-config.json", &link).unwrap();
    let login = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .args([
            "login",
            &registry.host(),
            "--username",
            "tester",
            "--password-stdin",
        ])
        .stdin("s3cret-pw\n")
        .run_within(DEADLINE);
    login.assert_success();
    assert!(
        fs_err::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "login replaced the link with a file"
    );
    let config: Value = serde_json::from_slice(&env.read("dotfiles/docker-config.json")).unwrap();
    assert!(config["auths"][registry.host()]["auth"].is_string(), "{config}");
    assert!(config["auths"]["other.example"]["auth"].is_string(), "{config}");
    ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .args(["logout", &registry.host()])
        .run_within(DEADLINE)
        .assert_success();
    assert!(fs_err::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let config: Value = serde_json::from_slice(&env.read("dotfiles/docker-config.json")).unwrap();
    assert!(config["auths"].get(registry.host()).is_none(), "{config}");
}
