//! Progress that says what moves (issue 13, item 1): the `--progress=json` events against a
//! real `docker-registry` (their verbs for a push, a second push and a pull), lines that keep
//! coming without a terminal while a slow or stalled transfer goes on, the closing summary,
//! resumed bytes that never count as moved, and what Ctrl-C says.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests print diagnostics to the output libtest captures"
)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ukpm;
use serde_json::Value;
use ukpm_test::proxy::{Faults, Proxy, XorShift};
use ukpm_test::registry::Registry;
use ukpm_test::{Outcome, Running, TestEnv, wait_until};

const MIB: u64 = 1 << 20;
const DEADLINE: Duration = Duration::from_secs(120);

/// Every event of a `--progress=json` run: the stderr lines that begin with `{` (the others
/// are notes for people, as docs/json.md says), each of which must be a JSON object.
fn events(out: &Outcome) -> Vec<Value> {
    out.stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| {
                panic!(
                    "a stderr line is not a JSON event ({e}): `{line}`\n{}",
                    out.stderr
                )
            })
        })
        .collect()
}

/// The `finish` events as `kind verb`, sorted.
fn verbs(events: &[Value]) -> Vec<String> {
    let mut verbs: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "finish")
        .map(|e| format!("{} {}", e["kind"].as_str().unwrap(), e["verb"].as_str().unwrap()))
        .collect();
    verbs.sort();
    verbs
}

/// The one `summary` event.
fn summary(events: &[Value]) -> &Value {
    let summaries: Vec<&Value> = events.iter().filter(|e| e["event"] == "summary").collect();
    assert_eq!(summaries.len(), 1, "one summary: {events:#?}");
    summaries[0]
}

/// Packs a kernel of `len` random bytes as `name` into the test's store.
fn pack_kernel(env: &TestEnv, name: &str, len: u64, seed: u64) {
    env.write("kernel", XorShift::new(seed).bytes(len as usize), 0o755);
    ukpm(env)
        .args([
            "-q", "pack", name, "--kernel", "kernel", "--arch", "x86_64", "--plat", "qemu",
        ])
        .run_within(DEADLINE)
        .assert_success();
}

fn start(env: &TestEnv, args: &[&str]) -> Running {
    ukpm(env).args(args).spawn()
}

/// Waits until `proxy` forwarded `at_least` bytes down while `proc` runs.
fn wait_for_bytes(proc: &mut Running, proxy: &Proxy, at_least: u64) {
    wait_until(
        "the pull to move bytes through the proxy",
        Duration::from_secs(60),
        || {
            let moved = proxy.stats().bytes_down;
            assert!(
                moved >= at_least || proc.is_running(),
                "the pull ended after {moved} of the {at_least} bytes the test waits for"
            );
            moved >= at_least
        },
    );
}

