//! Verification cost: jsonwebtoken's `decode` (the floor) against `JwtVerifier` with a warm JWKS
//! and the token cache off (what a never-seen token costs), for RS256, ES256 and EdDSA, with the
//! ratio against the target of at most 0.85x the floor; a token-cache hit for a ~1 KB token; and
//! a flood of distinct tokens showing the caches stay within their bounds.
//!
//! Run: `cargo bench -p mcp-auth-jwt -- --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use mcp_auth_core::telemetry::{CACHE_LOOKUPS, JWKS_FETCHES};
use mcp_auth_idp_harness::metrics::MetricsCapture;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use mcp_auth_jwt::{JwtVerifier, TokenVerifier};
use serde_json::{Value, json};

/// Target for a never-seen token: at most this fraction of `jsonwebtoken::decode` with
/// the same key (the verifier keeps each public key parsed; jsonwebtoken parses it per call).
const FRESH_TARGET: f64 = 0.85;

const ISS: &str = "https://issuer.bench";
const AUD: &str = "https://api.bench/mcp";

struct Jwks {
    url: String,
    _handle: tokio::task::JoinHandle<()>,
}

async fn serve_jwks(dev: &DevIssuer) -> Jwks {
    let app = dev.jwks_router("/jwks");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Jwks {
        url,
        _handle: handle,
    }
}

fn floor_key(dev: &DevIssuer, alg: DevAlg) -> jsonwebtoken::DecodingKey {
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(dev.jwks_json()).unwrap();
    jsonwebtoken::DecodingKey::from_jwk(jwks.find(dev.kid(alg)).unwrap()).unwrap()
}

