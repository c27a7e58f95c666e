//! `ukpm save` and `ukpm load` (issue 12 item 6): packages across an air gap as an OCI layout
//! tar. skopeo's `oci-archive:` transport is the oracle both ways; hostile archives must fail
//! with the store exactly as it was.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{pack, ukpm};
use serde_json::Value;
use ukpm_test::{Outcome, RawTar, TestEnv, UkpmCommand, require_program, sha256_hex};

const DEADLINE: Duration = Duration::from_secs(60);
const NAME: &str = "unikraft.org/hello:latest";

fn skopeo(env: &TestEnv) -> UkpmCommand {
    env.command(require_program("skopeo", "skopeo"))
        .arg("--insecure-policy")
}

/// `ukpm --store DIR ARGS` with a deadline.
fn ukpm_in(env: &TestEnv, store: &str, args: &[&str]) -> Outcome {
    ukpm(env).args(["--store", store]).args(args).run_within(DEADLINE)
}

/// A package with two platforms in the default store, with a kernel large enough (200 KB) to
/// cut in the middle, and nothing else (the first pack's index collected).
fn two_platforms(env: &TestEnv) {
    let kernel: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    env.write("kernel", kernel, 0o755);
    pack(env, "hello", "x86_64", "qemu", &[]).assert_success();
    pack(env, "hello", "arm64", "fc", &[]).assert_success();
    ukpm_in(env, "store", &["gc"]).assert_success();
}

/// `reference index manifest arch/plat` per `ls --json` row, sorted.
fn listing(env: &TestEnv, store: &str) -> Vec<String> {
    let out = ukpm_in(env, store, &["--json", "ls"]);
    out.assert_success();
    let mut rows: Vec<String> = out.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {}/{}",
                p["reference"].as_str().unwrap(),
                p["index"].as_str().unwrap(),
                p["manifest"].as_str().unwrap(),
                p["architecture"].as_str().unwrap(),
                p["platform"].as_str().unwrap()
            )
        })
        .collect();
    rows.sort();
    rows
}

fn blob_set(env: &TestEnv, layout: &str) -> BTreeSet<String> {
    env.blob_names(layout).into_iter().collect()
}

/// The regular files of a tar, in order, as (path, bytes).
fn files(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            out.push((path, bytes));
        }
    }
    out
}

fn rebuild(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    files
        .iter()
        .fold(RawTar::new(), |tar, (path, bytes)| tar.file(path, 0o644, bytes))
        .finish()
}

#[test]
fn a_saved_archive_is_read_by_skopeo_byte_for_byte_with_every_platform() {
    let env = TestEnv::new();
    two_platforms(&env);
    let out = ukpm(&env)
        .args(["--json", "save", "hello", "-o", "hello.tar"])
        .run_within(DEADLINE);
    out.assert_success();
    let json = out.json();
    assert_eq!(json["saved"][0]["name"], NAME);
    assert_eq!(json["saved"][0]["manifests_absent"], 0);
    assert_eq!(json["blobs"], 6, "{json}");
    assert_eq!(json["output"], "hello.tar");

    let source = format!("oci-archive:hello.tar:{NAME}");
    let raw = skopeo(&env).args(["inspect", "--raw", &source]).run();
    raw.assert_success();
    let index: Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let target = format!("oci:out:{NAME}");
    skopeo(&env)
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--multi-arch",
            "all",
            &source,
            &target,
        ])
        .run()
        .assert_success();
    assert_eq!(blob_set(&env, "out"), blob_set(&env, "store"));
    for hex in env.blob_names("out") {
        assert_eq!(env.blob("out", &hex), env.blob("store", &hex), "blob {hex}");
    }
}

