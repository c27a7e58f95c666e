//! A registry that goes silent ends `ukpm` with a clear error within bounded time, whether the
//! read timeout comes from `--timeout`, `UKPM_TIMEOUT` or the config file; a timeout of 0 is
//! refused.

mod common;

use std::time::{Duration, Instant};

use common::{pack, ukpm};
use ukpm_test::TestEnv;
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;

/// Longer than any of these pulls may take: five attempts of a second, their backoff and two
/// one-second scheme probes.
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_silent_registry_ends_a_pull_with_a_clear_error_however_the_timeout_is_set() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack(&env, "silent", "x86_64", "qemu", &[]).assert_success();
    let direct = format!("{}/uk/silent:v1", registry.host());
    ukpm(&env)
        .args(["-q", "push", "unikraft.org/silent:latest", "--to", &direct])
        .run()
        .assert_success();
    let proxy = Proxy::start(registry.host(), Faults::none());
    proxy.hold(true);
    let through = format!("{}/uk/silent:v1", proxy.addr());

    let config = env.write(".config/ukpm/timeout.json", r#"{"timeout": 1}"#, 0o644);
    // How the timeout is set: flags, then an environment variable.
    type Way<'a> = (&'a str, &'a [&'a str], Option<(&'a str, &'a str)>);
    let ways: [Way; 3] = [
        ("flag", &["--timeout", "1"], None),
        ("environment", &[], Some(("UKPM_TIMEOUT", "1"))),
        (
            "config file",
            &[],
            Some(("UKPM_CONFIG", config.to_str().unwrap())),
        ),
    ];
    for (way, flags, variable) in ways {
        let mut command = ukpm(&env).args(flags).args(["--json", "pull", &through]);
        if let Some((key, value)) = variable {
            command = command.env(key, value);
        }
        let started = Instant::now();
        let out = command.run_within(DEADLINE);
        out.assert_code(1);
        let error = &out.json()["error"];
        assert_eq!(error["code"], "network", "{way}: {error}");
        let text = error.to_string();
        assert!(
            text.contains("stopped sending") && text.contains("nothing for 1 s"),
            "{way}: {text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{way}: took {:?}",
            started.elapsed()
        );
    }
    // People see the stall and what to change.
    let out = ukpm(&env)
        .args(["--timeout", "1", "pull", &through])
        .run_within(DEADLINE);
    out.assert_code(1);
    for expected in ["stopped sending", "--timeout"] {
        assert!(out.stderr.contains(expected), "{}", out.stderr);
    }
}

#[test]
fn a_timeout_of_zero_is_refused() {
    let env = TestEnv::new();
    ukpm(&env).args(["--timeout", "0", "ls"]).run().assert_code(2);
    ukpm(&env)
        .env("UKPM_TIMEOUT", "0")
        .args(["ls"])
        .run()
        .assert_code(2);
    let config = env.write(".config/ukpm/zero.json", r#"{"timeout": 0}"#, 0o644);
    let out = ukpm(&env)
        .env("UKPM_CONFIG", config.to_str().unwrap())
        .args(["--json", "ls"])
        .run();
    out.assert_code(1);
    assert_eq!(out.json()["error"]["code"], "invalid_input");
    assert!(
        out.json()["error"].to_string().contains("timeout"),
        "{}",
        out.stdout
    );
}
