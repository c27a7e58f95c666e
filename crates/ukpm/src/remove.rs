//! Names and their removal: `tag` gives content another name, `remove` takes names away, and
//! `gc` deletes what no name reaches any more.

use ukpm_store::GcReport;
use ukpm_types::{Descriptor, Reference, annotation};

use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::package::Query;
use crate::store::Expect;

impl PackageManager {
    /// Gives `source`'s content another local name (a whole index, or the one manifest a
    /// digest names).
    pub async fn tag(&self, source: &Reference, target: &Reference) -> Result<()> {
        if target.tag().is_none() || target.digest().is_some() {
            return Err(Error::InvalidInput(format!("{target} must be a name with a tag")));
        }
        let catalog = self.catalog();
        let resolved = catalog.resolve(source).await?;
        let mut descriptor = resolved.entry.descriptor;
        if let Some(digest) = resolved.manifest {
            let package = catalog
                .find(source, &Query::default())
                .await?
                .into_iter()
                .find(|p| p.manifest.digest == digest)
                .ok_or_else(|| Error::NotFound {
                    reference: source.clone(),
                })?;
            descriptor = Descriptor::new(&package.manifest.media_type, digest, package.manifest.size);
        }
        descriptor.annotations.remove(annotation::OCI_REF_NAME);
        self.store()
            .set_ref(target.without_digest().to_string(), descriptor, Expect::Any)
            .await?;
        Ok(())
    }

    /// Removes the refs `references` name; blobs stay until [`PackageManager::gc`].
    ///
    /// If any reference is not in the store nothing is removed, so a typo never half-applies.
    pub async fn remove(&self, references: &[Reference]) -> Result<Vec<Reference>> {
        let catalog = self.catalog();
        let mut names = Vec::with_capacity(references.len());
        for reference in references {
            let resolved = catalog.resolve(reference).await?;
            if resolved.manifest.is_some() {
                return Err(Error::InvalidInput(format!(
                    "{reference} names one manifest of an index; remove the tag instead"
                )));
            }
            names.push(resolved.entry.name);
        }
        let removed = self.store().remove_refs(names).await?;
        Ok(removed.into_iter().filter_map(|e| e.name.parse().ok()).collect())
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