#[test]
fn saving_twice_gives_the_same_bytes_and_a_round_trip_keeps_every_digest() {
    let env = TestEnv::new();
    two_platforms(&env);
    ukpm_in(&env, "store", &["save", NAME, "-o", "a.tar"]).assert_success();
    ukpm_in(&env, "store", &["save", "hello", "-o", "b.tar"]).assert_success();
    let a = env.read("a.tar");
    assert_eq!(sha256_hex(&a), sha256_hex(env.read("b.tar")));
    assert!(
        !env.root()
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with('.')),
        "no temp file is left"
    );

    let load = ukpm_in(&env, "fresh", &["--json", "load", "a.tar"]);
    load.assert_success();
    let json = load.json();
    assert_eq!(json["loaded"][0]["name"], NAME);
    assert_eq!(json["loaded"][0]["blobs_written"], 6);
    assert_eq!(json["unnamed"], 0);
    assert_eq!(listing(&env, "fresh"), listing(&env, "store"));
    assert_eq!(listing(&env, "fresh").len(), 2, "both platforms");
    assert_eq!(blob_set(&env, "fresh"), blob_set(&env, "store"));
    ukpm_in(&env, "fresh", &["fsck"]).assert_success();

    // A gzip-compressed archive (`ukpm save ... | gzip`) loads as well.
    env.command("sh")
        .args(["-c", "gzip -c a.tar > a.tar.gz"])
        .run()
        .assert_success();
    ukpm_in(&env, "gz", &["load", "a.tar.gz"]).assert_success();
    assert_eq!(listing(&env, "gz"), listing(&env, "store"));

    // Loading again writes nothing new; saving from the loaded store gives the same archive.
    let again = ukpm_in(&env, "fresh", &["--json", "load", "-i", "a.tar"]);
    again.assert_success();
    assert_eq!(again.json()["loaded"][0]["blobs_written"], 0);
    ukpm_in(&env, "fresh", &["save", NAME, "-o", "c.tar"]).assert_success();
    assert_eq!(env.read("c.tar"), a);
}

#[test]
fn save_to_stdout_and_load_from_stdin() {
    let env = TestEnv::new();
    two_platforms(&env);
    let piped = format!("{} --store store save hello -o - > piped.tar", common::UKPM);
    env.command("sh")
        .args(["-c", &piped])
        .run_within(DEADLINE)
        .assert_success();
    ukpm_in(&env, "store", &["save", "hello", "-o", "file.tar"]).assert_success();
    assert_eq!(
        sha256_hex(env.read("piped.tar")),
        sha256_hex(env.read("file.tar"))
    );
    // `-o /dev/stdout` is stdout too: the tar alone, no summary line after it.
    let devstdout = format!(
        "{} --store store save hello -o /dev/stdout | cat > dev.tar",
        common::UKPM
    );
    env.command("sh")
        .args(["-c", &devstdout])
        .run_within(DEADLINE)
        .assert_success();
    assert_eq!(sha256_hex(env.read("dev.tar")), sha256_hex(env.read("file.tar")));
    // A reader that stops early (`| head`) is not a failure.
    let early = format!(
        "{} --store store save hello -o - | head -c 10 >/dev/null",
        common::UKPM
    );
    let out = env
        .command("bash")
        .args(["-c", &format!("set -o pipefail; {early}")])
        .run_within(DEADLINE);
    out.assert_success();
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
    // --json has nowhere to go when the tar is on stdout.
    ukpm_in(&env, "store", &["--json", "save", "hello", "-o", "-"]).assert_failure();

    let load = ukpm(&env)
        .args(["--store", "fresh", "load", "-"])
        .stdin(env.read("file.tar"))
        .run_within(DEADLINE);
    load.assert_success();
    assert!(load.stdout.contains(NAME), "{}", load.stdout);
    assert_eq!(listing(&env, "fresh"), listing(&env, "store"));
}

#[test]
fn an_archive_skopeo_wrote_loads_and_unpacks() {
    let env = TestEnv::new();
    two_platforms(&env);
    let source = format!("oci:store:{NAME}");
    for (archive, name) in [("full.tar", NAME), ("bare.tar", "v1")] {
        let target = format!("oci-archive:{archive}:{name}");
        skopeo(&env)
            .args([
                "copy",
                "--quiet",
                "--preserve-digests",
                "--multi-arch",
                "all",
                &source,
                &target,
            ])
            .run()
            .assert_success();
    }
    let load = ukpm_in(&env, "fresh", &["--json", "load", "full.tar"]);
    load.assert_success();
    assert_eq!(listing(&env, "fresh"), listing(&env, "store"));
    ukpm_in(
        &env,
        "fresh",
        &["unpack", "hello", "out", "--plat", "qemu", "--arch", "x86_64"],
    )
    .assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), env.read("kernel"));
    ukpm_in(&env, "fresh", &["fsck"]).assert_success();

    // A bare tag is kept as written, as in any other tool's layout.
    let bare = ukpm_in(&env, "bare", &["--json", "load", "bare.tar"]);
    bare.assert_success();
    assert_eq!(bare.json()["loaded"][0]["name"], "v1");
    let ls = ukpm_in(&env, "bare", &["--json", "ls"]);
    assert_eq!(ls.json()["packages"][0]["reference"], "v1");
}

