//! Refs: the entries of the layout's `index.json`, named by `org.opencontainers.image.ref.name`.

use ukpm_types::{Descriptor, Index, annotation};

/// The layout's `index.json`, as a table of named refs.
///
/// ukpm names every ref by its full reference (`unikraft.org/nginx:latest`), which skopeo's and
/// umoci's `oci:` transports accept as an image name. Entries without a name (written by other
/// tools) are kept untouched.
#[derive(Debug, Clone, Default)]
pub struct RefTable {
    index: Index,
}

/// One named ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    /// The ref name (`org.opencontainers.image.ref.name`).
    pub name: String,
    /// What it points at, with the entry's own annotations (local pack or pull time).
    pub descriptor: Descriptor,
}

impl RefTable {
    pub(crate) fn from_index(index: Index) -> RefTable {
        RefTable { index }
    }

    pub(crate) fn into_index(self) -> Index {
        self.index
    }

    /// The descriptor a name points at.
    pub fn get(&self, name: &str) -> Option<&Descriptor> {
        self.index.manifests.iter().find(|d| ref_name(d) == Some(name))
    }

    /// Points `name` at `descriptor`, replacing what it pointed at (in place, keeping order).
    pub fn set(&mut self, name: &str, mut descriptor: Descriptor) {
        descriptor
            .annotations
            .insert(annotation::OCI_REF_NAME.to_string(), name.to_string());
        match self
            .index
            .manifests
            .iter_mut()
            .find(|d| ref_name(d) == Some(name))
        {
            Some(slot) => *slot = descriptor,
            None => self.index.manifests.push(descriptor),
        }
    }

    /// Removes `name`; returns what it pointed at.
    pub fn remove(&mut self, name: &str) -> Option<Descriptor> {
        let i = self
            .index
            .manifests
            .iter()
            .position(|d| ref_name(d) == Some(name))?;
        Some(self.index.manifests.remove(i))
    }

    /// Every named ref, in `index.json` order.
    pub fn entries(&self) -> Vec<RefEntry> {
        self.index
            .manifests
            .iter()
            .filter_map(|d| {
                ref_name(d).map(|name| RefEntry {
                    name: name.to_string(),
                    descriptor: d.clone(),
                })
            })
            .collect()
    }

    /// Every descriptor in `index.json`, named or not: the roots of garbage collection.
    pub fn roots(&self) -> &[Descriptor] {
        &self.index.manifests
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(annotation::OCI_REF_NAME).map(String::as_str)
}
