//! How a store changes over time, on the built binary: packing the same inputs again, the merge
//! strategies on an existing name, and `rm` with `gc` keeping exactly what names still reach.

mod common;

use common::*;
use serde_json::json;
use ukpm_test::{TestEnv, conformance};

#[test]
fn the_same_inputs_give_the_same_digests() {
    // No SOURCE_DATE_EPOCH: nothing time-dependent may reach a digest, even a second later.
    let first = TestEnv::new();
    first.conformance_inputs();
    let args = "pack hello --kernel kernel --initrd initramfs.cpio --arch arm64 --plat fc --cmd /hello";
    let run = |env: &TestEnv| {
        let out = ukpm(env).args(args.split_whitespace()).args(["--", "a b"]).run();
        out.assert_success();
        out.stdout
    };
    let once = run(&first);
    // This sleep is the behaviour under test, not synchronisation: the second pack runs in
    // another second of the clock, which a timestamp with one-second precision would show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = run(&first);
    let second = TestEnv::new();
    second.conformance_inputs();
    let elsewhere = run(&second);
    assert!(once.starts_with("unikraft.org/hello@sha256:"), "{once}");
    assert_eq!(once, again, "packing twice into one store");
    assert_eq!(once, elsewhere, "packing into another store");
    assert_eq!(first.blob_names("store"), second.blob_names("store"));
}

// --- strategies -----------------------------------------------------------------------------

#[test]
fn abort_refuses_a_taken_slot_and_changes_no_reference() {
    let env = TestEnv::new();
    pack(&env, "app", "x86_64", "qemu", &["--cmd", "one"]).assert_success();
    let refs = env.read("store/index.json");
    let blobs = env.blob_names("store");
    let out = pack(
        &env,
        "app",
        "x86_64",
        "qemu",
        &["--cmd", "two", "--strategy", "abort"],
    );
    out.assert_failure();
    insta::assert_snapshot!("strategy_abort_conflict", out.snapshot_text());
    let json = ukpm(&env)
        .args(
            "--json pack app --kernel kernel --arch x86_64 --plat qemu --cmd two --strategy abort"
                .split_whitespace(),
        )
        .run();
    json.assert_failure();
    assert_eq!(json.json()["error"]["code"], "conflict");

    // The name still points where it did, and the slot is checked before anything is written:
    // not even garbage blobs are left behind.
    assert_eq!(
        env.read("store/index.json"),
        refs,
        "a refused pack changed the references"
    );
    assert_eq!(env.blob_names("store"), blobs, "a refused pack wrote blobs");
    assert_eq!(
        ukpm(&env).args(["--json", "inspect", "app"]).run().json()["manifests"][0]["config"]["config"]["Cmd"],
        json!(["one"])
    );

    // Abort only guards the slot: another platform still goes in.
    pack(&env, "app", "arm64", "fc", &["--strategy", "abort"]).assert_success();
    assert_eq!(index_platforms(&env, "app"), ["x86_64/qemu", "arm64/fc"]);
}

