//! Bad input, damaged stores and hostile images, on the built binary: each is refused with the
//! right exit code, a message that names the culprit (pinned by insta snapshots) and the right
//! `--json` error code, and leaves the store and the target folder as they were.

mod common;

use common::*;
use serde_json::Value;
use ukpm_test::{OciLayoutWriter, Outcome, RawTar, TestEnv, conformance};

// --- bad input ------------------------------------------------------------------------------

/// Runs a command (its arguments split at spaces) that must fail with exit 1, twice: against a
/// store holding a package, which must stay byte-identical, and with no store at all, which must
/// not be created. Both runs must say the same thing; the first is snapshotted.
fn refused(snapshot: &str, setup: impl Fn(&TestEnv), args: &str) -> Outcome {
    refused_with(1, snapshot, setup, args)
}

/// [`refused`] for a value refused on the command line: a usage error, exit 2 (issue 13).
fn refused_usage(snapshot: &str, setup: impl Fn(&TestEnv), args: &str) -> Outcome {
    refused_with(2, snapshot, setup, args)
}

fn refused_with(code: i32, snapshot: &str, setup: impl Fn(&TestEnv), args: &str) -> Outcome {
    let populated = TestEnv::new();
    pack(&populated, "existing", "x86_64", "qemu", &[]).assert_success();
    setup(&populated);
    let before = populated.dir_state("store");
    let out = ukpm(&populated).args(args.split_whitespace()).run();
    out.assert_code(code);
    insta::assert_snapshot!(snapshot, out.snapshot_text());
    assert_eq!(
        populated.dir_state("store"),
        before,
        "`{}` changed the store",
        out.command()
    );

    let fresh = TestEnv::new();
    fresh.conformance_inputs();
    setup(&fresh);
    let again = ukpm(&fresh).args(args.split_whitespace()).run();
    again.assert_code(code);
    assert_eq!(again.snapshot_text(), out.snapshot_text());
    assert!(!fresh.store().exists(), "`{}` created the store", out.command());
    out
}

const PACK: &str = "pack unikraft.org/helloworld:latest";

#[test]
fn a_missing_kernel_is_refused() {
    let args = format!("{PACK} --kernel no-such-kernel --arch x86_64 --plat qemu");
    let out = refused("bad_missing_kernel", |_| {}, &args);
    assert!(out.stderr.contains("no-such-kernel"), "the error names the file");
}

#[test]
fn an_unknown_architecture_is_refused() {
    let args = format!("{PACK} --kernel kernel --arch mips --plat qemu");
    let out = refused_usage("bad_unknown_arch", |_| {}, &args);
    assert!(out.stderr.contains("mips"));
}

#[test]
fn an_unknown_platform_is_refused() {
    let args = format!("{PACK} --kernel kernel --arch x86_64 --plat vmware");
    let out = refused_usage("bad_unknown_plat", |_| {}, &args);
    assert!(out.stderr.contains("vmware"));
}

#[test]
fn a_malformed_reference_is_refused() {
    let args = "pack Bad_Name! --kernel kernel --arch x86_64 --plat qemu";
    let out = refused_usage("bad_reference", |_| {}, args);
    assert!(out.stderr.contains("Bad_Name!"));
}

#[test]
fn a_kconfig_with_a_garbage_line_is_refused() {
    let config = "# comment\nCONFIG_A=y\n\nthis is not kconfig\nCONFIG_B=y\n";
    let args = format!("{PACK} --kernel kernel --arch x86_64 --plat qemu --kconfig bad.config");
    let out = refused(
        "bad_kconfig_line",
        |env| drop(env.write("bad.config", config, 0o644)),
        &args,
    );
    assert!(out.stderr.contains("line 4"), "the error gives the line number");
    assert!(out.stderr.contains("bad.config"), "the error names the file");
}

#[test]
fn a_bad_annotation_is_refused() {
    let args = format!("{PACK} --kernel kernel --arch x86_64 --plat qemu --annotation novalue");
    let out = refused_usage("bad_annotation", |_| {}, &args);
    assert!(out.stderr.contains("novalue"));
}

