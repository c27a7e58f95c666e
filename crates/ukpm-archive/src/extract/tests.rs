//! The extraction rules, each pinned down by a test, and property tests that no archive can
//! make extraction panic or write outside the folder.

use std::os::unix::fs::MetadataExt;

use proptest::prelude::*;
use tar::Header;

use super::*;

/// One entry of a test archive.
enum E<'a> {
    File(&'a str, u32, &'a [u8]),
    Dir(&'a str, u32),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Other(&'a str, EntryType),
}

/// A header whose name and link name are copied verbatim, bypassing tar's own checks, so
/// hostile archives can be built.
fn raw_header(name: &str, kind: EntryType, mode: u32, size: u64, link: &str) -> Header {
    let mut h = Header::new_gnu();
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (h, data): (Header, &[u8]) = match *e {
            E::File(n, m, d) => (raw_header(n, EntryType::Regular, m, d.len() as u64, ""), d),
            E::Dir(n, m) => (raw_header(n, EntryType::Directory, m, 0, ""), &[]),
            E::Sym(n, t) => (raw_header(n, EntryType::Symlink, 0o777, 0, t), &[]),
            E::Hard(n, t) => (raw_header(n, EntryType::Link, 0o644, 0, t), &[]),
            E::Other(n, k) => (raw_header(n, k, 0o644, 0, ""), &[]),
        };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A sandbox: `tmp/root/dest`, so escapes into `root` can be seen.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(tmp.path().join("root/dest")).unwrap();
        Self { tmp }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn dest(&self) -> PathBuf {
        self.root().join("dest")
    }
    fn extract(&self, entries: &[E<'_>]) -> Result<Vec<PathBuf>, ExtractError> {
        extract(tar_of(entries).as_slice(), &self.dest())
    }
    /// Asserts that `root` holds `dest` and nothing else.
    fn assert_contained(&self) {
        let names: Vec<_> = fs_err::read_dir(self.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dest"]);
    }
}

fn is_symlink(path: &Path) -> bool {
    fs_err::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn regular_file_keeps_mode_and_content() {
    let sb = Sandbox::new();
    let files = sb
        .extract(&[
            E::File("unikraft/bin/kernel", 0o755, b"\x7fELF kernel"),
            E::File("x", 0o600, b""),
        ])
        .unwrap();
    assert_eq!(files, [PathBuf::from("unikraft/bin/kernel"), PathBuf::from("x")]);
    let kernel = sb.dest().join("unikraft/bin/kernel");
    assert_eq!(fs_err::read(&kernel).unwrap(), b"\x7fELF kernel");
    assert_eq!(fs_err::metadata(&kernel).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        fs_err::metadata(sb.dest().join("x")).unwrap().mode() & 0o7777,
        0o600
    );
    // Parents created on the way are 0755.
    assert_eq!(
        fs_err::metadata(sb.dest().join("unikraft")).unwrap().mode() & 0o7777,
        0o755
    );
    sb.assert_contained();
}

#[test]
fn prefixed_and_absolute_names_land_inside() {
    let sb = Sandbox::new();
    let files = sb
        .extract(&[
            E::Dir("./", 0o755),
            E::File("./a", 0o644, b"a"),
            E::File("/b", 0o644, b"b"),
            E::File("//./c/./d", 0o644, b"d"),
        ])
        .unwrap();
    assert_eq!(
        files,
        [PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c/d")]
    );
    assert_eq!(fs_err::read(sb.dest().join("b")).unwrap(), b"b");
    assert_eq!(fs_err::read(sb.dest().join("c/d")).unwrap(), b"d");
    sb.assert_contained();
}

#[test]
fn dot_dot_names_are_refused() {
    for name in ["../evil", "a/../../evil", "a/..", "/../evil", "./../evil"] {
        let sb = Sandbox::new();
        let err = sb.extract(&[E::File(name, 0o644, b"evil")]).unwrap_err();
        assert!(
            matches!(&err, ExtractError::PathEscape { entry } if entry == name),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("outside the target folder"));
        sb.assert_contained();
    }
}

#[test]
fn escaping_symlinks_are_refused() {
    for (name, target) in [
        ("link", "/etc"),
        ("link", "../.."),
        ("d", ".."),
        ("sub", "/tmp"),
        ("a/b", "../../x"),
        ("e", ""),
    ] {
        let sb = Sandbox::new();
        let err = sb.extract(&[E::Sym(name, target)]).unwrap_err();
        assert!(
            matches!(&err, ExtractError::LinkEscape { entry, target: t } if entry == name && t == target),
            "{name} -> {target}: {err:?}"
        );
        assert!(!is_symlink(&sb.dest().join(name)));
        sb.assert_contained();
    }
}

#[test]
fn inside_symlinks_are_kept() {
    let sb = Sandbox::new();
    let files = sb
        .extract(&[
            E::File("sub/file", 0o644, b"data"),
            E::Sym("ok", "sub/file"),
            E::Sym("sub/up", ".."),
            E::Sym("sub/deep/up2", "../../sub/./file"),
            E::Sym("self", "."),
        ])
        .unwrap();
    assert_eq!(files, [PathBuf::from("sub/file")]);
    for (link, target) in [
        ("ok", "sub/file"),
        ("sub/up", ".."),
        ("sub/deep/up2", "../../sub/./file"),
        ("self", "."),
    ] {
        let path = sb.dest().join(link);
        assert!(is_symlink(&path), "{link}");
        assert_eq!(fs_err::read_link(&path).unwrap(), Path::new(target));
    }
    assert_eq!(fs_err::read(sb.dest().join("ok")).unwrap(), b"data");
    sb.assert_contained();
}

#[test]
fn chained_symlinks_cannot_escape() {
    // `x -> .` is inside, but `y -> x/..` would then resolve to the parent of the folder.
    let sb = Sandbox::new();
    let err = sb.extract(&[E::Sym("x", "."), E::Sym("y", "x/..")]).unwrap_err();
    assert!(matches!(err, ExtractError::LinkEscape { .. }), "{err:?}");
    // And `x/../../evil` is refused for its `..` anyway.
    let sb = Sandbox::new();
    let err = sb
        .extract(&[E::Sym("x", "."), E::File("x/../../evil", 0o644, b"")])
        .unwrap_err();
    assert!(matches!(err, ExtractError::PathEscape { .. }), "{err:?}");
    sb.assert_contained();
}

#[test]
fn no_writing_through_a_symlinked_parent() {
    let sb = Sandbox::new();
    let err = sb
        .extract(&[
            E::Dir("sub", 0o755),
            E::Sym("s", "sub"),
            E::File("s/f", 0o644, b"x"),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::PathEscape { entry } if entry == "s/f"),
        "{err:?}"
    );
    assert!(!sb.dest().join("sub/f").exists());

    // The same with a symlink to a folder outside that was already there.
    let sb = Sandbox::new();
    let outside = sb.tmp.path().join("outside");
    fs_err::create_dir(&outside).unwrap();
    fs_err::os::unix::fs::symlink(&outside, sb.dest().join("planted")).unwrap();
    let err = sb.extract(&[E::File("planted/f", 0o644, b"x")]).unwrap_err();
    assert!(matches!(err, ExtractError::PathEscape { .. }), "{err:?}");
    assert!(fs_err::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn a_symlink_at_the_path_is_replaced_not_followed() {
    let sb = Sandbox::new();
    let outside = sb.tmp.path().join("outside");
    fs_err::write(&outside, b"precious").unwrap();
    fs_err::os::unix::fs::symlink(&outside, sb.dest().join("f")).unwrap();
    fs_err::os::unix::fs::symlink(&outside, sb.dest().join("g")).unwrap();
    sb.extract(&[E::File("f", 0o644, b"new"), E::Sym("g", "f")])
        .unwrap();
    assert_eq!(fs_err::read(&outside).unwrap(), b"precious");
    assert!(!is_symlink(&sb.dest().join("f")));
    assert_eq!(fs_err::read(sb.dest().join("f")).unwrap(), b"new");
    assert_eq!(fs_err::read_link(sb.dest().join("g")).unwrap(), Path::new("f"));

    // A directory entry replaces a planted symlink to a folder outside, and its mode lands on
    // the new directory, not on the outside one.
    let sb = Sandbox::new();
    let outside = sb.tmp.path().join("outside");
    fs_err::create_dir(&outside).unwrap();
    set_mode(&outside, 0o755).unwrap();
    fs_err::os::unix::fs::symlink(&outside, sb.dest().join("d")).unwrap();
    sb.extract(&[E::Dir("d", 0o700), E::File("d/f", 0o644, b"")])
        .unwrap();
    assert!(!is_symlink(&sb.dest().join("d")));
    assert!(sb.dest().join("d/f").is_file());
    assert!(fs_err::read_dir(&outside).unwrap().next().is_none());
    assert_eq!(fs_err::metadata(&outside).unwrap().mode() & 0o7777, 0o755);
}

#[test]
fn later_entries_replace_files_but_not_directories() {
    let sb = Sandbox::new();
    let files = sb
        .extract(&[
            E::File("a", 0o644, b"1"),
            E::File("b", 0o644, b"2"),
            E::Sym("a", "b"),
        ])
        .unwrap();
    assert_eq!(files, [PathBuf::from("b")]);

    let sb = Sandbox::new();
    let err = sb
        .extract(&[E::Dir("d", 0o755), E::File("d", 0o644, b"")])
        .unwrap_err();
    assert!(matches!(err, ExtractError::DirectoryInTheWay { .. }), "{err:?}");

    let sb = Sandbox::new();
    let err = sb
        .extract(&[E::File("f", 0o644, b""), E::File("f/g", 0o644, b"")])
        .unwrap_err();
    assert!(matches!(err, ExtractError::NotADirectory { .. }), "{err:?}");
}

#[test]
fn hard_links() {
    let sb = Sandbox::new();
    let files = sb
        .extract(&[
            E::File("bin/a", 0o755, b"code"),
            E::Hard("bin/b", "bin/a"),
            E::Hard("./c", "/bin/b"),
        ])
        .unwrap();
    assert_eq!(
        files,
        [PathBuf::from("bin/a"), PathBuf::from("bin/b"), PathBuf::from("c")]
    );
    let a = fs_err::metadata(sb.dest().join("bin/a")).unwrap();
    let c = fs_err::metadata(sb.dest().join("c")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (c.ino(), 3));

    for (entries, what) in [
        (vec![E::Hard("l", "../x")], "outside"),
        (vec![E::Hard("l", "missing")], "missing"),
        (vec![E::Dir("d", 0o755), E::Hard("l", "d")], "directory"),
        (
            vec![E::File("f", 0o644, b""), E::Sym("s", "f"), E::Hard("l", "s")],
            "symlink",
        ),
        (
            vec![
                E::File("sub/f", 0o644, b""),
                E::Sym("s", "sub"),
                E::Hard("l", "s/f"),
            ],
            "through symlink",
        ),
        (vec![E::Hard("l", "")], "empty"),
    ] {
        let sb = Sandbox::new();
        fs_err::write(sb.root().join("x"), b"outside").unwrap();
        fs_err::write(sb.dest().join("missing"), b"not from the layer").unwrap();
        let err = sb.extract(&entries).unwrap_err();
        assert!(matches!(err, ExtractError::LinkEscape { .. }), "{what}: {err:?}");
        assert!(!sb.dest().join("l").exists(), "{what}");
    }
}

#[test]
fn directory_modes_are_applied_at_the_end() {
    let sb = Sandbox::new();
    sb.extract(&[
        E::Dir("ro", 0o555),
        E::Dir("ro/inner", 0o500),
        E::File("ro/inner/f", 0o444, b"x"),
    ])
    .unwrap();
    let mode = |p: &str| fs_err::symlink_metadata(sb.dest().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(
        (mode("ro"), mode("ro/inner"), mode("ro/inner/f")),
        (0o555, 0o500, 0o444)
    );
    // Let the temporary folder be removed.
    for dir in ["ro", "ro/inner"] {
        set_mode(&sb.dest().join(dir), 0o755).unwrap();
    }
}

#[test]
fn devices_and_fifos_are_refused() {
    for (name, kind) in [
        ("dev/null", EntryType::Char),
        ("dev/sda", EntryType::Block),
        ("pipe", EntryType::Fifo),
    ] {
        let sb = Sandbox::new();
        let err = sb
            .extract(&[E::Other(name, kind), E::File("after", 0o644, b"ok")])
            .unwrap_err();
        assert!(
            matches!(err, ExtractError::Unsupported { ref entry, .. } if entry == name),
            "{err}"
        );
        assert!(!sb.dest().join(name).exists());
    }
}

#[test]
fn long_names_gnu_and_pax() {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"gnu"[..]).unwrap();

    let pax_name = format!("{}/pax", "p".repeat(200));
    let record = |len: usize| format!("{len} path={pax_name}\n");
    let mut len = record(0).len();
    while record(len).len() != len {
        len = record(len).len();
    }
    let record = record(len);
    b.append(
        &raw_header("PaxHeaders/x", EntryType::XHeader, 0o644, record.len() as u64, ""),
        record.as_bytes(),
    )
    .unwrap();
    b.append(
        &raw_header("short", EntryType::Regular, 0o644, 3, ""),
        &b"pax"[..],
    )
    .unwrap();
    let bytes = b.into_inner().unwrap();

    let sb = Sandbox::new();
    let files = extract(bytes.as_slice(), &sb.dest()).unwrap();
    assert_eq!(files, [PathBuf::from(&long), PathBuf::from(&pax_name)]);
    assert_eq!(fs_err::read(sb.dest().join(&long)).unwrap(), b"gnu");
    assert_eq!(fs_err::read(sb.dest().join(&pax_name)).unwrap(), b"pax");
}

#[test]
fn truncated_or_corrupt_tar_is_an_error() {
    let bytes = tar_of(&[E::File("a", 0o644, &[7u8; 1000]), E::File("b", 0o644, b"b")]);
    for cut in [100, 511, 700, 1100, 1600] {
        let sb = Sandbox::new();
        let err = extract(&bytes[..cut], &sb.dest()).unwrap_err();
        assert!(matches!(err, ExtractError::Tar(_)), "cut at {cut}: {err:?}");
    }
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    let sb = Sandbox::new();
    assert!(matches!(
        extract(bad.as_slice(), &sb.dest()),
        Err(ExtractError::Tar(_))
    ));
}

#[test]
fn dest_must_be_a_directory() {
    let sb = Sandbox::new();
    let file = sb.dest().join("f");
    fs_err::write(&file, b"").unwrap();
    let err = extract(&[][..], &file).unwrap_err();
    assert!(matches!(err, ExtractError::NotADirectory { .. }), "{err:?}");
    let err = extract(&[][..], &sb.dest().join("missing")).unwrap_err();
    assert!(matches!(err, ExtractError::Io { .. }), "{err:?}");
}

/// Every symlink under `dest` that resolves at all resolves inside it.
fn assert_links_resolve_inside(dest: &Path) {
    let canonical_dest = fs_err::canonicalize(dest).unwrap();
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for child in fs_err::read_dir(&dir).unwrap() {
            let path = child.unwrap().path();
            let meta = fs_err::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                if let Ok(resolved) = fs_err::canonicalize(&path) {
                    assert!(
                        resolved.starts_with(&canonical_dest),
                        "{} -> {}",
                        path.display(),
                        resolved.display()
                    );
                }
            } else if meta.is_dir() {
                stack.push(path);
            }
        }
    }
}

/// A name made of components from {`a`, `b`, `..`, `.`, ``}, maybe with a leading `/`.
fn hostile_name() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::collection::vec(prop::sample::select(vec!["a", "b", "..", ".", ""]), 1..5),
    )
        .prop_map(|(absolute, parts)| format!("{}{}", if absolute { "/" } else { "" }, parts.join("/")))
}

/// An entry of a hostile archive: (kind, name, link target).
fn hostile_entry() -> impl Strategy<Value = (u8, String, String)> {
    (0u8..4, hostile_name(), hostile_name())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let sb = Sandbox::new();
        let _ = extract(bytes.as_slice(), &sb.dest());
        sb.assert_contained();
    }

    #[test]
    fn damaged_archives_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = tar_of(&[
            E::Dir("d", 0o755),
            E::File("d/f", 0o644, b"data"),
            E::Sym("d/s", "f"),
            E::Hard("h", "d/f"),
        ]);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let sb = Sandbox::new();
        let _ = extract(bytes.as_slice(), &sb.dest());
        sb.assert_contained();
    }

    #[test]
    fn hostile_names_stay_inside(entries in proptest::collection::vec(hostile_entry(), 1..6)) {
        let sb = Sandbox::new();
        let tar_entries: Vec<E<'_>> = entries
            .iter()
            .map(|(kind, name, target)| match kind {
                0 => E::File(name, 0o644, b"data"),
                1 => E::Dir(name, 0o755),
                2 => E::Sym(name, target),
                _ => E::Hard(name, target),
            })
            .collect();
        let result = sb.extract(&tar_entries);
        if let Ok(files) = &result {
            for f in files {
                let meta = fs_err::symlink_metadata(sb.dest().join(f)).unwrap();
                prop_assert!(meta.is_file());
            }
        }
        sb.assert_contained();
        assert_links_resolve_inside(&sb.dest());
    }
}
