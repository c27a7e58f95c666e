//! containerd as the store (`--containerd SOCKET --namespace NS`): every test starts its own
//! `containerd` (temp root, state and socket; CRI off) and checks what ukpm wrote with `ctr`,
//! containerd's own client: the image records, the blobs and their `gc.ref` labels, leases,
//! containerd's garbage collector and its unpacker; and the other way round, that ukpm lists,
//! unpacks and pushes images `ctr` pulled.
#![cfg(feature = "containerd")]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests print diagnostics to the output libtest captures"
)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{pack_conformance, rows, ukpm};
use ukpm_test::containerd::Containerd;
use ukpm_test::registry::Registry;
use ukpm_test::{Outcome, TestEnv, UkpmCommand, conformance, mode_of, require_program};

/// The namespace the tests use: not `default`, so `--namespace` is really honoured.
const NS: &str = "ukpm-test";

const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The five blobs of the conformance package, sorted.
fn conformance_digests() -> Vec<String> {
    let mut all = [
        conformance::KERNEL_LAYER,
        conformance::INITRD_LAYER,
        conformance::CONFIG,
        conformance::MANIFEST,
        conformance::INDEX,
    ]
    .map(String::from)
    .to_vec();
    all.sort();
    all
}

/// `ukpm --containerd SOCKET --namespace NS` in the test folder.
fn ukpm_ctd(env: &TestEnv, containerd: &Containerd) -> UkpmCommand {
    ukpm(env)
        .arg("--containerd")
        .arg(containerd.socket())
        .args(["--namespace", NS])
}

/// `ukpm pack` of the conformance inputs into containerd, exactly as `common::pack_conformance`
/// packs them into the local store.
fn pack_conformance_into(env: &TestEnv, containerd: &Containerd) -> Outcome {
    env.conformance_inputs();
    ukpm_ctd(env, containerd)
        .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
        .args([
            "pack",
            conformance::REFERENCE,
            "--kernel",
            "kernel",
            "--initrd",
            "initramfs.cpio",
        ])
        .args(["--plat", "qemu", "--arch", "x86_64"])
        .args(["--annotation", conformance::KRAFTKIT_VERSION_ANNOTATION])
        .arg("--")
        .args(conformance::ARGS)
        .run()
}

fn skopeo(env: &TestEnv, args: &[&str]) -> Outcome {
    let skopeo = require_program("skopeo", "skopeo");
    let out = env.command(skopeo).args(args).run();
    out.assert_success();
    out
}

/// The labels of one blob, or a panic naming what containerd holds.
fn labels_of<'a>(
    labels: &'a BTreeMap<String, BTreeMap<String, String>>,
    digest: &str,
) -> &'a BTreeMap<String, String> {
    labels
        .get(digest)
        .unwrap_or_else(|| panic!("{digest} is not in containerd's content: {labels:#?}"))
}

/// The five blobs an image recorded in containerd reaches, found by following containerd's own
/// records and `gc.ref` labels (index -> m.0 -> config, l.0...), sorted.
fn reachable(containerd: &Containerd, reference: &str) -> Vec<String> {
    let record = containerd
        .image_records(NS)
        .into_iter()
        .find(|r| r.name == reference)
        .unwrap_or_else(|| panic!("containerd has no image {reference}"));
    let labels = containerd.content_labels(NS);
    let mut found = vec![record.digest.clone()];
    let mut queue = vec![record.digest];
    while let Some(digest) = queue.pop() {
        for (key, child) in labels_of(&labels, &digest) {
            if key.starts_with("containerd.io/gc.ref.content.") && !found.contains(child) {
                found.push(child.clone());
                queue.push(child.clone());
            }
        }
    }
    found.sort();
    found
}

/// Checks the shape of a failure: exit 1, nothing on stdout, and on stderr exactly one `error:`
/// line, exactly one `hint:` line and otherwise only `  caused by:` lines (no panic, no log
/// noise). Returns stderr.
#[track_caller]
fn assert_error_with_hint(out: &Outcome) -> String {
    out.assert_failure();
    assert_eq!(out.stdout, "", "{}", out.snapshot_text());
    let lines: Vec<&str> = out.stderr.lines().collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("error: ")),
        "stderr does not start with `error:`\n{}",
        out.snapshot_text()
    );
    assert_eq!(count("error: "), 1, "{}", out.snapshot_text());
    assert_eq!(count("hint: "), 1, "no single hint\n{}", out.snapshot_text());
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("error: ") || l.starts_with("hint: ") || l.starts_with("  caused by: ")),
        "stray lines on stderr\n{}",
        out.snapshot_text()
    );
    out.stderr.clone()
}