#[test]
fn a_store_that_is_not_an_oci_layout_is_left_untouched() {
    let env = TestEnv::new();
    env.conformance_inputs();
    env.write("photos/holiday.jpg", b"\xff\xd8\xff not really a jpeg", 0o644);
    env.write("photos/index.json", b"{\"mine\": true}", 0o600);
    env.write("photos/blobs/sha256/notes.txt", b"keep me", 0o644);
    let before = env.dir_state("photos");
    let out = ukpm(&env)
        .args("--store photos pack hello --kernel kernel --arch x86_64 --plat qemu".split_whitespace())
        .run();
    out.assert_failure();
    insta::assert_snapshot!("bad_store_not_a_layout", out.snapshot_text());
    assert_eq!(env.dir_state("photos"), before);
    for args in [
        &["ls"][..],
        &["gc"],
        &["rm", "--all"],
        &["inspect", "hello"],
        &["unpack", "hello", "out"],
    ] {
        let out = ukpm(&env).arg("--store").arg(env.path("photos")).args(args).run();
        out.assert_failure();
        assert!(
            out.stderr.contains("is not an OCI image layout"),
            "{}",
            out.snapshot_text()
        );
        assert_eq!(
            env.dir_state("photos"),
            before,
            "`{}` touched the folder",
            out.command()
        );
    }
    // The same through UKPM_STORE.
    let out = ukpm(&env).env("UKPM_STORE", env.path("photos")).arg("gc").run();
    out.assert_failure();
    assert_eq!(env.dir_state("photos"), before);
    assert!(!env.path("out").exists());
}

#[test]
fn a_corrupt_kernel_layer_fails_unpack_and_writes_nothing() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    flip_byte(&env, conformance::KERNEL_LAYER, 512);
    let out = ukpm(&env)
        .args(["unpack", "unikraft.org/helloworld:latest", "out"])
        .run();
    out.assert_failure();
    insta::assert_snapshot!("bad_corrupt_kernel_layer", out.snapshot_text());
    assert!(
        out.stderr.contains(conformance::KERNEL_LAYER),
        "the error names the blob"
    );
    assert!(
        env.dir_state("out").paths().is_empty(),
        "{:?}",
        env.dir_state("out")
    );

    let json = ukpm(&env).args(["--json", "unpack", "helloworld", "out"]).run();
    json.assert_failure();
    let error = &json.json()["error"];
    assert_eq!(error["code"], "integrity");
    assert!(error.to_string().contains(conformance::KERNEL_LAYER), "{error}");
    assert!(env.dir_state("out").paths().is_empty());
}

#[test]
fn a_corrupt_initrd_layer_fails_unpack_and_leaves_no_kernel_behind() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    flip_byte(&env, conformance::INITRD_LAYER, 600);
    let out = ukpm(&env).args(["unpack", "helloworld", "out"]).run();
    out.assert_failure();
    assert!(
        out.stderr.contains(conformance::INITRD_LAYER),
        "{}",
        out.snapshot_text()
    );
    assert!(
        env.dir_state("out").paths().is_empty(),
        "{:?}",
        env.dir_state("out")
    );
}

#[test]
fn json_errors_are_one_document_with_a_code() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let cases = [
        (
            "invalid_input",
            2,
            "pack x --kernel kernel --arch mips --plat qemu",
        ),
        (
            "invalid_input",
            1,
            "pack x --kernel missing --arch x86_64 --plat qemu",
        ),
        ("not_found", 1, "inspect unikraft.org/nothere"),
        ("not_found", 1, "unpack nothere out"),
        ("not_found", 1, "rm nothere"),
        (
            "conflict",
            1,
            "pack helloworld --kernel kernel --arch x86_64 --plat qemu --strategy abort --cmd x",
        ),
        ("usage", 2, "pack --bogus"),
        ("usage", 2, "frobnicate"),
    ];
    for (code, exit, args) in cases {
        let out = ukpm(&env).arg("--json").args(args.split_whitespace()).run();
        out.assert_code(exit);
        assert_eq!(out.stdout.lines().count(), 1, "{}", out.snapshot_text());
        let doc = out.json();
        let error = doc.as_object().unwrap();
        assert_eq!(error.keys().collect::<Vec<_>>(), ["error"], "{doc}");
        let fields = error["error"].as_object().unwrap();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["causes", "code", "message"],
            "{doc}"
        );
        assert_eq!(fields["code"], code, "{}", out.command());
        assert!(!fields["message"].as_str().unwrap().is_empty());
        assert!(
            fields["causes"].as_array().unwrap().iter().all(Value::is_string),
            "{doc}"
        );
        assert!(
            !out.stderr.contains("error:"),
            "errors go to stdout only: {}",
            out.stderr
        );
    }
    // The integrity code is checked in a_corrupt_kernel_layer_fails_unpack_and_writes_nothing.
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let run = |args: &str| ukpm(&env).args(args.split_whitespace()).run();
    let out = run("pack hello --kernel kernel --arch x86_64 --plat qemu --bogus");
    out.assert_code(2);
    insta::assert_snapshot!("usage_unknown_flag", out.snapshot_text());
    // A project folder and a kernel file are two ways to pack, not one.
    let out = run("pack hello . --kernel kernel --arch x86_64 --plat qemu");
    out.assert_code(2);
    insta::assert_snapshot!("usage_dir_with_kernel", out.snapshot_text());
    run("pack hello -k kernel -m x86_64 -p qemu --strategy yolo").assert_code(2);
    run("rm").assert_code(2);
    run("rm one --all").assert_code(2);
    run("--color sometimes ls").assert_code(2);
    assert!(!env.store().exists());
}

