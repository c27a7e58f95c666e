//! Single-file layers, byte-identical to the tars KraftKit writes with Go's `archive/tar`.
//!
//! KraftKit puts each file (kernel, debug kernel, initrd) in a layer of its own: one ustar header,
//! the data padded to 512 bytes, and two zero blocks, with no directory entries. Writing the very
//! same bytes means a kernel packed by ukpm and by KraftKit has the same layer digest, so the two
//! deduplicate in stores and registries.

use std::io::{self, Cursor, Read};

const BLOCK: u64 = 512;
/// ustar's size field holds 11 octal digits; larger files would need PAX, which KraftKit's
/// layers never use.
const MAX_SIZE: u64 = 0o77777777777;

/// Why a file cannot be written as a single-file layer. Both are limits of the ustar header Go
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
    /// The file is too large for ustar's 11 octal digits of size.
    #[error("file for `{path}` is {size} bytes; a layer file must be under 8 GiB")]
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
    /// The Go `archive/tar` header for this file: ustar, uid/gid 0, empty owner names, mtime 0,
    /// numeric fields as zero-padded octal with a NUL, devmajor/devminor written as `0000000\0`.
    pub fn header(&self) -> Result<[u8; 512], LayerError> {
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
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(self.mode & 0o7777));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], self.size);
        octal(&mut h[136..148], 0);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h[148..155], sum);
        h[155] = b' ';
        Ok(h)
    }

    /// The whole layer's length: header, data padded to a block, two zero blocks.
    pub fn tar_len(&self) -> u64 {
        BLOCK + self.size.div_ceil(BLOCK) * BLOCK + 2 * BLOCK
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
}
