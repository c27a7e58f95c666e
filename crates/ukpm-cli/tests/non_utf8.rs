//! Names that are not UTF-8 (issue 9, point 5): a layer may hold a file whose name is any
//! bytes, and `ukpm unpack` used to panic after extracting one, with or without `--json`,
//! because the result's paths were turned into JSON strings. Now the file is written with its
//! exact name, the command exits 0, and `--json` carries the name as
//! `{"bytes": "<base64>"}` (docs/json.md).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use ukpm_test::{OciLayoutWriter, TestEnv};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// `caf\xe9` is "café" in Latin-1: a name a real archive can carry, and not UTF-8.
const ODD_NAME: &[u8] = b"unikraft/caf\xe9.txt";
const ODD_DIR_FILE: &[u8] = b"unikraft/d\xff\xfe/inner";

/// A store holding `unikraft.org/odd:latest`, whose one layer has a kernel and two files with
/// names that are not UTF-8.
fn odd_store(env: &TestEnv) {
    let mut layout = OciLayoutWriter::create(env.store());
    let layer = ukpm_test::tar_with_raw_names(&[
        (b"unikraft/bin/kernel", b"KERNEL\n"),
        (ODD_NAME, b"latin-1\n"),
        (ODD_DIR_FILE, b"inner\n"),
    ]);
    let layer = layout.blob(LAYER_TAR, &layer);
    let image = layout.image("x86_64", "qemu", &[layer]);
    layout.tag("unikraft.org/odd:latest", &image);
    layout.finish();
}

fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

fn bytes_json(bytes: &[u8]) -> Value {
    json!({"bytes": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

fn assert_unpacked(env: &TestEnv, dir: &[u8]) {
    let dir = env.root().join(path_of(dir));
    assert_eq!(
        fs_err::read(dir.join("unikraft/bin/kernel")).unwrap(),
        b"KERNEL\n"
    );
    assert_eq!(fs_err::read(dir.join(path_of(ODD_NAME))).unwrap(), b"latin-1\n");
    assert_eq!(fs_err::read(dir.join(path_of(ODD_DIR_FILE))).unwrap(), b"inner\n");
}

#[test]
fn unpack_writes_a_name_that_is_not_utf8() {
    let env = TestEnv::new();
    odd_store(&env);
    let out = ukpm(&env).args(["unpack", "odd", "out"]).run();
    out.assert_success();
    assert_eq!(out.stdout, "out/unikraft/bin/kernel\n");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_unpacked(&env, b"out");
}

#[test]
fn unpack_json_carries_a_name_that_is_not_utf8_as_bytes() {
    let env = TestEnv::new();
    odd_store(&env);
    let out = ukpm(&env).args(["--json", "unpack", "odd", "out"]).run();
    out.assert_success();
    assert_eq!(out.stdout.lines().count(), 1, "one document on one line");
    let doc = out.json();
    assert_eq!(doc["directory"], json!("out"));
    assert_eq!(doc["kernel"], json!("out/unikraft/bin/kernel"));
    assert_eq!(
        doc["files"],
        json!([
            "unikraft/bin/kernel",
            bytes_json(ODD_NAME),
            bytes_json(ODD_DIR_FILE),
        ]),
        "UTF-8 names stay plain strings, the others become bytes"
    );
    assert_unpacked(&env, b"out");
}

#[test]
fn unpack_json_into_a_folder_whose_name_is_not_utf8() {
    let env = TestEnv::new();
    odd_store(&env);
    let dir: &[u8] = b"out-\xff";
    let out = ukpm(&env)
        .arg("--json")
        .args(["unpack", "odd"])
        .arg(OsStr::from_bytes(dir))
        .run();
    out.assert_success();
    let doc = out.json();
    assert_eq!(doc["directory"], bytes_json(dir));
    assert_eq!(doc["kernel"], bytes_json(b"out-\xff/unikraft/bin/kernel"));
    assert_eq!(doc["initrd"], Value::Null);
    assert_unpacked(&env, dir);

    // People get the path without loss (issue 10, point 5): each byte that is not UTF-8 as
    // `\xNN`, never U+FFFD.
    let human = ukpm(&env)
        .args(["unpack", "odd", "--force"])
        .arg(OsStr::from_bytes(dir))
        .run();
    human.assert_success();
    assert_eq!(human.stdout, "out-\\xff/unikraft/bin/kernel\n");
}

#[test]
fn different_names_that_are_not_utf8_never_print_the_same() {
    let env = TestEnv::new();
    odd_store(&env);
    // Two invalid bytes, the replacement character itself, and text that spells an escape.
    let dirs: [&[u8]; 4] = [b"o-\xff", b"o-\xfe", "o-\u{fffd}".as_bytes(), b"o-\\xff"];
    let mut shown = Vec::new();
    for dir in dirs {
        let out = ukpm(&env)
            .args(["unpack", "odd"])
            .arg(OsStr::from_bytes(dir))
            .run();
        out.assert_success();
        shown.push(out.stdout);
    }
    assert_eq!(
        shown,
        [
            "o-\\xff/unikraft/bin/kernel\n",
            "o-\\xfe/unikraft/bin/kernel\n",
            "o-\u{fffd}/unikraft/bin/kernel\n",
            "o-\\\\xff/unikraft/bin/kernel\n",
        ]
    );
}
