//! `ukpm pack`: a built kernel (and initrd), or a KraftKit project, becomes a package in the
//! store, and with `--push` goes to its registry too.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{
    ErrorKind, MergeStrategy, PackOptions, Package, PackageManager, ProjectOptions, Query, Reference, Rootfs,
    RuntimeTarget, Target,
};

use super::push::{Pushed, PushedJson, push};
use super::{architecture, plat};
use crate::args::{PackArgs, Strategy, plat_arch};
use crate::error::UsageError;
use crate::output::{Escaped, Output, PackageJson, Printer, escape};

/// What a pack made (one package per target, all under one name), and what `--push` sent.
pub struct Packed {
    packages: Vec<Package>,
    /// `name@digest` of what the name now points at (the index, or the lone manifest).
    pinned: String,
    pushed: Option<Pushed>,
}

/// `ukpm pack --json`: `package` is the last one packed (what a single-target pack made),
/// `packages` all of them in order; `"pushed"` (the `push --json` document) only with `--push`.
#[derive(Serialize)]
struct PackedJson<'a> {
    package: Option<PackageJson<'a>>,
    packages: Vec<PackageJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pushed: Option<PushedJson>,
}

impl Output for Packed {
    fn json(&self) -> impl Serialize + '_ {
        PackedJson {
            package: self.packages.last().map(PackageJson::from),
            packages: self.packages.iter().map(PackageJson::from).collect(),
            pushed: self.pushed.as_ref().map(Pushed::document),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.packages.len() > 1 {
            for package in &self.packages {
                writeln!(out, "{}", Escaped(&package.plat_arch()))?;
            }
        }
        writeln!(out, "{}", Escaped(&self.pinned))?;
        match &self.pushed {
            Some(pushed) => pushed.human(out),
            None => Ok(()),
        }
    }
}

/// NAME and DIR from the positionals and `--name`: with `--name`, a single positional is the
/// project folder (`ukpm pack -n app ./project`, as `kraft pkg` takes it).
fn name_and_dir(args: &PackArgs) -> Result<(String, Option<PathBuf>)> {
    match (&args.name_flag, &args.name, &args.dir) {
        (Some(flag), Some(positional), None) => Ok((flag.clone(), Some(PathBuf::from(positional)))),
        (Some(_), Some(_), Some(_)) => bail!(ukpm::Error::InvalidInput(
            "give the name either as NAME or as --name, not both".into()
        )),
        (Some(flag), None, dir) => Ok((flag.clone(), dir.clone())),
        (None, Some(name), dir) => Ok((name.clone(), dir.clone())),
        (None, None, _) => bail!(ukpm::Error::InvalidInput("pack needs a NAME (or --name)".into())),
    }
}

/// The command: `--cmd` words, then `--args` split as a shell would, then what follows `--`.
fn command(args: &PackArgs) -> Result<Vec<String>> {
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
    Ok(command)
}

pub async fn run(manager: &PackageManager, args: &PackArgs, printer: &Printer) -> Result<Packed> {
    let (name, dir) = name_and_dir(args)?;
    let reference = manager.parse_name(&name)?;
    let rootfs = args
        .initrd
        .as_ref()
        .map(|rootfs| Rootfs::classify(rootfs, std::path::Path::new("")))
        .transpose()
        .with_context(|| format!("failed to pack {reference}"))?;
    let mut options = PackOptions::new(reference.clone());
    options.env = args.env.clone();
    options.labels = key_values("--label", &args.label)?;
    options.annotations = key_values("--annotation", &args.annotation)?;
    options.kernel_version = args.kernel_version.clone();
    options.pack_kconfig = !args.no_kconfig;
    options.compress_initrd = args.compress;
    options.strategy = match args.strategy {
        Strategy::Merge => MergeStrategy::Merge,
        Strategy::Overwrite => MergeStrategy::Overwrite,
        Strategy::Abort => MergeStrategy::Abort,
        Strategy::Prompt => prompt(manager, &reference).await?,
    };
    if let Some(created) = &args.created {
        let Some(secs) = ukpm::parse_rfc3339(created) else {
            bail!(UsageError(format!(
                "--created `{created}` is not an RFC 3339 time like 2024-10-21T12:00:00Z"
            )));
        };
        options.created = Some(ukpm::rfc3339(secs));
    }
    let command = command(args)?;
    let (plat_text, arch_text) =
        plat_arch(args.plat.as_deref(), args.arch.as_deref()).map_err(ukpm::Error::InvalidInput)?;
    let arch = arch_text.map(architecture).transpose()?;
    let platform = plat_text.map(plat).transpose()?;
    let packages = if let Some(kernel) = &args.kernel {
        let (Some(arch), Some(platform)) = (arch, platform) else {
            bail!(ukpm::Error::InvalidInput(
                "--kernel needs --arch and --plat".into()
            ));
        };
        if args.target.is_some() {
            bail!(ukpm::Error::InvalidInput(
                "--target selects a project's target; it does not go with --kernel".into()
            ));
        }
        let mut target = Target::new(kernel, arch, platform);
        target.kernel_dbg = match args.dbg {
            true => Some(debug_kernel(kernel)?),
            false => args.kernel_dbg.clone(),
        };
        target.kconfig = args.kconfig.clone();
        if let Some(path) = &args.kconfig {
            warn_contradictions(printer, path, arch, platform, !args.no_kconfig);
        }
        target.initrd = rootfs;
        target.command = command;
        vec![
            manager
                .pack(&target, &options)
                .await
                .with_context(|| format!("failed to pack {reference}"))?,
        ]
    } else {
        if args.kconfig.is_some() || args.kernel_dbg.is_some() || args.dbg {
            bail!(ukpm::Error::InvalidInput(
                "--kconfig and --kernel-dbg go with --kernel; a project's come from its build".into()
            ));
        }
        let explicit_dir = dir.is_some();
        let dir = dir.unwrap_or_else(|| PathBuf::from("."));
        match &args.runtime {
            // A rootfs on a runtime, without a project.
            Some(runtime) if !explicit_dir && ukpm::Kraftfile::find(&dir).is_none() => {
                let target = RuntimeTarget {
                    rootfs,
                    command,
                    query: Query {
                        architecture: arch,
                        platform,
                        ..Query::default()
                    },
                };
                manager
                    .pack_on_runtime(runtime, &target, &options)
                    .await
                    .with_context(|| format!("failed to pack {reference} on {runtime}"))?
            }
            _ => {
                let mut project = ProjectOptions::new(options);
                project.target = args.target.clone();
                project.architecture = arch;
                project.platform = platform;
                project.runtime = args.runtime.clone();
                project.rootfs = rootfs;
                project.command = command;
                manager
                    .pack_project(&dir, &project)
                    .await
                    .with_context(|| format!("failed to pack {reference} from {}", dir.display()))?
            }
        }
    };
    for package in &packages {
        warn_separate_entries(manager, printer, package).await;
    }
    let pinned = match packages.last() {
        Some(Package {
            index: Some(index), ..
        }) => format!("{}@{}", reference.name(), index.digest),
        Some(package) => format!("{}@{}", reference.name(), package.manifest.digest),
        None => bail!(ukpm::Error::InvalidInput("nothing was packed".into())),
    };
    let pushed = match args.push {
        true => Some(push(manager, &reference.to_string(), None).await?),
        false => None,
    };
    Ok(Packed {
        packages,
        pinned,
        pushed,
    })
}