/// `--progress=json` with `--json`: the result on stdout, one event per stderr line. A push
/// uploads (`pushed`), the same push again finds everything there (`already_there`), and a
/// pull into another store downloads (`pulled`); every event is an object with its `event`,
/// every `finish` of a transfer follows its `start`, and the summary counts the bytes.
#[test]
fn json_events_carry_the_verbs_of_push_push_again_and_pull() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack_kernel(&env, "unikraft.org/events:v1", 3 * MIB, 0x9E0_0001);
    let target = format!("{}/progress/events:v1", registry.host());

    let push = ukpm(&env)
        .args([
            "--json",
            "--progress=json",
            "push",
            "unikraft.org/events:v1",
            "--to",
            &target,
        ])
        .run_within(DEADLINE);
    push.assert_success();
    assert_eq!(push.json()["uploaded"], 2, "stdout keeps the --json document");
    let pushed = events(&push);
    assert_eq!(verbs(&pushed), ["config pushed", "kernel pushed"], "{pushed:#?}");
    let mut started = BTreeMap::new();
    for event in &pushed {
        match event["event"].as_str().unwrap() {
            "start" => {
                started.insert(event["id"].as_u64().unwrap(), event["kind"].clone());
                assert_eq!(event["direction"], "upload");
                assert_eq!(event["reference"], target.as_str());
            }
            "progress" | "finish" => {
                let id = event["id"].as_u64().unwrap();
                assert!(started.contains_key(&id), "{event} before its start");
            }
            "step" | "plan" | "summary" => {}
            other => panic!("unexpected event {other}: {event}"),
        }
    }
    let plan: u64 = pushed
        .iter()
        .filter(|e| e["event"] == "plan")
        .map(|e| e["bytes"].as_u64().unwrap())
        .sum();
    let sum = summary(&pushed);
    assert_eq!(sum["operation"], "push");
    assert_eq!(
        sum["bytes"].as_u64(),
        Some(plan),
        "the summary counts every planned byte: {sum}"
    );
    assert_eq!(sum["blobs"]["pushed"], 2, "{sum}");
    assert!(sum["seconds"].as_f64().unwrap() > 0.0, "{sum}");

    let again = ukpm(&env)
        .args([
            "--progress=json",
            "push",
            "unikraft.org/events:v1",
            "--to",
            &target,
        ])
        .run_within(DEADLINE);
    again.assert_success();
    let again = events(&again);
    assert_eq!(
        verbs(&again),
        ["config already_there", "kernel already_there"],
        "{again:#?}"
    );
    let sum = summary(&again);
    assert_eq!(sum["bytes"], 0, "nothing moved: {sum}");
    assert_eq!(sum["blobs"]["already_there"], 2, "{sum}");

    let pull = ukpm(&env)
        .args(["--store", "other-store", "--progress=json", "pull", &target])
        .run_within(DEADLINE);
    pull.assert_success();
    let pulled = events(&pull);
    assert_eq!(verbs(&pulled), ["config pulled", "kernel pulled"], "{pulled:#?}");
    let kernel = pulled
        .iter()
        .find(|e| e["event"] == "finish" && e["kind"] == "kernel")
        .unwrap();
    assert_eq!(kernel["bytes"], kernel["total"], "{kernel}");
    assert_eq!(kernel["direction"], "download");
    assert_eq!(summary(&pulled)["operation"], "pull");
}

/// Packs a kernel of `size` bytes as `unikraft.org/NAME:v1`, pushes it straight to `registry`
/// as `progress/NAME:v1`, and returns a proxy in front of the registry capping each connection
/// at `rate` bytes/s, with the reference to pull through it.
fn published_behind_a_slow_proxy(
    env: &TestEnv,
    registry: &Registry,
    name: &str,
    size: u64,
    seed: u64,
    rate: u64,
) -> (Proxy, String) {
    pack_kernel(env, &format!("unikraft.org/{name}:v1"), size, seed);
    ukpm(env)
        .args([
            "-q",
            "push",
            &format!("unikraft.org/{name}:v1"),
            "--to",
            &direct(registry, name),
        ])
        .run_within(DEADLINE)
        .assert_success();
    let proxy = Proxy::start(registry.host(), Faults::none().rate_limit(rate));
    let remote = format!("{}/progress/{name}:v1", proxy.addr());
    (proxy, remote)
}

/// Where [`published_behind_a_slow_proxy`] put `name`, straight on the registry.
fn direct(registry: &Registry, name: &str) -> String {
    format!("{}/progress/{name}:v1", registry.host())
}

/// Without a terminal, a slow pull is never silent: lines at each tenth of the large blob and,
/// while the proxy holds every byte back for 12 s, a `total` line every few seconds that says
/// no bytes came; then the finished line with its verb and the summary with bytes, time and
/// rate.
#[test]
fn without_a_terminal_a_slow_pull_shows_lines_every_few_seconds() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    // Eight ranges of 256 KiB/s each: about 2 MiB/s, some 12 s for the kernel.
    let (proxy, remote) =
        published_behind_a_slow_proxy(&env, &registry, "slow", 24 * MIB, 0x9E0_0002, 256 << 10);

    let mut pull = start(&env, &["--store", "other-store", "pull", &remote]);
    wait_for_bytes(&mut pull, &proxy, 4 * MIB);
    // Long enough for what was in flight to land and then for 5 s without a byte.
    proxy.hold(true);
    std::thread::sleep(Duration::from_secs(12));
    proxy.hold(false);
    let out = pull.wait_within(DEADLINE);
    eprintln!("{}", out.stderr);
    out.assert_success();
    let lines: Vec<&str> = out.stderr.lines().collect();
    let tenths = lines
        .iter()
        .filter(|l| l.starts_with("  kernel ") && l.contains("0% ("))
        .count();
    assert!(tenths >= 2, "lines at tenths of the kernel:\n{}", out.stderr);
    assert!(
        lines.iter().any(|l| l.starts_with("  total ")
            && l.contains(" MiB of 24.0 MiB (")
            && l.contains("no bytes for")),
        "a line while the proxy held the bytes back:\n{}",
        out.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("pulled kernel 24.0 MiB ") && l.contains(&remote)),
        "the finished line names the kernel, its verb and its package:\n{}",
        out.stderr
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("finished in ") && last.contains("24.0 MiB at ") && last.contains("/s (2 pulled)"),
        "the summary closes the output: `{last}`"
    );
}

