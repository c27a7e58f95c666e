//! How a failed command ends: the error printed for people (`error:`, `caused by:`, `hint:`
//! on stderr) or as one JSON document on stdout, and the exit code.
//!
//! An error's messages carry text from outside (a registry's error message, a file name from a
//! layer, a name from a foreign store): they are escaped here, when printed for people, so no
//! control character reaches the terminal; the JSON document keeps them exact.

use std::io::{self, Write};
use std::process::ExitCode;

use serde::Serialize;

use crate::output::{StdoutClosed, escape, write_json};

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

/// Ends a command: its exit code, after printing its error if it failed.
pub fn exit(result: anyhow::Result<ExitCode>, json: bool, command: &str) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<Findings>() => ExitCode::FAILURE,
        Err(err) => report(&err, json, command),
    }
}

/// A command line clap refused (exit 2), or `--help` and `--version` (exit 0).
pub fn usage(err: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    if json {
        let message = err.kind().as_str().unwrap_or("invalid usage");
        let detail = err.render().to_string();
        print_error_document("usage", message, &[detail.trim().to_string()]);
    } else {
        // clap quotes the argument it refused, which may be anything a script passed on: when
        // it holds something to escape, the message is printed plain and escaped line by line
        // (clap's colours would be escaped too), else as clap styles it.
        let plain = err.render().to_string();
        if plain.lines().any(|line| escape(line) != line) {
            let mut out = io::stderr().lock();
            for line in plain.lines() {
                let _ = writeln!(out, "{}", escape(line));
            }
        } else {
            let _ = err.print();
        }
    }
    ExitCode::from(2)
}

/// Whether the error is stdout going away (`ukpm ls | head`), which exits 0; a broken pipe on
/// a socket is a real failure and is reported.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<StdoutClosed>()
        .is_some_and(|closed| closed.0.kind() == io::ErrorKind::BrokenPipe)
}

/// Prints an error: `error:` and `caused by:` lines on stderr, or one JSON document on stdout.
pub fn report(err: &anyhow::Error, json: bool, command: &str) -> ExitCode {
    let library = err.chain().find_map(|cause| cause.downcast_ref::<ukpm::Error>());
    let code = library.map_or("error", |e| e.kind().as_str());
    let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
    if json {
        print_error_document(code, &err.to_string(), &causes);
    } else {
        let hint = library.and_then(|e| hint(e, command));
        let _ = write_human(&mut io::stderr().lock(), err, &causes, hint);
    }
    ExitCode::FAILURE
}

/// The `error:`, `caused by:` and `hint:` lines, every message escaped.
fn write_human(
    out: &mut dyn Write,
    err: &anyhow::Error,
    causes: &[String],
    hint: Option<&str>,
) -> io::Result<()> {
    writeln!(out, "error: {}", escape(&err.to_string()))?;
    for cause in causes {
        writeln!(out, "  caused by: {}", escape(cause))?;
    }
    if let Some(hint) = hint {
        writeln!(out, "hint: {hint}")?;
    }
    Ok(())
}

