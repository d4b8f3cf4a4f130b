//! Against the real `oidc-provider` test IdP (opaque access tokens, RFC 7662 introspection).

mod common;

use std::time::Duration;

use common::bounded;
use mcp_auth_core::{InvalidToken, TokenVerifier, VerifyError};
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_introspect::{IntrospectionVerifier, IntrospectionVerifierBuilder};

const R: &str = "http://127.0.0.1:8000/mcp";
const OTHER: &str = "http://127.0.0.1:8001/other";

/// Not under `bounded`: the harness bounds the start itself (60 s from its turn, starts queued).
async fn idp() -> TestIdp {
    TestIdp::start(vec![
        ResourceSpec::opaque(R, &["todo:read", "todo:write"]),
        ResourceSpec::opaque(OTHER, &["other:read"]),
    ])
    .await
    .expect("test IdP starts")
}

fn builder(idp: &TestIdp) -> IntrospectionVerifierBuilder {
    let (id, secret) = idp.introspection_client();
    IntrospectionVerifier::builder()
        .endpoint(idp.introspection_endpoint())
        .client_secret_basic(id, secret)
        .issuer(idp.issuer())
        .resource_url(R)
        .timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn real_idp_tokens_scopes_audience_and_refresh_tokens() {
    let idp = idp().await;
    let v = builder(&idp).build().unwrap();

    // A client_credentials token for R.
    let m2m = bounded(idp.client_credentials(R, "todo:read"))
        .await
        .unwrap();
    let t = bounded(v.verify(&m2m.access_token)).await.unwrap();
    assert_eq!(t.scopes(), ["todo:read"]);
    assert_eq!(t.client_id(), Some(idp.m2m_client().0));
    assert_eq!(t.issuer(), Some(idp.issuer()));
    assert!(t.audiences().iter().any(|a| a == R), "{:?}", t.audiences());
    assert!(v.is_ready());

    // A user token: subject is the logged-in account.
    let user = bounded(idp.authorization_code(R, "todo:read todo:write", "alice"))
        .await
        .unwrap();
    let t = bounded(v.verify(&user.access_token)).await.unwrap();
    assert_eq!(t.subject(), Some("alice"));
    let mut scopes = t.scopes().to_vec();
    scopes.sort();
    assert_eq!(scopes, ["todo:read", "todo:write"]);
    assert!(t.client_id().is_some());

    // The refresh token is refused, although oidc-provider calls it active (with neither `aud`
    // nor `token_type`): the audience check catches it, and without that check the missing
    // `token_type` does.
    let refresh = user.refresh_token.expect("refresh token issued");
    let raw = bounded(idp.introspect(&refresh)).await.unwrap();
    assert_eq!(
        raw["active"], true,
        "the IdP fact this test is about: {raw}"
    );
    let err = bounded(v.verify(&refresh)).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Audience)),
        "{err:?}"
    );
    let no_aud = builder(&idp).dangerous_skip_audience().build().unwrap();
    let err = bounded(no_aud.verify(&refresh)).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Type)),
        "{err:?}"
    );
    bounded(no_aud.verify(&user.access_token)).await.unwrap();

    // A token minted for another resource is refused on audience.
    let other = bounded(idp.client_credentials(OTHER, "other:read"))
        .await
        .unwrap();
    let err = bounded(v.verify(&other.access_token)).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Audience)),
        "{err:?}"
    );

    // Garbage is inactive.
    let err = bounded(v.verify("not-a-token-the-idp-knows"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Inactive)),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoked_token_is_refused_once_its_cache_entry_expires() {
    let idp = idp().await;
    let v = builder(&idp)
        .cache_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    let tok = bounded(idp.client_credentials(R, "todo:read"))
        .await
        .unwrap();
    let raw = tok.access_token.as_bytes();
    // The bearer layer's synchronous lookup knows nothing before a verification.
    assert!(v.verify_cached(raw).is_none());
    bounded(v.verify(&tok.access_token)).await.unwrap();
    let calls = bounded(idp.introspection_count()).await.unwrap();
    let hit = v
        .verify_cached(raw)
        .expect("the verified token, from the cache");
    assert_eq!(hit.scopes(), ["todo:read"]);
    assert_eq!(hit.client_id(), Some(idp.m2m_client().0));

    bounded(idp.revoke(&tok.access_token)).await.unwrap();
    // Still cached: the documented revocation lag, the same for both lookups.
    bounded(v.verify(&tok.access_token)).await.unwrap();
    assert!(v.verify_cached(raw).is_some());
    assert_eq!(bounded(idp.introspection_count()).await.unwrap(), calls);

    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        v.verify_cached(raw).is_none(),
        "answered past the cache TTL"
    );
    let err = bounded(v.verify(&tok.access_token)).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Inactive)),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_credentials_discovery_and_post_auth() {
    let idp = idp().await;
    let tok = bounded(idp.client_credentials(R, "todo:read"))
        .await
        .unwrap();

    let (id, _) = idp.introspection_client();
    let wrong = builder(&idp)
        .client_secret_basic(id, "not-the-secret")
        .build()
        .unwrap();
    let err = bounded(wrong.verify(&tok.access_token)).await.unwrap_err();
    assert_eq!(err.status(), 500);
    assert!(
        matches!(&err, VerifyError::Internal(m) if m.contains("MCP_AUTH_INTROSPECT_CLIENT_ID")),
        "{err:?}"
    );

    // client_secret_post against the same IdP, endpoint discovered from the issuer.
    let (id, secret) = idp.introspection_client();
    let discovered = IntrospectionVerifier::builder()
        .issuer(idp.issuer())
        .client_secret_post(id, secret)
        .resource_url(R)
        .build()
        .unwrap();
    assert_eq!(
        bounded(discovered.discover()).await.unwrap().as_str(),
        idp.introspection_endpoint()
    );
    // 1,000 concurrent first uses of one token: one introspection call.
    let before = bounded(idp.introspection_count()).await.unwrap();
    let discovered = std::sync::Arc::new(discovered);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (v, t) = (discovered.clone(), tok.access_token.clone());
        set.spawn(async move { v.verify(&t).await });
    }
    assert!(bounded(set.join_all()).await.iter().all(Result::is_ok));
    assert_eq!(
        bounded(idp.introspection_count()).await.unwrap() - before,
        1
    );
    let t = bounded(discovered.verify(&tok.access_token)).await.unwrap();
    assert_eq!(t.scopes(), ["todo:read"]);
}
