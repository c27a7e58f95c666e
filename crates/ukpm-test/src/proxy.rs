//! A fault-injecting TCP proxy of our own, to put between ukpm and a real `docker-registry`.
//!
//! The registry is the real thing (house rule 8); what it will not do on its own is misbehave, so
//! this proxy does it for it: it caps the rate and delays chunks (to make a transfer slow enough
//! to interrupt), holds all traffic on demand, and, per connection and at random, drops the
//! connection after some response (or request) bytes, stalls it, or answers the first request
//! itself with a 500, 503 or 429. It counts what it forwards and the faults it injected. It
//! forwards raw TCP, so it knows nothing of HTTP beyond writing those answers: with keep-alive, a
//! fault hits whatever request is in flight on the connection.
//!
//! Everything is `std`: one accepting thread and a pair of threads per connection, all of them
//! stopped and joined when the [`Proxy`] drops, so nothing outlives the test. Randomness comes
//! from [`XorShift`] seeded explicitly, and the seed is printed, so a failure can be replayed.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable that fixes the seed of [`test_seed`], to replay a failing run.
pub const SEED_VAR: &str = "UKPM_TEST_SEED";

/// The seed a randomised test should use: `$UKPM_TEST_SEED` when set, else one made from the
/// clock and the process id. It is printed (with how to replay it) so that a failure can always
/// be reproduced: tests print their output when they fail.
pub fn test_seed(test: &str) -> u64 {
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        });
    eprintln!("{test}: seed {seed} (replay with {SEED_VAR}={seed})");
    seed
}

/// A tiny xorshift64* generator: deterministic from its seed, so a randomised test replays
/// exactly, and with no dependency beyond `std`. Not for anything but tests.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value, 0 included: it is scrambled with splitmix64 first so
    /// that nearby seeds give unrelated sequences).
    pub fn new(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0), for picking among choices.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "XorShift::below(0)");
        self.next_u64() % n
    }

    /// A number in `lo..=hi`, for sizes.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "XorShift::between({lo}, {hi})");
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// A uniform number in `[0, 1)`, for probabilities.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `len` random bytes: file contents that neither compress nor repeat, so sizes on the wire
    /// are real and two files never share a digest by accident.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// What the proxy does to the connections it forwards. The default (and [`Faults::none`]) is a
/// faithful pipe; the builder methods add shaping and faults. At most one fault is chosen per
/// connection, when it is accepted, so the probabilities must add up to at most 1.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Seeds the proxy's [`XorShift`]; printed when the proxy starts.
    pub seed: u64,
    /// Bytes per second from the server to the client, per connection (`None`: no cap), so a
    /// download lasts long enough to be interrupted.
    pub rate_down: Option<u64>,
    /// Bytes per second from the client to the server, per connection, so an upload does.
    pub rate_up: Option<u64>,
    /// Slept before forwarding each chunk, in both directions: latency.
    pub delay: Duration,
    /// Probability that a connection is closed (both sockets) after a random number of response
    /// bytes: a download cut mid-body.
    pub drop_mid_body: f64,
    /// Probability that a connection is closed (both sockets) after a random number of request
    /// bytes: an upload cut mid-body.
    pub drop_mid_upload: f64,
    /// Probability that a connection stops forwarding after a random number of response bytes
    /// and is closed [`Faults::stall_for`] later: a server that hangs, then gives up.
    pub stall: f64,
    /// How long a stalled connection stays silent before it is closed.
    pub stall_for: Duration,
    /// Statuses the proxy answers the first request of a connection with instead of forwarding
    /// it, each with its probability: `(503, 0.05)`.
    pub error_status: Vec<(u16, f64)>,
    /// The range the "random number of response bytes" of drops and stalls is drawn from,
    /// log-uniformly, so both small documents and large blobs get hit.
    pub fault_after: (u64, u64),
    /// How many drops and stalls may strike in all (`None`: no limit), so a test can cut exactly
    /// the first upload and let the retry through.
    pub max_cuts: Option<u64>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            seed: 0,
            rate_down: None,
            rate_up: None,
            delay: Duration::ZERO,
            drop_mid_body: 0.0,
            drop_mid_upload: 0.0,
            stall: 0.0,
            stall_for: Duration::from_secs(2),
            error_status: Vec::new(),
            fault_after: (64, 8 << 20),
            max_cuts: None,
        }
    }
}

