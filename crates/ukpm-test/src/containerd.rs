//! A real `containerd` for tests (Debian's 1.6), run as root with its root, state, sockets and
//! plugin folders all inside one short temp directory, the CRI plugin disabled, and `ctr` to look
//! at what ukpm put there: images, content with its labels, leases, namespaces, and containerd's
//! own unpacking of an image into a mount.
//!
//! Every daemon has its own directory and socket, so tests in one process may each start one at
//! the same time. The daemon is killed and reaped when its guard drops, anything still mounted
//! under its directory is unmounted, and the directory is removed, so nothing outlives the test.
//! A missing program fails the test with an install hint; it never skips.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::{Outcome, UkpmCommand, poll_until};

/// How long containerd may take to answer `ctr version` before the test fails with its log.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest temp base we put sockets under: a unix socket path must fit in 108 bytes, and
/// containerd adds `containerd.sock.ttrpc` (21 bytes) to our directory.
const MAX_BASE_LEN: usize = 60;

/// Plugins left out: CRI (it wants CNI, runc and images of its own) and the snapshotters that
/// cannot work here and only fill the log with errors (aufs tries `modprobe`).
const DISABLED_PLUGINS: [&str; 5] = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
];

/// A running `containerd`, killed and reaped on drop, with its temp directory removed.
///
/// Each value is its own daemon with its own metadata and content, so tests do not see each
/// other's images. Look inside with [`Containerd::ctr`] and the helpers built on it.
pub struct Containerd {
    // Fields drop in order: the daemon first, the temp dir last (see `Drop`).
    process: Daemon,
    ctr: PathBuf,
    dir: TempDir,
}

impl Containerd {
    /// Writes a config, starts `containerd --config CONFIG` and waits until `ctr version`
    /// answers on its socket; panics with containerd's log if it exits or takes longer than
    /// 20 s.
    pub fn start() -> Containerd {
        let program = crate::require_program("containerd", "containerd");
        let ctr = crate::require_program("ctr", "containerd");
        let dir = short_temp_dir();
        let config = dir.path().join("config.toml");
        write(&config, config_toml(dir.path()).as_bytes());
        let mut command = Command::new(program);
        command.arg("--config").arg(&config).current_dir(dir.path());
        let process = Daemon::spawn(command, dir.path().join("containerd.log"));
        let mut containerd = Containerd { process, ctr, dir };
        containerd.wait_until_ready();
        containerd
    }

    /// The gRPC socket: what `ukpm --containerd` and `ctr --address` take.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// Its temp directory (config, `root/`, `state/`, sockets, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's process id, so a test can check it is gone after the guard drops.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// What containerd has logged so far (level `info` and up), for failure messages.
    pub fn log(&self) -> String {
        self.process.output()
    }

    /// `ctr --address SOCKET -n NAMESPACE`, not yet run, with a clean environment (no
    /// `CONTAINERD_*` from the developer's shell), run in the daemon's directory; add arguments
    /// and [`UkpmCommand::run`] it. Use this for arguments that are paths relative to another
    /// folder ([`UkpmCommand::current_dir`]).
    pub fn ctr_command(&self, namespace: &str) -> UkpmCommand {
        UkpmCommand::new(
            self.ctr.as_os_str(),
            self.dir.path(),
            &self.dir.path().join("no-ukpm-store"),
        )
        .arg("--address")
        .arg(self.socket())
        .args(["-n", namespace])
    }

