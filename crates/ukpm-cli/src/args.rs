//! The command line, as clap parses it. Values are checked into library types here, so every
//! command receives `Reference`s and `Architecture`s, never raw strings.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use ukpm::Architecture;

/// ukpm, the unikernel package manager: package unikernels as OCI images and manage them.
#[derive(Debug, Parser)]
#[command(name = "ukpm", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The checks clap cannot express, as usage errors (exit 2): `--plat PLAT/ARCH` against
    /// `--arch`, `-o` against `--json`, and a pack's architecture given somewhere.
    pub fn check(&self) -> Result<(), clap::Error> {
        let conflict = |message: String| self.usage_error(clap::error::ErrorKind::ArgumentConflict, message);
        let (plat, arch) = match &self.command {
            Command::Pack(a) => (a.plat.as_deref(), a.arch.as_deref()),
            Command::Ls(LsArgs { filters, .. })
            | Command::Unpack(UnpackArgs { filters, .. })
            | Command::Pull(PullArgs { filters, .. })
            | Command::Copy(CopyArgs { filters, .. }) => (filters.plat.as_deref(), filters.arch.as_deref()),
            _ => (None, None),
        };
        let (_, arch) = plat_arch(plat, arch).map_err(conflict)?;
        if let Command::Pack(pack) = &self.command
            && let Some(words) = pack.args.iter().find(|w| shlex::split(w).is_none())
        {
            return Err(self.usage_error(
                clap::error::ErrorKind::ValueValidation,
                format!("--args `{words}` is not shell words: a quote is not closed"),
            ));
        }
        if let Command::Pack(pack) = &self.command {
            if pack.kernel.is_some() && arch.is_none() {
                return Err(self.usage_error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "pack --kernel needs the architecture: --arch ARCH, or --plat PLAT/ARCH",
                ));
            }
            // With --name, the one positional is a project folder, which --kernel does not take.
            if pack.name_flag.is_some()
                && pack.name.is_some()
                && (pack.dir.is_some() || pack.kernel.is_some())
            {
                return Err(conflict(
                    "give the name either as NAME or as --name, not both (with --name, the one positional is DIR)".into(),
                ));
            }
        }
        let format = match &self.command {
            Command::Ls(a) => a.output,
            Command::Inspect(a) => a.output.map(Format::from),
            _ => None,
        };
        if self.global.json && format.is_some_and(|f| f != Format::Json) {
            return Err(conflict(
                "--json and -o disagree on the output: give one of them".into(),
            ));
        }
        Ok(())
    }

    /// A usage error with the command's own usage line, as clap's own errors have.
    fn usage_error(&self, kind: clap::error::ErrorKind, message: impl std::fmt::Display) -> clap::Error {
        let mut cli = Cli::command();
        cli.build();
        match cli.find_subcommand_mut(self.command.name()) {
            Some(command) => command.error(kind, message),
            None => cli.error(kind, message),
        }
    }

    /// How the command's result is printed: its `-o`, else the document under `--json`, else
    /// for people.
    pub fn format(&self) -> Format {
        let format = match &self.command {
            Command::Ls(a) => a.output,
            Command::Inspect(a) => a.output.map(Format::from),
            _ => None,
        };
        format.unwrap_or(if self.global.json {
            Format::Json
        } else {
            Format::Table
        })
    }
}

/// KraftKit's `--plat PLAT/ARCH` with `--arch`: the platform and the architecture. An
/// architecture in both must be the same one (`amd64` is `x86_64`), else this is the message
/// of the usage error.
pub fn plat_arch<'a>(
    plat: Option<&'a str>,
    arch: Option<&'a str>,
) -> Result<(Option<&'a str>, Option<&'a str>), String> {
    let Some((p, a)) = plat.and_then(|p| p.split_once('/')) else {
        return Ok((plat, arch));
    };
    if let Some(given) = arch {
        let same = match (given.parse::<Architecture>(), a.parse::<Architecture>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => given == a,
        };
        if !same {
            return Err(format!(
                "--arch {given} conflicts with the architecture of --plat {p}/{a}"
            ));
        }
    }
    Ok((Some(p), Some(a)))
}

