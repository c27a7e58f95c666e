//! `ukpm completions SHELL`: the shell's completion script, generated from the same clap
//! definitions that parse the command line, so completions never drift from the flags.

use std::io::{self, Write};

use anyhow::Result;
use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};
use crate::output::StdoutClosed;

/// Prints the script on stdout. It is generated into memory first: clap_complete panics on a
/// failed write, and a closed pipe (`| head`) must end the command quietly instead.
pub fn run(args: &CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ukpm", &mut script);
    let mut out = io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(StdoutClosed)?;
    Ok(())
}
