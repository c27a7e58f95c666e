//! Nothing lost, ever: `ukpm pull` and `push` through the harness's fault-injecting proxy
//! ([`ukpm_test::proxy`]) in front of a real `docker-registry`, pulls killed with SIGKILL and
//! resumed, and Ctrl-C (SIGINT) in the middle of transfers.
//!
//! Every process runs under a deadline and is killed past it, so a hang fails the test instead
//! of stalling the run. Randomised tests print their seed; `UKPM_TEST_SEED=N` replays one.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests print diagnostics to the output libtest captures"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::ukpm;
use ukpm_test::proxy::{Faults, Proxy, Stats, XorShift, test_seed};
use ukpm_test::registry::Registry;
use ukpm_test::{Outcome, Running, TestEnv, sha256_hex, wait_for, wait_until};

/// Operations of the soak test.
const SOAK_OPS: usize = 200;
/// Independent workers (each with its own store) sharing the soak's operations.
const SOAK_WORKERS: usize = 6;
/// Longer than any correct operation may take through the faulty proxy (retries with backoff
/// and a 2 s stall included): past it, the process counts as hung.
const OP_DEADLINE: Duration = Duration::from_secs(60);
/// For local operations (pack, fsck, unpack, gc...).
const LOCAL_DEADLINE: Duration = Duration::from_secs(60);
/// The rate cap that makes a large pull or push last seconds.
const SLOW: u64 = 8 << 20;
const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Processes under a deadline

/// Starts `ukpm ARGS` with the harness's clean environment, to signal or kill it while it runs.
fn start(env: &TestEnv, args: &[&str]) -> Running {
    ukpm(env).args(args).spawn()
}

/// Runs `ukpm ARGS` to its end or its deadline (then it is killed and counts as hung).
fn run(env: &TestEnv, args: &[&str], deadline: Duration) -> Outcome {
    ukpm(env).args(args).run_within(deadline)
}

/// The last `caused by:` line of an error (else its `error:` line), with the digests, addresses
/// and byte counts that make each one unique written `#` (status codes stay), to count failures
/// by kind.
fn cause(done: &Outcome) -> String {
    let line = done
        .stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("caused by: "))
        .or_else(|| done.stderr.lines().find_map(|l| l.strip_prefix("error: ")))
        .unwrap_or("(no message)");
    let mut out = String::new();
    let mut digits = false;
    for word in line.split_inclusive([' ', ':', '/', '@']) {
        let (body, sep) = word.split_at(word.len() - word.ends_with([' ', ':', '/', '@']) as usize);
        let number = !body.is_empty() && body.chars().all(|c| c.is_ascii_digit() || c == '.');
        let hex = body.len() >= 12 && body.chars().all(|c| c.is_ascii_hexdigit());
        let generic = hex || (number && (body.len() >= 5 || body.contains('.')));
        if generic {
            if !digits {
                out.push('#');
            }
            digits = true;
        } else {
            out.push_str(body);
            digits = false;
        }
        out.push_str(sep);
    }
    out
}

/// `ukpm fsck` of a store: `Ok` when it is whole, else what went wrong.
fn fsck(env: &TestEnv, store: &Path) -> Result<(), String> {
    let done = run(env, &["--store", &path_str(store), "fsck"], LOCAL_DEADLINE);
    if done.succeeded() {
        Ok(())
    } else {
        Err(done.describe())
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_string()
}

/// `ukpm unpack REF` from a store into a fresh folder; the kernel and initrd it wrote (the initrd
/// empty when there is none), or what went wrong.
fn unpack(env: &TestEnv, store: &Path, reference: &str, dir: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let _ = fs_err::remove_dir_all(dir);
    let done = run(
        env,
        &["--store", &path_str(store), "unpack", reference, &path_str(dir)],
        LOCAL_DEADLINE,
    );
    if !done.succeeded() {
        return Err(done.describe());
    }
    let kernel = fs_err::read(dir.join("unikraft/bin/kernel")).map_err(|e| e.to_string())?;
    let initrd = fs_err::read(dir.join("unikraft/bin/initrd")).unwrap_or_default();
    let _ = fs_err::remove_dir_all(dir);
    Ok((kernel, initrd))
}

/// The files in a store's `ingest/` whose names start with `prefix`, with their sizes.
fn ingest_files(store: &Path, prefix: &str) -> Vec<(String, u64)> {
    let Ok(entries) = fs_err::read_dir(store.join("ingest")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let len = e.metadata().ok()?.len();
            name.starts_with(prefix).then_some((name, len))
        })
        .collect()
}

/// The `partial-*` downloads in a store's `ingest/`, with their sizes.
fn partials(store: &Path) -> Vec<(String, u64)> {
    ingest_files(store, "partial-")
}

/// The size of the largest blob of a store: the kernel layer of a one-kernel image.
fn largest_blob(store: &Path) -> u64 {
    fs_err::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap()
}

