//! CPIO "newc" (SVR4, magic `070701`) archives, the format the Linux kernel and Unikraft accept
//! as an initrd.
//!
//! An initrd given as a directory is turned into a newc archive by [`write_dir`]. The output is
//! deterministic: the same tree gives the same bytes whatever the mtimes, owners, inode numbers or
//! `readdir` order, so an image built twice from the same sources has the same digest.
//! [`is_newc`] and [`is_gzip`] sniff what an initrd file holds.
//!
//! There is deliberately no reader: the tests check the writer against GNU `cpio`, an
//! independent implementation, rather than against a reader that shares this module's mistakes.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The magic that opens every newc header.
const MAGIC: &[u8; 6] = b"070701";
/// Length of a newc header: the magic and thirteen 8-digit hex fields.
const HEADER_LEN: usize = 6 + 13 * 8;
/// Name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";
/// Longest name accepted, in bytes, without the trailing NUL (Linux's `PATH_MAX` minus one).
const MAX_NAME_LEN: usize = 4095;
/// The largest file (or symlink target) a newc entry can hold: its size field is 8 hex digits.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;
/// The archive as a whole is padded to a multiple of this, like `cpio` and KraftKit do.
const BLOCK: u64 = 512;

/// Type bits of a directory.
const S_IFDIR: u32 = 0o040_000;
/// Type bits of a regular file.
const S_IFREG: u32 = 0o100_000;
/// Type bits of a symbolic link.
const S_IFLNK: u32 = 0o120_000;

/// Why a folder could not be written as a CPIO newc archive. Every variant but
/// [`CpioError::Write`] names the file of the source tree at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpioError {
    /// A file of the source tree could not be read.
    #[error("cannot archive {}", path.display())]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The archive could not be written to its destination.
    #[error("cannot write the cpio archive")]
    Write(#[source] io::Error),
    /// The source tree holds a fifo, socket or device node.
    #[error("unsupported file type at {}: only regular files, directories and symlinks go into an initrd", path.display())]
    UnsupportedType {
        /// The offending entry.
        path: PathBuf,
    },
    /// A name (or symlink target) is not UTF-8; the archive names are kept as text.
    #[error("file name or symlink target at {} is not UTF-8", path.display())]
    NonUtf8 {
        /// The offending entry.
        path: PathBuf,
    },
    /// A name is longer than a newc archive may hold.
    #[error("name of {} is longer than {MAX_NAME_LEN} bytes", path.display())]
    NameTooLong {
        /// The offending entry.
        path: PathBuf,
    },
    /// A file is larger than the 32-bit size field of newc allows ([`MAX_FILE_SIZE`]): the
    /// format's limit, named with the file, so the user knows to pack that file another way
    /// (as the initrd file itself, which has no such limit).
    #[error(
        "file {} is {size} bytes: a cpio newc entry holds at most {MAX_FILE_SIZE} bytes (4 GiB - 1), the limit of its 8 hex digits of size",
        path.display()
    )]
    FileTooLarge {
        /// The offending file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A file shrank between looking at its size and copying its data.
    #[error("file {} changed while it was being archived", path.display())]
    FileChanged {
        /// The offending file.
        path: PathBuf,
    },
}

/// Whether `prefix` (the first bytes of a file) starts like a newc archive, so an initrd file
/// can be told apart from a compressed one or from garbage.
#[must_use]
pub fn is_newc(prefix: &[u8]) -> bool {
    prefix.starts_with(MAGIC)
}

/// Whether `prefix` (the first bytes of a file) starts like gzip data, the usual compression of
/// an initrd.
#[must_use]
pub fn is_gzip(prefix: &[u8]) -> bool {
    prefix.starts_with(&[0x1f, 0x8b])
}

/// Writes every entry under `dir` (not `dir` itself) as a deterministic CPIO newc archive to
/// `out`, so an initrd directory can be packed into an image, and returns the bytes written.
///
/// Each directory's children are visited in byte-wise order of their names, a directory before
/// its contents, names written with a leading `/`. Only the file type and permission bits of each
/// entry are kept: owners, times and inode numbers are zeroed or renumbered. Hard links become
/// independent regular files. Fifos, sockets and devices are refused. File data is streamed.
pub fn write_dir<W: Write>(dir: &Path, out: W) -> Result<u64, CpioError> {
    write_dir_with_modes(dir, out, &|_, bits| bits)
}

