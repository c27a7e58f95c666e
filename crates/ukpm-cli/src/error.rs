//! How a failed command ends: the error printed for people (`error:`, `caused by:`, `hint:`
//! on stderr) or as one JSON document on stdout, and the exit code.
//!
//! An error's messages carry text from outside (a registry's error message, a file name from a
//! layer, a name from a foreign store): they are escaped here, when printed for people, so no
//! control character reaches the terminal; the JSON document keeps them exact.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use serde::Serialize;

use crate::output::{StdoutClosed, escape, write_json};
use crate::style;

mod hint;

use hint::{clues, hint};
pub use hint::{look_for_similar_names, note_implied_platform};

/// A command that ran and printed its result, but whose result means failure (fsck found
/// problems): exit 1 without an error message of its own.
#[derive(Debug)]
pub struct Findings;

impl std::fmt::Display for Findings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("problems found")
    }
}

impl std::error::Error for Findings {}

/// The `--json` document of any failure (docs/json.md, "Errors").
#[derive(Serialize)]
struct ErrorDocument<'a> {
    error: ErrorBody<'a>,
}

/// The body of an [`ErrorDocument`].
#[derive(Serialize)]
struct ErrorBody<'a> {
    causes: &'a [String],
    code: &'a str,
    message: &'a str,
}

fn print_error_document(code: &str, message: &str, causes: &[String]) {
    let document = ErrorDocument {
        error: ErrorBody {
            causes,
            code,
            message,
        },
    };
    let _ = write_json(&mut io::stdout().lock(), &document);
}

/// A value on the command line that clap took but ukpm refused once it looked closer (a
/// `--created` that is no time, a `--label` without `=`): a usage error, exit 2, as clap's
/// own are. The message names the flag and the value.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The user pressed Ctrl-C where ukpm was reading from the terminal (a password prompt, whose
/// read is not restarted after the signal): exit 130 without an error, as an interruption
/// anywhere else ends.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Ends a command: its exit code, after printing its error if it failed.
pub fn exit(result: anyhow::Result<ExitCode>, json: bool, command: &str, argv: &[OsString]) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<Findings>() => ExitCode::FAILURE,
        Err(err) if err.is::<Interrupted>() => {
            // The prompt's line was left open (the ^C was not echoed): end it.
            let _ = writeln!(io::stderr());
            ExitCode::from(130)
        }
        Err(err) => {
            report(&err, json, command);
            if is_usage(&err, argv) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether a failure is the command line's: a [`UsageError`], or a reference, architecture or
/// platform ukpm cannot use that is one of the arguments as typed (alone, after `--flag=`, or
/// a part of `PLAT/ARCH`). The same value read from a Kraftfile or a store is a failure (1).
fn is_usage(err: &anyhow::Error, argv: &[OsString]) -> bool {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        return true;
    }
    let Some(value) = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ukpm::Error>())
        .and_then(refused_value)
    else {
        return false;
    };
    argv.iter().skip(1).filter_map(|arg| arg.to_str()).any(|arg| {
        let arg = match arg.split_once('=') {
            Some((flag, v)) if flag.starts_with("--") => v,
            _ => arg,
        };
        arg == value || arg.split('/').any(|part| part == value)
    })
}

/// The value a parse refused: the reference's text, the architecture's or platform's name.
fn refused_value(err: &ukpm::Error) -> Option<&str> {
    use ukpm::types::{PlatformError as P, ReferenceError as R};
    match err {
        ukpm::Error::Reference(reference) => match reference {
            R::Empty => Some(""),
            R::Registry { reference, .. }
            | R::Repository { reference, .. }
            | R::TooLong { reference, .. }
            | R::Identifier { reference }
            | R::Tag { reference, .. }
            | R::Digest { reference, .. } => Some(reference),
            _ => None,
        },
        ukpm::Error::Platform(P::UnknownArchitecture(name) | P::UnknownPlatform(name)) => Some(name),
        _ => None,
    }
}

