//! Running a program the way a user would, and looking at what it did.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wait::poll_until;

/// A program about to run with a clean environment (see [`crate::TestEnv::command`]). Each
/// setter returns the builder, so a test reads as one chain ending in [`run`](Self::run),
/// [`run_within`](Self::run_within) (with a deadline) or [`spawn`](Self::spawn) (to signal it
/// while it runs). This is the only place that decides what environment the binary under test
/// sees; every test runs it through here.
pub struct UkpmCommand {
    inner: Command,
    shown: String,
    redact: Vec<String>,
    input: Option<Vec<u8>>,
}

impl UkpmCommand {
    pub(crate) fn new(bin: &OsStr, root: &Path, store: &Path) -> Self {
        let mut inner = Command::new(bin);
        inner
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", root)
            .env("XDG_DATA_HOME", root.join("xdg"))
            .env("UKPM_STORE", store)
            .env("LANG", "C")
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let name = Path::new(bin)
            .file_name()
            .unwrap_or(bin)
            .to_string_lossy()
            .into_owned();
        Self {
            inner,
            shown: name,
            redact: redactions(root),
            input: None,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Sets (or overrides) one environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, value);
        self
    }

    /// Removes one environment variable from the clean set (e.g. `UKPM_STORE`, to test the
    /// default store location).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.inner.env_remove(key);
        self
    }

    /// Feeds `bytes` to the program's standard input (a password for `--password-stdin`); the
    /// bytes are never shown in failure messages.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.inner.stdin(Stdio::piped());
        self.input = Some(bytes.into());
        self
    }

    /// Runs in another folder than the test folder.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Runs to completion and collects the exit code and output.
    pub fn run(self) -> Outcome {
        self.spawn().wait()
    }

    /// Runs to completion or until `timeout` has passed, when it is killed and
    /// [`Outcome::timed_out`] says so: a hang fails the test instead of stalling the run.
    pub fn run_within(self, timeout: Duration) -> Outcome {
        self.spawn().wait_within(timeout)
    }

    /// Starts the program without waiting, so several can run at the same moment, or so the
    /// test can signal it while it runs. Its output is collected as it comes (no pipe can fill
    /// up and stall it).
    pub fn spawn(mut self) -> Running {
        let started = Instant::now();
        let mut child = self
            .inner
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start `{}`: {err}", self.shown));
        if let (Some(input), Some(mut stdin)) = (self.input.take(), child.stdin.take()) {
            stdin
                .write_all(&input)
                .unwrap_or_else(|err| panic!("cannot feed `{}`: {err}", self.shown));
        }
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        Running {
            child,
            shown: self.shown,
            redact: self.redact,
            started,
            stdout,
            stderr,
        }
    }
}

/// Reads a pipe to its end on a thread of its own.
fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The spellings of the test folder in output: as created and as the kernel resolves it.
fn redactions(root: &Path) -> Vec<String> {
    let mut forms = vec![root.display().to_string()];
    if let Ok(canonical) = fs_err::canonicalize(root) {
        forms.push(canonical.display().to_string());
    }
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms.dedup();
    forms
}

/// A program started by [`UkpmCommand::spawn`]: the test can wait for it (with or without a
/// deadline), signal it or kill it.
pub struct Running {
    child: Child,
    shown: String,
    redact: Vec<String>,
    started: Instant,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Running {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.shown
    }

