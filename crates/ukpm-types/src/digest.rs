//! Content digests: the names of every blob in a store or a registry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Errors from parsing a digest string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The string has no `algorithm:` prefix.
    #[error("digest `{0}` has no `algorithm:` prefix")]
    MissingAlgorithm(String),
    /// The algorithm is not one ukpm can verify.
    #[error("digest `{digest}` uses the unsupported algorithm `{algorithm}` (only sha256 is supported)")]
    UnsupportedAlgorithm {
        /// The whole digest string.
        digest: String,
        /// The algorithm named in it.
        algorithm: String,
    },
    /// The encoded part is not 64 lowercase hex characters.
    #[error("digest `{0}` is not `sha256:` followed by 64 lowercase hex characters")]
    BadEncoding(String),
}

/// A sha256 content digest, always valid, so that a path built from it can never leave the store.
///
/// Only sha256 exists: it is what every OCI registry, KraftKit and containerd use, and refusing
/// the rest means no unverifiable blob ever gets in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    bytes: [u8; 32],
}

impl Digest {
    /// Digest of a whole byte slice, for small JSON documents already in memory.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new();
        hasher.update(bytes);
        hasher.finish()
    }

    /// The algorithm name as it appears before the colon.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The 64 lowercase hex characters after the colon; the file name of a blob in a layout.
    pub fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.bytes {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
        out
    }

    /// The first 12 hex characters, as `ls` tables show digests (like `docker images`).
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// Rebuilds a digest from the file name of a blob (`blobs/sha256/<hex>`).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        let bad = || DigestError::BadEncoding(format!("sha256:{hex}"));
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        let raw = hex.as_bytes();
        for (i, byte) in bytes.iter_mut().enumerate() {
            let hi = hex_value(raw[2 * i]).ok_or_else(bad)?;
            let lo = hex_value(raw[2 * i + 1]).ok_or_else(bad)?;
            *byte = (hi << 4) | lo;
        }
        Ok(Digest { bytes })
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, encoded)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_string()));
        };
        if algorithm != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm {
                digest: s.to_string(),
                algorithm: algorithm.to_string(),
            });
        }
        Digest::from_hex(encoded).map_err(|_| DigestError::BadEncoding(s.to_string()))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256, so large blobs are hashed as they stream and never held in memory.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A hasher that has seen nothing yet.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// How many bytes have been fed, so callers get the size along with the digest.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes have been fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let out = self.inner.finalize();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&out);
        Digest { bytes }
    }
}

/// A hasher is a sink: `io::copy(&mut reader, &mut hasher)` hashes a whole stream.
impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rejects_malformed_digests() {
        assert!(matches!(
            "abc".parse::<Digest>(),
            Err(DigestError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            "sha512:00".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            "sha256:00".parse::<Digest>(),
            Err(DigestError::BadEncoding(_))
        ));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(matches!(
            upper.parse::<Digest>(),
            Err(DigestError::BadEncoding(_))
        ));
        let traversal = format!("sha256:../{}", "a".repeat(61));
        assert!(traversal.parse::<Digest>().is_err());
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let d = Digest::of(&bytes);
            prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
            prop_assert_eq!(Digest::from_hex(&d.hex()).unwrap(), d);
        }

        #[test]
        fn streaming_equals_one_shot(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
            let cut = cut.min(bytes.len());
            let mut h = Hasher::new();
            h.update(&bytes[..cut]);
            h.update(&bytes[cut..]);
            prop_assert_eq!(h.len(), bytes.len() as u64);
            prop_assert_eq!(h.finish(), Digest::of(&bytes));
        }
    }
}
