//! Colour on stderr: the `error:`, `warning:`, `hint:` and `note:` labels in colour when
//! `--color` (or `UKPM_COLOR`) says so, as cargo and uv show them; plain otherwise.
//!
//! `auto` colours only a terminal, and never when `NO_COLOR` is set (no-color.org); `always`
//! and `never` are what they say. The choice is made once, before anything is printed: from
//! the parsed flags, or, for a command line clap refused, from the arguments as given.
//! Only the labels are coloured: the messages after them carry text from outside, escaped,
//! and stay as they are.

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;
use clap::builder::styling::{AnsiColor, Style};

use crate::args::Color;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether stderr gets colour under `choice`.
pub fn wants(choice: Color) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
    }
}

/// Sets the colour of every label printed from now on.
pub fn init(choice: Color) {
    ENABLED.store(wants(choice), Ordering::Relaxed);
}

/// [`init`] from the raw arguments, for a usage error, which is printed before the flags are
/// parsed: see [`choice_in_args`].
pub fn init_from_args(argv: &[OsString]) {
    init(choice_in_args(argv));
}

/// The colour choice of raw arguments: the last `--color X` or `--color=X`, else `UKPM_COLOR`,
/// else `auto`; values that are not a choice are skipped (clap refuses them).
pub fn choice_in_args(argv: &[OsString]) -> Color {
    let mut choice = std::env::var("UKPM_COLOR")
        .ok()
        .and_then(|v| Color::from_str(&v, true).ok())
        .unwrap_or(Color::Auto);
    let mut args = argv.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let value = match arg.strip_prefix("--color") {
            Some("") => args.next().map(|v| v.into_owned()),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        };
        if let Some(parsed) = value.and_then(|v| Color::from_str(&v, true).ok()) {
            choice = parsed;
        }
    }
    choice
}

/// Whether labels are coloured.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A label (`error:`), coloured or plain as [`init`] chose.
pub struct Label {
    text: &'static str,
    style: Style,
}

impl Label {
    /// The label, in colour when `color` is set.
    pub fn paint(&self, color: bool) -> String {
        if color {
            format!(
                "{}{}{}",
                self.style.render(),
                self.text,
                self.style.render_reset()
            )
        } else {
            self.text.to_string()
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.paint(enabled()))
    }
}

/// `error:`, bold red.
pub fn error() -> Label {
    Label {
        text: "error:",
        style: AnsiColor::Red.on_default().bold(),
    }
}

/// `warning:`, bold yellow.
pub fn warning() -> Label {
    Label {
        text: "warning:",
        style: AnsiColor::Yellow.on_default().bold(),
    }
}

/// `hint:`, bold cyan.
pub fn hint() -> Label {
    Label {
        text: "hint:",
        style: AnsiColor::Cyan.on_default().bold(),
    }
}

/// `note:`, bold green.
pub fn note() -> Label {
    Label {
        text: "note:",
        style: AnsiColor::Green.on_default().bold(),
    }
}

/// `tip:` (of a usage error), bold green.
pub fn tip() -> Label {
    Label {
        text: "tip:",
        style: AnsiColor::Green.on_default().bold(),
    }
}

/// `caused by:`, dimmed.
pub fn caused_by() -> Label {
    Label {
        text: "caused by:",
        style: Style::new().dimmed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_color_flag_wins_and_a_value_after_double_dash_is_not_one() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let choice = |list: &[&str]| choice_in_args(&args(list));
        assert_eq!(
            choice(&["ukpm", "--color", "never", "--color=always", "x"]),
            Color::Always
        );
        assert_eq!(
            choice(&["ukpm", "--color=always", "--color", "never"]),
            Color::Never
        );
        assert_eq!(
            choice(&["ukpm", "--color=never", "pack", "--", "--color=always"]),
            Color::Never
        );
        assert_eq!(choice(&["ukpm", "--color", "sometimes"]), choice(&["ukpm"]));
    }

    #[test]
    fn labels_are_painted_only_when_asked() {
        let red = error().paint(true);
        assert!(
            red.starts_with("\x1b[") && red.contains("error:") && red.ends_with("\x1b[0m"),
            "{red:?}"
        );
        assert_eq!(error().paint(false), "error:");
        assert_eq!(hint().paint(false), "hint:");
        assert_eq!(warning().paint(false), "warning:");
    }
}
