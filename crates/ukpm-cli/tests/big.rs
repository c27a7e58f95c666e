//! The sizes unikernel users are heading to (issue 14, point 5): a 10 GiB initrd packed,
//! unpacked and checked with a peak RSS under 64 MiB and no copy on disk beyond the blob and the
//! unpacked file, its layer byte-identical to the one Go's `archive/tar` (and so KraftKit) writes
//! past ustar's 8 GiB; and an initrd folder of 100,000 files archived as CPIO in memory that
//! does not grow with the number of files.
//!
//! The 10 GiB input is sparse (`set_len`), so it costs no disk; the blob and the unpacked file
//! are real (20 GiB at the peak) and go when the test folder does, even when the test fails.
//! Peak RSS is what `/usr/bin/time -v` reports for the `ukpm` process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::UKPM;
use ukpm_test::{Outcome, TestEnv, conformance};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// The peak RSS the issue allows any of pack, unpack and fsck at this size.
const MAX_RSS: u64 = 64 * MIB;

/// The initrd layer Go's `archive/tar` writes for a 10 GiB file of zeros at
/// `unikraft/bin/initrd`, mode 0644, as KraftKit's `oci/layer.go` sets its header: from
/// `crates/ukpm-archive/tests/go/layer_header.go unikraft/bin/initrd 10737418240 644 full` with
/// go1.19.8 (a PAX `size` record, then the data, padding and two zero blocks).
const GO_INITRD_10GIB: (&str, u64) = (
    "sha256:97a1328541851b58b59940aeea83912890d55c35bc6f891dead598edf09fb03e",
    10_737_420_800,
);

/// Runs `ukpm ARGS` under `/usr/bin/time -v`; returns the outcome and the peak RSS in bytes.
fn measured(env: &TestEnv, args: &[&str]) -> (Outcome, u64) {
    let out = env
        .command("/usr/bin/time")
        .arg("-v")
        .arg(UKPM)
        .args(args)
        .run_within(Duration::from_secs(1800));
    out.assert_success();
    let peak_kib: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in:\n{}", out.stderr));
    (out, peak_kib * 1024)
}

/// The disk space the files under `dir` take (allocated blocks, as `du` counts them).
fn disk_used(dir: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-s", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Samples [`disk_used`] of `dir` while `work` runs; returns what `work` returned and the most
/// disk seen in use.
fn most_disk_during<T>(dir: &Path, work: impl FnOnce() -> T) -> (T, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, dir) = (stop.clone(), dir.to_path_buf());
        thread::spawn(move || {
            let mut most = 0;
            while !stop.load(Ordering::Relaxed) {
                most = most.max(disk_used(&dir));
                thread::sleep(Duration::from_millis(200));
            }
            most.max(disk_used(&dir))
        })
    };
    let out = work();
    stop.store(true, Ordering::Relaxed);
    (out, sampler.join().unwrap())
}

#[test]
fn a_10_gib_initrd_packs_unpacks_and_checks_in_bounded_memory_and_disk() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let size = 10 * GIB;
    let initrd = env.path("initrd.img");
    let file = fs_err::File::create(&initrd).unwrap();
    file.set_len(size).unwrap();
    drop(file);
    fs_err::set_permissions(&initrd, std::fs::Permissions::from_mode(0o644)).unwrap();

    let ((_, pack_rss), pack_disk) = most_disk_during(env.root(), || {
        measured(
            &env,
            &[
                "pack",
                "big:1",
                "--kernel",
                "kernel",
                "--initrd",
                "initrd.img",
                "--arch",
                "x86_64",
                "--plat",
                "qemu",
            ],
        )
    });
    assert!(pack_rss < MAX_RSS, "pack peaked at {} MiB", pack_rss / MIB);
    // The input is sparse: what is on disk is the blob alone (and the few small documents).
    assert!(
        pack_disk < size + 64 * MIB,
        "pack used {} MiB of disk at its peak",
        pack_disk / MIB
    );

    // Past ustar's 8 GiB the layer is still KraftKit's, byte for byte.
    let out = common::ukpm(&env).args(["--json", "inspect", "big:1"]).run();
    out.assert_success();
    let layers = out.json()["manifests"][0]["manifest"]["layers"].clone();
    let layer = layers
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["org.unikraft.kernel.initrd"].is_string())
        .unwrap_or_else(|| panic!("no initrd layer in {layers}"))
        .clone();
    assert_eq!(
        (layer["digest"].as_str().unwrap(), layer["size"].as_u64().unwrap()),
        GO_INITRD_10GIB
    );
    assert_eq!(layers[0]["digest"].as_str().unwrap(), conformance::KERNEL_LAYER);

    let ((_, unpack_rss), unpack_disk) =
        most_disk_during(env.root(), || measured(&env, &["unpack", "big:1", "out"]));
    assert!(unpack_rss < MAX_RSS, "unpack peaked at {} MiB", unpack_rss / MIB);
    // The blob and the unpacked file, nothing more: no temp copy, no second staging.
    assert!(
        unpack_disk < 2 * size + 64 * MIB,
        "unpack used {} MiB of disk at its peak",
        unpack_disk / MIB
    );
    let unpacked = fs_err::metadata(env.path("out/unikraft/bin/initrd")).unwrap();
    assert_eq!(unpacked.len(), size);
    assert_eq!(ukpm_test::mode_of(env.path("out/unikraft/bin/initrd")), 0o644);

    let (out, fsck_rss) = measured(&env, &["fsck"]);
    assert!(fsck_rss < MAX_RSS, "fsck peaked at {} MiB", fsck_rss / MIB);
    assert!(out.stdout.contains("0 problems"), "{}", out.stdout);
}

#[test]
fn a_folder_of_100_000_files_packs_in_memory_that_does_not_grow_with_them() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let pack_dir = |name: &str, files: usize| {
        let dir = env.path(name);
        fs_err::create_dir(&dir).unwrap();
        for i in 0..files {
            fs_err::write(dir.join(format!("file-{i:06}")), i.to_le_bytes()).unwrap();
        }
        let (_, rss) = measured(
            &env,
            &[
                "pack",
                &format!("{name}:1"),
                "--kernel",
                "kernel",
                "--initrd",
                name,
                "--arch",
                "x86_64",
                "--plat",
                "qemu",
            ],
        );
        rss
    };
    let few = pack_dir("few", 100);
    let many = pack_dir("many", 100_000);
    // The names of one folder are held to sort them, about 20 bytes each: 2 MiB for 100,000.
    // Anything per file beyond that (headers, buffers, whole files) would show here.
    assert!(
        many < few + 6 * MIB,
        "100 files peaked at {} KiB, 100,000 at {} KiB",
        few / 1024,
        many / 1024
    );
    assert!(many < MAX_RSS, "100,000 files peaked at {} MiB", many / MIB);
}
