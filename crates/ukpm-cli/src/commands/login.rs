//! `ukpm login`: credentials checked against a registry and saved in the docker config.json.
//!
//! The password comes from standard input (`--password-stdin`), from `-t` (KraftKit's flag:
//! accepted, with a warning, since argv is visible to every user), from `KRAFTKIT_LOGIN_TOKEN`
//! (with `KRAFTKIT_LOGIN_USER`, as `kraft login` reads them), or from a prompt without echo when
//! standard input is a terminal.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde::Serialize;
use ukpm::{PackageManager, Secret};

use crate::args::LoginArgs;
use crate::error::Interrupted;
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

/// Gets the user name and password (see the module's description), checks them against the
/// registry and saves them.
pub async fn run(manager: &PackageManager, args: &LoginArgs) -> Result<LoggedIn> {
    let (username, password) = credentials(args)?;
    let config = manager
        .login(&args.registry, &username, password)
        .await
        .with_context(|| format!("failed to log in to {}", args.registry))?;
    // A KraftCloud variable or a `kraft login` entry for the same host comes first: say so, or
    // the next pull would use other credentials than the ones just checked.
    if let Ok(origin) = manager.credential_origin(&args.registry)
        && !origin.contains(&config.display().to_string())
    {
        let _ = writeln!(
            io::stderr(),
            "{} {} takes precedence for {} over the login saved in {}",
            crate::style::warning(),
            Escaped(&origin),
            Escaped(&args.registry),
            escape_path(&config)
        );
    }
    Ok(LoggedIn {
        registry: args.registry.clone(),
        config,
    })
}

/// The user name and the password, from the flags, standard input or the terminal.
fn credentials(args: &LoginArgs) -> Result<(String, Secret)> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    // kraft login's variables: the environment is not visible to other users, so no warning.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let given_user = args.username.clone().or_else(|| env("KRAFTKIT_LOGIN_USER"));
    let env_token = env("KRAFTKIT_LOGIN_TOKEN").filter(|_| args.token.is_none());
    let (mut username, password) = if args.password_stdin && interactive {
        // Standard input is the terminal: what is typed there is not echoed either.
        (given_user, hidden(rpassword::read_password())?)
    } else if args.password_stdin {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        (given_user, line.trim_end_matches(['\n', '\r']).to_string())
    } else if let Some(token) = &args.token {
        let _ = writeln!(
            io::stderr(),
            "{} a token given with -t/--token is visible to other users (ps, shell history); \
             use --password-stdin instead",
            crate::style::warning()
        );
        split_kraftkit_token(given_user.as_deref(), token)?
    } else if let Some(token) = env_token {
        split_kraftkit_token(given_user.as_deref(), &token)?
    } else if interactive {
        let username = match given_user {
            Some(u) => u,
            None => prompt_line("Username: ")?,
        };
        let password = hidden(rpassword::prompt_password("Password: "))?;
        (Some(username), password)
    } else {
        bail!(ukpm::Error::InvalidInput(
            "no password: give --password-stdin (or -t TOKEN), or run on a terminal to be asked".into()
        ));
    };
    if password.is_empty() {
        bail!(ukpm::Error::InvalidInput("the password is empty".into()));
    }
    if username.as_deref().is_none_or(str::is_empty) && interactive && !args.password_stdin {
        username = Some(prompt_line("Username: ")?);
    }
    let Some(username) = username.filter(|u| !u.is_empty()) else {
        bail!(ukpm::Error::InvalidInput(
            "no user name: give -u/--username".into()
        ));
    };
    Ok((username, Secret::new(password)))
}

/// A password read from the terminal without echo; Ctrl-C there ends the command as an
/// interruption (exit 130), not as a failure to read.
fn hidden(read: io::Result<String>) -> Result<String> {
    match read {
        Ok(password) => Ok(password),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(Interrupted.into()),
        Err(err) => Err(anyhow::Error::new(err).context("cannot read the password from the terminal")),
    }
}

/// `kraft login -t`: a token that is base64 of `user:token` carries the user name too (and then
/// `-u` is refused, as KraftKit refuses it).
fn split_kraftkit_token(username: Option<&str>, token: &str) -> Result<(Option<String>, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    if let Some((user, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
        if username.is_some() {
            bail!(crate::error::UsageError(
                "-u/--username cannot be given with a -t/--token that holds a base64 user:token".into()
            ));
        }
        return Ok((Some(user.to_string()), secret.to_string()));
    }
    Ok((username.map(str::to_string), token.to_string()))
}

/// Asks for one line on the terminal (echoed: a user name is no secret).
fn prompt_line(prompt: &str) -> Result<String> {
    let mut err = io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