/// A command line clap refused (exit 2), or `--help` and `--version` (exit 0).
pub fn usage(err: &clap::Error, json: bool, argv: &[OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let tip = usage_tip(err, argv);
    if json {
        let message = err.kind().as_str().unwrap_or("invalid usage");
        let mut detail = crate::args::plain_message(err).trim().to_string();
        if let Some(tip) = &tip {
            detail.push_str(&format!("\n\n  tip: {tip}"));
        }
        print_error_document("usage", message, &[detail]);
    } else {
        // clap quotes the argument it refused, which may be anything a script passed on: its
        // message is printed plain and escaped line by line, with ukpm's own colours on the
        // labels, so neither clap's styling nor the argument can put a control character on
        // the terminal.
        style::init_from_args(argv);
        let _ = write_usage(
            &mut io::stderr().lock(),
            &crate::args::plain_message(err),
            tip.as_deref(),
        );
    }
    ExitCode::from(2)
}

/// clap's message, escaped, `error:` and `tip:` coloured, with ukpm's own tip before the
/// usage line.
fn write_usage(out: &mut dyn Write, plain: &str, tip: Option<&str>) -> io::Result<()> {
    let mut tip = tip;
    for line in plain.lines() {
        if line.starts_with("Usage:")
            && let Some(text) = tip.take()
        {
            writeln!(out, "  {} {}\n", style::tip(), escape(text))?;
        }
        let line = escape(line);
        if let Some(rest) = line.strip_prefix("error:") {
            writeln!(out, "{}{rest}", style::error())?;
        } else if let Some(rest) = line.strip_prefix("  tip:") {
            writeln!(out, "  {}{rest}", style::tip())?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    if let Some(text) = tip {
        writeln!(out, "  {} {}", style::tip(), escape(text))?;
    }
    Ok(())
}

/// ukpm's own tip for a refused command line: `push SRC DST` is `push SRC --to DST`.
fn usage_tip(err: &clap::Error, argv: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(extra)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let pushing = argv
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| !a.starts_with('-'))
        .is_some_and(|command| command == "push" || command == "ph");
    // The package is the positional before the extra one, when that is what precedes it.
    let args: Vec<&str> = argv.iter().filter_map(|a| a.to_str()).collect();
    let source = args
        .iter()
        .position(|a| a == extra)
        .and_then(|i| i.checked_sub(1))
        .map(|i| args[i])
        .filter(|a| !a.starts_with('-') && *a != "push" && *a != "ph")
        .unwrap_or("SRC");
    (pushing && !extra.starts_with('-')).then(|| {
        format!("push takes one package; to push it under another name, give that with --to: `ukpm push {source} --to {extra}`")
    })
}

/// Whether the error is stdout going away (`ukpm ls | head`), which exits 0; a broken pipe on
/// a socket is a real failure and is reported.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<StdoutClosed>()
        .is_some_and(|closed| closed.0.kind() == io::ErrorKind::BrokenPipe)
}

/// Prints an error: `error:` and `caused by:` lines on stderr, or one JSON document on stdout.
pub fn report(err: &anyhow::Error, json: bool, command: &str) {
    let library = err.chain().find_map(|cause| cause.downcast_ref::<ukpm::Error>());
    let code = match library {
        Some(e) => e.kind().as_str(),
        None if err.chain().any(|c| c.is::<UsageError>()) => ukpm::ErrorKind::InvalidInput.as_str(),
        None => "error",
    };
    let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
    if json {
        print_error_document(code, &err.to_string(), &causes);
    } else {
        let hint = library.and_then(|e| hint(e, command, &clues()));
        let _ = write_human(&mut io::stderr().lock(), err, &causes, hint.as_deref());
    }
}

/// The `error:`, `caused by:` and `hint:` lines, every message escaped (a hint names stored
/// names and hosts, which are text from outside too).
fn write_human(
    out: &mut dyn Write,
    err: &anyhow::Error,
    causes: &[String],
    hint: Option<&str>,
) -> io::Result<()> {
    writeln!(out, "{} {}", style::error(), escape(&err.to_string()))?;
    for cause in causes {
        writeln!(out, "  {} {}", style::caused_by(), escape(cause))?;
    }
    if let Some(hint) = hint {
        writeln!(out, "{} {}", style::hint(), escape(hint))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_typed_on_the_command_line_are_usage_errors() {
        let argv = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let arch = || {
            anyhow::Error::new(ukpm::Error::Platform(
                ukpm::types::PlatformError::UnknownArchitecture("mips".into()),
            ))
        };
        assert!(is_usage(&arch(), &argv(&["ukpm", "pack", "x", "--arch", "mips"])));
        assert!(is_usage(&arch(), &argv(&["ukpm", "pack", "x", "--arch=mips"])));
        assert!(is_usage(
            &arch(),
            &argv(&["ukpm", "pull", "x", "--plat", "qemu/mips"])
        ));
        // The same value from a Kraftfile is the file's failure.
        assert!(!is_usage(&arch(), &argv(&["ukpm", "pack", "x", "./project"])));
        let reference = "Bad Ref".parse::<ukpm::Reference>().unwrap_err();
        let reference =
            anyhow::Error::new(ukpm::Error::Reference(reference)).context("failed to pull Bad Ref");
        assert!(is_usage(&reference, &argv(&["ukpm", "pull", "Bad Ref"])));
        let created = anyhow::Error::new(UsageError("--created `x` is not a time".into()));
        assert!(is_usage(&created, &argv(&["ukpm"])));
    }

    #[test]
    fn push_with_two_names_points_at_to() {
        use clap::CommandFactory;
        let argv = argv_of(&["ukpm", "push", "hello:1", "127.0.0.1:5000/hello:1"]);
        let err = crate::args::Cli::command()
            .try_get_matches_from(&argv)
            .unwrap_err();
        let tip = usage_tip(&err, &argv).unwrap();
        assert!(tip.contains("--to 127.0.0.1:5000/hello:1"), "{tip}");
        let mut out = Vec::new();
        write_usage(&mut out, &err.render().to_string(), Some(&tip)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let tip_at = text.find("tip: push takes one package").unwrap();
        assert!(tip_at < text.find("Usage:").unwrap(), "{text}");
        let flag = argv_of(&["ukpm", "push", "hello:1", "--tio", "x"]);
        let err = crate::args::Cli::command()
            .try_get_matches_from(&flag)
            .unwrap_err();
        assert_eq!(usage_tip(&err, &flag), None);
    }

    fn argv_of(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn messages_from_outside_are_escaped_for_people_and_exact_in_json() {
        let registry = ukpm::Error::Registry(ukpm::registry::RegistryError::Status {
            registry: "evil.example".into(),
            what: "manifest x:1".into(),
            status: 500,
            codes: Vec::new(),
            message: Some("\x1b]0;pwned\x07 line\rover \u{202e}txt".into()),
        });
        let err = anyhow::Error::new(registry).context("failed to pull x\x1b[2J");
        let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
        let mut out = Vec::new();
        write_human(&mut out, &err, &causes, Some("a hint")).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("error: failed to pull x\\x1b[2J\n"), "{text}");
        assert!(
            text.contains("\\x1b]0;pwned\\x07 line\\rover \\u{202e}txt"),
            "{text}"
        );
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
            "{text:?}"
        );
        // The JSON document holds the message exactly; JSON escapes it.
        let document = ErrorDocument {
            error: ErrorBody {
                causes: &causes,
                code: "error",
                message: "m",
            },
        };
        let json = serde_json::to_string(&document).unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(
            back["error"]["causes"][0]
                .as_str()
                .unwrap()
                .contains("\x1b]0;pwned\x07 line\rover \u{202e}txt")
        );
        assert!(!json.contains('\x1b'));
    }

    #[test]
    fn the_error_document_keeps_its_shape() {
        let causes = ["x is not in the store".to_string()];
        let document = ErrorDocument {
            error: ErrorBody {
                causes: &causes,
                code: "not_found",
                message: "failed to unpack x",
            },
        };
        assert_eq!(
            serde_json::to_string(&document).unwrap(),
            r#"{"error":{"causes":["x is not in the store"],"code":"not_found","message":"failed to unpack x"}}"#
        );
    }
}
