//! `ukpm push --merge` from many processes at once (issue 12 item 7): eight CI "jobs", each
//! with its own store and its own platform, push to one tag at the same moment, three rounds,
//! against a real `docker-registry`, directly and through a proxy that delays every chunk so
//! that the jobs interleave. Every time, the tag's index must hold all eight, each job's own
//! manifest. And a plain `push` still overwrites the tag.
#![allow(
    clippy::print_stderr,
    reason = "tests print how much the jobs interleaved to the output libtest captures"
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{pack, ukpm};
use serde_json::Value;
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;
use ukpm_test::{Running, TestEnv, require_program};

/// Eight distinct index slots.
const JOBS: [(&str, &str); 8] = [
    ("qemu", "x86_64"),
    ("qemu", "arm64"),
    ("qemu", "arm"),
    ("fc", "x86_64"),
    ("fc", "arm64"),
    ("xen", "x86_64"),
    ("xen", "arm64"),
    ("xen", "arm"),
];

const ROUNDS: usize = 3;

/// One CI job: its own store holding one platform of `app:v1`, and that manifest's digest.
struct Job {
    env: TestEnv,
    manifest: String,
    slot: String,
}

fn jobs() -> Vec<Job> {
    JOBS.iter()
        .map(|(plat, arch)| {
            let env = TestEnv::new();
            pack(&env, "app:v1", arch, plat, &[]).assert_success();
            let listed = ukpm(&env).args(["--json", "ls"]).run();
            listed.assert_success();
            let manifest = listed.json()["packages"][0]["manifest"]
                .as_str()
                .unwrap()
                .to_string();
            Job {
                env,
                manifest,
                slot: format!("{plat}/{arch}"),
            }
        })
        .collect()
}

/// The raw document a reference points at, read by skopeo (the oracle, not ukpm).
fn raw(env: &TestEnv, reference: &str) -> Value {
    serde_json::from_str(&common::skopeo_raw(env, reference)).unwrap()
}

fn entry_digests(index: &Value) -> BTreeSet<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Runs every job's `push --merge` to `host/merge/app:TAG` at once, each round a fresh tag, and
/// checks that the tag ends with every job's manifest, and that every job said so.
fn race(jobs: &[Job], registry: &Registry, host: &str, tag_prefix: &str) {
    for round in 1..=ROUNDS {
        let target = format!("{host}/merge/app:{tag_prefix}{round}");
        let running: Vec<Running> = jobs
            .iter()
            .map(|job| {
                ukpm(&job.env)
                    .args(["--json", "push", "--merge", "app:v1", "--to", &target])
                    .spawn()
            })
            .collect();
        let outcomes: Vec<_> = running.into_iter().map(Running::wait).collect();
        for out in &outcomes {
            if !out.succeeded() {
                let log = registry.log();
                let errors: Vec<&str> = log.lines().filter(|l| l.contains("level=error")).collect();
                panic!("{}\nregistry errors:\n{}", out.describe(), errors.join("\n"));
            }
        }
        // Read from the registry itself, not through the proxy.
        let direct = format!("{}/merge/app:{tag_prefix}{round}", registry.host());
        let index = raw(&jobs[0].env, &direct);
        let found = entry_digests(&index);
        for job in jobs {
            assert!(
                found.contains(&job.manifest),
                "round {round}: {}'s manifest {} is missing from {direct}: {index}",
                job.slot,
                job.manifest
            );
        }
        assert_eq!(found.len(), JOBS.len(), "round {round}: {index}");
        // Entries are sorted and carry their platforms, as the jobs' own indexes do.
        let slots: BTreeSet<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]).replace('"', ""))
            .collect();
        assert_eq!(slots.len(), JOBS.len(), "{index}");
        // Each job stops once the tag holds every job tag it saw: an early one may have seen
        // fewer than eight, never none.
        for out in &outcomes {
            let merged = out.json()["merged_platforms"].as_u64().unwrap();
            assert!((1..=JOBS.len() as u64).contains(&merged), "{}", out.stdout);
        }
        // How much the jobs interleaved: puts of the destination beyond one per job are
        // repairs of a stale put.
        let puts = registry
            .requests()
            .iter()
            .filter(|r| *r == &format!("PUT /v2/merge/app/manifests/{tag_prefix}{round}"))
            .count();
        eprintln!(
            "round {round}: {puts} puts of the destination by {} jobs",
            JOBS.len()
        );
        assert!(puts >= 1);
        // A re-run of one job changes nothing: the merge is already there.
        let again = ukpm(&jobs[3].env)
            .args(["--json", "push", "--merge", "app:v1", "--to", &target])
            .run();
        again.assert_success();
        assert_eq!(again.json()["manifests_written"], 0, "{}", again.stdout);
        assert_eq!(entry_digests(&raw(&jobs[0].env, &direct)), found);

        // A stale put landing last (here a plain push of one job's package, as a job killed
        // between its put and its check would leave) is repaired by any job's re-run: the job
        // tags still hold every platform.
        ukpm(&jobs[1].env)
            .args(["push", "app:v1", "--to", &target])
            .run()
            .assert_success();
        assert_eq!(entry_digests(&raw(&jobs[0].env, &direct)).len(), 1);
        let repair = ukpm(&jobs[6].env)
            .args(["--json", "push", "--merge", "app:v1", "--to", &target])
            .run();
        repair.assert_success();
        assert_eq!(repair.json()["merged_platforms"], JOBS.len(), "{}", repair.stdout);
        assert_eq!(entry_digests(&raw(&jobs[0].env, &direct)), found);
    }
}

