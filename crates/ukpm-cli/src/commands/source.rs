//! `ukpm source add|rm|ls` (and KraftKit's `src`/`unsrc`): the registries in the config file.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use ukpm::{PackageManager, Sources};

use crate::args::{SourceAddArgs, SourceCommand, SourceRmArgs};
use crate::output::{Escaped, JsonPath, Output};
use crate::settings::config_path;

/// The sources after the command, and what it changed.
pub struct SourcesOut {
    changed: Vec<String>,
    config: PathBuf,
    sources: Vec<String>,
    unchanged: Vec<String>,
    verb: &'static str,
}

/// `{"changed", "config", "sources", "unchanged"}` (docs/json.md).
#[derive(Serialize)]
struct SourcesJson<'a> {
    changed: &'a [String],
    config: JsonPath<'a>,
    sources: &'a [String],
    unchanged: &'a [String],
}

impl Output for SourcesOut {
    fn json(&self) -> impl Serialize + '_ {
        SourcesJson {
            changed: &self.changed,
            config: JsonPath(&self.config),
            sources: &self.sources,
            unchanged: &self.unchanged,
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.verb.is_empty() {
            for source in &self.sources {
                writeln!(out, "{}", Escaped(source))?;
            }
            return Ok(());
        }
        for source in &self.changed {
            writeln!(out, "{} {}", self.verb, Escaped(source))?;
        }
        let stderr = io::stderr();
        let mut notes = stderr.lock();
        for source in &self.unchanged {
            let why = if self.verb == "added" {
                "already a source"
            } else {
                "not a source"
            };
            writeln!(notes, "note: {}: {why}", Escaped(source))?;
        }
        Ok(())
    }
}

fn sources() -> Result<Sources> {
    let path = config_path().ok_or_else(|| {
        anyhow!(ukpm::Error::InvalidInput(
            "cannot find the config file: set UKPM_CONFIG, XDG_CONFIG_HOME or HOME".into()
        ))
    })?;
    Ok(Sources::at(path))
}

fn out(
    sources: &Sources,
    verb: &'static str,
    changed: Vec<String>,
    unchanged: Vec<String>,
) -> Result<SourcesOut> {
    Ok(SourcesOut {
        changed,
        config: sources.path().to_path_buf(),
        sources: sources.list()?,
        unchanged,
        verb,
    })
}

/// `ukpm source ...`.
pub async fn run(manager: &PackageManager, command: &SourceCommand) -> Result<SourcesOut> {
    match command {
        SourceCommand::Add(args) => add(manager, args).await,
        SourceCommand::Rm(args) => rm(args),
        SourceCommand::Ls => {
            let sources = sources()?;
            out(&sources, "", Vec::new(), Vec::new())
        }
    }
}

/// `ukpm source add` / `src`: each source checked unless `--force`; one already there is a
/// note, not an error (as KraftKit warns and goes on).
pub async fn add(manager: &PackageManager, args: &SourceAddArgs) -> Result<SourcesOut> {
    let sources = sources()?;
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for source in &args.sources {
        let name = ukpm::normalize_source(source)?;
        if !args.force {
            manager.check_source(&name).await.with_context(|| {
                format!("{name} does not answer as a registry (add it anyway with --force)")
            })?;
        }
        let config = sources.path().display().to_string();
        if sources
            .add(&name)
            .with_context(|| format!("failed to update {config}"))?
        {
            changed.push(name);
        } else {
            unchanged.push(name);
        }
    }
    out(&sources, "added", changed, unchanged)
}

/// `ukpm source rm` / `unsrc`: one that is not there is a note, not an error.
pub fn rm(args: &SourceRmArgs) -> Result<SourcesOut> {
    let sources = sources()?;
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for source in &args.sources {
        let config = sources.path().display().to_string();
        if sources
            .remove(source)
            .with_context(|| format!("failed to update {config}"))?
        {
            changed.push(source.clone());
        } else {
            unchanged.push(source.clone());
        }
    }
    out(&sources, "removed", changed, unchanged)
}