    /// Whether it has not ended yet. A stopped process (SIGSTOP) is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends it a signal by name (`INT`, `STOP`, `CONT`...) through kill(1), as a user would.
    #[track_caller]
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|err| panic!("cannot run kill(1): {err}"));
        assert!(
            status.success(),
            "kill -s {name} {} (`{}`) failed: has it ended?",
            self.pid(),
            self.shown
        );
    }

    /// Waits for the program to end and collects its output.
    pub fn wait(mut self) -> Outcome {
        let status = self.child.wait();
        self.finish(status, false)
    }

    /// Waits until it ends or `timeout` has passed (from now); then kills it (SIGKILL) and the
    /// outcome says it [timed out](Outcome::timed_out).
    pub fn wait_within(mut self, timeout: Duration) -> Outcome {
        let ended = poll_until(timeout, || self.child.try_wait().ok().flatten()).is_some();
        if !ended {
            let _ = self.child.kill();
        }
        let status = self.child.wait();
        self.finish(status, !ended)
    }

    /// SIGKILL now, and collect what it did.
    pub fn kill(mut self) -> Outcome {
        let _ = self.child.kill();
        let status = self.child.wait();
        self.finish(status, false)
    }

    fn finish(mut self, status: std::io::Result<ExitStatus>, timed_out: bool) -> Outcome {
        let status = status.unwrap_or_else(|err| panic!("cannot wait for `{}`: {err}", self.shown));
        let output = |pipe: Option<JoinHandle<Vec<u8>>>| {
            let bytes = pipe.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Outcome {
            code: status.code().unwrap_or(-1),
            signal: status.signal(),
            timed_out,
            elapsed: self.started.elapsed(),
            stdout: output(self.stdout.take()),
            stderr: output(self.stderr.take()),
            command: std::mem::take(&mut self.shown),
            redact: std::mem::take(&mut self.redact),
        }
    }
}

impl Drop for Running {
    /// A test that panics with a program still running kills it, so no process outlives it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished program did: its exit code (-1 when a signal ended it) and its output.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The exit code; -1 when a signal ended it.
    pub code: i32,
    /// The signal that ended it, if one did (9 when it was killed).
    pub signal: Option<i32>,
    /// It was still running at the end of [`Running::wait_within`] and was killed: it hung.
    pub timed_out: bool,
    /// From its start to its end.
    pub elapsed: Duration,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    command: String,
    redact: Vec<String>,
}

impl Outcome {
    /// Exit code, stdout and stderr as one text with the test folder written `[TMP]`, so an
    /// insta snapshot pins all three and stays the same from run to run.
    pub fn snapshot_text(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            with_newline(&self.redacted(&self.stdout)),
            with_newline(&self.redacted(&self.stderr))
        )
    }

    /// stdout with the test folder written `[TMP]`.
    pub fn stdout_redacted(&self) -> String {
        self.redacted(&self.stdout)
    }

    fn redacted(&self, text: &str) -> String {
        let mut text = text.to_string();
        for form in &self.redact {
            text = text.replace(form.as_str(), "[TMP]");
        }
        text
    }

    /// Panics, showing the command and its output, unless it exited 0 without a panic.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        if !self.succeeded() {
            panic!("expected `{}` to succeed\n{}", self.command, self.snapshot_text());
        }
        self
    }

    /// Panics, showing the command and its output, unless it exited 1 (a failure, not a usage
    /// error and not a crash).
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        self.assert_code(1)
    }

    /// Panics, showing the command and its output, unless it exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        if self.code != code {
            panic!(
                "expected `{}` to exit {code}\n{}",
                self.command,
                self.snapshot_text()
            );
        }
        self
    }

    /// stdout parsed as exactly one JSON document (trailing whitespace allowed, nothing else).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout of `{}` is not one JSON document: {err}\n{}",
                self.command,
                self.snapshot_text()
            )
        })
    }

    /// The command line as run, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Whether it printed a panic: a crash, whatever its exit code.
    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked at") || self.stderr.contains("RUST_BACKTRACE")
    }

    /// Exit 0 and no panic.
    pub fn succeeded(&self) -> bool {
        self.code == 0 && !self.panicked()
    }

    /// Exit 1 with an `error:` line and no panic: how ukpm reports a failure, as opposed to a
    /// crash, a hang or a usage error.
    pub fn failed_cleanly(&self) -> bool {
        self.code == 1 && self.stderr.lines().any(|l| l.starts_with("error:")) && !self.panicked()
    }

    /// How it ended (code, signal, time, whether it hung) and its output as printed (not
    /// redacted), for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` ended with code {} signal {:?} after {:.1?}{}\n--- stdout\n{}--- stderr\n{}",
            self.command,
            self.code,
            self.signal,
            self.elapsed,
            if self.timed_out {
                " (killed at its deadline: hung)"
            } else {
                ""
            },
            with_newline(&self.stdout),
            with_newline(&self.stderr)
        )
    }
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}
