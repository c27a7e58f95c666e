//! How progress bars look: the layout of a bar for a terminal's width (so that no bar ever
//! wraps), its label, its numbers, and the terminal they are drawn on. `report.rs` decides
//! what the bars show; this file, how.

use indicatif::ProgressStyle;
use ukpm::Subject;

use crate::output::human_size;

/// The terminal on stderr, with the cursor sent back to the start of the line after every
/// redraw. indicatif pads every bar line to the terminal's width, leaving the cursor past the
/// last column; the `^C` a terminal echoes on Ctrl-C would then wrap onto a new line, and
/// clearing the bars would miss their first line. At the start of the line, the echo stays
/// on the bars' last line, which the clearing wipes.
#[derive(Debug)]
pub struct Stderr(console::Term);

impl Stderr {
    /// The terminal on stderr.
    pub fn new() -> Stderr {
        Stderr(console::Term::buffered_stderr())
    }
}

impl indicatif::TermLike for Stderr {
    fn width(&self) -> u16 {
        self.0.size_checked().map_or(80, |(_, columns)| columns)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> std::io::Result<()> {
        // indicatif flushes at the end of each redraw, and starts each line it writes with a
        // `\r` of its own: a `\r` here moves nothing it draws.
        self.0.write_str("\r")?;
        self.0.flush()
    }
}

/// The bar of a terminal `width` columns wide: a label for what moves, the bar, and as many
/// of the numbers as fit (`51.5/286.1 MiB`, the rate, the ETA; a percentage when narrow). Every
/// part has a bounded width (`!` cuts), so the line stays narrower than the terminal and never
/// wraps; blob bars and the total bar share one layout, so their bars line up.
pub fn template(width: usize) -> String {
    let (numbers, label, bar) = layout(width);
    format!("  {{prefix:{label}!}} [{{bar:{bar}}}] {numbers}")
}

/// The label's width in [`template`].
pub fn label_width(width: usize) -> usize {
    layout(width).1
}

/// The numbers' template, the label's width and the bar's width for `width` columns.
pub fn layout(width: usize) -> (&'static str, usize, usize) {
    // One column stays free, where the cursor waits between redraws.
    let budget = width.saturating_sub(1);
    let (numbers, numbers_width) = if budget >= 75 {
        ("{sizes:>18!} {rate:>12!} {eta:>4!}", 36)
    } else if budget >= 53 {
        ("{sizes:>18!} {eta:>4!}", 23)
    } else {
        ("{percent:>3}% {eta:>4!}", 9)
    };
    // "  LABEL [BAR] NUMBERS"
    let room = budget.saturating_sub(2 + 2 + 2 + numbers_width);
    let label = (room * 3 / 5).clamp(room.min(8), 40);
    (numbers, label, room - label)
}

/// The style of every bar at `width` columns: [`template`] with its `sizes` and `rate` keys.
pub fn style(width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&template(width))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "sizes",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&sizes(state.pos(), state.len().unwrap_or(0)));
            },
        )
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", human_size(state.per_sec() as u64));
            },
        )
        .progress_chars("=> ")
}

/// `51.5/286.1 MiB`: done and total in the total's unit, at most 18 characters.
pub fn sizes(done: u64, total: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let largest = done.max(total);
    let mut unit = 0;
    while unit + 1 < UNITS.len() && largest >= 1024u64.pow(unit as u32 + 1) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{done}/{total} B");
    }
    let scale = 1024f64.powi(unit as i32);
    format!(
        "{:.1}/{:.1} {}",
        done as f64 / scale,
        total as f64 / scale,
        UNITS[unit]
    )
}

/// What a transfer is, for people: `kernel unikraft.org/nginx:1.25`. Both are ukpm's own
/// words or a parsed reference, so the label needs no escaping as a bar's prefix.
pub fn label(subject: &Subject) -> String {
    format!("{} {}", subject.kind, subject.reference)
}

