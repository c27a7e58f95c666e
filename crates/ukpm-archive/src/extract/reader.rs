//! The tar dialects GNU tar reads, turned into one stream of members.
//!
//! The `tar` crate parses single headers well, but it refuses what GNU tar accepts (several long
//! name headers before one member, a trailing extended header), accepts what Go and GNU tar
//! refuse (malformed PAX records are silently dropped), and knows nothing of PAX sparse files. So
//! the sequence of headers is read here, with [`tar::Header`] used for the fixed fields only:
//!
//! - GNU long names (`L`) and long link names (`K`): the last one before a member wins, and its
//!   value ends at its first NUL, as in GNU tar;
//! - PAX extended headers (`x`): records are parsed strictly, as Go's `archive/tar` does (a length
//!   that is not decimal, under 5 or past the data, no `=`, an empty key, a NUL in a path, no
//!   final newline: the layer is refused); `path`, `linkpath` and `size` apply to the next member;
//! - Solaris extended headers (`X`) are read as PAX ones, as GNU tar reads them;
//! - PAX global headers (`g`) are checked the same way, then ignored;
//! - extended headers with no member after them (at the end of the archive) are ignored, as Go
//!   does;
//! - sparse files: old GNU (`S`, with extension blocks) and PAX 0.0, 0.1 and 1.0, as a list of
//!   data segments and a real size, checked as Go checks them (in order, not overlapping, inside
//!   the real size, their lengths adding up to the data stored).

use std::collections::HashMap;
use std::io::{self, Read};

use tar::EntryType;

use super::ExtractError;

/// The most bytes a long name, long link name or extended header may hold (Go's limit too).
const MAX_SPECIAL: u64 = 1 << 20;

/// One member of the archive, with every extension applied.
#[derive(Debug)]
pub(crate) struct Member {
    /// The name, raw bytes.
    pub name: Vec<u8>,
    /// The link target, raw bytes (empty if none).
    pub link: Vec<u8>,
    /// The type from the header (`GNUSparse` for old GNU sparse files).
    pub kind: EntryType,
    /// Permission bits.
    pub mode: u32,
    /// The sparse map, for a sparse file.
    pub sparse: Option<Sparse>,
}

/// Where the data of a sparse file goes.
#[derive(Debug)]
pub(crate) struct Sparse {
    /// The size of the file once restored.
    pub real_size: u64,
    /// `(offset, length)` of each data segment, in order; everything else is a hole.
    pub segments: Vec<(u64, u64)>,
}