#[test]
fn a_pack_into_containerd_is_what_ctr_sees_and_ukpm_reads_back() {
    let env = TestEnv::new();
    let containerd = Containerd::start();
    pack_conformance_into(&env, &containerd).assert_success();

    // The image record: the full reference, with the index as its target.
    assert_eq!(containerd.images(NS), [conformance::REFERENCE]);
    let records = containerd.image_records(NS);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].digest, conformance::INDEX);
    assert_eq!(records[0].media_type, INDEX_TYPE);
    // containerd read the index: its PLATFORMS column names our platform.
    let listing = containerd.ctr_ok(NS, &["images", "ls"]);
    println!("ctr images ls:\n{listing}");
    assert!(listing.contains("qemu/x86_64"), "{listing}");

    // The blobs: the five of the conformance vectors and nothing else, byte-exact.
    assert_eq!(containerd.content(NS), conformance_digests());
    assert_eq!(
        containerd.blob(NS, conformance::INDEX),
        conformance::INDEX_JSON.as_bytes()
    );
    assert_eq!(
        containerd.blob(NS, conformance::MANIFEST),
        conformance::MANIFEST_JSON.as_bytes()
    );
    assert_eq!(
        containerd.blob(NS, conformance::CONFIG),
        conformance::CONFIG_JSON.as_bytes()
    );

    // The GC edges containerd follows, as `ctr content ls` prints them.
    let text = containerd.ctr_ok(NS, &["content", "ls"]);
    println!("ctr content ls:\n{text}");
    for edge in [
        format!("containerd.io/gc.ref.content.m.0={}", conformance::MANIFEST),
        format!("containerd.io/gc.ref.content.config={}", conformance::CONFIG),
        format!("containerd.io/gc.ref.content.l.0={}", conformance::KERNEL_LAYER),
        format!("containerd.io/gc.ref.content.l.1={}", conformance::INITRD_LAYER),
    ] {
        assert!(text.contains(&edge), "no {edge} in:\n{text}");
    }
    let labels = containerd.content_labels(NS);
    assert_eq!(
        labels_of(&labels, conformance::INDEX).get("containerd.io/gc.ref.content.m.0"),
        Some(&conformance::MANIFEST.to_string())
    );
    let manifest = labels_of(&labels, conformance::MANIFEST);
    assert_eq!(
        manifest.get("containerd.io/gc.ref.content.config"),
        Some(&conformance::CONFIG.to_string())
    );
    assert_eq!(
        manifest.get("containerd.io/gc.ref.content.l.0"),
        Some(&conformance::KERNEL_LAYER.to_string())
    );
    assert_eq!(
        manifest.get("containerd.io/gc.ref.content.l.1"),
        Some(&conformance::INITRD_LAYER.to_string())
    );
    assert_eq!(
        reachable(&containerd, conformance::REFERENCE),
        conformance_digests()
    );
    // The lease the content was written under is gone.
    assert_eq!(containerd.leases(NS), Vec::<String>::new());

    // `ctr images check` (containerd 1.6) only checks the host platform, linux/amd64, and has
    // no --platform option, so for a qemu image it cannot say "complete": it lists the image
    // and, if it fails, fails only because no manifest is for linux (not because content is
    // missing). Blob presence is checked above with `ctr content ls`; containerd's own unpack
    // of the image is checked in `containerd_unpacks_what_ukpm_packed`.
    let check = containerd.ctr(NS, &["images", "check"]);
    println!("ctr images check:\n{}", check.snapshot_text());
    assert!(
        check.stdout.contains(conformance::REFERENCE) && check.stdout.contains(conformance::INDEX),
        "{}",
        check.snapshot_text()
    );
    if check.code != 0 {
        let mismatch = format!("no match for platform in manifest {}", conformance::INDEX);
        assert!(check.stderr.contains(&mismatch), "{}", check.snapshot_text());
        assert!(!check.stderr.contains("missing"), "{}", check.snapshot_text());
    }

    // ukpm reads it back from containerd.
    let listed = ukpm_ctd(&env, &containerd).args(["--json", "ls"]).run();
    assert_eq!(rows(&listed), [format!("{} x86_64/qemu", conformance::REFERENCE)]);
    let package = &listed.json()["packages"][0];
    assert_eq!(package["index"], conformance::INDEX);
    assert_eq!(package["manifest"], conformance::MANIFEST);
    // The environment variables select containerd too.
    let by_env = ukpm(&env)
        .env("CONTAINERD_ADDRESS", containerd.socket())
        .env("CONTAINERD_NAMESPACE", NS)
        .args(["--json", "ls"])
        .run();
    assert_eq!(rows(&by_env), rows(&listed));

    let inspected = ukpm_ctd(&env, &containerd)
        .args(["--json", "inspect", conformance::REFERENCE])
        .run();
    inspected.assert_success();
    let inspected = inspected.json();
    assert_eq!(
        inspected["descriptor"]["digest"],
        conformance::INDEX,
        "{inspected}"
    );
    assert_eq!(
        inspected["index"],
        serde_json::from_str::<serde_json::Value>(conformance::INDEX_JSON).unwrap()
    );
    assert_eq!(
        inspected["manifests"][0]["config"],
        serde_json::from_str::<serde_json::Value>(conformance::CONFIG_JSON).unwrap()
    );

    ukpm_ctd(&env, &containerd)
        .args(["unpack", conformance::REFERENCE, "out"])
        .run()
        .assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    assert_eq!(env.read("out/unikraft/bin/initrd"), conformance::INITRD_BYTES);
    assert_eq!(mode_of(env.path("out/unikraft/bin/kernel")), 0o755);

    // containerd was the store: the local one was never created.
    assert!(!env.store().exists(), "ukpm wrote the local store");
    // Reading leaves no lease behind either.
    assert_eq!(containerd.leases(NS), Vec::<String>::new());
}