/// A pull killed half-way and run again resumes: its kernel's verb is `resumed`, and the
/// summary's `bytes` (moved by this run, the rate's basis) leave out the `resumed_bytes` the
/// killed run had landed; together they are the layer.
#[test]
fn resumed_bytes_are_not_counted_as_moved() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let size = 24 * MIB;
    let (proxy, remote) =
        published_behind_a_slow_proxy(&env, &registry, "resume", size, 0x9E0_0003, 512 << 10);
    let mut pull = start(&env, &["--store", "other-store", "-q", "pull", &remote]);
    wait_for_bytes(&mut pull, &proxy, 8 * MIB);
    // Let what is in flight land before the kill.
    proxy.hold(true);
    std::thread::sleep(Duration::from_secs(2));
    let killed = pull.kill();
    assert_eq!(killed.signal, Some(9), "{}", killed.describe());

    let again = ukpm(&env)
        .args([
            "--store",
            "other-store",
            "--progress=json",
            "pull",
            &direct(&registry, "resume"),
        ])
        .run_within(DEADLINE);
    again.assert_success();
    let events = events(&again);
    let kernel = events
        .iter()
        .find(|e| e["event"] == "finish" && e["kind"] == "kernel")
        .unwrap_or_else(|| panic!("no kernel finish: {events:#?}"));
    assert_eq!(kernel["verb"], "resumed", "{kernel}");
    let resumed = kernel["resumed_bytes"].as_u64().unwrap();
    assert!(
        resumed > MIB,
        "the killed run had landed more than 1 MiB: {kernel}"
    );
    let sum = summary(&events);
    assert_eq!(sum["resumed_bytes"].as_u64(), Some(resumed), "{sum}");
    let moved = sum["bytes"].as_u64().unwrap();
    let config = events
        .iter()
        .find(|e| e["event"] == "finish" && e["kind"] == "config")
        .map_or(0, |e| e["bytes"].as_u64().unwrap());
    let layer = kernel["total"].as_u64().unwrap();
    assert!(layer > size, "the kernel's layer is a tar of it: {kernel}");
    assert_eq!(
        moved + resumed,
        layer + config,
        "moved now and resumed add up to the blobs, each counted once: {sum}"
    );
}

/// Ctrl-C during a pull without a terminal: exit 130 (as before), and the last line tells the
/// user that the same command resumes.
#[test]
fn ctrl_c_says_the_same_command_resumes() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let (proxy, remote) =
        published_behind_a_slow_proxy(&env, &registry, "stop", 24 * MIB, 0x9E0_0004, 256 << 10);
    let mut pull = start(&env, &["--store", "other-store", "pull", &remote]);
    wait_for_bytes(&mut pull, &proxy, 2 * MIB);
    assert!(pull.is_running());
    pull.signal("INT");
    let out = pull.wait_within(Duration::from_secs(10));
    assert_eq!(out.code, 130, "{}", out.describe());
    assert_eq!(
        out.stderr.lines().last(),
        Some("interrupted: run the same command again to resume"),
        "{}",
        out.stderr
    );

    let mut pull = start(
        &env,
        &["--store", "third-store", "--progress=json", "pull", &remote],
    );
    wait_for_bytes(&mut pull, &proxy, 4 * MIB);
    pull.signal("INT");
    let out = pull.wait_within(Duration::from_secs(10));
    assert_eq!(out.code, 130, "{}", out.describe());
    let events = events(&out);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "interrupted", "{last}");
    assert_eq!(last["resumable"], true, "{last}");
}
