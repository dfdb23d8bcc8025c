//! Tag resolution (`scangate::registry`) against a real registry: the CNCF distribution
//! registry with TLS and htpasswd basic auth (tests/common/registry.rs), images pushed over its
//! HTTP API. No apiserver needed.

mod common;

use common::registry::{PASSWORD, Registry, USER, registry};
use scangate::image::ImageRef;
use scangate::registry::{Credentials, DockerConfig, Error, MediaType, Resolver};

fn image(reference: &str) -> ImageRef {
    ImageRef::parse(reference).expect("image reference")
}

fn resolver(registry: &Registry) -> Resolver {
    Resolver::new(Some(&registry.ca)).expect("resolver")
}

/// The credentials of a pull secret for the registry, as the controller reads them.
fn pull_secret(registry: &Registry, password: &str) -> Credentials {
    let json = serde_json::json!({"auths": {
        format!("https://{}", registry.host): {"username": USER, "password": password},
    }});
    let config = DockerConfig::parse(json.to_string().as_bytes()).expect("pull secret");
    config
        .credentials_for(&registry.host)
        .cloned()
        .expect("credentials for the registry")
}

#[tokio::test]
async fn a_tag_resolves_to_the_digest_pushed_last() {
    let Some(registry) = registry() else { return };
    let resolver = resolver(&registry);
    let credentials = pull_secret(&registry, PASSWORD);
    let first = registry.push("team/app", "1.0").await;
    let resolved = resolver
        .resolve(&image(&first.reference), Some(&credentials))
        .await
        .expect("resolve the pushed tag");
    assert_eq!(resolved.digest, first.digest);
    assert_eq!(resolved.media_type, MediaType::OciManifest);
    assert!(resolved.platforms.is_empty());

    // A new push to the same tag: the tag now names the new content.
    let second = registry.push("team/app", "1.0").await;
    assert_ne!(first.digest, second.digest);
    let again = resolver
        .resolve(&image(&first.reference), Some(&credentials))
        .await
        .expect("resolve the tag again");
    assert_eq!(again.digest, second.digest);

    // By digest, the old content is still there and checked.
    let pinned = image(&first.reference)
        .with_digest(&first.digest)
        .expect("pinned");
    let old = resolver
        .resolve(&pinned, Some(&credentials))
        .await
        .expect("resolve by digest");
    assert_eq!(old.digest, first.digest);
}

#[tokio::test]
async fn a_multi_arch_index_lists_its_platforms() {
    let Some(registry) = registry() else { return };
    let (pushed, platforms) = registry.push_index("team/multi", "2.0").await;
    let resolved = resolver(&registry)
        .resolve(
            &image(&pushed.reference),
            Some(&pull_secret(&registry, PASSWORD)),
        )
        .await
        .expect("resolve the index");
    assert_eq!(resolved.digest, pushed.digest);
    assert_eq!(resolved.media_type, MediaType::OciIndex);
    let got: Vec<(String, String)> = resolved
        .platforms
        .iter()
        .map(|p| (p.name(), p.digest.clone()))
        .collect();
    let want: Vec<(String, String)> = platforms
        .iter()
        .map(|p| (format!("{}/{}", p.os, p.architecture), p.digest.clone()))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_wrong_password_or_none_is_an_auth_error() {
    let Some(registry) = registry() else { return };
    let pushed = registry.push("team/locked", "1").await;
    let resolver = resolver(&registry);
    let wrong = resolver
        .resolve(
            &image(&pushed.reference),
            Some(&pull_secret(&registry, "wrong")),
        )
        .await;
    match wrong {
        Err(
            ref e @ Error::Auth {
                credentials_sent: true,
                status: 401,
                ..
            },
        ) => {
            let message = e.to_string();
            assert!(message.contains(&registry.host), "{message}");
            assert!(
                message.contains("check the user name and password"),
                "{message}"
            );
        }
        other => panic!("expected an auth error with credentials sent, got {other:?}"),
    }
    let anonymous = resolver.resolve(&image(&pushed.reference), None).await;
    match anonymous {
        Err(
            ref e @ Error::Auth {
                credentials_sent: false,
                ..
            },
        ) => assert!(e.to_string().contains("imagePullSecret"), "{e}"),
        other => panic!("expected an auth error without credentials, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_tag_or_repository_is_not_found() {
    let Some(registry) = registry() else { return };
    registry.push("team/known", "1").await;
    let resolver = resolver(&registry);
    let credentials = pull_secret(&registry, PASSWORD);
    // The distribution registry answers MANIFEST_UNKNOWN for an unknown repository too; others
    // say NAME_UNKNOWN.
    for (reference, codes) in [
        (
            format!("{}/team/known:nope", registry.host),
            &["MANIFEST_UNKNOWN"][..],
        ),
        (
            format!("{}/team/never-pushed:1", registry.host),
            &["MANIFEST_UNKNOWN", "NAME_UNKNOWN"][..],
        ),
    ] {
        match resolver
            .resolve(&image(&reference), Some(&credentials))
            .await
        {
            Err(Error::NotFound {
                code: ref got,
                ref image,
                ..
            }) => {
                assert!(codes.contains(got), "{reference}: {got}");
                assert!(image.contains(&reference), "{image}");
            }
            other => panic!("{reference}: expected not found, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let Some(registry) = registry() else { return };
    let closed = common::webhook::free_port();
    let reference = format!("127.0.0.1:{closed}/team/app:1");
    let result = resolver(&registry)
        .resolve(&image(&reference), Some(&pull_secret(&registry, PASSWORD)))
        .await;
    match result {
        Err(ref e @ Error::Unreachable { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&format!("127.0.0.1:{closed}")),
                "{message}"
            );
            assert!(message.contains("bounded to 10s"), "{message}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}
