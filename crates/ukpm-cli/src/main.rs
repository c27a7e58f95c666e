//! The `ukpm` binary: parse, call the library, print.
//!
//! Only this crate prints. stdout carries results (one JSON document under `--json`, errors
//! included); stderr carries messages for people. Exit codes: 0 success, 1 failure, 2 usage,
//! 130 interrupted; a closed stdout (`ukpm ls | head`) exits 0.
//!
//! `args` is the command line, `settings` adds the config file, `commands` has one module
//! per command, `output` prints their results, `report` shows progress and `error` ends a
//! failed command.

mod args;
mod commands;
mod error;
mod output;
mod report;
mod settings;
mod style;

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::Cli;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = argv.iter().any(|a| a == "--json");
    // `--color` (or UKPM_COLOR) decides clap's help and usage colours too, before parsing.
    let command = Cli::command().color(match style::choice_in_args(&argv) {
        args::Color::Always => clap::ColorChoice::Always,
        args::Color::Never => clap::ColorChoice::Never,
        args::Color::Auto => clap::ColorChoice::Auto,
    });
    let parsed = command
        .try_get_matches_from(&argv)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed.and_then(|cli| cli.check().map(|()| cli)) {
        Ok(cli) => cli,
        Err(err) => return error::usage(&err, json, &argv),
    };
    style::init(cli.global.color);
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = anyhow::Error::new(err).context("failed to start");
            return error::exit(Err(err), cli.global.json, cli.command.name(), &argv);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(&cli) => result.map(|()| ExitCode::SUCCESS),
            _ = tokio::signal::ctrl_c() => {
                // The bars go, and the user learns whether the same command resumes.
                report::interrupted();
                Ok(ExitCode::from(130))
            }
        }
    });
    match &result {
        Ok(code) if *code == ExitCode::SUCCESS => report::finish(),
        _ => report::abandon(),
    }
    // Interrupted work still on the blocking pool (hashing a large file) is not waited for:
    // nothing becomes visible before its final rename, so stopping it loses nothing.
    runtime.shutdown_timeout(std::time::Duration::from_millis(50));
    error::exit(result, cli.global.json, cli.command.name(), &argv)
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
            "ukpm={level},ukpm_store={level},ukpm_types={level},ukpm_archive={level},ukpm_registry={level},ukpm_containerd={level},ukpm_cli={level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(style::wants(global.color))
        .with_target(false)
        .without_time()
        .try_init();
}

/// stderr for log lines, each escaped by [`output::escape_log`] (tracing leaves a carriage
/// return or a bidi override in a logged name as it is). tracing writes a whole line at once.
struct LogWriter;

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr()
            .lock()
            .write_all(output::escape_log(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
