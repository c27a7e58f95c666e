//! Many processes, one store (issue "nothing lost, ever", item 3): eight threads run `ukpm`
//! processes doing random packs, pulls, tags, removals, collections and listings on one store,
//! then the store is checked as a whole; and `gc` runs in a tight loop while packs and pulls
//! reference blobs it could otherwise take.
//!
//! Concurrency makes "the last write wins" undecidable from outside, so the checks are
//! invariants: every process either succeeds or fails with a clean error where failing is
//! legitimate (removing a name another process removed); fsck finds the store whole; every name
//! listed unpacks to a kernel some pack or push wrote and reads back through skopeo; names no one
//! removes are never lost; and gc leaves no temp files. Every process has a deadline. The seed is
//! printed; `UKPM_TEST_SEED=N` replays a run's choices (not its timing).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests print diagnostics to the output libtest captures"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ukpm_test::proxy::{XorShift, test_seed};
use ukpm_test::registry::Registry;
use ukpm_test::{Outcome, TestEnv, require_program};

/// Past this, a process counts as hung, and is killed.
const DEADLINE: Duration = Duration::from_secs(60);
const WORKERS: usize = 8;
const OPS_EACH: usize = 30;
/// Names the random packs, tags and removals of phase one share, so that they collide.
const NAMES: [&str; 3] = ["app0", "app1", "app2"];
const TAGS: [&str; 2] = ["tag0", "tag1"];
const ARCHS: [&str; 2] = ["x86_64", "arm64"];

/// Runs the ukpm binary with `args` in the test folder, with the harness's clean environment,
/// killed past [`DEADLINE`] (its outcome then says it timed out: it hung).
fn ukpm(env: &TestEnv, args: &[&str]) -> Outcome {
    common::ukpm(env).args(args).run_within(DEADLINE)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// What the workers saw go wrong, to report all at once at the end (so that a problem in phase
/// one does not hide what phase two would find).
#[derive(Default)]
struct Problems {
    phase: Mutex<&'static str>,
    seen: Mutex<Vec<String>>,
}

impl Problems {
    fn phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap() = phase;
    }

    fn add(&self, problem: String) {
        let problem = format!("[{}] {problem}", self.phase.lock().unwrap());
        eprintln!("PROBLEM: {problem}");
        self.seen.lock().unwrap().push(problem);
    }

    /// Records a process that had to succeed and did not.
    fn must_succeed(&self, done: &Outcome) -> bool {
        let ok = done.succeeded();
        if !ok {
            self.add(format!("expected success: {}", done.describe()));
        }
        ok
    }

    /// Records a process that may fail, but only cleanly.
    fn may_fail(&self, done: &Outcome) {
        if !done.succeeded() && !done.failed_cleanly() {
            self.add(format!(
                "neither success nor a clean failure: {}",
                done.describe()
            ));
        }
    }

    #[track_caller]
    fn assert_none(&self, seed: u64) {
        let problems = self.seen.lock().unwrap();
        assert!(
            problems.is_empty(),
            "{} problems (seed {seed}):\n{}",
            problems.len(),
            problems.join("\n\n")
        );
    }
}

/// Kernels written by the test, by content, so an unpacked kernel can be traced to its writer.
type Known = BTreeSet<Vec<u8>>;

/// Packs `kernel` as `name` into `store` and pushes it straight to `registry/repo`.
fn seed_remote(env: &TestEnv, store: &Path, registry: &Registry, name: &str, repo: &str, kernel: &[u8]) {
    let path = env.write(format!("inputs/{name}"), kernel, 0o755);
    let s = path_str(store);
    let pack = ukpm(
        env,
        &[
            "--store",
            s,
            "-q",
            "pack",
            name,
            "--kernel",
            path_str(&path),
            "--arch",
            "x86_64",
            "--plat",
            "qemu",
        ],
    );
    assert!(pack.succeeded(), "{}", pack.describe());
    let to = format!("{}/{repo}", registry.host());
    let push = ukpm(env, &["--store", s, "-q", "push", name, "--to", &to]);
    assert!(push.succeeded(), "{}", push.describe());
}

/// The `ls --json` rows of a store: (reference, architecture, platform).
fn listed(env: &TestEnv, store: &Path, problems: &Problems) -> Vec<(String, String, String)> {
    let ls = ukpm(env, &["--store", path_str(store), "--json", "ls"]);
    if !problems.must_succeed(&ls) {
        return Vec::new();
    }
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&ls.stdout) else {
        problems.add(format!("ls --json printed no JSON: {}", ls.describe()));
        return Vec::new();
    };
    json["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let field = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            (field("reference"), field("architecture"), field("platform"))
        })
        .collect()
}