    /// Runs `ctr --address SOCKET -n NAMESPACE ARGS...` to completion, whatever its exit code.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Outcome {
        self.ctr_command(namespace).args(args).run()
    }

    /// Runs `ctr ... ARGS...`, panics (with containerd's log) unless it succeeds, and returns
    /// its stdout.
    #[track_caller]
    pub fn ctr_ok(&self, namespace: &str, args: &[&str]) -> String {
        let out = self.ctr(namespace, args);
        if out.code != 0 {
            panic!(
                "expected `{}` to succeed\n{}\ncontainerd's log:\n{}",
                out.command(),
                out.snapshot_text(),
                self.log()
            );
        }
        out.stdout
    }

    /// The image names in a namespace (`ctr images ls -q`), sorted.
    #[track_caller]
    pub fn images(&self, namespace: &str) -> Vec<String> {
        sorted_lines(&self.ctr_ok(namespace, &["images", "ls", "-q"]))
    }

    /// The image records in a namespace as `ctr images ls` prints them: name, target media
    /// type and target digest, sorted by name.
    #[track_caller]
    pub fn image_records(&self, namespace: &str) -> Vec<ImageRecord> {
        let text = self.ctr_ok(namespace, &["images", "ls"]);
        let mut records: Vec<ImageRecord> = text.lines().skip(1).filter_map(ImageRecord::parse).collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        records
    }

    /// The digests of the blobs a namespace holds (`ctr content ls -q`), sorted.
    #[track_caller]
    pub fn content(&self, namespace: &str) -> Vec<String> {
        sorted_lines(&self.ctr_ok(namespace, &["content", "ls", "-q"]))
    }

    /// The labels of each blob of a namespace (`ctr content ls`), by digest: where containerd's
    /// GC looks for `containerd.io/gc.ref.content.*` edges.
    #[track_caller]
    pub fn content_labels(&self, namespace: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let text = self.ctr_ok(namespace, &["content", "ls"]);
        text.lines().skip(1).filter_map(parse_content_row).collect()
    }

    /// The bytes of one blob (`ctr content get DIGEST`), read with containerd's own reader.
    #[track_caller]
    pub fn blob(&self, namespace: &str, digest: &str) -> Vec<u8> {
        let output = Command::new(&self.ctr)
            .env_clear()
            .arg("--address")
            .arg(self.socket())
            .args(["-n", namespace, "content", "get", digest])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ctr content get: {e}"));
        assert!(
            output.status.success(),
            "ctr content get {digest} failed with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// The ids of the leases in a namespace (`ctr leases ls -q`), sorted: a tool that writes
    /// under a lease must delete it when done, or what it wrote is never collected.
    #[track_caller]
    pub fn leases(&self, namespace: &str) -> Vec<String> {
        sorted_lines(&self.ctr_ok(namespace, &["leases", "ls", "-q"]))
    }

    /// The namespaces that exist (`ctr namespaces ls -q`), sorted.
    #[track_caller]
    pub fn namespaces(&self) -> Vec<String> {
        sorted_lines(&self.ctr_ok("default", &["namespaces", "ls", "-q"]))
    }

    /// Runs containerd's garbage collector now and waits for it: creates a lease of our own and
    /// deletes it with `--sync`, which collects everything nothing references (in every
    /// namespace) before it returns. Without this, collection waits for containerd's scheduler.
    #[track_caller]
    pub fn gc(&self, namespace: &str) {
        let id = format!("ukpm-test-gc-{}-{}", std::process::id(), nanos());
        self.ctr_ok(namespace, &["leases", "create", "--id", &id, "--expires", "0"]);
        self.ctr_ok(namespace, &["leases", "rm", "--sync", &id]);
    }

    /// Has containerd unpack an image for `platform` (`os/arch`) and mount its root filesystem
    /// read-only at `target` (`ctr images mount`), which must be an existing, empty folder. The
    /// guard unmounts it and removes the snapshot (`ctr images unmount --rm`) when dropped.
    #[track_caller]
    pub fn mount_image(
        &self,
        namespace: &str,
        reference: &str,
        platform: &str,
        target: &Path,
    ) -> ImageMount<'_> {
        let target_arg = target.to_string_lossy().into_owned();
        self.ctr_ok(
            namespace,
            &["images", "mount", "--platform", platform, reference, &target_arg],
        );
        ImageMount {
            containerd: self,
            namespace: namespace.to_string(),
            target: target.to_path_buf(),
        }
    }

    fn wait_until_ready(&mut self) {
        let socket = self.socket();
        let ready = poll_until(READY_TIMEOUT, || {
            if let Some(status) = self.process.exited() {
                panic!(
                    "containerd exited with {status} before answering on {}:\n{}",
                    socket.display(),
                    self.log()
                );
            }
            (UnixStream::connect(&socket).is_ok() && self.ctr("default", &["version"]).code == 0)
                .then_some(())
        });
        if ready.is_none() {
            panic!(
                "containerd did not answer `ctr version` on {} within {READY_TIMEOUT:?}; its log:\n{}",
                socket.display(),
                self.log()
            );
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("containerd's log:\n{}", self.log());
        }
        self.process.stop();
        // A mount left by a failed test (an image mount, a snapshot) would make the temp dir
        // impossible to remove; detach them before it goes.
        unmount_under(self.dir.path());
    }
}

