//! Against the real `oidc-provider` test IdP: tokens from client_credentials and authorization
//! code + PKCE in RS256, ES256 and EdDSA verify with the right claims; a token for another
//! resource is refused; an IdP restarted with new keys is handled without a new verifier.

use std::time::Duration;

use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_jwt::{Algorithm, InvalidToken, JwtVerifier, TokenVerifier, TypPolicy, VerifyError};

const R_RS: &str = "http://127.0.0.1:9/mcp-rs";
const R_ES: &str = "http://127.0.0.1:9/mcp-es";
const R_ED: &str = "http://127.0.0.1:9/mcp-ed";
const R_OTHER: &str = "http://127.0.0.1:9/other";
const SCOPES: &[&str] = &["todo:read", "todo:write"];

async fn idp() -> TestIdp {
    TestIdp::start(vec![
        ResourceSpec::jwt(R_RS, SCOPES, "RS256"),
        ResourceSpec::jwt(R_ES, SCOPES, "ES256"),
        ResourceSpec::jwt(R_ED, SCOPES, "EdDSA"),
        ResourceSpec::jwt(R_OTHER, SCOPES, "RS256"),
    ])
    .await
    .expect("test IdP starts")
}

fn verifier(idp: &TestIdp, resource: &str, alg: Algorithm) -> JwtVerifier {
    // Discovery from the issuer (openid-configuration), strict typ: oidc-provider sends at+jwt.
    JwtVerifier::builder()
        .issuer(idp.issuer())
        .resource_url(resource)
        .algorithms([alg])
        .typ_policy(TypPolicy::Strict)
        .jwks_cooldown(Duration::from_millis(300))
        .build()
        .unwrap()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("test timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_every_algorithm_and_flow_verify_with_their_claims() {
    bounded(async {
        let idp = idp().await;
        let (m2m, _) = idp.m2m_client();
        for (resource, alg) in [
            (R_RS, Algorithm::RS256),
            (R_ES, Algorithm::ES256),
            (R_ED, Algorithm::EdDSA),
        ] {
            let v = verifier(&idp, resource, alg);

            let cc = idp.client_credentials(resource, "todo:read").await.unwrap();
            let a = v
                .verify(&cc.access_token)
                .await
                .unwrap_or_else(|e| panic!("{alg:?} client_credentials token refused: {e:?}"));
            assert_eq!(a.scopes(), ["todo:read"], "{alg:?}");
            assert_eq!(a.client_id(), Some(m2m), "{alg:?}");
            assert_eq!(a.issuer(), Some(idp.issuer()));
            assert_eq!(a.audiences(), [resource]);

            let ac = idp
                .authorization_code(resource, "todo:read todo:write", "alice")
                .await
                .unwrap();
            let a = v
                .verify(&ac.access_token)
                .await
                .unwrap_or_else(|e| panic!("{alg:?} authorization-code token refused: {e:?}"));
            assert_eq!(a.subject(), Some("alice"), "{alg:?}");
            let mut scopes = a.scopes().to_vec();
            scopes.sort();
            assert_eq!(scopes, ["todo:read", "todo:write"], "{alg:?}");
            let client = a.client_id().expect("client_id present");
            assert_ne!(client, m2m);
            assert!(v.is_ready());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_another_resource_is_refused() {
    bounded(async {
        let idp = idp().await;
        let v = verifier(&idp, R_RS, Algorithm::RS256);
        let other = idp.client_credentials(R_OTHER, "todo:read").await.unwrap();
        match v.verify(&other.access_token).await {
            Err(VerifyError::Invalid(InvalidToken::Audience)) => {}
            other => panic!("expected an audience rejection, got {other:?}"),
        }
        // Same key, right resource: accepted (the refusal above is about the audience alone).
        let ok = idp.client_credentials(R_RS, "todo:read").await.unwrap();
        assert!(v.verify(&ok.access_token).await.is_ok());
    })
    .await;
}

#[test]
fn idp_restarted_with_new_keys_is_handled_by_the_same_verifier() {
    let m = mcp_auth_idp_harness::metrics::MetricsCapture::new();
    m.block_on(
        2,
        bounded(async {
            let mut idp = idp().await;
            let v = verifier(&idp, R_ES, Algorithm::ES256);
            let before = idp.client_credentials(R_ES, "todo:read").await.unwrap();
            v.verify(&before.access_token).await.unwrap();
            v.verify(&before.access_token).await.unwrap();

            idp.restart_with_new_keys().await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
            let after = idp.client_credentials(R_ES, "todo:read").await.unwrap();
            let a = v.verify(&after.access_token).await.unwrap();
            assert_eq!(a.scopes(), ["todo:read"]);
            // The old keys are gone from the JWKS: the old token (cached before) no longer verifies.
            match v.verify(&before.access_token).await {
                Err(VerifyError::Invalid(InvalidToken::UnknownKey)) => {}
                other => panic!("old-key token should be refused, got {other:?}"),
            }
            let fetched = m.counter(mcp_auth_core::telemetry::JWKS_FETCHES, &[("result", "ok")]);
            assert!(
                fetched >= 2,
                "keys fetched before and after the restart: {m:?}"
            );
        }),
    );
}
