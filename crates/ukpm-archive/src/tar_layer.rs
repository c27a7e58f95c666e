//! Single-file layers, byte-identical to the tars KraftKit writes with Go's `archive/tar`.
//!
//! KraftKit puts each file (kernel, debug kernel, initrd) in a layer of its own: one ustar header,
//! the data padded to 512 bytes, and two zero blocks, with no directory entries. Writing the very
//! same bytes means a kernel packed by ukpm and by KraftKit has the same layer digest, so the two
//! deduplicate in stores and registries.
//!
//! A file of 8 GiB or more does not fit ustar's 11 octal digits of size. Go then switches to the
//! PAX format, and so does this module, byte for byte: a typeflag `x` extended header named
//! `DIR/PaxHeaders.0/FILE` (mode, uid, gid and mtime zero, no device numbers) holding the one
//! record `size=N`, then the file's header with its size field zero, magic `ustar\0` `00`.

use std::io::{self, Cursor, Read};

const BLOCK: u64 = 512;
/// ustar's size field holds 11 octal digits: up to 8 GiB - 1. Go writes a larger size as a PAX
/// record.
const MAX_USTAR_SIZE: u64 = 0o77777777777;
/// Go's `Header.Size` is an `int64`: what no tar writer of KraftKit's can describe.
const MAX_SIZE: u64 = i64::MAX as u64;

/// Why a file cannot be written as a single-file layer. Both are limits of the header Go
/// writes, checked before any byte is produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The path does not fit ustar's 100-byte name field (or is empty once its leading `/` are
    /// removed).
    #[error("layer path `{path}` must be 1 to 100 bytes long")]
    PathLength {
        /// The path inside the image, as given.
        path: String,
    },
    /// The file is larger than Go's `archive/tar` can describe (a signed 64-bit size).
    #[error("file for `{path}` is {size} bytes; a layer file must be under 8 EiB")]
    FileTooLarge {
        /// The path inside the image, as given.
        path: String,
        /// The file's size in bytes.
        size: u64,
    },
}

/// A file to be placed at a path inside a layer of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    /// The absolute path inside the image (`/unikraft/bin/kernel`).
    pub path: String,
    /// The permission bits written into the header (the source file's, as Go's
    /// `tar.FileInfoHeader` takes them), so `0755` and `0644` give different digests.
    pub mode: u32,
    /// The file's size in bytes.
    pub size: u64,
}

