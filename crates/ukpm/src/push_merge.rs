//! `push --merge`: joining a package's platforms to the index a tag points at, from many CI jobs
//! at once, without ever ending with a lost platform.
//!
//! Registries have no compare-and-swap on tags, so "read the index, add mine, put it back"
//! loses platforms when two jobs interleave, and checking afterwards that one's own manifest is
//! there is not enough either: a slower job's stale put can land after the checking job has
//! exited. So every job, for every platform slot of its package:
//!
//! 1. pushes its blobs and manifests by digest (as a plain push does);
//! 2. puts a one-entry index under a *job tag* of its own, derived from the destination tag and
//!    the slot ([`job_tag`]: `<tag>.ukpm.<plat>-<arch>-<12 hex of the slot>`), annotated with
//!    the destination tag it belongs to;
//! 3. then loops: lists the repository's tags, reads every job tag of the destination and the
//!    destination itself, and builds the merged index: every job tag's entry, plus the
//!    destination's entries for slots no job tag covers. When the destination's bytes already
//!    equal that merge (and the job's own job tags are among those listed), it stops; otherwise
//!    it puts the merge under the destination tag, waits a jittered moment and looks again.
//!
//! The merged index is a function of the set of entries alone (sorted by slot, then digest; no
//! timestamps, no annotations of its own), so jobs that see the same job tags put the same
//! bytes, and a job stops only after a read, made after its own last put, in which the
//! destination holds every job tag it could see. See `docs/push-merge.md` for the argument
//! that the last put therefore holds every job tag written by a job that succeeded, and for
//! what it assumes of the registry.
//!
//! Job tags are left in the registry (removing them needs `DELETE`, which many registries
//! refuse, and a later merge into the same tag uses them again); a re-run of a job overwrites
//! its own job tag, since the name depends only on the destination and the slot.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use ukpm_registry::Client;
use ukpm_types::{
    Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Reference, compact_sorted, media_type,
    normalize_architecture, normalize_plat, to_go_json,
};

use crate::catalog::parse;
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::push::{PushReport, PushStart, mount_source, racing};
use crate::reporter::Step;

/// The annotation on a job tag's index naming the destination tag it is for, so that a job tag
/// of another destination whose name happens to look alike is never merged.
pub const MERGE_INTO_ANNOTATION: &str = "sh.ukpm.merge.into";

/// What separates the destination tag from the slot in a job tag's name.
const MARK: &str = ".ukpm.";

/// How many times a job puts the destination before it gives up (each put is followed by a
/// fresh look; a job only puts again when another job's entry appeared meanwhile).
const MAX_ROUNDS: u32 = 16;

/// The longest tag the distribution spec allows.
const TAG_LIMIT: usize = 128;

/// Hex digits of the slot's hash in a job tag.
const SLOT_HASH: usize = 12;

/// Characters of the platform and of the architecture kept in a job tag (readability only:
/// the hash tells slots apart).
const NAME_PART: usize = 12;