/// Reads members one after the other; the data of the current member is read with
/// [`Reader::read_data`], and whatever is left of it is skipped by the next [`Reader::next`].
pub(crate) struct Reader<R> {
    inner: R,
    /// Bytes of the current member's data not read yet.
    remaining: u64,
    /// Padding after them.
    pad: u64,
    /// Bytes consumed so far (the offset of the next header, between members).
    offset: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            pad: 0,
            offset: 0,
            done: false,
        }
    }

    /// Reads up to `buf.len()` bytes of the current member's data; 0 at its end.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ExtractError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ExtractError::from_read(e)),
            }
        };
        if n == 0 {
            return Err(truncated());
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }

    /// The number of data bytes of the current member not read yet.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Reads exactly `buf.len()` bytes of the archive.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ExtractError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                truncated()
            } else {
                ExtractError::from_read(e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Skips `n` bytes of the archive.
    fn skip(&mut self, n: u64) -> Result<(), ExtractError> {
        let copied =
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(ExtractError::from_read)?;
        self.offset += copied;
        if copied != n {
            return Err(truncated());
        }
        Ok(())
    }

    /// Reads the whole data of a special header (long name, extended header), bounded.
    fn read_special(&mut self, size: u64, at: u64) -> Result<Vec<u8>, ExtractError> {
        if size > MAX_SPECIAL {
            return Err(malformed(
                at,
                format!("an extended header of {size} bytes (the limit is {MAX_SPECIAL})"),
            ));
        }
        let mut data = vec![0u8; usize::try_from(size).unwrap_or(0)];
        self.read_exact(&mut data)?;
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Reads one 512-byte header; `None` at the end of the archive (a zero block, or no bytes
    /// at all).
    fn header(&mut self) -> Result<Option<(tar::Header, u64)>, ExtractError> {
        let at = self.offset;
        let mut block = [0u8; 512];
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ExtractError::from_read(e)),
            }
        }
        self.offset += filled as u64;
        if filled == 0 {
            return Ok(None);
        }
        if filled < block.len() {
            return Err(truncated());
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let stored = parse_numeric(&block[148..156]).ok_or_else(|| bad_checksum(at))?;
        let mut unsigned: u64 = 0;
        let mut signed: i64 = 0;
        for (i, b) in block.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { *b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(bad_checksum(at));
        }
        let mut header = tar::Header::new_old();
        header.as_mut_bytes().copy_from_slice(&block);
        Ok(Some((header, at)))
    }

    /// The next member, with its long names, extended headers and sparse map applied.
    pub(crate) fn next(&mut self) -> Result<Option<Member>, ExtractError> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.remaining + self.pad)?;
        self.remaining = 0;
        self.pad = 0;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        loop {
            let Some((header, at)) = self.header()? else {
                self.done = true;
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    tracing::warn!(
                        offset = self.offset,
                        "ignoring extended headers at the end of the layer, with no member after them"
                    );
                }
                return Ok(None);
            };
            // Solaris' `X` extended header is read as PAX `x`, as GNU tar reads it.
            let kind = match header.as_bytes()[156] {
                b'X' => EntryType::XHeader,
                _ => header.entry_type(),
            };
            let size = parse_numeric(&header.as_bytes()[124..136])
                .ok_or_else(|| malformed(at, "a size that is not a number".into()))?;
            match kind {
                EntryType::GNULongName | EntryType::GNULongLink => {
                    let mut data = self.read_special(size, at)?;
                    if let Some(nul) = data.iter().position(|b| *b == 0) {
                        data.truncate(nul);
                    }
                    if kind == EntryType::GNULongName {
                        long_name = Some(data);
                    } else {
                        long_link = Some(data);
                    }
                }
                EntryType::XHeader | EntryType::XGlobalHeader => {
                    let data = self.read_special(size, at)?;
                    let parsed = Pax::parse(&data).map_err(|reason| malformed(at, reason))?;
                    if kind == EntryType::XHeader {
                        match &mut pax {
                            Some(existing) => existing.merge(parsed),
                            None => pax = Some(parsed),
                        }
                    } else {
                        tracing::debug!(offset = at, "ignoring a pax global header");
                    }
                }
                _ => {
                    return self
                        .member(&header, at, size, long_name, long_link, pax)
                        .map(Some);
                }
            }
        }
    }

    /// Builds a member from its header and what came before it, and positions the reader at
    /// the start of its file data.
    fn member(
        &mut self,
        header: &tar::Header,
        at: u64,
        header_size: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        pax: Option<Pax>,
    ) -> Result<Member, ExtractError> {
        let kind = header.entry_type();
        let pax = pax.unwrap_or_default();
        let mut name = pax
            .records
            .get("path")
            .cloned()
            .or(long_name)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link = pax
            .records
            .get("linkpath")
            .cloned()
            .or(long_link)
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
            .unwrap_or_default();
        let mode = u32::try_from(
            parse_numeric(&header.as_bytes()[100..108])
                .ok_or_else(|| malformed(at, "a mode that is not a number".into()))?,
        )
        .map_err(|_| malformed(at, "a mode out of range".into()))?
            & 0o7777;
        let mut size = header_size;
        if let Some(v) = pax.records.get("size") {
            size =
                decimal(v).ok_or_else(|| malformed(at, "a pax size that is not a decimal number".into()))?;
        }
        let mut sparse = None;
        if kind == EntryType::GNUSparse {
            sparse = Some(self.old_gnu_sparse(header, at)?);
        } else if let Some(version) = pax.sparse_version(at)? {
            if let Some(n) = pax.records.get("GNU.sparse.name") {
                name.clone_from(n);
            }
            let real = pax
                .records
                .get("GNU.sparse.size")
                .or_else(|| pax.records.get("GNU.sparse.realsize"));
            let real_size = match real {
                Some(v) => decimal(v)
                    .ok_or_else(|| malformed(at, "a sparse size that is not a decimal number".into()))?,
                None => size,
            };
            let segments = match version {
                SparseVersion::Map => pax
                    .sparse_map
                    .clone()
                    .ok_or_else(|| malformed(at, "a pax sparse file with no map".into()))?,
                SparseVersion::V1 => {
                    self.remaining = size;
                    self.pad = padding(size);
                    let (segments, used) = self.sparse_map_1_0(at)?;
                    size = size
                        .checked_sub(used)
                        .ok_or_else(|| malformed(at, "a sparse map longer than the file's data".into()))?;
                    // Leave `remaining` and `pad` set: the data follows the map.
                    check_sparse(&segments, real_size, size, at)?;
                    return Ok(Member {
                        name,
                        link,
                        kind,
                        mode,
                        sparse: Some(Sparse { real_size, segments }),
                    });
                }
            };
            sparse = Some(Sparse { real_size, segments });
        }
        if let Some(s) = &sparse {
            check_sparse(&s.segments, s.real_size, size, at)?;
        }
        self.remaining = size;
        self.pad = padding(size);
        Ok(Member {
            name,
            link,
            kind,
            mode,
            sparse,
        })
    }

    /// The map of an old GNU sparse header and its extension blocks.
    fn old_gnu_sparse(&mut self, header: &tar::Header, at: u64) -> Result<Sparse, ExtractError> {
        let bytes = header.as_bytes();
        let real_size = parse_numeric(&bytes[483..495])
            .ok_or_else(|| malformed(at, "a sparse real size that is not a number".into()))?;
        let mut segments = Vec::new();
        let read_entries =
            |block: &[u8], count: usize, segments: &mut Vec<(u64, u64)>| -> Result<(), ExtractError> {
                for i in 0..count {
                    let entry = &block[i * 24..i * 24 + 24];
                    if entry[0] == 0 {
                        break;
                    }
                    let offset = parse_numeric(&entry[..12]);
                    let length = parse_numeric(&entry[12..]);
                    match (offset, length) {
                        (Some(o), Some(l)) => segments.push((o, l)),
                        _ => return Err(malformed(at, "a sparse map entry that is not a number".into())),
                    }
                }
                Ok(())
            };
        read_entries(&bytes[386..482], 4, &mut segments)?;
        let mut extended = bytes[482] != 0;
        while extended {
            let mut block = [0u8; 512];
            self.read_exact(&mut block)?;
            read_entries(&block[..504], 21, &mut segments)?;
            extended = block[504] != 0;
        }
        Ok(Sparse { real_size, segments })
    }

    /// Reads the PAX 1.0 sparse map at the start of the member's data: a count, then offsets
    /// and lengths, one decimal number per line, padded to a block. Returns the map and the
    /// bytes it took.
    fn sparse_map_1_0(&mut self, at: u64) -> Result<(Vec<(u64, u64)>, u64), ExtractError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = 0usize;
        let mut next_number = |this: &mut Self, buf: &mut Vec<u8>| -> Result<u64, ExtractError> {
            loop {
                if let Some(nl) = buf[pos..].iter().position(|b| *b == b'\n') {
                    let line = &buf[pos..pos + nl];
                    pos += nl + 1;
                    return decimal(line).ok_or_else(|| {
                        malformed(at, "a sparse map entry that is not a decimal number".into())
                    });
                }
                if buf.len() as u64 >= MAX_SPECIAL.max(this.remaining.min(64 << 20)) || this.remaining < 512 {
                    return Err(malformed(at, "a sparse map that does not end".into()));
                }
                let mut block = [0u8; 512];
                this.inner.read_exact(&mut block).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        truncated()
                    } else {
                        ExtractError::from_read(e)
                    }
                })?;
                this.offset += 512;
                this.remaining -= 512;
                buf.extend_from_slice(&block);
            }
        };
        let count = next_number(self, &mut buf)?;
        let mut segments = Vec::new();
        for _ in 0..count {
            let offset = next_number(self, &mut buf)?;
            let length = next_number(self, &mut buf)?;
            segments.push((offset, length));
        }
        Ok((segments, buf.len() as u64))
    }
}

