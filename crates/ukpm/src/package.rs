//! What a package is ([`Package`]: one manifest of an index), how packages are chosen
//! ([`Query`]: name glob, architecture, platform, kconfig), for listing, unpacking and pulling,
//! and the order listings show them in ([`listing_order`], [`compare_tags`]).

use std::cmp::Ordering;

use ukpm_types::{
    Architecture, Descriptor, Manifest, Plat, Platform, Reference, normalize_architecture, normalize_plat,
};

/// The annotation on a ref's entry in the local store's `index.json` that records when `pull`
/// set it (RFC 3339, UTC), so `ls` can show KraftKit's `PULLED` column. KraftKit derives it
/// from the layers' file times instead, which cannot tell a package packed here from one
/// pulled; the entry's own annotation can, costs no extra read, and travels with the ref
/// (a `pack` into the same name writes a new entry without it: the index is then a local one).
pub const PULLED_ANNOTATION: &str = "sh.ukpm.pulled";

/// When a stored package came from a registry, as `ls` shows it (KraftKit's `PULLED`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pulled {
    /// `pull` set the name at this time (RFC 3339).
    At(String),
    /// Packed, loaded or imported here, or tagged from such a package: never pulled.
    Never,
    /// The store does not keep the record (containerd and KraftKit's store keep only what a
    /// name points at), or the package is not in a store at all (`ls --remote`).
    Unknown,
}

impl Pulled {
    /// The pull time, when there is one.
    pub fn time(&self) -> Option<&str> {
        match self {
            Pulled::At(time) => Some(time),
            Pulled::Never | Pulled::Unknown => None,
        }
    }

    /// What a ref entry says, in a store that keeps entries' annotations (`records`) or not.
    pub(crate) fn of_entry(entry: &Descriptor, records: bool) -> Pulled {
        match entry.annotations.get(PULLED_ANNOTATION) {
            Some(time) => Pulled::At(time.clone()),
            None if records => Pulled::Never,
            None => Pulled::Unknown,
        }
    }
}

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
    /// Whether (and when) it was pulled into this store.
    pub pulled: Pulled,
}

impl Package {
    pub(crate) fn new(
        reference: Reference,
        index: Option<Descriptor>,
        manifest_descriptor: Descriptor,
        manifest: &Manifest,
        created: Option<String>,
    ) -> Package {
        let platform = manifest_descriptor
            .platform
            .clone()
            .or_else(|| manifest.config.platform.clone())
            .unwrap_or_default();
        let size = manifest.layers.iter().map(|l| l.size).sum();
        Package::listed(reference, index, manifest_descriptor, platform, size, created)
    }

    /// A package from what a listing knows without reading the manifest: its descriptor, its
    /// platform, and the layers' total size.
    pub(crate) fn listed(
        reference: Reference,
        index: Option<Descriptor>,
        manifest_descriptor: Descriptor,
        mut platform: Platform,
        size: u64,
        created: Option<String>,
    ) -> Package {
        platform.architecture = normalize_architecture(&platform.architecture);
        platform.os = normalize_plat(&platform.os);
        Package {
            name: reference.to_string(),
            reference,
            index,
            size,
            manifest: manifest_descriptor,
            platform,
            created,
            pulled: Pulled::Unknown,
        }
    }

    /// The package under the ref name `name` as the store writes it.
    pub(crate) fn named(mut self, name: &str) -> Package {
        self.name = name.to_string();
        self
    }

    /// The package with what its store knows of its pull.
    pub(crate) fn with_pulled(mut self, pulled: Pulled) -> Package {
        self.pulled = pulled;
        self
    }

    /// The digest the name points at: the index's (what `pack` prints and `name@digest`
    /// takes), or the manifest's for a single-manifest image.
    pub fn top_digest(&self) -> ukpm_types::Digest {
        self.index.as_ref().unwrap_or(&self.manifest).digest
    }

    /// Whether the ref name is the full reference ukpm writes (rather than another tool's bare
    /// tag or short name).
    pub fn is_full_name(&self) -> bool {
        // Compared as it is written out, without building the string: `ls` asks this of every
        // row, several times.
        struct Prefix<'a>(Option<&'a str>);
        impl std::fmt::Write for Prefix<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0 = self.0.and_then(|rest| rest.strip_prefix(s));
                Ok(())
            }
        }
        let mut rest = Prefix(Some(&self.name));
        let _ = std::fmt::Write::write_fmt(&mut rest, format_args!("{}", self.reference));
        rest.0 == Some("")
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

