//! Decompression of layers, bounded so that a small layer cannot expand without limit.
//!
//! Layers come as plain tar, gzip (`+gzip`, several concatenated members read as one, as Go's
//! `compress/gzip` does) or zstd (`+zstd`, several concatenated frames read as one). zstd is
//! decoded by `ruzstd`, a pure-Rust decoder, so no C library is built or linked.
//!
//! A compressed layer may expand to at most [`Expansion::max_ratio`] times the compressed bytes
//! read so far (1000 by default), once it is past [`Expansion::floor`] bytes of output (16 MiB by
//! default); past that the read fails with an [`ExpansionError`], which extraction reports as
//! [`crate::ExtractError::Expansion`]. gzip cannot go past about 1030:1, so only crafted zstd
//! streams or unusual data (gigabytes of zeros) meet the limit; a caller that expects such data
//! raises it.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// How far a compressed layer may expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expansion {
    /// The largest ratio of output to compressed input allowed. 1000 by default.
    pub max_ratio: u64,
    /// Output up to this many bytes is always allowed, whatever the ratio. 16 MiB by default.
    pub floor: u64,
}

impl Default for Expansion {
    fn default() -> Self {
        Self {
            max_ratio: 1000,
            floor: 16 << 20,
        }
    }
}

impl Expansion {
    /// An expansion limit with this ratio and floor.
    pub fn new(max_ratio: u64, floor: u64) -> Self {
        Self { max_ratio, floor }
    }
}

/// A compressed layer expanded past its [`Expansion`] limit: probably a decompression bomb.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the compressed layer expands to {output} bytes from {input}, more than {max_ratio} times its size: refused as a decompression bomb"
)]
pub struct ExpansionError {
    /// Compressed bytes read.
    pub input: u64,
    /// Bytes they expanded to.
    pub output: u64,
    /// The ratio allowed.
    pub max_ratio: u64,
}

/// Wraps `reader` so that reading gives the plain archive, failing with an [`ExpansionError`]
/// (inside an `io::Error`) when the output grows past `limit`.
pub fn decompress<'a, R: Read + Send + 'a>(
    reader: R,
    compression: Compression,
    limit: Expansion,
) -> Box<dyn Read + Send + 'a> {
    let input = Arc::new(AtomicU64::new(0));
    let counted = Counting {
        inner: reader,
        count: Arc::clone(&input),
    };
    let decoder: Box<dyn Read + Send + 'a> = match compression {
        Compression::None => return Box::new(counted.inner),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
        Compression::Zstd => Box::new(Zstd {
            state: ZstdState::Start(BufReader::new(counted)),
        }),
    };
    Box::new(Bounded {
        inner: decoder,
        input,
        output: 0,
        limit,
    })
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Fails once the output passes the limit.
struct Bounded<'a> {
    inner: Box<dyn Read + Send + 'a>,
    input: Arc<AtomicU64>,
    output: u64,
    limit: Expansion,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.output += n as u64;
        let input = self.input.load(Ordering::Relaxed);
        if self.output > self.limit.floor && self.output > input.saturating_mul(self.limit.max_ratio) {
            return Err(io::Error::other(ExpansionError {
                input,
                output: self.output,
                max_ratio: self.limit.max_ratio,
            }));
        }
        Ok(n)
    }
}

/// A zstd stream of one or more frames.
struct Zstd<R: Read> {
    state: ZstdState<R>,
}

enum ZstdState<R: Read> {
    /// Nothing read yet (an empty stream is an error, found on the first read).
    Start(BufReader<R>),
    /// In a frame.
    Frame(Box<StreamingDecoder<BufReader<R>, FrameDecoder>>),
    /// After an error, or at the end.
    Done,
}

impl<R: Read> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, ZstdState::Done) {
                ZstdState::Done => return Ok(0),
                ZstdState::Start(source) => {
                    self.state = ZstdState::Frame(Box::new(StreamingDecoder::new(source).map_err(invalid)?));
                }
                ZstdState::Frame(mut frame) => {
                    let n = frame.read(buf)?;
                    if n > 0 {
                        self.state = ZstdState::Frame(frame);
                        return Ok(n);
                    }
                    let (mut source, decoder) = (*frame).into_parts();
                    if source.fill_buf()?.is_empty() {
                        return Ok(0);
                    }
                    let next = StreamingDecoder::new_with_decoder(source, decoder).map_err(invalid)?;
                    self.state = ZstdState::Frame(Box::new(next));
                }
            }
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("invalid zstd data: {e}"))
}