/// What to do next, from the error's kind and where it came from (the local store, a
/// registry, containerd); never the command that just failed.
fn hint(err: &ukpm::Error, command: &str) -> Option<&'static str> {
    use ukpm::{ErrorKind as K, Origin as O};
    match (err.origin(), err.kind()) {
        (O::Containerd, K::Network) => Some(
            "is containerd running? --containerd (or CONTAINERD_ADDRESS) takes its socket, e.g. /run/containerd/containerd.sock",
        ),
        (O::Containerd, K::Unauthorized) => {
            Some("the containerd socket is root's: run as root or a user in its group")
        }
        (O::Containerd, K::NotFound) if matches!(err, ukpm::Error::Namespace { .. }) => Some(
            "`ctr namespaces ls` lists containerd's namespaces; a pack or pull into a new one creates it",
        ),
        (O::Containerd, K::Integrity) => Some(
            "containerd holds damaged content: `ctr content rm` the blob, then pack or pull the package again",
        ),
        (_, K::NotFound) if matches!(err, ukpm::Error::NoPlatform { .. }) && command == "inspect" => Some(
            "choose one of the platforms it has with --plat PLAT/ARCH, or leave the filter out to see them all",
        ),
        (_, K::NotFound) if matches!(err, ukpm::Error::NoPlatform { .. }) => Some(
            "choose one of the platforms it has with --plat PLAT/ARCH, or take them all with --all-platforms",
        ),
        (O::Registry, K::NotFound) => Some(
            "the registry has no such repository, tag or digest; short names are tried against --registry (UKPM_REGISTRIES)",
        ),
        (O::Registry, K::Integrity | K::Protocol) => Some(
            "the registry sent something other than it promised; nothing of it was stored: try again, and tell the registry's operator if it persists",
        ),
        (O::Registry, K::Unauthorized) if command == "login" => {
            Some("check the username and the password or token for that registry")
        }
        (_, K::Unauthorized) => Some(
            "credentials come from the KraftCloud token variables, KraftKit's config.yaml, the docker config.json ($DOCKER_CONFIG or ~/.docker) and Podman's auth.json, in that order; run `ukpm login HOST`",
        ),
        (O::Registry, K::Network) if matches!(err, ukpm::Error::Registry(e) if e.is_stall()) => Some(
            "the registry stalled; --timeout and --min-rate (or UKPM_TIMEOUT, UKPM_MIN_RATE) set how long ukpm waits",
        ),
        (O::Registry, K::Network) => {
            Some("check the registry's address; loopback hosts and --plain-http hosts use plain HTTP")
        }
        (_, K::NotFound) if command != "ls" => Some("`ukpm ls` lists what the store holds"),
        (_, K::Integrity) if command != "fsck" => {
            Some("the store holds damaged content; `ukpm fsck --repair` fetches it again from its registry")
        }
        (_, K::Integrity) => Some("remove the damaged package with `ukpm rm` and pack or pull it again"),
        (_, K::Conflict) if matches!(err, ukpm::Error::Contended { .. }) => {
            Some("another process kept changing the same name; run the command again when it is done")
        }
        (_, K::Conflict) => Some("use --strategy merge to replace that platform's manifest"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_kind_and_origin_and_never_repeat_the_command() {
        let reference: ukpm::Reference = "unikraft.org/nginx:1.25".parse().unwrap();
        let local = ukpm::Error::NotFound {
            reference: reference.clone(),
        };
        assert_eq!(
            hint(&local, "unpack"),
            Some("`ukpm ls` lists what the store holds")
        );
        assert_eq!(hint(&local, "ls"), None);
        let remote = ukpm::Error::Registry(ukpm::registry::RegistryError::Status {
            registry: "unikraft.org".into(),
            what: "manifest nginx:1.25".into(),
            status: 404,
            codes: Vec::new(),
            message: None,
        });
        assert!(
            hint(&remote, "pull")
                .unwrap()
                .starts_with("the registry has no such")
        );
        let digest = ukpm::Digest::of(b"kernel");
        let damaged = ukpm::Error::Store(ukpm::StoreError::Corrupt {
            digest,
            actual: ukpm::Digest::of(b"other"),
        });
        assert!(hint(&damaged, "unpack").unwrap().contains("ukpm fsck --repair"));
        assert!(!hint(&damaged, "fsck").unwrap().contains("fsck"));
        let lying = ukpm::Error::RegistryProtocol {
            reference: reference.clone(),
            message: "served a blob whole".into(),
        };
        assert!(!hint(&lying, "pull").unwrap().contains("damaged"));
        let refused = ukpm::Error::Registry(ukpm::registry::RegistryError::Unauthorized {
            registry: "unikraft.org".into(),
            what: "nginx".into(),
            reason: "the credentials given".into(),
        });
        assert!(hint(&refused, "pull").unwrap().contains("ukpm login"));
        assert!(!hint(&refused, "login").unwrap().contains("ukpm login"));
        let contended = ukpm::Error::Contended { reference };
        assert!(hint(&contended, "pack").unwrap().contains("again"));
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
