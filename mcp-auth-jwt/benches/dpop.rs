//! DPoP proof validation cost per request: every rule of `Dpop::check_request` (parse, `typ`,
//! `alg`, `jwk`, signature with `DpopKeys`, claims, `htm`/`htu`, `iat`, `ath`, thumbprint, replay
//! cache), for ES256, EdDSA and RS256 proofs, next to the bare signature check that is its floor.
//! Target: under 60 µs for ES256. A counting global allocator (`stats_alloc`) reports the heap
//! allocations one check makes.
//!
//! Run: `cargo bench -p mcp-auth-jwt --bench dpop -- --measurement-time 3`

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use mcp_auth_core::dpop::{Dpop, DpopAlg, DpopKeyVerifier, jwk_thumbprint};
use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
use mcp_auth_jwt::DpopKeys;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const R: &str = "https://api.bench/mcp";
const TARGET_ES256_MICROS: f64 = 60.0;

struct Client {
    keys: DevIssuer,
    alg: DevAlg,
    jwk: Value,
    jkt: String,
}

impl Client {
    fn new(alg: DevAlg) -> Client {
        let keys = DevIssuer::generate_fresh("client");
        let jwk = keys.public_jwk(alg);
        let jkt = URL_SAFE_NO_PAD.encode(jwk_thumbprint(jwk.as_object().unwrap()).unwrap());
        Client {
            keys,
            alg,
            jwk,
            jkt,
        }
    }

    fn headers(&self, token: &str, jti: u64) -> HeaderMap {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"typ": "dpop+jwt", "alg": self.alg.name(), "jwk": self.jwk});
        let claims = json!({"jti": format!("bench-{jti}"), "htm": "POST", "htu": R, "iat": now,
            "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))});
        let proof =
            self.keys
                .sign_raw(self.alg, &header.to_string(), claims.to_string().as_bytes());
        let mut h = HeaderMap::new();
        h.insert("dpop", HeaderValue::from_str(&proof).unwrap());
        h
    }
}

fn dpop() -> Dpop {
    struct Never;
    #[async_trait::async_trait]
    impl mcp_auth_core::TokenVerifier for Never {
        async fn verify(
            &self,
            _: &str,
        ) -> Result<mcp_auth_core::AccessToken, mcp_auth_core::VerifyError> {
            Err(mcp_auth_core::InvalidToken::Malformed.into())
        }
    }
    let provider = RemoteAuthProvider::builder(Arc::new(Never))
        .resource_url(R)
        .authorization_server("https://idp.bench")
        .dpop_key_verifier(DpopKeys::shared())
        .dpop_algorithms(["ES256", "EdDSA", "RS256"])
        .dpop_replay_capacity(50_000_000)
        .build()
        .unwrap();
    provider.protected_resource().dpop().clone()
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dpop = dpop();
    let token = "eyJhbGciOiJFUzI1NiJ9.".to_owned() + &"a".repeat(700) + ".sig";
    let method = Method::POST;
    let mut jti = 0u64;
    let mut es256 = None;
    let mut group = c.benchmark_group("dpop");
    for alg in [DevAlg::ES256, DevAlg::EdDSA, DevAlg::RS256] {
        let client = Client::new(alg);
        // Allocations of one full check of a fresh proof from a key seen before (the steady
        // state of a client), outside any timing.
        let warm = client.headers(&token, u64::MAX - 10 - alg as u64);
        let warmed = rt.block_on(dpop.check_request(&warm, &method, "/mcp", &token, &client.jkt));
        assert_eq!(warmed, Ok(()));
        let headers = client.headers(&token, u64::MAX - alg as u64);
        let region = Region::new(GLOBAL);
        let ok = rt.block_on(dpop.check_request(&headers, &method, "/mcp", &token, &client.jkt));
        let allocs = region.change();
        assert_eq!(ok, Ok(()), "{alg:?}");
        println!(
            "dpop/{}: one proof check makes {} heap allocations ({} bytes)",
            alg.name(),
            allocs.allocations,
            allocs.bytes_allocated
        );

        group.bench_function(BenchmarkId::new("check_request", alg.name()), |b| {
            b.to_async(&rt).iter_batched(
                || {
                    jti += 1;
                    client.headers(&token, jti)
                },
                |headers| {
                    let dpop = &dpop;
                    let token = &token;
                    let jkt = &client.jkt;
                    let method = &method;
                    async move {
                        let r = dpop
                            .check_request(&headers, method, "/mcp", token, jkt)
                            .await;
                        assert!(r.is_ok());
                        black_box(r)
                    }
                },
                BatchSize::SmallInput,
            )
        });

        // The floor: the signature check alone (the client's key parsed once, as in
        // check_request).
        let headers = client.headers(&token, 0);
        let proof = headers["dpop"].to_str().unwrap().to_owned();
        let (input, sig) = proof.rsplit_once('.').unwrap();
        let dalg: DpopAlg = alg.name().parse().unwrap();
        let keys = DpopKeys::new();
        group.bench_function(BenchmarkId::new("signature_only", alg.name()), |b| {
            b.iter(|| assert!(keys.verify(dalg, black_box(&client.jwk), input.as_bytes(), sig)))
        });
        if alg == DevAlg::ES256 {
            es256 = Some(());
        }
    }
    group.finish();
    c.final_summary();
    if es256.is_some() {
        println!(
            "dpop: target for ES256 check_request: under {TARGET_ES256_MICROS} µs (see \
             dpop/check_request/ES256 above)"
        );
    }
}