/// A store holding one package, an archive of another, and a way to check a load failed
/// leaving the store as it was.
struct Hostile {
    env: TestEnv,
    good: Vec<(String, Vec<u8>)>,
}

impl Hostile {
    fn new() -> Hostile {
        let env = TestEnv::new();
        two_platforms(&env);
        ukpm_in(&env, "store", &["save", "hello", "-o", "good.tar"]).assert_success();
        let good = files(&env.read("good.tar"));
        pack(&env, "other", "x86_64", "qemu", &[]).assert_success();
        ukpm_in(&env, "store", &["rm", NAME]).assert_success();
        ukpm_in(&env, "store", &["gc"]).assert_success();
        Hostile { env, good }
    }

    /// Loads `archive`, which must fail saying `expect`, with the store unchanged.
    fn refused(&self, archive: &[u8], expect: &str) {
        self.env.write("bad.tar", archive, 0o644);
        let before = self.env.dir_state("store");
        let out = ukpm_in(&self.env, "store", &["load", "bad.tar"]);
        out.assert_failure();
        assert!(
            out.stderr.contains(expect),
            "expected `{expect}` in:\n{}",
            out.stderr
        );
        assert_eq!(
            self.env.dir_state("store"),
            before,
            "the store changed:\n{}",
            out.stderr
        );
    }

    fn layer(&self) -> usize {
        self.good
            .iter()
            .position(|(_, bytes)| bytes.len() > 50_000)
            .expect("the kernel layer")
    }
}

#[test]
fn hostile_archives_fail_and_leave_the_store_unchanged() {
    let h = Hostile::new();
    // The good archive itself loads (the harness is right).
    let mut files = h.good.clone();

    // A blob whose bytes do not match its name.
    let layer = h.layer();
    files[layer].1[1000] ^= 1;
    h.refused(&rebuild(&files), "is damaged or truncated");

    // A blob missing.
    let mut files = h.good.clone();
    files.remove(layer);
    h.refused(&rebuild(&files), "lacks the blob");

    // An entry escaping the folder, even with good content after it.
    let mut files = h.good.clone();
    files.insert(0, ("../evil".into(), b"x".to_vec()));
    h.refused(&rebuild(&files), "escapes");
    let mut files = h.good.clone();
    files.insert(0, ("/etc/evil".into(), b"x".to_vec()));
    h.refused(&rebuild(&files), "absolute");

    // A link.
    let tar = h
        .good
        .iter()
        .fold(
            RawTar::new().symlink("blobs/sha256/link", "/etc/passwd"),
            |t, (p, b)| t.file(p, 0o644, b),
        )
        .finish();
    h.refused(&tar, "only files and folders");

    // index.json twice, differently.
    let mut files = h.good.clone();
    files.push((
        "index.json".into(),
        br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
    ));
    h.refused(&rebuild(&files), "twice");

    // Truncated in the middle of the kernel blob.
    let good = h.env.read("good.tar");
    let offset = good.windows(4).position(|w| w == &h.good[layer].1[..4]).unwrap();
    h.refused(&good[..offset + 5000], "is damaged or truncated");
    // Truncated before index.json.
    let cut = good.len() - 3 * 1024;
    h.refused(&good[..cut], "no index.json");

    // A name that is a digest, not a tag.
    let mut files = h.good.clone();
    let index = files.iter_mut().find(|(p, _)| p == "index.json").unwrap();
    let text = String::from_utf8(index.1.clone()).unwrap();
    index.1 = text
        .replace(
            NAME,
            "unikraft.org/hello@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )
        .into_bytes();
    h.refused(&rebuild(&files), "by digest");

    // A descriptor whose size is not its blob's.
    let mut files = h.good.clone();
    let index = files.iter_mut().find(|(p, _)| p == "index.json").unwrap();
    let mut doc: Value = serde_json::from_slice(&index.1).unwrap();
    let size = doc["manifests"][0]["size"].as_u64().unwrap();
    doc["manifests"][0]["size"] = Value::from(size + 1);
    index.1 = serde_json::to_vec(&doc).unwrap();
    h.refused(&rebuild(&files), "where its descriptor says");

    // No index.json at all, and plain garbage.
    let files: Vec<_> = h
        .good
        .iter()
        .filter(|(p, _)| p != "index.json")
        .cloned()
        .collect();
    h.refused(&rebuild(&files), "no index.json");
    h.refused(b"this is not a tar", "not a complete tar");
    let json = ukpm_in(&h.env, "store", &["--json", "load", "bad.tar"]);
    json.assert_failure();
    assert_eq!(json.json()["error"]["code"], "invalid_input");

    // After all that, the good archive loads.
    let out = ukpm_in(&h.env, "store", &["load", "good.tar"]);
    out.assert_success();
    ukpm_in(&h.env, "store", &["fsck"]).assert_success();
}

#[test]
fn a_failed_save_leaves_no_file() {
    let env = TestEnv::new();
    two_platforms(&env);
    env.write("old.tar", b"old", 0o644);
    let out = ukpm_in(&env, "store", &["save", "hello", "nothere", "-o", "old.tar"]);
    out.assert_failure();
    assert_eq!(env.read("old.tar"), b"old");

    // A damaged blob in the store fails the save; the old file stays, no temp file is left.
    let layer = env
        .blob_names("store")
        .into_iter()
        .find(|hex| env.blob("store", hex).len() > 50_000)
        .unwrap();
    env.flip_bit(format!("store/blobs/sha256/{layer}"), 100);
    let out = ukpm_in(&env, "store", &["save", "hello", "-o", "old.tar"]);
    out.assert_failure();
    assert_eq!(env.read("old.tar"), b"old");
    let names: Vec<String> = env
        .root()
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".old.tar")), "{names:?}");
}