/// [`label`] in at most `width` characters: the reference loses its start (the registry)
/// first, as `kernel …/nginx:1.25`, since its end tells packages apart.
pub fn label_in(subject: &Subject, width: usize) -> String {
    let full = label(subject);
    if full.chars().count() <= width {
        return full;
    }
    let kind = subject.kind.as_str();
    let keep = width.saturating_sub(kind.len() + 2);
    if keep < 4 {
        return full.chars().take(width).collect();
    }
    let reference = subject.reference.to_string();
    let tail: String = reference
        .chars()
        .skip(reference.chars().count().saturating_sub(keep))
        .collect();
    format!("{kind} …{tail}")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::{ProgressBar, ProgressDrawTarget, TermLike};

    use super::{layout, style, template};

    /// A terminal of a given width that keeps what is written on it, one string per line.
    #[derive(Debug)]
    struct Screen {
        width: u16,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.lines.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.lines.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Bars never wrap: at 40, 80 and 110 columns (and a few odd widths), a blob bar and the
    /// total bar with the widest numbers they can show and a long label render narrower than
    /// the terminal.
    #[test]
    fn bars_fit_narrow_terminals() {
        for width in [30u16, 40, 55, 56, 79, 80, 100, 110, 200] {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let screen = Screen {
                width,
                lines: lines.clone(),
            };
            let widest = 1023 * 1024 * 1024 + 1000 * 1024 * 1024;
            let bar =
                ProgressBar::with_draw_target(Some(widest), ProgressDrawTarget::term_like(Box::new(screen)));
            bar.set_style(style(usize::from(width)));
            bar.set_prefix("kernel-dbg registry.example.com:5000/some/very/long/repository/name:v1.2.3-rc4");
            bar.set_position(widest - 1);
            bar.abandon();
            let lines = lines.lock().unwrap();
            let drawn: Vec<&String> = lines.iter().filter(|l| l.contains('[')).collect();
            assert!(!drawn.is_empty(), "{width}: nothing drawn: {lines:?}");
            for line in drawn {
                let shown = line.chars().count();
                assert!(
                    shown < usize::from(width),
                    "{width} columns: {shown} wide: `{line}` (template {})",
                    template(usize::from(width))
                );
            }
        }
    }

    #[test]
    fn the_template_at_40_columns_fits_in_40() {
        let template = template(40);
        assert_eq!(template, "  {prefix:14!} [{bar:10}] {percent:>3}% {eta:>4!}");
        // Two spaces, the label, ` [`, the bar, `] `, the numbers (`100%  30s`).
        let (numbers, label, bar) = layout(40);
        assert_eq!(numbers, "{percent:>3}% {eta:>4!}");
        assert!(2 + label + 2 + bar + 2 + "100% 30s".len() < 40, "{template}");
    }

    #[test]
    fn labels_lose_the_registry_first() {
        let subject = ukpm::Subject {
            reference: "registry.example.com:5000/apps/nginx:1.25".parse().unwrap(),
            kind: ukpm::BlobKind::Kernel,
            digest: None,
            size: None,
            direction: ukpm::Direction::Download,
        };
        assert_eq!(
            super::label_in(&subject, 60),
            "kernel registry.example.com:5000/apps/nginx:1.25"
        );
        assert_eq!(super::label_in(&subject, 24), "kernel …/apps/nginx:1.25");
        assert_eq!(super::label_in(&subject, 22).chars().count(), 22);
        assert_eq!(super::label_in(&subject, 9), "kernel re");
    }

    #[test]
    fn sizes_share_the_totals_unit() {
        assert_eq!(super::sizes(0, 1000), "0/1000 B");
        assert_eq!(super::sizes(54_000_000, 300_000_000), "51.5/286.1 MiB");
        let widest = super::sizes(1023 * 1024 * 1024 * 1024 - 1, 1023 * 1024 * 1024 * 1024 - 1);
        assert!(widest.len() <= 18, "{widest}");
    }
}
