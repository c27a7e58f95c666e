//! Every tar dialect GNU tar reads, checked against GNU tar itself: archives written by GNU tar
//! (every format, sparse versions) and hand-made ones (long-name corner cases, malformed PAX),
//! extracted by GNU tar and by ukpm, and the trees compared: names, types, modes, sizes,
//! contents, link targets, and the holes of sparse files.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ukpm_archive::ExtractError;
use ukpm_archive::compression::{Compression, Expansion, decompress};
use ukpm_archive::extract::{Options, extract, extract_with};
use ukpm_test::gnutar;

/// A source tree with what the dialects differ on: long names, long link targets, names that
/// are not UTF-8, hard links, modes, and a sparse file of 3 MiB with two small data runs.
fn source_tree(dir: &Path) {
    let long_dir = dir.join("d".repeat(90)).join("e".repeat(90));
    fs_err::create_dir_all(&long_dir).unwrap();
    fs_err::write(long_dir.join(format!("{}.txt", "f".repeat(120))), b"long name").unwrap();
    let raw = dir.join(OsStr::from_bytes(b"caf\xe9-\xff"));
    fs_err::write(&raw, b"latin-1 name").unwrap();
    let long_raw = dir.join(OsStr::from_bytes(&[b"n\xff".repeat(60), b"x".to_vec()].concat()));
    fs_err::write(&long_raw, b"long raw name").unwrap();
    fs_err::write(dir.join("exec"), b"#!/bin/sh\n").unwrap();
    fs_err::set_permissions(dir.join("exec"), std::fs::Permissions::from_mode(0o755)).unwrap();
    fs_err::hard_link(dir.join("exec"), dir.join("exec-link")).unwrap();
    let target = format!("{}/{}/{}.txt", "d".repeat(90), "e".repeat(90), "f".repeat(120));
    fs_err::os::unix::fs::symlink(&target, dir.join("long-symlink")).unwrap();
    fs_err::os::unix::fs::symlink(OsStr::from_bytes(b"caf\xe9-\xff"), dir.join("raw-symlink")).unwrap();
    let ro = dir.join("ro");
    fs_err::create_dir(&ro).unwrap();
    fs_err::write(ro.join("f"), b"in a read-only folder").unwrap();
    fs_err::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let sparse = fs_err::File::create(dir.join("sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    let mut sparse = sparse.into_parts().0;
    use std::io::{Seek, SeekFrom};
    sparse.seek(SeekFrom::Start(1 << 20)).unwrap();
    sparse.write_all(b"hello").unwrap();
    sparse.seek(SeekFrom::Start((3 << 20) - 3)).unwrap();
    sparse.write_all(b"end").unwrap();
}

/// Extracts `archive` with GNU tar and with ukpm, and asserts the same trees (and that ukpm
/// keeps the holes of sparse files: no more blocks than GNU tar's extraction, plus slack).
fn compare(archive: &Path, sparse: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let (gnu, ours) = (tmp.path().join("gnu"), tmp.path().join("ours"));
    fs_err::create_dir(&gnu).unwrap();
    fs_err::create_dir(&ours).unwrap();
    gnutar::extract(archive, &gnu).unwrap_or_else(|e| panic!("GNU tar refused {}: {e}", archive.display()));
    let bytes = fs_err::read(archive).unwrap();
    extract(bytes.as_slice(), &ours).unwrap_or_else(|e| panic!("ukpm refused {}: {e:?}", archive.display()));
    let (gnu_tree, gnu_blocks) = gnutar::tree(&gnu);
    let (our_tree, our_blocks) = gnutar::tree(&ours);
    let names = |t: &std::collections::BTreeMap<Vec<u8>, gnutar::Node>| {
        t.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&our_tree), names(&gnu_tree), "{}", archive.display());
    for (name, node) in &gnu_tree {
        assert_eq!(
            &our_tree[name],
            node,
            "{}: {}",
            archive.display(),
            String::from_utf8_lossy(name)
        );
    }
    for (name, blocks) in &our_blocks {
        let size = our_tree[name].size;
        assert!(
            *blocks <= gnu_blocks[name] + 16,
            "{}: {} takes {blocks} blocks, GNU tar's {}",
            archive.display(),
            String::from_utf8_lossy(name),
            gnu_blocks[name]
        );
        if sparse && (name == b"sparse" || name == b"big") {
            assert!(
                *blocks * 512 < size / 8,
                "the holes of `sparse` were written: {blocks} blocks"
            );
        }
    }
    // Let the temporary folder go despite the read-only folder.
    for dir in [&gnu, &ours] {
        let ro = dir.join("ro");
        if ro.exists() {
            fs_err::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn archives_gnu_tar_writes_extract_as_gnu_tar_extracts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs_err::create_dir(&src).unwrap();
    source_tree(&src);
    let all = ["."];
    let cases: &[(&str, &[&str])] = &[
        ("gnu", &["--format=gnu"]),
        ("oldgnu", &["--format=oldgnu"]),
        ("posix", &["--format=posix"]),
        ("gnu-sparse", &["--format=gnu", "--sparse"]),
        ("oldgnu-sparse", &["--format=oldgnu", "--sparse"]),
        (
            "pax-sparse-0.0",
            &["--format=posix", "--sparse", "--sparse-version=0.0"],
        ),
        (
            "pax-sparse-0.1",
            &["--format=posix", "--sparse", "--sparse-version=0.1"],
        ),
        (
            "pax-sparse-1.0",
            &["--format=posix", "--sparse", "--sparse-version=1.0"],
        ),
    ];
    for (name, options) in cases {
        let archive = tmp.path().join(format!("{name}.tar"));
        gnutar::create(&archive, &src, options, &all);
        compare(&archive, name.contains("sparse"));
    }
    fs_err::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A raw 512-byte header: name, type, size, link name as given (no checks), ustar magic.
fn header(name: &[u8], kind: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Appends a member: header then data padded to a block.
fn member(out: &mut Vec<u8>, name: &[u8], kind: u8, data: &[u8], link: &[u8]) {
    out.extend_from_slice(&header(name, kind, data.len() as u64, link));
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0u8; 1024]);
}

/// A PAX record with its length.
fn record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = [b" ", key.as_bytes(), b"=", value, b"\n"].concat();
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len = format!("{len}").len() + body.len();
    }
    [format!("{len}").into_bytes(), body].concat()
}

/// Writes `bytes` as an archive and compares GNU tar's and ukpm's extractions of it.
fn compare_bytes(bytes: &[u8], sparse: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("a.tar");
    fs_err::write(&archive, bytes).unwrap();
    compare(&archive, sparse);
}

#[test]
fn long_name_corner_cases_match_gnu_tar() {
    // A GNU long name with a NUL in it: GNU tar stops at the NUL.
    let mut a = Vec::new();
    member(
        &mut a,
        b"././@LongLink",
        b'L',
        b"cut-here\0ignored-after-nul\0",
        b"",
    );
    member(&mut a, b"short", b'0', b"data", b"");
    end(&mut a);
    compare_bytes(&a, false);

    // Several long names (and long link names) before one member: the last wins.
    let mut a = Vec::new();
    member(
        &mut a,
        b"././@LongLink",
        b'L',
        format!("first-{}\0", "a".repeat(150)).as_bytes(),
        b"",
    );
    member(
        &mut a,
        b"././@LongLink",
        b'L',
        format!("second-{}\0", "b".repeat(150)).as_bytes(),
        b"",
    );
    member(&mut a, b"short", b'0', b"data", b"");
    member(&mut a, b"././@LongLink", b'K', b"first-target\0", b"");
    member(
        &mut a,
        b"././@LongLink",
        b'K',
        format!("{}\0", "t".repeat(120)).as_bytes(),
        b"",
    );
    member(&mut a, b"link", b'2', b"", b"x");
    end(&mut a);
    compare_bytes(&a, false);

    // PAX path and linkpath, raw bytes that are not UTF-8.
    let mut a = Vec::new();
    let pax = [
        record("path", b"pax-\xff\xfe-name"),
        record("linkpath", b"pax-\xff\xfe-name"),
    ]
    .concat();
    member(
        &mut a,
        b"PaxHeaders/x",
        b'x',
        &record("path", b"pax-\xff\xfe-name"),
        b"",
    );
    member(&mut a, b"ignored", b'0', b"pax data", b"");
    member(
        &mut a,
        b"PaxHeaders/y",
        b'x',
        &pax[record("path", b"pax-\xff\xfe-name").len()..],
        b"",
    );
    member(&mut a, b"ignored-too", b'2', b"", b"ignored");
    end(&mut a);
    compare_bytes(&a, false);

    // A PAX header at the end with no member after it: ignored.
    let mut a = Vec::new();
    member(&mut a, b"kept", b'0', b"kept", b"");
    member(&mut a, b"PaxHeaders/z", b'x', &record("path", b"never"), b"");
    end(&mut a);
    compare_bytes(&a, false);
}

#[test]
fn long_names_and_pax_names_keep_their_bytes() {
    let name = [b"dir-\xff/".to_vec(), b"\xfe".repeat(150)].concat();
    let mut a = Vec::new();
    member(
        &mut a,
        b"././@LongLink",
        b'L',
        &[name.clone(), vec![0]].concat(),
        b"",
    );
    member(&mut a, b"short", b'0', b"data", b"");
    member(&mut a, b"PaxHeaders/x", b'x', &record("linkpath", &name), b"");
    member(&mut a, b"hard", b'1', b"", b"");
    end(&mut a);
    let tmp = tempfile::tempdir().unwrap();
    let files = extract(a.as_slice(), tmp.path()).unwrap();
    let want = PathBuf::from(OsStr::from_bytes(&name));
    assert_eq!(files, [want.clone(), PathBuf::from("hard")]);
    assert_eq!(fs_err::read(tmp.path().join(&want)).unwrap(), b"data");

    // An error about such a name keeps its bytes.
    let mut a = Vec::new();
    member(&mut a, b"PaxHeaders/x", b'x', &record("path", b"../\xff"), b"");
    member(&mut a, b"x", b'0', b"", b"");
    end(&mut a);
    match extract(a.as_slice(), tmp.path()) {
        Err(ExtractError::PathEscape { entry }) => assert_eq!(entry.as_os_str().as_bytes(), b"../\xff"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_pax_records_are_refused_as_gnu_tar_refuses_them() {
    let cases: &[(&str, &[u8])] = &[
        ("bad length", b"99 path=abc\n"),
        ("missing =", b"12 pathabcd\n"),
        ("non-numeric length", b"1x path=abc\n"),
        ("length past the record", b"12 path=abc\n30 path=abc\n"),
        ("length too short", b"3 path=abc\n"),
    ];
    for (what, data) in cases {
        let mut a = Vec::new();
        member(&mut a, b"PaxHeaders/x", b'x', data, b"");
        member(&mut a, b"file", b'0', b"data", b"");
        end(&mut a);
        let tmp = tempfile::tempdir().unwrap();
        let err = extract(a.as_slice(), tmp.path()).unwrap_err();
        assert!(matches!(err, ExtractError::Malformed { .. }), "{what}: {err:?}");
        let archive = tmp.path().join("a.tar");
        fs_err::write(&archive, &a).unwrap();
        let out = tmp.path().join("gnu");
        fs_err::create_dir(&out).unwrap();
        assert!(
            gnutar::extract(&archive, &out).is_err(),
            "GNU tar accepted a PAX record with {what}"
        );
    }
}

/// An old GNU sparse member declaring `real` bytes with 5 bytes of data at its end.
fn old_gnu_sparse(real: u64) -> Vec<u8> {
    let mut h = header(b"big", b'S', 5, b"");
    h[257..265].copy_from_slice(b"ustar  \0");
    h[386..398].copy_from_slice(format!("{:011o}\0", real - 5).as_bytes());
    h[398..410].copy_from_slice(format!("{:011o}\0", 5).as_bytes());
    h[483..495].copy_from_slice(format!("{real:011o}\0").as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut a = h.to_vec();
    a.extend_from_slice(b"hello");
    a.resize(1024, 0);
    end(&mut a);
    a
}

#[test]
fn declared_sizes_are_bounded() {
    // A few KiB declaring 6 GiB: refused by default, nothing written.
    let tmp = tempfile::tempdir().unwrap();
    let err = extract(old_gnu_sparse(6 << 30).as_slice(), tmp.path()).unwrap_err();
    assert!(
        matches!(err, ExtractError::TooLarge { size, .. } if size == 6 << 30),
        "{err:?}"
    );
    assert!(!tmp.path().join("big").exists());
    // Within the limit, restored with its hole, as GNU tar restores it.
    let a = old_gnu_sparse(64 << 20);
    compare_bytes(&a, true);
    // The caller sets the limits.
    let small = Options::default().max_sparse_size(1 << 20);
    assert!(matches!(
        extract_with(a.as_slice(), tmp.path(), &small),
        Err(ExtractError::TooLarge { .. })
    ));
    let total = Options::default().max_total_size(10);
    let mut b = Vec::new();
    member(&mut b, b"a", b'0', b"123456", b"");
    member(&mut b, b"b", b'0', b"123456", b"");
    end(&mut b);
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        extract_with(b.as_slice(), dir.path(), &total),
        Err(ExtractError::TooLarge { .. })
    ));
}

#[test]
fn gzip_and_zstd_layers_and_their_expansion_bound() {
    let mut a = Vec::new();
    member(&mut a, b"kernel", b'0', &[7u8; 100_000], b"");
    end(&mut a);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&a).unwrap();
    let gz = gz.finish().unwrap();
    let zst = gnutar::zstd(&a, 3);
    for (compression, data) in [(Compression::Gzip, &gz), (Compression::Zstd, &zst)] {
        let tmp = tempfile::tempdir().unwrap();
        let files = extract(
            decompress(data.as_slice(), compression, Expansion::default()),
            tmp.path(),
        )
        .unwrap();
        assert_eq!(files, [PathBuf::from("kernel")]);
        assert_eq!(
            fs_err::read(tmp.path().join("kernel")).unwrap(),
            vec![7u8; 100_000]
        );
        // With a tight bound, the same layer is refused as a bomb.
        let err = extract(
            decompress(data.as_slice(), compression, Expansion::new(2, 1000)),
            tmp.path(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ExtractError::Expansion(_)),
            "{compression:?}: {err:?}"
        );
    }
    // Two concatenated zstd frames are one stream, as the zstd program reads them.
    let (first, second) = a.split_at(1024);
    let two = [gnutar::zstd(first, 1), gnutar::zstd(second, 1)].concat();
    let tmp = tempfile::tempdir().unwrap();
    extract(
        decompress(two.as_slice(), Compression::Zstd, Expansion::default()),
        tmp.path(),
    )
    .unwrap();
    assert_eq!(fs_err::read(tmp.path().join("kernel")).unwrap().len(), 100_000);
    // 256 MiB of zeros in a few KiB of zstd: refused by the default bound.
    let mut bomb = Vec::new();
    bomb.extend_from_slice(&header(b"zeros", b'0', 256 << 20, b""));
    bomb.resize(512 + (256 << 20) + 1024, 0);
    let bomb = gnutar::zstd(&bomb, 19);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let err = extract(
        decompress(bomb.as_slice(), Compression::Zstd, Expansion::default()),
        tmp.path(),
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::Expansion(_)), "{err:?}");
}

#[test]
fn whiteouts_remove_what_earlier_layers_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path();
    let mut l1 = Vec::new();
    member(&mut l1, b"etc/", b'5', b"", b"");
    member(&mut l1, b"etc/gone", b'0', b"1", b"");
    member(&mut l1, b"etc/kept", b'0', b"1", b"");
    member(&mut l1, b"opaque/", b'5', b"", b"");
    member(&mut l1, b"opaque/old", b'0', b"1", b"");
    member(&mut l1, b"opaque/sub/", b'5', b"", b"");
    member(&mut l1, b"opaque/sub/old", b'0', b"1", b"");
    member(&mut l1, b"tree/a/b", b'0', b"1", b"");
    end(&mut l1);
    extract(l1.as_slice(), dest).unwrap();
    let mut l2 = Vec::new();
    member(&mut l2, b"etc/.wh.gone", b'0', b"", b"");
    member(&mut l2, b".wh.tree", b'0', b"", b"");
    member(&mut l2, b"opaque/new", b'0', b"2", b"");
    member(&mut l2, b"opaque/.wh..wh..opq", b'0', b"", b"");
    member(&mut l2, b"opaque/sub/new", b'0', b"2", b"");
    member(&mut l2, b"fresh", b'0', b"2", b"");
    member(&mut l2, b".wh.fresh", b'0', b"", b""); // same layer: not hidden
    member(&mut l2, b"missing/.wh.x", b'0', b"", b"");
    end(&mut l2);
    let files = extract(l2.as_slice(), dest).unwrap();
    assert_eq!(
        files,
        ["opaque/new", "opaque/sub/new", "fresh"].map(PathBuf::from)
    );
    let (tree, _) = gnutar::tree(dest);
    let names: Vec<_> = tree
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "etc",
            "etc/kept",
            "fresh",
            "opaque",
            "opaque/new",
            "opaque/sub",
            "opaque/sub/new"
        ]
    );
    // Without whiteouts, the `.wh.` files are plain files.
    let plain = tempfile::tempdir().unwrap();
    extract_with(l2.as_slice(), plain.path(), &Options::default().whiteouts(false)).unwrap();
    assert!(plain.path().join("etc/.wh.gone").is_file());
}

