//! Settings come from flags, then the environment, then the config file, then defaults.

mod common;

use common::{pack, rows, ukpm};
use ukpm_test::TestEnv;

#[test]
fn the_config_file_sets_what_flags_and_environment_leave_unset() {
    let env = TestEnv::new();
    env.write(
        ".config/ukpm/config.json",
        format!(
            r#"{{"store": "{}", "concurrency": 2}}"#,
            env.path("from-config").display()
        ),
        0o644,
    );
    // UKPM_STORE (set by the harness) wins over the file; without it the file's store is used.
    pack(&env, "env-store", "x86_64", "qemu", &[]).assert_success();
    assert!(env.store().join("index.json").exists());
    ukpm(&env)
        .env_remove("UKPM_STORE")
        .args([
            "pack",
            "file-store",
            "--kernel",
            "kernel",
            "--arch",
            "x86_64",
            "--plat",
            "qemu",
        ])
        .run()
        .assert_success();
    assert!(env.path("from-config/index.json").exists());
    let listed = ukpm(&env).env_remove("UKPM_STORE").args(["--json", "ls"]).run();
    assert_eq!(rows(&listed), ["unikraft.org/file-store:latest x86_64/qemu"]);
    // A flag wins over both.
    let flagged = ukpm(&env)
        .args(["--store", env.path("store").to_str().unwrap(), "--json", "ls"])
        .env_remove("UKPM_STORE")
        .run();
    assert_eq!(rows(&flagged), ["unikraft.org/env-store:latest x86_64/qemu"]);
}

#[test]
fn a_broken_config_file_is_named_in_the_error() {
    let env = TestEnv::new();
    env.write(".config/ukpm/config.json", r#"{"stroe": "/tmp/x"}"#, 0o644);
    let out = ukpm(&env).args(["--json", "ls"]).run();
    out.assert_code(1);
    let error = out.json()["error"].to_string();
    assert!(
        error.contains("config.json") && error.contains("stroe"),
        "{error}"
    );
    assert_eq!(out.json()["error"]["code"], "invalid_input");
}