/// The order `ls` lists packages in: by name, then by tag as versions ([`compare_tags`]; a
/// package without a tag last), so that a store lists the same way whatever order its
/// `index.json` holds the names in. The platforms of one name keep their index's order (the
/// order they were packed in, as KraftKit merges them) under a stable sort.
pub fn listing_order(a: &Package, b: &Package) -> Ordering {
    a.display_name()
        .cmp(&b.display_name())
        .then_with(|| match (a.display_tag(), b.display_tag()) {
            (Some(x), Some(y)) => compare_tags(x, y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

/// Orders two tags: as versions when both read as one (`1.9` before `1.25`, `v2.0.0-rc.1`
/// before `v2.0.0`, semver's rules for pre-releases), versions before other tags, and other
/// tags in natural order (runs of digits by value: `build-9` before `build-10`); equal
/// values (`1.0` and `v1.0`) fall back to the bytes, so the order is total.
pub fn compare_tags(a: &str, b: &str) -> Ordering {
    let by_value = match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => natural(a, b),
    };
    by_value.then_with(|| a.cmp(b))
}

/// A tag read as a version: `[v]N(.N)*[-PRE][+BUILD]`, numbers of any length.
#[derive(Debug, PartialEq, Eq)]
struct Version<'a> {
    numbers: Vec<&'a str>,
    pre: Option<Vec<&'a str>>,
}

impl<'a> Version<'a> {
    fn parse(tag: &'a str) -> Option<Version<'a>> {
        let text = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
        let text = text.split_once('+').map_or(text, |(core, _build)| core);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !numbers.iter().all(|n| digits(n)) {
            return None;
        }
        let pre = match pre {
            Some(pre) => {
                let ids: Vec<&str> = pre.split('.').collect();
                if ids.iter().any(|id| id.is_empty()) {
                    return None;
                }
                Some(ids)
            }
            None => None,
        };
        Some(Version { numbers, pre })
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let longest = self.numbers.len().max(other.numbers.len());
        let number = |v: &Self, i: usize| v.numbers.get(i).copied().unwrap_or("0");
        (0..longest)
            .map(|i| numeric(number(self, i), number(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => {
                    for (a, b) in x.iter().zip(y) {
                        let is_num = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
                        let o = match (is_num(a), is_num(b)) {
                            (true, true) => numeric(a, b),
                            (true, false) => Ordering::Less,
                            (false, true) => Ordering::Greater,
                            (false, false) => a.cmp(b),
                        };
                        if o.is_ne() {
                            return o;
                        }
                    }
                    x.len().cmp(&y.len())
                }
            })
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Two runs of ASCII digits by value, however long (no overflow): fewer significant digits
/// is smaller, then the digits decide.
fn numeric(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Natural order: runs of digits compared by value, everything else byte by byte.
fn natural(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> impl Iterator<Item = &str> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some(run)
        })
    }
    let (mut x, mut y) = (runs(a), runs(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let both_digits = p.starts_with(|c: char| c.is_ascii_digit())
                    && q.starts_with(|c: char| c.is_ascii_digit());
                let o = if both_digits { numeric(p, q) } else { p.cmp(q) };
                if o.is_ne() {
                    return o;
                }
            }
        }
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
    fn tags_order_as_versions_then_naturally() {
        let mut tags = vec![
            "latest",
            "1.25",
            "v1.9",
            "1.25-rc.1",
            "1.25-rc.2",
            "main",
            "2",
            "1.25-alpha",
            "build-10",
            "build-9",
            "0.17.0",
            "1.25.0+b2",
            "99999999999999999999999",
            "1.2.3.4",
        ];
        tags.sort_by(|a, b| compare_tags(a, b));
        assert_eq!(
            tags,
            [
                "0.17.0",
                "1.2.3.4",
                "v1.9",
                "1.25-alpha",
                "1.25-rc.1",
                "1.25-rc.2",
                "1.25",
                "1.25.0+b2",
                "2",
                "99999999999999999999999",
                "build-9",
                "build-10",
                "latest",
                "main",
            ]
        );
        assert_eq!(
            compare_tags("1.0", "v1.0"),
            Ordering::Less,
            "ties fall back to the bytes"
        );
        assert_eq!(compare_tags("1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare_tags("1.0-rc.2", "1.0-rc.10"), Ordering::Less);
        assert_eq!(compare_tags("1.0-1", "1.0-a"), Ordering::Less);
        assert_eq!(
            compare_tags("1..2", "1.2"),
            Ordering::Greater,
            "`1..2` is not a version"
        );
    }

    #[test]
    fn tag_order_is_total() {
        let tags = [
            "", "0", "00", "1", "01", "1.0", "v1.0", "1.0.0", "1.0-rc", "1.0-rc.1", "1.0-1", "1.0+x", "1.0-",
            "a", "a1", "a01", "a10", "a9", "-", "-1", "10", "9", "v", "V2", "latest", "1.a",
        ];
        for a in tags {
            for b in tags {
                assert_eq!(compare_tags(a, b), compare_tags(b, a).reverse(), "{a} {b}");
                assert_eq!(compare_tags(a, b).is_eq(), a == b, "{a} {b}");
                for c in tags {
                    if compare_tags(a, b).is_le() && compare_tags(b, c).is_le() {
                        assert!(compare_tags(a, c).is_le(), "{a} <= {b} <= {c}");
                    }
                }
            }
        }
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
