//! One module per command, as uv's `commands/` has: each takes its parsed arguments and the
//! [`PackageManager`], calls the library, and returns a typed result that implements
//! [`Output`]; this module builds the manager from the settings and dispatches.
//!
//! A new command is a new module here, a variant in `args::Command` and one line in
//! [`dispatch`].

mod completions;
mod copy;
mod delete;
mod digest;
mod export;
mod fsck;
mod gc;
mod import;
mod inspect;
mod load;
mod login;
mod logout;
mod ls;
mod man;
mod pack;
mod pull;
mod push;
mod remote;
mod rm;
mod save;
mod source;
mod tag;
mod unpack;

use std::sync::Arc;

#[cfg(not(feature = "containerd"))]
use anyhow::bail;
use anyhow::{Context, Result};
use ukpm::{Architecture, ClientConfig, PackageManager, Plat, Query};

use crate::args::{Cli, Command, Filters, Global, plat_arch};
use crate::error::Findings;
use crate::output::{Output, Printer};
use crate::report::StderrReporter;
use crate::settings::Settings;

/// Runs the parsed command line: resolves the settings, builds the manager, runs the command,
/// prints its result, and closes the manager (whose error counts even after a success).
pub async fn run(cli: &Cli) -> Result<()> {
    // Generated from the command line's definitions alone: no config file, no store.
    match &cli.command {
        Command::Completions(args) => return completions::run(args),
        Command::Man => return man::run(),
        _ => {}
    }
    let settings = Settings::resolve(&cli.global)?;
    let manager = manager(&cli.global, &settings).await?;
    let printer = Printer {
        format: cli.format(),
        quiet: cli.global.quiet,
    };
    let result = dispatch(&cli.command, &manager, &printer).await;
    if let Err(err) = &result {
        crate::error::look_for_similar_names(err, &manager).await;
    }
    let closed = manager.close().await;
    result?;
    Ok(closed?)
}

/// Runs one command and prints what it returns.
async fn dispatch(command: &Command, manager: &PackageManager, printer: &Printer) -> Result<()> {
    match command {
        Command::Pack(args) => show(printer, pack::run(manager, args, printer).await?),
        Command::Ls(args) if args.remote => show(printer, remote::ls(manager, args).await?),
        Command::Update(args) => show(printer, remote::update(manager, args).await?),
        Command::Tags(args) => show(printer, remote::tags(manager, args).await?),
        Command::Source(command) => show(printer, source::run(manager, command).await?),
        Command::Src(args) => show(printer, source::add(manager, args).await?),
        Command::Unsrc(args) => show(printer, source::rm(args)?),
        Command::Ls(args) => show(printer, ls::run(manager, args, printer).await?),
        Command::Inspect(args) => show(printer, inspect::run(manager, args, printer).await?),
        Command::Digest(args) => show(printer, digest::run(manager, args).await?),
        Command::Delete(args) => show(printer, delete::run(manager, args).await?),
        Command::Unpack(args) => show(printer, unpack::run(manager, args).await?),
        Command::Pull(args) => show(printer, pull::run(manager, args, printer).await?),
        Command::Push(args) => show(printer, push::run(manager, args).await?),
        Command::Tag(args) => show(printer, tag::run(manager, args).await?),
        Command::Login(args) => show(printer, login::run(manager, args).await?),
        Command::Logout(args) => show(printer, logout::run(manager, args).await?),
        Command::Rm(args) => show(printer, rm::run(manager, args).await?),
        Command::Gc => show(printer, gc::run(manager).await?),
        Command::Fsck(args) => show(printer, fsck::run(manager, args, printer).await?),
        Command::Import(args) => show(printer, import::run(manager, args).await?),
        Command::Export(args) => show(printer, export::run(manager, args).await?),
        Command::Copy(args) => show(printer, copy::run(manager, args).await?),
        Command::Save(args) => show(printer, save::run(manager, args, printer).await?),
        Command::Load(args) => show(printer, load::run(manager, args).await?),
        Command::Completions(args) => completions::run(args),
        Command::Man => man::run(),
    }
}

/// Prints a result; one that means failure (fsck's findings) then ends the command with
/// [`Findings`].
fn show(printer: &Printer, output: impl Output) -> Result<()> {
    crate::report::finish();
    printer.print(&output)?;
    if output.is_failure() {
        return Err(Findings.into());
    }
    Ok(())
}

/// The manager the settings describe: its store, reporter, registries and client.
async fn manager(global: &Global, settings: &Settings) -> Result<PackageManager> {
    let mut builder = PackageManager::builder();
    if let Some(store) = &settings.store {
        builder = builder.store_dir(store);
    }
    if let Some(dir) = &settings.kraftkit_store {
        builder = builder.store(Arc::new(ukpm::KraftKitStore::new(dir)));
    }
    if let Some(reporter) = StderrReporter::install(global) {
        builder = builder.reporter(reporter);
    }
    if !settings.registries.is_empty() {
        builder = builder.registries(settings.registries.clone());
    }
    let mut client_config = ClientConfig {
        plain_http: settings.plain_http.clone(),
        read_timeout: std::time::Duration::from_secs(settings.timeout),
        min_rate: settings.min_rate,
        ..ClientConfig::default()
    };
    for file in &settings.ca_files {
        let pem =
            fs_err::read(file).with_context(|| format!("cannot read the CA file {}", file.display()))?;
        client_config.extra_roots_pem.push(pem);
    }
    if let Some(address) = &settings.containerd {
        builder = builder.store(containerd_store(address, &settings.namespace).await?);
    }
    Ok(builder
        .client_config(client_config)
        .concurrency(settings.concurrency)
        .build()?)
}

/// `--arch` checked into an [`Architecture`].
fn architecture(s: &str) -> Result<Architecture> {
    Ok(s.parse::<Architecture>().map_err(ukpm::Error::from)?)
}

/// `--plat` checked into a [`Plat`].
fn plat(s: &str) -> Result<Plat> {
    Ok(s.parse::<Plat>().map_err(ukpm::Error::from)?)
}

/// The filters `ls`, `unpack` and `pull` share, as a library [`Query`] (without a name);
/// `--plat PLAT/ARCH` sets both (`Cli::check` refused a different `--arch`).
fn query(filters: &Filters) -> Result<Query> {
    let (plat_text, arch_text) =
        plat_arch(filters.plat.as_deref(), filters.arch.as_deref()).map_err(ukpm::Error::InvalidInput)?;
    Ok(Query {
        name: None,
        architecture: arch_text.map(architecture).transpose()?,
        platform: plat_text.map(plat).transpose()?,
        kconfig: filters.kconfig.clone(),
    })
}

#[cfg(feature = "containerd")]
async fn containerd_store(address: &std::path::Path, namespace: &str) -> Result<Arc<dyn ukpm::ImageStore>> {
    let store = ukpm::ContainerdImageStore::connect(address, namespace)
        .await
        .with_context(|| format!("cannot use containerd at {}", address.display()))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "containerd"))]
async fn containerd_store(address: &std::path::Path, _namespace: &str) -> Result<Arc<dyn ukpm::ImageStore>> {
    bail!(ukpm::Error::InvalidInput(format!(
        "cannot use containerd at {}: this ukpm was built without the `containerd` feature",
        address.display()
    )))
}