/// One line of `ctr images ls`: an image record and what it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The full reference it is recorded under (`unikraft.org/helloworld:latest`).
    pub name: String,
    /// The media type of its target (an index or a manifest).
    pub media_type: String,
    /// The digest of its target.
    pub digest: String,
}

impl ImageRecord {
    /// `REF TYPE DIGEST SIZE PLATFORMS LABELS`; the size has a space in it, so only the first
    /// three columns are read.
    fn parse(line: &str) -> Option<ImageRecord> {
        let mut fields = line.split_whitespace();
        let (name, media_type, digest) = (fields.next()?, fields.next()?, fields.next()?);
        digest.starts_with("sha256:").then(|| ImageRecord {
            name: name.to_string(),
            media_type: media_type.to_string(),
            digest: digest.to_string(),
        })
    }
}

/// An image root filesystem containerd mounted (see [`Containerd::mount_image`]); unmounted and
/// its snapshot removed on drop.
pub struct ImageMount<'a> {
    containerd: &'a Containerd,
    namespace: String,
    target: PathBuf,
}

impl ImageMount<'_> {
    /// Where the root filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for ImageMount<'_> {
    fn drop(&mut self) {
        let target = self.target.to_string_lossy().into_owned();
        let out = self
            .containerd
            .ctr(&self.namespace, &["images", "unmount", "--rm", &target]);
        if out.code != 0 {
            eprintln!("cannot unmount {target}:\n{}", out.snapshot_text());
            unmount_under(&self.target);
        }
    }
}

/// containerd itself: a child process whose output goes to a file, killed and reaped on drop.
struct Daemon {
    child: Child,
    output: PathBuf,
    stopped: bool,
}

