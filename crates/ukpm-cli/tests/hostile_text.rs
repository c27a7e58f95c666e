//! Nothing from outside reaches the terminal raw (issue 10, point 10): a registry's error
//! message, a file name in a layer, an annotation, a platform from a store someone else wrote
//! may carry escape sequences (`\x1b]0;pwned\x07` retitles the window), carriage returns (that
//! rewrite the line shown), C1 controls or bidi overrides (U+202E shows `exe.txt` as
//! `txt.exe`). ukpm prints them escaped on stderr (error chains, progress) and in every human
//! form on stdout (`ls`, `inspect`, `unpack`, `fsck`), and exact in `--json`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use common::ukpm;
use serde_json::{Value, json};
use ukpm_test::{OciLayoutWriter, Outcome, TestEnv};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// What an attacker would send: retitle the terminal, ring, rewrite the line, reverse it.
const TITLE: &str = "\x1b]0;pwned\x07";
const KERNEL_NAME: &str = "unikraft/bin/ker\rnel\x1b[2J";
const TITLE_SHOWN: &str = "\\x1b]0;pwned\\x07";
const KERNEL_NAME_SHOWN: &str = "unikraft/bin/ker\\rnel\\x1b[2J";
const REVERSED: &str = "exe.\u{202e}txt";

/// Whether `text` holds anything a terminal would act on or hide (newlines aside).
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            c != '\n'
                && (c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        })
        .collect()
}

#[track_caller]
fn assert_clean(out: &Outcome) {
    assert!(!out.panicked(), "{}", out.snapshot_text());
    let found = raw_controls(&out.stdout);
    assert!(found.is_empty(), "raw {found:?} on stdout:\n{:?}", out.stdout);
    let found = raw_controls(&out.stderr);
    assert!(found.is_empty(), "raw {found:?} on stderr:\n{:?}", out.stderr);
}

/// A store another tool wrote, holding `unikraft.org/evil:latest`: its kernel's file name has a
/// carriage return and an escape sequence (and the layer's annotation names it), the manifest
/// has annotations with a bidi override and a title sequence, and its platform's OS version
/// carries a C1 control.
fn hostile_store(env: &TestEnv) {
    let mut layout = OciLayoutWriter::create(env.store());
    let tar = ukpm_test::tar_with_raw_names(&[
        (KERNEL_NAME.as_bytes(), b"KERNEL\n"),
        (b"unikraft/\xe9\rx", b"odd\n"),
    ]);
    let mut layer = layout.blob(LAYER_TAR, &tar);
    layer["annotations"] = json!({ "org.unikraft.kernel.image": format!("/{KERNEL_NAME}") });
    let config = json!({
        "architecture": "x86_64",
        "os": "qemu",
        "os.version": "6.1\u{9b}31m",
        "config": {"Cmd": [TITLE]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    });
    let config = layout.json_blob(CONFIG, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config,
        "layers": [layer],
        "annotations": {
            "org.opencontainers.image.title": REVERSED,
            "org.opencontainers.image.description": TITLE,
        },
    });
    let manifest = layout.json_blob(MANIFEST, &manifest);
    layout.tag("unikraft.org/evil:latest", &manifest);
    // A second package whose platform itself is hostile.
    let kernel = ukpm_test::tar_with_raw_names(&[(b"unikraft/bin/kernel", b"KERNEL\n")]);
    let kernel = layout.blob(LAYER_TAR, &kernel);
    let odd = layout.image(ODD_ARCH, ODD_OS, &[kernel]);
    layout.tag("unikraft.org/odd-platform:1", &odd);
    layout.finish();
}

const ODD_ARCH: &str = "x86_64\x1b[31m";
const ODD_OS: &str = "qemu\u{202e}";

#[test]
fn unpack_shows_file_names_escaped_and_json_keeps_them_exact() {
    let env = TestEnv::new();
    hostile_store(&env);
    let out = ukpm(&env).args(["unpack", "evil", "out"]).run();
    out.assert_success();
    assert_clean(&out);
    assert_eq!(out.stdout, format!("out/{KERNEL_NAME_SHOWN}\n"));
    assert_eq!(
        fs_err::read(env.path("out").join(KERNEL_NAME)).unwrap(),
        b"KERNEL\n"
    );

    let json = ukpm(&env).args(["--json", "unpack", "evil", "again"]).run();
    json.assert_success();
    let doc = json.json();
    assert_eq!(doc["kernel"], json!(format!("again/{KERNEL_NAME}")));
    assert!(
        doc["files"].as_array().unwrap().contains(&json!(KERNEL_NAME)),
        "{doc}"
    );
    assert_eq!(doc["cmd"], json!([TITLE]));
}

#[test]
fn inspect_shows_annotations_escaped_and_json_keeps_them_exact() {
    let env = TestEnv::new();
    hostile_store(&env);
    // The summary (the default) escapes as every human line does.
    let summary = ukpm(&env).args(["inspect", "evil"]).run();
    summary.assert_success();
    assert_clean(&summary);
    assert!(summary.stdout.contains("exe.\\u{202e}txt"), "{}", summary.stdout);
    assert!(summary.stdout.contains("ker\\rnel\\x1b[2J"), "{}", summary.stdout);
    let out = ukpm(&env).args(["inspect", "--raw", "evil"]).run();
    out.assert_success();
    assert_clean(&out);
    // JSON for people: what JSON leaves raw (U+202E, U+009B) is a JSON escape, so the text
    // stays JSON, and what JSON escapes itself (ESC, BEL) stays as JSON escapes it.
    assert!(out.stdout.contains("exe.\\u202etxt"), "{}", out.stdout);
    assert!(out.stdout.contains("\\u001b]0;pwned\\u0007"), "{}", out.stdout);
    assert!(out.stdout.contains("6.1\\u009b31m"), "{}", out.stdout);

    let json = ukpm(&env).args(["--json", "inspect", "evil"]).run();
    json.assert_success();
    let doc = json.json();
    let annotations = &doc["manifests"][0]["manifest"]["annotations"];
    assert_eq!(annotations["org.opencontainers.image.title"], REVERSED);
    assert_eq!(annotations["org.opencontainers.image.description"], TITLE);
    // The one JSON line has no raw control either: JSON escapes C0; U+202E and C1 are exact
    // characters inside a string, which is what `--json` promises.
    assert!(json.stdout.contains(REVERSED), "--json must keep the text exact");
}

