//! Paths in `--json` documents. A path on Linux is bytes, not text: a layer may hold a file
//! whose name is not UTF-8, and it must survive into the document rather than make ukpm
//! panic or print a name that does not exist. As ripgrep's `--json` does, a path is text when
//! it can be, bytes otherwise; unlike ripgrep, the text form stays a plain string, which is
//! what every ukpm document has always held.

use std::path::Path;

use base64::Engine as _;
use serde::{Serialize, Serializer};

/// A path as `--json` writes it: `"unikraft/bin/kernel"` when it is UTF-8, else
/// `{"bytes": "<base64 of its raw bytes>"}` (standard alphabet, padded).
#[derive(Debug, Clone, Copy)]
pub struct JsonPath<'a>(pub &'a Path);

/// The form of a path that is not UTF-8.
#[derive(Serialize)]
struct Bytes {
    bytes: String,
}

impl Serialize for JsonPath<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.to_str() {
            Some(text) => serializer.serialize_str(text),
            None => {
                // On Unix the encoded bytes are exactly the bytes the kernel has for the name.
                let raw = self.0.as_os_str().as_encoded_bytes();
                Bytes {
                    bytes: base64::engine::general_purpose::STANDARD.encode(raw),
                }
                .serialize(serializer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn utf8_is_a_plain_string() {
        let json = serde_json::to_string(&JsonPath(Path::new("unikraft/bin/kernel"))).unwrap();
        assert_eq!(json, r#""unikraft/bin/kernel""#);
    }

    #[test]
    fn other_bytes_are_base64() {
        let path = Path::new(OsStr::from_bytes(b"bin/caf\xe9"));
        let json = serde_json::to_string(&JsonPath(path)).unwrap();
        assert_eq!(json, r#"{"bytes":"YmluL2NhZuk="}"#);
    }
}
