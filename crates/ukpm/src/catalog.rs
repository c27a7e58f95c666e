//! Finding packages: listing with filters (KraftKit's `Catalog`) and resolving a reference.

use ukpm_store::RefEntry;
use ukpm_types::{
    Architecture, Descriptor, Digest, ImageConfig, Index, Manifest, Plat, Platform, Reference, annotation,
    normalize_architecture, normalize_plat,
};

use crate::error::{Error, Result};
use crate::manager::PackageManager;

/// One manifest of a stored index: a unikernel for one platform (KraftKit's `pack.Package`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The reference the package is stored under.
    pub reference: Reference,
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
            reference,
            index,
            size: manifest.layers.iter().map(|l| l.size).sum(),
            manifest: manifest_descriptor,
            platform,
            created,
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

    fn matches_name(&self, reference: &Reference) -> bool {
        let Some(pattern) = &self.name else {
            return true;
        };
        let tag = reference.tag().unwrap_or_default();
        [
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
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
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

impl PackageManager {
    /// Lists the stored packages matching `query`, one per manifest, in store order.
    pub async fn list(&self, query: &Query) -> Result<Vec<Package>> {
        let store = self.store();
        let mut refs = Vec::new();
        for entry in store.refs().await? {
            let Ok(reference) = entry.name.parse::<Reference>() else {
                tracing::debug!(name = %entry.name, "skipping a ref whose name is not a reference");
                continue;
            };
            if query.matches_name(&reference) {
                refs.push((reference, entry.descriptor));
            }
        }
        // Read every index at once, then every manifest at once: a store of a thousand
        // packages lists in two batches, not two thousand round trips.
        let tops = store
            .read_many(refs.iter().map(|(_, d)| d.clone()).collect())
            .await?;
        let mut wanted: Vec<(usize, Descriptor)> = Vec::new();
        for (i, ((reference, top), bytes)) in refs.iter().zip(tops).enumerate() {
            if top.is_index() {
                let index: Index = parse(top, &bytes?, "image index")?;
                wanted.extend(
                    index
                        .manifests
                        .into_iter()
                        .filter(Descriptor::is_manifest)
                        .map(|m| (i, m)),
                );
            } else if top.is_manifest() {
                bytes?;
                wanted.push((i, top.clone()));
            } else {
                return Err(Error::InvalidInput(format!(
                    "{reference} points at `{}`, which is neither an image index nor a manifest",
                    top.media_type
                )));
            }
        }
        let manifests = store
            .read_many(wanted.iter().map(|(_, d)| d.clone()).collect())
            .await?;
        let mut out = Vec::new();
        for ((i, entry), bytes) in wanted.into_iter().zip(manifests) {
            let (reference, top) = &refs[i];
            let bytes = match bytes {
                Ok(bytes) => bytes,
                // A pull keeps the registry's whole index but only the platforms asked for.
                Err(Error::Store(ukpm_store::StoreError::BlobNotFound { .. })) if top.is_index() => continue,
                // KraftKit's `size: 32` entries: read by digest alone.
                Err(Error::Store(ukpm_store::StoreError::StoredSizeMismatch { .. })) => {
                    self.read_by_digest(&entry).await?
                }
                Err(err) => return Err(err),
            };
            let manifest: Manifest = parse(&entry, &bytes, "image manifest")?;
            let entry = self.with_platform(entry, &manifest).await?;
            let index = top.is_index().then(|| top.clone());
            let created = top.annotations.get(annotation::OCI_CREATED).cloned();
            let package = Package::new(reference.clone(), index, entry, &manifest, created);
            if query.matches_platform(&package.platform) {
                out.push(package);
            }
        }
        Ok(out)
    }

    /// The packages (manifests) a stored ref target holds.
    pub(crate) async fn packages_of(
        &self,
        reference: &Reference,
        target: &Descriptor,
    ) -> Result<Vec<Package>> {
        let store = self.store();
        let created = target.annotations.get(annotation::OCI_CREATED).cloned();
        if target.is_index() {
            let index: Index = parse(target, &store.read_bytes(target.clone()).await?, "image index")?;
            let mut out = Vec::with_capacity(index.manifests.len());
            for entry in index.manifests.into_iter().filter(Descriptor::is_manifest) {
                // A pull keeps the registry's whole index but only the platforms asked for.
                if !store.has_blob(entry.digest, None).await? {
                    continue;
                }
                let manifest = self.read_manifest(&entry).await?;
                let entry = self.with_platform(entry, &manifest).await?;
                out.push(Package::new(
                    reference.clone(),
                    Some(target.clone()),
                    entry,
                    &manifest,
                    created.clone(),
                ));
            }
            Ok(out)
        } else if target.is_manifest() {
            let manifest = self.read_manifest(target).await?;
            let entry = self.with_platform(target.clone(), &manifest).await?;
            Ok(vec![Package::new(
                reference.clone(),
                None,
                entry,
                &manifest,
                created,
            )])
        } else {
            Err(Error::InvalidInput(format!(
                "{reference} points at `{}`, which is neither an image index nor a manifest",
                target.media_type
            )))
        }
    }

    pub(crate) async fn read_manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        // KraftKit writes `size: 32` for merged index entries; a wrong size is tolerated there
        // and the digest, which is what matters, is still checked.
        let bytes = self.read_by_digest(descriptor).await?;
        parse(descriptor, &bytes, "image manifest")
    }

    pub(crate) async fn read_config(&self, manifest: &Manifest) -> Result<ImageConfig> {
        let bytes = self.store().read_bytes(manifest.config.clone()).await?;
        parse(&manifest.config, &bytes, "image config")
    }

    pub(crate) async fn read_by_digest(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let store = self.store();
        match store.read_bytes(descriptor.clone()).await {
            Err(Error::Store(ukpm_store::StoreError::StoredSizeMismatch { actual, digest, .. })) => {
                tracing::warn!(%digest, declared = descriptor.size, actual, "descriptor size is wrong");
                let mut fixed = descriptor.clone();
                fixed.size = actual;
                store.read_bytes(fixed).await
            }
            other => other,
        }
    }

    /// Fills in a descriptor's platform from the config descriptor or the config itself, for
    /// third-party images whose index entries or manifests lack one.
    async fn with_platform(&self, mut entry: Descriptor, manifest: &Manifest) -> Result<Descriptor> {
        if entry.platform.is_none() {
            entry.platform = match &manifest.config.platform {
                Some(p) => Some(p.clone()),
                None => {
                    let config = self.read_config(manifest).await?;
                    Some(Platform {
                        architecture: config.architecture,
                        os: config.os,
                        os_version: config.os_version,
                        os_features: ukpm_types::compact_sorted(&config.os_features),
                        variant: config.variant,
                    })
                }
            };
        }
        Ok(entry)
    }

    /// The stored ref for `reference`: by tag, or by digest (of the index or of one of its
    /// manifests) among the refs of the same repository.
    pub(crate) async fn resolve(&self, reference: &Reference) -> Result<(RefEntry, Option<Digest>)> {
        let refs = self.store().refs().await?;
        let Some(digest) = reference.digest() else {
            let key = reference.to_string();
            return refs
                .into_iter()
                .find(|e| e.name == key)
                .map(|e| (e, None))
                .ok_or_else(|| Error::NotFound {
                    reference: reference.clone(),
                });
        };
        for entry in refs {
            let Ok(r) = entry.name.parse::<Reference>() else {
                continue;
            };
            if r.name() != reference.name() || reference.tag().is_some_and(|t| r.tag() != Some(t)) {
                continue;
            }
            if entry.descriptor.digest == digest {
                return Ok((entry, None));
            }
            if entry.descriptor.is_index() {
                let bytes = self.store().read_bytes(entry.descriptor.clone()).await?;
                let index: Index = parse(&entry.descriptor, &bytes, "image index")?;
                if index.manifests.iter().any(|m| m.digest == digest) {
                    return Ok((entry, Some(digest)));
                }
            }
        }
        Err(Error::NotFound {
            reference: reference.clone(),
        })
    }

    /// The stored packages `reference` names that match `query`.
    pub(crate) async fn find(&self, reference: &Reference, query: &Query) -> Result<Vec<Package>> {
        let (entry, manifest) = self.resolve(reference).await?;
        let stored = entry
            .name
            .parse::<Reference>()
            .unwrap_or_else(|_| reference.clone());
        let packages = self.packages_of(&stored, &entry.descriptor).await?;
        Ok(packages
            .into_iter()
            .filter(|p| manifest.is_none_or(|d| p.manifest.digest == d))
            .filter(|p| query.matches_platform(&p.platform))
            .collect())
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    descriptor: &Descriptor,
    bytes: &[u8],
    what: &'static str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| {
        Error::Store(ukpm_store::StoreError::BadDocument {
            digest: descriptor.digest,
            what,
            source,
        })
    })
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
            assert!(q.matches_name(&r), "{pattern}");
        }
        let q = Query {
            name: Some("redis".into()),
            ..Query::default()
        };
        assert!(!q.matches_name(&r));
    }
}