/// The most blobs a pull or push moves at once: each is a connection and a file, and more than
/// this only contends for the same link; `--concurrency` (flag, env or config file) outside
/// 1..=64 is refused as a usage error.
pub const MAX_CONCURRENCY: usize = 64;

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The local store: an OCI image layout, or `kraftkit:[DIR]` for KraftKit's own store (its
    /// runtime folder; `kraftkit:` alone finds KraftKit's default) [default: $XDG_DATA_HOME/ukpm/oci]
    #[arg(long, global = true, env = "UKPM_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Print one JSON document on stdout (errors too); see docs/json.md
    #[arg(long, global = true)]
    pub json: bool,
    /// Print no progress or messages on stderr, only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log more on stderr (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// A registry short names (`nginx`) are tried against, in order (repeatable) [default: unikraft.org]
    #[arg(
        long = "registry",
        global = true,
        value_name = "HOST",
        env = "UKPM_REGISTRIES",
        value_delimiter = ','
    )]
    pub registries: Vec<String>,
    /// Speak plain HTTP to this registry host (loopback hosts always are) (repeatable)
    #[arg(long, global = true, value_name = "HOST")]
    pub plain_http: Vec<String>,
    /// Trust this CA certificate (PEM) for registries, besides the system roots (repeatable)
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
    /// Keep packages in containerd, at this socket, instead of the local store
    #[arg(long, global = true, value_name = "ADDR", env = "CONTAINERD_ADDRESS")]
    pub containerd: Option<PathBuf>,
    /// The containerd namespace [default: default]
    #[arg(long, global = true, value_name = "NS", env = "CONTAINERD_NAMESPACE")]
    pub namespace: Option<String>,
    /// How many blobs move at once in a pull or push, 1 to 64 [default: 4]
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "UKPM_CONCURRENCY",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_CONCURRENCY as u64)
    )]
    pub concurrency: Option<usize>,
    /// Give up on a registry silent this long: no byte sent, or none of an upload taken [default: 30]
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "UKPM_TIMEOUT",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout: Option<u64>,
    /// Give up on a registry moving fewer bytes per second than this over a minute; 0: no minimum [default: 1024]
    #[arg(long, global = true, value_name = "BYTES/S", env = "UKPM_MIN_RATE")]
    pub min_rate: Option<u64>,
    /// When to colour stderr
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, env = "UKPM_COLOR")]
    pub color: Color,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Colour when stderr is a terminal
    Auto,
    /// Always colour
    Always,
    /// Never colour
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Package a built kernel (and initrd) as an OCI image in the store
    #[command(alias = "pkg")]
    Pack(Box<PackArgs>),
    /// List the packages in the store, one line per platform
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show a package: each platform's kernel, initrd, command, kconfig (--raw: the documents)
    #[command(aliases = ["info", "show", "get", "i"])]
    Inspect(InspectArgs),
    /// Print the digest a reference resolves to on its registry (tag to index or manifest)
    Digest(DigestArgs),
    /// Delete a manifest or index (by digest, or a tag's target) from its registry
    Delete(DeleteArgs),
    /// Write a package's kernel and initrd into a folder
    Unpack(UnpackArgs),
    /// Fetch a package from a registry into the store
    #[command(alias = "pl")]
    Pull(PullArgs),
    /// Send a package from the store to a registry
    #[command(alias = "ph")]
    Push(PushArgs),
    /// Give a stored package another name
    Tag(TagArgs),
    /// Check credentials for a registry and save them in the docker config.json
    Login(LoginArgs),
    /// Remove saved credentials for a registry
    Logout(LogoutArgs),
    /// Remove references from the store (their blobs stay until `ukpm gc`)
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Delete blobs no reference reaches
    Gc,
    /// Check every blob against its digest and every reference against what it needs
    Fsck(FsckArgs),
    /// Copy packages from KraftKit's store into this store, verified, digests kept
    Import(ImportArgs),
    /// Copy packages from this store into KraftKit's store, in the layout `kraft run` reads
    Export(ExportArgs),
    /// Copy a package between registries, without the store (only --plat/--arch: a new index, another digest)
    #[command(alias = "cp")]
    Copy(CopyArgs),
    /// Write packages, every platform and blob, as an OCI layout tar (`skopeo`'s `oci-archive:`)
    Save(SaveArgs),
    /// Read an OCI layout tar (`ukpm save`, `skopeo`, `docker save`), verified, into the store
    Load(LoadArgs),
    /// List the registries' packages again and cache them for `ls --remote`
    #[command(alias = "upd")]
    Update(UpdateArgs),
    /// List the tags of a repository on its registry
    Tags(TagsArgs),
    /// Manage the registries ukpm lists and resolves against (the config file's `registries`)
    #[command(subcommand)]
    Source(SourceCommand),
    /// `source add`, as `kraft pkg source` (`src`) takes it
    #[command(name = "src", hide = true)]
    Src(SourceAddArgs),
    /// `source rm`, as `kraft pkg unsource` (`unsrc`) takes it
    #[command(name = "unsrc", alias = "unsource", hide = true)]
    Unsrc(SourceRmArgs),
}