// --- hostile images -------------------------------------------------------------------------

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A store written by hand, as another tool might: `safe` is a well-formed image (proving the
/// fixture is readable at all), `evil` has a layer entry `../evil`, and `link` plants a symlink
/// to the parent folder and writes through it.
fn hostile_store(env: &TestEnv) {
    let mut layout = OciLayoutWriter::create(env.store());
    let safe = RawTar::new()
        .file("unikraft/bin/kernel", 0o755, b"SAFE KERNEL\n")
        .finish();
    let safe = layout.blob(LAYER_TAR, &safe);
    let safe = layout.image("x86_64", "qemu", &[safe]);
    layout.tag("unikraft.org/safe:latest", &safe);

    let evil = RawTar::new()
        .file("unikraft/bin/kernel", 0o755, b"EVIL KERNEL\n")
        .file("../evil", 0o644, b"escaped\n")
        .finish();
    let evil = layout.blob(LAYER_TAR, &evil);
    let evil = layout.image("x86_64", "qemu", &[evil]);
    layout.tag("unikraft.org/evil:latest", &evil);

    let link = RawTar::new()
        .file("unikraft/bin/kernel", 0o755, b"EVIL KERNEL\n")
        .symlink("up", "..")
        .file("up/evil", 0o644, b"escaped\n")
        .finish();
    let link = layout.blob(LAYER_TAR, &link);
    let link = layout.image("x86_64", "qemu", &[link]);
    layout.tag("unikraft.org/link:latest", &link);
    layout.finish();
}

#[test]
fn unpack_refuses_a_tar_entry_that_escapes_the_folder() {
    let env = TestEnv::new();
    hostile_store(&env);
    let safe = ukpm(&env).args(["unpack", "safe", "out/safe"]).run();
    safe.assert_success();
    assert_eq!(env.read("out/safe/unikraft/bin/kernel"), b"SAFE KERNEL\n");

    let out = ukpm(&env).args(["unpack", "evil", "out/evil-dir"]).run();
    out.assert_failure();
    insta::assert_snapshot!("bad_tar_path_escape", out.snapshot_text());
    assert!(out.stderr.contains("../evil"), "the error names the entry");
    assert!(!env.path("out/evil").exists());
    assert_eq!(
        find_named(&env, "evil"),
        Vec::<String>::new(),
        "nothing named evil anywhere"
    );

    let json = ukpm(&env)
        .args(["--json", "unpack", "evil", "out/evil-dir"])
        .run();
    json.assert_failure();
    assert!(json.stdout.contains("../evil"), "{}", json.stdout);
    assert_eq!(find_named(&env, "evil"), Vec::<String>::new());
}

#[test]
fn unpack_refuses_to_write_through_a_symlink_out_of_the_folder() {
    let env = TestEnv::new();
    hostile_store(&env);
    let out = ukpm(&env).args(["unpack", "link", "out/link-dir"]).run();
    out.assert_failure();
    insta::assert_snapshot!("bad_tar_symlink_escape", out.snapshot_text());
    assert_eq!(
        find_named(&env, "evil"),
        Vec::<String>::new(),
        "nothing named evil anywhere"
    );
}
