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

use std::io;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Color};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = argv.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&argv).and_then(|cli| cli.check().map(|()| cli)) {
        Ok(cli) => cli,
        Err(err) => return error::usage(&err, json),
    };
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return error::report(
                &anyhow::Error::new(err).context("failed to start"),
                cli.global.json,
                cli.command.name(),
            );
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
    error::exit(result, cli.global.json, cli.command.name())
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
