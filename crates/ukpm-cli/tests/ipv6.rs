//! A registry on an IPv6 address (issue 10, point 6): a reference like `[::1]:PORT/uk/x:1`
//! must parse, reach the registry (loopback, so plain HTTP as for `127.0.0.1`), name the
//! package in the store with its brackets, and work for push, pull, ls and unpack, against a
//! real `docker-registry` listening on `[::1]` only, read back with plain HTTP requests.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{pack_conformance, ukpm};
use ukpm_test::{Running, TestEnv, conformance, poll_until, require_program};

/// A `docker-registry` listening on `[::1]` only (not on 127.0.0.1), killed when dropped.
struct Ipv6Registry {
    port: u16,
    _process: Running,
}

impl Ipv6Registry {
    fn start(env: &TestEnv) -> Ipv6Registry {
        let program = require_program("docker-registry", "docker-registry");
        assert!(
            TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok(),
            "this machine has no IPv6 loopback (`ip -6 addr show lo` lists no ::1): the test needs it"
        );
        for attempt in 0..5 {
            let port = TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port on [::1]");
            let data = env.path(format!("registry-{attempt}/data"));
            fs_err::create_dir_all(&data).unwrap();
            let config = env.write(
                format!("registry-{attempt}/config.yml"),
                format!(
                    "version: 0.1\n\
                     log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  \
                     maintenance:\n    uploadpurging:\n      enabled: false\n\
                     http:\n  addr: \"[::1]:{port}\"\n  secret: ukpm-test-ipv6\n",
                    data.display()
                ),
                0o644,
            );
            // The harness's clean environment: no REGISTRY_* variable overrides the config.
            let mut process = env.command(&program).arg("serve").arg(&config).spawn();
            let ready = poll_until(Duration::from_secs(20), || {
                if !process.is_running() {
                    return Some(false);
                }
                answers_on_ipv6(port).then_some(true)
            });
            match ready {
                Some(true) => {
                    return Ipv6Registry {
                        port,
                        _process: process,
                    };
                }
                // It exited: most likely someone took the port in between; try another.
                Some(false) => {
                    let out = process.wait();
                    assert!(
                        out.stderr.contains("address already in use")
                            || out.stdout.contains("address already in use"),
                        "docker-registry on [::1]:{port} exited:\n{}",
                        out.snapshot_text()
                    );
                }
                None => panic!(
                    "docker-registry did not answer on [::1]:{port}:\n{}",
                    process.kill().snapshot_text()
                ),
            }
        }
        panic!("docker-registry found its port on [::1] taken five times in a row");
    }

    /// `[::1]:PORT`, the registry part of a reference.
    fn host(&self) -> String {
        format!("[::1]:{}", self.port)
    }
}

/// Whether a registry answers `GET /v2/` on `[::1]:port`.
fn answers_on_ipv6(port: u16) -> bool {
    let address = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: [::1]:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(64 << 10).read_to_string(&mut answer);
    answer
        .to_ascii_lowercase()
        .contains("docker-distribution-api-version")
}

/// `GET` of a path on `[::1]:port` over plain HTTP/1.0 (the registry closes the connection
/// after it): the body. skopeo cannot be the oracle here: its reference parser predates IPv6
/// hosts (`invalid reference format`).
fn get_on_ipv6(port: u16, path: &str, accept: &str) -> String {
    let address = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).expect("connect to [::1]");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: [::1]:{port}\r\nAccept: {accept}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

#[test]
fn push_and_pull_through_a_registry_on_ipv6_loopback() {
    let env = TestEnv::new();
    let registry = Ipv6Registry::start(&env);
    // Nothing listens on 127.0.0.1 at that port: the traffic must really go to [::1].
    assert!(TcpStream::connect(("127.0.0.1", registry.port)).is_err());
    pack_conformance(&env).assert_success();
    let target = format!("{}/uk/hello:v1", registry.host());

    let pushed = ukpm(&env)
        .args(["--json", "push", conformance::REFERENCE, "--to", &target])
        .run();
    pushed.assert_success();
    assert_eq!(pushed.json()["reference"], target.as_str());
    assert_eq!(pushed.json()["digest"], conformance::INDEX);

    // The registry itself serves what was pushed, byte for byte.
    let index = get_on_ipv6(
        registry.port,
        "/v2/uk/hello/manifests/v1",
        "application/vnd.oci.image.index.v1+json",
    );
    assert_eq!(index, conformance::INDEX_JSON);

    // A fresh store pulls it back by the bracketed name.
    let other = TestEnv::new();
    let pulled = ukpm(&other)
        .args(["--json", "pull", &target, "--all-platforms"])
        .run();
    pulled.assert_success();
    let packages = pulled.json()["packages"].as_array().unwrap().clone();
    assert_eq!(packages.len(), 1, "{packages:?}");
    assert_eq!(packages[0]["reference"], target.as_str());
    assert_eq!(
        packages[0]["name"],
        format!("{}/uk/hello", registry.host()).as_str()
    );
    assert_eq!(packages[0]["manifest"], conformance::MANIFEST);

    // The human forms name it with its brackets, and it unpacks.
    let listed = ukpm(&other).args(["ls"]).run();
    listed.assert_success();
    assert!(
        listed.stdout.contains(&format!("{}/uk/hello", registry.host())),
        "{}",
        listed.stdout
    );
    let unpacked = ukpm(&other).args(["unpack", &target, "out"]).run();
    unpacked.assert_success();
    assert_eq!(
        unpacked.stdout,
        "out/unikraft/bin/kernel\nout/unikraft/bin/initrd\n"
    );

    // By digest too.
    let by_digest = format!("{}/uk/hello@{}", registry.host(), conformance::INDEX);
    ukpm(&TestEnv::new())
        .args(["pull", &by_digest, "--all-platforms"])
        .run()
        .assert_success();
}

#[test]
fn bracketed_hosts_that_are_not_ipv6_are_usage_errors_naming_the_registry() {
    let env = TestEnv::new();
    for reference in [
        "[foo]:5000/x:1",
        "[127.0.0.1]/x",
        "[fe80::1%eth0]:5000/x",
        "fc00::1:5000/x",
    ] {
        let out = ukpm(&env).args(["pull", reference]).run();
        assert_eq!(out.code, 2, "{}", out.snapshot_text());
        assert!(out.stderr.contains("invalid registry"), "{}", out.snapshot_text());
        assert!(!out.panicked(), "{}", out.snapshot_text());
    }
}