impl PackageManager {
    /// Pushes the package `source` to `target` (default: where its name says) and joins its
    /// platforms to the index the tag points at, so that parallel jobs pushing one platform
    /// each end with one index holding all of them (module docs: how, and what it assumes).
    ///
    /// A platform slot the package shares with the destination's index is replaced, as a pack
    /// with the merge strategy does; every other entry of the destination stays.
    pub async fn push_merge(
        &self,
        source: impl Into<crate::LocalName>,
        target: Option<&Reference>,
    ) -> Result<PushReport> {
        let PushStart {
            transfer,
            _lease,
            stored,
            target,
            entry,
            top,
        } = self.start_push(source.into(), target).await?;
        let client = &transfer.client;
        let Some(tag) = target
            .tag()
            .filter(|_| target.digest().is_none())
            .map(str::to_string)
        else {
            return Err(Error::InvalidInput(format!(
                "{target} needs a tag (and no digest) to merge into"
            )));
        };
        self.reporter().on_step(&Step::Push {
            source: stored.clone(),
            target: target.clone(),
        });
        let entry = &entry;
        let mut report = PushReport::default();
        let mount_from = mount_source(&stored, &target);
        let bytes = self
            .push_contents(
                &transfer,
                &stored,
                &top,
                &target,
                mount_from.as_deref(),
                &mut report,
            )
            .await?;
        let entries = self.own_entries(&stored, entry, &top, &bytes).await?;
        if let Some(bare) = entries.iter().find(|e| e.platform.is_none()) {
            return Err(Error::InvalidInput(format!(
                "cannot merge {stored}: its manifest {} has no platform, so it fills no slot of an index",
                bare.digest
            )));
        }

        // Step 2: a job tag per slot, written before the first look at the destination.
        let mut mine = BTreeSet::new();
        for entry in entries {
            let platform = entry.platform.clone().unwrap_or_default();
            let name = job_tag(&tag, &platform);
            let reference = target.with_tag(&name)?;
            let document = job_index(entry, &tag);
            let digest = Digest::of(&document);
            if client
                .head_manifest(&reference)
                .await?
                .is_none_or(|d| d.digest != digest)
            {
                client
                    .put_manifest(&reference, media_type::IMAGE_INDEX, Bytes::from(document))
                    .await?;
                report.manifests_written += 1;
            }
            mine.insert(name);
        }

        // Step 3: merge from every job tag until the destination holds all of them.
        let mut puts = 0;
        let mut looks = 0u32;
        let merged = loop {
            looks += 1;
            let give_up = puts >= MAX_ROUNDS || looks > 4 * MAX_ROUNDS;
            let view = match merge_view(client, &target, &tag).await {
                Err(Error::Registry(e)) if racing(&e) && !give_up => {
                    tokio::time::sleep(backoff(looks)).await;
                    continue;
                }
                view => view?,
            };
            let mine_listed = mine.is_subset(&view.job_tags);
            if mine_listed && view.current == Some(view.digest) {
                break view;
            }
            if give_up {
                return Err(Error::Contended { reference: target });
            }
            if mine_listed {
                match client
                    .put_manifest(&target, media_type::IMAGE_INDEX, Bytes::from(view.bytes))
                    .await
                {
                    Ok(_) => {
                        report.manifests_written += 1;
                        puts += 1;
                    }
                    // Whether it landed or not, the next look tells.
                    Err(e) if racing(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Our own job tags not listed yet (a registry whose listing lags): wait, never
            // put a merge that would leave them out.
            tokio::time::sleep(backoff(looks)).await;
        };
        report.reference = Some(target);
        report.digest = Some(merged.digest);
        report.merged_platforms = Some(merged.entries);
        Ok(report)
    }

    /// The entries this package contributes: its index's manifests as they stand in it, or
    /// its one manifest with the platform its ref, its config descriptor or its config names.
    async fn own_entries(
        &self,
        stored: &Reference,
        entry: &Descriptor,
        top: &Descriptor,
        bytes: &[u8],
    ) -> Result<Vec<Descriptor>> {
        if top.is_index() {
            let index: Index = parse(top, bytes, "image index")?;
            let manifests: Vec<Descriptor> = index
                .manifests
                .into_iter()
                .filter(Descriptor::is_manifest)
                .collect();
            if manifests.is_empty() {
                return Err(Error::InvalidInput(format!("{stored} has no manifest to merge")));
            }
            return Ok(manifests);
        }
        let mut own = top.clone();
        own.platform = match entry.platform.clone() {
            Some(platform) => Some(platform),
            None => {
                let manifest: Manifest = parse(top, bytes, "image manifest")?;
                match manifest.config.platform.clone() {
                    Some(platform) => Some(platform),
                    None => {
                        let config = self.catalog().read_by_digest(&manifest.config).await?;
                        let config: ImageConfig = parse(&manifest.config, &config, "image config")?;
                        Some(Platform {
                            architecture: config.architecture,
                            os: config.os,
                            os_version: config.os_version,
                            os_features: config.os_features,
                            variant: config.variant,
                        })
                    }
                }
            }
        };
        Ok(vec![own])
    }
}

/// What one look at the registry found, and the merge it calls for.
struct MergeView {
    /// The job tags of the destination that were listed.
    job_tags: BTreeSet<String>,
    /// The merged index's bytes.
    bytes: Vec<u8>,
    /// Their digest.
    digest: Digest,
    /// How many entries it has.
    entries: usize,
    /// What the destination tag points at now.
    current: Option<Digest>,
}

/// Lists the job tags of `tag`, reads them and the destination, and builds the merge.
async fn merge_view(client: &Client, target: &Reference, tag: &str) -> Result<MergeView> {
    // The registry's tag list (one page: `docker-registry` sends all tags when no `n` is
    // asked; see docs/push-merge.md).
    let listed = client.list_tags(target).await?;
    let prefix = job_prefix(tag);
    let candidates: Vec<String> = listed
        .into_iter()
        .filter(|t| t.strip_prefix(&prefix).is_some_and(is_slot_name))
        .collect();
    let reads = candidates.iter().map(|name| async move {
        let reference = target.with_tag(name)?;
        match client.get_manifest(&reference).await {
            Ok(fetched) => Ok(Some((name.clone(), fetched))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Error::from(e)),
        }
    });
    let current = async {
        match client.get_manifest(target).await {
            Ok(fetched) => Ok(Some(fetched)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Error::from(e)),
        }
    };
    let (jobs, current) = tokio::join!(futures_util::future::try_join_all(reads), current);
    let (jobs, current) = (jobs?, current?);

    let mut job_tags = BTreeSet::new();
    let mut slots: BTreeMap<String, Descriptor> = BTreeMap::new();
    for (name, fetched) in jobs.into_iter().flatten() {
        let Ok(index) = serde_json::from_slice::<Index>(&fetched.bytes) else {
            continue;
        };
        if index.annotations.get(MERGE_INTO_ANNOTATION).map(String::as_str) != Some(tag) {
            continue;
        }
        if index.manifests.len() != 1 {
            continue;
        }
        let Some(entry) = index.manifests.into_iter().next() else {
            continue;
        };
        let Some(platform) = entry.platform.as_ref() else {
            continue;
        };
        if !entry.is_manifest() {
            continue;
        }
        let key = slot_key(platform);
        // Two job tags for one slot cannot come from [`job_tag`]; keep the smaller digest so
        // every job chooses alike.
        let keep = slots
            .get(&key)
            .is_none_or(|kept| entry.digest.to_string() < kept.digest.to_string());
        if keep {
            slots.insert(key, entry);
        }
        job_tags.insert(name);
    }

    let mut manifests: Vec<(String, Descriptor)> = slots.into_iter().collect();
    let covered: BTreeSet<String> = manifests.iter().map(|(k, _)| k.clone()).collect();
    let current_digest = current.as_ref().map(|c| c.digest);
    if let Some(current) = current {
        if !current.descriptor().is_index() {
            return Err(Error::InvalidInput(format!(
                "{target} holds a single manifest ({}), not an index; push --merge joins indexes: push it into an index first, or push without --merge",
                current.digest
            )));
        }
        let index: Index = parse(&current.descriptor(), &current.bytes, "image index")?;
        for entry in index.manifests {
            let key = entry.platform.as_ref().map(slot_key).unwrap_or_default();
            if key.is_empty() || !covered.contains(&key) {
                manifests.push((key, entry));
            }
        }
    }
    manifests.sort_by(|(ka, a), (kb, b)| (ka, a.digest.to_string()).cmp(&(kb, b.digest.to_string())));
    manifests.dedup_by(|(ka, a), (kb, b)| ka == kb && a == b);
    let mut index = Index::new();
    index.manifests = manifests.into_iter().map(|(_, d)| d).collect();
    let entries = index.manifests.len();
    let bytes = to_go_json(&index);
    let digest = Digest::of(&bytes);
    Ok(MergeView {
        job_tags,
        bytes,
        digest,
        entries,
        current: current_digest,
    })
}

/// The one-entry index a job puts under its job tag.
fn job_index(entry: Descriptor, tag: &str) -> Vec<u8> {
    let mut index = Index::new();
    index.manifests.push(entry);
    index
        .annotations
        .insert(MERGE_INTO_ANNOTATION.to_string(), tag.to_string());
    to_go_json(&index)
}

/// A stable text key for a platform slot (the fields [`Platform::same_slot`] compares, plus
/// the variant), normalised as that comparison does.
fn slot_key(platform: &Platform) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        normalize_plat(&platform.os),
        normalize_architecture(&platform.architecture),
        platform.variant,
        platform.os_version,
        compact_sorted(&platform.os_features).join("\n")
    )
}

/// Where the job tags of `tag` begin: `<tag>.ukpm.`, or for a tag too long to leave room for a
/// slot, its first 76 characters, `.ukpm`, 8 hex digits of its hash and `.`.
pub(crate) fn job_prefix(tag: &str) -> String {
    let longest_slot = 2 * NAME_PART + 2 + SLOT_HASH;
    if tag.len() + MARK.len() + longest_slot <= TAG_LIMIT {
        return format!("{tag}{MARK}");
    }
    let keep = TAG_LIMIT - longest_slot - ".ukpm".len() - 8 - 1;
    // Tags are ASCII (the tag grammar), so any byte index is a character boundary.
    let head: String = tag.chars().take(keep).collect();
    let hash = Digest::of(tag.as_bytes()).hex();
    format!("{head}.ukpm{}.", &hash[..8])
}

/// The job tag of the slot `platform` of destination `tag`:
/// `<tag>.ukpm.<plat>-<arch>-<12 hex digits of the slot's hash>`.
pub(crate) fn job_tag(tag: &str, platform: &Platform) -> String {
    let part = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(NAME_PART)
            .collect()
    };
    let hash = Digest::of(slot_key(platform).as_bytes()).hex();
    format!(
        "{}{}-{}-{}",
        job_prefix(tag),
        part(&normalize_plat(&platform.os)),
        part(&normalize_architecture(&platform.architecture)),
        &hash[..SLOT_HASH]
    )
}