/// [`write_dir`], with the permission bits written for each entry given by `mode(path, bits)`
/// (`bits`: what the file system says). A tree extracted by a user who is not root may have had
/// files and folders opened up so they could be read and removed (an image's `/etc/shadow` is
/// mode `0000`); this records their true modes.
pub fn write_dir_with_modes<W: Write>(
    dir: &Path,
    out: W,
    mode: &dyn Fn(&Path, u32) -> u32,
) -> Result<u64, CpioError> {
    let mut writer = Writer {
        out: CountingWriter { inner: out, count: 0 },
        next_ino: 1,
        mode,
        buf: vec![0u8; 64 * 1024],
    };
    writer.write_children(dir, "")?;
    writer.write_header(
        &Header {
            nlink: 1,
            ..Header::default()
        },
        TRAILER,
    )?;
    let written = writer.out.count;
    let padding = (BLOCK - written % BLOCK) % BLOCK;
    writer.out.write_zeros(padding)?;
    writer.out.inner.flush().map_err(CpioError::Write)?;
    Ok(writer.out.count)
}

/// The numeric fields of a newc header that ukpm sets; the others are always zero.
#[derive(Debug, Default, Clone, Copy)]
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    namesize: u32,
}

impl Header {
    /// Renders the header; uid, gid, mtime, device numbers and check are always zero.
    fn render(&self) -> String {
        let fields = [
            self.ino,
            self.mode,
            0,
            0,
            self.nlink,
            0,
            self.filesize,
            0,
            0,
            0,
            0,
            self.namesize,
            0,
        ];
        let mut text = String::with_capacity(HEADER_LEN);
        text.push_str("070701");
        for field in fields {
            text.push_str(&format!("{field:08X}"));
        }
        text
    }
}

/// Number of NUL bytes that pad `len` to a multiple of 4.
fn pad4(len: u64) -> u64 {
    (4 - len % 4) % 4
}

/// A writer that counts the bytes it passes on, for the padding and the returned total.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> CountingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), CpioError> {
        self.inner.write_all(bytes).map_err(CpioError::Write)?;
        self.count += bytes.len() as u64;
        Ok(())
    }

    fn write_zeros(&mut self, n: u64) -> Result<(), CpioError> {
        const ZEROS: [u8; 512] = [0; 512];
        let mut left = n;
        while left > 0 {
            let chunk = left.min(ZEROS.len() as u64);
            self.put(&ZEROS[..chunk as usize])?;
            left -= chunk;
        }
        Ok(())
    }
}

/// The state of one [`write_dir`] run.
struct Writer<'m, W> {
    out: CountingWriter<W>,
    next_ino: u32,
    mode: &'m dyn Fn(&Path, u32) -> u32,
    /// The copy buffer, one for the whole run.
    buf: Vec<u8>,
}