impl LayerFile {
    /// The Go `archive/tar` header(s) for this file, everything before its data, so the layer's
    /// digest is KraftKit's: one ustar block (uid/gid 0, empty owner names, mtime 0, numeric
    /// fields as zero-padded octal with a NUL, devmajor/devminor `0000000\0`), preceded, for a
    /// file of 8 GiB or more, by the PAX extended header and its `size` record that Go writes
    /// then (1536 bytes in all).
    pub fn header(&self) -> Result<Vec<u8>, LayerError> {
        let name = self.path.trim_start_matches('/');
        if name.is_empty() || name.len() > 100 {
            return Err(LayerError::PathLength {
                path: self.path.clone(),
            });
        }
        if self.size > MAX_SIZE {
            return Err(LayerError::FileTooLarge {
                path: self.path.clone(),
                size: self.size,
            });
        }
        let mut out = Vec::with_capacity(3 * BLOCK as usize);
        // Go's `Writer.WriteHeader` keeps USTAR while every field fits and prefers PAX (over
        // GNU's base-256 numbers) when one does not. Of ours, the size can outgrow ustar's field
        // and a name can hold what ustar cannot (anything not ASCII); PAX records carry them,
        // sorted by key.
        let mut records = Vec::new();
        if !name.is_ascii() {
            records.push(pax_record("path", name));
        }
        let big = self.size > MAX_USTAR_SIZE;
        if big {
            records.push(pax_record("size", &self.size.to_string()));
        }
        if !records.is_empty() {
            // `writePAXHeader` writes the records as a file through `writeRawFile`: only the
            // name, typeflag, mode/uid/gid/mtime 0 and the size are set.
            let data = records.concat();
            let mut h = [0u8; 512];
            put_name(&mut h, &pax_header_name(name));
            octal(&mut h[100..108], 0);
            octal(&mut h[108..116], 0);
            octal(&mut h[116..124], 0);
            octal(&mut h[124..136], data.len() as u64);
            octal(&mut h[136..148], 0);
            h[156] = b'x';
            finish_header(&mut h);
            out.extend_from_slice(&h);
            out.extend_from_slice(data.as_bytes());
            out.resize(out.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
        }
        let mut h = [0u8; 512];
        put_name(&mut h, name);
        octal(&mut h[100..108], u64::from(self.mode & 0o7777));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        // With PAX, Go's `formatOctal` gives up on the size and writes zero.
        octal(&mut h[124..136], if big { 0 } else { self.size });
        octal(&mut h[136..148], 0);
        h[156] = b'0';
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        finish_header(&mut h);
        out.extend_from_slice(&h);
        Ok(out)
    }

    /// The whole layer's length: header(s), data padded to a block, two zero blocks.
    pub fn tar_len(&self) -> u64 {
        let headers = self.header().map_or(BLOCK, |h| h.len() as u64);
        headers + self.size.div_ceil(BLOCK) * BLOCK + 2 * BLOCK
    }

    /// Streams the layer: header, then `data` (exactly `size` bytes), padding and trailer.
    ///
    /// If `data` ends early the stream fails instead of producing a short, wrong layer (the
    /// file changed while it was being packed).
    pub fn tar_stream<R: Read>(&self, data: R) -> Result<impl Read + use<R>, LayerError> {
        let header = self.header()?;
        let padding = (self.size.div_ceil(BLOCK) * BLOCK - self.size) as usize + 2 * BLOCK as usize;
        Ok(Cursor::new(header)
            .chain(ExactReader {
                inner: data.take(self.size),
                left: self.size,
                path: self.path.clone(),
            })
            .chain(Cursor::new(vec![0u8; padding])))
    }
}

/// Sets the magic (`ustar\0`, version `00`) and the checksum: six octal digits, NUL, space.
fn finish_header(h: &mut [u8; 512]) {
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
}

/// Go's `formatPAXRecord`: `"<len> <key>=<value>\n"`, where `<len>` counts itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    format!("{len} {key}={value}\n")
}

/// Writes a name into the 100-byte name field as Go does: its ASCII characters only
/// (`toASCII`), cut to the field.
fn put_name(h: &mut [u8; 512], name: &str) {
    let ascii: Vec<u8> = name.bytes().filter(u8::is_ascii).collect();
    let len = ascii.len().min(100);
    h[..len].copy_from_slice(&ascii[..len]);
}

/// The name Go gives a file's PAX header: `path.Join(dir, "PaxHeaders.0", file)`, its ASCII
/// characters cut to the 100 bytes of the name field, stripped of trailing `/`
/// (`writeRawFile`).
fn pax_header_name(name: &str) -> String {
    let (dir, file) = match name.rfind('/') {
        Some(i) => name.split_at(i + 1),
        None => ("", name),
    };
    let joined = go_clean(&format!("{dir}/PaxHeaders.0/{file}"));
    let mut ascii: String = joined.chars().filter(char::is_ascii).collect();
    ascii.truncate(100);
    ascii.trim_end_matches('/').to_string()
}

/// Go's `path.Clean` of a relative path: empty and `.` elements dropped, `..` eating the
/// element before it (kept at the start), `.` for nothing.
fn go_clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Writes `value` as zero-padded octal filling all but the last byte, which is NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// A reader that fails with `UnexpectedEof` if `inner` ends before `left` bytes.
struct ExactReader<R> {
    inner: R,
    left: u64,
    path: String,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file for {} shrank while it was being packed", self.path),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ukpm_types::Digest;