#[test]
fn containerd_unpacks_what_ukpm_packed() {
    let env = TestEnv::new();
    let containerd = Containerd::start();
    pack_conformance_into(&env, &containerd).assert_success();

    // containerd's unpacker checks each layer's uncompressed digest against the config's
    // `rootfs.diff_ids`; ukpm's layers are plain tars, so the diff_ids are the layer digests.
    // The platform is `qemu/amd64`: containerd normalises `x86_64` to `amd64` when matching.
    let target = env.path("rootfs");
    fs_err::create_dir(&target).unwrap();
    let mount = containerd.mount_image(NS, conformance::REFERENCE, "qemu/amd64", &target);
    assert_eq!(
        fs_err::read(mount.path().join("unikraft/bin/kernel")).unwrap(),
        conformance::KERNEL_BYTES
    );
    assert_eq!(
        fs_err::read(mount.path().join("unikraft/bin/initrd")).unwrap(),
        conformance::INITRD_BYTES
    );
    assert_eq!(mode_of(mount.path().join("unikraft/bin/kernel")), 0o755);
    assert_eq!(mode_of(mount.path().join("unikraft/bin/initrd")), 0o644);
    drop(mount);
    // And the layers containerd serves are the conformance layers, byte for byte.
    for layer in [conformance::KERNEL_LAYER, conformance::INITRD_LAYER] {
        let bytes = containerd.blob(NS, layer);
        assert_eq!(
            (bytes.len(), ukpm_test::sha256_digest(&bytes)),
            (2048, layer.to_string())
        );
    }
}