/// Whether what follows a job prefix has the shape [`job_tag`] gives it.
fn is_slot_name(rest: &str) -> bool {
    let mut parts = rest.rsplitn(3, '-');
    let (Some(hash), Some(arch), Some(plat)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let word = |s: &str| s.len() <= NAME_PART && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    hash.len() == SLOT_HASH
        && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        && word(arch)
        && word(plat)
}

/// How long to wait before look `n` (from 1): growing with `n`, capped, with jitter so that
/// jobs that collided do not collide again in step.
fn backoff(n: u32) -> Duration {
    let base = 50u64.saturating_mul(u64::from(n.min(10)));
    let seed = format!("{:?}{}{n}", std::time::SystemTime::now(), std::process::id());
    let jitter = Digest::of(seed.as_bytes()).hex()[..4]
        .chars()
        .fold(0u64, |acc, c| acc * 16 + u64::from(c.to_digit(16).unwrap_or(0)))
        % (base + 100);
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, features: &[&str]) -> Platform {
        Platform {
            architecture: arch.to_string(),
            os: os.to_string(),
            os_features: features.iter().map(|s| s.to_string()).collect(),
            ..Platform::default()
        }
    }

    #[test]
    fn job_tags_follow_the_tag_grammar_and_are_recognised() {
        let long = "v".repeat(128);
        for tag in [
            "latest",
            "v1.2.3",
            &"x".repeat(84),
            &"y".repeat(85),
            long.as_str(),
        ] {
            for p in [
                platform("qemu", "x86_64", &[]),
                platform("firecracker", "aarch64", &["CONFIG_A=y"]),
                platform("some.weird/plat", "arm", &[]),
            ] {
                let name = job_tag(tag, &p);
                assert!(name.len() <= TAG_LIMIT, "{name}");
                assert!(
                    name.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                    "{name}"
                );
                let rest = name.strip_prefix(&job_prefix(tag)).unwrap();
                assert!(is_slot_name(rest), "{rest}");
            }
        }
        // kconfig makes a different slot; alias names the same one.
        assert_ne!(
            job_tag("v1", &platform("qemu", "x86_64", &[])),
            job_tag("v1", &platform("qemu", "x86_64", &["CONFIG_A=y"]))
        );
        assert_eq!(
            job_tag("v1", &platform("firecracker", "aarch64", &[])),
            job_tag("v1", &platform("fc", "arm64", &[]))
        );
        // Another destination's job tags are not this one's.
        let other = job_tag("v1.ukpm.x", &platform("qemu", "x86_64", &[]));
        assert!(
            other
                .strip_prefix(&job_prefix("v1"))
                .is_none_or(|rest| !is_slot_name(rest))
        );
    }

    #[test]
    fn backoff_is_bounded() {
        for n in 1..40 {
            assert!(backoff(n) <= Duration::from_millis(1100));
        }
    }
}