/// Packs `kernel` (and `initrd`) as `name` into `store` and pushes it straight to the registry
/// (not through any proxy) as `registry/repo`.
fn seed_image(
    env: &TestEnv,
    store: &Path,
    registry: &Registry,
    name: &str,
    repo: &str,
    kernel: &[u8],
    initrd: Option<&[u8]>,
) {
    let kernel_path = env.write(format!("inputs/{name}/kernel"), kernel, 0o755);
    let mut args = vec![
        "--store".to_string(),
        path_str(store),
        "-q".into(),
        "pack".into(),
        name.into(),
        "--kernel".into(),
        path_str(&kernel_path),
        "--arch".into(),
        "x86_64".into(),
        "--plat".into(),
        "qemu".into(),
    ];
    if let Some(initrd) = initrd {
        let initrd_path = env.write(format!("inputs/{name}/initrd"), initrd, 0o644);
        args.extend(["--initrd".into(), path_str(&initrd_path)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(env, &args, LOCAL_DEADLINE).assert_success();
    let to = format!("{}/{repo}", registry.host());
    run(
        env,
        &["--store", &path_str(store), "-q", "push", name, "--to", &to],
        OP_DEADLINE,
    )
    .assert_success();
}

// ---------------------------------------------------------------------------------------------
// The soak

/// What one operation through the faulty proxy came to.
#[derive(Debug)]
enum Verdict {
    /// Exit 0, and what it moved is byte-exact.
    Completed,
    /// Exit 1 with an `error:` line, and the store is still whole; the innermost cause.
    FailedCleanly(String),
    /// Anything else: the store or the data is damaged, or the process crashed.
    Corrupted(String),
    /// Still running at its deadline.
    Hung(String),
}

/// A seeded image in the registry.
struct Seeded {
    repo: String,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
}

struct Soak<'a> {
    env: &'a TestEnv,
    registry: &'a Registry,
    proxy: &'a Proxy,
    images: &'a [Seeded],
}

impl Soak<'_> {
    /// Clears the worker's store of references and unreachable blobs (interrupted downloads
    /// stay, to be resumed), then pulls one image through the proxy and checks it.
    fn pull(&self, store: &Path, scratch: &Path, rng: &mut XorShift) -> (String, Verdict) {
        let s = path_str(store);
        // The last image is large enough to be fetched in parallel ranges; it costs seconds of
        // hashing per pull, so it comes up in one pull in ten.
        let (large, small) = self.images.split_last().expect("seeded images");
        let image = if rng.chance(0.1) { large } else { rng.pick(small) };
        let reference = format!("{}/{}", self.proxy.addr(), image.repo);
        let what = format!("pull {reference}");
        if store.join("index.json").exists() {
            let rm = run(self.env, &["--store", &s, "-q", "rm", "--all"], LOCAL_DEADLINE);
            if !(rm.succeeded() || rm.failed_cleanly()) {
                return (what, Verdict::Corrupted(format!("rm --all: {}", rm.describe())));
            }
            let gc = run(self.env, &["--store", &s, "-q", "gc"], LOCAL_DEADLINE);
            if !gc.succeeded() {
                return (what, Verdict::Corrupted(format!("gc: {}", gc.describe())));
            }
        }
        let pull = run(self.env, &["--store", &s, "-q", "pull", &reference], OP_DEADLINE);
        let verdict = if pull.timed_out {
            Verdict::Hung(pull.describe())
        } else if pull.succeeded() {
            match fsck(self.env, store).and_then(|()| unpack(self.env, store, &reference, scratch)) {
                Ok((kernel, initrd)) if kernel == image.kernel && initrd == image.initrd => {
                    Verdict::Completed
                }
                Ok((kernel, initrd)) => Verdict::Corrupted(format!(
                    "{what} unpacked a {}-byte kernel and {}-byte initrd, not the {} and {} bytes pushed",
                    kernel.len(),
                    initrd.len(),
                    image.kernel.len(),
                    image.initrd.len()
                )),
                Err(e) => Verdict::Corrupted(format!("after a successful pull: {e}")),
            }
        } else if pull.failed_cleanly() {
            match fsck(self.env, store) {
                Ok(()) => Verdict::FailedCleanly(cause(&pull)),
                Err(e) => Verdict::Corrupted(format!("after a failed pull ({}): {e}", pull.stderr.trim())),
            }
        } else {
            Verdict::Corrupted(pull.describe())
        };
        (what, verdict)
    }

    /// Packs a fresh kernel into the worker's store and pushes it through the proxy; a push that
    /// succeeded is read back straight from the registry.
    fn push(
        &self,
        store: &Path,
        scratch: &Path,
        worker: usize,
        op: usize,
        rng: &mut XorShift,
    ) -> (String, Verdict) {
        let s = path_str(store);
        let (kernel_len, initrd_len) = (rng.between(1024, MIB), rng.between(16, 64 * 1024));
        let kernel = rng.bytes(kernel_len as usize);
        let initrd = rng.bytes(initrd_len as usize);
        let kernel_path = self.env.write(format!("w{worker}/in/kernel"), &kernel, 0o755);
        let initrd_path = self.env.write(format!("w{worker}/in/initrd"), &initrd, 0o644);
        let name = format!("unikraft.org/w{worker}-p{op}:v1");
        let repo = format!("soak/w{worker}-p{op}:v1");
        let what = format!("push {name} ({} bytes)", kernel.len());
        let pack = run(
            self.env,
            &[
                "--store",
                &s,
                "-q",
                "pack",
                &name,
                "--kernel",
                &path_str(&kernel_path),
                "--initrd",
                &path_str(&initrd_path),
                "--arch",
                "x86_64",
                "--plat",
                "qemu",
            ],
            LOCAL_DEADLINE,
        );
        if !pack.succeeded() {
            return (what, Verdict::Corrupted(format!("pack: {}", pack.describe())));
        }
        let to = format!("{}/{repo}", self.proxy.addr());
        let push = run(
            self.env,
            &["--store", &s, "-q", "push", &name, "--to", &to],
            OP_DEADLINE,
        );
        let verdict = if push.timed_out {
            Verdict::Hung(push.describe())
        } else if push.succeeded() {
            // Read it back from the registry itself, not through the proxy.
            let check_store = scratch.with_extension("check");
            let _ = fs_err::remove_dir_all(&check_store);
            let direct = format!("{}/{repo}", self.registry.host());
            let pulled = run(
                self.env,
                &["--store", &path_str(&check_store), "-q", "pull", &direct],
                OP_DEADLINE,
            );
            let read_back = if pulled.succeeded() {
                unpack(self.env, &check_store, &direct, scratch)
            } else {
                Err(pulled.describe())
            };
            let _ = fs_err::remove_dir_all(&check_store);
            match read_back {
                Ok((k, i)) if k == kernel && i == initrd => match fsck(self.env, store) {
                    Ok(()) => Verdict::Completed,
                    Err(e) => Verdict::Corrupted(format!("after a successful push: {e}")),
                },
                Ok(_) => Verdict::Corrupted("the registry holds other bytes than were pushed".into()),
                Err(e) => Verdict::Corrupted(format!("a successful push does not read back: {e}")),
            }
        } else if push.failed_cleanly() {
            match fsck(self.env, store) {
                Ok(()) => Verdict::FailedCleanly(cause(&push)),
                Err(e) => Verdict::Corrupted(format!("after a failed push: {e}")),
            }
        } else {
            Verdict::Corrupted(push.describe())
        };
        (what, verdict)
    }
}

/// Issue "nothing lost, ever", item 5: 200 pulls and pushes through a proxy that drops
/// connections mid-body (both ways), stalls them and answers 500/503/429 at random. Each must
/// complete byte-exact or fail with a clear error within its deadline, leaving a whole store.
///
/// Six workers run at once, each with its own store, so every operation's outcome is its own
/// (a failure in one store cannot be blamed on another operation) while the whole stays well
/// under two minutes. Stores are reused from operation to operation: before each pull the
/// worker removes every reference and collects garbage, which keeps interrupted downloads, so
/// later pulls resume what failed ones left, and a store damaged by one operation fails the
/// next fsck.
#[test]
fn soak_through_a_faulty_proxy() {
    let seed = test_seed("soak_through_a_faulty_proxy");
    let env = TestEnv::new();
    let registry = Registry::plain();
    let mut rng = XorShift::new(seed);
    let sizes: [(u64, u64); 6] = [
        (4 * 1024, 512),
        (64 * 1024, 20 * 1024),
        (400 * 1024, 1024),
        (MIB + 12_345, 200 * 1024),
        (5 * MIB / 2, 64 * 1024),
        (17 * MIB, 4 * 1024),
    ];
    let seed_store = env.path("seed-store");
    let images: Vec<Seeded> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(kernel_len, initrd_len))| {
            let kernel = rng.bytes(kernel_len as usize);
            let initrd = rng.bytes(initrd_len as usize);
            let repo = format!("soak/img{i}:v1");
            seed_image(
                &env,
                &seed_store,
                &registry,
                &format!("unikraft.org/soak-img{i}:v1"),
                &repo,
                &kernel,
                Some(&initrd),
            );
            Seeded { repo, kernel, initrd }
        })
        .collect();

    let proxy = Proxy::start(
        registry.host(),
        Faults::none()
            .seed(seed)
            .drop_mid_body(0.15)
            .drop_mid_upload(0.05)
            .error_status(503, 0.05)
            .error_status(429, 0.05)
            .error_status(500, 0.02)
            .stall(0.02, Duration::from_secs(2))
            .fault_after(64, 5 * MIB),
    );
    let soak = Soak {
        env: &env,
        registry: &registry,
        proxy: &proxy,
        images: &images,
    };
    let started = Instant::now();
    let results: Mutex<Vec<(usize, &'static str, String, Verdict)>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..SOAK_WORKERS {
            let (soak, results, next) = (&soak, &results, &next);
            let mut rng = XorShift::new(seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9));
            scope.spawn(move || {
                let store = soak.env.path(format!("w{worker}/store"));
                let scratch = soak.env.path(format!("w{worker}/out"));
                // Workers take the next operation until all are taken, so a slow one holds
                // up no other.
                loop {
                    let op = next.fetch_add(1, Ordering::SeqCst);
                    if op >= SOAK_OPS {
                        break;
                    }
                    let (kind, (what, verdict)) = if rng.chance(0.7) {
                        ("pull", soak.pull(&store, &scratch, &mut rng))
                    } else {
                        ("push", soak.push(&store, &scratch, worker, op, &mut rng))
                    };
                    results.lock().unwrap().push((worker, kind, what, verdict));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let stats: Stats = proxy.stats();
    drop(proxy);

    let count = |kind: Option<&str>, pred: fn(&Verdict) -> bool| {
        results
            .iter()
            .filter(|(_, k, _, v)| kind.is_none_or(|kind| kind == *k) && pred(v))
            .count()
    };
    let completed = |v: &Verdict| matches!(v, Verdict::Completed);
    let failed = |v: &Verdict| matches!(v, Verdict::FailedCleanly(_));
    let corrupted = |v: &Verdict| matches!(v, Verdict::Corrupted(_));
    let hung = |v: &Verdict| matches!(v, Verdict::Hung(_));
    println!(
        "soak: {} operations in {:.1?} (seed {seed}): completed {}, failed cleanly {}, corrupted {}, hung {}",
        results.len(),
        started.elapsed(),
        count(None, completed),
        count(None, failed),
        count(None, corrupted),
        count(None, hung),
    );
    for kind in ["pull", "push"] {
        println!(
            "  {kind}: completed {}, failed cleanly {}, corrupted {}, hung {}",
            count(Some(kind), completed),
            count(Some(kind), failed),
            count(Some(kind), corrupted),
            count(Some(kind), hung),
        );
    }
    println!("  proxy: {stats}");
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, kind, _, verdict) in &results {
        if let Verdict::FailedCleanly(cause) = verdict {
            *causes.entry(format!("{kind}: {cause}")).or_default() += 1;
        }
    }
    let mut causes: Vec<(usize, String)> = causes.into_iter().map(|(c, n)| (n, c)).collect();
    causes.sort_unstable_by(|a, b| b.cmp(a));
    for (n, cause) in causes {
        println!("  {n:>4} x {cause}");
    }
    let bad: Vec<String> = results
        .iter()
        .filter_map(|(worker, _, what, v)| match v {
            Verdict::Corrupted(why) => Some(format!("[worker {worker}] {what}: CORRUPTED: {why}")),
            Verdict::Hung(why) => Some(format!("[worker {worker}] {what}: HUNG: {why}")),
            _ => None,
        })
        .collect();
    for worker in 0..SOAK_WORKERS {
        let store = env.path(format!("w{worker}/store"));
        if store.exists()
            && let Err(e) = fsck(&env, &store)
        {
            panic!("worker {worker}'s store is damaged at the end: {e}");
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} operations corrupted or hung (seed {seed}):\n{}",
        bad.len(),
        results.len(),
        bad.join("\n\n")
    );
    assert_eq!(results.len(), SOAK_OPS);
    // Issue 14, item 3: a connection lost mid-body is resumed in the same process, so nearly
    // every operation completes through this weather.
    assert!(
        count(None, completed) >= SOAK_OPS - 2,
        "only {} of {SOAK_OPS} operations completed (seed {seed})",
        count(None, completed)
    );
    // The run proves something only if faults really struck and operations still got through.
    assert!(
        stats.dropped > 0 && stats.status_503 + stats.status_429 > 0,
        "{stats}"
    );
    assert!(
        count(Some("pull"), completed) > 0 && count(Some("push"), completed) > 0,
        "nothing got through the proxy"
    );
}

/// Issue 14, item 3: through a proxy that cuts 30% of all connections mid-response (manifests,
/// blobs, whatever they carry), at least 39 of 40 separate `ukpm pull` processes complete,
/// byte-exact: each cut body is resumed at the byte reached, each cut document asked for again.
#[test]
fn forty_pulls_through_a_proxy_cutting_thirty_percent_of_connections() {
    const PULLS: usize = 40;
    const AT_ONCE: usize = 4;
    let seed = test_seed("forty_pulls_through_a_proxy_cutting_thirty_percent_of_connections");
    let env = TestEnv::new();
    let registry = Registry::plain();
    let mut rng = XorShift::new(seed);
    let kernel = rng.bytes((3 * MIB + 4_321) as usize);
    let initrd = rng.bytes(96 * 1024);
    seed_image(
        &env,
        &env.path("seed-store"),
        &registry,
        "unikraft.org/cut30:v1",
        "cut/thirty:v1",
        &kernel,
        Some(&initrd),
    );
    let proxy = Proxy::start(
        registry.host(),
        Faults::none()
            .seed(seed)
            .drop_mid_body(0.3)
            .fault_after(64, 4 * MIB),
    );
    let reference = format!("{}/cut/thirty:v1", proxy.addr());
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= PULLS {
                        break;
                    }
                    let store = env.path(format!("pull{n}/store"));
                    let s = path_str(&store);
                    let pull = run(&env, &["--store", &s, "-q", "pull", &reference], OP_DEADLINE);
                    let outcome = if pull.succeeded() {
                        match unpack(&env, &store, &reference, &env.path(format!("pull{n}/out"))) {
                            Ok((k, i)) if k == kernel && i == initrd => Ok(()),
                            Ok(_) => Err("CORRUPTED: other bytes than were pushed".to_string()),
                            Err(e) => Err(format!("CORRUPTED: {e}")),
                        }
                    } else if pull.timed_out {
                        Err(format!("HUNG: {}", pull.describe()))
                    } else {
                        Err(cause(&pull))
                    };
                    if let Err(why) = outcome {
                        failures.lock().unwrap().push(format!("pull {n}: {why}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let stats = proxy.stats();
    println!(
        "{} of {PULLS} pulls completed in {:.1?} (seed {seed}); proxy: {stats}",
        PULLS - failures.len(),
        started.elapsed()
    );
    for failure in &failures {
        println!("  {failure}");
    }
    assert!(
        failures
            .iter()
            .all(|f| !f.contains("CORRUPTED") && !f.contains("HUNG")),
        "{failures:#?}"
    );
    assert!(
        failures.len() <= 1,
        "{} of {PULLS} pulls failed: {failures:#?}",
        failures.len()
    );
    assert!(
        stats.dropped >= 10,
        "the proxy cut too little to prove anything: {stats}"
    );
}

// ---------------------------------------------------------------------------------------------
// Kills and interrupts

/// A kernel of `len` bytes that neither compresses nor repeats, the same every run.
fn big_kernel(len: u64, seed: u64) -> Vec<u8> {
    XorShift::new(seed).bytes(len as usize)
}

/// Waits until the proxy has forwarded `at_least` more bytes (down, or up for uploads) than
/// `since` while `proc` runs; fails if it ends first or takes longer than a minute. Counting at
/// the proxy, not in the store, keeps the test free of how ukpm lays out a partial download.
fn wait_for_bytes(proc: &mut Running, proxy: &Proxy, up: bool, since: u64, at_least: u64) {
    let what = format!("`{}` to move {at_least} bytes through the proxy", proc.command());
    wait_until(&what, Duration::from_secs(60), || {
        let stats = proxy.stats();
        let moved = if up { stats.bytes_up } else { stats.bytes_down } - since;
        assert!(
            moved >= at_least || proc.is_running(),
            "`{}` ended after moving {moved} of the {at_least} bytes the test waits for",
            proc.command()
        );
        moved >= at_least
    });
}

/// The state letter (`R`, `S`, `D`, `T`...) and CPU time (clock ticks) of each thread of a
/// process, from `/proc/PID/task/*/stat`; empty when it is gone.
fn threads(pid: u32) -> Vec<(char, u64)> {
    let Ok(tasks) = fs_err::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| fs_err::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            // The name in parentheses may hold spaces; the fields after it do not.
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let state = fields.first()?.chars().next()?;
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((state, utime + stime))
        })
        .collect()
}

/// Waits until the held `proxy` has nothing in flight (every byte it counted was read by the
/// client) and `proc` is idle: every thread asleep and no CPU time spent over several polls in a
/// row, so it has written down whatever it will of what it received. Only then does killing it
/// lose nothing but what it keeps in memory by design, which [`LOST_PER_KILL`] allows for.
fn settle(proxy: &Proxy, proc: &Running) {
    proxy.wait_drained(Duration::from_secs(20));
    let (mut last, mut quiet) = (None, 0);
    wait_until(
        &format!("`{}` to go idle after the proxy was held", proc.command()),
        Duration::from_secs(20),
        || {
            let threads = threads(proc.pid());
            let asleep = !threads.is_empty() && threads.iter().all(|(state, _)| *state == 'S');
            let cpu: u64 = threads.iter().map(|(_, ticks)| ticks).sum();
            quiet = if asleep && last == Some(cpu) { quiet + 1 } else { 0 };
            last = Some(cpu);
            quiet >= 5
        },
    );
}

/// Bytes a killed pull may have received and not written down even when it is idle (what it
/// keeps in memory by design): slack.
const LOST_PER_KILL: u64 = MIB / 2;

/// Issue "nothing lost, ever", item 1: a pull of a 48 MiB layer (large enough for parallel
/// ranges) killed with SIGKILL three times, each after it received 6 MiB more, and run again
/// finishes; over the four runs the registry sends the layer about once (what each kill lost in
/// flight aside), so every run continued where the last one stopped. Starting over would cost
/// the 18 MiB the killed runs fetched.
#[test]
fn a_pull_killed_with_sigkill_resumes() {
    pull_killed_three_times(48 * MIB, 6 * MIB, 0x5EED_0001);
}

/// The same with a 15 MiB layer, which is fetched in one stream rather than in ranges, killed
/// after each 4 MiB.
#[test]
fn a_smaller_pull_killed_with_sigkill_resumes() {
    pull_killed_three_times(15 * MIB, 4 * MIB, 0x5EED_0005);
}

/// Pushes a `kernel_len`-byte kernel, pulls it through a rate-capped proxy killing the pull
/// three times (each after `step` more bytes), lets a fourth run finish and checks it resumed.
/// `step` must be well above [`LOST_PER_KILL`], or starting over would pass for resuming.
fn pull_killed_three_times(kernel_len: u64, step: u64, seed: u64) {
    assert!(step >= 2 * LOST_PER_KILL);
    let env = TestEnv::new();
    let registry = Registry::plain();
    let kernel = big_kernel(kernel_len, seed);
    let seed_store = env.path("seed-store");
    seed_image(
        &env,
        &seed_store,
        &registry,
        "unikraft.org/big:v1",
        "faults/big:v1",
        &kernel,
        None,
    );
    let layer_size = largest_blob(&seed_store);
    let proxy = Proxy::start(registry.host(), Faults::none().rate_limit(SLOW));
    let remote = format!("{}/faults/big:v1", proxy.addr());
    let store = env.store();

    const KILLS: u64 = 3;
    let mut fetched_by_killed = 0;
    for round in 1..=KILLS {
        let before = proxy.stats().bytes_down;
        let mut pull = start(&env, &["-q", "pull", &remote]);
        wait_for_bytes(&mut pull, &proxy, false, before, step);
        // Let what is in flight land, so that the proxy's count is what the pull received.
        proxy.hold(true);
        settle(&proxy, &pull);
        let done = pull.kill();
        proxy.hold(false);
        assert_eq!(done.signal, Some(9), "{}", done.describe());
        let fetched = proxy.stats().bytes_down - before;
        fetched_by_killed += fetched;
        eprintln!(
            "kill {round}: after {fetched} bytes; ingest/ holds {:?}",
            partials(&store)
        );
        assert!(
            !partials(&store).is_empty(),
            "kill {round}: nothing of the interrupted download was kept"
        );
        fsck(&env, &store).unwrap_or_else(|e| panic!("after kill {round}: {e}"));
    }

    let before = proxy.stats().bytes_down;
    let done = run(&env, &["-q", "pull", &remote], Duration::from_secs(120));
    done.assert_success();
    let fetched = proxy.stats().bytes_down - before;
    let missing = layer_size.saturating_sub(fetched_by_killed.saturating_sub(KILLS * LOST_PER_KILL));
    eprintln!(
        "the last run fetched {fetched} bytes; the killed runs fetched {fetched_by_killed} of the \
         {layer_size}-byte layer"
    );
    assert!(
        fetched < missing + MIB,
        "the last pull fetched {fetched} bytes, but the killed runs had fetched {fetched_by_killed} of \
         the {layer_size}-byte layer (allowing {LOST_PER_KILL} lost per kill, at most {missing} were \
         missing): it did not resume"
    );
    fsck(&env, &store).unwrap();
    assert_eq!(partials(&store), [], "the finished download is no longer partial");
    let (unpacked, _) = unpack(&env, &store, &remote, &env.path("out")).unwrap();
    assert!(unpacked == kernel, "the resumed pull unpacks other bytes");
}

/// Sends SIGINT to a `ukpm` that is still running and checks it exits 130 within
/// [`INTERRUPT_DEADLINE`], without a panic, leaving the store whole. A process that already
/// ended fails the test: an interrupt that came too late proves nothing.
fn interrupt(env: &TestEnv, mut proc: Running, what: &str) {
    assert!(
        proc.is_running(),
        "the {what} ended before it could be interrupted: {}",
        proc.kill().describe()
    );
    proc.signal("INT");
    expect_interrupted(env, proc, what);
}

/// Waits for a process sent SIGINT and checks it exited 130 within [`INTERRUPT_DEADLINE`],
/// without a panic, leaving a store that fsck finds whole.
fn expect_interrupted(env: &TestEnv, proc: Running, what: &str) {
    let done = proc.wait_within(INTERRUPT_DEADLINE);
    eprintln!(
        "SIGINT during a {what}: exited {} after {:.2?}",
        done.code, done.elapsed
    );
    assert_eq!(done.code, 130, "SIGINT during a {what}: {}", done.describe());
    assert!(!done.panicked(), "{}", done.describe());
    fsck(env, &env.store()).unwrap_or_else(|e| panic!("after SIGINT during a {what}: {e}"));
}

/// How long ukpm may take to exit after SIGINT.
const INTERRUPT_DEADLINE: Duration = Duration::from_secs(10);

/// Issue "nothing lost, ever", item 7: Ctrl-C in the middle of a pull and a push exits 130,
/// leaves a store that fsck finds whole, and the same command run again completes. Each is
/// interrupted after the proxy counted 4 MiB of a 24 MiB transfer capped at a few MiB/s, so it
/// is provably still running; one that ended first fails the test.
#[test]
fn ctrl_c_exits_130_and_leaves_the_store_whole() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let store = env.store();
    // Large enough to be fetched in parallel ranges, each connection capped at 4 MiB/s.
    let kernel = big_kernel(24 * MIB, 0x5EED_0002);
    seed_image(
        &env,
        &env.path("seed-store"),
        &registry,
        "unikraft.org/big:v1",
        "faults/big:v1",
        &kernel,
        None,
    );
    let down = Proxy::start(registry.host(), Faults::none().rate_limit(SLOW / 2));
    let remote = format!("{}/faults/big:v1", down.addr());

    // A pull.
    let before = down.stats().bytes_down;
    let mut pull = start(&env, &["-q", "pull", &remote]);
    wait_for_bytes(&mut pull, &down, false, before, 4 * MIB);
    interrupt(&env, pull, "pull");
    run(&env, &["-q", "pull", &remote], Duration::from_secs(120)).assert_success();
    fsck(&env, &store).unwrap();
    let (unpacked, _) = unpack(&env, &store, &remote, &env.path("out")).unwrap();
    assert!(unpacked == kernel, "the pull after Ctrl-C unpacks other bytes");

    // A push of a fresh image, slowed on the way up.
    let fresh = big_kernel(24 * MIB, 0x5EED_0003);
    env.write("fresh/kernel", &fresh, 0o755);
    run(
        &env,
        &[
            "-q",
            "pack",
            "unikraft.org/fresh:v1",
            "--kernel",
            "fresh/kernel",
            "--arch",
            "x86_64",
            "--plat",
            "qemu",
        ],
        LOCAL_DEADLINE,
    )
    .assert_success();
    let up = Proxy::start(registry.host(), Faults::none().upload_rate_limit(SLOW));
    let target = format!("{}/faults/fresh:v1", up.addr());
    let mut push = start(&env, &["-q", "push", "unikraft.org/fresh:v1", "--to", &target]);
    wait_for_bytes(&mut push, &up, true, 0, 4 * MIB);
    interrupt(&env, push, "push");
    run(
        &env,
        &["-q", "push", "unikraft.org/fresh:v1", "--to", &target],
        Duration::from_secs(120),
    )
    .assert_success();
    let check = env.path("check-store");
    let direct = format!("{}/faults/fresh:v1", registry.host());
    run(
        &env,
        &["--store", &path_str(&check), "-q", "pull", &direct],
        OP_DEADLINE,
    )
    .assert_success();
    let (pushed, _) = unpack(&env, &check, &direct, &env.path("out")).unwrap();
    assert!(
        pushed == fresh,
        "the push after Ctrl-C left other bytes in the registry"
    );
}

/// The temp files of blobs being written (`ingest/blob-*`), with their sizes.
fn blobs_being_written(store: &Path) -> Vec<(String, u64)> {
    ingest_files(store, "blob-")
}

/// Issue "nothing lost, ever", item 7, for a pack: Ctrl-C while a pack is writing its kernel
/// layer exits 130 and changes nothing in the store: the same references, the same blobs, each
/// still its digest. The pack is caught in the act: the test waits until its temp file in
/// `ingest/` holds part of the layer, freezes it there (SIGSTOP), checks the file is still
/// shorter than the kernel, and only then sends SIGINT and lets it go on (SIGCONT). A pack that
/// ended or finished its layer before the signal fails the test instead of passing unchecked.
#[test]
fn ctrl_c_interrupts_a_running_pack_and_changes_nothing() {
    let env = TestEnv::new();
    let store = env.store();
    let pack_args = |name: &'static str, kernel: &'static str| {
        [
            "-q", "pack", name, "--kernel", kernel, "--arch", "x86_64", "--plat", "qemu",
        ]
    };
    env.write("small/kernel", big_kernel(64 * 1024, 0x5EED_0006), 0o755);
    run(
        &env,
        &pack_args("unikraft.org/before:v1", "small/kernel"),
        LOCAL_DEADLINE,
    )
    .assert_success();
    let index_before = env.read("store/index.json");
    let blobs_before = env.blob_names("store");

    let kernel = big_kernel(PACK_KERNEL, 0x5EED_0007);
    env.write("big/kernel", &kernel, 0o755);
    let args = pack_args("unikraft.org/big:v1", "big/kernel");
    let mut pack = start(&env, &args);
    let (temp, _) = wait_for(
        "the pack to start writing its kernel layer into ingest/",
        LOCAL_DEADLINE,
        || {
            assert!(
                pack.is_running(),
                "the pack ended before it wrote its kernel layer"
            );
            blobs_being_written(&store).into_iter().find(|(_, len)| *len > 0)
        },
    );
    pack.signal("STOP");
    wait_until("the pack to stop", Duration::from_secs(10), || {
        let threads = threads(pack.pid());
        !threads.is_empty() && threads.iter().all(|(state, _)| *state == 'T')
    });
    let written = fs_err::metadata(store.join("ingest").join(&temp))
        .unwrap_or_else(|e| panic!("the frozen pack's temp file is gone: {e}"))
        .len();
    assert!(
        written < PACK_KERNEL,
        "the pack had written {written} bytes of its {PACK_KERNEL}-byte kernel before it stopped: \
         it was not caught in the middle"
    );
    eprintln!("the pack is frozen after writing {written} of {PACK_KERNEL} bytes");
    assert!(pack.is_running(), "a stopped process has not ended");
    pack.signal("INT");
    pack.signal("CONT");
    expect_interrupted(&env, pack, "pack");

    assert!(
        env.read("store/index.json") == index_before,
        "an interrupted pack changed the references"
    );
    let blobs = env.blob_names("store");
    assert_eq!(blobs, blobs_before, "an interrupted pack left blobs behind");
    for hex in &blobs {
        assert_eq!(
            &sha256_hex(env.blob("store", hex)),
            hex,
            "blob {hex} does not hash to its name"
        );
    }
    let listed = run(&env, &["--json", "ls"], LOCAL_DEADLINE);
    listed.assert_success();
    let names: Vec<String> = listed.json()["packages"]
        .as_array()
        .expect("ls --json lists packages")
        .iter()
        .filter_map(|p| p["reference"].as_str().map(String::from))
        .collect();
    assert_eq!(names, ["unikraft.org/before:v1"]);

    // The same pack run again completes, with the bytes given.
    run(&env, &args, LOCAL_DEADLINE).assert_success();
    fsck(&env, &store).unwrap();
    let (unpacked, _) = unpack(&env, &store, "unikraft.org/big:v1", &env.path("out")).unwrap();
    assert!(unpacked == kernel, "the pack after Ctrl-C unpacks other bytes");
}

/// The kernel an interrupted pack packs: large enough that writing its layer lasts long past
/// the moment the test sees it start.
const PACK_KERNEL: u64 = 64 * MIB;

/// The name (hex digest) and bytes of the largest blob of a store: a one-kernel image's layer.
fn largest_blob_bytes(store: &Path) -> (String, Vec<u8>) {
    let size = largest_blob(store);
    let entry = fs_err::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.metadata().unwrap().len() == size)
        .unwrap();
    let hex = entry.file_name().to_string_lossy().into_owned();
    (hex, fs_err::read(entry.path()).unwrap())
}