#[test]
fn eight_concurrent_merging_pushers_keep_every_platform_every_round() {
    let registry = Registry::plain();
    let jobs = jobs();
    race(&jobs, &registry, &registry.host(), "r");
}

#[test]
fn eight_merging_pushers_through_a_slow_proxy_keep_every_platform() {
    let registry = Registry::plain();
    // 15 ms before every chunk, and 5% of connections answered 503 (retried by the client).
    let proxy = Proxy::start(
        registry.host(),
        Faults::none()
            .seed(ukpm_test::proxy::test_seed("push_merge_slow"))
            .delay(Duration::from_millis(15))
            .error_status(503, 0.05),
    );
    let jobs = jobs();
    race(&jobs, &registry, &proxy.addr(), "slow");
    let stats = proxy.stats();
    eprintln!("proxy: {stats:?}");
}

#[test]
fn merge_keeps_other_entries_and_a_plain_push_still_overwrites() {
    let registry = Registry::plain();
    let jobs = jobs();
    let target = format!("{}/merge/app:v1", registry.host());
    // A plain push of a two-platform package: the tag holds its index exactly.
    let two = TestEnv::new();
    pack(&two, "app:v1", "x86_64", "qemu", &["--cmd", "other"]).assert_success();
    pack(&two, "app:v1", "arm64", "fc", &["--cmd", "other"]).assert_success();
    let plain = ukpm(&two)
        .args(["--json", "push", "app:v1", "--to", &target])
        .run();
    plain.assert_success();
    let before = entry_digests(&raw(&two, &target));
    assert_eq!(before.len(), 2);

    // Merging xen/arm keeps both (their slots are not xen/arm).
    let merged = ukpm(&jobs[7].env)
        .args(["--json", "push", "--merge", "app:v1", "--to", &target])
        .run();
    merged.assert_success();
    assert_eq!(merged.json()["merged_platforms"], 3, "{}", merged.stdout);
    let after = entry_digests(&raw(&two, &target));
    assert!(
        after.is_superset(&before) && after.contains(&jobs[7].manifest),
        "{after:?}"
    );

    // Merging qemu/x86_64 replaces that slot's entry.
    ukpm(&jobs[0].env)
        .args(["push", "--merge", "app:v1", "--to", &target])
        .run()
        .assert_success();
    let index = raw(&two, &target);
    let slots: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]).replace('"', ""))
        .collect();
    assert_eq!(slots.len(), 3, "{index}");
    let entries = entry_digests(&index);
    assert!(entries.contains(&jobs[0].manifest), "{index}");
    assert_eq!(entries.intersection(&before).count(), 1, "{index}");

    // A plain push overwrites everything, as before.
    let plain = ukpm(&jobs[1].env)
        .args(["--json", "push", "app:v1", "--to", &target])
        .run();
    plain.assert_success();
    assert_eq!(plain.json().get("merged_platforms"), None, "{}", plain.stdout);
    assert_eq!(
        entry_digests(&raw(&two, &target)),
        BTreeSet::from([jobs[1].manifest.clone()])
    );

    // The job tags stay, one per slot merged, named after the destination and the slot.
    let tags = ukpm_tags(&two, &registry);
    let job_tags: Vec<&String> = tags.iter().filter(|t| t.starts_with("v1.ukpm.")).collect();
    assert_eq!(job_tags.len(), 2, "{tags:?}");
    assert!(
        job_tags.iter().any(|t| t.starts_with("v1.ukpm.xen-arm-")),
        "{tags:?}"
    );
}

#[test]
fn merge_refuses_a_tag_holding_a_single_manifest() {
    let registry = Registry::plain();
    let env = TestEnv::new();
    pack(&env, "app:v1", "x86_64", "qemu", &[]).assert_success();
    let manifest = ukpm(&env).args(["--json", "ls"]).run().json()["packages"][0]["manifest"]
        .as_str()
        .unwrap()
        .to_string();
    // Push it, then put its bare manifest under the tag with skopeo.
    let skopeo = require_program("skopeo", "skopeo");
    let target = format!("{}/merge/single:v1", registry.host());
    ukpm(&env)
        .args([
            "push",
            "app:v1",
            "--to",
            &format!("{}/merge/single:tmp", registry.host()),
        ])
        .run()
        .assert_success();
    env.command(skopeo)
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{}/merge/single@{manifest}", registry.host()))
        .arg(format!("docker://{target}"))
        .run()
        .assert_success();
    let out = ukpm(&env)
        .args(["--json", "push", "--merge", "app:v1", "--to", &target])
        .run();
    out.assert_code(1);
    assert_eq!(out.json()["error"]["code"], "invalid_input", "{}", out.stdout);
}

/// The repository's tags, read with skopeo.
fn ukpm_tags(env: &TestEnv, registry: &Registry) -> Vec<String> {
    let skopeo = require_program("skopeo", "skopeo");
    let out = env
        .command(skopeo)
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/merge/app", registry.host()))
        .run();
    out.assert_success();
    let value: Value = serde_json::from_str(&out.stdout).unwrap();
    value["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}
