//! The command line, as clap parses it. Values are checked into library types here, so every
//! command receives `Reference`s and `Architecture`s, never raw strings.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use ukpm::Architecture;

/// What `--version` says: the version, the commit it was built from and the cargo features it
/// was built with (build.rs), so a report names the exact build.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("UKPM_GIT_COMMIT"),
    ", features: ",
    env!("UKPM_FEATURES"),
    ")"
);

/// The unikernel package manager: package unikernels as OCI images and manage them
///
/// ukpm packs a built unikernel (kernel, kconfig, initrd) as an OCI image exactly as KraftKit's
/// `kraft pkg` does, keeps packages in a local store (an OCI image layout, by default
/// $XDG_DATA_HOME/ukpm/oci) and moves them to and from OCI registries and containerd. Settings
/// come from flags, then UKPM_* variables, then the config file ($UKPM_CONFIG, else
/// $XDG_CONFIG_HOME/ukpm/config.json). Results go to stdout (one JSON document with --json),
/// progress and messages to stderr. Exit codes: 0 success, 1 failure, 2 usage, 130 interrupted.
#[derive(Debug, Parser)]
#[command(
    name = "ukpm",
    version = VERSION,
    propagate_version = true,
    after_help = "Examples:
  ukpm pack helloworld:latest --kernel build/kernel --arch x86_64 --plat qemu
  ukpm ls
  ukpm push helloworld --to ghcr.io/me/helloworld:latest
  ukpm pull unikraft.org/nginx:latest
  ukpm help pack                            # a command's options and examples
  source <(ukpm completions bash)           # completions in this bash session
  ukpm man > ukpm.1 && man ./ukpm.1         # the manual page"
)]
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

    /// A usage error with the command's own usage line, as clap's own errors have; unstyled,
    /// so [`plain_message`] can take its text as it is.
    fn usage_error(&self, kind: clap::error::ErrorKind, message: impl std::fmt::Display) -> clap::Error {
        let mut cli = Cli::command().styles(clap::builder::Styles::plain());
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

/// clap's message for a refused command line as plain text, the refused argument in it exactly
/// as given. With clap's `color` feature, `render().to_string()` strips every escape sequence,
/// the argument's own too: a hostile one would vanish from the message unseen and from the
/// `--json` document. So the command line is parsed again with plain styles, whose message has
/// no styling to strip; an error of [`Cli::check`] is unstyled already.
pub fn plain_message(err: &clap::Error) -> String {
    let again = Cli::command()
        .styles(clap::builder::Styles::plain())
        .try_get_matches_from(std::env::args_os());
    match again {
        Err(plain) if plain.kind() == err.kind() => plain.render().ansi().to_string(),
        _ => err.render().ansi().to_string(),
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

/// Flags every command takes, listed apart from a command's own in `--help`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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
    /// How progress is shown on stderr (json: NDJSON events, see docs/json.md)
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto, env = "UKPM_PROGRESS", value_name = "HOW")]
    pub progress: Progress,
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Bars on a terminal, lines otherwise; nothing under --json
    Auto,
    /// Bars (lines where stderr is not a terminal), even under --json or -v
    Bars,
    /// A line per finished blob and every few seconds, never bars
    Plain,
    /// One JSON event per line (NDJSON), even under --json and -q
    Json,
    /// No progress at all
    None,
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

/// The commands. Each has a one-line summary (the list in `ukpm --help`), a paragraph for its
/// own `--help` and the man page, and examples.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Package a built kernel (and initrd) as an OCI image in the store
    ///
    /// Packs a kernel, its kconfig (`.config`, whose entries become OS features) and an optional
    /// rootfs into the store as an OCI image, exactly as `kraft pkg` does: one index per name,
    /// one manifest per platform, the kernel and initrd as single-file layers. Without --kernel
    /// it packs the KraftKit project in DIR (default `.`), one entry per target of its
    /// Kraftfile; with --runtime, a rootfs on a prebuilt runtime package. When NAME already holds
    /// this platform, --strategy decides (merge, the default, keeps the other platforms). No
    /// clock time goes in unless SOURCE_DATE_EPOCH or --created is set: the same inputs give the
    /// same digests.
    #[command(
        alias = "pkg",
        after_help = "Examples:
  ukpm pack hello:1 --kernel build/kernel --kconfig .config --plat qemu/x86_64
  ukpm pack nginx:1.25 --kernel kernel --plat fc/x86_64 --rootfs ./rootfs
  ukpm pack app --kernel kernel --arch arm64 --plat qemu -- /app --port 8080
  ukpm pack myapp .                         # the KraftKit project here
  ukpm pack myapp --runtime nginx:latest --rootfs ./rootfs --plat qemu/x86_64
  ukpm pack -n ghcr.io/me/app:v1 --target qemu/x86_64 --push"
    )]
    Pack(Box<PackArgs>),
    /// List the packages in the store, one line per platform
    ///
    /// Lists the packages in the store, one line per platform of each name, narrowed by
    /// architecture, platform, kconfig entries or a name glob. With --remote it lists what the
    /// configured registries hold instead, from the cache `ukpm update` keeps (--update asks
    /// the registries first). -o json (or --json) gives a document for scripts.
    #[command(
        alias = "list",
        after_help = "Examples:
  ukpm ls
  ukpm ls --plat qemu/x86_64 --kconfig CONFIG_LIBPOSIX_SOCKET
  ukpm ls --name 'unikraft.org/*' -o json
  ukpm ls --remote --update 'ghcr.io/unikraft/*'"
    )]
    Ls(LsArgs),
    /// Show a package: each platform's kernel, initrd, command, kconfig (--raw: the documents)
    ///
    /// Shows what a name resolves to: for each platform, the kernel and initrd sizes, the
    /// command, the kconfig highlights, annotations and when it was created and pulled; --raw
    /// prints the index, manifests and configs instead, and --plat, --platform, --arch or
    /// --kconfig keep one platform's. A name not in the store is read from its registry; with
    /// --remote the registry is always asked, never the store.
    #[command(
        aliases = ["info", "show", "get", "i"],
        after_help = "Examples:
  ukpm inspect helloworld
  ukpm inspect helloworld --plat qemu/x86_64 --raw
  ukpm inspect unikraft.org/nginx:latest --remote
  ukpm inspect helloworld -o yaml"
    )]
    Inspect(InspectArgs),
    /// Print the digest a reference resolves to on its registry (tag to index or manifest)
    ///
    /// Asks the reference's registry what the tag points at, without pulling anything, and
    /// prints that digest: the index's, or with --platform that platform's manifest's. Use it
    /// to pin a tag in a script or a deployment (`NAME@sha256:...`).
    #[command(after_help = "Examples:
  ukpm digest unikraft.org/nginx:latest
  ukpm digest ghcr.io/me/app:v1 --platform qemu/x86_64")]
    Digest(DigestArgs),
    /// Delete a manifest or index (by digest, or a tag's target) from its registry
    ///
    /// Deletes from the registry, not from the store, the manifest or index REF names: the
    /// digest given, or the one the tag points at (every other tag pointing at it loses it
    /// too). The registry must allow deletes (docker-registry:
    /// REGISTRY_STORAGE_DELETE_ENABLED=true); its blobs go when the registry collects garbage.
    #[command(after_help = "Examples:
  ukpm delete ghcr.io/me/app:old
  ukpm delete localhost:5000/app@sha256:<digest>")]
    Delete(DeleteArgs),
    /// Write a package's kernel and initrd into a folder
    ///
    /// Writes the files of one of the package's platforms into DIR (created if missing): the
    /// kernel at DIR/unikraft/bin/kernel, the initrd at DIR/unikraft/bin/initrd. --arch, --plat
    /// and --kconfig choose the platform when the package has several. Every blob is verified
    /// as it is read and the layers are extracted into a staging folder, moved into DIR only
    /// when complete; entries that would land outside DIR are refused.
    #[command(after_help = "Examples:
  ukpm unpack helloworld ./out
  ukpm unpack unikraft.org/nginx:latest ./nginx --plat qemu/x86_64")]
    Unpack(UnpackArgs),
    /// Fetch a package from a registry into the store
    ///
    /// Downloads packages from their registries into the store, verifying every blob. Without
    /// --arch, --plat, --kconfig or --all-platforms it pulls this machine's architecture and
    /// platform (qemu, or xen in a Xen control domain) and says so on stderr. A pull that was
    /// interrupted, even killed, resumes where it stopped when run again. Short names resolve
    /// against the configured registries (unikraft.org unless --registry or the config file
    /// say otherwise); credentials come from `ukpm login`, KraftKit's or docker's config.
    #[command(
        alias = "pl",
        after_help = "Examples:
  ukpm pull nginx:latest
  ukpm pull unikraft.org/nginx:latest --plat fc/x86_64
  ukpm pull ghcr.io/me/app:v1 --all-platforms
  ukpm pull helloworld -o ./out             # pull, then unpack into ./out"
    )]
    Pull(PullArgs),
    /// Send a package from the store to a registry
    ///
    /// Uploads a stored package, every platform, to the registry its name points at (or to
    /// --to): blobs the registry has are skipped, blobs in another repository of that registry
    /// are mounted, then the manifests and the index go up under the tag. --merge joins the
    /// platforms to the index the tag already holds instead of replacing it, safe for CI jobs
    /// that each push one platform (docs/push-merge.md).
    #[command(
        alias = "ph",
        after_help = "Examples:
  ukpm push ghcr.io/me/helloworld:latest
  ukpm push helloworld --to ghcr.io/me/helloworld:v1
  ukpm push ghcr.io/me/app:latest --merge   # from each of several CI jobs"
    )]
    Push(PushArgs),
    /// Give a stored package another name
    ///
    /// Points DST at the same index as SRC, in the store; no blob is copied. Push DST to
    /// publish it under that name, or push SRC with --to DST in one step.
    #[command(after_help = "Examples:
  ukpm tag helloworld:latest ghcr.io/me/helloworld:v1
  ukpm push ghcr.io/me/helloworld:v1")]
    Tag(TagArgs),
    /// Check credentials for a registry and save them in the docker config.json
    ///
    /// Asks the registry whether it accepts the user and password (or token), and only then
    /// saves them in the docker config.json ($DOCKER_CONFIG, else ~/.docker), where docker,
    /// skopeo and crane find them too. Without --password-stdin or --token it prompts on the
    /// terminal, the password without echo. It warns when a KraftKit entry or a token variable
    /// for the host takes precedence over what it saved.
    #[command(after_help = "Examples:
  ukpm login ghcr.io -u me
  printf '%s' \"$TOKEN\" | ukpm login ghcr.io -u me --password-stdin")]
    Login(LoginArgs),
    /// Remove saved credentials for a registry
    ///
    /// Removes the registry's entry from the docker config.json that `ukpm login` (or `docker
    /// login`) wrote. Credentials from KraftKit's config or from variables are left as they are.
    #[command(after_help = "Examples:
  ukpm logout ghcr.io")]
    Logout(LogoutArgs),
    /// Remove references from the store (their blobs stay until `ukpm gc`)
    ///
    /// Removes names from the store. Their blobs stay: `ukpm gc` deletes the blobs no remaining
    /// name reaches, so a kernel another package shares is kept.
    #[command(
        alias = "remove",
        after_help = "Examples:
  ukpm rm helloworld
  ukpm rm helloworld nginx:1.25 && ukpm gc
  ukpm rm --all"
    )]
    Rm(RmArgs),
    /// Delete blobs no reference reaches
    ///
    /// Walks every name in the store through its index, manifests and configs (and every
    /// descriptor in a document of a type it does not know) and deletes the blobs none of them
    /// reaches. It refuses, naming the reference, when a document it must follow cannot be read.
    #[command(after_help = "Examples:
  ukpm rm helloworld && ukpm gc")]
    Gc,
    /// Check every blob against its digest and every reference against what it needs
    ///
    /// Hashes every blob in the store and checks that every name reaches the documents and
    /// layers it needs, present and intact; it exits 1 when anything is wrong. --repair fetches
    /// damaged or missing blobs again from the package's registry, then collects garbage.
    #[command(after_help = "Examples:
  ukpm fsck
  ukpm fsck --repair")]
    Fsck(FsckArgs),
    /// Copy packages from KraftKit's store into this store, verified, digests kept
    ///
    /// Copies the packages `kraft pkg` keeps in its runtime folder (all of them when no REF is
    /// named) into this store, byte for byte, so their digests stay; every blob is checked as it
    /// is read and as it is written. A package with a damaged blob is reported and not copied;
    /// the others are.
    #[command(after_help = "Examples:
  ukpm import
  ukpm import helloworld --from-kraftkit ~/.local/share/kraftkit/runtime")]
    Import(ImportArgs),
    /// Copy packages from this store into KraftKit's store, in the layout `kraft run` reads
    ///
    /// Copies packages from this store (all of them when no REF is named) into KraftKit's
    /// runtime folder, byte for byte, so `kraft pkg ls` and `kraft run` see them; a package's
    /// name is set only once all its blobs arrived.
    #[command(after_help = "Examples:
  ukpm export --to-kraftkit
  ukpm export helloworld --to-kraftkit=/srv/kraftkit/runtime")]
    Export(ExportArgs),
    /// Copy a package between registries, without the store (only --plat/--arch: a new index, another digest)
    ///
    /// Streams every blob from SRC's registry into DST's, never through the store nor whole in
    /// memory; blobs DST has are skipped, and on one registry they are mounted. With every
    /// platform (the default) the index is copied byte for byte and DST has SRC's digest; with
    /// --plat, --arch or --kconfig a new index holding only the matching platforms is written,
    /// and its digest differs. --referrers also copies signatures and SBOMs.
    #[command(
        alias = "cp",
        after_help = "Examples:
  ukpm copy unikraft.org/nginx:latest ghcr.io/me/nginx:latest
  ukpm copy ghcr.io/me/app:v1 ghcr.io/me/app:stable --referrers
  ukpm copy ghcr.io/me/app:v1 registry.internal:5000/app:v1 --plat qemu/x86_64"
    )]
    Copy(CopyArgs),
    /// Write packages, every platform and blob, as an OCI layout tar (`skopeo`'s `oci-archive:`)
    ///
    /// Writes the named packages, with every platform the store holds, as an OCI image layout
    /// in a tar that `ukpm load` and `skopeo copy oci-archive:FILE:NAME` read: packages cross an
    /// air gap this way. The bytes are deterministic; the file is replaced only once complete;
    /// `-o -` writes to stdout (never to a terminal).
    #[command(after_help = "Examples:
  ukpm save helloworld nginx:1.25 -o packages.tar
  ukpm save helloworld -o - | ssh host ukpm load -")]
    Save(SaveArgs),
    /// Read an OCI layout tar (`ukpm save`, `skopeo`, `docker save`), verified, into the store
    ///
    /// Reads a tar that `ukpm save` or `skopeo copy ... oci-archive:` wrote (gzipped too),
    /// checks every blob and every package in a staging folder under $TMPDIR, and only then
    /// copies the blobs into the store and sets the names: a damaged or hostile archive leaves
    /// the store as it was.
    #[command(after_help = "Examples:
  ukpm load packages.tar
  ssh host ukpm save helloworld -o - | ukpm load -")]
    Load(LoadArgs),
    /// List the registries' packages again and cache them for `ls --remote`
    ///
    /// Reads each configured registry's catalog and the repositories named, every tag with its
    /// index and manifests, and keeps them in $XDG_CACHE_HOME/ukpm/remote, from which `ukpm ls
    /// --remote` answers, offline too. A registry that refuses to list its catalog (most token
    /// registries) is listed only for the repositories named as REGISTRY/REPO.
    #[command(
        alias = "upd",
        after_help = "Examples:
  ukpm update
  ukpm update ghcr.io/unikraft/nginx 'unikraft.org/*'"
    )]
    Update(UpdateArgs),
    /// List the tags of a repository on its registry
    ///
    /// Asks the repository's registry for its tags, page by page, and prints them one per line.
    #[command(after_help = "Examples:
  ukpm tags unikraft.org/nginx
  ukpm tags localhost:5000/app --json")]
    Tags(TagsArgs),
    /// Manage the registries ukpm lists and resolves against (the config file's `registries`)
    ///
    /// The sources are the registries short names resolve against and `ls --remote` lists:
    /// the `registries` key of the config file ($UKPM_CONFIG, else
    /// $XDG_CONFIG_HOME/ukpm/config.json). The file is rewritten with its other keys kept.
    #[command(
        subcommand,
        after_help = "Examples:
  ukpm source add ghcr.io localhost:5000
  ukpm source ls
  ukpm source rm localhost:5000"
    )]
    Source(SourceCommand),
    /// `source add`, as `kraft pkg source` (`src`) takes it
    #[command(name = "src", hide = true)]
    Src(SourceAddArgs),
    /// `source rm`, as `kraft pkg unsource` (`unsrc`) takes it
    #[command(name = "unsrc", alias = "unsource", hide = true)]
    Unsrc(SourceRmArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    ///
    /// Prints a script that completes ukpm's commands, flags and values in SHELL, generated
    /// from the same definitions that parse the command line. Load it into the running shell,
    /// or save it where the shell looks for completions.
    #[command(after_help = "Examples:
  source <(ukpm completions bash)           # this bash session
  ukpm completions bash > ~/.local/share/bash-completion/completions/ukpm
  ukpm completions zsh > ~/.zfunc/_ukpm     # with fpath+=~/.zfunc
  ukpm completions fish > ~/.config/fish/completions/ukpm.fish")]
    Completions(CompletionsArgs),
    /// Print the manual page, ukpm.1, in roff
    ///
    /// Prints the manual page of ukpm and every command, generated from the same definitions
    /// as --help. Save it as ukpm.1 to read it with man, or put it in a man1 folder on the
    /// manual path.
    #[command(after_help = "Examples:
  ukpm man > ukpm.1 && man ./ukpm.1
  mkdir -p ~/.local/share/man/man1 && ukpm man > ~/.local/share/man/man1/ukpm.1")]
    Man,
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
            Command::Completions(_) => "completions",
            Command::Man => "man",
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
    ///
    /// An index holds one manifest per slot: architecture, platform, kernel version and
    /// kconfig. A pack whose kconfig (or kernel version) differs from the existing manifest's
    /// for the same plat/arch fills a new slot: it becomes a separate entry beside the old one
    /// under merge and abort, and pack warns, listing both digests and the keys that differ
    /// (pull and unpack then choose with --kconfig). Only overwrite leaves one entry.
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
    /// Replace the manifest of the same slot (plat/arch and kconfig), keep the others
    Merge,
    /// Replace the whole index: this manifest alone remains
    Overwrite,
    /// Fail if the same slot (plat/arch and kconfig) already has a manifest
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
    ///
    /// Adds registries to the config file's `registries`, after checking that each answers
    /// `GET /v2/` as a registry does (200, or 401 asking for credentials) unless --force. One
    /// already there is a note, not an error.
    #[command(
        alias = "src",
        after_help = "Examples:
  ukpm source add ghcr.io
  ukpm source add registry.internal:5000 --force"
    )]
    Add(SourceAddArgs),
    /// Remove registries from the config file
    ///
    /// Removes registries from the config file's `registries`. One that is not there is a
    /// note, not an error.
    #[command(aliases = ["remove", "unsrc"], after_help = "Examples:
  ukpm source rm registry.internal:5000")]
    Rm(SourceRmArgs),
    /// Show the registries in the config file
    ///
    /// Prints the registries of the config file, in the order short names are tried against
    /// them.
    #[command(
        alias = "list",
        after_help = "Examples:
  ukpm source ls
  ukpm source ls --json"
    )]
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
    /// The folder to write into (created if missing); it must be empty unless --force
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub filters: Filters,
    /// Unpack into a folder that holds other files: the package's files replace files and
    /// symlinks of the same names (a symlink is replaced, never followed), the rest stays
    #[arg(long, short = 'f')]
    pub force: bool,
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
    /// With -o: unpack into a folder that holds other files (as `unpack --force`)
    #[arg(long, short = 'f', requires = "output")]
    pub force: bool,
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

/// `ukpm completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}
