//! GNU `cpio` as the independent reader of the CPIO newc initrds ukpm writes, so the writer is
//! never checked only against a reader that could share its mistakes.
//!
//! Both functions fail the test (with the command that installs it) when `cpio` is missing, and
//! when `cpio` rejects the archive.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// One entry as `cpio -t -v -n` lists it, fields as `ls -l` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Type and permissions as `ls -l` writes them: `drwxr-xr-x`, `-rw-r--r--`, `lrwxrwxrwx`.
    pub mode: String,
    /// The link count stored in the header.
    pub nlink: u32,
    /// The numeric owner.
    pub uid: u32,
    /// The numeric group.
    pub gid: u32,
    /// The size of the entry's data in bytes (a symlink's: its target's length).
    pub size: u64,
    /// The modification time in UTC, as `cpio` prints it (`Jan 1 1970`, single spaces).
    pub mtime: String,
    /// The name as stored.
    pub name: String,
    /// A symlink's target.
    pub link_target: Option<String>,
}

/// Lists a newc archive with `cpio -t -v -n`, in archive order.
pub fn list(archive: &[u8]) -> Vec<Listed> {
    let out = run(&["-t", "-v", "-n", "--quiet"], archive, None);
    let text = String::from_utf8(out.stdout).expect("cpio listed a name that is not UTF-8");
    text.lines().map(parse_line).collect()
}

/// Unpacks a newc archive into the existing folder `dest` with
/// `cpio -i -d -m --no-absolute-filenames` (times kept, leading `/` dropped).
pub fn extract(archive: &[u8], dest: &Path) {
    run(
        &["-i", "-d", "-m", "--no-absolute-filenames", "--quiet"],
        archive,
        Some(dest),
    );
}

/// Runs `cpio` with `archive` on its standard input and asserts that it succeeded.
fn run(args: &[&str], archive: &[u8], dir: Option<&Path>) -> Output {
    let program = crate::require_program("cpio", "cpio");
    let mut command = Command::new(&program);
    command
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().expect("cannot start cpio");
    let mut stdin = child.stdin.take().expect("cpio's stdin is piped");
    let data = archive.to_vec();
    // Fed from a thread so a large listing cannot fill stdout while stdin is still being
    // written. cpio may stop reading at the trailer, before the padding: a broken pipe is fine.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("cannot wait for cpio");
    feeder.join().expect("the thread feeding cpio panicked");
    assert!(
        out.status.success(),
        "cpio {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Parses `lrwxrwxrwx   1 0   0   3 Jan  1  1970 /a/e -> ./d`: eight fields separated by
/// spaces, then the name (which may hold spaces) and, for a symlink, ` -> ` and its target.
fn parse_line(line: &str) -> Listed {
    let mut rest = line;
    let mut fields = Vec::with_capacity(8);
    for _ in 0..8 {
        rest = rest.trim_start_matches(' ');
        let end = rest
            .find(' ')
            .unwrap_or_else(|| panic!("short cpio listing line: {line:?}"));
        fields.push(&rest[..end]);
        rest = &rest[end + 1..];
    }
    let number = |i: usize| -> u64 {
        fields[i]
            .parse()
            .unwrap_or_else(|_| panic!("field {i} of cpio listing line {line:?} is not a number"))
    };
    let (name, link_target) = if fields[0].starts_with('l') {
        let (name, target) = rest
            .split_once(" -> ")
            .unwrap_or_else(|| panic!("symlink without a target in cpio listing: {line:?}"));
        (name.to_owned(), Some(target.to_owned()))
    } else {
        (rest.to_owned(), None)
    };
    Listed {
        mode: fields[0].to_owned(),
        nlink: u32::try_from(number(1)).expect("nlink fits u32"),
        uid: u32::try_from(number(2)).expect("uid fits u32"),
        gid: u32::try_from(number(3)).expect("gid fits u32"),
        size: number(4),
        mtime: fields[5..8].join(" "),
        name,
        link_target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_parse() {
        let l = parse_line("lrwxrwxrwx   1 0        0               3 Jan  1  1970 /a b/e -> ./d x");
        assert_eq!(
            l,
            Listed {
                mode: "lrwxrwxrwx".into(),
                nlink: 1,
                uid: 0,
                gid: 0,
                size: 3,
                mtime: "Jan 1 1970".into(),
                name: "/a b/e".into(),
                link_target: Some("./d x".into()),
            }
        );
        let d = parse_line("drwxr-xr-x   2 0        0               0 Jan  1  1970 /a");
        assert_eq!((d.name.as_str(), d.link_target), ("/a", None));
    }
}
