//! `ukpm pack`: a built kernel (and initrd) becomes a package in the store, and with
//! `--push` goes to its registry too.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{ErrorKind, MergeStrategy, PackOptions, Package, PackageManager, Reference, Target};

use super::push::{Pushed, PushedJson, push};
use super::{architecture, plat};
use crate::args::{PackArgs, Strategy, plat_arch};
use crate::output::{Escaped, Output, PackageJson, escape};

/// What a pack made, and what `--push` sent.
pub struct Packed {
    package: Package,
    /// `name@digest` of what the name now points at (the index, or the lone manifest).
    pinned: String,
    pushed: Option<Pushed>,
}

/// `ukpm pack --json`; `"pushed"` (the `push --json` document) only with `--push`.
#[derive(Serialize)]
struct PackedJson<'a> {
    package: PackageJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pushed: Option<PushedJson>,
}

impl Output for Packed {
    fn json(&self) -> impl Serialize + '_ {
        PackedJson {
            package: PackageJson::from(&self.package),
            pushed: self.pushed.as_ref().map(Pushed::document),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", Escaped(&self.pinned))?;
        match &self.pushed {
            Some(pushed) => pushed.human(out),
            None => Ok(()),
        }
    }
}

/// Packs the target the arguments describe under their name, then pushes it with `--push`.
pub async fn run(manager: &PackageManager, args: &PackArgs) -> Result<Packed> {
    // clap let through exactly one of NAME and --name.
    let name = args
        .name
        .as_deref()
        .or(args.name_flag.as_deref())
        .unwrap_or_default();
    let reference = manager.parse_name(name)?;
    let (plat_text, arch_text) =
        plat_arch(Some(&args.plat), args.arch.as_deref()).map_err(ukpm::Error::InvalidInput)?;
    let arch_text = arch_text.unwrap_or_default();
    let mut target = Target::new(
        &args.kernel,
        architecture(arch_text)?,
        plat(plat_text.unwrap_or_default())?,
    );
    target.kernel_dbg = match args.dbg {
        true => Some(debug_kernel(&args.kernel)?),
        false => args.kernel_dbg.clone(),
    };
    target.kconfig = args.kconfig.clone();
    target.initrd = args.initrd.clone();
    let mut command = args.cmd.clone();
    for words in &args.args {
        let Some(split) = shlex::split(words) else {
            bail!(ukpm::Error::InvalidInput(format!(
                "--args `{}` is not shell words: a quote is not closed",
                escape(words)
            )));
        };
        command.extend(split);
    }
    command.extend(args.trailing.iter().cloned());
    target.command = command;
    let mut options = PackOptions::new(reference.clone());
    options.env = args.env.clone();
    options.labels = key_values("--label", &args.label)?;
    options.annotations = key_values("--annotation", &args.annotation)?;
    options.kernel_version = args.kernel_version.clone();
    options.pack_kconfig = !args.no_kconfig;
    options.strategy = match args.strategy {
        Strategy::Merge => MergeStrategy::Merge,
        Strategy::Overwrite => MergeStrategy::Overwrite,
        Strategy::Abort => MergeStrategy::Abort,
        Strategy::Prompt => prompt(manager, &reference).await?,
    };
    if let Some(created) = &args.created {
        let secs = ukpm::parse_rfc3339(created).with_context(|| {
            format!("--created `{created}` is not an RFC 3339 time like 2024-10-21T12:00:00Z")
        })?;
        options.created = Some(ukpm::rfc3339(secs));
    }
    let package = manager
        .pack(&target, &options)
        .await
        .with_context(|| format!("failed to pack {reference}"))?;
    let pinned = match &package.index {
        Some(index) => format!("{}@{}", reference.name(), index.digest),
        None => format!("{}@{}", reference.name(), package.manifest.digest),
    };
    let pushed = match args.push {
        true => Some(push(manager, &reference.to_string(), None).await?),
        false => None,
    };
    Ok(Packed {
        package,
        pinned,
        pushed,
    })
}

/// `--dbg`: the unstripped kernel Unikraft's build leaves beside the kernel, `KERNEL.dbg`.
fn debug_kernel(kernel: &Path) -> Result<PathBuf> {
    let mut path = kernel.as_os_str().to_owned();
    path.push(".dbg");
    let path = PathBuf::from(path);
    if fs_err::metadata(&path).is_err() {
        bail!(ukpm::Error::InvalidInput(format!(
            "--dbg packs the debug kernel beside the kernel, {}, and there is none: build it, or name it with --kernel-dbg FILE",
            path.display()
        )));
    }
    Ok(path)
}

/// `--strategy prompt`: when the name exists, asks on the terminal which strategy to use; a
/// new name needs no question (merge). Without a terminal it is refused, before the store is
/// looked at, so a script never hangs on it.
async fn prompt(manager: &PackageManager, reference: &Reference) -> Result<MergeStrategy> {
    if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
        bail!(ukpm::Error::InvalidInput(
            "--strategy prompt asks on a terminal, and there is none: choose --strategy merge, overwrite or abort".into()
        ));
    }
    match manager.inspect(reference).await {
        Ok(_) => {}
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(MergeStrategy::Merge),
        Err(err) => return Err(err).context(format!("failed to look up {reference}")),
    }
    let question = format!(
        "{} already exists: [m]erge this platform in, [o]verwrite the package, or [a]bort? ",
        escape(&reference.to_string())
    );
    let answer = tokio::task::spawn_blocking(move || ask(&question))
        .await
        .context("the question was interrupted")??;
    Ok(answer)
}

/// Asks until the answer is one of the three; end of input is an abort.
fn ask(question: &str) -> Result<MergeStrategy> {
    loop {
        let mut err = io::stderr().lock();
        write!(err, "{question}")?;
        err.flush()?;
        drop(err);
        let mut line = String::new();
        if io::stdin().read_line(&mut line)? == 0 {
            bail!(ukpm::Error::InvalidInput(
                "no answer to the question: aborted".into()
            ));
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "m" | "merge" => return Ok(MergeStrategy::Merge),
            "o" | "overwrite" => return Ok(MergeStrategy::Overwrite),
            "a" | "abort" => return Ok(MergeStrategy::Abort),
            _ => {}
        }
    }
}

/// `K=V` flags as a map; a later key wins.
fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!(ukpm::Error::InvalidInput(format!("{flag} `{item}` is not K=V")));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
