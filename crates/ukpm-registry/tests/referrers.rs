//! The referrers API against a fake registry: pages followed through `Link`, and a registry
//! without the API (404) told apart from one that has no referrers (an empty index). Mocked
//! because the installed docker-registry 2.8 has no referrers API (house rule 8).

mod fake;

use fake::{Fake, REPO, Reply, anonymous};
use ukpm_registry::referrers_tag;
use ukpm_types::{Digest, Reference};

fn index(digest: Digest) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":10,"artifactType":"application/spdx+json"}}]}}"#
    )
}

#[tokio::test]
async fn referrers_are_listed_across_pages() {
    let subject = Digest::of(b"subject");
    let (one, two) = (Digest::of(b"one"), Digest::of(b"two"));
    let first = format!("/v2/{REPO}/referrers/{subject}");
    let fake = Fake::start(move |request| {
        if request.target == first {
            Reply::ok(index(one))
                .header("Content-Type", "application/vnd.oci.image.index.v1+json")
                .header("Link", &format!("<{first}?last=1>; rel=\"next\""))
        } else if request.path() == first {
            Reply::ok(index(two)).header("Content-Type", "application/vnd.oci.image.index.v1+json")
        } else {
            Reply::status(404)
        }
    })
    .await;
    let reference: Reference = format!("{}/{REPO}:v1", fake.host()).parse().unwrap();
    let client = anonymous(0);
    let listed = client.list_referrers(&reference, subject).await.unwrap().unwrap();
    let digests: Vec<Digest> = listed.iter().map(|d| d.digest).collect();
    assert_eq!(digests, [one, two]);
    assert_eq!(listed[0].artifact_type.as_deref(), Some("application/spdx+json"));

    // Another subject: the registry answers 404, as one without the API does.
    assert!(client.list_referrers(&reference, one).await.unwrap().is_none());
    assert_eq!(
        referrers_tag(subject),
        subject.to_string().replace("sha256:", "sha256-")
    );
}