impl Daemon {
    fn spawn(mut command: Command, output: PathBuf) -> Daemon {
        let file = fs_err::File::create(&output)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_file();
        let stderr = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share {}: {e}", output.display()));
        // containerd reads no CONTAINERD_* variables, but its plugins read the proxy and
        // TMPDIR ones: start it with only PATH, as a service manager would.
        command
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start containerd ({command:?}): {e}"));
        Daemon {
            child,
            output,
            stopped: false,
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn output(&self) -> String {
        fs_err::read_to_string(&self.output).unwrap_or_else(|e| format!("(containerd's log unreadable: {e})"))
    }

    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The config: everything containerd writes lives under `dir`, including the `opt` plugin's
/// folder (by default `/opt/containerd`, outside any temp dir) and the metrics listener is off.
fn config_toml(dir: &Path) -> String {
    let path = |name: &str| toml_string(&dir.join(name));
    let disabled = DISABLED_PLUGINS
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "version = 2\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [{disabled}]\n\
         \n\
         [grpc]\n  address = {grpc}\n\
         [ttrpc]\n  address = {ttrpc}\n\
         [debug]\n  address = {debug}\n  level = \"info\"\n\
         [metrics]\n  address = \"\"\n\
         \n\
         [plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = {opt}\n",
        root = path("root"),
        state = path("state"),
        grpc = path("containerd.sock"),
        ttrpc = path("containerd.sock.ttrpc"),
        debug = path("debug.sock"),
        opt = path("opt"),
    )
}

/// A TOML basic string of a path (temp paths hold no quotes or backslashes, but be exact).
fn toml_string(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A temp dir whose path is short enough for unix sockets inside it: under `$TMPDIR` when that
/// is short, else under `/tmp`.
fn short_temp_dir() -> TempDir {
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() <= MAX_BASE_LEN {
        base
    } else {
        PathBuf::from("/tmp")
    };
    tempfile::Builder::new()
        .prefix("ukctd-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("cannot make a temp dir under {}: {e}", base.display()))
}

/// Lazily unmounts every mount point at or under `dir`, deepest first (`umount --lazy`), as
/// listed in `/proc/self/mountinfo`.
fn unmount_under(dir: &Path) {
    let Ok(info) = fs_err::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mountinfo(point)))
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for point in points {
        let status = Command::new("umount")
            .arg("--lazy")
            .arg(&point)
            .stdin(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("cannot unmount {}", point.display());
        }
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(Ok(value)) = bytes
                .get(i + 1..i + 4)
                .and_then(|octal| std::str::from_utf8(octal).ok())
                .map(|octal| u8::from_str_radix(octal, 8))
        {
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `DIGEST \t SIZE \t AGE \t LABELS` (the age has spaces, the columns are tab-separated);
/// labels are `k=v` joined by commas, or `-`.
fn parse_content_row(line: &str) -> Option<(String, BTreeMap<String, String>)> {
    let fields: Vec<&str> = line.split('\t').filter(|f| !f.is_empty()).collect();
    let digest = fields.first()?.trim();
    if !digest.starts_with("sha256:") {
        return None;
    }
    let labels = fields.last()?.trim();
    let labels = if labels == "-" || fields.len() < 4 {
        BTreeMap::new()
    } else {
        labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Some((digest.to_string(), labels))
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn write(path: &Path, contents: &[u8]) {
    fs_err::write(path, contents).unwrap_or_else(|e| panic!("{e}"));
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_leaves_nothing_behind() {
        let containerd = Containerd::start();
        let version = containerd.ctr_ok("default", &["version"]);
        assert!(version.contains("Server:"), "{version}");
        assert!(containerd.socket().as_os_str().len() < 100);
        // The `opt` plugin made its folder here, not in /opt.
        assert!(containerd.dir().join("opt").is_dir());
        assert_eq!(containerd.images("t"), Vec::<String>::new());
        assert_eq!(containerd.content("t"), Vec::<String>::new());
        assert_eq!(containerd.leases("t"), Vec::<String>::new());
        containerd.gc("t");
        assert_eq!(containerd.leases("t"), Vec::<String>::new());
        // Creating and deleting a lease made the namespace exist.
        assert!(containerd.namespaces().contains(&"t".to_string()));
        let (pid, dir) = (containerd.pid(), containerd.dir().to_path_buf());
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(containerd);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "containerd {pid} outlived its guard"
        );
        assert!(!dir.exists(), "{} outlived its guard", dir.display());
    }

    #[test]
    fn two_daemons_run_side_by_side() {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(Containerd::start);
            let b = s.spawn(Containerd::start);
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_ne!(a.socket(), b.socket());
        a.ctr_ok("x", &["leases", "create", "--id", "only-in-a"]);
        assert_eq!(a.leases("x"), ["only-in-a"]);
        assert_eq!(b.leases("x"), Vec::<String>::new());
    }

    #[test]
    fn config_keeps_everything_in_the_temp_dir() {
        let config = config_toml(Path::new("/tmp/ukctd-x"));
        assert!(config.contains("path = \"/tmp/ukctd-x/opt\""), "{config}");
        assert!(config.contains("\"io.containerd.grpc.v1.cri\""), "{config}");
        assert!(!config.contains("/var/") && !config.contains("/run/"), "{config}");
    }

    #[test]
    fn rows_of_ctr_output_parse() {
        let row = "sha256:d4\t819B\tLess than a second\tcontainerd.io/gc.ref.content.m.0=sha256:43,a=b";
        let (digest, labels) = parse_content_row(row).unwrap();
        assert_eq!(digest, "sha256:d4");
        assert_eq!(labels["containerd.io/gc.ref.content.m.0"], "sha256:43");
        assert_eq!(labels["a"], "b");
        let (_, none) = parse_content_row("sha256:35\t2.048kB\t2 minutes\t-").unwrap();
        assert!(none.is_empty());
        let image = ImageRecord::parse(
            "u.org/h:latest application/vnd.oci.image.index.v1+json sha256:d4 819.0 B qemu/x86_64 -",
        )
        .unwrap();
        assert_eq!(
            (image.name.as_str(), image.digest.as_str()),
            ("u.org/h:latest", "sha256:d4")
        );
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
    }
}
