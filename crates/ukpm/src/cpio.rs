//! CPIO "newc" (SVR4, magic `070701`) archives, the format the Linux kernel and Unikraft accept
//! as an initrd.
//!
//! An initrd given as a directory is turned into a newc archive by [`write_dir`]. The output is
//! deterministic: the same tree gives the same bytes whatever the mtimes, owners, inode numbers or
//! `readdir` order, so an image built twice from the same sources has the same digest. [`read`]
//! parses an archive back (for tests and for `inspect`), refusing anything malformed instead of
//! panicking; [`is_newc`] and [`is_gzip`] sniff what an initrd file holds.

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
/// The archive as a whole is padded to a multiple of this, like `cpio` and KraftKit do.
const BLOCK: u64 = 512;

/// File type bits of a mode (`S_IFMT`).
const S_IFMT: u32 = 0o170_000;
/// Type bits of a directory.
const S_IFDIR: u32 = 0o040_000;
/// Type bits of a regular file.
const S_IFREG: u32 = 0o100_000;
/// Type bits of a symbolic link.
const S_IFLNK: u32 = 0o120_000;

/// Why an initrd could not be written or read as a CPIO newc archive.
///
/// Write errors name the file of the source tree at fault; read errors give the byte offset in
/// the archive, so a broken initrd can be looked at with `xxd`.
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
    /// The archive could not be read from its source.
    #[error("cannot read the cpio archive")]
    Read(#[source] io::Error),
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
    /// A file is larger than the 32-bit size field of newc allows.
    #[error("file {} is {size} bytes, larger than the 4 GiB a cpio newc entry can hold", path.display())]
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
    /// The bytes at a header position are not a newc header.
    #[error("not a cpio newc header at offset {offset}: magic is {found:?}, expected \"070701\"")]
    BadMagic {
        /// Offset of the header in the archive.
        offset: u64,
        /// The six bytes found, lossily decoded.
        found: String,
    },
    /// The archive ends before its `TRAILER!!!` entry.
    #[error("truncated cpio archive: it ends inside {what} at offset {offset}")]
    Truncated {
        /// What was being read when the input ended.
        what: &'static str,
        /// Offset of the start of that part.
        offset: u64,
    },
    /// A header field is not eight hex digits.
    #[error("corrupt cpio header at offset {offset}: field {field} is {value:?}, not 8 hex digits")]
    BadField {
        /// Offset of the header in the archive.
        offset: u64,
        /// Name of the field.
        field: &'static str,
        /// The field as found, lossily decoded.
        value: String,
    },
    /// A header announces a name that cannot be right.
    #[error("corrupt cpio header at offset {offset}: name size {size} is not in 1..=4096")]
    BadNameSize {
        /// Offset of the header in the archive.
        offset: u64,
        /// The announced size, trailing NUL included.
        size: u32,
    },
    /// An entry's name or symlink target is not NUL-terminated UTF-8.
    #[error("corrupt cpio entry at offset {offset}: {problem}")]
    BadEntry {
        /// Offset of the entry's header in the archive.
        offset: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// One entry of a newc archive as [`read`] returns it, so tests and `inspect` can list an
/// initrd without unpacking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    /// The name as stored, without its trailing NUL (ukpm writes `/`-prefixed names).
    pub name: String,
    /// File type bits and permission bits, as in `st_mode`.
    pub mode: u32,
    /// The size of the data in bytes.
    pub size: u64,
    /// The file data; empty for directories; the link target for symlinks.
    pub data: Vec<u8>,
    /// For a symlink, its target; `None` for every other type.
    pub link_target: Option<String>,
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
    let mut writer = Writer {
        out: CountingWriter { inner: out, count: 0 },
        next_ino: 1,
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

/// Reads a newc archive up to its `TRAILER!!!` entry, so an initrd can be listed and tests can
/// check what [`write_dir`] wrote.
///
/// Everything is held in memory. A bad magic, a non-hex field, an impossible name size or input
/// that ends before the trailer is an error; no input makes it panic.
pub fn read<R: Read>(r: R) -> Result<Vec<CpioEntry>, CpioError> {
    let mut reader = CountingReader { inner: r, offset: 0 };
    let mut entries = Vec::new();
    loop {
        let offset = reader.offset;
        let mut raw = [0u8; HEADER_LEN];
        reader.read_exact_or(&mut raw, "a header")?;
        if !is_newc(&raw) {
            return Err(CpioError::BadMagic {
                offset,
                found: String::from_utf8_lossy(&raw[..MAGIC.len()]).into_owned(),
            });
        }
        let header = Header::parse(&raw, offset)?;
        let name_size = header.namesize;
        if name_size == 0 || name_size as usize > MAX_NAME_LEN + 1 {
            return Err(CpioError::BadNameSize {
                offset,
                size: name_size,
            });
        }
        let mut name = vec![0u8; name_size as usize];
        reader.read_exact_or(&mut name, "an entry name")?;
        if name.pop() != Some(0) || name.contains(&0) {
            return Err(CpioError::BadEntry {
                offset,
                problem: "the name is not NUL-terminated",
            });
        }
        let name = String::from_utf8(name).map_err(|_| CpioError::BadEntry {
            offset,
            problem: "the name is not UTF-8",
        })?;
        if name == TRAILER {
            return Ok(entries);
        }
        reader.skip_padding("the padding after a name")?;
        let size = u64::from(header.filesize);
        let mut data = Vec::new();
        // `take` bounds the read by the input actually present, so an absurd size in a short
        // archive costs no more memory than the archive itself.
        let got = (&mut reader)
            .take(size)
            .read_to_end(&mut data)
            .map_err(CpioError::Read)?;
        if got as u64 != size {
            return Err(CpioError::Truncated {
                what: "file data",
                offset: reader.offset,
            });
        }
        reader.skip_padding("the padding after file data")?;
        let link_target = if header.mode & S_IFMT == S_IFLNK {
            let target = std::str::from_utf8(&data).map_err(|_| CpioError::BadEntry {
                offset,
                problem: "the symlink target is not UTF-8",
            })?;
            Some(target.to_owned())
        } else {
            None
        };
        entries.push(CpioEntry {
            name,
            mode: header.mode,
            size,
            data,
            link_target,
        });
    }
}

/// The numeric fields of a newc header that ukpm sets or reads.
#[derive(Debug, Default, Clone, Copy)]
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    namesize: u32,
}

/// Field names in header order, after the magic, for error messages.
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

impl Header {
    /// Parses the 13 hex fields of a header whose magic has been checked.
    fn parse(raw: &[u8; HEADER_LEN], offset: u64) -> Result<Self, CpioError> {
        let mut values = [0u32; 13];
        for (i, (value, field)) in values.iter_mut().zip(FIELDS).enumerate() {
            let start = MAGIC.len() + i * 8;
            let text = &raw[start..start + 8];
            *value = std::str::from_utf8(text)
                .ok()
                .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|t| u32::from_str_radix(t, 16).ok())
                .ok_or_else(|| CpioError::BadField {
                    offset,
                    field,
                    value: String::from_utf8_lossy(text).into_owned(),
                })?;
        }
        Ok(Self {
            ino: values[0],
            mode: values[1],
            nlink: values[4],
            filesize: values[6],
            namesize: values[11],
        })
    }

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
struct Writer<W> {
    out: CountingWriter<W>,
    next_ino: u32,
}

impl<W: Write> Writer<W> {
    /// Writes the children of `dir`, whose archive name is `prefix` (`""` for the root), sorted by
    /// name bytes, each directory followed by its own contents.
    fn write_children(&mut self, dir: &Path, prefix: &str) -> Result<(), CpioError> {
        let io_err = |source| CpioError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut children = Vec::new();
        for child in fs_err::read_dir(dir).map_err(io_err)? {
            children.push(child.map_err(io_err)?.file_name());
        }
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for child in children {
            let path = dir.join(&child);
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
            let perm = meta.mode() & 0o7777;
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
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            self.out.put(&buf[..n])?;
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

/// A reader that tracks its offset, for padding and error messages.
struct CountingReader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R: Read> CountingReader<R> {
    /// Fills `buf`, calling the end of input inside it a truncation of `what`.
    fn read_exact_or(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), CpioError> {
        let offset = self.offset;
        self.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                CpioError::Truncated { what, offset }
            } else {
                CpioError::Read(e)
            }
        })
    }

    /// Skips the NULs that bring the offset to a multiple of 4.
    fn skip_padding(&mut self, what: &'static str) -> Result<(), CpioError> {
        let mut pad = [0u8; 3];
        let n = pad4(self.offset) as usize;
        self.read_exact_or(&mut pad[..n], what)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

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
        fs_err::set_permissions(c.join("d"), std::fs::Permissions::from_mode(0o644)).unwrap();
        for dir in ["a", "a/b", "a/b/c"] {
            fs_err::set_permissions(root.join(dir), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
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

    #[test]
    fn round_trip_keeps_names_types_modes_and_data() {
        let tmp = tempfile::tempdir().unwrap();
        fixture(tmp.path(), false);
        let bytes = archive(tmp.path());
        assert_eq!(bytes.len() % 512, 0);
        assert!(is_newc(&bytes));
        assert!(!is_gzip(&bytes));

        let entries = read(bytes.as_slice()).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "/a",
                "/a/b",
                "/a/b/c",
                "/a/b/c/d",
                "/a/b/c/e-symlink",
                "/a/b/c/f-hardlink",
                "/a/b/c/g-recursive-symlink"
            ]
        );
        let hello = b"Hello, world\n".to_vec();
        for e in &entries[..3] {
            assert_eq!(e.mode, S_IFDIR | 0o755, "{}", e.name);
            assert_eq!((e.size, e.data.len(), &e.link_target), (0, 0, &None));
        }
        for e in [&entries[3], &entries[5]] {
            assert_eq!(e.mode, S_IFREG | 0o644, "{}", e.name);
            assert_eq!((e.size, &e.data, &e.link_target), (13, &hello, &None));
        }
        let (e, g) = (&entries[4], &entries[6]);
        assert_eq!(e.mode & S_IFMT, S_IFLNK);
        assert_eq!(e.link_target.as_deref(), Some("./d"));
        assert_eq!((e.size, e.data.as_slice()), (3, b"./d".as_slice()));
        assert_eq!(g.mode & S_IFMT, S_IFLNK);
        assert_eq!(g.link_target.as_deref(), Some("."));
        assert_eq!(g.size, 1);
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
        assert!(read(bytes.as_slice()).unwrap().is_empty());
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
    fn missing_dir_names_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        let err = write_dir(&gone, Vec::new()).unwrap_err();
        assert!(
            matches!(&err, CpioError::Io { path, .. } if *path == gone),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_archives_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fixture(tmp.path(), false);
        let good = archive(tmp.path());

        let mut bad = good.clone();
        bad[5] = b'2';
        assert!(matches!(
            read(bad.as_slice()),
            Err(CpioError::BadMagic { offset: 0, .. })
        ));

        let mut bad = good.clone();
        bad[6] = b'g';
        assert!(matches!(
            read(bad.as_slice()),
            Err(CpioError::BadField { field: "ino", .. })
        ));

        let mut bad = good.clone();
        // namesize of the first header: 0x2000 = 8192.
        bad[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00002000");
        assert!(matches!(
            read(bad.as_slice()),
            Err(CpioError::BadNameSize { size: 8192, .. })
        ));

        let mut bad = good.clone();
        // filesize of the first header: far more than the archive holds.
        bad[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"FFFFFFFF");
        assert!(matches!(
            read(bad.as_slice()),
            Err(CpioError::Truncated {
                what: "file data",
                ..
            })
        ));

        assert!(matches!(
            read(&[][..]),
            Err(CpioError::Truncated {
                what: "a header",
                offset: 0
            })
        ));
    }

    /// The fixture archive and the offset just past the trailer's name, built once.
    fn fixture_archive() -> (Vec<u8>, usize) {
        static ARCHIVE: std::sync::OnceLock<(Vec<u8>, usize)> = std::sync::OnceLock::new();
        ARCHIVE
            .get_or_init(|| {
                let tmp = tempfile::tempdir().unwrap();
                fixture(tmp.path(), false);
                let bytes = archive(tmp.path());
                let at = bytes.windows(11).position(|w| w == b"TRAILER!!!\0").unwrap();
                (bytes, at + 11)
            })
            .clone()
    }

    proptest! {
        #[test]
        fn read_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read(bytes.as_slice());
        }

        #[test]
        fn read_never_panics_on_damaged_archives(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        ) {
            let (mut bytes, _) = fixture_archive();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let _ = read(bytes.as_slice());
        }

        #[test]
        fn truncated_archive_is_an_error(cut in any::<prop::sample::Index>()) {
            let (bytes, end) = fixture_archive();
            let cut = cut.index(end);
            prop_assert!(read(&bytes[..cut]).is_err());
        }
    }
}
