//! Helpers shared by the CLI test files: running the built binary and reading its answers.
//! Each test file uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use serde_json::Value;
use ukpm_test::{Outcome, TestEnv, UkpmCommand, conformance};

/// The binary under test, as cargo built it for these tests.
pub const UKPM: &str = env!("CARGO_BIN_EXE_ukpm");

/// `ukpm` in the test folder with a clean environment and the folder's store.
pub fn ukpm(env: &TestEnv) -> UkpmCommand {
    env.command(UKPM)
}

/// `ukpm pack` of the conformance inputs exactly as the spec's vectors were made.
pub fn pack_conformance(env: &TestEnv) -> Outcome {
    env.conformance_inputs();
    ukpm(env)
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

/// A pack with a fixed time and `sh.kraftkit.version`, so digests in snapshots do not move when
/// ukpm's version does. Writes the conformance inputs if they are missing.
pub fn pack(env: &TestEnv, name: &str, arch: &str, plat: &str, extra: &[&str]) -> Outcome {
    if !env.path("kernel").exists() {
        env.conformance_inputs();
    }
    ukpm(env)
        .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
        .args(["pack", name, "--kernel", "kernel", "--arch", arch, "--plat", plat])
        .args(["--annotation", conformance::KRAFTKIT_VERSION_ANNOTATION])
        .args(extra)
        .run()
}

pub fn read_json(env: &TestEnv, rel: &str) -> Value {
    serde_json::from_slice(&env.read(rel)).unwrap()
}

/// `pretty JSON` of a `--json` stdout, after checking it is exactly one line, for snapshots.
pub fn pretty(out: &Outcome) -> String {
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "--json prints one line:\n{}",
        out.stdout
    );
    let value: Value = serde_json::from_str(&out.stdout_redacted()).unwrap();
    serde_json::to_string_pretty(&value).unwrap()
}

/// The `ls --json` rows as `name:tag arch/plat`, in order.
pub fn rows(out: &Outcome) -> Vec<String> {
    out.assert_success();
    out.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}/{}",
                p["reference"].as_str().unwrap(),
                p["architecture"],
                p["platform"]
            )
        })
        .map(|row| row.replace('"', ""))
        .collect()
}

/// The index entries of `inspect --json` as `arch/plat`, in order.
pub fn index_platforms(env: &TestEnv, reference: &str) -> Vec<String> {
    let out = ukpm(env).args(["--json", "inspect", reference]).run();
    out.assert_success();
    out.json()["index"]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["platform"]["architecture"], m["platform"]["os"]).replace('"', ""))
        .collect()
}

/// Damages one blob of the store.
pub fn flip_byte(env: &TestEnv, digest: &str, offset: usize) {
    env.flip_bit(
        format!("store/blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap()),
        offset,
    );
}

/// Every path under the test folder whose last component is `name`.
pub fn find_named(env: &TestEnv, name: &str) -> Vec<String> {
    env.dir_state(".")
        .paths()
        .into_iter()
        .filter(|p| p.rsplit('/').next() == Some(name))
        .map(String::from)
        .collect()
}

/// `skopeo inspect --raw` of a registry reference: the document exactly as the registry serves
/// it, read by the oracle rather than by ukpm.
pub fn skopeo_raw(env: &TestEnv, reference: &str) -> String {
    let skopeo = ukpm_test::require_program("skopeo", "skopeo");
    let out = env
        .command(skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .run();
    out.assert_success();
    out.stdout
}