impl<W: Write> Writer<'_, W> {
    /// Writes the children of `dir`, whose archive name is `prefix` (`""` for the root), sorted by
    /// name bytes, each directory followed by its own contents.
    fn write_children(&mut self, dir: &Path, prefix: &str) -> Result<(), CpioError> {
        let io_err = |source| CpioError::Io {
            path: dir.to_path_buf(),
            source,
        };
        // The names must be sorted, so one folder's names are held (packed into one buffer,
        // about 16 bytes each plus the name); everything else streams, so memory follows the
        // largest folder's names and the depth, never the number of files in the tree.
        let mut names = Vec::new();
        let mut spans = Vec::new();
        for child in fs_err::read_dir(dir).map_err(io_err)? {
            let name = child.map_err(io_err)?.file_name();
            spans.push((names.len(), name.len()));
            names.extend_from_slice(name.as_bytes());
        }
        let name_at = |&(start, len): &(usize, usize)| &names[start..start + len];
        spans.sort_unstable_by(|a, b| name_at(a).cmp(name_at(b)));
        for span in &spans {
            let child = std::ffi::OsStr::from_bytes(name_at(span));
            let path = dir.join(child);
            let Some(child) = child.to_str() else {
                return Err(CpioError::NonUtf8 { path });
            };
            let name = format!("{prefix}/{child}");
            if name.len() > MAX_NAME_LEN {
                return Err(CpioError::NameTooLong { path });
            }
            let meta = fs_err::symlink_metadata(&path).map_err(|source| CpioError::Io {
                path: path.clone(),
                source,
            })?;
            let perm = (self.mode)(&path, meta.mode() & 0o7777) & 0o7777;
            let file_type = meta.file_type();
            if file_type.is_dir() {
                let header = self.header(S_IFDIR | perm, 2, 0);
                self.write_header(&header, &name)?;
                self.write_children(&path, &name)?;
            } else if file_type.is_symlink() {
                let target = fs_err::read_link(&path).map_err(|source| CpioError::Io {
                    path: path.clone(),
                    source,
                })?;
                let Some(target) = target.to_str() else {
                    return Err(CpioError::NonUtf8 { path });
                };
                let size = u32::try_from(target.len()).map_err(|_| CpioError::FileTooLarge {
                    path: path.clone(),
                    size: target.len() as u64,
                })?;
                let header = self.header(S_IFLNK | perm, 1, size);
                self.write_header(&header, &name)?;
                self.out.put(target.as_bytes())?;
                self.out.write_zeros(pad4(u64::from(size)))?;
            } else if file_type.is_file() {
                let size = u32::try_from(meta.len()).map_err(|_| CpioError::FileTooLarge {
                    path: path.clone(),
                    size: meta.len(),
                })?;
                let header = self.header(S_IFREG | perm, 1, size);
                self.write_header(&header, &name)?;
                self.write_file(&path, size)?;
            } else {
                debug_assert!(
                    file_type.is_fifo()
                        || file_type.is_socket()
                        || file_type.is_block_device()
                        || file_type.is_char_device()
                );
                return Err(CpioError::UnsupportedType { path });
            }
        }
        Ok(())
    }

    /// A header with the next inode number.
    fn header(&mut self, mode: u32, nlink: u32, filesize: u32) -> Header {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1);
        Header {
            ino,
            mode,
            nlink,
            filesize,
            namesize: 0,
        }
    }

    /// Writes `header` with the name size filled in, then the name, its NUL and padding.
    fn write_header(&mut self, header: &Header, name: &str) -> Result<(), CpioError> {
        let namesize = name.len() + 1;
        let header = Header {
            namesize: namesize as u32,
            ..*header
        };
        self.out.put(header.render().as_bytes())?;
        self.out.put(name.as_bytes())?;
        self.out.put(&[0])?;
        self.out.write_zeros(pad4((HEADER_LEN + namesize) as u64))
    }

    /// Streams exactly `size` bytes of the file at `path`, then the padding.
    fn write_file(&mut self, path: &Path, size: u32) -> Result<(), CpioError> {
        let io_err = |source| CpioError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = fs_err::File::open(path).map_err(io_err)?;
        let mut data = file.take(u64::from(size));
        let mut copied = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            self.out.put(&self.buf[..n])?;
            copied += n as u64;
        }
        if copied != u64::from(size) {
            return Err(CpioError::FileChanged {
                path: path.to_path_buf(),
            });
        }
        self.out.write_zeros(pad4(copied))
    }
}

#[cfg(test)]
mod tests {
    use fs_err::os::unix::fs::symlink;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    use ukpm_test::cpio::{self as gnu, Listed};

    use super::*;

    /// Builds KraftKit's fixture tree under `root`, creating entries in the given order.
    fn fixture(root: &Path, reversed: bool) {
        let c = root.join("a/b/c");
        if reversed {
            fs_err::create_dir_all(&c).unwrap();
            symlink(".", c.join("g-recursive-symlink")).unwrap();
            fs_err::write(c.join("d"), b"Hello, world\n").unwrap();
            fs_err::hard_link(c.join("d"), c.join("f-hardlink")).unwrap();
            symlink("./d", c.join("e-symlink")).unwrap();
        } else {
            fs_err::create_dir(root.join("a")).unwrap();
            fs_err::create_dir(root.join("a/b")).unwrap();
            fs_err::create_dir(&c).unwrap();
            fs_err::write(c.join("d"), b"Hello, world\n").unwrap();
            symlink("./d", c.join("e-symlink")).unwrap();
            fs_err::hard_link(c.join("d"), c.join("f-hardlink")).unwrap();
            symlink(".", c.join("g-recursive-symlink")).unwrap();
        }
        set_mode(&c.join("d"), 0o644);
        for dir in ["a", "a/b", "a/b/c"] {
            set_mode(&root.join(dir), 0o755);
        }
    }

