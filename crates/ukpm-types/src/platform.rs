//! Architectures, unikernel platforms, OCI platform objects and kconfig-derived OS features.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an architecture, platform or `.config` line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// Not an architecture Unikraft builds for.
    #[error("unknown architecture `{0}` (expected x86_64, arm64 or arm)")]
    UnknownArchitecture(String),
    /// Not a platform Unikraft runs on.
    #[error("unknown platform `{0}` (expected qemu, fc, xen, kraftcloud or linuxu)")]
    UnknownPlatform(String),
    /// A `.config` line that is neither blank, a comment, nor `KEY=VALUE`.
    #[error("line {line} is not `KEY=VALUE`: `{text}`")]
    KConfigLine {
        /// 1-based line number.
        line: usize,
        /// The line as read (truncated to 80 characters).
        text: String,
    },
}

/// A CPU architecture, by its Unikraft name (never Go's `amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Architecture {
    /// `x86_64` (also accepted: `amd64`, `x86-64`).
    X86_64,
    /// `arm64` (also accepted: `aarch64`).
    Arm64,
    /// `arm`.
    Arm,
}

impl Architecture {
    /// The name written into images.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
            Architecture::Arm => "arm",
        }
    }

    /// The kconfig option every kernel of this architecture has, so that queries can match on it.
    pub fn kconfig(self) -> &'static str {
        match self {
            Architecture::X86_64 => "CONFIG_ARCH_X86_64",
            Architecture::Arm64 => "CONFIG_ARCH_ARM_64",
            Architecture::Arm => "CONFIG_ARCH_ARM_32",
        }
    }
}

impl FromStr for Architecture {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Architecture, PlatformError> {
        match s {
            "x86_64" | "amd64" | "x86-64" => Ok(Architecture::X86_64),
            "arm64" | "aarch64" => Ok(Architecture::Arm64),
            "arm" => Ok(Architecture::Arm),
            _ => Err(PlatformError::UnknownArchitecture(s.to_string())),
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unikernel platform (the OCI `os` field): the hypervisor or host it boots on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plat {
    /// QEMU/KVM (also accepted: `kvm`).
    Qemu,
    /// Firecracker (also accepted: `firecracker`).
    Fc,
    /// Xen.
    Xen,
    /// Unikraft Cloud (Firecracker underneath).
    Kraftcloud,
    /// A Linux user-space process.
    Linuxu,
}

impl Plat {
    /// The name written into images.
    pub fn as_str(self) -> &'static str {
        match self {
            Plat::Qemu => "qemu",
            Plat::Fc => "fc",
            Plat::Xen => "xen",
            Plat::Kraftcloud => "kraftcloud",
            Plat::Linuxu => "linuxu",
        }
    }

    /// The kconfig options every kernel for this platform has.
    pub fn kconfig(self) -> &'static [&'static str] {
        match self {
            Plat::Qemu => &["CONFIG_PLAT_KVM", "CONFIG_KVM_VMM_QEMU"],
            Plat::Fc | Plat::Kraftcloud => &["CONFIG_PLAT_KVM", "CONFIG_KVM_VMM_FIRECRACKER"],
            Plat::Xen => &["CONFIG_PLAT_XEN"],
            Plat::Linuxu => &["CONFIG_PLAT_LINUXU"],
        }
    }
}

impl FromStr for Plat {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Plat, PlatformError> {
        match s {
            "qemu" | "kvm" => Ok(Plat::Qemu),
            "fc" | "firecracker" => Ok(Plat::Fc),
            "xen" => Ok(Plat::Xen),
            "kraftcloud" => Ok(Plat::Kraftcloud),
            "linuxu" => Ok(Plat::Linuxu),
            _ => Err(PlatformError::UnknownPlatform(s.to_string())),
        }
    }
}

impl fmt::Display for Plat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalises an architecture read from an image (`amd64` -> `x86_64`), keeping unknown names.
pub fn normalize_architecture(s: &str) -> String {
    s.parse::<Architecture>()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// Normalises a platform read from an image (`kvm` -> `qemu`), keeping unknown names.
pub fn normalize_plat(s: &str) -> String {
    s.parse::<Plat>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// The OCI platform object, with fields in Go's order so the JSON matches KraftKit's bytes.
///
/// Empty strings and lists are omitted on write, as Go's `omitempty` does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// The architecture (`x86_64`).
    #[serde(default)]
    pub architecture: String,
    /// The platform (`qemu`).
    #[serde(default)]
    pub os: String,
    /// The kernel version (`CONFIG_UK_FULLVERSION`), when known.
    #[serde(rename = "os.version", default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// The kconfig entries as `KEY=VALUE`, sorted.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// The CPU variant (never written by ukpm).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    /// Whether an index entry with this platform belongs in the same slot as `other`.
    ///
    /// KraftKit's rule: same architecture, platform, version and feature list. Packing into a
    /// taken slot replaces it (or aborts, under `--strategy abort`).
    pub fn same_slot(&self, other: &Platform) -> bool {
        normalize_architecture(&self.architecture) == normalize_architecture(&other.architecture)
            && normalize_plat(&self.os) == normalize_plat(&other.os)
            && self.os_version == other.os_version
            && compact_sorted(&self.os_features) == compact_sorted(&other.os_features)
    }

    /// Whether this platform satisfies a query: each given field equal, and every requested
    /// kconfig entry among the features (KraftKit's subset match).
    pub fn matches(&self, arch: Option<Architecture>, plat: Option<Plat>, kconfig: &[String]) -> bool {
        arch.is_none_or(|a| normalize_architecture(&self.architecture) == a.as_str())
            && plat.is_none_or(|p| normalize_plat(&self.os) == p.as_str())
            && kconfig
                .iter()
                .all(|want| feature_matches(&self.os_features, want))
    }

    /// `plat/arch`, as KraftKit prints a package's platform.
    pub fn short(&self) -> String {
        format!("{}/{}", self.os, self.architecture)
    }
}

/// A query entry is `KEY=VALUE` (exact) or a bare `KEY` (any value; ukpm's extension).
fn feature_matches(features: &[String], want: &str) -> bool {
    if want.contains('=') {
        features.iter().any(|f| f == want)
    } else {
        features
            .iter()
            .any(|f| f.split_once('=').is_some_and(|(k, _)| k == want))
    }
}

/// Sorts byte-wise and drops adjacent duplicates, as KraftKit's descriptor platform does.
pub fn compact_sorted(features: &[String]) -> Vec<String> {
    let mut out = features.to_vec();
    out.sort();
    out.dedup();
    out
}

/// Keys KraftKit never packs: they are host paths of the build machine.
const EXCLUDED_KEYS: &[&str] = &["CONFIG_UK_APP", "CONFIG_UK_BASE"];

/// The kernel's `.config`: what it was built with, carried as OS features so that queries can
/// select kernels by option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KConfig {
    entries: BTreeMap<String, String>,
}

impl KConfig {
    /// An empty configuration.
    pub fn new() -> KConfig {
        KConfig::default()
    }

