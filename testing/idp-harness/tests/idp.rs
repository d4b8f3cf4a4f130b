//! Drives the real test IdP through the harness and checks what other crates' tests rely on:
//! token contents per algorithm and format, the headless authorization-code flow, refresh,
//! introspection counting, revocation and key rotation on restart.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_idp_harness::{HarnessError, ResourceSpec, TestIdp, TokenFormat};
use serde_json::Value;

const RS: &str = "http://127.0.0.1:9/rs256";
const ES: &str = "http://127.0.0.1:9/es256";
const ED: &str = "http://127.0.0.1:9/eddsa";
const OPAQUE: &str = "http://127.0.0.1:9/opaque";

/// Every test is bounded: a hung IdP fails the test instead of the CI job. The bound leaves room
/// for the harness's own start bound (60 s) plus a queue of starts from the other tests.
async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_secs(180), test)
        .await
        .expect("test timed out");
}

fn resources() -> Vec<ResourceSpec> {
    let mut es = ResourceSpec::jwt(ES, &["todo:read", "todo:write"], "ES256");
    es.ttl_secs = 120;
    vec![
        ResourceSpec::jwt(RS, &["todo:read", "todo:write"], "RS256"),
        es,
        ResourceSpec::jwt(ED, &["todo:read"], "EdDSA"),
        ResourceSpec::opaque(OPAQUE, &["todo:read", "todo:write"]),
    ]
}

fn decode_part(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url JWT part");
    serde_json::from_slice(&bytes).expect("JSON JWT part")
}

/// Header and payload of a JWT, unverified.
fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS");
    (decode_part(parts[0]), decode_part(parts[1]))
}

