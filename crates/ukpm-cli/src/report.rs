//! Progress on stderr, as `--progress` asks (see [`Progress`]):
//! - bars on a terminal: one per blob, named by what it carries (`kernel`, `initrd`, `config`)
//!   and its package, and one total bar for the whole operation with its ETA, cut to the
//!   terminal's width so that nothing wraps;
//! - lines otherwise: a verb on each finished blob (`pulled`, `pushed`, `resumed`, `mounted`,
//!   `already there`, `packed`, `unpacked`), and while bytes move, a line every
//!   [`LINE_EVERY`] of silence and at every tenth of a large blob, so a log never goes quiet;
//! - `json`: one event per line (NDJSON), the contract of docs/json.md ("Progress events").
//!
//! A pull, push or copy closes with a summary: bytes moved, time, rate. Bytes an earlier run
//! left (a resumed download) count as done but never as moved, so the rate is this run's own.
//! After Ctrl-C, `main` calls [`interrupted`]: the bars are cleared and the user is told
//! whether running the same command again resumes.
//!
//! Under `-v` (or `UKPM_LOG`) log lines go to stderr too, so `auto` draws no bars then: a bar
//! redrawn between log lines would tear them apart. Every line for people is escaped before it
//! is shown: a step or a blob names platforms, repositories and media types that a registry or
//! a foreign store chose.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use ukpm::{Digest, Direction, Skip, Step, Subject, TransferId};

use crate::args::{Global, Progress};
use crate::output::progress::{ProgressEvent, Verb};
use crate::output::progress_bars::{Stderr, label, label_in, label_width, style};
use crate::output::{escape, human_size};

/// Without a terminal, the longest silence while bytes move.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// The shortest time between two `progress` events of one transfer under `--progress=json`.
const JSON_EVERY: Duration = Duration::from_millis(250);
/// A blob this large gets a line at every tenth of it without a terminal...
const LARGE: u64 = 16 << 20;
/// ... unless a line was shown less than this long ago.
const TENTH_GAP: Duration = Duration::from_secs(1);

/// The reporter of this process, for `main` to close after the command.
static CURRENT: OnceLock<Arc<StderrReporter>> = OnceLock::new();

/// How progress is shown, once `--progress auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Json,
    Nothing,
}

/// What `--progress` means here: `auto` is bars on a terminal unless logs go to stderr
/// (`logging`), lines elsewhere, and nothing under `--json`; `bars` falls back to lines off a
/// terminal, where bars cannot be drawn.
fn mode(progress: Progress, json: bool, logging: bool, terminal: bool) -> Mode {
    match progress {
        Progress::Auto if json => Mode::Nothing,
        Progress::Auto if terminal && !logging => Mode::Bars,
        Progress::Auto | Progress::Plain => Mode::Lines,
        Progress::Bars if terminal => Mode::Bars,
        Progress::Bars => Mode::Lines,
        Progress::Json => Mode::Json,
        Progress::None => Mode::Nothing,
    }
}

/// Shows steps and blob transfers on stderr.
pub struct StderrReporter {
    mode: Mode,
    /// Progress bars, in [`Mode::Bars`].
    bars: Option<MultiProgress>,
    /// The terminal's width, for the bars and the lines above them.
    width: usize,
    started: Instant,
    /// The next transfer id: this reporter mints its own.
    next: AtomicU64,
    state: Mutex<State>,
}

/// What the reporter knows of the operation so far.
#[derive(Default)]
struct State {
    active: HashMap<TransferId, Blob>,
    /// The total bar, in [`Mode::Bars`], once a blob is planned or started.
    total: Option<ProgressBar>,
    /// Every digest a plan or a transfer named: each counts once in `to_move`.
    planned: HashSet<Digest>,
    /// Digests whose first transfer or skip was seen.
    accounted: HashSet<Digest>,
    /// Bytes this run is to move: planned or started, less skipped and resumed.
    to_move: u64,
    /// Bytes moved in this run.
    moved: u64,
    /// Bytes earlier runs had moved, which this run kept.
    resumed: u64,
    /// Finished blobs by verb.
    verbs: BTreeMap<Verb, u64>,
    /// The first step's operation (`pull`, `push`...).
    operation: Option<&'static str>,
    /// A pull, push or copy was under way: running it again resumes.
    resumable: bool,
    /// A blob went to or came from a registry (or was found there).
    network: bool,
    /// When the last line was shown, without a terminal.
    last_line: Option<Instant>,
    /// When the last byte moved.
    last_progress: Option<Instant>,
    /// The command ended: later events (from threads still running) are not shown.
    closed: bool,
}