/// Which PAX sparse format a member uses.
enum SparseVersion {
    /// 0.0 or 0.1: the map is in the extended header.
    Map,
    /// 1.0: the map is at the start of the data.
    V1,
}

/// The records of the extended headers before one member.
#[derive(Default)]
struct Pax {
    records: HashMap<String, Vec<u8>>,
    /// The 0.0 (`GNU.sparse.offset`/`numbytes` records) or 0.1 (`GNU.sparse.map`) sparse map.
    sparse_map: Option<Vec<(u64, u64)>>,
}

impl Pax {
    /// Parses records as Go's `archive/tar` does, refusing what it refuses.
    fn parse(mut data: &[u8]) -> Result<Self, String> {
        let mut pax = Pax::default();
        let mut old_map: Vec<u64> = Vec::new();
        while !data.is_empty() {
            let space = data
                .iter()
                .position(|b| *b == b' ')
                .ok_or("a pax record with no length")?;
            let len = decimal(&data[..space]).ok_or("a pax record whose length is not a decimal number")?;
            if len < 5 || len > data.len() as u64 {
                return Err(format!("a pax record of length {len}, outside its header"));
            }
            let len = usize::try_from(len).map_err(|_| "a pax record too long")?;
            if len <= space + 1 {
                return Err("a pax record too short for its length".into());
            }
            let record = &data[space + 1..len];
            data = &data[len..];
            let Some((&b'\n', record)) = record.split_last() else {
                return Err("a pax record that does not end with a newline".into());
            };
            let eq = record
                .iter()
                .position(|b| *b == b'=')
                .ok_or("a pax record with no `=`")?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            let key = std::str::from_utf8(key).map_err(|_| "a pax record whose key is not UTF-8")?;
            if key.is_empty() {
                return Err("a pax record with an empty key".into());
            }
            let nul_forbidden = matches!(key, "path" | "linkpath" | "uname" | "gname");
            if key.contains('\0') || (nul_forbidden && value.contains(&0)) {
                return Err(format!("a pax record `{}` with a NUL in it", key.escape_debug()));
            }
            match key {
                "GNU.sparse.offset" | "GNU.sparse.numbytes" => {
                    let expected = if old_map.len().is_multiple_of(2) {
                        "GNU.sparse.offset"
                    } else {
                        "GNU.sparse.numbytes"
                    };
                    if key != expected {
                        return Err("pax sparse offsets and lengths out of order".into());
                    }
                    old_map
                        .push(decimal(value).ok_or("a pax sparse map entry that is not a decimal number")?);
                }
                _ => {
                    pax.records.insert(key.to_owned(), value.to_vec());
                }
            }
        }
        if !old_map.is_empty() {
            if !old_map.len().is_multiple_of(2) {
                return Err("a pax sparse offset with no length".into());
            }
            pax.sparse_map = Some(old_map.chunks(2).map(|c| (c[0], c[1])).collect());
        } else if let Some(map) = pax.records.get("GNU.sparse.map") {
            let numbers: Option<Vec<u64>> = if map.is_empty() {
                Some(Vec::new())
            } else {
                map.split(|b| *b == b',').map(decimal).collect()
            };
            let numbers = numbers.ok_or("a pax sparse map entry that is not a decimal number")?;
            if numbers.len() % 2 != 0 {
                return Err("a pax sparse map with an odd number of entries".into());
            }
            pax.sparse_map = Some(numbers.chunks(2).map(|c| (c[0], c[1])).collect());
        }
        Ok(pax)
    }

