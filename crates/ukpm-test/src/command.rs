//! Running a program the way a user would, and looking at what it did.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A program about to run with a clean environment (see [`crate::TestEnv::command`]). Each
/// setter returns the builder, so a test reads as one chain ending in [`run`](Self::run).
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

    /// Starts the program without waiting, so several can run at the same moment.
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .inner
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start `{}`: {err}", self.shown));
        if let (Some(input), Some(mut stdin)) = (self.input.take(), child.stdin.take()) {
            use std::io::Write;
            stdin
                .write_all(&input)
                .unwrap_or_else(|err| panic!("cannot feed `{}`: {err}", self.shown));
        }
        Running {
            child,
            shown: self.shown,
            redact: self.redact,
        }
    }
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

/// A program started by [`UkpmCommand::spawn`].
pub struct Running {
    child: Child,
    shown: String,
    redact: Vec<String>,
}

impl Running {
    /// Waits for the program to end and collects its output.
    pub fn wait(self) -> Outcome {
        let output = self
            .child
            .wait_with_output()
            .unwrap_or_else(|err| panic!("cannot wait for `{}`: {err}", self.shown));
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            command: self.shown,
            redact: self.redact,
        }
    }
}

/// What a finished program did: its exit code (-1 when a signal ended it) and its output.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The exit code.
    pub code: i32,
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

    /// Panics, showing the command and its output, unless it exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        if self.code != 0 {
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
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}