/// One transfer under way.
struct Blob {
    subject: Subject,
    /// Bytes of it that earlier runs moved.
    base: u64,
    done: u64,
    bar: Option<ProgressBar>,
    /// The last tenth shown without a terminal.
    tenth: u64,
    last_json: Option<Instant>,
}

impl StderrReporter {
    /// The reporter for these global flags, made the process's own (for [`finish`] and
    /// [`interrupted`]); `None` under `--quiet`, unless `--progress=json` asks for events.
    pub fn install(global: &Global) -> Option<Arc<StderrReporter>> {
        if global.quiet && global.progress != Progress::Json {
            return None;
        }
        let logging = global.verbose > 0 || std::env::var_os("UKPM_LOG").is_some();
        let terminal = std::io::stderr().is_terminal();
        let mode = mode(global.progress, global.json, logging, terminal);
        let width = usize::from(indicatif::TermLike::width(&Stderr::new()));
        let reporter = Arc::new(StderrReporter {
            mode,
            bars: (mode == Mode::Bars).then(|| {
                MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
                    Box::new(Stderr::new()),
                    20,
                ))
            }),
            width,
            started: Instant::now(),
            next: AtomicU64::new(1),
            state: Mutex::new(State::default()),
        });
        let _ = CURRENT.set(reporter.clone());
        if mode == Mode::Lines {
            // A stalled transfer sends no events: a clock keeps the lines coming.
            let _ = std::thread::Builder::new()
                .name("ukpm-progress".into())
                .spawn(|| {
                    while let Some(reporter) = CURRENT.get()
                        && reporter.tick()
                    {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                });
        }
        Some(reporter)
    }

    /// Once a second without a terminal: a line if one is due. False once the command ended.
    fn tick(&self) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        if !state.active.is_empty() {
            self.periodic_line(&mut state);
        }
        true
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether lines for people are shown.
    fn human(&self) -> bool {
        matches!(self.mode, Mode::Bars | Mode::Lines)
    }

    /// Shows one line for people, escaped, above the bars (cut to the terminal's width there,
    /// so it never wraps) or alone while there are none (before the first, and once they are
    /// gone: a line indicatif drew with no bar below it would be written over, see [`Stderr`]).
    fn line(&self, state: &mut State, message: &str) {
        let message = escape(message);
        match &self.bars {
            Some(bars) if !state.closed && state.total.is_some() => {
                let _ = bars.println(fold(&message, self.width.saturating_sub(1)));
            }
            _ => {
                let _ = writeln!(std::io::stderr().lock(), "{message}");
                state.last_line = Some(Instant::now());
            }
        }
    }

    /// Writes one event as one line of JSON, in one write so lines never interleave.
    fn event(&self, event: &ProgressEvent<'_>) {
        if self.mode != Mode::Json {
            return;
        }
        if let Ok(mut line) = serde_json::to_string(event) {
            line.push('\n');
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn mint(&self) -> TransferId {
        TransferId(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The total bar, made on first use, last of the bars.
    fn total_bar(&self, state: &mut State) -> Option<ProgressBar> {
        let bars = self.bars.as_ref()?;
        if state.total.is_none() {
            let bar = bars.add(ProgressBar::new(state.to_move));
            bar.set_style(style(self.width));
            bar.set_prefix("total");
            state.total = Some(bar);
        }
        state.total.clone()
    }

    /// Shows the operation's totals on the total bar.
    /// Resumed bytes are in the bar (so it agrees with the blobs' bars) but not in its rate:
    /// the resume resets the estimate (see `on_transfer_resumed`).
    fn show_total(&self, state: &mut State) {
        if let Some(total) = self.total_bar(state) {
            total.set_length(state.to_move.max(state.moved) + state.resumed);
            total.set_position(state.moved + state.resumed);
        }
    }

    /// Without a terminal: a line for the whole operation when none was shown for
    /// [`LINE_EVERY`], so a log shows the operation is alive.
    fn periodic_line(&self, state: &mut State) {
        if self.mode != Mode::Lines {
            return;
        }
        let now = Instant::now();
        let since = state.last_line.unwrap_or(self.started);
        if now.duration_since(since) < LINE_EVERY {
            return;
        }
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate = state.moved as f64 / elapsed.max(0.001);
        let to_move = state.to_move.max(state.moved);
        let percent = (state.moved * 100).checked_div(to_move).unwrap_or(100);
        let mut message = format!(
            "  total {} of {} ({percent}%) at {}/s",
            human_size(state.moved),
            human_size(to_move),
            human_size(rate as u64)
        );
        let still = state
            .last_progress
            .map_or(Duration::ZERO, |last| now.duration_since(last));
        if still >= LINE_EVERY {
            message.push_str(&format!(
                ", no bytes for {}",
                seconds(still.as_secs_f64().floor())
            ));
        } else if rate >= 1.0 && to_move > state.moved {
            let left = (to_move - state.moved) as f64 / rate;
            message.push_str(&format!(", about {} left", seconds(left)));
        }
        self.line(state, &message);
    }

    /// A blob is done with: counted, shown with its verb, and its event written.
    fn finished(&self, state: &mut State, id: TransferId, blob: &Blob, verb: Verb, from: Option<&str>) {
        if let Some(bar) = &blob.bar {
            bar.finish_and_clear();
        }
        if verb != Verb::Failed {
            *state.verbs.entry(verb).or_default() += 1;
        }
        let subject = &blob.subject;
        if self.human() && verb != Verb::Failed {
            let size = subject.size.unwrap_or(blob.done);
            let mut message = format!(
                "{:>13} {} {} {}",
                verb.as_str(),
                subject.kind,
                human_size(size),
                subject.reference
            );
            if let Some(from) = from {
                message.push_str(&format!(" from {from}"));
            }
            if blob.base > 0 {
                message.push_str(&format!(" ({} from an earlier run)", human_size(blob.base)));
            }
            // Last: on a narrow terminal, the part the cut takes.
            if let Some(digest) = subject.digest {
                message.push(' ');
                message.push_str(&short_digest(&digest));
            }
            self.line(state, &message);
        }
        self.event(&ProgressEvent::Finish {
            bytes: blob.done,
            digest: subject.digest.map(|d| d.to_string()),
            direction: subject.direction.as_str(),
            from,
            id: id.0,
            kind: subject.kind.as_str(),
            reference: subject.reference.to_string(),
            resumed_bytes: blob.base,
            total: subject.size,
            verb,
        });
    }

    /// The command succeeded: the bars go and a pull, push or copy shows its summary.
    fn finish(&self) {
        let mut state = self.state();
        if std::mem::replace(&mut state.closed, true) {
            return;
        }
        self.clear_bars(&mut state);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = (state.moved as f64 / elapsed.max(0.001)) as u64;
        if state.verbs.is_empty() && state.moved == 0 {
            return;
        }
        self.event(&ProgressEvent::Summary {
            blobs: state.verbs.clone(),
            bytes: state.moved,
            bytes_per_second: rate,
            operation: state.operation,
            resumed_bytes: state.resumed,
            seconds: (elapsed * 1000.0).round() / 1000.0,
        });
        if self.human() && state.network {
            let message = summary_line(&state, elapsed, rate);
            self.line(&mut state, &message);
        }
    }

    /// The command was interrupted: the bars go and the user learns whether the same command
    /// resumes.
    fn interrupted(&self) {
        let mut state = self.state();
        if std::mem::replace(&mut state.closed, true) {
            return;
        }
        self.clear_bars(&mut state);
        let message = if state.resumable {
            "interrupted: run the same command again to resume"
        } else {
            "interrupted"
        };
        self.event(&ProgressEvent::Interrupted {
            message,
            resumable: state.resumable,
        });
        if self.human() {
            self.line(&mut state, message);
        }
    }

    /// The command failed: the bars go, the error says the rest.
    fn abandon(&self) {
        let mut state = self.state();
        if !std::mem::replace(&mut state.closed, true) {
            self.clear_bars(&mut state);
        }
    }

    fn clear_bars(&self, state: &mut State) {
        // Every line the bars drew goes first (a bar finished between two redraws may still
        // be on the screen); then nothing draws again, not even threads still running (a
        // blocking write being stopped).
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
            bars.set_draw_target(ProgressDrawTarget::hidden());
        }
        for blob in state.active.values() {
            if let Some(bar) = &blob.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(total) = state.total.take() {
            total.finish_and_clear();
        }
    }
}

/// The command succeeded: closes the process's reporter with its summary, before its result
/// is printed (so no bar is left between the two).
pub fn finish() {
    if let Some(reporter) = CURRENT.get() {
        reporter.finish();
    }
}

/// The command failed: clears the bars before the error is shown.
pub fn abandon() {
    if let Some(reporter) = CURRENT.get() {
        reporter.abandon();
    }
}

/// Ctrl-C: clears the bars and tells the user how to go on.
pub fn interrupted() {
    if let Some(reporter) = CURRENT.get() {
        reporter.interrupted();
    }
}

/// `finished in 12.3 s: 180.0 MiB at 14.6 MiB/s (1 resumed, 1 already there, 120.0 MiB kept from an
/// earlier run)`.
fn summary_line(state: &State, elapsed: f64, rate: u64) -> String {
    let mut message = if state.moved == 0 {
        format!("finished in {}: nothing to move", seconds(elapsed))
    } else {
        format!(
            "finished in {}: {} at {}/s",
            seconds(elapsed),
            human_size(state.moved),
            human_size(rate)
        )
    };
    let mut parts: Vec<String> = state
        .verbs
        .iter()
        .map(|(verb, n)| format!("{n} {}", verb.as_str()))
        .collect();
    if state.resumed > 0 {
        parts.push(format!("{} kept from an earlier run", human_size(state.resumed)));
    }
    if !parts.is_empty() {
        message.push_str(&format!(" ({})", parts.join(", ")));
    }
    message
}

/// `0.4 s`, `12.3 s`, `2 min 5 s`.
fn seconds(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = secs.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// `sha256:` and the first 12 hex digits.
fn short_digest(digest: &Digest) -> String {
    digest.to_string().chars().take(19).collect()
}

/// `text` folded into lines of at most `width` characters: a line printed above the bars must
/// not wrap on its own (the bars would be redrawn over its tail), and must not lose its tail
/// either (a finished line once ended `(128.0 MiB from an ear` at 80 columns).
fn fold(text: &str, width: usize) -> String {
    if width == 0 {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(width)
        .map(|chunk| chunk.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The verb of a transfer that moved all its bytes.
fn verb_of(direction: Direction, resumed: bool) -> Verb {
    match direction {
        Direction::Download if resumed => Verb::Resumed,
        Direction::Download => Verb::Pulled,
        Direction::Upload if resumed => Verb::Resumed,
        Direction::Upload => Verb::Pushed,
        Direction::Write => Verb::Packed,
        _ => Verb::Unpacked,
    }
}

fn is_network(direction: Direction) -> bool {
    matches!(direction, Direction::Download | Direction::Upload)
}

fn step_line(step: &Step) -> String {
    match step {
        Step::Pack { reference, platform } => format!("packing {reference} ({platform})"),
        Step::Pull { reference } => format!("pulling {reference}"),
        Step::Push { source, target } => format!("pushing {source} to {target}"),
        Step::Copy { source, target } => format!("copying {source} to {target}"),
        Step::Rootfs { rootfs, detail } => format!("rootfs {rootfs}: {detail}"),
        Step::Unpack {
            reference, platform, ..
        } => format!("unpacking {reference} ({platform})"),
        other => format!("{other:?}"),
    }
}

/// A step as its JSON event.
fn step_event(step: &Step) -> ProgressEvent<'_> {
    let (mut reference, mut target, mut platform, mut rootfs, mut detail) = (None, None, None, None, None);
    let name = match step {
        Step::Pack {
            reference: r,
            platform: p,
        } => {
            (reference, platform) = (Some(r), Some(p.as_str()));
            "pack"
        }
        Step::Pull { reference: r } => {
            reference = Some(r);
            "pull"
        }
        Step::Push { source, target: t } => {
            (reference, target) = (Some(source), Some(t));
            "push"
        }
        Step::Copy { source, target: t } => {
            (reference, target) = (Some(source), Some(t));
            "copy"
        }
        Step::Rootfs { rootfs: r, detail: d } => {
            (rootfs, detail) = (Some(r.as_str()), Some(d.as_str()));
            "rootfs"
        }
        Step::Unpack {
            reference: r,
            platform: p,
            ..
        } => {
            (reference, platform) = (Some(r), Some(p.as_str()));
            "unpack"
        }
        _ => "other",
    };
    ProgressEvent::Step {
        detail,
        platform,
        reference: reference.map(ToString::to_string),
        rootfs,
        step: name,
        target: target.map(ToString::to_string),
    }
}

impl ukpm::Reporter for StderrReporter {
    fn on_step(&self, step: &Step) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        let operation = match step {
            Step::Pull { .. } => Some("pull"),
            Step::Push { .. } => Some("push"),
            Step::Copy { .. } => Some("copy"),
            Step::Pack { .. } => Some("pack"),
            Step::Unpack { .. } => Some("unpack"),
            _ => None,
        };
        if state.operation.is_none() {
            state.operation = operation;
        }
        state.resumable |= matches!(operation, Some("pull" | "push" | "copy"));
        self.event(&step_event(step));
        if self.human() {
            self.line(&mut state, &step_line(step));
        }
    }

    fn on_plan(&self, plan: &ukpm::Plan) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        let (mut blobs, mut bytes) = (0, 0);
        for (digest, size) in &plan.blobs {
            if state.planned.insert(*digest) {
                blobs += 1;
                bytes += size;
            }
        }
        state.to_move += bytes;
        state.network |= is_network(plan.direction);
        if blobs > 0 {
            self.event(&ProgressEvent::Plan {
                blobs,
                bytes,
                direction: plan.direction.as_str(),
                reference: plan.reference.to_string(),
            });
            self.show_total(&mut state);
        }
    }

    fn on_transfer_start(&self, subject: &Subject) -> TransferId {
        let id = self.mint();
        let mut state = self.state();
        if state.closed {
            return id;
        }
        state.network |= is_network(subject.direction);
        let size = subject.size.unwrap_or(0);
        match subject.digest {
            // Planned: already counted, unless this is the blob's second transfer.
            Some(digest) if state.planned.contains(&digest) => {
                if !state.accounted.insert(digest) {
                    state.to_move += size;
                }
            }
            Some(digest) => {
                state.planned.insert(digest);
                state.accounted.insert(digest);
                state.to_move += size;
            }
            None => state.to_move += size,
        }
        let bar = self.total_bar(&mut state).and_then(|total| {
            let bars = self.bars.as_ref()?;
            let bar = bars.insert_before(&total, ProgressBar::new(size));
            bar.set_style(style(self.width));
            bar.set_prefix(label_in(subject, label_width(self.width)));
            Some(bar)
        });
        self.show_total(&mut state);
        state.active.insert(
            id,
            Blob {
                subject: subject.clone(),
                base: 0,
                done: 0,
                bar,
                tenth: 0,
                last_json: None,
            },
        );
        self.event(&ProgressEvent::Start {
            digest: subject.digest.map(|d| d.to_string()),
            direction: subject.direction.as_str(),
            id: id.0,
            kind: subject.kind.as_str(),
            reference: subject.reference.to_string(),
            total: subject.size,
        });
        id
    }

    fn on_transfer_resumed(&self, id: TransferId, from: u64) {
        let mut state = self.state();
        let state = &mut *state;
        if state.closed {
            return;
        }
        let Some(blob) = state.active.get_mut(&id) else {
            return;
        };
        if from > blob.done {
            // Bytes an earlier run moved: done, but not to be moved (nor counted as moved) now.
            let kept = from - blob.done;
            blob.base += kept;
            state.resumed += kept;
            state.to_move = state.to_move.saturating_sub(kept);
        } else {
            // Started over, or resumed short of where it was: bytes to move again. Those that
            // an earlier run had moved are no longer kept.
            state.to_move += blob.done - from;
            if from < blob.base {
                state.resumed -= blob.base - from;
                blob.base = from;
            }
        }
        blob.done = from;
        // The estimate then starts from here: the tick records the position, the reset drops
        // the time before it, so the jump is never a rate.
        if let Some(bar) = &blob.bar {
            bar.set_position(from);
            bar.tick();
            bar.reset_eta();
        }
        self.show_total(state);
        if let Some(total) = &state.total {
            total.tick();
            total.reset_eta();
        }
    }

    fn on_transfer_progress(&self, id: TransferId, done: u64) {
        let mut guard = self.state();
        let state = &mut *guard;
        if state.closed {
            return;
        }
        let Some(blob) = state.active.get_mut(&id) else {
            return;
        };
        // Parallel ranges report their running sum from several threads, so a smaller number
        // may arrive after a larger one: only the largest counts. (A download that starts over
        // says so with a resume event.)
        if done <= blob.done {
            return;
        }
        state.moved += done - blob.done;
        state.last_progress = Some(Instant::now());
        blob.done = done;
        if let Some(bar) = &blob.bar {
            bar.set_position(done);
        }
        let now = Instant::now();
        let json_due = self.mode == Mode::Json
            && blob
                .last_json
                .is_none_or(|last| now.duration_since(last) >= JSON_EVERY);
        if json_due {
            blob.last_json = Some(now);
        }
        let total = blob.subject.size;
        // A tenth of a large blob gets a line, but no more than one a second: a fast transfer
        // shows only its finished line.
        let quiet_for = state
            .last_line
            .map_or(Duration::MAX, |last| now.duration_since(last));
        let tenth = match total {
            Some(size) if size >= LARGE && self.mode == Mode::Lines && quiet_for >= TENTH_GAP => {
                (done * 10 / size).min(9)
            }
            _ => 0,
        };
        let tenth_line = (tenth > blob.tenth).then(|| {
            blob.tenth = tenth;
            format!(
                "  {} {}0% ({} of {})",
                label(&blob.subject),
                tenth,
                human_size(done),
                human_size(total.unwrap_or(done))
            )
        });
        if json_due {
            self.event(&ProgressEvent::Progress {
                bytes: done,
                id: id.0,
                total,
            });
        }
        self.show_total(state);
        if let Some(message) = tenth_line {
            self.line(state, &message);
        }
        self.periodic_line(state);
    }

    fn on_transfer_complete(&self, id: TransferId) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        let Some(blob) = state.active.remove(&id) else {
            return;
        };
        // Fewer bytes than its size: given up (the command's error says why).
        let verb = if blob.subject.size.is_some_and(|size| blob.done < size) {
            Verb::Failed
        } else {
            verb_of(blob.subject.direction, blob.base > 0)
        };
        self.finished(&mut state, id, &blob, verb, None);
    }

    fn on_transfer_failed(&self, id: TransferId) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        if let Some(blob) = state.active.remove(&id) {
            self.finished(&mut state, id, &blob, Verb::Failed, None);
        }
    }

    fn on_transfer_skipped(&self, subject: &Subject, why: &Skip) {
        let id = self.mint();
        let mut state = self.state();
        if state.closed {
            return;
        }
        state.network |= is_network(subject.direction);
        // A planned blob that needs no transfer leaves the total (once: a later skip of the
        // same digest, after it moved, changes nothing).
        if let Some(digest) = subject.digest
            && state.planned.contains(&digest)
            && state.accounted.insert(digest)
        {
            state.to_move = state.to_move.saturating_sub(subject.size.unwrap_or(0));
            self.show_total(&mut state);
        }
        let (verb, from) = match why {
            Skip::Mounted { from } => (Verb::Mounted, Some(from.as_str())),
            _ => (Verb::AlreadyThere, None),
        };
        let blob = Blob {
            subject: subject.clone(),
            base: 0,
            done: 0,
            bar: None,
            tenth: 0,
            last_json: None,
        };
        self.finished(&mut state, id, &blob, verb, from);
    }
}

#[cfg(test)]
mod tests {
    use super::{Mode, fold, mode};
    use crate::args::Progress;

    #[test]
    fn a_line_above_the_bars_is_folded_never_cut() {
        let line = "      resumed kernel 286.1 MiB 127.0.0.1:35653/ux/big:v1 (128.0 MiB from an earlier run)";
        let folded = fold(line, 79);
        assert!(folded.lines().all(|l| l.chars().count() <= 79), "{folded}");
        assert_eq!(folded.replace('\n', ""), line);
        assert_eq!(fold("short", 79), "short");
    }

    #[test]
    fn auto_draws_bars_only_on_a_quiet_terminal() {
        assert_eq!(mode(Progress::Auto, false, false, true), Mode::Bars);
        assert_eq!(
            mode(Progress::Auto, false, true, true),
            Mode::Lines,
            "no bars under -v: log lines would tear them"
        );
        assert_eq!(
            mode(Progress::Auto, true, false, true),
            Mode::Nothing,
            "nothing under --json"
        );
        assert_eq!(
            mode(Progress::Auto, false, false, false),
            Mode::Lines,
            "lines off a terminal"
        );
        assert_eq!(mode(Progress::Bars, true, true, true), Mode::Bars);
        assert_eq!(mode(Progress::Bars, false, false, false), Mode::Lines);
        assert_eq!(mode(Progress::Plain, false, false, true), Mode::Lines);
        assert_eq!(mode(Progress::Json, true, false, true), Mode::Json);
        assert_eq!(mode(Progress::None, false, false, true), Mode::Nothing);
    }
}