    /// Adds the records of a later extended header (which win).
    fn merge(&mut self, later: Pax) {
        self.records.extend(later.records);
        if later.sparse_map.is_some() {
            self.sparse_map = later.sparse_map;
        }
    }

    /// The PAX sparse format of the member, as Go decides it; `None` if it is not sparse (or of
    /// a version nobody knows, which is then extracted as stored, as Go and GNU tar do).
    fn sparse_version(&self, at: u64) -> Result<Option<SparseVersion>, ExtractError> {
        let get = |k: &str| self.records.get(k).map(Vec::as_slice);
        Ok(match (get("GNU.sparse.major"), get("GNU.sparse.minor")) {
            (Some(b"0"), Some(b"0" | b"1")) => Some(SparseVersion::Map),
            (Some(b"1"), Some(b"0")) => Some(SparseVersion::V1),
            (Some(_), _) | (_, Some(_)) => {
                tracing::warn!(
                    offset = at,
                    "a pax sparse file of an unknown version, extracted as stored"
                );
                None
            }
            (None, None) if self.sparse_map.is_some() => Some(SparseVersion::Map),
            (None, None) => None,
        })
    }
}

/// Checks a sparse map as Go does: segments in order, not overlapping, inside the real size,
/// and their lengths adding up to the data stored.
fn check_sparse(segments: &[(u64, u64)], real_size: u64, stored: u64, at: u64) -> Result<(), ExtractError> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(offset, length) in segments {
        let seg_end = offset
            .checked_add(length)
            .filter(|e| *e <= real_size && offset >= end && *e <= i64::MAX as u64)
            .ok_or_else(|| {
                malformed(
                    at,
                    "a sparse map with segments out of order, overlapping or past the file's size".into(),
                )
            })?;
        end = seg_end;
        total = total.saturating_add(length);
    }
    if total != stored {
        return Err(malformed(
            at,
            format!("a sparse map describing {total} bytes of data, but {stored} are stored"),
        ));
    }
    Ok(())
}