/// Unpacks one platform of `reference` and checks its kernel is one the test wrote.
fn unpack_known(
    env: &TestEnv,
    store: &Path,
    (reference, arch, plat): (&str, &str, &str),
    dir: &Path,
    known: &Known,
    problems: &Problems,
) -> Option<Vec<u8>> {
    let _ = fs_err::remove_dir_all(dir);
    let args = [
        "--store",
        path_str(store),
        "-q",
        "unpack",
        reference,
        path_str(dir),
        "--arch",
        arch,
        "--plat",
        plat,
    ];
    let done = ukpm(env, &args);
    if !problems.must_succeed(&done) {
        return None;
    }
    let kernel = fs_err::read(dir.join("unikraft/bin/kernel")).unwrap_or_default();
    let _ = fs_err::remove_dir_all(dir);
    if !known.contains(&kernel) {
        problems.add(format!(
            "{reference} ({arch}/{plat}) unpacks a {}-byte kernel no one wrote",
            kernel.len()
        ));
    }
    Some(kernel)
}

/// The store as a whole: fsck finds nothing; `index.json` parses; every listed platform unpacks
/// to a known kernel; skopeo reads every listed name; every name in `must_list` is listed; a
/// final gc collects cleanly and leaves no `blob-*` temp file in `ingest/`.
fn check_store(
    env: &TestEnv,
    store: &Path,
    known: &Known,
    must_list: &BTreeSet<String>,
    problems: &Problems,
) {
    let skopeo = require_program("skopeo", "skopeo");
    let s = path_str(store);
    problems.must_succeed(&ukpm(env, &["--store", s, "fsck"]));
    let index = fs_err::read(store.join("index.json")).unwrap_or_default();
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&index) {
        problems.add(format!("index.json does not parse: {e}"));
    }
    let rows = listed(env, store, problems);
    eprintln!("{} lists {} rows", store.display(), rows.len());
    for (i, (reference, arch, plat)) in rows.iter().enumerate() {
        let dir = env.path(format!("check/{i}"));
        unpack_known(env, store, (reference, arch, plat), &dir, known, problems);
    }
    let names: BTreeSet<&str> = rows.iter().map(|(r, _, _)| r.as_str()).collect();
    for name in &names {
        let out = Command::new(&skopeo)
            .args(["inspect", "--raw", &format!("oci:{s}:{name}")])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run skopeo");
        if !out.status.success() {
            problems.add(format!(
                "skopeo cannot read {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    for name in must_list {
        if !names.contains(name.as_str()) {
            problems.add(format!(
                "{name} was lost: no one removed it, yet it is not listed"
            ));
        }
    }
    let gc = ukpm(env, &["--store", s, "--json", "gc"]);
    if problems.must_succeed(&gc) {
        let report: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap_or_default();
        if report["missing"] != serde_json::json!([]) {
            problems.add(format!("gc reports missing blobs: {report}"));
        }
    }
    let leftovers: Vec<String> = fs_err::read_dir(store.join("ingest"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("blob-"))
                .collect()
        })
        .unwrap_or_default();
    if !leftovers.is_empty() {
        problems.add(format!("temp files left in ingest/ after gc: {leftovers:?}"));
    }
    problems.must_succeed(&ukpm(env, &["--store", s, "fsck"]));
}

#[test]
fn eight_processes_random_operations_one_store() {
    let seed = test_seed("eight_processes_random_operations_one_store");
    let env = TestEnv::new();
    let registry = Registry::plain();
    let mut rng = XorShift::new(seed);
    let mut known = Known::new();

    // Phase one's inputs: a few kernels the packs choose from, and two images in the registry.
    let kernels: Vec<PathBuf> = (0..4)
        .map(|i| {
            let kernel = random_bytes(&mut rng, 2 * 1024, 48 * 1024);
            let path = env.write(format!("kernels/k{i}"), &kernel, 0o755);
            known.insert(kernel);
            path
        })
        .collect();
    let initrd = env.write("initrd", rng.bytes(3000), 0o644);
    let seed_store = env.path("seed-store");
    let mut remotes = Vec::new();
    for name in ["a", "b"] {
        let kernel = random_bytes(&mut rng, 8 * 1024, 256 * 1024);
        seed_remote(
            &env,
            &seed_store,
            &registry,
            &format!("unikraft.org/seed-{name}:v1"),
            &format!("stress/{name}:v1"),
            &kernel,
        );
        known.insert(kernel);
        remotes.push(format!("{}/stress/{name}:v1", registry.host()));
    }
    // Phase two's: images each puller has to itself.
    let phase2_remotes: Vec<(String, Vec<u8>)> = (0..9)
        .map(|j| {
            let kernel = random_bytes(&mut rng, 16 * 1024, 512 * 1024);
            seed_remote(
                &env,
                &seed_store,
                &registry,
                &format!("unikraft.org/seed-p{j}:v1"),
                &format!("stress/p{j}:v1"),
                &kernel,
            );
            known.insert(kernel.clone());
            (format!("{}/stress/p{j}:v1", registry.host()), kernel)
        })
        .collect();

    // Phase one: eight workers, random operations on names they share.
    let store = env.store();
    let started = Instant::now();
    let problems = Problems::default();
    problems.phase("phase one");
    let private = Mutex::new(BTreeSet::new());
    let counts: Mutex<BTreeMap<&'static str, (usize, usize)>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for worker in 0..WORKERS {
            let mut rng = XorShift::new(seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (env, store, kernels, initrd, remotes) = (&env, &store, &kernels, &initrd, &remotes);
            let (problems, private, counts) = (&problems, &private, &counts);
            scope.spawn(move || {
                let s = path_str(store);
                let any_name = |rng: &mut XorShift| -> String {
                    match rng.below(3) {
                        0 => rng.pick(&NAMES).to_string(),
                        1 => rng.pick(&TAGS).to_string(),
                        _ => rng.pick(remotes).clone(),
                    }
                };
                for op in 0..OPS_EACH {
                    let roll = rng.below(100);
                    let (kind, done) = if roll < 30 {
                        // One pack in five is of a name only this worker ever writes and no one
                        // removes: it must survive whatever the others do.
                        let own = rng.chance(0.2);
                        let name = if own {
                            format!("own-w{worker}-{op}")
                        } else {
                            rng.pick(&NAMES).to_string()
                        };
                        let kernel = rng.pick(kernels).as_path();
                        let arch = *rng.pick(&ARCHS);
                        let done = ukpm(
                            env,
                            &[
                                "--store",
                                s,
                                "-q",
                                "pack",
                                &name,
                                "--kernel",
                                path_str(kernel),
                                "--initrd",
                                path_str(initrd),
                                "--arch",
                                arch,
                                "--plat",
                                "qemu",
                            ],
                        );
                        if problems.must_succeed(&done) && own {
                            private
                                .lock()
                                .unwrap()
                                .insert(format!("unikraft.org/{name}:latest"));
                        }
                        ("pack", done)
                    } else if roll < 45 {
                        let remote = rng.pick(remotes).as_str();
                        let done = ukpm(env, &["--store", s, "-q", "pull", remote]);
                        problems.must_succeed(&done);
                        ("pull", done)
                    } else if roll < 60 {
                        let (from, to) = (
                            any_name(&mut rng),
                            rng.pick(&[&TAGS[..], &NAMES[..]].concat()).to_string(),
                        );
                        let done = ukpm(env, &["--store", s, "-q", "tag", &from, &to]);
                        problems.may_fail(&done);
                        ("tag", done)
                    } else if roll < 75 {
                        let done = ukpm(env, &["--store", s, "-q", "rm", &any_name(&mut rng)]);
                        problems.may_fail(&done);
                        ("rm", done)
                    } else if roll < 90 {
                        let done = ukpm(env, &["--store", s, "-q", "gc"]);
                        problems.must_succeed(&done);
                        ("gc", done)
                    } else {
                        let done = ukpm(env, &["--store", s, "--json", "ls"]);
                        if problems.must_succeed(&done)
                            && serde_json::from_str::<serde_json::Value>(&done.stdout).is_err()
                        {
                            problems.add(format!("ls --json printed no JSON: {}", done.describe()));
                        }
                        ("ls", done)
                    };
                    let mut counts = counts.lock().unwrap();
                    let entry = counts.entry(kind).or_default();
                    if done.succeeded() {
                        entry.0 += 1;
                    } else {
                        entry.1 += 1;
                    }
                }
            });
        }
    });
    eprintln!(
        "phase one: {} operations in {:.1?}; (succeeded, failed) by kind: {:?}",
        WORKERS * OPS_EACH,
        started.elapsed(),
        counts.lock().unwrap()
    );
    let private = private.into_inner().unwrap();
    check_store(&env, &store, &known, &private, &problems);

    // Phase two: gc in a tight loop on two threads while six others pack and pull into a fresh
    // store and, at once, unpack what they made. Packs reuse three kernels and every other
    // package is removed again, so gc keeps finding garbage that the next pack or pull is about
    // to reference again.
    let store = env.path("store2");
    problems.phase("phase two");
    let started = Instant::now();
    let expected = Mutex::new(BTreeSet::new());
    let busy = AtomicUsize::new(6);
    let gc_runs = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let pool: Vec<(PathBuf, Vec<u8>)> = kernels[..3]
        .iter()
        .map(|p| (p.clone(), fs_err::read(p).unwrap()))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (env, store, problems, stop, gc_runs) = (&env, &store, &problems, &stop, &gc_runs);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    problems.must_succeed(&ukpm(env, &["--store", path_str(store), "-q", "gc"]));
                    gc_runs.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        for packer in 0..3 {
            let mut rng = XorShift::new(seed ^ (100 + packer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (env, store, problems, expected, known) = (&env, &store, &problems, &expected, &known);
            let (pool, initrd, busy, stop) = (&pool, &initrd, &busy, &stop);
            scope.spawn(move || {
                let _done = LastOneStops(busy, stop);
                let s = path_str(store);
                for i in 0..16 {
                    let name = format!("p2-w{packer}-{i}");
                    let (kernel_path, kernel) = rng.pick(pool);
                    let arch = *rng.pick(&ARCHS);
                    let pack = ukpm(
                        env,
                        &[
                            "--store",
                            s,
                            "-q",
                            "pack",
                            &name,
                            "--kernel",
                            path_str(kernel_path),
                            "--initrd",
                            path_str(initrd),
                            "--arch",
                            arch,
                            "--plat",
                            "qemu",
                        ],
                    );
                    if !problems.must_succeed(&pack) {
                        continue;
                    }
                    let reference = format!("unikraft.org/{name}:latest");
                    let dir = env.path(format!("p2-out/packer{packer}"));
                    let got = unpack_known(env, store, (&reference, arch, "qemu"), &dir, known, problems);
                    if got.is_some_and(|got| got != *kernel) {
                        problems.add(format!("{reference} unpacks another kernel than was packed"));
                    }
                    if i % 2 == 0 {
                        problems.must_succeed(&ukpm(env, &["--store", s, "-q", "rm", &reference]));
                    } else {
                        expected.lock().unwrap().insert(reference);
                    }
                }
            });
        }
        for puller in 0..3 {
            let (env, store, problems, expected, known) = (&env, &store, &problems, &expected, &known);
            let (mine, busy, stop) = (&phase2_remotes[puller * 3..puller * 3 + 3], &busy, &stop);
            scope.spawn(move || {
                let _done = LastOneStops(busy, stop);
                let s = path_str(store);
                // Each round but the last pulls and removes (its blobs become garbage); the next
                // pulls the same images again while gc may be collecting exactly those blobs.
                for round in 0..4 {
                    for (remote, kernel) in mine {
                        if !problems.must_succeed(&ukpm(env, &["--store", s, "-q", "pull", remote])) {
                            continue;
                        }
                        let dir = env.path(format!("p2-out/puller{puller}"));
                        let got = unpack_known(env, store, (remote, "x86_64", "qemu"), &dir, known, problems);
                        if got.is_some_and(|got| got != *kernel) {
                            problems.add(format!("{remote} unpacks another kernel than was pushed"));
                        }
                        if round < 3 {
                            problems.must_succeed(&ukpm(env, &["--store", s, "-q", "rm", remote]));
                        } else {
                            expected.lock().unwrap().insert(remote.clone());
                        }
                    }
                }
            });
        }
    });
    eprintln!(
        "phase two: {:.1?}, {} gc runs",
        started.elapsed(),
        gc_runs.load(Ordering::SeqCst)
    );
    let expected = expected.into_inner().unwrap();
    check_store(&env, &store, &known, &expected, &problems);
    let listed_names: BTreeSet<String> = listed(&env, &store, &problems)
        .into_iter()
        .map(|(r, _, _)| r)
        .collect();
    problems.assert_none(seed);
    assert_eq!(
        listed_names, expected,
        "phase two: the store lists exactly what was packed or pulled and not removed"
    );
}

/// Counts a phase-two worker out when it ends, even by a panic; the last one out stops the gc
/// loops, so a failing worker cannot leave them spinning forever.
struct LastOneStops<'a>(&'a AtomicUsize, &'a AtomicBool);

impl Drop for LastOneStops<'_> {
    fn drop(&mut self) {
        if self.0.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

/// Random bytes, `lo..=hi` of them.
fn random_bytes(rng: &mut XorShift, lo: u64, hi: u64) -> Vec<u8> {
    let len = rng.between(lo, hi);
    rng.bytes(len as usize)
}