impl Faults {
    /// A faithful pipe: no shaping, no faults.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Sets the seed of the fault dice.
    pub fn seed(mut self, seed: u64) -> Faults {
        self.seed = seed;
        self
    }

    /// Caps server-to-client bytes per second on each connection.
    pub fn rate_limit(mut self, bytes_per_second: u64) -> Faults {
        assert!(bytes_per_second > 0, "a rate cap of 0 would stall forever");
        self.rate_down = Some(bytes_per_second);
        self
    }

    /// Caps client-to-server bytes per second on each connection (slow uploads).
    pub fn upload_rate_limit(mut self, bytes_per_second: u64) -> Faults {
        assert!(bytes_per_second > 0, "a rate cap of 0 would stall forever");
        self.rate_up = Some(bytes_per_second);
        self
    }

    /// Sleeps `delay` before forwarding each chunk.
    pub fn delay(mut self, delay: Duration) -> Faults {
        self.delay = delay;
        self
    }

    /// Closes a connection mid-response with probability `p`.
    pub fn drop_mid_body(mut self, p: f64) -> Faults {
        self.drop_mid_body = p;
        self
    }

    /// Closes a connection mid-request (client-to-server) with probability `p`.
    pub fn drop_mid_upload(mut self, p: f64) -> Faults {
        self.drop_mid_upload = p;
        self
    }

    /// Stalls a connection for `duration`, then closes it, with probability `p`.
    pub fn stall(mut self, p: f64, duration: Duration) -> Faults {
        self.stall = p;
        self.stall_for = duration;
        self
    }

    /// Answers a connection's first request with `status` (and `Connection: close`) with
    /// probability `p`; 429 answers carry `Retry-After: 1`.
    pub fn error_status(mut self, status: u16, p: f64) -> Faults {
        self.error_status.push((status, p));
        self
    }

    /// Lets at most `n` drops and stalls strike; later connections pass untouched.
    pub fn max_cuts(mut self, n: u64) -> Faults {
        self.max_cuts = Some(n);
        self
    }

    /// Draws the byte count after which drops and stalls strike from `min..=max`.
    pub fn fault_after(mut self, min: u64, max: u64) -> Faults {
        assert!(0 < min && min <= max, "fault_after needs 0 < min <= max");
        self.fault_after = (min, max);
        self
    }

    fn check(&self) {
        let total: f64 = self.drop_mid_body
            + self.drop_mid_upload
            + self.stall
            + self.error_status.iter().map(|(_, p)| p).sum::<f64>();
        assert!(
            (0.0..=1.0).contains(&total),
            "fault probabilities add up to {total}, more than 1: {self:?}"
        );
    }

    /// Rolls the dice for one connection.
    fn plan(&self, rng: &mut XorShift) -> Plan {
        let mut roll = rng.unit();
        let (min, max) = self.fault_after;
        let (lo, hi) = ((min as f64).ln(), (max as f64).ln());
        let after = ((lo + (hi - lo) * rng.unit()).exp().round() as u64).clamp(min, max);
        if roll < self.drop_mid_body {
            return Plan::Forward(Some((Way::Down, Cut::Drop(after))));
        }
        roll -= self.drop_mid_body;
        if roll < self.drop_mid_upload {
            return Plan::Forward(Some((Way::Up, Cut::Drop(after))));
        }
        roll -= self.drop_mid_upload;
        if roll < self.stall {
            return Plan::Forward(Some((Way::Down, Cut::Stall(after, self.stall_for))));
        }
        roll -= self.stall;
        for &(status, p) in &self.error_status {
            if roll < p {
                return Plan::Answer(status);
            }
            roll -= p;
        }
        Plan::Forward(None)
    }
}

/// What happens to one connection.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Forward, maybe cutting one direction short.
    Forward(Option<(Way, Cut)>),
    /// Answer the first request with this status and close.
    Answer(u16),
}

/// A direction of a connection cut short after a number of bytes.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Drop(u64),
    Stall(u64, Duration),
}

impl Cut {
    /// The number of response bytes forwarded before it strikes.
    fn after(self) -> u64 {
        match self {
            Cut::Drop(after) | Cut::Stall(after, _) => after,
        }
    }
}