#[test]
fn rm_and_gc_free_exactly_what_no_image_reaches() {
    let env = TestEnv::new();
    let containerd = Containerd::start();
    env.conformance_inputs();
    let pack = |name: &str, cmd: &str| {
        ukpm_ctd(&env, &containerd)
            .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
            .args(["pack", name, "--kernel", "kernel", "--initrd", "initramfs.cpio"])
            .args(["--plat", "qemu", "--arch", "x86_64", "--cmd", cmd])
            .run()
            .assert_success()
            .clone()
    };
    pack("unikraft.org/one:latest", "/one");
    pack("unikraft.org/two:latest", "/two");
    assert_eq!(
        containerd.images(NS),
        ["unikraft.org/one:latest", "unikraft.org/two:latest"]
    );
    let one = reachable(&containerd, "unikraft.org/one:latest");
    let two = reachable(&containerd, "unikraft.org/two:latest");
    assert_eq!((one.len(), two.len()), (5, 5), "{one:?} {two:?}");
    // Same kernel and initrd, different command: the layers are shared, nothing else.
    let shared: Vec<String> = one.iter().filter(|d| two.contains(d)).cloned().collect();
    let mut layers = vec![
        conformance::KERNEL_LAYER.to_string(),
        conformance::INITRD_LAYER.to_string(),
    ];
    layers.sort();
    assert_eq!(shared, layers, "one: {one:?}\ntwo: {two:?}");
    let only_one: Vec<String> = one.iter().filter(|d| !two.contains(d)).cloned().collect();
    assert_eq!(
        only_one.len(),
        3,
        "index, manifest and config of one: {only_one:?}"
    );

    ukpm_ctd(&env, &containerd)
        .args(["rm", "unikraft.org/one:latest"])
        .run()
        .assert_success();
    assert_eq!(containerd.images(NS), ["unikraft.org/two:latest"]);
    let gc = ukpm_ctd(&env, &containerd).arg("gc").run();
    gc.assert_success();
    println!("ukpm gc:\n{}", gc.snapshot_text());
    let content = containerd.content(NS);
    println!("after rm one + gc: {content:?}");
    assert!(
        content.contains(&conformance::KERNEL_LAYER.to_string()),
        "{content:?}"
    );
    for digest in &only_one {
        assert!(
            !content.contains(digest),
            "{digest} of the removed image survived gc: {content:?}"
        );
    }
    assert_eq!(content, two, "after gc the store holds exactly what two reaches");
    // containerd's own collector agrees: the labels keep everything two reaches.
    containerd.gc(NS);
    assert_eq!(containerd.content(NS), two);
    ukpm_ctd(&env, &containerd)
        .args(["unpack", "unikraft.org/two:latest", "out"])
        .run()
        .assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);

    ukpm_ctd(&env, &containerd)
        .args(["rm", "unikraft.org/two:latest"])
        .run()
        .assert_success();
    ukpm_ctd(&env, &containerd).arg("gc").run().assert_success();
    assert_eq!(containerd.images(NS), Vec::<String>::new());
    let content = containerd.content(NS);
    for digest in one.iter().chain(&two) {
        assert!(!content.contains(digest), "{digest} survived: {content:?}");
    }
    assert_eq!(content, Vec::<String>::new());
    // No lease of ukpm's is left to pin anything.
    assert_eq!(containerd.leases(NS), Vec::<String>::new());
    let listed = ukpm_ctd(&env, &containerd).args(["--json", "ls"]).run();
    assert_eq!(rows(&listed), Vec::<String>::new());
}

#[test]
fn pull_from_a_registry_into_containerd() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let containerd = Containerd::start();
    pack_conformance(&env).assert_success();
    let remote = format!("{}/uk/hello:v1", registry.host());
    ukpm(&env)
        .args(["push", conformance::REFERENCE, "--to", &remote])
        .run()
        .assert_success();

    let pulled = ukpm_ctd(&env, &containerd)
        .args(["--json", "pull", &remote])
        .run();
    assert_eq!(rows(&pulled), [format!("{remote} x86_64/qemu")]);
    assert_eq!(containerd.images(NS), [remote.as_str()]);
    let records = containerd.image_records(NS);
    assert_eq!(records[0].digest, conformance::INDEX);
    assert_eq!(containerd.content(NS), conformance_digests());
    assert_eq!(reachable(&containerd, &remote), conformance_digests());
    assert_eq!(containerd.leases(NS), Vec::<String>::new());

    ukpm_ctd(&env, &containerd)
        .args(["unpack", &remote, "out"])
        .run()
        .assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    assert_eq!(env.read("out/unikraft/bin/initrd"), conformance::INITRD_BYTES);
}