fn floor_validation(alg: DevAlg) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg.algorithm());
    v.set_audience(&[AUD]);
    v.set_issuer(&[ISS]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

fn token(dev: &DevIssuer, alg: DevAlg) -> String {
    dev.mint(
        TokenSpec::new("user-1")
            .scopes(["todo:read", "todo:write"])
            .audience(AUD)
            .client_id("client-1")
            .alg(alg),
    )
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Medians of `a` and `b` per call (ns) and of the per-round ratio `b / a`, over rounds that
/// alternate the two: on a shared machine a change of load then lands on both sides of a ratio.
/// Each closure runs the given number of calls.
fn interleaved(
    mut a: impl FnMut(usize),
    mut b: impl FnMut(usize),
    calls: usize,
) -> (f64, f64, f64) {
    let time = |f: &mut dyn FnMut(usize)| {
        let start = Instant::now();
        f(calls);
        start.elapsed().as_nanos() as f64 / calls as f64
    };
    let (mut sa, mut sb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..31 {
        let ta = time(&mut a);
        let tb = time(&mut b);
        sa.push(ta);
        sb.push(tb);
        ratios.push(tb / ta);
    }
    (median(sa), median(sb), median(ratios))
}

fn bench_verify(c: &mut Criterion, rt: &tokio::runtime::Runtime, dev: &DevIssuer, url: &str) {
    let verifier = rt.block_on(async {
        let v = JwtVerifier::builder()
            .jwks_uri(url)
            .issuer(ISS)
            .audience(AUD)
            .algorithms(DevAlg::ALL.map(DevAlg::algorithm))
            .token_cache(false, 0)
            .build()
            .unwrap();
        v.prefetch().await.unwrap();
        v
    });
    let mut group = c.benchmark_group("verify");
    for alg in DevAlg::ALL {
        let t = token(dev, alg);
        let key = floor_key(dev, alg);
        let validation = floor_validation(alg);
        jsonwebtoken::decode::<Value>(&t, &key, &validation).unwrap();
        group.bench_with_input(
            BenchmarkId::new("jsonwebtoken_decode", alg.name()),
            &t,
            |b, t| {
                b.iter(|| jsonwebtoken::decode::<Value>(black_box(t), &key, &validation).unwrap())
            },
        );
        group.bench_with_input(
            BenchmarkId::new("jwt_verifier_no_cache", alg.name()),
            &t,
            |b, t| {
                b.to_async(rt)
                    .iter(|| async { verifier.verify(black_box(t)).await.unwrap() })
            },
        );
        // Ratio printed for the closing note (criterion compares runs, not functions).
        // The verifier runs inside the runtime, as in a server and in criterion's `to_async`.
        let (floor, ours, ratio) = interleaved(
            |calls| {
                for _ in 0..calls {
                    black_box(jsonwebtoken::decode::<Value>(
                        black_box(&t),
                        &key,
                        &validation,
                    ))
                    .unwrap();
                }
            },
            |calls| {
                rt.block_on(async {
                    for _ in 0..calls {
                        black_box(verifier.verify(black_box(&t)).await).unwrap();
                    }
                })
            },
            100,
        );
        let verdict = if ratio <= FRESH_TARGET {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "ratio {}: JwtVerifier {:.1} µs / decode {:.1} µs = {ratio:.3} (never-seen token, \
             target <= {FRESH_TARGET}: {verdict})",
            alg.name(),
            ours / 1000.0,
            floor / 1000.0,
        );
    }
    group.finish();
}

fn bench_cache_hit(c: &mut Criterion, rt: &tokio::runtime::Runtime, dev: &DevIssuer, url: &str) {
    let verifier = rt.block_on(async {
        let v = JwtVerifier::builder()
            .jwks_uri(url)
            .issuer(ISS)
            .audience(AUD)
            .algorithms(DevAlg::ALL.map(DevAlg::algorithm))
            .build()
            .unwrap();
        v.prefetch().await.unwrap();
        v
    });
    // Pad to about 1 KB.
    let base = token(dev, DevAlg::ES256).len();
    let t = dev.mint(
        TokenSpec::new("user-1")
            .scopes(["todo:read", "todo:write"])
            .audience(AUD)
            .client_id("client-1")
            .alg(DevAlg::ES256)
            .claim("pad", json!("p".repeat((1024 - base) * 3 / 4))),
    );
    println!("cache-hit token length: {} bytes", t.len());
    rt.block_on(verifier.verify(&t)).unwrap();
    // What is measured below is a cache hit (checked once, outside the measurement).
    let m = MetricsCapture::new();
    {
        let _recording = m.install();
        rt.block_on(verifier.verify(&t)).unwrap();
    }
    assert_eq!(
        m.counter(CACHE_LOOKUPS, &[("cache", "jwt"), ("result", "hit")]),
        1
    );
    c.bench_function("verify/token_cache_hit_1KB", |b| {
        b.to_async(rt)
            .iter(|| async { verifier.verify(black_box(&t)).await.unwrap() })
    });
}

/// A flood of distinct valid tokens and of random kids: the caches stay within their bounds.
fn flood_report(rt: &tokio::runtime::Runtime, dev: &DevIssuer, url: &str) {
    let budget = 1024 * 1024;
    let verifier = rt.block_on(async {
        let v = JwtVerifier::builder()
            .jwks_uri(url)
            .issuer(ISS)
            .audience(AUD)
            .algorithms(DevAlg::ALL.map(DevAlg::algorithm))
            .token_cache(true, budget)
            .build()
            .unwrap();
        v.prefetch().await.unwrap();
        v
    });
    let n = 20_000;
    let m = MetricsCapture::new();
    let recording = m.install();
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let t = dev.mint(
                TokenSpec::new(format!("user-{i}"))
                    .audience(AUD)
                    .alg(DevAlg::EdDSA)
                    .scopes(["todo:read"]),
            );
            verifier.verify(&t).await.unwrap();
        }
        for i in 0..10_000u32 {
            let t = dev.mint(
                TokenSpec::new("x")
                    .audience(AUD)
                    .alg(DevAlg::EdDSA)
                    .kid(Some(&format!("random-{i}"))),
            );
            let _ = verifier.verify(&t).await;
        }
    });
    drop(recording);
    let usage = verifier.token_cache_usage().unwrap();
    println!(
        "flood: {n} distinct tokens + 10000 random kids in {:?}: token cache {} entries, {} of {} weighted bytes; JWKS keys held {} (fetches {})",
        start.elapsed(),
        usage.entries,
        usage.weighted_bytes,
        usage.max_bytes,
        verifier.jwks_key_count(),
        m.counter(JWKS_FETCHES, &[]),
    );
    assert!(usage.weighted_bytes <= usage.max_bytes);
    assert_eq!(verifier.jwks_key_count(), 3);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dev = DevIssuer::generate(ISS);
    let jwks = rt.block_on(serve_jwks(&dev));
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    flood_report(&rt, &dev, &jwks.url);
    bench_verify(&mut c, &rt, &dev, &jwks.url);
    bench_cache_hit(&mut c, &rt, &dev, &jwks.url);
    c.final_summary();
}