#[test]
fn ls_and_unpack_progress_escape_a_foreign_platform() {
    let env = TestEnv::new();
    hostile_store(&env);
    let listed = ukpm(&env).args(["ls"]).run();
    listed.assert_success();
    assert_clean(&listed);
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("unikraft.org/odd-platform"))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(row.contains("x86_64\\x1b[31m  qemu\\u{202e}  "), "{row}");
    // The columns are as wide as the escaped text: every row's MANIFEST starts in one column.
    let header = listed.stdout.lines().next().unwrap();
    let column = header.find("MANIFEST").unwrap();
    for line in listed.stdout.lines().skip(1) {
        assert!(
            line.is_char_boundary(column)
                && line[column..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_hexdigit()),
            "misaligned:\n{}",
            listed.stdout
        );
    }
    let json = ukpm(&env).args(["--json", "ls"]).run();
    let platforms: Vec<(String, String)> = json.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["architecture"].as_str().unwrap().into(),
                p["platform"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        platforms.contains(&(ODD_ARCH.into(), ODD_OS.into())),
        "{platforms:?}"
    );

    // The progress line names the platform: escaped too.
    let out = ukpm(&env).args(["unpack", "odd-platform:1", "out"]).run();
    out.assert_success();
    assert_clean(&out);
    assert!(out.stderr.contains("\\x1b[31m"), "{}", out.stderr);
}

#[test]
fn fsck_lines_escape_what_the_store_holds() {
    let env = TestEnv::new();
    hostile_store(&env);
    let stray = format!("evil{TITLE}\r");
    env.write(format!("store/blobs/sha256/{stray}"), b"x", 0o644);
    let out = ukpm(&env).args(["fsck"]).run();
    assert_eq!(out.code, 1, "{}", out.snapshot_text());
    assert_clean(&out);
    assert!(
        out.stdout.contains(&format!(
            "blobs/sha256/evil{TITLE_SHOWN}\\r is not named by a digest"
        )),
        "{}",
        out.stdout
    );
    let json = ukpm(&env).args(["--json", "fsck"]).run();
    let doc = json.json();
    let messages: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains(&stray)),
        "--json keeps the name exact: {messages:?}"
    );
}

/// A registry that answers `GET /v2/` as a registry and everything else with a 404 whose
/// error envelope's message is hostile. Stopped when dropped.
struct LyingRegistry {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LyingRegistry {
    fn start(message: &'static str) -> LyingRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, message);
                }
            }
        });
        LyingRegistry {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for LyingRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request's head and answers it; one request per connection.
fn answer(stream: TcpStream, message: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let (status, body) = if path == "/v2/" {
        ("200 OK", "{}".to_string())
    } else {
        let envelope = json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": message}]});
        ("404 Not Found", envelope.to_string())
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
         Docker-Distribution-API-Version: registry/2.0\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[test]
fn a_registry_error_message_is_escaped_on_stderr_and_exact_in_json() {
    const MESSAGE: &str = "\x1b]0;pwned\x07manifest\runknown \u{202e}txt.exe \u{85}";
    let registry = LyingRegistry::start(MESSAGE);
    let env = TestEnv::new();
    let reference = format!("{}/evil:1", registry.host());

    let out = ukpm(&env).args(["pull", &reference]).run();
    assert_eq!(out.code, 1, "{}", out.snapshot_text());
    assert_clean(&out);
    assert!(
        out.stderr
            .contains("\\x1b]0;pwned\\x07manifest\\runknown \\u{202e}txt.exe \\u{85}"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("\nerror: failed to pull"), "{}", out.stderr);

    let json = ukpm(&env).args(["--json", "pull", &reference]).run();
    assert_eq!(json.code, 1, "{}", json.snapshot_text());
    let doc: Value = json.json();
    let causes: Vec<&str> = doc["error"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        causes.iter().any(|c| c.contains(MESSAGE)),
        "--json keeps the registry's message exact: {causes:?}"
    );
}

#[test]
fn a_refused_argument_is_escaped_in_the_usage_error() {
    let env = TestEnv::new();
    let out = ukpm(&env).arg(format!("--bogus{TITLE}")).arg("ls").run();
    assert_eq!(out.code, 2, "{}", out.snapshot_text());
    assert_clean(&out);
    assert!(
        out.stderr.contains(&format!("--bogus{TITLE_SHOWN}")),
        "{}",
        out.stderr
    );
    // Without anything to escape, clap prints its message as it always has.
    let plain = ukpm(&env).args(["--bogus", "ls"]).run();
    assert_eq!(plain.code, 2);
    assert!(
        plain.stderr.contains("unexpected argument '--bogus'"),
        "{}",
        plain.stderr
    );
}
