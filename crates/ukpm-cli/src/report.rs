//! Progress for people, on stderr: bars on a terminal, one line per finished blob otherwise,
//! nothing under `--quiet` (no reporter is installed) or `--json`. Under `-v` (or `UKPM_LOG`)
//! log lines go to stderr too, so there are no bars then: a bar redrawn between log lines
//! would tear them apart.
//!
//! Every line is escaped before it is shown: a step or a blob names platforms, repositories and
//! media types that a registry or a foreign store chose.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::Global;
use crate::output::{escape, human_size};

/// Shows steps and blob transfers on stderr.
pub struct StderrReporter {
    /// Steps and per-blob lines are shown (not under `--json`).
    chatty: bool,
    /// Progress bars, when stderr is a terminal.
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<ukpm::TransferId, Blob>>,
    /// The next transfer id: this reporter mints its own.
    next: std::sync::atomic::AtomicU64,
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
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Shows one line, escaped, above the bars (or alone without them).
    fn line(&self, message: &str) {
        let message = escape(message);
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

/// What a transfer is, for people: `kernel`, `initrd`, `config` of the package, plus the
/// digest's first characters when it is known. Both are ukpm's own words and hex, so the
/// label needs no escaping as a bar's prefix; lines that show it are escaped whole.
fn label(subject: &ukpm::Subject) -> String {
    match subject.digest {
        Some(digest) => format!("{} {}", subject.kind, &digest.to_string()[..19]),
        None => subject.kind.to_string(),
    }
}

fn step_line(step: &ukpm::Step) -> String {
    match step {
        ukpm::Step::Pack { reference, platform } => format!("packing {reference} ({platform})"),
        ukpm::Step::Pull { reference } => format!("pulling {reference}"),
        ukpm::Step::Push { source, target } => format!("pushing {source} to {target}"),
        ukpm::Step::Copy { source, target } => format!("copying {source} to {target}"),
        ukpm::Step::Rootfs { rootfs, detail } => format!("rootfs {rootfs}: {detail}"),
        ukpm::Step::Unpack {
            reference, platform, ..
        } => format!("unpacking {reference} ({platform})"),
        other => format!("{other:?}"),
    }
}

impl ukpm::Reporter for StderrReporter {
    fn on_step(&self, step: &ukpm::Step) {
        if self.chatty {
            self.line(&step_line(step));
        }
    }

    fn on_transfer_start(&self, subject: &ukpm::Subject) -> ukpm::TransferId {
        let id = ukpm::TransferId(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        if !self.chatty {
            return id;
        }
        let label = label(subject);
        let total = subject.size;
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(total.unwrap_or(0)));
            let style =
                ProgressStyle::with_template("  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.clone());
            bar
        });
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.insert(
            id,
            Blob {
                label,
                total,
                done: 0,
                bar,
            },
        );
        id
    }

    fn on_transfer_progress(&self, id: ukpm::TransferId, done: u64) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(blob) = active.get_mut(&id) {
            blob.done = done;
            if let Some(bar) = &blob.bar {
                bar.set_position(done);
            }
        }
    }

    fn on_transfer_complete(&self, id: ukpm::TransferId) {
        let blob = self.active.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Some(blob) = blob {
            if let Some(bar) = &blob.bar {
                bar.finish_and_clear();
            }
            let size = human_size(blob.total.unwrap_or(blob.done));
            self.line(&format!("  {} {size}", blob.label));
        }
    }

    fn on_transfer_skipped(&self, subject: &ukpm::Subject, why: &ukpm::Skip) {
        if self.chatty {
            let why = match why {
                ukpm::Skip::InStore => "already in the store".to_string(),
                ukpm::Skip::InRegistry => "already in the registry".to_string(),
                ukpm::Skip::Mounted { from } => format!("mounted from {from}"),
                other => format!("{other:?}"),
            };
            self.line(&format!("  {} {why}", label(subject)));
        }
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
