//! `ukpm login`: credentials checked against a registry and saved in the docker config.json.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{PackageManager, Secret};

use crate::args::LoginArgs;
use crate::output::{Escaped, JsonPath, Output, escape_path};

/// Where the credentials for a registry were saved (never the credentials themselves).
pub struct LoggedIn {
    registry: String,
    config: PathBuf,
}

/// `ukpm login --json`.
#[derive(Serialize)]
struct LoggedInJson<'a> {
    config: JsonPath<'a>,
    registry: &'a str,
}

impl Output for LoggedIn {
    fn json(&self) -> impl Serialize + '_ {
        LoggedInJson {
            config: JsonPath(&self.config),
            registry: &self.registry,
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "logged in to {} (saved in {})",
            Escaped(&self.registry),
            escape_path(&self.config)
        )
    }
}

/// Reads the password from stdin (there is no password flag: argv is visible to others),
/// checks it against the registry and saves it.
pub async fn run(manager: &PackageManager, args: &LoginArgs) -> Result<LoggedIn> {
    let mut password = String::new();
    io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!(ukpm::Error::InvalidInput(
            "the password read from standard input is empty".into()
        ));
    }
    let config = manager
        .login(&args.registry, &args.username, Secret::new(password))
        .await
        .with_context(|| format!("failed to log in to {}", args.registry))?;
    Ok(LoggedIn {
        registry: args.registry.clone(),
        config,
    })
}