/// Warns when `--arch`/`--plat` contradict the kconfig given (issue 13: no silent surprises).
/// A kconfig that cannot be read says nothing here: the pack reports it.
fn warn_contradictions(
    printer: &Printer,
    kconfig: &Path,
    arch: ukpm::Architecture,
    plat: ukpm::Plat,
    packed: bool,
) {
    let Ok(text) = fs_err::read_to_string(kconfig) else {
        return;
    };
    let Ok(parsed) = ukpm::KConfig::parse(&text) else {
        return;
    };
    for contradiction in ukpm::kconfig_contradictions(&parsed, arch, plat) {
        printer.warn(&format!(
            "{contradiction} ({}): the package is packed as {plat}/{arch} anyway{}",
            escape(&kconfig.display().to_string()),
            if packed { ", and claims both" } else { "" }
        ));
    }
}

/// Warns when the name now holds other manifests for the same plat/arch as `package` (their
/// kconfig or kernel version differ, so they are separate entries, not replaced): listing the
/// digests and the keys that differ, and how to get one entry instead. (Under overwrite the
/// index holds this manifest alone, so there is nothing to say.)
async fn warn_separate_entries(manager: &PackageManager, printer: &Printer, package: &Package) {
    let query = Query {
        architecture: package.platform.architecture.parse().ok(),
        platform: package.platform.os.parse().ok(),
        ..Query::default()
    };
    let Ok(found) = manager.catalog().find(&package.reference, &query).await else {
        return;
    };
    let others: Vec<&Package> = found
        .iter()
        .filter(|p| p.manifest.digest != package.manifest.digest)
        .collect();
    if others.is_empty() {
        return;
    }
    let mut lines = vec![format!(
        "{} now holds {} manifests for {}: a different kconfig (or kernel version) makes a separate entry, not a replacement",
        escape(&package.reference.to_string()),
        others.len() + 1,
        escape(&package.plat_arch())
    )];
    lines.push(format!("  {} (this pack)", package.manifest.digest));
    for other in others {
        let keys = differing_keys(&package.platform, &other.platform);
        lines.push(format!(
            "  {} differs in {}",
            other.manifest.digest,
            escape(&keys.join(", "))
        ));
    }
    lines.push(
        "  pull and unpack choose one with --kconfig KEY=VALUE; --strategy overwrite keeps only this one"
            .into(),
    );
    printer.warn(&lines.join("\n"));
}

/// The kconfig keys (and `os.version`) whose values differ between two platforms, sorted.
fn differing_keys(a: &ukpm::Platform, b: &ukpm::Platform) -> Vec<String> {
    let map = |p: &ukpm::Platform| -> BTreeMap<String, String> {
        p.os_features
            .iter()
            .map(|f| match f.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (f.clone(), String::new()),
            })
            .collect()
    };
    let (a_map, b_map) = (map(a), map(b));
    let mut keys: Vec<String> = a_map
        .keys()
        .chain(b_map.keys())
        .filter(|k| a_map.get(*k) != b_map.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    if a.os_version != b.os_version {
        keys.push("the kernel version".into());
    }
    if keys.is_empty() {
        keys.push("nothing ukpm can see".into());
    }
    keys
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
            bail!(UsageError(format!("{flag} `{item}` is not K=V")));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
