//! Several `ukpm` processes on one store at the same moment. Each round starts every process
//! before waiting for any, so they race on creating the store, ingesting blobs and swapping the
//! references in `index.json`; nothing may be lost and nothing may fail.

use std::collections::BTreeSet;

mod common;

use common::ukpm;
use ukpm_test::{Outcome, Running, TestEnv};

const ROUNDS: usize = 10;

fn spawn_pack(env: &TestEnv, store: &str, name: &str, arch: &str, plat: &str) -> Running {
    let args = format!(
        "--store {store} -q pack {name} --kernel kernel --initrd initramfs.cpio --arch {arch} --plat {plat} --cmd {name}"
    );
    ukpm(env).args(args.split_whitespace()).spawn()
}

/// `ls --json` as a set of `reference arch/plat`.
fn listed(env: &TestEnv, store: &str) -> BTreeSet<String> {
    let out = ukpm(env).args(["--store", store, "--json", "ls"]).run();
    out.assert_success();
    out.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}/{}", p["reference"], p["architecture"], p["platform"]).replace('"', ""))
        .collect()
}

/// A store left by racing processes must be whole: gc finds no name reaching a missing blob,
/// leaves no half-ingested file behind, and every package is still listed and unpackable after
/// it. (gc may remove garbage: an index replaced by a merge, or one whose swap lost the race.)
fn assert_consistent(env: &TestEnv, store: &str, expected: &BTreeSet<String>) {
    let gc = ukpm(env).args(["--store", store, "--json", "gc"]).run();
    gc.assert_success();
    let report = gc.json();
    assert_eq!(
        report["missing"],
        serde_json::json!([]),
        "dangling references: {report}"
    );
    assert!(
        env.dir_state(format!("{store}/ingest")).paths().is_empty(),
        "ingest/ is left over"
    );
    assert_eq!(&listed(env, store), expected, "after gc");
    for (i, row) in expected.iter().enumerate() {
        let (reference, platform) = row.split_once(' ').unwrap();
        let (arch, plat) = platform.split_once('/').unwrap();
        let dir = format!("{store}-unpacked-{i}");
        ukpm(env)
            .args([
                "--store", store, "unpack", reference, &dir, "--arch", arch, "--plat", plat,
            ])
            .run()
            .assert_success();
        assert_eq!(
            env.read(format!("{dir}/unikraft/bin/kernel")),
            ukpm_test::conformance::KERNEL_BYTES
        );
    }
}

fn wait_all(running: Vec<Running>) -> Vec<Outcome> {
    let outcomes: Vec<Outcome> = running.into_iter().map(Running::wait).collect();
    for out in &outcomes {
        out.assert_success();
    }
    outcomes
}

#[test]
fn two_processes_pack_different_names_into_one_store() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let mut expected = BTreeSet::new();
    for round in 0..ROUNDS {
        let a = format!("alpha{round}");
        let b = format!("beta{round}");
        let outs = wait_all(vec![
            spawn_pack(&env, "store", &a, "x86_64", "qemu"),
            spawn_pack(&env, "store", &b, "x86_64", "qemu"),
        ]);
        assert!(
            outs[0].stdout.starts_with(&format!("unikraft.org/{a}@sha256:")),
            "{}",
            outs[0].stdout
        );
        assert!(
            outs[1].stdout.starts_with(&format!("unikraft.org/{b}@sha256:")),
            "{}",
            outs[1].stdout
        );
        expected.insert(format!("unikraft.org/{a}:latest x86_64/qemu"));
        expected.insert(format!("unikraft.org/{b}:latest x86_64/qemu"));
        assert_eq!(listed(&env, "store"), expected, "after round {round}");
    }
    assert_consistent(&env, "store", &expected);
}

#[test]
fn two_processes_create_a_fresh_store_at_once() {
    let env = TestEnv::new();
    env.conformance_inputs();
    for round in 0..ROUNDS {
        let store = format!("fresh{round}");
        wait_all(vec![
            spawn_pack(&env, &store, "alpha", "x86_64", "qemu"),
            spawn_pack(&env, &store, "beta", "arm64", "fc"),
        ]);
        let expected: BTreeSet<String> = [
            "unikraft.org/alpha:latest x86_64/qemu",
            "unikraft.org/beta:latest arm64/fc",
        ]
        .map(String::from)
        .into();
        assert_eq!(listed(&env, &store), expected, "round {round}");
        assert_consistent(&env, &store, &expected);
    }
}

#[test]
fn two_processes_pack_one_name_for_two_architectures_at_once() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let mut all = BTreeSet::new();
    for round in 0..ROUNDS {
        let name = format!("app{round}");
        let outs = wait_all(vec![
            spawn_pack(&env, "store", &name, "x86_64", "qemu"),
            spawn_pack(&env, "store", &name, "arm64", "qemu"),
        ]);
        let expected: BTreeSet<String> = [
            format!("unikraft.org/{name}:latest x86_64/qemu"),
            format!("unikraft.org/{name}:latest arm64/qemu"),
        ]
        .into();
        let in_store: BTreeSet<String> = listed(&env, "store")
            .into_iter()
            .filter(|row| row.starts_with(&format!("unikraft.org/{name}:")))
            .collect();
        assert_eq!(
            in_store, expected,
            "round {round}: one platform was lost to the race"
        );
        // The loser of the race merged into the winner's index: the name's final index is the one
        // the process that finished its swap last printed.
        let inspected = ukpm(&env).args(["--json", "inspect", &name]).run().json();
        let digest = inspected["descriptor"]["digest"].as_str().unwrap().to_string();
        assert!(
            outs.iter().any(|o| o.stdout.trim_end().ends_with(&digest)),
            "the final index {digest} was printed by one of the packs: {:?}",
            outs.iter().map(|o| o.stdout.clone()).collect::<Vec<_>>()
        );
        assert_eq!(inspected["index"]["manifests"].as_array().unwrap().len(), 2);
        all.extend(expected);
    }
    assert_consistent(&env, "store", &all);
}
