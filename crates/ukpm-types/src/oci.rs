//! OCI image-spec documents, serialised byte-for-byte as Go's `encoding/json` writes
//! image-spec v1.1.0, so that ukpm and KraftKit produce the same digests for the same package.
//!
//! Field order is Go's struct order, maps are sorted (`BTreeMap`), empty optional fields are
//! omitted as Go's `omitempty` does, and [`to_go_json`] escapes `<`, `>`, `&`, U+2028 and U+2029
//! as Go does. Unknown fields are ignored on read; documents read from elsewhere are kept as their
//! raw bytes and never re-serialised, since that would change their digests.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::media::media_type;
use crate::platform::Platform;

/// Annotations: a sorted map, as Go serialises `map[string]string`.
pub type Annotations = BTreeMap<String, String>;

/// A pointer to content: its type, digest and size, plus what KraftKit hangs on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type of the content pointed at.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// Alternative download locations (never written by ukpm).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub urls: Vec<String>,
    /// Annotations on the pointer.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: Annotations,
    /// Embedded content, base64 (never written by ukpm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The platform: on index entries, and (KraftKit's addition) on the config descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type (never written by ukpm).
    #[serde(rename = "artifactType", default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with just type, digest and size.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: Vec::new(),
            annotations: Annotations::new(),
            data: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// The descriptor of a JSON document already serialised.
    pub fn for_bytes(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// Whether this points at an index (OCI or Docker list).
    pub fn is_index(&self) -> bool {
        matches!(
            self.media_type.as_str(),
            media_type::IMAGE_INDEX | media_type::DOCKER_MANIFEST_LIST
        )
    }

    /// Whether this points at an image manifest (OCI or Docker).
    pub fn is_manifest(&self) -> bool {
        matches!(
            self.media_type.as_str(),
            media_type::IMAGE_MANIFEST | media_type::DOCKER_MANIFEST
        )
    }
}

/// An image manifest: one unikernel for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The artifact type (never written by ukpm).
    #[serde(rename = "artifactType", default, skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    /// The image config.
    pub config: Descriptor,
    /// The layers in order: kernel, debug kernel, initrd.
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    /// The subject (never written by ukpm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// The manifest's annotations.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: Annotations,
}

/// An image index: one tag, many platforms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The artifact type (never written by ukpm).
    #[serde(rename = "artifactType", default, skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    /// One entry per platform.
    #[serde(default, deserialize_with = "null_as_default")]
    pub manifests: Vec<Descriptor>,
    /// The subject (never written by ukpm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// The index's annotations.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: Annotations,
}

impl Index {
    /// An empty OCI index.
    pub fn new() -> Index {
        Index {
            schema_version: 2,
            media_type: media_type::IMAGE_INDEX.to_string(),
            artifact_type: String::new(),
            manifests: Vec::new(),
            subject: None,
            annotations: Annotations::new(),
        }
    }
}

impl Default for Index {
    fn default() -> Index {
        Index::new()
    }
}

/// The OCI image config (Go's `ocispec.Image`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time, RFC 3339 (never written by KraftKit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author (never written by KraftKit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Unikraft architecture name.
    #[serde(default)]
    pub architecture: String,
    /// Platform name.
    #[serde(default)]
    pub os: String,
    /// Kernel version.
    #[serde(rename = "os.version", default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// kconfig as `KEY=VALUE`, sorted.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os_features: Vec<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Execution parameters; always present (`{}` when empty), as Go writes it.
    #[serde(default)]
    pub config: RuntimeConfig,
    /// Layer diff IDs.
    pub rootfs: RootFs,
    /// History (never written by ukpm).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub history: Vec<History>,
}

/// Go's `ocispec.ImageConfig`: how to run the unikernel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RuntimeConfig {
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// Environment, `K=V`.
    #[serde(
        rename = "Env",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub entrypoint: Vec<String>,
    /// The unikernel's arguments.
    #[serde(
        rename = "Cmd",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub cmd: Vec<String>,
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(rename = "WorkingDir", default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// Labels.
    #[serde(
        rename = "Labels",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "StopSignal", default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(rename = "ArgsEscaped", default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
}

/// Go's `struct{}`: serialised as `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// The config's `rootfs`: layer diff IDs, equal to the layer digests for uncompressed layers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// One per layer.
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
}

/// One history entry (read only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Accepts JSON `null` where Go would have written a nil slice or map.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Serialises as Go's `encoding/json.Marshal` does: compact, with HTML-safe escapes.
pub fn to_go_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serialising our own types into a Vec cannot fail: no maps with non-string keys, no I/O.
    if let Err(err) = value.serialize(&mut serializer) {
        unreachable!("serialising an OCI document failed: {err}");
    }
    out
}

/// serde_json's compact formatter plus Go's extra escapes.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes_html_and_line_separators() {
        let v = vec!["hi & bye <x> \u{2028}\u{2029} \"q\" \n é".to_string()];
        assert_eq!(
            String::from_utf8(to_go_json(&v)).unwrap(),
            r#"["hi \u0026 bye \u003cx\u003e \u2028\u2029 \"q\" \n é"]"#
        );
    }

    #[test]
    fn empty_runtime_config_is_an_empty_object() {
        assert_eq!(to_go_json(&RuntimeConfig::default()), b"{}");
    }

    #[test]
    fn reads_null_lists_and_unknown_fields() {
        let hex = "a".repeat(64);
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:{hex}","size":1,"extra":true}},"layers":null,"annotations":null}}"#
        );
        let m: Manifest = serde_json::from_str(&json).unwrap();
        assert!(m.layers.is_empty());
        assert!(m.annotations.is_empty());
    }

    proptest::proptest! {
        /// Hostile documents (random bytes, or JSON with random values where the fields go)
        /// are refused with an error, never a panic.
        #[test]
        fn parsing_hostile_documents_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            size in proptest::prelude::any::<i64>(),
            media in "\\PC{0,20}",
            digest in "\\PC{0,80}",
        ) {
            let _ = serde_json::from_slice::<Manifest>(&bytes);
            let _ = serde_json::from_slice::<Index>(&bytes);
            let _ = serde_json::from_slice::<ImageConfig>(&bytes);
            let doc = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media,
                "manifests": [{"mediaType": media, "digest": digest, "size": size}],
                "config": {"mediaType": media, "digest": digest, "size": size},
                "layers": [{"digest": digest, "size": size, "platform": {"os.features": [media]}}],
                "rootfs": {"diff_ids": [digest]},
            });
            let text = doc.to_string();
            let _ = serde_json::from_str::<Manifest>(&text);
            let _ = serde_json::from_str::<Index>(&text);
            let _ = serde_json::from_str::<ImageConfig>(&text);
        }
    }

    #[test]
    fn negative_sizes_are_refused() {
        let hex = "a".repeat(64);
        let json = format!(r#"{{"mediaType":"x","digest":"sha256:{hex}","size":-1}}"#);
        assert!(serde_json::from_str::<Descriptor>(&json).is_err());
    }
}