/// The proxy's counters at one moment, to assert on (bytes forwarded during a run: the
/// difference of two snapshots) and to print (faults really injected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections closed mid-response (counted only when the cut really happened).
    pub dropped: u64,
    /// Connections closed mid-request (counted only when the cut really happened).
    pub dropped_up: u64,
    /// Connections stalled (counted only when the stall really began).
    pub stalled: u64,
    /// Requests answered with 500.
    pub status_500: u64,
    /// Requests answered with 503.
    pub status_503: u64,
    /// Requests answered with 429.
    pub status_429: u64,
    /// Requests answered with any other status.
    pub status_other: u64,
    /// Bytes forwarded from the server to clients.
    pub bytes_down: u64,
    /// Bytes forwarded from clients to the server.
    pub bytes_up: u64,
    /// Chunks read from either side that then waited for [`Proxy::hold`] to be released (each
    /// counted once, when it starts waiting): proof that traffic reached a held proxy.
    pub held: u64,
}

impl Stats {
    /// Every fault injected, of any kind.
    pub fn faults(&self) -> u64 {
        self.dropped
            + self.dropped_up
            + self.stalled
            + self.status_500
            + self.status_503
            + self.status_429
            + self.status_other
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections; faults: {} dropped mid-response, {} dropped mid-request, {} stalled, {} x 500, {} x 503, {} x 429, {} other; \
             {} bytes down, {} bytes up, {} chunks held",
            self.connections,
            self.dropped,
            self.dropped_up,
            self.stalled,
            self.status_500,
            self.status_503,
            self.status_429,
            self.status_other,
            self.bytes_down,
            self.bytes_up,
            self.held
        )
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    dropped: AtomicU64,
    dropped_up: AtomicU64,
    stalled: AtomicU64,
    status_500: AtomicU64,
    status_503: AtomicU64,
    status_429: AtomicU64,
    status_other: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
    held: AtomicU64,
}

