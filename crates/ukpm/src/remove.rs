//! Names and their removal: `tag` gives content another name, `remove` takes names away, and
//! `gc` deletes what no name reaches any more.

use ukpm_store::GcReport;
use ukpm_types::{Descriptor, Reference, annotation};

use crate::catalog::LocalName;
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::store::Expect;

impl PackageManager {
    /// Gives `source`'s content another local name (a whole index, or the one manifest a
    /// digest names); `source` may be a ref name as another tool wrote it (`v1`).
    pub async fn tag(&self, source: impl Into<LocalName>, target: &Reference) -> Result<()> {
        let source = source.into();
        if target.tag().is_none() || target.digest().is_some() {
            return Err(Error::InvalidInput(format!("{target} must be a name with a tag")));
        }
        let catalog = self.catalog();
        let resolved = catalog.resolve(&source).await?;
        let mut descriptor = resolved.entry.descriptor.clone();
        if let Some(digest) = resolved.manifest {
            let package = catalog
                .packages_of_resolved(&resolved, &source)
                .await?
                .into_iter()
                .find(|p| p.manifest.digest == digest)
                .ok_or_else(|| Error::NameNotFound {
                    name: source.to_string(),
                })?;
            descriptor = Descriptor::new(&package.manifest.media_type, digest, package.manifest.size);
        }
        descriptor.annotations.remove(annotation::OCI_REF_NAME);
        self.store()
            .set_ref(target.without_digest().to_string(), descriptor, Expect::Any)
            .await?;
        Ok(())
    }

    /// Removes the refs `references` name (references, or ref names as written, `v1`); blobs
    /// stay until [`PackageManager::gc`]. Returns the names removed, as the store had them.
    ///
    /// If any reference is not in the store nothing is removed, so a typo never half-applies.
    pub async fn remove<N>(&self, references: &[N]) -> Result<Vec<String>>
    where
        for<'a> &'a N: Into<LocalName>,
    {
        let catalog = self.catalog();
        let mut names = Vec::with_capacity(references.len());
        for reference in references {
            let reference: LocalName = reference.into();
            let resolved = catalog.resolve(&reference).await?;
            if resolved.manifest.is_some() {
                return Err(Error::InvalidInput(format!(
                    "{reference} names one manifest of an index; remove the tag instead"
                )));
            }
            names.push(resolved.entry.name);
        }
        let removed = self.store().remove_refs(names).await?;
        Ok(removed.into_iter().map(|e| e.name).collect())
    }

    /// Removes every ref in the store; returns their names.
    pub async fn remove_all(&self) -> Result<Vec<String>> {
        let names = self.store().refs().await?.into_iter().map(|e| e.name).collect();
        let removed = self.store().remove_refs(names).await?;
        Ok(removed.into_iter().map(|e| e.name).collect())
    }

    /// Deletes every blob no ref reaches: a kernel shared by two packages stays while either
    /// remains.
    pub async fn gc(&self) -> Result<GcReport> {
        self.store().gc().await
    }
}