#[test]
fn a_whiteout_cannot_reach_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    fs_err::create_dir(&dest).unwrap();
    fs_err::write(tmp.path().join("victim"), b"x").unwrap();
    fs_err::os::unix::fs::symlink("..", dest.join("up")).unwrap();
    for name in [&b"../.wh.victim"[..], b"up/.wh.victim", b".wh..", b".wh..."] {
        let mut a = Vec::new();
        member(&mut a, name, b'0', b"", b"");
        end(&mut a);
        let _ = extract(a.as_slice(), &dest);
        assert!(
            tmp.path().join("victim").exists(),
            "{}",
            String::from_utf8_lossy(name)
        );
        assert!(dest.exists());
    }
}

#[test]
fn ustar_prefixes_and_solaris_headers_match_gnu_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let deep = src.join("p".repeat(60)).join("q".repeat(60));
    fs_err::create_dir_all(&deep).unwrap();
    fs_err::write(deep.join("r".repeat(90)), b"split between prefix and name").unwrap();
    fs_err::os::unix::fs::symlink("x".repeat(99), src.join("link")).unwrap();
    let archive = tmp.path().join("ustar.tar");
    gnutar::create(&archive, &src, &["--format=ustar"], &["."]);
    compare(&archive, false);
    fs_err::write(src.join("v7-file"), b"v7").unwrap();
    let archive = tmp.path().join("v7.tar");
    gnutar::create(&archive, &src, &["--format=v7"], &["link", "v7-file"]);
    compare(&archive, false);

    let mut a = Vec::new();
    member(
        &mut a,
        b"SolarisHeaders/x",
        b'X',
        &record("path", b"solaris-name"),
        b"",
    );
    member(&mut a, b"ignored", b'0', b"data", b"");
    end(&mut a);
    compare_bytes(&a, false);
}

