//! `ukpm logout`: saved credentials for a registry removed.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::PackageManager;

use crate::args::LogoutArgs;
use crate::output::{Escaped, Output};

/// Whether a saved login was removed; it is its own `--json` document.
#[derive(Serialize)]
pub struct LoggedOut {
    registry: String,
    removed: bool,
}

impl Output for LoggedOut {
    fn json(&self) -> impl Serialize + '_ {
        self
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.removed {
            writeln!(out, "logged out of {}", Escaped(&self.registry))
        } else {
            writeln!(out, "no saved login for {}", Escaped(&self.registry))
        }
    }
}

/// Removes the registry's saved credentials, if any.
pub async fn run(manager: &PackageManager, args: &LogoutArgs) -> Result<LoggedOut> {
    let removed = manager
        .logout(&args.registry)
        .await
        .with_context(|| format!("failed to log out of {}", args.registry))?;
    Ok(LoggedOut {
        registry: args.registry.clone(),
        removed,
    })
}