impl Command {
    /// The command's name, so a hint never suggests the command that just failed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Pack(_) => "pack",
            Command::Ls(_) => "ls",
            Command::Inspect(_) => "inspect",
            Command::Digest(_) => "digest",
            Command::Delete(_) => "delete",
            Command::Unpack(_) => "unpack",
            Command::Pull(_) => "pull",
            Command::Push(_) => "push",
            Command::Tag(_) => "tag",
            Command::Login(_) => "login",
            Command::Logout(_) => "logout",
            Command::Rm(_) => "rm",
            Command::Gc => "gc",
            Command::Fsck(_) => "fsck",
            Command::Import(_) => "import",
            Command::Export(_) => "export",
            Command::Copy(_) => "copy",
            Command::Save(_) => "save",
            Command::Load(_) => "load",
            Command::Update(_) => "update",
            Command::Tags(_) => "tags",
            Command::Source(_) => "source",
            Command::Src(_) => "src",
            Command::Unsrc(_) => "unsrc",
        }
    }
}

/// `ukpm pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The package's name, e.g. `helloworld:latest` or `unikraft.org/nginx:1.25`
    #[arg(value_name = "NAME", required_unless_present = "name_flag")]
    pub name: Option<String>,
    /// The name as a flag, as `kraft pkg --name` takes it (instead of NAME; a single positional
    /// is then the project folder DIR)
    #[arg(long = "name", short = 'n', value_name = "NAME")]
    pub name_flag: Option<String>,
    /// A KraftKit project folder (its Kraftfile and .unikraft/build) [default: . without --kernel]
    #[arg(value_name = "DIR", conflicts_with = "kernel")]
    pub dir: Option<PathBuf>,
    /// Only the project's target with this name or PLAT/ARCH
    #[arg(long, short = 't', value_name = "NAME")]
    pub target: Option<String>,
    /// Pack on this runtime package's kernel (pulled if not in the store) [default: the Kraftfile's]
    #[arg(long, short = 'r', value_name = "REF", conflicts_with = "kernel")]
    pub runtime: Option<String>,
    /// The kernel image
    #[arg(long, short = 'k', value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// The unstripped kernel, packed at /unikraft/bin/kernel.dbg
    #[arg(long, value_name = "FILE")]
    pub kernel_dbg: Option<PathBuf>,
    /// Pack the debug kernel beside the kernel (`KERNEL.dbg`, as Unikraft builds it) at
    /// /unikraft/bin/kernel.dbg
    #[arg(long, conflicts_with = "kernel_dbg")]
    pub dbg: bool,
    /// The architecture: x86_64, arm64 or arm (amd64 and aarch64 are accepted)
    #[arg(long, short = 'm', value_name = "ARCH")]
    pub arch: Option<String>,
    /// The platform: qemu, fc, xen, kraftcloud or linuxu (kvm and firecracker are accepted),
    /// or PLAT/ARCH (`qemu/x86_64`)
    #[arg(long, short = 'p', visible_alias = "platform", value_name = "PLAT[/ARCH]")]
    pub plat: Option<String>,
    /// The kernel's .config; its entries become OS features
    #[arg(long, value_name = "FILE")]
    pub kconfig: Option<PathBuf>,
    /// Do not record kconfig entries (not even the architecture and platform ones)
    #[arg(long)]
    pub no_kconfig: bool,
    /// The rootfs, packed as the initrd: a CPIO file (as is), a folder (archived as CPIO newc),
    /// an image (REF in the store or on a registry; oci:DIR[:TAG] or a layout folder) flattened
    /// for --arch
    #[arg(long, short = 'i', visible_alias = "rootfs", value_name = "FILE|DIR|IMAGE")]
    pub initrd: Option<std::ffi::OsString>,
    /// Gzip the initrd (KraftKit's --compress)
    #[arg(long, short = 'c')]
    pub compress: bool,
    /// One argument of the unikernel (repeat for more); arguments after `--` are appended
    #[arg(long = "cmd", value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// The unikernel's arguments as one string split into words as a shell does, as `kraft pkg
    /// --args` takes them (repeatable; the words are appended)
    #[arg(
        long = "args",
        short = 'a',
        value_name = "ARGS",
        allow_hyphen_values = true,
        conflicts_with = "cmd"
    )]
    pub args: Vec<String>,
    /// Arguments of the unikernel, after `--`
    #[arg(last = true, value_name = "ARGS")]
    pub trailing: Vec<String>,
    /// An environment variable, K=V (repeatable)
    #[arg(long, short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// A config label, K=V (repeatable)
    #[arg(long, short = 'l', value_name = "K=V")]
    pub label: Vec<String>,
    /// A manifest annotation, K=V (repeatable); overrides ukpm's own
    #[arg(long, value_name = "K=V")]
    pub annotation: Vec<String>,
    /// The kernel version [default: CONFIG_UK_FULLVERSION from the kconfig]
    #[arg(long, value_name = "VERSION")]
    pub kernel_version: Option<String>,
    /// What to do when the name already has a manifest for this platform
    #[arg(long, value_enum, default_value_t = Strategy::Merge)]
    pub strategy: Strategy,
    /// Push the package to its registry once it is packed
    #[arg(long, short = 'P')]
    pub push: bool,
    /// The org.opencontainers.image.created time (RFC 3339) [default: SOURCE_DATE_EPOCH, else none]
    #[arg(long, value_name = "TIME")]
    pub created: Option<String>,
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// Replace this platform's manifest, keep the others
    Merge,
    /// Replace the whole index
    Overwrite,
    /// Fail if this platform already has a manifest
    Abort,
    /// Ask on the terminal which of the three, when the name exists
    Prompt,
}