/// The padding after `size` bytes of data.
fn padding(size: u64) -> u64 {
    (512 - size % 512) % 512
}

/// A header number: octal (NUL or space terminated, leading spaces allowed) or GNU base-256.
fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut n: u64 = u64::from(field[0] & 0x3f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let trimmed: &[u8] = {
        let start = field.iter().position(|b| *b != b' ').unwrap_or(field.len());
        let rest = &field[start..];
        let end = rest
            .iter()
            .position(|b| *b == 0 || *b == b' ')
            .unwrap_or(rest.len());
        &rest[..end]
    };
    if trimmed.is_empty() {
        return Some(0);
    }
    let mut n: u64 = 0;
    for b in trimmed {
        if !(b'0'..=b'7').contains(b) {
            return None;
        }
        n = n.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// A non-empty string of ASCII digits that fits an `i64`.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s)
        .ok()?
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

fn malformed(offset: u64, reason: String) -> ExtractError {
    ExtractError::Malformed { offset, reason }
}

fn bad_checksum(offset: u64) -> ExtractError {
    ExtractError::Tar(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the tar header at byte {offset} has a wrong checksum"),
    ))
}

fn truncated() -> ExtractError {
    ExtractError::Tar(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the layer ends in the middle of an entry",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_refused_as_go_refuses_them() {
        for bad in [
            &b"3 a=b\n"[..],    // length under 5... and past the record
            b"12 path=x\n",     // length past the data
            b"x path=abc\n",    // non-numeric length
            b"12 pathabcd\n",   // no `=`
            b"12 =abcdefg\n",   // empty key
            b"13 path=a\0bc\n", // NUL in a path
            b"11 path=abcd",    // no newline
            b"11 path=abcdX",   // record does not end with a newline
            b"9path=ab\n",      // no space
            b"-11 path=abc\n",  // negative length
        ] {
            assert!(
                Pax::parse(bad).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let ok = Pax::parse(b"12 path=abc\n16 linkpath=xyz\n").unwrap();
        assert_eq!(ok.records["path"], b"abc");
        assert_eq!(ok.records["linkpath"], b"xyz");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"   644 \0"), Some(0o644));
        assert_eq!(parse_numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b"12x4"), None);
        assert_eq!(parse_numeric(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(decimal(b"12"), Some(12));
        assert_eq!(decimal(b"+12"), None);
        assert_eq!(decimal(b""), None);
    }
}