#[test]
fn images_ctr_pulled_are_listed_unpacked_and_removed() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let containerd = Containerd::start();
    pack_conformance(&env).assert_success();
    let remote = format!("{}/uk/hello:v1", registry.host());
    ukpm(&env)
        .args(["push", conformance::REFERENCE, "--to", &remote])
        .run()
        .assert_success();

    // A plain `ctr images pull` wants a linux/amd64 manifest and fails ("no match for platform
    // in manifest"); `--all-platforms` (or `--platform qemu/amd64`) fetches the qemu one, and
    // ctr even unpacks it into its default snapshotter.
    let plain = containerd.ctr(NS, &["images", "pull", "--plain-http", &remote]);
    assert_eq!(plain.code, 1, "{}", plain.snapshot_text());
    containerd.ctr_ok(
        NS,
        &["images", "pull", "--plain-http", "--all-platforms", &remote],
    );
    assert_eq!(containerd.images(NS), [remote.as_str()]);
    println!("ctr content ls:\n{}", containerd.ctr_ok(NS, &["content", "ls"]));

    let listed = ukpm_ctd(&env, &containerd).args(["--json", "ls"]).run();
    assert_eq!(rows(&listed), [format!("{remote} x86_64/qemu")]);
    assert_eq!(listed.json()["packages"][0]["index"], conformance::INDEX);
    ukpm_ctd(&env, &containerd)
        .args(["unpack", &remote, "out"])
        .run()
        .assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    assert_eq!(env.read("out/unikraft/bin/initrd"), conformance::INITRD_BYTES);

    // ukpm can remove it too, and nothing of it survives a gc.
    ukpm_ctd(&env, &containerd)
        .args(["rm", &remote])
        .run()
        .assert_success();
    ukpm_ctd(&env, &containerd).arg("gc").run().assert_success();
    assert_eq!(containerd.images(NS), Vec::<String>::new());
    assert_eq!(containerd.content(NS), Vec::<String>::new());
}

#[test]
fn push_from_containerd_to_a_registry_is_byte_exact() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let containerd = Containerd::start();
    pack_conformance_into(&env, &containerd).assert_success();
    let target = format!("{}/uk/fromctd:v1", registry.host());

    let pushed = ukpm_ctd(&env, &containerd)
        .args(["--json", "push", conformance::REFERENCE, "--to", &target])
        .run();
    pushed.assert_success();
    assert_eq!(pushed.json()["digest"], conformance::INDEX);

    let raw = skopeo(
        &env,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ],
    );
    assert_eq!(raw.stdout.trim_end(), conformance::INDEX_JSON);
    let manifest = skopeo(
        &env,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!(
                "docker://{}/uk/fromctd@{}",
                registry.host(),
                conformance::MANIFEST
            ),
        ],
    );
    assert_eq!(manifest.stdout.trim_end(), conformance::MANIFEST_JSON);
    // Pushing reads; it leaves containerd as it was.
    assert_eq!(containerd.content(NS), conformance_digests());
    assert_eq!(containerd.leases(NS), Vec::<String>::new());
    assert!(!env.store().exists(), "ukpm wrote the local store");
}

#[test]
fn containerd_that_is_not_there_fails_with_a_hint() {
    let env = TestEnv::new();

    // No such socket.
    let out = ukpm(&env)
        .args(["--containerd", "/nonexistent/containerd.sock", "ls"])
        .run();
    let stderr = assert_error_with_hint(&out);
    assert!(stderr.contains("/nonexistent/containerd.sock"), "{stderr}");
    // The same under --json: one error document.
    let json = ukpm(&env)
        .args(["--json", "--containerd", "/nonexistent/containerd.sock", "ls"])
        .run();
    json.assert_failure();
    assert!(json.json()["error"]["message"].is_string(), "{}", json.stdout);

    // A regular file where the socket should be (through the environment variable).
    let file = env.write("not-a-socket", b"", 0o644);
    let out = ukpm(&env).env("CONTAINERD_ADDRESS", &file).arg("ls").run();
    let stderr = assert_error_with_hint(&out);
    assert!(stderr.contains("not-a-socket"), "{stderr}");

    // A socket that is not containerd's: it answers every connection with HTTP/1 and hangs up.
    // Whether ukpm's first write lands before the hang-up (an HTTP/2 error) or after (EPIPE)
    // is a race, so try a few times: both must end in an error, never in a silent exit 0.
    let socket = env.path("other.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        }
    });
    for _ in 0..5 {
        let out = ukpm(&env).arg("--containerd").arg(&socket).arg("ls").run();
        assert_error_with_hint(&out);
    }

    assert!(
        !env.store().exists(),
        "a failed containerd ls created the local store"
    );
}