/// `-o` of `ls`, as `kraft pkg ls -o` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Columns for people
    Table,
    /// One `key: value` block per package
    List,
    /// The `--json` document
    Json,
    /// The `--json` document as YAML
    Yaml,
}

/// `-o` of `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    /// The summary and the documents for people
    Table,
    /// The `--json` document
    Json,
    /// The `--json` document as YAML
    Yaml,
}

impl From<DocFormat> for Format {
    fn from(f: DocFormat) -> Format {
        match f {
            DocFormat::Table => Format::Table,
            DocFormat::Json => Format::Json,
            DocFormat::Yaml => Format::Yaml,
        }
    }
}

/// Filters shared by `ls` and `unpack`.
#[derive(Debug, Args)]
pub struct Filters {
    /// Only this architecture
    #[arg(long, short = 'm', value_name = "ARCH")]
    pub arch: Option<String>,
    /// Only this platform, or PLAT/ARCH (`qemu/x86_64`)
    #[arg(long, short = 'p', visible_alias = "platform", value_name = "PLAT[/ARCH]")]
    pub plat: Option<String>,
    /// Only kernels with this kconfig entry: KEY=VALUE, or KEY for any value (repeatable)
    #[arg(long, short = 'k', value_name = "KEY[=VALUE]")]
    pub kconfig: Vec<String>,
}