#[test]
fn merge_adds_platforms_and_replaces_a_slot_and_overwrite_replaces_the_index() {
    let env = TestEnv::new();
    pack(&env, "app", "x86_64", "qemu", &["--cmd", "one"]).assert_success();
    pack(&env, "app", "arm64", "fc", &[]).assert_success();
    pack(&env, "app", "arm", "xen", &["--strategy", "merge"]).assert_success();
    assert_eq!(
        index_platforms(&env, "app"),
        ["x86_64/qemu", "arm64/fc", "arm/xen"]
    );

    // Same slot, new content: replaced; survivors keep their order and the new entry goes last.
    let out = pack(&env, "app", "x86_64", "qemu", &["--cmd", "two"]);
    out.assert_success();
    assert_eq!(
        index_platforms(&env, "app"),
        ["arm64/fc", "arm/xen", "x86_64/qemu"]
    );
    let inspected = ukpm(&env).args(["--json", "inspect", "app"]).run().json();
    let x86 = inspected["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["package"]["architecture"] == "x86_64")
        .unwrap();
    assert_eq!(x86["config"]["config"]["Cmd"], json!(["two"]));
    // pack prints the digest the name now points at.
    let printed = out.stdout.trim_end().split_once('@').unwrap().1.to_string();
    assert_eq!(inspected["descriptor"]["digest"], printed);

    let out = pack(&env, "app", "arm64", "xen", &["--strategy", "overwrite"]);
    out.assert_success();
    assert_eq!(index_platforms(&env, "app"), ["arm64/xen"]);
    assert_eq!(
        rows(&ukpm(&env).args(["--json", "ls"]).run()),
        ["unikraft.org/app:latest arm64/xen"]
    );
}

// --- rm and gc ------------------------------------------------------------------------------

#[test]
fn gc_keeps_a_kernel_two_packages_share_until_both_are_removed() {
    let env = TestEnv::new();
    pack(&env, "one", "x86_64", "qemu", &["--cmd", "first"]).assert_success();
    pack(&env, "two", "x86_64", "qemu", &["--cmd", "second"]).assert_success();
    let kernel_hex = conformance::KERNEL_LAYER
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    // Each package: index, manifest, config; the kernel layer once.
    assert_eq!(env.blob_names("store").len(), 7);

    let gc = ukpm(&env).arg("gc").run();
    gc.assert_success();
    insta::assert_snapshot!("gc_nothing_to_do", gc.snapshot_text());
    assert_eq!(env.blob_names("store").len(), 7);

    let rm = ukpm(&env).args(["rm", "one"]).run();
    rm.assert_success();
    assert_eq!(rm.stdout, "unikraft.org/one:latest\n");
    assert_eq!(env.blob_names("store").len(), 7, "rm leaves blobs for gc");
    let gc = ukpm(&env).arg("gc").run();
    gc.assert_success();
    insta::assert_snapshot!("gc_after_rm_one", gc.snapshot_text());
    let left = env.blob_names("store");
    assert_eq!(left.len(), 4);
    assert!(left.contains(&kernel_hex), "the shared kernel survives");
    let out = ukpm(&env).args(["unpack", "two", "out"]).run();
    out.assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    ukpm(&env).args(["inspect", "one"]).run().assert_failure();

    let rm = ukpm(&env).args(["--json", "rm", "two"]).run();
    rm.assert_success();
    assert_eq!(rm.json(), json!({"removed": ["unikraft.org/two:latest"]}));
    let gc = ukpm(&env).args(["--json", "gc"]).run();
    gc.assert_success();
    let report = gc.json();
    assert!(
        report["removed"]
            .as_array()
            .unwrap()
            .contains(&json!(conformance::KERNEL_LAYER)),
        "{report}"
    );
    assert_eq!(report["removed"].as_array().unwrap().len(), 4);
    assert_eq!(report["kept"], 0);
    assert_eq!(report["missing"], json!([]));
    assert_eq!(env.blob_names("store"), Vec::<String>::new());
    assert_eq!(
        rows(&ukpm(&env).args(["--json", "ls"]).run()),
        Vec::<String>::new()
    );
}

#[test]
fn rm_all_and_rm_of_a_missing_name() {
    let env = TestEnv::new();
    pack(&env, "one", "x86_64", "qemu", &[]).assert_success();
    pack(&env, "two:v2", "arm64", "xen", &[]).assert_success();
    let before = env.dir_state("store");
    let missing = ukpm(&env).args(["rm", "one", "nothere"]).run();
    missing.assert_failure();
    insta::assert_snapshot!("rm_not_found", missing.snapshot_text());
    assert_eq!(
        env.dir_state("store"),
        before,
        "a failed rm removes nothing, not even the names it found"
    );
    let all = ukpm(&env).args(["rm", "--all"]).run();
    all.assert_success();
    assert_eq!(all.stdout, "unikraft.org/one:latest\nunikraft.org/two:v2\n");
    ukpm(&env).arg("gc").run().assert_success();
    assert_eq!(env.blob_names("store"), Vec::<String>::new());
}