#[test]
fn a_namespace_that_does_not_exist_fails_with_a_hint_and_is_not_created() {
    let env = TestEnv::new();
    let containerd = Containerd::start();
    pack_conformance_into(&env, &containerd).assert_success();
    assert!(containerd.namespaces().contains(&NS.to_string()));

    let out = ukpm(&env)
        .arg("--containerd")
        .arg(containerd.socket())
        .args(["--namespace", "nosuchns", "ls"])
        .run();
    let stderr = assert_error_with_hint(&out);
    assert!(stderr.contains("nosuchns"), "{stderr}");
    // The same through CONTAINERD_NAMESPACE.
    let out = ukpm(&env)
        .env("CONTAINERD_ADDRESS", containerd.socket())
        .env("CONTAINERD_NAMESPACE", "nosuchns")
        .arg("ls")
        .run();
    assert_error_with_hint(&out);
    assert!(
        !containerd.namespaces().contains(&"nosuchns".to_string()),
        "ls created the namespace: {:?}",
        containerd.namespaces()
    );
}

#[test]
fn a_socket_that_never_answers_fails_instead_of_hanging() {
    let env = TestEnv::new();
    // A hung daemon: it accepts connections and never says a word. `ctr` gives up after 10 s
    // ("timed out waiting for server handshake"); ukpm must give up too, not wait forever.
    let socket = env.path("silent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let out = ukpm(&env)
        .arg("--containerd")
        .arg(&socket)
        .arg("ls")
        .run_within(Duration::from_secs(30));
    assert!(
        !out.timed_out,
        "ukpm was still waiting after 30 s\n{}",
        out.snapshot_text()
    );
    assert_error_with_hint(&out);
}

#[test]
fn permission_denied_on_the_socket_fails_with_a_hint() {
    let env = TestEnv::new();
    let containerd = Containerd::start();
    // Let anyone reach the socket, whose own mode (0660 root:root) then refuses `nobody`.
    fs_err::set_permissions(containerd.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let setpriv = require_program("setpriv", "util-linux");
    let out = env
        .command(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            common::UKPM,
            "--containerd",
        ])
        .arg(containerd.socket())
        .arg("ls")
        .run();
    let stderr = assert_error_with_hint(&out);
    assert!(stderr.to_lowercase().contains("permission denied"), "{stderr}");
}

/// containerd creates an image record only if it is absent, atomically, but updates one with no
/// precondition: two processes packing two platforms into one name that already exists, at the
/// same moment, must both survive, as they do in the local store (`concurrency.rs`).
#[test]
fn two_processes_pack_two_platforms_into_one_name_in_containerd() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let containerd = Containerd::start();
    for round in 0..10 {
        let name = format!("race{round}");
        let pack = |arch: &str, plat: &str| {
            ukpm_ctd(&env, &containerd)
                .args([
                    "-q",
                    "pack",
                    &name,
                    "--kernel",
                    "kernel",
                    "--initrd",
                    "initramfs.cpio",
                ])
                .args(["--arch", arch, "--plat", plat, "--cmd", arch])
        };
        // The name exists first, so every racer updates it (the create path is atomic anyway).
        pack("arm", "qemu").run().assert_success();
        let running = [
            pack("x86_64", "qemu").spawn(),
            pack("arm64", "qemu").spawn(),
            pack("x86_64", "fc").spawn(),
            pack("arm64", "fc").spawn(),
        ];
        for out in running.map(|r| r.wait()) {
            out.assert_success();
        }
        let listed = ukpm_ctd(&env, &containerd)
            .args(["--json", "ls", "--name", &name])
            .run();
        listed.assert_success();
        let platforms: std::collections::BTreeSet<String> = listed.json()["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["platform"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                )
            })
            .collect();
        let expected = ["fc/arm64", "fc/x86_64", "qemu/arm", "qemu/arm64", "qemu/x86_64"];
        assert_eq!(
            platforms,
            expected.map(String::from).into(),
            "round {round}: a platform was lost to the race"
        );
    }
}
