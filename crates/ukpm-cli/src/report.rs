//! Progress for people, on stderr: bars on a terminal, one line per finished blob otherwise,
//! nothing under `--quiet` (no reporter is installed) or `--json`. Under `-v` (or `UKPM_LOG`)
//! log lines go to stderr too, so there are no bars then: a bar redrawn between log lines
//! would tear them apart.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::Global;
use crate::output::human_size;

/// Shows steps and blob transfers on stderr.
pub struct StderrReporter {
    /// Steps and per-blob lines are shown (not under `--json`).
    chatty: bool,
    /// Progress bars, when stderr is a terminal.
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<u64, Blob>>,
}

struct Blob {
    label: String,
    total: Option<u64>,
    done: u64,
    bar: Option<ProgressBar>,
}

impl StderrReporter {
    /// A reporter for these global flags.
    pub fn new(global: &Global) -> StderrReporter {
        let logging = global.verbose > 0 || std::env::var_os("UKPM_LOG").is_some();
        StderrReporter {
            chatty: !global.json,
            bars: draws_bars(global.json, logging, std::io::stderr().is_terminal())
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, message: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(message);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{message}");
            }
        }
    }
}

/// Whether progress is drawn as bars: only on a terminal, never under `--json` (no progress
/// is shown at all), and never while debug logs go to stderr (`logging`), where a finished
/// blob gets one line instead.
fn draws_bars(json: bool, logging: bool, terminal: bool) -> bool {
    terminal && !json && !logging
}

fn short(label: &str) -> &str {
    // `sha256:` plus 12 hex characters is enough to tell blobs apart on screen.
    if label.starts_with("sha256:") {
        label.get(..19).unwrap_or(label)
    } else {
        label
    }
}

impl ukpm::Reporter for StderrReporter {
    fn step(&self, message: &str) {
        if self.chatty {
            self.line(message);
        }
    }

    fn blob_started(&self, id: u64, label: &str, total: Option<u64>) {
        if !self.chatty {
            return;
        }
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(total.unwrap_or(0)));
            let style =
                ProgressStyle::with_template("  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(short(label).to_string());
            bar
        });
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        // A retried upload starts its blob again: replace the old bar.
        if let Some(Blob { bar: Some(old), .. }) = active.remove(&id) {
            old.finish_and_clear();
        }
        active.insert(
            id,
            Blob {
                label: label.to_string(),
                total,
                done: 0,
                bar,
            },
        );
    }

    fn blob_progress(&self, id: u64, done: u64) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(blob) = active.get_mut(&id) {
            blob.done = done;
            if let Some(bar) = &blob.bar {
                bar.set_position(done);
            }
        }
    }

    fn blob_finished(&self, id: u64) {
        let blob = self.active.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Some(blob) = blob {
            if let Some(bar) = &blob.bar {
                bar.finish_and_clear();
            }
            let size = human_size(blob.total.unwrap_or(blob.done));
            self.line(&format!("  {} {size}", short(&blob.label)));
        }
    }

    fn blob_skipped(&self, label: &str, reason: &str) {
        if self.chatty {
            self.line(&format!("  {} {reason}", short(label)));
        }
    }

    fn warn(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }
}

#[cfg(test)]
mod tests {
    use super::draws_bars;

    #[test]
    fn bars_only_on_a_quiet_terminal() {
        assert!(draws_bars(false, false, true));
        assert!(
            !draws_bars(false, true, true),
            "no bars under -v: log lines would tear them"
        );
        assert!(!draws_bars(true, false, true), "no bars under --json");
        assert!(!draws_bars(false, false, false), "no bars off a terminal");
    }
}
