//! The bearer layer with an arbitrary `Authorization` value: it never panics, answers only
//! 401/400 for garbage, and every challenge it writes parses strictly.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use mcp_auth_core::testkit::parse_challenge;
use mcp_auth_core::token::is_b64token;
use mcp_auth_core::{
    AccessToken, AuthProvider, InvalidToken, RemoteAuthProvider, TokenVerifier, VerifyError,
    async_trait,
};
use tower::{ServiceExt, service_fn};

/// Accepts exactly one token, refuses everything else as malformed.
struct OneToken;

fn accepted() -> AccessToken {
    AccessToken::builder()
        .subject("s")
        .audience("http://127.0.0.1:1/mcp")
        .scopes(["todo:read"])
        .build()
}

#[async_trait]
impl TokenVerifier for OneToken {
    async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        assert!(is_b64token(token.as_bytes()), "the layer passed on a non-b64token");
        if token == "valid-token" {
            Ok(accepted())
        } else {
            Err(InvalidToken::Malformed.into())
        }
    }

    // Asked first, with any bytes within the size limit: the cached path is fuzzed too.
    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        (token == b"valid-token").then(accepted)
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fn provider() -> &'static RemoteAuthProvider {
    static P: OnceLock<RemoteAuthProvider> = OnceLock::new();
    P.get_or_init(|| {
        RemoteAuthProvider::builder(Arc::new(OneToken))
            .resource_url("http://127.0.0.1:1/mcp")
            .authorization_server("https://idp.example")
            .initial_scopes(["todo:read"])
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = is_b64token(data);
    // Split the input into up to two header values (two headers = smuggling attempt).
    let mut values = data.splitn(2, |b| *b == b'\n');
    let mut req = Request::post("/mcp");
    for v in values.by_ref() {
        let Ok(value) = header::HeaderValue::from_bytes(v) else {
            return;
        };
        req = req.header(header::AUTHORIZATION, value);
    }
    let req = req.body(Body::empty()).unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(provider().layer())
        .service(service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
    let resp = runtime().block_on(svc.oneshot(req)).unwrap();
    let status = resp.status();
    assert!(
        [StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::BAD_REQUEST].contains(&status),
        "{status}"
    );
    if let Some(www) = resp.headers().get(header::WWW_AUTHENTICATE) {
        let text = www.to_str().expect("challenge is ASCII");
        assert!(parse_challenge(text).is_some(), "malformed challenge {text:?}");
    }
});
