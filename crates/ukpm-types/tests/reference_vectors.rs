//! Reference parsing against the vectors of distribution's reference tests (`reference_test.go`,
//! `normalize_test.go`, which Docker's parsing is), go-containerregistry's `name` tests (what
//! KraftKit parses with) and ukpm's own: each input with the normalised form it must print as,
//! or the error it must get.
//!
//! Where ukpm differs from Docker it is deliberate and the vector says why (see the module
//! docs of `ukpm_types::reference`): short names resolve to `unikraft.org` without `library/`,
//! an uppercase first component is not taken for a registry, a bracketed host must really be
//! an IPv6 address.

use ukpm_types::{Reference, ReferenceError, has_registry};

/// What a vector expects: the normalised reference, or the kind of error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Parses, and prints as this.
    Ok(&'static str),
    /// Refused with this kind of [`ReferenceError`].
    Err(Kind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Registry,
    Repository,
    TooLong,
    Identifier,
    Tag,
    Digest,
}

use Kind::*;
use Want::{Err as E, Ok as V};

fn kind(err: &ReferenceError) -> Kind {
    match err {
        ReferenceError::Empty => Empty,
        ReferenceError::Registry { .. } => Registry,
        ReferenceError::Repository { .. } => Repository,
        ReferenceError::TooLong { .. } => TooLong,
        ReferenceError::Identifier { .. } => Identifier,
        ReferenceError::Tag { .. } => Tag,
        ReferenceError::Digest { .. } => Digest,
        other => panic!("a new kind of reference error: {other:?}"),
    }
}

const FF: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
const HEX64: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";

/// The fixed vectors, with the default registry `unikraft.org`. `{ff}` stands for 64 `f`s and
/// `{hex}` for a 64-character hex string, so that the table stays readable.
const VECTORS: &[(&str, Want)] = &[
    // KraftKit's defaults: registry unikraft.org, tag latest, no `library/`.
    ("nginx", V("unikraft.org/nginx:latest")),
    ("nginx:1.25", V("unikraft.org/nginx:1.25")),
    ("official/base", V("unikraft.org/official/base:latest")),
    ("unikraft.org/nginx:1.25", V("unikraft.org/nginx:1.25")),
    ("a", V("unikraft.org/a:latest")),
    ("0", V("unikraft.org/0:latest")),
    // distribution reference_test.go, TestReferenceParse.
    ("test_com", V("unikraft.org/test_com:latest")),
    ("test.com:tag", V("unikraft.org/test.com:tag")),
    ("test.com:5000", V("unikraft.org/test.com:5000")),
    ("test.com/repo:tag", V("test.com/repo:tag")),
    ("test:5000/repo", V("test:5000/repo:latest")),
    ("test:5000/repo:tag", V("test:5000/repo:tag")),
    ("test:5000/repo@sha256:{ff}", V("test:5000/repo@sha256:{ff}")),
    (
        "test:5000/repo:tag@sha256:{ff}",
        V("test:5000/repo:tag@sha256:{ff}"),
    ),
    ("", E(Empty)),
    (":justtag", E(Repository)),
    ("@sha256:{ff}", E(Repository)),
    ("repo@sha256:ffffffffffffffffffffffffffffffffff", E(Digest)),
    ("validname@invaliddigest:{ff}", E(Digest)),
    ("Uppercase:tag", E(Repository)),
    // Docker takes `Uppercase` for a registry here (a FIXME in its tests); KraftKit and ukpm
    // refuse the name.
    ("Uppercase/lowercase:tag", E(Repository)),
    ("test:5000/Uppercase/lowercase:tag", E(Repository)),
    ("lowercase:Uppercase", V("unikraft.org/lowercase:Uppercase")),
    ("aa/asdf$$^/aa", E(Repository)),
    (
        "sub-dom1.foo.com/bar/baz/quux",
        V("sub-dom1.foo.com/bar/baz/quux:latest"),
    ),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        V("sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        V("b.gcr.io/test.example.com/my-app:test.example.com"),
    ),
    (
        "xn--n3h.com/myimage:xn--n3h.com",
        V("xn--n3h.com/myimage:xn--n3h.com"),
    ),
    ("foo_bar.com:8080", V("unikraft.org/foo_bar.com:8080")),
    ("foo/foo_bar.com:8080", V("unikraft.org/foo/foo_bar.com:8080")),
    ("192.168.1.1", V("unikraft.org/192.168.1.1:latest")),
    ("192.168.1.1:tag", V("unikraft.org/192.168.1.1:tag")),
    ("192.168.1.1:5000", V("unikraft.org/192.168.1.1:5000")),
    ("192.168.1.1/repo", V("192.168.1.1/repo:latest")),
    ("192.168.1.1:5000/repo", V("192.168.1.1:5000/repo:latest")),
    ("192.168.1.1:5000/repo:5050", V("192.168.1.1:5000/repo:5050")),
    // IPv6 registries: bracketed, with or without a port, printed back as given.
    ("[2001:db8::1]", E(Repository)),
    ("[2001:db8::1]:5000", E(Repository)),
    ("[2001:db8::1]:tag", E(Repository)),
    ("[2001:db8::1]/repo", V("[2001:db8::1]/repo:latest")),
    (
        "[2001:db8:1:2:3:4:5:6]/repo:tag",
        V("[2001:db8:1:2:3:4:5:6]/repo:tag"),
    ),
    ("[2001:db8::1]:5000/repo", V("[2001:db8::1]:5000/repo:latest")),
    ("[2001:db8::1]:5000/repo:tag", V("[2001:db8::1]:5000/repo:tag")),
    (
        "[2001:db8::1]:5000/repo@sha256:{ff}",
        V("[2001:db8::1]:5000/repo@sha256:{ff}"),
    ),
    (
        "[2001:db8::1]:5000/repo:tag@sha256:{ff}",
        V("[2001:db8::1]:5000/repo:tag@sha256:{ff}"),
    ),
    ("[2001:db8::]:5000/repo", V("[2001:db8::]:5000/repo:latest")),
    ("[::1]:5000/repo", V("[::1]:5000/repo:latest")),
    ("[::1]:5000/x", V("[::1]:5000/x:latest")),
    ("[::1]/x", V("[::1]/x:latest")),
    ("[fe80::1]/x", V("[fe80::1]/x:latest")),
    ("[FE80::1]:443/x:1", V("[FE80::1]:443/x:1")),
    ("[fc00::1]:5000/docker", V("[fc00::1]:5000/docker:latest")),
    (
        "[fc00::1]:5000/docker/docker",
        V("[fc00::1]:5000/docker/docker:latest"),
    ),
    (
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        V("[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"),
    ),
    ("[0:0:0:0:0:0:0:1]:5000/x", V("[0:0:0:0:0:0:0:1]:5000/x:latest")),
    ("[fe80::1%eth0]:5000/repo", E(Registry)),
    // The `@` starts the digest, so this one is refused for its digest.
    ("[fe80::1%@invalidzone]:5000/repo", E(Digest)),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", E(Registry)),
    ("[::ffff:127.0.0.1]/x", E(Registry)),
    ("fc00::1:5000/debian", E(Registry)),
    ("::1/x", E(Registry)),
    ("[fc00::1]", E(Repository)),
    ("[fc00::1]:5000", E(Repository)),
    // Bracketed hosts that are not IPv6 addresses.
    ("[abc]/x", E(Registry)),
    ("[foo]/x", E(Registry)),
    ("[]/x", E(Registry)),
    ("[]:5000/x", E(Registry)),
    ("[127.0.0.1]/x", E(Registry)),
    ("[localhost]:5000/x", E(Registry)),
    ("[1:2:3:4:5:6:7:8:9]/x", E(Registry)),
    ("[1::2::3]/x", E(Registry)),
    ("[::1/x", E(Registry)),
    ("[::1]x/y", E(Registry)),
    ("[::1]:/x", E(Registry)),
    ("[::1]:65536/x", E(Registry)),
    ("[::1]:5000:5000/x", E(Registry)),
    ("[[::1]]/x", E(Registry)),
    // distribution normalize_test.go, TestValidateReferenceName.
    ("docker/docker", V("unikraft.org/docker/docker:latest")),
    ("library/debian", V("unikraft.org/library/debian:latest")),
    ("debian", V("unikraft.org/debian:latest")),
    ("docker.io/docker/docker", V("docker.io/docker/docker:latest")),
    ("docker.io/library/debian", V("docker.io/library/debian:latest")),
    ("docker.io/debian", V("docker.io/library/debian:latest")),
    (
        "index.docker.io/docker/docker",
        V("docker.io/docker/docker:latest"),
    ),
    (
        "index.docker.io/library/debian",
        V("docker.io/library/debian:latest"),
    ),
    ("index.docker.io/debian", V("docker.io/library/debian:latest")),
    (
        "127.0.0.1:5000/docker/docker",
        V("127.0.0.1:5000/docker/docker:latest"),
    ),
    (
        "127.0.0.1:5000/library/debian",
        V("127.0.0.1:5000/library/debian:latest"),
    ),
    ("127.0.0.1:5000/debian", V("127.0.0.1:5000/debian:latest")),
    ("192.168.0.1", V("unikraft.org/192.168.0.1:latest")),
    ("192.168.0.1:80", V("unikraft.org/192.168.0.1:80")),
    ("192.168.0.1:8/debian", V("192.168.0.1:8/debian:latest")),
    ("192.168.0.2:25000/debian", V("192.168.0.2:25000/debian:latest")),
    (
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        V("unikraft.org/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest"),
    ),
    ("docker.io/{hex}", V("docker.io/library/{hex}:latest")),
    // Docker takes an uppercase first component for a registry; KraftKit and ukpm refuse it.
    ("Docker/docker", E(Repository)),
    ("DOCKER/docker", E(Repository)),
    ("https://github.com/docker/docker", E(Registry)),
    ("docker/Docker", E(Repository)),
    ("-docker", E(Repository)),
    ("-docker/docker", E(Repository)),
    ("-docker.io/docker/docker", E(Registry)),
    ("docker///docker", E(Repository)),
    ("docker.io/docker/Docker", E(Repository)),
    ("docker.io/docker///docker", E(Repository)),
    ("{hex}", E(Identifier)),
    // A 64-hex name with a tag or a registry is a name again, as in Docker.
    ("{hex}:1", V("unikraft.org/{hex}:1")),
    // 63 hex characters are a name.
    (
        "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
        V("unikraft.org/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest"),
    ),
    // distribution normalize_test.go, TestValidateRemoteName.
    (
        "docker-rules/docker",
        V("unikraft.org/docker-rules/docker:latest"),
    ),
    (
        "docker---rules/docker",
        V("unikraft.org/docker---rules/docker:latest"),
    ),
    ("doc/docker", V("unikraft.org/doc/docker:latest")),
    ("d/docker", V("unikraft.org/d/docker:latest")),
    ("jess/t", V("unikraft.org/jess/t:latest")),
    ("dock__er/docker", V("unikraft.org/dock__er/docker:latest")),
    ("docker-/docker", E(Repository)),
    ("-docker-/docker", E(Repository)),
    ("____/____", E(Repository)),
    ("_docker/_docker", E(Repository)),
    // A first component with a `.` is a registry, as in Docker: refused as one.
    ("dock..er/docker", E(Registry)),
    ("dock_.er/docker", E(Registry)),
    ("dock-.er/docker", E(Registry)),
    ("docker/dock..er", E(Repository)),
    ("docker/dock_.er", E(Repository)),
    ("docker/dock-.er", E(Repository)),
    ("docker/dock.-er", E(Repository)),
    ("docker/dock___er", E(Repository)),
    ("docker/dock._er", E(Repository)),
    ("docker/dock__.er", E(Repository)),
    ("docker/", E(Repository)),
    // Path components that would mean something to a file system or a URL.
    ("..", E(Repository)),
    (".", E(Repository)),
    ("../x", E(Registry)),
    ("x/..", E(Repository)),
    ("a/../b", E(Repository)),
    ("a/./b", E(Repository)),
    ("a/.b", E(Repository)),
    ("a/b.", E(Repository)),
    ("ghcr.io/..", E(Repository)),
    ("ghcr.io/a/..:1", E(Repository)),
    ("ghcr.io/a%2fb", E(Repository)),
    ("ghcr.io/a?b", E(Repository)),
    ("ghcr.io/a#b", E(Repository)),
    ("ghcr.io/a\\b", E(Repository)),
    ("ghcr.io//a", E(Repository)),
    ("ghcr.io/a/", E(Repository)),
    ("x/a.b_c__d---e9", V("unikraft.org/x/a.b_c__d---e9:latest")),
    // distribution normalize_test.go, TestParseRepositoryInfo and TestParseAnyReference.
    ("fooo/bar", V("unikraft.org/fooo/bar:latest")),
    ("docker.io/fooo/bar", V("docker.io/fooo/bar:latest")),
    ("index.docker.io/fooo/bar", V("docker.io/fooo/bar:latest")),
    ("library/ubuntu", V("unikraft.org/library/ubuntu:latest")),
    ("docker.io/library/ubuntu", V("docker.io/library/ubuntu:latest")),
    ("docker.io/library/foo/bar", V("docker.io/library/foo/bar:latest")),
    ("docker.io/store/foo/bar", V("docker.io/store/foo/bar:latest")),
    (
        "example.com/private/moonbase",
        V("example.com/private/moonbase:latest"),
    ),
    (
        "example.com:8000/privatebase",
        V("example.com:8000/privatebase:latest"),
    ),
    ("docker.io/foo", V("docker.io/library/foo:latest")),
    (
        "index.docker.io/library/ubuntu-12.04-base",
        V("docker.io/library/ubuntu-12.04-base:latest"),
    ),
    (
        "docker.io/library/redis:latest",
        V("docker.io/library/redis:latest"),
    ),
    (
        "docker.io/redis@sha256:{ff}",
        V("docker.io/library/redis@sha256:{ff}"),
    ),
    (
        "docker.io/x:1@sha256:{ff}",
        V("docker.io/library/x:1@sha256:{ff}"),
    ),
    (
        "busybox:latest@sha256:{ff}",
        V("unikraft.org/busybox:latest@sha256:{ff}"),
    ),
    // Other Docker Hub spellings are other hosts, as in Docker.
    ("registry-1.docker.io/x", V("registry-1.docker.io/x:latest")),
    ("docker.io:443/x", V("docker.io:443/x:latest")),
    // go-containerregistry's name tests.
    (
        "gcr.io/g-convoy/hello-world",
        V("gcr.io/g-convoy/hello-world:latest"),
    ),
    (
        "gcr.io/google.com/project-id/hello-world",
        V("gcr.io/google.com/project-id/hello-world:latest"),
    ),
    (
        "us.gcr.io/project-id/sub-repo",
        V("us.gcr.io/project-id/sub-repo:latest"),
    ),
    ("example.text/foo/bar", V("example.text/foo/bar:latest")),
    ("mirror.gcr.io/ubuntu", V("mirror.gcr.io/ubuntu:latest")),
    ("example.com/a", V("example.com/a:latest")),
    ("example.com/a/b", V("example.com/a/b:latest")),
    ("localhost/testimage", V("localhost/testimage:latest")),
    (
        "namespace/pathcomponent/image",
        V("unikraft.org/namespace/pathcomponent/image:latest"),
    ),
    ("gcr.io:9001/x", V("gcr.io:9001/x:latest")),
    ("localhost:9090/x", V("localhost:9090/x:latest")),
    ("white space", E(Repository)),
    ("b@char/image", E(Digest)),
    ("gcr?com/x", E(Repository)),
    ("gcr?.com/x", E(Registry)),
    // Registries: names, ports.
    ("localhost/app", V("localhost/app:latest")),
    ("localhost:5000/a/b:c", V("localhost:5000/a/b:c")),
    ("Example.COM/x", V("Example.COM/x:latest")),
    ("example.com:65535/x", V("example.com:65535/x:latest")),
    ("example.com:0/x", V("example.com:0/x:latest")),
    ("example.com:65536/x", E(Registry)),
    ("example.com:123456/x", E(Registry)),
    ("example.com:/x", E(Registry)),
    ("example.com:99x/x", E(Registry)),
    ("example.com:8080:8080/x", E(Registry)),
    ("bad_host.io/x", E(Registry)),
    ("host-.io/x", E(Registry)),
    ("-host.io/x", E(Registry)),
    ("host..io/x", E(Registry)),
    (".io/x", E(Registry)),
    ("host.io./x", E(Registry)),
    ("h\u{e9}.io/x", E(Registry)),
    // Tags.
    ("nginx:", E(Tag)),
    ("nginx:-x", E(Tag)),
    ("nginx:.x", E(Tag)),
    ("nginx:_x", V("unikraft.org/nginx:_x")),
    ("nginx:a+b", E(Tag)),
    ("nginx:a b", E(Tag)),
    ("nginx:TAG5", V("unikraft.org/nginx:TAG5")),
    // Digests.
    ("nginx@sha256:zz", E(Digest)),
    ("nginx@", E(Digest)),
    ("nginx@sha256:{ff}@sha256:{ff}", E(Digest)),
    (
        "unikraft.org/nginx@sha256:{ff}",
        V("unikraft.org/nginx@sha256:{ff}"),
    ),
    ("nginx:1@sha256:{ff}", V("unikraft.org/nginx:1@sha256:{ff}")),
    // Not a reference at all.
    ("ng inx", E(Repository)),
    ("UPPER/x", E(Repository)),
    ("a:b:c", E(Repository)),
    ("nginx\u{1b}[31m", E(Repository)),
    ("nginx:1\r", E(Tag)),
    ("ghcr.io/x\u{202e}", E(Repository)),
];

fn expand(s: &str) -> String {
    s.replace("{ff}", FF).replace("{hex}", HEX64)
}

#[test]
fn every_vector() {
    let mut failures = Vec::new();
    for (input, want) in VECTORS {
        let input = expand(input);
        let got = input.parse::<Reference>();
        let ok = match (want, &got) {
            (Want::Ok(expected), Ok(r)) => r.to_string() == expand(expected),
            (Want::Err(kind_wanted), Err(e)) => kind(e) == *kind_wanted,
            _ => false,
        };
        if !ok {
            failures.push(format!("{input:?}: wanted {want:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} vectors disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn normalised_forms_are_fixed_points() {
    for (input, want) in VECTORS {
        if let Want::Ok(_) = want {
            let r = expand(input).parse::<Reference>().unwrap();
            let again = r.to_string().parse::<Reference>().unwrap();
            assert_eq!(again, r, "{input}");
            assert_eq!(again.to_string(), r.to_string(), "{input}");
        }
    }
}

#[test]
fn path_lengths_count_after_normalisation() {
    // distribution: 128 `a/` plus `a` is too long; 127 plus `a` (255 characters) is not.
    let long = format!("{}a:tag", "a/".repeat(128));
    assert!(matches!(
        long.parse::<Reference>(),
        Err(ReferenceError::TooLong { length: 257, .. })
    ));
    let limit = format!("{}a:tag-puts-this-over-max", "a/".repeat(127));
    let r = limit.parse::<Reference>().unwrap();
    assert_eq!(r.repository().len(), 255);
    assert_eq!(r.registry(), "unikraft.org");
    // normalize_test.go: a namespace longer than 255 characters.
    let namespace = ["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"; 4].join("_");
    assert!(matches!(
        format!("{namespace}/docker").parse::<Reference>(),
        Err(ReferenceError::TooLong { .. })
    ));
    // On Docker Hub, `library/` counts: 250 characters become 258.
    let hub = format!("docker.io/{}", "a".repeat(250));
    assert!(matches!(
        hub.parse::<Reference>(),
        Err(ReferenceError::TooLong { length: 258, .. })
    ));
    let tag = format!("nginx:{}", "t".repeat(128));
    assert!(tag.parse::<Reference>().is_ok());
    let tag = format!("nginx:{}", "t".repeat(129));
    assert!(matches!(
        tag.parse::<Reference>(),
        Err(ReferenceError::Tag { .. })
    ));
}

#[test]
fn parts_of_ipv6_references() {
    let r: Reference = "[::1]:5000/a/b:c".parse().unwrap();
    assert_eq!(
        (r.registry(), r.repository(), r.tag()),
        ("[::1]:5000", "a/b", Some("c"))
    );
    assert_eq!(r.name(), "[::1]:5000/a/b");
    let r: Reference = "[fe80::1]/x".parse().unwrap();
    assert_eq!((r.registry(), r.repository()), ("[fe80::1]", "x"));
    assert_eq!(r.with_tag("v2").unwrap().to_string(), "[fe80::1]/x:v2");
    assert_eq!(
        Reference::new("[::1]:5000", "x", "1").unwrap().to_string(),
        "[::1]:5000/x:1"
    );
}

#[test]
fn docker_hub_is_normalised_however_it_is_reached() {
    // As a default registry (`--registry docker.io`), Docker Hub's rules apply too.
    let r = Reference::parse_with_registry("nginx", "docker.io").unwrap();
    assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
    let r = Reference::parse_with_registry("nginx", "index.docker.io").unwrap();
    assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
    let r = Reference::parse_with_registry("bitnami/nginx", "docker.io").unwrap();
    assert_eq!(r.to_string(), "docker.io/bitnami/nginx:latest");
    assert_eq!(
        Reference::new("index.docker.io", "x", "1").unwrap().to_string(),
        "docker.io/library/x:1"
    );
    // Elsewhere a one-component path stays as it is (KraftKit).
    let r = Reference::parse_with_registry("nginx", "ghcr.io").unwrap();
    assert_eq!(r.to_string(), "ghcr.io/nginx:latest");
}

#[test]
fn which_strings_name_their_registry() {
    for s in [
        "ghcr.io/a/b:1",
        "localhost:5000/a",
        "localhost/a",
        "[::1]:5000/x",
        "[fe80::1]/x",
        "[bad]/x",
        "docker.io/x",
        "127.0.0.1/x@sha256:00",
    ] {
        assert!(has_registry(s), "{s}");
    }
    for s in ["nginx:1.25", "official/base", "nginx", "Upper/x", "a/b.c"] {
        assert!(!has_registry(s), "{s}");
    }
}

#[test]
fn errors_name_the_part_and_say_why() {
    let err = "[foo]:5000/x".parse::<Reference>().unwrap_err().to_string();
    assert!(err.contains("`[foo]:5000`") && err.contains("IPv6"), "{err}");
    let err = "fc00::1:5000/x".parse::<Reference>().unwrap_err().to_string();
    assert!(err.contains("brackets"), "{err}");
    let err = "ghcr.io/a..b".parse::<Reference>().unwrap_err().to_string();
    assert!(err.contains("`a..b`"), "{err}");
    let err = HEX64.parse::<Reference>().unwrap_err().to_string();
    assert!(err.contains("@sha256:"), "{err}");
}
