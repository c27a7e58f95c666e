//! One download per blob: two `ukpm pull` processes that need the same blob on one store at
//! the same time fetch it once; the second waits for the first and finds it stored, or takes
//! over if the first dies. Bytes are counted by the harness's proxy in front of a real
//! `docker-registry`.

mod common;

use std::time::Duration;

use common::ukpm;
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;
use ukpm_test::{Running, TestEnv, wait_until};

const MIB: u64 = 1 << 20;
/// Large enough to be fetched as parallel ranges.
const KERNEL: u64 = 24 * MIB;
const DEADLINE: Duration = Duration::from_secs(120);

/// Packs a kernel of [`KERNEL`] bytes and pushes it straight to `registry`; returns the blob
/// bytes the image holds (config, kernel, manifest and index are all small but the kernel).
fn publish(env: &TestEnv, registry: &Registry, name: &str) {
    let kernel: Vec<u8> = (0..KERNEL).map(|i| ((i * 2_654_435_761) >> 13) as u8).collect();
    env.write("kernel", kernel, 0o644);
    let remote = format!("{}/{name}", registry.host());
    ukpm(env)
        .args(["--store", "source", "pack", &remote, "--kernel", "kernel"])
        .args(["--arch", "x86_64", "--plat", "qemu"])
        .run()
        .assert_success();
    ukpm(env)
        .args(["--store", "source", "push", &remote])
        .run()
        .assert_success();
}

/// Publishes `name`, then starts two pulls of it into one store through a proxy slow enough
/// that the second starts while the first is still fetching the kernel.
fn two_pulls(env: &TestEnv, registry: &Registry, name: &str) -> (Proxy, Running, Running) {
    publish(env, registry, name);
    let proxy = Proxy::start(registry.host(), Faults::none().rate_limit(MIB));
    let reference = format!("{}/{name}", proxy.addr());
    let pull = || ukpm(env).args(["--store", "store", "pull", &reference]).spawn();
    let first = pull();
    wait_until(
        "the first pull is fetching the kernel",
        Duration::from_secs(60),
        || proxy.stats().bytes_down > MIB,
    );
    let second = pull();
    (proxy, first, second)
}

#[test]
fn two_processes_pulling_one_image_into_one_store_download_it_once() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let (proxy, first, second) = two_pulls(&env, &registry, "one/blob:v1");
    let (a, b) = (first.wait_within(DEADLINE), second.wait_within(DEADLINE));
    a.assert_success();
    b.assert_success();
    let moved = proxy.stats().bytes_down;
    assert!(
        moved < KERNEL + KERNEL / 20,
        "two pulls moved {moved} bytes for a {KERNEL}-byte kernel: it was fetched twice"
    );
    ukpm(&env)
        .args(["--store", "store", "fsck"])
        .run()
        .assert_success();
}

#[test]
fn a_pull_waiting_for_another_takes_over_when_that_one_dies() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let (proxy, first, second) = two_pulls(&env, &registry, "one/dies:v1");
    // The second waits on the first's partial download (it moves nothing of its own): kill
    // the first mid-download.
    wait_until(
        "the second pull waits for the first",
        Duration::from_secs(60),
        || holds_open(second.pid(), "partial-"),
    );
    first.kill();
    let done = second.wait_within(DEADLINE);
    done.assert_success();
    // The second resumed what the first left instead of fetching the whole kernel again.
    let moved = proxy.stats().bytes_down;
    assert!(
        moved < KERNEL + KERNEL / 5,
        "{moved} bytes moved for a {KERNEL}-byte kernel"
    );
    ukpm(&env)
        .args(["--store", "store", "fsck"])
        .run()
        .assert_success();
}

/// Whether `pid` has a file open whose name starts with `prefix`.
fn holds_open(pid: u32, prefix: &str) -> bool {
    let Ok(fds) = fs_err::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        fs_err::read_link(fd.path()).is_ok_and(|target| {
            target
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(prefix))
        })
    })
}
