//! What a package is ([`Package`]: one manifest of an index) and how packages are chosen
//! ([`Query`]: name glob, architecture, platform, kconfig), for listing, unpacking and pulling.

use ukpm_types::{
    Architecture, Descriptor, Manifest, Plat, Platform, Reference, normalize_architecture, normalize_plat,
};

/// One manifest of a stored index: a unikernel for one platform (KraftKit's `pack.Package`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The reference the package is stored under. For a ref another tool named with a bare tag
    /// (`v1`, as skopeo's `oci:DIR:v1` and umoci write it), the reference that name parses to
    /// (`unikraft.org/v1:latest`, lowercased if need be): where a push without `--to` sends it.
    pub reference: Reference,
    /// The ref name exactly as the store has it: the full reference for what ukpm wrote, `v1` for
    /// a bare tag another tool wrote. Every local command accepts it.
    pub name: String,
    /// The index the reference points at (absent for a single-manifest image).
    pub index: Option<Descriptor>,
    /// The manifest's descriptor, with its platform.
    pub manifest: Descriptor,
    /// Architecture, platform, version and kconfig features.
    pub platform: Platform,
    /// The layers' total size in bytes.
    pub size: u64,
    /// When it was packed or pulled into this store (RFC 3339).
    pub created: Option<String>,
}

impl Package {
    pub(crate) fn new(
        reference: Reference,
        index: Option<Descriptor>,
        manifest_descriptor: Descriptor,
        manifest: &Manifest,
        created: Option<String>,
    ) -> Package {
        let mut platform = manifest_descriptor
            .platform
            .clone()
            .or_else(|| manifest.config.platform.clone())
            .unwrap_or_default();
        platform.architecture = normalize_architecture(&platform.architecture);
        platform.os = normalize_plat(&platform.os);
        Package {
            name: reference.to_string(),
            reference,
            index,
            size: manifest.layers.iter().map(|l| l.size).sum(),
            manifest: manifest_descriptor,
            platform,
            created,
        }
    }

    /// The package under the ref name `name` as the store writes it.
    pub(crate) fn named(mut self, name: &str) -> Package {
        self.name = name.to_string();
        self
    }

    /// Whether the ref name is the full reference ukpm writes (rather than another tool's bare
    /// tag or short name).
    pub fn is_full_name(&self) -> bool {
        self.name == self.reference.to_string()
    }

    /// The name column of `ls`: the repository's name, or the ref name as written when it is
    /// not a full reference (`v1`).
    pub fn display_name(&self) -> String {
        if self.is_full_name() {
            self.reference.name()
        } else {
            self.name.clone()
        }
    }

    /// The tag column of `ls`: the reference's tag, none when the ref name is not a full
    /// reference (it is shown whole as the name).
    pub fn display_tag(&self) -> Option<&str> {
        if self.is_full_name() {
            self.reference.tag()
        } else {
            None
        }
    }

    /// `plat/arch`, as KraftKit shows it.
    pub fn plat_arch(&self) -> String {
        self.platform.short()
    }
}

/// What to look for; every field given must match (KraftKit's query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// A glob (`*`, `?`) over the package's reference (`unikraft.org/nginx:latest`), its name,
    /// repository, or `repository:tag`.
    pub name: Option<String>,
    /// The architecture.
    pub architecture: Option<Architecture>,
    /// The platform.
    pub platform: Option<Plat>,
    /// kconfig entries the kernel must have: `KEY=VALUE`, or `KEY` for any value.
    pub kconfig: Vec<String>,
}

impl Query {
    /// Whether a package passes the platform filters.
    pub fn matches_platform(&self, platform: &Platform) -> bool {
        platform.matches(self.architecture, self.platform, &self.kconfig)
    }

    /// `name` is the ref name as stored (a bare tag `v1` another tool wrote is matched as such).
    pub(crate) fn matches_name(&self, reference: &Reference, name: &str) -> bool {
        let Some(pattern) = &self.name else {
            return true;
        };
        let tag = reference.tag().unwrap_or_default();
        [
            name.to_string(),
            reference.to_string(),
            reference.name(),
            reference.repository().to_string(),
            format!("{}:{tag}", reference.repository()),
        ]
        .iter()
        .any(|candidate| glob_match(pattern.as_bytes(), candidate.as_bytes()))
    }

    /// `plat/arch` plus kconfig, for "no manifest for ..." messages.
    pub fn describe(&self) -> String {
        let plat = self.platform.map_or("any platform", |p| p.as_str());
        let arch = self.architecture.map_or("any architecture", |a| a.as_str());
        let mut out = format!("{plat}/{arch}");
        for k in &self.kconfig {
            out.push_str(&format!(" with {k}"));
        }
        out
    }
}

/// Matches `*` (any run) and `?` (one byte); everything else literally.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"unikraft.org/*", b"unikraft.org/nginx"));
        assert!(glob_match(b"ng?nx", b"nginx"));
        assert!(glob_match(b"*x*", b"nginx"));
        assert!(!glob_match(b"ng", b"nginx"));
        assert!(!glob_match(b"*y*", b"nginx"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
    }

    #[test]
    fn name_filter_accepts_short_and_full_forms() {
        let r: Reference = "unikraft.org/nginx:1.25".parse().unwrap();
        for pattern in [
            "nginx*",
            "unikraft.org/nginx",
            "nginx:1.25",
            "*:1.25",
            "unikraft.org/*",
        ] {
            let q = Query {
                name: Some(pattern.into()),
                ..Query::default()
            };
            assert!(q.matches_name(&r, &r.to_string()), "{pattern}");
        }
        let q = Query {
            name: Some("redis".into()),
            ..Query::default()
        };
        assert!(!q.matches_name(&r, &r.to_string()));
    }
}

/// The architecture and platform this machine runs unikernels on, as KraftKit detects them
/// for a pull without `--arch`/`--plat`, and why: a pull that is not told which platform
/// fetches this one, as `kraft pkg pull` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPlatform {
    /// The machine's architecture (`None` on one Unikraft does not build for).
    pub architecture: Option<Architecture>,
    /// `xen` in a Xen control domain, else `qemu`.
    pub platform: Plat,
    /// What the choice rests on, for a message: "/dev/kvm present", ...
    pub reason: &'static str,
}

impl HostPlatform {
    /// Detects it: a Xen control domain (`/proc/xen/capabilities` says `control_d`) runs Xen
    /// guests; anything else runs QEMU, with KVM when `/dev/kvm` exists and emulated otherwise.
    /// Firecracker is never guessed: it needs KVM too and is a choice (`--plat fc`).
    pub fn detect() -> HostPlatform {
        let xen =
            fs_err::read_to_string("/proc/xen/capabilities").is_ok_and(|caps| caps.contains("control_d"));
        let (platform, reason) = if xen {
            (Plat::Xen, "a Xen control domain")
        } else if fs_err::metadata("/dev/kvm").is_ok() {
            (Plat::Qemu, "/dev/kvm present")
        } else {
            (Plat::Qemu, "no /dev/kvm: QEMU emulates")
        };
        HostPlatform {
            architecture: std::env::consts::ARCH.parse().ok(),
            platform,
            reason,
        }
    }

    /// The query for this machine: its architecture (if Unikraft knows it) and platform.
    pub fn query(&self) -> Query {
        Query {
            architecture: self.architecture,
            platform: Some(self.platform),
            ..Query::default()
        }
    }
}