/// `ukpm ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// Only names matching this glob (`*`, `?`), e.g. `nginx*` or `unikraft.org/*`
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
    /// The output: table, list, json (the `--json` document) or yaml (the same as YAML)
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Every package whatever its platform, as `kraft pkg ls --all` (ukpm's ls always lists all)
    #[arg(long)]
    pub all: bool,
    /// List the packages on the registries (from the cache `ukpm update` keeps, if there is one)
    #[arg(long, short = 'u')]
    pub remote: bool,
    /// With --remote: ask the registries first and refresh the cache
    #[arg(long, short = 'U', requires = "remote")]
    pub update: bool,
    /// With --remote: repositories (`REGISTRY/REPO`, listed even where the registry has no
    /// catalog) or globs over them (`nginx*`, `ghcr.io/unikraft/*`)
    #[arg(value_name = "NAME|GLOB", requires = "remote")]
    pub names: Vec<String>,
}

/// `ukpm update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Repositories or globs to list beside (or, for a glob, instead of) every configured
    /// registry's catalog
    #[arg(value_name = "NAME|GLOB")]
    pub names: Vec<String>,
}

/// `ukpm tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// The repository: `REGISTRY/REPO`, or a repository of the first configured registry
    #[arg(value_name = "REPO")]
    pub repository: String,
}

/// `ukpm source`.
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Add registries to the config file (each checked to answer as a registry)
    #[command(alias = "src")]
    Add(SourceAddArgs),
    /// Remove registries from the config file
    #[command(aliases = ["remove", "unsrc"])]
    Rm(SourceRmArgs),
    /// Show the registries in the config file
    #[command(alias = "list")]
    Ls,
}

/// `ukpm source add`.
#[derive(Debug, Args)]
pub struct SourceAddArgs {
    /// Registry hosts, e.g. `ghcr.io` or `localhost:5000`
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<String>,
    /// Add without checking that each answers as a registry
    #[arg(long, short = 'F')]
    pub force: bool,
}

/// `ukpm source rm`.
#[derive(Debug, Args)]
pub struct SourceRmArgs {
    /// Registry hosts
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<String>,
}

/// `ukpm inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The package, by name or `name@sha256:...`
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The output: table (for people), json (the `--json` document) or yaml
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    pub output: Option<DocFormat>,
    /// Read the registry's documents, never the store (without it, a name not in the store is
    /// read from the registry)
    #[arg(long)]
    pub remote: bool,
    /// Print the documents themselves (index, manifests, configs) instead of the summary
    #[arg(long)]
    pub raw: bool,
    /// Only the manifests of this platform (--plat PLAT/ARCH, --arch, --kconfig)
    #[command(flatten)]
    pub filters: Filters,
}

/// `ukpm digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The reference on a registry: `name[:tag]` or `name@sha256:...`
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The digest of this platform's manifest (`PLAT/ARCH`, or `PLAT`) rather than the index's
    #[arg(long, value_name = "PLAT/ARCH")]
    pub platform: Option<String>,
}

/// `ukpm delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The reference on a registry: a tag (its target is deleted) or `name@sha256:...`
    #[arg(value_name = "REF")]
    pub reference: String,
}

/// `ukpm unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The package, by name or `name@sha256:...`
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The folder to write into (created if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub filters: Filters,
}

/// `ukpm rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The packages to remove
    #[arg(value_name = "REF", required_unless_present = "all", conflicts_with = "all")]
    pub references: Vec<String>,
    /// Remove every reference in the store
    #[arg(long, short = 'a')]
    pub all: bool,
}