    fn set_mode(path: &Path, mode: u32) {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn render_fields(fields: [u32; 13]) -> String {
        let mut text = String::from("070701");
        for v in fields {
            text.push_str(&format!("{v:08X}"));
        }
        text
    }

    fn archive(root: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        let n = write_dir(root, &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    /// What `cpio -t -v -n` should list for an entry ukpm wrote: owner 0, time 0.
    fn listed(mode: &str, nlink: u32, size: u64, name: &str, link_target: Option<&str>) -> Listed {
        Listed {
            mode: mode.into(),
            nlink,
            uid: 0,
            gid: 0,
            size,
            mtime: "Jan 1 1970".into(),
            name: name.into(),
            link_target: link_target.map(Into::into),
        }
    }

    #[test]
    fn gnu_cpio_lists_names_types_modes_and_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        fixture(tmp.path(), false);
        let bytes = archive(tmp.path());
        assert_eq!(bytes.len() % 512, 0);
        assert!(is_newc(&bytes));
        assert!(!is_gzip(&bytes));
        assert_eq!(
            gnu::list(&bytes),
            [
                listed("drwxr-xr-x", 2, 0, "/a", None),
                listed("drwxr-xr-x", 2, 0, "/a/b", None),
                listed("drwxr-xr-x", 2, 0, "/a/b/c", None),
                listed("-rw-r--r--", 1, 13, "/a/b/c/d", None),
                listed("lrwxrwxrwx", 1, 3, "/a/b/c/e-symlink", Some("./d")),
                listed("-rw-r--r--", 1, 13, "/a/b/c/f-hardlink", None),
                listed("lrwxrwxrwx", 1, 1, "/a/b/c/g-recursive-symlink", Some(".")),
            ]
        );
    }

    #[test]
    fn gnu_cpio_extracts_the_same_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let out = tmp.path().join("out");
        fs_err::create_dir(&src).unwrap();
        fs_err::create_dir(&out).unwrap();
        fixture(&src, false);
        gnu::extract(&archive(&src), &out);

        let c = out.join("a/b/c");
        for dir in ["a", "a/b", "a/b/c"] {
            assert!(out.join(dir).is_dir(), "{dir}");
            assert_eq!(ukpm_test::mode_of(out.join(dir)), 0o755, "{dir}");
        }
        for file in ["d", "f-hardlink"] {
            let meta = fs_err::symlink_metadata(c.join(file)).unwrap();
            assert!(meta.is_file(), "{file}");
            assert_eq!(meta.mode() & 0o7777, 0o644, "{file}");
            assert_eq!(meta.mtime(), 0, "{file}");
            assert_eq!(fs_err::read(c.join(file)).unwrap(), b"Hello, world\n", "{file}");
        }
        // The hard link came out as a file of its own, not a second name for `d`.
        let d = fs_err::metadata(c.join("d")).unwrap();
        let f = fs_err::metadata(c.join("f-hardlink")).unwrap();
        assert_ne!(d.ino(), f.ino());
        assert_eq!((d.nlink(), f.nlink()), (1, 1));
        assert_eq!(fs_err::read_link(c.join("e-symlink")).unwrap(), Path::new("./d"));
        assert_eq!(
            fs_err::read_link(c.join("g-recursive-symlink")).unwrap(),
            Path::new(".")
        );
    }

    #[test]
    fn gnu_cpio_reads_every_padding_and_a_streamed_file() {
        // Names of 1 to 4 bytes and data of 0 to 5 bytes meet every padding of names and data;
        // the large file crosses the 64 KiB copy buffer.
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let out = tmp.path().join("out");
        fs_err::create_dir(&src).unwrap();
        fs_err::create_dir(&out).unwrap();
        let mut expected = Vec::new();
        for (i, name) in ["a", "bb", "ccc", "dddd", "e", "ff"].iter().enumerate() {
            let data: Vec<u8> = (0..i as u8).map(|b| b'0' + b).collect();
            fs_err::write(src.join(name), &data).unwrap();
            expected.push((name.to_string(), data));
        }
        let big: Vec<u8> = (0..200_003u32).map(|i| (i % 251) as u8).collect();
        fs_err::write(src.join("big"), &big).unwrap();
        expected.push(("big".into(), big));
        fs_err::create_dir(src.join("private")).unwrap();
        fs_err::write(src.join("private/key"), b"secret").unwrap();
        set_mode(&src.join("private/key"), 0o600);
        set_mode(&src.join("private"), 0o750);
        expected.push(("private/key".into(), b"secret".to_vec()));

        let bytes = archive(&src);
        let names: Vec<String> = gnu::list(&bytes).into_iter().map(|l| l.name).collect();
        assert_eq!(
            names,
            [
                "/a",
                "/bb",
                "/big",
                "/ccc",
                "/dddd",
                "/e",
                "/ff",
                "/private",
                "/private/key"
            ]
        );
        gnu::extract(&bytes, &out);
        for (name, data) in &expected {
            assert_eq!(&fs_err::read(out.join(name)).unwrap(), data, "{name}");
        }
        assert_eq!(ukpm_test::mode_of(out.join("private")), 0o750);
        assert_eq!(ukpm_test::mode_of(out.join("private/key")), 0o600);
    }

    #[test]
    fn header_fields_are_normalised() {
        let tmp = tempfile::tempdir().unwrap();
        fixture(tmp.path(), false);
        let bytes = archive(tmp.path());
        // First header: ino 1, a directory with nlink 2, everything else zero, name "/a".
        let first = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
        assert_eq!(
            first,
            render_fields([1, S_IFDIR | 0o755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 3, 0])
        );
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 4], b"/a\0\0");
        // The trailer: nlink 1, namesize 11, everything else zero.
        let at = bytes.windows(11).position(|w| w == b"TRAILER!!!\0").unwrap();
        let trailer = std::str::from_utf8(&bytes[at - HEADER_LEN..at]).unwrap();
        assert_eq!(trailer, render_fields([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0]));
        assert!(bytes[at + 11..].iter().all(|b| *b == 0));
    }

    #[test]
    fn same_tree_gives_same_bytes() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        fixture(one.path(), false);
        fixture(two.path(), true);
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for rel in ["a/b/c/d", "a/b/c", "a"] {
            fs_err::File::open(two.path().join(rel))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let first = archive(one.path());
        assert_eq!(first, archive(one.path()));
        assert_eq!(first, archive(two.path()));
    }

    #[test]
    fn empty_dir_gives_only_the_trailer() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = archive(tmp.path());
        assert_eq!(bytes.len(), 512);
        assert!(gnu::list(&bytes).is_empty());
    }

    #[test]
    fn fifo_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("pipe");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let err = write_dir(tmp.path(), Vec::new()).unwrap_err();
        assert!(
            matches!(&err, CpioError::UnsupportedType { path } if *path == fifo),
            "{err:?}"
        );
        assert!(err.to_string().contains("pipe"), "{err}");
    }

    #[test]
    fn long_name_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            tmp.path().as_os_str().len() < 150,
            "temporary folder path too long for this test"
        );
        // Parent folders 3919 bytes deep (still openable by absolute path), then a 250-byte
        // file name, created relative to its folder: the archive name would be 4171 bytes.
        let mut parent = tmp.path().to_path_buf();
        for i in 0..19 {
            parent.push(format!("{i:0>200}"));
        }
        parent.push("d".repeat(100));
        fs_err::create_dir_all(&parent).unwrap();
        let file = "f".repeat(250);
        let status = std::process::Command::new("touch")
            .current_dir(&parent)
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success());
        let err = write_dir(tmp.path(), Vec::new()).unwrap_err();
        assert!(
            matches!(&err, CpioError::NameTooLong { path } if path.ends_with(&file)),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_over_4_gib_is_refused_naming_it_and_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::write(tmp.path().join("a-small-one"), b"x").unwrap();
        let big = tmp.path().join("huge.img");
        // Sparse: no disk is used.
        let file = fs_err::File::create(&big).unwrap();
        file.set_len(MAX_FILE_SIZE + 2).unwrap();
        drop(file);
        let err = write_dir(tmp.path(), io::sink()).unwrap_err();
        assert!(
            matches!(&err, CpioError::FileTooLarge { path, size } if *path == big && *size == (4 << 30) + 1),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("huge.img"), "{text}");
        assert!(text.contains("4294967295 bytes (4 GiB - 1)"), "{text}");
        assert_eq!(MAX_FILE_SIZE, 0xFFFF_FFFF);
    }

    #[test]
    fn missing_dir_names_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        let err = write_dir(&gone, Vec::new()).unwrap_err();
        assert!(
            matches!(&err, CpioError::Io { path, .. } if *path == gone),
            "{err:?}"
        );
    }
}