/// What the accepting thread, the connection threads and the [`Proxy`] handle share.
struct Shared {
    target: String,
    faults: Faults,
    rng: Mutex<XorShift>,
    stop: AtomicBool,
    /// Set by [`Proxy::hold`]: forward nothing until cleared.
    held: AtomicBool,
    counters: Counters,
    /// The sockets of each live connection, so that dropping the proxy can shut them down and
    /// unblock their threads.
    open: Mutex<HashMap<u64, Vec<TcpStream>>>,
    /// The connection threads, joined when the proxy drops.
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// A proxy on `127.0.0.1:<ephemeral>` forwarding to one target, with [`Faults`]. Dropping it
/// stops accepting, shuts every connection down and joins every thread.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding to `target` (`host:port`, e.g. [`crate::registry::Registry::host`]).
    /// The target is connected to anew for each accepted connection.
    pub fn start(target: impl Into<String>, faults: Faults) -> Proxy {
        faults.check();
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the proxy has no local address");
        let target = target.into();
        eprintln!("proxy {addr} -> {target}: {faults:?}");
        let shared = Arc::new(Shared {
            target,
            rng: Mutex::new(XorShift::new(faults.seed)),
            faults,
            stop: AtomicBool::new(false),
            held: AtomicBool::new(false),
            counters: Counters::default(),
            open: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept_loop(&shared, &listener))
                .expect("cannot start the proxy's thread")
        };
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`: the registry part of a reference that goes through the proxy.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Holds (`true`) or releases (`false`) the traffic of every connection: while held, nothing
    /// is forwarded either way and nothing is closed. A client then drains what was in flight,
    /// so a test that kills it afterwards knows it received exactly what [`Stats`] counts.
    pub fn hold(&self, held: bool) {
        self.shared.held.store(held, Ordering::SeqCst);
    }

    /// Waits until every client has read everything the proxy sent it, and every byte the
    /// proxy forwarded has left its sockets, as the kernel reports in `/proc/net/tcp`; used
    /// with [`Proxy::hold`], after which nothing new arrives. Then what [`Stats`] counts has
    /// reached the client process, not just its socket. Panics after `timeout`.
    pub fn wait_drained(&self, timeout: Duration) {
        let port = self.addr.port();
        let mut last = None;
        crate::wait_until(
            &format!("the clients of proxy {} to read everything it sent", self.addr),
            timeout,
            || {
                let stats = self.stats();
                let settled = last == Some(stats) && queues_empty(port);
                last = Some(stats);
                settled
            },
        );
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Stats {
            connections: get(&c.connections),
            dropped: get(&c.dropped),
            dropped_up: get(&c.dropped_up),
            stalled: get(&c.stalled),
            status_500: get(&c.status_500),
            status_503: get(&c.status_503),
            status_429: get(&c.status_429),
            status_other: get(&c.status_other),
            bytes_down: get(&c.bytes_down),
            bytes_up: get(&c.bytes_up),
            held: get(&c.held),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread, blocked in accept(), so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for streams in lock(&self.shared.open).values() {
            for stream in streams {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// Whether, among the TCP sockets of `/proc/net/tcp`, no client of the proxy on `port` has
/// unread bytes waiting (its receive queue) and no socket of the proxy has unsent ones (its send
/// queue). Listening and `TIME_WAIT` sockets hold no data. False when the table cannot be read.
fn queues_empty(port: u16) -> bool {
    let Ok(table) = fs_err::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let port_of = |address: &str| {
        address
            .rsplit_once(':')
            .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
    };
    table.lines().skip(1).all(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(queues)) =
            (fields.get(1), fields.get(2), fields.get(3), fields.get(4))
        else {
            return true;
        };
        if matches!(*state, "0A" | "06") {
            return true;
        }
        let Some((tx, rx)) = queues.split_once(':') else {
            return true;
        };
        let empty = |hex: &str| u64::from_str_radix(hex, 16) == Ok(0);
        if port_of(remote) == Some(port) {
            empty(rx)
        } else if port_of(local) == Some(port) {
            empty(tx)
        } else {
            true
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut next_id = 0u64;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((client, _)) = accepted else {
            // EMFILE and the like: back off a little rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        next_id += 1;
        let id = next_id;
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        let plan = shared.faults.plan(&mut lock(&shared.rng));
        let worker = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name(format!("proxy-conn-{id}"))
                .spawn(move || {
                    match plan {
                        Plan::Answer(status) => answer(&shared, id, client, status),
                        Plan::Forward(cut) => forward(&shared, id, client, cut),
                    }
                    lock(&shared.open).remove(&id);
                })
        };
        let mut workers = lock(&shared.workers);
        workers.retain(|w| !w.is_finished());
        match worker {
            Ok(worker) => workers.push(worker),
            Err(e) => eprintln!("proxy: cannot start a connection thread: {e}"),
        }
    }
}

impl Shared {
    /// Remembers a connection's sockets for shutdown; false when the proxy is stopping (the
    /// connection must then end at once, since the shutdown sweep may already be over).
    fn register(&self, id: u64, streams: &[&TcpStream]) -> bool {
        let clones = streams.iter().filter_map(|s| s.try_clone().ok()).collect();
        lock(&self.open).insert(id, clones);
        !self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `duration` in small steps; false when the proxy stopped meanwhile.
    fn sleep(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

/// Reads the client's first request head, answers it with `status` and closes.
fn answer(shared: &Shared, id: u64, mut client: TcpStream, status: u16) {
    if !shared.register(id, &[&client]) {
        return;
    }
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return, // the client sent no request on this connection
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let reason = match status {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected Fault",
    };
    let mut response = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n");
    if status == 429 {
        response.push_str("Retry-After: 1\r\n");
    }
    response.push_str("\r\n");
    if client.write_all(response.as_bytes()).is_err() {
        return;
    }
    let c = &shared.counters;
    match status {
        500 => &c.status_500,
        503 => &c.status_503,
        429 => &c.status_429,
        _ => &c.status_other,
    }
    .fetch_add(1, Ordering::SeqCst);
    // Close gently: stop writing, then swallow what the client still sends (the body of a
    // PUT) for a moment, so the kernel does not answer it with a reset that could overtake the
    // response.
    let _ = client.shutdown(Shutdown::Write);
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
}

/// Which way bytes go, for the counters and the rate cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Up,
    Down,
}

/// Forwards a connection both ways, client-to-server on a thread of its own.
fn forward(shared: &Arc<Shared>, id: u64, client: TcpStream, cut: Option<(Way, Cut)>) {
    let cut_on = move |way: Way| cut.filter(|(w, _)| *w == way).map(|(_, cut)| cut);
    let Ok(upstream) = TcpStream::connect(&shared.target) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if !shared.register(id, &[&client, &upstream]) {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return;
    }
    let (Ok(client_in), Ok(upstream_out)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = {
        let shared = Arc::clone(shared);
        std::thread::Builder::new()
            .name(format!("proxy-up-{id}"))
            .spawn(move || pump(&shared, client_in, upstream_out, Way::Up, cut_on(Way::Up)))
    };
    pump(shared, upstream, client, Way::Down, cut_on(Way::Down));
    if let Ok(up) = up {
        let _ = up.join();
    }
}

/// Copies `from` to `to` with the rate cap and delay of its direction, applying `cut` after its
/// byte count. A clean end of input half-closes `to`; anything else closes both sockets so the
/// other direction ends too.
fn pump(shared: &Shared, mut from: TcpStream, mut to: TcpStream, way: Way, mut cut: Option<Cut>) {
    let faults = &shared.faults;
    let rate = match way {
        Way::Up => faults.rate_up,
        Way::Down => faults.rate_down,
    };
    let counter = match way {
        Way::Up => &shared.counters.bytes_up,
        Way::Down => &shared.counters.bytes_down,
    };
    let chunk = rate.map_or(64 * 1024, |r| (r / 50).clamp(1024, 64 * 1024)) as usize;
    let mut buf = vec![0u8; chunk];
    let started = Instant::now();
    let mut sent = 0u64;
    let close_both = |from: &TcpStream, to: &TcpStream| {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(_) => return close_both(&from, &to),
        };
        // The sleeps of the delay, the hold, the stall and the rate cap below are the faults
        // this proxy exists to inject, not waits for something to happen.
        if !faults.delay.is_zero() && !shared.sleep(faults.delay) {
            return close_both(&from, &to);
        }
        if shared.held.load(Ordering::SeqCst) {
            shared.counters.held.fetch_add(1, Ordering::SeqCst);
        }
        // Polling the flag is how a hold is implemented, not a wait for an event elsewhere.
        while shared.held.load(Ordering::SeqCst) {
            if !shared.sleep(Duration::from_millis(10)) {
                return close_both(&from, &to);
            }
        }
        // A cut that would exceed `max_cuts` is dropped: this connection passes untouched.
        if cut.is_some()
            && faults.max_cuts.is_some_and(|max| {
                let c = &shared.counters;
                let struck = c.dropped.load(Ordering::SeqCst)
                    + c.dropped_up.load(Ordering::SeqCst)
                    + c.stalled.load(Ordering::SeqCst);
                struck >= max
            })
        {
            cut = None;
        }
        let limit = cut.map_or(u64::MAX, |cut| cut.after().saturating_sub(sent));
        let take = (n as u64).min(limit) as usize;
        if to.write_all(&buf[..take]).is_err() {
            return close_both(&from, &to);
        }
        counter.fetch_add(take as u64, Ordering::SeqCst);
        sent += take as u64;
        if let Some(cut) = cut
            && sent >= cut.after()
        {
            match cut {
                Cut::Drop(_) => {
                    let dropped = match way {
                        Way::Up => &shared.counters.dropped_up,
                        Way::Down => &shared.counters.dropped,
                    };
                    dropped.fetch_add(1, Ordering::SeqCst);
                }
                Cut::Stall(_, duration) => {
                    shared.counters.stalled.fetch_add(1, Ordering::SeqCst);
                    shared.sleep(duration);
                }
            }
            return close_both(&from, &to);
        }
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            let elapsed = started.elapsed();
            if due > elapsed && !shared.sleep(due - elapsed) {
                return close_both(&from, &to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot server answering every connection with `body` after reading a request head.
    fn server(body: Vec<u8>) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = stream.write_all(&body);
        });
        (addr, handle)
    }

    fn fetch(addr: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    #[test]
    fn a_faithful_pipe_forwards_everything_and_counts_it() {
        let body = XorShift::new(1).bytes(300_000);
        let (target, server) = server(body.clone());
        let proxy = Proxy::start(target.to_string(), Faults::none());
        assert_eq!(fetch(&proxy.addr()), body);
        server.join().unwrap();
        let stats = proxy.stats();
        assert_eq!(stats.connections, 1);
        assert_eq!(stats.bytes_down, body.len() as u64);
        assert_eq!(stats.faults(), 0);
    }

    #[test]
    fn a_drop_cuts_the_response_short() {
        let body = XorShift::new(2).bytes(100_000);
        let (target, server) = server(body.clone());
        let proxy = Proxy::start(
            target.to_string(),
            Faults::none().drop_mid_body(1.0).fault_after(1000, 1000),
        );
        let got = fetch(&proxy.addr());
        server.join().unwrap();
        assert!(got == body[..1000], "got {} bytes, not the first 1000", got.len());
        assert_eq!(proxy.stats().dropped, 1);
    }

    #[test]
    fn an_upload_drop_cuts_the_request_short() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got);
            got.len()
        });
        let proxy = Proxy::start(
            target.to_string(),
            Faults::none().drop_mid_upload(1.0).fault_after(500, 500),
        );
        let mut stream = TcpStream::connect(proxy.addr()).unwrap();
        let _ = stream.write_all(&[7u8; 100_000]);
        let _ = stream.shutdown(Shutdown::Write);
        assert_eq!(server.join().unwrap(), 500);
        assert_eq!(proxy.stats().dropped_up, 1);
    }

    #[test]
    fn an_error_status_answers_instead_of_the_server() {
        let proxy = Proxy::start("127.0.0.1:9", Faults::none().error_status(429, 1.0));
        let got = String::from_utf8(fetch(&proxy.addr())).unwrap();
        assert!(got.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{got}");
        assert!(got.contains("Retry-After: 1\r\n") && got.contains("Content-Length: 0\r\n"));
        assert_eq!(proxy.stats().status_429, 1);
    }

    #[test]
    fn the_rate_cap_slows_the_response() {
        let body = XorShift::new(3).bytes(200_000);
        let (target, server) = server(body.clone());
        let proxy = Proxy::start(target.to_string(), Faults::none().rate_limit(400_000));
        let started = Instant::now();
        assert_eq!(fetch(&proxy.addr()), body);
        server.join().unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn dropping_the_proxy_ends_a_stalled_connection() {
        let body = XorShift::new(4).bytes(10_000);
        let (target, server) = server(body);
        let proxy = Proxy::start(
            target.to_string(),
            Faults::none()
                .stall(1.0, Duration::from_secs(3600))
                .fault_after(10, 10),
        );
        let mut stream = TcpStream::connect(proxy.addr()).unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut ten = [0u8; 10];
        stream.read_exact(&mut ten).unwrap();
        server.join().unwrap();
        let started = Instant::now();
        drop(proxy);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_held_proxy_forwards_nothing_until_released() {
        let body = XorShift::new(5).bytes(1000);
        let (target, server) = server(body.clone());
        let proxy = Proxy::start(target.to_string(), Faults::none());
        proxy.hold(true);
        let addr = proxy.addr();
        let client = std::thread::spawn(move || fetch(&addr));
        // Zero bytes forwarded proves nothing unless the request reached the proxy: wait until
        // the client connected and its request is being held.
        crate::wait_until(
            "the client's request to reach the held proxy",
            Duration::from_secs(10),
            || {
                let stats = proxy.stats();
                stats.connections > 0 && stats.held > 0
            },
        );
        // This sleep is the behaviour under test: a hold that lasts forwards nothing.
        std::thread::sleep(Duration::from_millis(200));
        let stats = proxy.stats();
        assert_eq!(stats.connections, 1, "{stats}");
        assert_eq!(stats.bytes_up + stats.bytes_down, 0, "{stats}");
        // Nothing was sent, so nothing is unread: a drain returns at once.
        proxy.wait_drained(Duration::from_secs(10));
        proxy.hold(false);
        assert_eq!(client.join().unwrap(), body);
        server.join().unwrap();
    }

    #[test]
    fn xorshift_replays_from_its_seed() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = XorShift::new(42);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = XorShift::new(42);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(XorShift::new(0).next_u64(), XorShift::new(1).next_u64());
    }
}