/// A tiny deterministic generator, so the damaged archives are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn damaged_dialect_archives_never_panic_or_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs_err::create_dir(&src).unwrap();
    fs_err::write(src.join("f".repeat(120)), b"long").unwrap();
    let sparse = fs_err::File::create(src.join("sparse")).unwrap();
    sparse.set_len(1 << 20).unwrap();
    drop(sparse);
    fs_err::write(src.join("small"), b"0123456789").unwrap();
    let mut archives = Vec::new();
    for (i, options) in [
        &["--format=gnu", "--sparse"][..],
        &["--format=posix", "--sparse", "--sparse-version=0.0"],
        &["--format=posix", "--sparse", "--sparse-version=0.1"],
        &["--format=posix", "--sparse", "--sparse-version=1.0"],
    ]
    .iter()
    .enumerate()
    {
        let archive = tmp.path().join(format!("{i}.tar"));
        gnutar::create(&archive, &src, options, &["."]);
        archives.push(fs_err::read(&archive).unwrap());
    }
    let mut rng = Lcg(0x5eed);
    let options = Options::default()
        .max_total_size(64 << 20)
        .max_sparse_size(16 << 20);
    for round in 0..400 {
        let mut bytes = archives[round % archives.len()].clone();
        let len = bytes.len().min(4096) as u64;
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() % len) as usize;
            bytes[at] = match rng.next() % 3 {
                0 => rng.next() as u8,
                1 => b'0' + (rng.next() % 10) as u8,
                _ => 0,
            };
        }
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        fs_err::create_dir(&dest).unwrap();
        let _ = extract_with(bytes.as_slice(), &dest, &options);
        let names: Vec<_> = fs_err::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dest"], "round {round}");
    }
}