    fn layer(path: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let file = LayerFile {
            path: path.into(),
            mode,
            size: data.len() as u64,
        };
        let mut out = Vec::new();
        file.tar_stream(data).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, file.tar_len());
        out
    }

    #[test]
    fn kraftkit_conformance_layers() {
        let kernel = layer("/unikraft/bin/kernel", 0o755, b"UNIKRAFT-KERNEL\n");
        assert_eq!(kernel.len(), 2048);
        assert_eq!(&kernel[148..156], b"012776\0 ");
        assert_eq!(
            Digest::of(&kernel).to_string(),
            "sha256:35de056c2eb649ba307f61360e60d7349352e6261782a49a38510a814b4e8f01"
        );
        let initrd = layer("/unikraft/bin/initrd", 0o644, b"UNIKRAFT-INITRD\n");
        assert_eq!(&initrd[148..156], b"013004\0 ");
        assert_eq!(
            Digest::of(&initrd).to_string(),
            "sha256:f3765f69a3820cf85e208695c6384308776c2b7d106a84423e92eee165b37c67"
        );
    }

    #[test]
    fn the_tar_crate_reads_our_layers() {
        let bytes = layer("/unikraft/bin/kernel", 0o755, &[7u8; 1000]);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("unikraft/bin/kernel"));
        assert_eq!(entry.header().mode().unwrap(), 0o755);
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(data, vec![7u8; 1000]);
        drop(entry);
        assert!(entries.next().is_none());
    }

    #[test]
    fn a_file_that_shrinks_fails_the_stream() {
        let file = LayerFile {
            path: "/unikraft/bin/kernel".into(),
            mode: 0o644,
            size: 10,
        };
        let mut out = Vec::new();
        let err = file
            .tar_stream(&b"short"[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn paths_and_sizes_ustar_cannot_hold_are_refused() {
        for path in ["/", "", &format!("/{}", "a".repeat(101))] {
            let file = LayerFile {
                path: path.into(),
                mode: 0o644,
                size: 1,
            };
            let err = file.header().unwrap_err();
            assert!(
                matches!(&err, LayerError::PathLength { path: p } if p == path),
                "{path}: {err:?}"
            );
            assert!(err.to_string().starts_with("layer path `"), "{err}");
        }
        let ok = format!("/{}", "a".repeat(100));
        let file = LayerFile {
            path: ok,
            mode: 0o644,
            size: MAX_SIZE,
        };
        assert!(file.header().is_ok());
        let file = LayerFile {
            size: MAX_SIZE + 1,
            ..file
        };
        assert!(matches!(
            file.tar_stream(io::empty()),
            Err(LayerError::FileTooLarge { size, .. }) if size == MAX_SIZE + 1
        ));
    }

    /// Headers Go's `archive/tar` (go1.19.8; the writer is unchanged since Go 1.10) writes for
    /// KraftKit's layers: `tar.FileInfoHeader` of a file made with `truncate`, then name,
    /// uid/gid, owner names and times set as `oci/layer.go` sets them, then `WriteHeader`. The
    /// program is `tests/go/layer_header.go`; the digests are of every byte written before the
    /// file's data.
    const GO_HEADERS: [(&str, u64, u32, usize, &str); 5] = [
        (
            "/unikraft/bin/initrd",
            8 << 30,
            0o644,
            1536,
            "f65126554b012d001b3a6def7a0f466615b8a9b456867099e0fd887c92c07d4a",
        ),
        (
            "/unikraft/bin/kernel",
            10 << 30,
            0o755,
            1536,
            "225596cb127b29c5919f383627ac28ca0b341bd5c600a5c16bc450583124a692",
        ),
        (
            "/unikraft/bin/initrd",
            (8 << 30) - 1,
            0o644,
            512,
            "fec54e2bbf14a96da291a20b09668f5a1271c1ff7bf4744edec4f2a86d53c167",
        ),
        (
            "/kernel",
            (8 << 30) + 1,
            0o755,
            1536,
            "e162377f3854e7fbc9e27576ced0f2211ea42b8ca3ec984e856e00b5f887c767",
        ),
        (
            "/unikraft/bin/in\u{ef}trd",
            16,
            0o644,
            1536,
            "bcab2914b4b9fca1ee60ca2d62c879b510c7fab2fa14647d848cda3f7e35dcf2",
        ),
    ];

    #[test]
    fn go_conformance_pax_headers() {
        for (path, size, mode, len, digest) in GO_HEADERS {
            let file = LayerFile {
                path: path.into(),
                mode,
                size,
            };
            let header = file.header().unwrap();
            assert_eq!(header.len(), len, "{path} {size}");
            assert_eq!(
                Digest::of(&header).to_string(),
                format!("sha256:{digest}"),
                "{path} {size}"
            );
            assert_eq!(
                file.tar_len(),
                len as u64 + size.div_ceil(512) * 512 + 1024,
                "{path} {size}"
            );
        }
    }

    #[test]
    fn an_8_gib_file_gets_gos_pax_size_record() {
        let file = LayerFile {
            path: "/unikraft/bin/initrd".into(),
            mode: 0o644,
            size: 8 << 30,
        };
        let h = file.header().unwrap();
        // The extended header: Go's name for it, typeflag `x`, everything numeric zero but the
        // length of its one record, no device numbers.
        assert_eq!(&h[..33], b"unikraft/bin/PaxHeaders.0/initrd\0");
        assert_eq!(
            &h[100..148],
            b"0000000\x000000000\x000000000\x0000000000023\x0000000000000\0"
        );
        assert_eq!(&h[148..157], b"014023\0 x");
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert!(h[329..512].iter().all(|&b| b == 0));
        assert_eq!(&h[512..531], b"19 size=8589934592\n");
        assert!(h[531..1024].iter().all(|&b| b == 0));
        // The file's own header: a size field of zeros (Go's `formatOctal` gives up on it).
        let main = &h[1024..];
        assert_eq!(&main[..20], b"unikraft/bin/initrd\0");
        assert_eq!(&main[124..136], b"00000000000\0");
        assert_eq!(main[156], b'0');
        assert_eq!(&main[329..345], b"0000000\x000000000\0");
    }

    #[test]
    fn the_tar_crate_reads_the_pax_size() {
        let size = (8 << 30) + 3;
        let file = LayerFile {
            path: "/unikraft/bin/initrd".into(),
            mode: 0o644,
            size,
        };
        let stream = file.tar_stream(io::repeat(0)).unwrap();
        let mut archive = tar::Archive::new(stream);
        let mut entries = archive.entries().unwrap();
        let entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("unikraft/bin/initrd"));
        assert_eq!(entry.size(), size);
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
    }

    #[test]
    fn pax_header_names_are_gos() {
        assert_eq!(pax_header_name("kernel"), "PaxHeaders.0/kernel");
        assert_eq!(pax_header_name("a//b/./c"), "a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name("a/../b"), "PaxHeaders.0/b");
        assert_eq!(pax_header_name("../k"), "../PaxHeaders.0/k");
        assert_eq!(pax_header_name("dir/"), "dir/PaxHeaders.0");
        let long = format!("{}/{}", "d".repeat(60), "f".repeat(39));
        assert_eq!(pax_header_name(&long).len(), 100);
        assert_eq!(pax_record("size", "8589934592"), "19 size=8589934592\n");
        // Adding the length's own digits carries it to three digits.
        assert_eq!(pax_record("path", &"p".repeat(91)).len(), 101);
        assert!(pax_record("path", &"p".repeat(91)).starts_with("101 path="));
    }
}