#[test]
fn save_writes_into_a_fifo_instead_of_replacing_it() {
    // Regression: the temp-file-and-rename replaced a device (`-o /dev/full`) with a regular
    // file. What is not a regular file is written directly; a fifo stands in for a device so
    // that a regression cannot damage the machine's /dev.
    let env = TestEnv::new();
    two_platforms(&env);
    env.command("mkfifo").arg("fifo").run().assert_success();
    let reader = env.command("sh").args(["-c", "cat fifo > from-fifo.tar"]).spawn();
    ukpm_in(&env, "store", &["save", "hello", "-o", "fifo"]).assert_success();
    reader.wait_within(DEADLINE).assert_success();
    assert!(
        !fs_err::symlink_metadata(env.path("fifo")).unwrap().is_file(),
        "still a fifo"
    );
    ukpm_in(&env, "store", &["save", "hello", "-o", "file.tar"]).assert_success();
    assert_eq!(
        sha256_hex(env.read("from-fifo.tar")),
        sha256_hex(env.read("file.tar"))
    );

    // A symlink is followed: its target gets the archive.
    env.write("target.tar", b"old", 0o644);
    fs_err::os::unix::fs::symlink("target.tar", env.path("link.tar")).unwrap();
    ukpm_in(&env, "store", &["save", "hello", "-o", "link.tar"]).assert_success();
    assert!(
        fs_err::symlink_metadata(env.path("link.tar"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(env.read("target.tar"), env.read("file.tar"));
}

#[test]
fn docker_style_names_load_under_the_full_reference_and_unnamed_entries_are_skipped() {
    // `docker save` writes the bare tag as `org.opencontainers.image.ref.name` and the full
    // reference as `io.containerd.image.name`; an entry with neither is not loaded.
    let env = TestEnv::new();
    two_platforms(&env);
    ukpm_in(&env, "store", &["save", "hello", "-o", "good.tar"]).assert_success();
    let mut files = files(&env.read("good.tar"));
    let index = files.iter_mut().find(|(p, _)| p == "index.json").unwrap();
    let mut doc: Value = serde_json::from_slice(&index.1).unwrap();
    let entry = doc["manifests"][0].clone();
    let mut docker = entry.clone();
    docker["annotations"]["org.opencontainers.image.ref.name"] = "1.0".into();
    docker["annotations"]["io.containerd.image.name"] = "docker.io/library/hello:1.0".into();
    let mut unnamed = entry;
    unnamed["annotations"] = serde_json::json!({});
    doc["manifests"] = serde_json::json!([docker, unnamed]);
    index.1 = serde_json::to_vec(&doc).unwrap();
    env.write("docker.tar", rebuild(&files), 0o644);

    let out = ukpm_in(&env, "fresh", &["--json", "load", "docker.tar"]);
    out.assert_success();
    assert_eq!(out.json()["loaded"][0]["name"], "docker.io/library/hello:1.0");
    assert_eq!(out.json()["unnamed"], 1);
    assert_eq!(out.json()["loaded"].as_array().unwrap().len(), 1);
}
