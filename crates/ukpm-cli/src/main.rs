//! The `ukpm` binary: parse, call the library, print.
//!
//! Only this crate prints. stdout carries results (one JSON document under `--json`, errors
//! included); stderr carries messages for people. Exit codes: 0 success, 1 failure, 2 usage,
//! 130 interrupted; a closed stdout (`ukpm ls | head`) exits 0.

mod args;
mod commands;
mod output;
mod report;
mod settings;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Color};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = argv.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => return usage_error(err, json),
    };
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return report_error(
                &anyhow::Error::new(err).context("failed to start"),
                cli.global.json,
            );
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(&cli) => result.map(|()| ExitCode::SUCCESS),
            _ = tokio::signal::ctrl_c() => Ok(ExitCode::from(130)),
        }
    });
    // Interrupted work still on the blocking pool (hashing a large file) is not waited for:
    // nothing becomes visible before its final rename, so stopping it loses nothing.
    runtime.shutdown_timeout(std::time::Duration::from_millis(50));
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<Findings>() => ExitCode::FAILURE,
        Err(err) => report_error(&err, cli.global.json),
    }
}

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

fn usage_error(err: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    if json {
        let message = err.kind().as_str().unwrap_or("invalid usage").to_string();
        let detail = err.render().to_string();
        let doc =
            serde_json::json!({"error": {"code": "usage", "message": message, "causes": [detail.trim()]}});
        let _ = writeln!(io::stdout(), "{doc}");
    } else {
        let _ = err.print();
    }
    ExitCode::from(2)
}

fn init_logging(global: &args::Global) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("UKPM_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "ukpm={level},ukpm_store={level},ukpm_types={level},ukpm_cli={level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(use_color(global.color))
        .with_target(false)
        .without_time()
        .try_init();
}

/// Whether stderr gets colour.
pub fn use_color(color: Color) -> bool {
    use std::io::IsTerminal;
    match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && io::stderr().is_terminal(),
    }
}

/// Whether the error is stdout going away (`ukpm ls | head`), which exits 0; a broken pipe on
/// a socket is a real failure and is reported.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<output::StdoutClosed>()
        .is_some_and(|closed| closed.0.kind() == io::ErrorKind::BrokenPipe)
}

/// Prints an error: `error:` and `caused by:` lines on stderr, or one JSON document on stdout.
fn report_error(err: &anyhow::Error, json: bool) -> ExitCode {
    let library = err.chain().find_map(|cause| cause.downcast_ref::<ukpm::Error>());
    let code = library.map_or("error", |e| e.kind().as_str());
    let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
    if json {
        let doc = serde_json::json!({"error": {"code": code, "message": err.to_string(), "causes": causes}});
        let _ = writeln!(io::stdout(), "{doc}");
    } else {
        let stderr = io::stderr();
        let mut out = stderr.lock();
        let _ = writeln!(out, "error: {err}");
        for cause in &causes {
            let _ = writeln!(out, "  caused by: {cause}");
        }
        if let Some(hint) = library.and_then(hint) {
            let _ = writeln!(out, "hint: {hint}");
        }
    }
    ExitCode::FAILURE
}

fn hint(err: &ukpm::Error) -> Option<&'static str> {
    use ukpm::{ErrorKind as K, Origin as O};
    match (err.origin(), err.kind()) {
        (O::Containerd, K::Network) => Some(
            "is containerd running? --containerd (or CONTAINERD_ADDRESS) takes its socket, e.g. /run/containerd/containerd.sock",
        ),
        (O::Containerd, K::Unauthorized) => {
            Some("the containerd socket is root's: run as root or a user in its group")
        }
        (O::Containerd, K::NotFound) => Some(
            "`ctr namespaces ls` lists containerd's namespaces; a pack or pull into a new one creates it",
        ),
        (_, K::NotFound) => Some("`ukpm ls` lists what the store holds"),
        (_, K::Integrity) => {
            Some("the store holds damaged content; remove the package and pack or pull it again")
        }
        (_, K::Conflict) => Some("use --strategy merge to replace that platform's manifest"),
        (_, K::Unauthorized) => Some(
            "credentials come from the docker config.json ($DOCKER_CONFIG or ~/.docker); run `ukpm login HOST`",
        ),
        (_, K::Network) => {
            Some("check the registry's address; loopback hosts and --plain-http hosts use plain HTTP")
        }
        _ => None,
    }
}
