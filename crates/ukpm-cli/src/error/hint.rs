//! The `hint:` line of an error: what to do next, from the error's kind and origin and from
//! what the command learnt on its way to failing ([`Clues`]: the platform a pull took by
//! itself, the stored names close to one that is not there).

use std::sync::Mutex;

/// What a command learnt on its way to failing that its hint can use: the platform a pull took
/// when none was asked for, and the stored names close to one that is not in the store. One
/// command runs per process, so these are kept for the process.
#[derive(Debug, Default, Clone)]
pub struct Clues {
    /// The platform taken without a flag and why (`qemu/x86_64, this machine's (/dev/kvm
    /// present)`).
    pub implied_platform: Option<String>,
    /// Stored names close to a name not in the store, closest first.
    pub similar: Vec<String>,
}

static CLUES: Mutex<Clues> = Mutex::new(Clues {
    implied_platform: None,
    similar: Vec::new(),
});

pub(super) fn clues() -> Clues {
    CLUES.lock().map(|c| c.clone()).unwrap_or_default()
}

/// Records the platform a pull chose for the user (no `--plat`, `--arch` or `--all`), so a
/// failure to find it says so.
pub fn note_implied_platform(platform: String) {
    if let Ok(mut clues) = CLUES.lock() {
        clues.implied_platform = Some(platform);
    }
}

/// When `err` is a name not in the store, looks for stored names close to it (a typo, another
/// tag of the same package) for the hint's "did you mean". Reading the store's refs is all it
/// does; a failure to read them only loses the suggestion.
pub async fn look_for_similar_names(err: &anyhow::Error, manager: &ukpm::PackageManager) {
    let Some(missing) = err.chain().find_map(|c| match c.downcast_ref::<ukpm::Error>() {
        Some(ukpm::Error::NotFound { reference }) => Some(Missing::Reference(reference.clone())),
        Some(ukpm::Error::NameNotFound { name }) => Some(Missing::Name(name.clone())),
        _ => None,
    }) else {
        return;
    };
    let Ok(refs) = manager.store().refs().await else {
        return;
    };
    let names: Vec<String> = refs.into_iter().map(|entry| entry.name).collect();
    let similar = similar_names(&missing, &names);
    if let Ok(mut clues) = CLUES.lock() {
        clues.similar = similar;
    }
}

/// A name that is not in the store.
enum Missing {
    /// One that parses as a reference: compared part by part.
    Reference(ukpm::Reference),
    /// Any other ref name (a bare tag another tool wrote): compared as text.
    Name(String),
}

/// The stored names within a typo of `missing`, closest first, at most three: a distance of
/// at most a third of the compared length (at least one), in the repository (and the
/// registry, when it differs) plus the tag. A tag left to its default (`latest`) is not
/// compared, so `ukpm inspect nginx` suggests `nginx:1.25`.
fn similar_names(missing: &Missing, stored: &[String]) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = stored
        .iter()
        .filter_map(|name| {
            let score = match missing {
                Missing::Name(text) => within(strsim::damerau_levenshtein(text, name), text.len())?,
                Missing::Reference(asked) => {
                    let have = name
                        .parse::<ukpm::Reference>()
                        .or_else(|_| name.to_ascii_lowercase().parse())
                        .ok()?;
                    let mut distance = strsim::damerau_levenshtein(asked.repository(), have.repository());
                    if asked.registry() != have.registry() {
                        distance += strsim::damerau_levenshtein(asked.registry(), have.registry());
                    }
                    let mut length = asked.repository().len();
                    if let (Some(a), Some(h)) = (asked.tag(), have.tag())
                        && a != "latest"
                        && asked.digest().is_none()
                    {
                        distance += strsim::damerau_levenshtein(a, h);
                        length += a.len();
                    }
                    within(distance, length)?
                }
            };
            Some((score, name))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, name)| name.clone()).collect()
}

/// `Some(distance)` when it is a typo's of a text of `length`, not another name.
fn within(distance: usize, length: usize) -> Option<usize> {
    (distance <= (length / 3).max(1)).then_some(distance)
}

/// The registry an error came from, to name it in a hint.
fn registry_of(err: &ukpm::registry::RegistryError) -> Option<&str> {
    use ukpm::registry::RegistryError as R;
    match err {
        R::Status { registry, .. } | R::Unauthorized { registry, .. } => Some(registry),
        _ => None,
    }
}

