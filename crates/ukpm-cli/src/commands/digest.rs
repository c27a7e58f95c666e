//! `ukpm digest`: the digest a reference resolves to on its registry, as `crane digest`.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{Digest, PackageManager, Reference};

use crate::args::{DigestArgs, plat_arch};
use crate::output::{Escaped, Output};

/// The reference and its digest.
pub struct Resolved {
    reference: Reference,
    platform: Option<String>,
    digest: Digest,
}

/// `ukpm digest --json`.
#[derive(Serialize)]
struct DigestJson<'a> {
    digest: String,
    platform: Option<&'a str>,
    reference: String,
}

impl Output for Resolved {
    fn json(&self) -> impl Serialize + '_ {
        DigestJson {
            digest: self.digest.to_string(),
            platform: self.platform.as_deref(),
            reference: self.reference.to_string(),
        }
    }

    /// The digest alone, for `$(ukpm digest REF)`.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", Escaped(&self.digest))
    }
}

/// Asks the registry (a HEAD, unless a platform's manifest is wanted).
pub async fn run(manager: &PackageManager, args: &DigestArgs) -> Result<Resolved> {
    let reference = manager.parse_name(&args.reference)?;
    let query = match &args.platform {
        Some(text) => {
            let (plat, arch) = plat_arch(Some(text), None).map_err(ukpm::Error::InvalidInput)?;
            Some(ukpm::Query {
                platform: plat.map(super::plat).transpose()?,
                architecture: arch.map(super::architecture).transpose()?,
                ..ukpm::Query::default()
            })
        }
        None => None,
    };
    let digest = manager
        .remote_digest(&reference, query.as_ref())
        .await
        .with_context(|| format!("failed to resolve {reference}"))?;
    Ok(Resolved {
        reference,
        platform: args.platform.clone(),
        digest,
    })
}