/// Issue "nothing lost, ever", item 1, at the worst moment: SIGKILL after the last byte of a
/// blob reached `ingest/partial-<hex>` but before the rename into `blobs/` leaves a complete
/// partial file; the next pull must finish (there is nothing left to fetch; a `Range` from the
/// end is unsatisfiable). The same state, locked, is another process finishing that blob right
/// now; a pull beside it must finish too. The states are made by hand because a kill cannot be
/// aimed at a window that narrow; they are exactly what such a kill leaves.
#[test]
fn a_pull_finishes_when_the_partial_download_is_already_complete() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let kernel = big_kernel(300 * 1024, 0x5EED_0004);
    let seed_store = env.path("seed-store");
    seed_image(
        &env,
        &seed_store,
        &registry,
        "unikraft.org/done:v1",
        "faults/done:v1",
        &kernel,
        None,
    );
    let (hex, layer) = largest_blob_bytes(&seed_store);
    let remote = format!("{}/faults/done:v1", registry.host());

    let mut failures = Vec::new();
    for locked in [false, true] {
        let store = env.path(format!("store-locked-{locked}"));
        let partial = store.join("ingest").join(format!("partial-{hex}"));
        fs_err::create_dir_all(partial.parent().unwrap()).unwrap();
        fs_err::write(&partial, &layer).unwrap();
        let holder = locked.then(|| {
            let file = fs_err::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&partial)
                .unwrap();
            file.file().lock().unwrap();
            file
        });
        let done = run(
            &env,
            &["--store", &path_str(&store), "pull", &remote],
            OP_DEADLINE,
        );
        drop(holder);
        let state = if locked {
            "a complete partial download another process holds"
        } else {
            "a complete partial download left by a kill"
        };
        if !done.succeeded() {
            failures.push(format!("pull beside {state}: {}", done.describe()));
            continue;
        }
        if let Err(e) = fsck(&env, &store) {
            failures.push(format!("after a pull beside {state}: {e}"));
        }
        match unpack(&env, &store, &remote, &env.path("out")) {
            Ok((unpacked, _)) if unpacked == kernel => {}
            Ok(_) => failures.push(format!("the pull beside {state} unpacks other bytes")),
            Err(e) => failures.push(format!("after a pull beside {state}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