async fn jwks_kids(idp: &TestIdp) -> BTreeSet<String> {
    let jwks: Value = reqwest::get(idp.jwks_uri())
        .await
        .expect("JWKS fetch")
        .json()
        .await
        .expect("JWKS JSON");
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[test]
fn resource_spec_constructors() {
    let jwt = ResourceSpec::jwt(RS, &["a", "b"], "ES256");
    assert_eq!(jwt.url, RS);
    assert_eq!(jwt.scopes, ["a", "b"]);
    assert_eq!(jwt.format, TokenFormat::Jwt);
    assert_eq!(jwt.alg, "ES256");
    assert_eq!(jwt.ttl_secs, ResourceSpec::DEFAULT_TTL_SECS);
    let opaque = ResourceSpec::opaque(OPAQUE, &["a"]);
    assert_eq!(opaque.format, TokenFormat::Opaque);
}

#[tokio::test]
async fn client_credentials_jwt_for_every_algorithm() {
    bounded(async {
        let idp = TestIdp::start(resources()).await.expect("IdP starts");
        assert_eq!(idp.issuer(), format!("http://127.0.0.1:{}", idp.port()));
        let kids = jwks_kids(&idp).await;
        assert_eq!(kids.len(), 3, "one RSA, one P-256, one Ed25519 key");

        for (resource, alg, ttl) in [(RS, "RS256", 300), (ES, "ES256", 120), (ED, "EdDSA", 300)] {
            let token = idp
                .client_credentials(resource, "todo:read")
                .await
                .expect("client_credentials token");
            assert_eq!(token.scope.as_deref(), Some("todo:read"));
            assert_eq!(token.expires_in, Some(ttl));
            assert_eq!(token.refresh_token, None);

            let (header, claims) = jwt_parts(&token.access_token);
            assert_eq!(header["typ"], "at+jwt", "{alg}");
            assert_eq!(header["alg"], alg);
            assert!(kids.contains(header["kid"].as_str().expect("kid")), "{alg}");
            assert_eq!(claims["iss"], idp.issuer());
            assert_eq!(claims["aud"], resource);
            assert_eq!(claims["scope"], "todo:read");
            assert_eq!(claims["client_id"], idp.m2m_client().0);
            let (exp, iat) = (claims["exp"].as_u64(), claims["iat"].as_u64());
            assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(ttl));
        }

        // Several scopes come back space-separated.
        let both = idp
            .client_credentials(RS, "todo:read todo:write")
            .await
            .expect("token");
        assert_eq!(
            jwt_parts(&both.access_token).1["scope"],
            "todo:read todo:write"
        );

        // An unknown resource is refused, never answered with a token for another audience.
        match idp
            .client_credentials("http://127.0.0.1:9/unknown", "todo:read")
            .await
        {
            Err(HarnessError::Endpoint { status, body, .. }) => {
                assert_eq!(status, 400);
                assert!(body.contains("invalid_target"), "{body}");
            }
            other => panic!("expected invalid_target, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn authorization_code_refresh_and_refusal() {
    bounded(async {
        let idp = TestIdp::start(resources()).await.expect("IdP starts");

        let token = idp
            .authorization_code(ES, "todo:read todo:write", "bob")
            .await
            .expect("authorization code flow");
        let (header, claims) = jwt_parts(&token.access_token);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["sub"], "bob");
        assert_eq!(claims["aud"], ES);
        assert_eq!(claims["iss"], idp.issuer());
        assert_eq!(claims["scope"], "todo:read todo:write");
        let refresh_token = token.refresh_token.expect("refresh token issued");

        let refreshed = idp
            .refresh(&refresh_token, ES)
            .await
            .expect("refresh grant");
        assert_ne!(refreshed.access_token, token.access_token);
        let (_, claims) = jwt_parts(&refreshed.access_token);
        assert_eq!(claims["sub"], "bob");
        assert_eq!(claims["aud"], ES);
        assert_eq!(claims["scope"], "todo:read todo:write");
        let rotated = refreshed.refresh_token.expect("rotated refresh token");
        assert_ne!(rotated, refresh_token);
        // The consumed refresh token no longer works.
        assert!(matches!(
            idp.refresh(&refresh_token, ES).await,
            Err(HarnessError::Endpoint { status: 400, .. })
        ));

        // No scope requested: the IdP grants the resource's scopes; the default account logs in.
        let default = idp
            .authorization_code(RS, "", "alice")
            .await
            .expect("flow without scope");
        let (_, claims) = jwt_parts(&default.access_token);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["scope"], "todo:read todo:write");

        match idp.authorization_code(RS, "todo:read", "refuse").await {
            Err(HarnessError::Authorization { error, .. }) => assert_eq!(error, "access_denied"),
            other => panic!("expected access_denied, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn opaque_tokens_introspection_count_and_revocation() {
    bounded(async {
        let idp = TestIdp::start(resources()).await.expect("IdP starts");
        let token = idp
            .client_credentials(OPAQUE, "todo:write")
            .await
            .expect("opaque token");
        assert!(!token.access_token.contains('.'), "opaque, not a JWT");
        assert_eq!(idp.introspection_count().await.expect("stats"), 0);

        // Introspect as a resource server would: the advertised endpoint and client.
        let (id, secret) = idp.introspection_client();
        let introspect = || async {
            let response = reqwest::Client::new()
                .post(idp.introspection_endpoint())
                .basic_auth(id, Some(secret))
                .form(&[("token", token.access_token.as_str())])
                .send()
                .await
                .expect("introspection request");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("introspection JSON")
        };
        let active = introspect().await;
        assert_eq!(active["active"], true);
        assert_eq!(active["aud"], OPAQUE);
        assert_eq!(active["scope"], "todo:write");
        assert_eq!(active["iss"], idp.issuer());
        assert_eq!(idp.introspection_count().await.expect("stats"), 1);

        // A wrong secret is refused and still counted (every request to the endpoint counts).
        let refused = reqwest::Client::new()
            .post(idp.introspection_endpoint())
            .basic_auth(id, Some("wrong"))
            .form(&[("token", token.access_token.as_str())])
            .send()
            .await
            .expect("introspection request");
        assert_eq!(refused.status(), 401);
        assert_eq!(idp.introspection_count().await.expect("stats"), 2);

        idp.revoke(&token.access_token).await.expect("revocation");
        assert_eq!(introspect().await["active"], false);
        assert_eq!(
            idp.introspect(&token.access_token)
                .await
                .expect("introspect")["active"],
            false
        );
        assert_eq!(idp.introspection_count().await.expect("stats"), 4);
    })
    .await;
}

#[tokio::test]
async fn restart_with_new_keys_rotates_kids_on_the_same_port() {
    bounded(async {
        let mut idp = TestIdp::start(vec![ResourceSpec::jwt(RS, &["todo:read"], "RS256")])
            .await
            .expect("IdP starts");
        let issuer = idp.issuer().to_owned();
        let before = jwks_kids(&idp).await;

        idp.restart_with_new_keys().await.expect("restart");
        assert_eq!(idp.issuer(), issuer);
        let after = jwks_kids(&idp).await;
        assert_eq!(after.len(), 3);
        assert!(before.is_disjoint(&after), "{before:?} vs {after:?}");

        // The restarted IdP issues tokens signed with a new key, for both flows.
        let token = idp
            .client_credentials(RS, "todo:read")
            .await
            .expect("token");
        let (header, claims) = jwt_parts(&token.access_token);
        assert!(after.contains(header["kid"].as_str().expect("kid")));
        assert_eq!(claims["iss"], issuer);
        let token = idp
            .authorization_code(RS, "todo:read", "carol")
            .await
            .expect("DCR and login after restart");
        assert_eq!(jwt_parts(&token.access_token).1["sub"], "carol");
        assert_eq!(idp.introspection_count().await.expect("stats"), 0);
    })
    .await;
}

#[tokio::test]
async fn a_bad_resource_list_fails_start_with_the_idp_stderr() {
    bounded(async {
        let bad = ResourceSpec::jwt(RS, &["todo:read"], "HS256");
        match TestIdp::start(vec![bad]).await {
            Err(HarnessError::Exited { stderr, .. }) => {
                assert!(stderr.contains("alg must be one of"), "{stderr}");
            }
            other => panic!("expected Exited, got {other:?}"),
        }
    })
    .await;
}