/// `ukpm pull`. Without --arch, --plat, --kconfig or --all-platforms it pulls the manifests for
/// this machine's architecture and detected platform.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The packages: `nginx:1.25`, `unikraft.org/nginx:1.25` or `name@sha256:...`; several are
    /// pulled at once
    #[arg(value_name = "REF", required = true)]
    pub references: Vec<String>,
    #[command(flatten)]
    pub filters: Filters,
    /// Pull every platform of the index
    #[arg(long, visible_alias = "all", short = 'A', conflicts_with_all = ["arch", "plat", "kconfig"])]
    pub all_platforms: bool,
    /// Unpack what was pulled into this folder, as `kraft pkg pull -o` does
    #[arg(long, short = 'o', value_name = "DIR", conflicts_with = "all_platforms")]
    pub output: Option<PathBuf>,
}

/// `ukpm push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The stored package to push
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Push it under another name (another registry or repository)
    #[arg(long, value_name = "REF")]
    pub to: Option<String>,
    /// Join its platforms to the index the tag points at, safe from parallel jobs (docs/push-merge.md)
    #[arg(long)]
    pub merge: bool,
}

/// `ukpm tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The stored package
    #[arg(value_name = "SRC")]
    pub source: String,
    /// The new name
    #[arg(value_name = "DST")]
    pub target: String,
}

/// `ukpm login` (also `kraft login`'s `-u USER -t TOKEN`).
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry host, e.g. `ghcr.io` or `127.0.0.1:5000`
    #[arg(value_name = "HOST")]
    pub registry: String,
    /// The user name (asked for on a terminal when not given; `-t` with KraftKit's base64 `user:token` carries it)
    #[arg(long, short = 'u', visible_alias = "user")]
    pub username: Option<String>,
    /// Read the password or token from standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// The password or token, as `kraft login -t` takes it; visible to other users in `ps`: prefer --password-stdin
    #[arg(long, short = 't', value_name = "TOKEN", conflicts_with = "password_stdin")]
    pub token: Option<String>,
}

/// `ukpm logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry host
    #[arg(value_name = "HOST")]
    pub registry: String,
}

/// `ukpm fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Fetch missing or corrupt blobs again from their reference's registry, then collect garbage
    #[arg(long)]
    pub repair: bool,
}

/// `ukpm import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The KraftKit packages to copy (`helloworld`, `unikraft.org/nginx:1.25`) [default: all]
    #[arg(value_name = "REF")]
    pub references: Vec<String>,
    /// KraftKit's runtime folder (or its `oci` folder) [default: $KRAFTKIT_RUNTIME_DIR, else
    /// $XDG_DATA_HOME/kraftkit/runtime]
    #[arg(long, value_name = "DIR")]
    pub from_kraftkit: Option<PathBuf>,
}

/// `ukpm export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The packages to copy [default: all]
    #[arg(value_name = "REF")]
    pub references: Vec<String>,
    /// Into KraftKit's store: its runtime folder (or its `oci` folder) [default:
    /// $KRAFTKIT_RUNTIME_DIR, else $XDG_DATA_HOME/kraftkit/runtime]
    #[arg(
        long,
        value_name = "DIR",
        num_args = 0..=1,
        require_equals = true,
        required = true
    )]
    pub to_kraftkit: Option<Option<PathBuf>>,
}

/// `ukpm copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Where from: `REGISTRY/REPO:TAG` or `REGISTRY/REPO@sha256:...`
    #[arg(value_name = "SRC")]
    pub source: String,
    /// Where to: `REGISTRY/REPO:TAG` (the same registry mounts blobs instead of copying them)
    #[arg(value_name = "DST")]
    pub target: String,
    #[command(flatten)]
    pub filters: Filters,
    /// Also copy the OCI referrers (signatures, SBOMs) and their `sha256-<hex>` fallback tags
    #[arg(long)]
    pub referrers: bool,
}

/// `ukpm save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The packages to write (`helloworld`, `unikraft.org/nginx:1.25`)
    #[arg(value_name = "REF", required = true)]
    pub references: Vec<String>,
    /// The tar to write (replaced whole, only once complete); `-` for stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `ukpm load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The tar to read; `-` for stdin
    #[arg(
        value_name = "FILE",
        required_unless_present = "input",
        conflicts_with = "input"
    )]
    pub file: Option<PathBuf>,
    /// The tar to read (docker's `load -i` form); `-` for stdin
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
}