    /// Parses a `.config`: blank lines and `#` lines are skipped, other lines must be `KEY=VALUE`;
    /// double quotes around a value are removed.
    ///
    /// Unlike KraftKit, a line without `=` is an error: it means the wrong file was given.
    pub fn parse(text: &str) -> Result<KConfig, PlatformError> {
        let mut config = KConfig::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || PlatformError::KConfigLine {
                line: i + 1,
                text: line.chars().take(80).collect(),
            };
            let (key, value) = line.split_once('=').ok_or_else(bad)?;
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad());
            }
            config.insert(key, unquote(value.trim()));
        }
        Ok(config)
    }

    /// Sets one option.
    pub fn insert(&mut self, key: &str, value: &str) {
        self.entries.insert(key.to_string(), value.to_string());
    }

    /// One option's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Adds the options an architecture and platform imply (`CONFIG_ARCH_X86_64=y`, ...), as
    /// KraftKit does for every target, so even a bare kernel can be selected by them.
    pub fn add_implied(&mut self, arch: Architecture, plat: Plat) {
        self.insert(arch.kconfig(), "y");
        for key in plat.kconfig() {
            self.insert(key, "y");
        }
    }

    /// `CONFIG_UK_FULLVERSION`, which KraftKit records as `os.version`.
    pub fn full_version(&self) -> Option<&str> {
        self.get("CONFIG_UK_FULLVERSION").filter(|v| !v.is_empty())
    }

    /// The entries as OS features: `KEY=VALUE`, host paths excluded, byte-wise ascending.
    pub fn features(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .filter(|(k, _)| !EXCLUDED_KEYS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.sort();
        out
    }

    /// Rebuilds a configuration from features read back from an image.
    pub fn from_features<'a>(features: impl IntoIterator<Item = &'a String>) -> KConfig {
        let mut config = KConfig::new();
        for feature in features {
            match feature.split_once('=') {
                Some((k, v)) => config.insert(k, v),
                None => config.insert(feature, ""),
            }
        }
        config
    }

    /// Iterates over `(key, value)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn aliases_normalise() {
        assert_eq!("amd64".parse::<Architecture>().unwrap(), Architecture::X86_64);
        assert_eq!("x86-64".parse::<Architecture>().unwrap(), Architecture::X86_64);
        assert_eq!("aarch64".parse::<Architecture>().unwrap(), Architecture::Arm64);
        assert_eq!("kvm".parse::<Plat>().unwrap(), Plat::Qemu);
        assert_eq!("firecracker".parse::<Plat>().unwrap(), Plat::Fc);
        assert!(matches!(
            "mips".parse::<Architecture>(),
            Err(PlatformError::UnknownArchitecture(_))
        ));
        assert!(matches!(
            "hyperv".parse::<Plat>(),
            Err(PlatformError::UnknownPlatform(_))
        ));
    }

    #[test]
    fn bare_kernel_gets_three_features() {
        let mut k = KConfig::new();
        k.add_implied(Architecture::X86_64, Plat::Qemu);
        assert_eq!(
            k.features(),
            [
                "CONFIG_ARCH_X86_64=y",
                "CONFIG_KVM_VMM_QEMU=y",
                "CONFIG_PLAT_KVM=y"
            ]
        );
        let mut k = KConfig::new();
        k.add_implied(Architecture::Arm64, Plat::Kraftcloud);
        assert_eq!(
            k.features(),
            [
                "CONFIG_ARCH_ARM_64=y",
                "CONFIG_KVM_VMM_FIRECRACKER=y",
                "CONFIG_PLAT_KVM=y"
            ]
        );
    }

    #[test]
    fn dot_config_parses_like_kraftkit() {
        let text = "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_UK_NAME=\"helloworld\"\n\
                    CONFIG_UK_FULLVERSION=\"0.17.0~5fb4fd4\"\n# CONFIG_FOO is not set\n\n\
                    CONFIG_UK_BASE=/home/me/unikraft\nCONFIG_UK_APP=/home/me/app\nCONFIG_LIBVFSCORE_AUTOMOUNT_UP=y\n";
        let k = KConfig::parse(text).unwrap();
        assert_eq!(k.full_version(), Some("0.17.0~5fb4fd4"));
        assert_eq!(
            k.features(),
            [
                "CONFIG_LIBVFSCORE_AUTOMOUNT_UP=y",
                "CONFIG_UK_FULLVERSION=0.17.0~5fb4fd4",
                "CONFIG_UK_NAME=helloworld"
            ]
        );
    }

    #[test]
    fn garbage_lines_are_errors_with_their_number() {
        let err = KConfig::parse("CONFIG_A=y\nthis is not a config\n").unwrap_err();
        assert_eq!(
            err,
            PlatformError::KConfigLine {
                line: 2,
                text: "this is not a config".into()
            }
        );
        assert!(KConfig::parse("=y\n").is_err());
        assert!(KConfig::parse("CONFIG A=y\n").is_err());
    }

    #[test]
    fn features_sort_bytewise_not_by_key() {
        let mut k = KConfig::new();
        k.insert("CONFIG_A_B", "y");
        k.insert("CONFIG_A", "y");
        // '=' (0x3d) sorts before '_' (0x5f).
        assert_eq!(k.features(), ["CONFIG_A=y", "CONFIG_A_B=y"]);
    }

    #[test]
    fn query_matching_is_a_subset_match() {
        let p = Platform {
            architecture: "amd64".into(),
            os: "qemu".into(),
            os_features: vec!["CONFIG_A=y".into(), "CONFIG_B=2".into()],
            ..Platform::default()
        };
        assert!(p.matches(Some(Architecture::X86_64), Some(Plat::Qemu), &[]));
        assert!(p.matches(None, None, &["CONFIG_B=2".into(), "CONFIG_A".into()]));
        assert!(!p.matches(None, None, &["CONFIG_B=3".into()]));
        assert!(!p.matches(None, Some(Plat::Fc), &[]));
    }

    #[test]
    fn platform_json_omits_empty_fields_in_go_order() {
        let p = Platform {
            architecture: "x86_64".into(),
            os: "qemu".into(),
            os_version: "1".into(),
            os_features: vec!["A=y".into()],
            variant: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"architecture":"x86_64","os":"qemu","os.version":"1","os.features":["A=y"]}"#
        );
    }

    proptest! {
        #[test]
        fn features_are_sorted_and_unique(entries in proptest::collection::btree_map("CONFIG_[A-Z_]{1,8}", "[a-z0-9]{0,4}", 0..20)) {
            let mut k = KConfig::new();
            for (key, value) in &entries {
                k.insert(key, value);
            }
            let f = k.features();
            prop_assert!(f.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(compact_sorted(&f), f.clone());
            let back = KConfig::from_features(&f);
            prop_assert_eq!(back.features(), f);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            let _ = KConfig::parse(&text);
        }
    }
}