/// What to do next, from the error's kind and where it came from (the local store, a
/// registry, containerd) and what the command learnt ([`Clues`]); never the command that just
/// failed, and never "the store" for what a registry lacks.
pub(super) fn hint(err: &ukpm::Error, command: &str, clues: &Clues) -> Option<String> {
    use ukpm::{ErrorKind as K, Origin as O};
    let registry_error = match err {
        ukpm::Error::Registry(e) => Some(e),
        _ => None,
    };
    let fixed = match (err.origin(), err.kind()) {
        (O::Containerd, K::Network) => Some(
            "is containerd running? --containerd (or CONTAINERD_ADDRESS) takes its socket, e.g. /run/containerd/containerd.sock",
        ),
        (O::Containerd, K::Unauthorized) => {
            Some("the containerd socket is root's: run as root or a user in its group")
        }
        (O::Containerd, K::NotFound) if matches!(err, ukpm::Error::Namespace { .. }) => Some(
            "`ctr namespaces ls` lists containerd's namespaces; a pack or pull into a new one creates it",
        ),
        (O::Containerd, K::Integrity) => Some(
            "containerd holds damaged content: `ctr content rm` the blob, then pack or pull the package again",
        ),
        (_, K::NotFound) if matches!(err, ukpm::Error::NoPlatform { .. }) => {
            return no_platform_hint(err, command, clues);
        }
        (_, K::NotFound) if let ukpm::Error::NoMatch { reference, .. } = err => {
            return Some(format!(
                "`ukpm ls --name {}` lists the platforms the store has for it; --plat PLAT/ARCH chooses one",
                reference.name()
            ));
        }
        (O::Registry, K::NotFound) => return registry_error.and_then(not_on_registry_hint),
        (O::Registry, K::Integrity | K::Protocol) => Some(
            "the registry sent something other than it promised; nothing of it was stored: try again, and tell the registry's operator if it persists",
        ),
        (O::Registry, K::Unauthorized) if command == "login" => {
            Some("check the user name and the password or token for that registry; nothing was saved")
        }
        (_, K::Unauthorized) => {
            let host = registry_error.and_then(registry_of).unwrap_or("HOST");
            return Some(match registry_error.and_then(|e| e.refused_user()) {
                Some(_) => format!(
                    "the saved password or token may have changed or expired; `ukpm login {host}` replaces it"
                ),
                None => format!(
                    "credentials come from the KraftCloud token variables, KraftKit's config.yaml, the docker config.json ($DOCKER_CONFIG or ~/.docker) and Podman's auth.json, in that order; run `ukpm login {host}`"
                ),
            });
        }
        (O::Registry, K::Network) if matches!(err, ukpm::Error::Registry(e) if e.is_stall()) => Some(
            "the registry stalled; --timeout and --min-rate (or UKPM_TIMEOUT, UKPM_MIN_RATE) set how long ukpm waits",
        ),
        (O::Registry, K::Network) => {
            Some("check the registry's address; loopback hosts and --plain-http hosts use plain HTTP")
        }
        (_, K::NotFound)
            if matches!(
                err,
                ukpm::Error::NotFound { .. } | ukpm::Error::NameNotFound { .. }
            ) && !clues.similar.is_empty() =>
        {
            return Some(format!(
                "did you mean {}? `ukpm ls` lists what the store holds",
                clues
                    .similar
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        (_, K::NotFound) if command != "ls" => Some("`ukpm ls` lists what the store holds"),
        (_, K::Integrity) if command != "fsck" => Some(
            "the store holds damaged content; `ukpm fsck --repair` fetches it again from the registry it came from",
        ),
        (_, K::Integrity) => Some("remove the damaged package with `ukpm rm` and pack or pull it again"),
        (_, K::Conflict) if matches!(err, ukpm::Error::Contended { .. }) => {
            Some("another process kept changing the same name; run the command again when it is done")
        }
        (_, K::Conflict) => Some("use --strategy merge to replace that platform's manifest"),
        _ => None,
    };
    fixed.map(str::to_string)
}

/// A registry's 404: the name or the tag is wrong (or the registry lost a blob), never the
/// store's business.
fn not_on_registry_hint(err: &ukpm::registry::RegistryError) -> Option<String> {
    let ukpm::registry::RegistryError::Status { registry, what, .. } = err else {
        return Some("the registry has no such repository, tag or digest: check the name".into());
    };
    if let Some(manifest) = what.strip_prefix("manifest ") {
        let repository = manifest.split([':', '@']).next().unwrap_or(manifest);
        return Some(format!(
            "check the name and the tag (a name without a registry is looked up on --registry, UKPM_REGISTRIES); `ukpm ls --remote {registry}/{repository}` lists the tags it has"
        ));
    }
    if what.starts_with("tags of ") {
        return Some(format!(
            "check the repository's name; `ukpm ls --remote {registry}` lists the repositories the registry shows"
        ));
    }
    if what.starts_with("blob ") {
        return Some(
            "the registry lacks a blob its manifest lists: its copy of the package is incomplete; push it again, or tell the registry's operator".into(),
        );
    }
    Some("the registry has no such repository, tag or digest: check the name".into())
}

/// A package without the platform asked for: which one was implied (this machine's, or the
/// flags'), and how to choose one it has.
fn no_platform_hint(err: &ukpm::Error, command: &str, clues: &Clues) -> Option<String> {
    let ukpm::Error::NoPlatform { available, .. } = err else {
        return None;
    };
    let choose = match available.first() {
        Some(first) => format!("choose one it has with --plat {first} (or --arch, --platform)"),
        None => "it has no platform to choose".to_string(),
    };
    let all = match command {
        "pull" => ", or take every one with --all",
        "copy" => ", or copy every one by giving neither --plat nor --arch",
        "inspect" => ", or leave the filter out to see them all",
        _ => "",
    };
    Some(match (&clues.implied_platform, command) {
        (Some(implied), "pull") => {
            format!("no platform was given, so ukpm took {implied}; {choose}{all}")
        }
        _ => format!("{choose}{all}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint_for(err: &ukpm::Error, command: &str) -> Option<String> {
        hint(err, command, &Clues::default())
    }

    #[test]
    fn hints_follow_kind_and_origin_and_never_repeat_the_command() {
        let reference: ukpm::Reference = "unikraft.org/nginx:1.25".parse().unwrap();
        let local = ukpm::Error::NotFound {
            reference: reference.clone(),
        };
        assert_eq!(
            hint_for(&local, "unpack").as_deref(),
            Some("`ukpm ls` lists what the store holds")
        );
        assert_eq!(hint_for(&local, "ls"), None);
        let digest = ukpm::Digest::of(b"kernel");
        let damaged = ukpm::Error::Store(ukpm::StoreError::Corrupt {
            digest,
            actual: ukpm::Digest::of(b"other"),
        });
        assert!(
            hint_for(&damaged, "unpack")
                .unwrap()
                .contains("ukpm fsck --repair")
        );
        assert!(!hint_for(&damaged, "fsck").unwrap().contains("fsck"));
        let lying = ukpm::Error::RegistryProtocol {
            reference: reference.clone(),
            message: "served a blob whole".into(),
        };
        assert!(!hint_for(&lying, "pull").unwrap().contains("damaged"));
        let contended = ukpm::Error::Contended { reference };
        assert!(hint_for(&contended, "pack").unwrap().contains("again"));
    }

    #[test]
    fn a_registry_404_points_at_the_remote_never_at_the_store() {
        let status = |what: &str, code| {
            ukpm::Error::Registry(ukpm::registry::RegistryError::Status {
                registry: "127.0.0.1:5000".into(),
                what: what.into(),
                status: 404,
                codes: vec![code],
                message: None,
            })
        };
        use ukpm::registry::ErrorCode;
        let manifest = hint_for(
            &status("manifest app/nginx:1.25", ErrorCode::ManifestUnknown),
            "pull",
        )
        .unwrap();
        assert!(
            manifest.contains("`ukpm ls --remote 127.0.0.1:5000/app/nginx` lists the tags"),
            "{manifest}"
        );
        let by_digest = hint_for(
            &status("manifest app/nginx:sha256:0123", ErrorCode::ManifestUnknown),
            "inspect",
        )
        .unwrap();
        assert!(by_digest.contains("127.0.0.1:5000/app/nginx`"), "{by_digest}");
        let tags = hint_for(&status("tags of app/nginx", ErrorCode::NameUnknown), "tags").unwrap();
        assert!(tags.contains("ukpm ls --remote 127.0.0.1:5000`"), "{tags}");
        let blob = hint_for(&status("blob sha256:00", ErrorCode::BlobUnknown), "pull").unwrap();
        assert!(blob.contains("lacks a blob"), "{blob}");
        for hint in [manifest, by_digest, tags, blob] {
            assert!(!hint.contains("store"), "{hint}");
        }
    }

    #[test]
    fn a_refused_login_never_suggests_logging_in_and_a_refused_password_names_no_secret() {
        let unauthorized = |user: Option<&str>| {
            ukpm::Error::Registry(ukpm::registry::RegistryError::Unauthorized {
                registry: "127.0.0.1:5000".into(),
                what: "manifest nginx:1".into(),
                reason: "/home/u/.docker/config.json".into(),
                user: user.map(str::to_string),
            })
        };
        let missing = unauthorized(None);
        assert!(
            hint_for(&missing, "pull")
                .unwrap()
                .contains("`ukpm login 127.0.0.1:5000`")
        );
        let refused = unauthorized(Some("tester"));
        assert!(
            refused
                .to_string()
                .contains("refused the credentials for user tester"),
            "{refused}"
        );
        let pull = hint_for(&refused, "pull").unwrap();
        assert!(
            pull.contains("changed or expired") && pull.contains("ukpm login"),
            "{pull}"
        );
        for err in [missing, refused] {
            let login = hint_for(&err, "login").unwrap();
            assert!(!login.contains("ukpm login"), "{login}");
        }
    }

    #[test]
    fn a_missing_platform_says_which_was_implied_and_how_to_choose() {
        let err = ukpm::Error::NoPlatform {
            reference: "unikraft.org/nginx:1.25".parse().unwrap(),
            query: "qemu/x86_64".into(),
            available: vec!["fc/x86_64".into(), "xen/arm64".into()],
        };
        let clues = Clues {
            implied_platform: Some("qemu/x86_64, this machine's (/dev/kvm present)".into()),
            similar: Vec::new(),
        };
        let implied = hint(&err, "pull", &clues).unwrap();
        assert!(
            implied.contains("no platform was given, so ukpm took qemu/x86_64"),
            "{implied}"
        );
        assert!(
            implied.contains("--plat fc/x86_64") && implied.contains("--all"),
            "{implied}"
        );
        let asked = hint_for(&err, "pull").unwrap();
        assert!(
            !asked.contains("no platform was given") && asked.contains("--plat fc/x86_64"),
            "{asked}"
        );
        assert!(!hint_for(&err, "inspect").unwrap().contains("--all"));
        let stored = ukpm::Error::NoMatch {
            reference: "unikraft.org/nginx:1.25".parse().unwrap(),
            query: "fc/any architecture".into(),
        };
        assert_eq!(
            hint_for(&stored, "unpack").as_deref(),
            Some(
                "`ukpm ls --name unikraft.org/nginx` lists the platforms the store has for it; --plat PLAT/ARCH chooses one"
            )
        );
    }

    #[test]
    fn similar_names_catch_typos_and_other_tags_but_not_other_packages() {
        let stored: Vec<String> = [
            "unikraft.org/hello:1",
            "unikraft.org/nginx:1.25",
            "127.0.0.1:5000/app/nginx:1.25",
            "v1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let reference = |s: &str| Missing::Reference(s.parse().unwrap());
        assert_eq!(
            similar_names(&reference("unikraft.org/helo:1"), &stored),
            ["unikraft.org/hello:1"]
        );
        assert_eq!(
            similar_names(&reference("unikraft.org/hllo"), &stored),
            ["unikraft.org/hello:1"]
        );
        assert_eq!(
            similar_names(&reference("unikraft.org/hello:2"), &stored),
            ["unikraft.org/hello:1"]
        );
        assert_eq!(
            similar_names(&reference("unikraft.org/ngnix:1.25"), &stored)[0],
            "unikraft.org/nginx:1.25"
        );
        assert!(similar_names(&reference("unikraft.org/redis:1"), &stored).is_empty());
        assert!(similar_names(&reference("unikraft.org/foo"), &stored).is_empty());
        assert_eq!(similar_names(&Missing::Name("V1".into()), &stored), ["v1"]);
        let clues = Clues {
            implied_platform: None,
            similar: vec!["unikraft.org/hello:1".into()],
        };
        let err = ukpm::Error::NotFound {
            reference: "unikraft.org/helo:1".parse().unwrap(),
        };
        assert_eq!(
            hint(&err, "inspect", &clues).as_deref(),
            Some("did you mean `unikraft.org/hello:1`? `ukpm ls` lists what the store holds")
        );
    }
}
