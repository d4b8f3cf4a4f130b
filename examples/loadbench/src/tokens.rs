//! The token sources: a development issuer serving its JWKS, and the real test IdP.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use mcp_auth_examples::todo::{READ, WRITE};
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};

use crate::args::{Args, loopback_url};

/// Path of the issuer's JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Lifetime of every token written (longer than any run).
const TOKEN_TTL: Duration = Duration::from_secs(2 * 3600);

fn write_lines(path: &Path, lines: &[String]) -> Result<(), String> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    for l in lines {
        writeln!(out, "{l}").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    out.flush().map_err(|e| format!("{}: {e}", path.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Waits for SIGINT or SIGTERM (so that destructors, such as the IdP's `kill_on_drop`, run).
async fn until_signalled() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// `issuer`: mints `token.txt` (one RS256 token) and `fresh.txt` (`--fresh` distinct RS256
/// tokens, minted on `--threads` threads), then serves the JWKS at `http://BIND/.well-known/jwks.json`
/// and writes `issuer.ready` until signalled.
pub fn issuer(args: &Args) -> Result<(), String> {
    let bind = args.loopback("bind")?;
    let audience = args.req("audience")?.to_owned();
    loopback_url(&audience)?;
    let out = Path::new(args.req("out")?).to_owned();
    let fresh: usize = args.num("fresh", 0)?;
    let threads: usize = args.num("threads", 2)?;
    let issuer = format!("http://{bind}");
    let dev = DevIssuer::generate(issuer.clone());
    let spec = || {
        TokenSpec::new("bench-user")
            .client_id("bench-client")
            .audience(audience.clone())
            .scopes([READ, WRITE])
            .ttl(TOKEN_TTL)
    };
    write_lines(&out.join("token.txt"), &[dev.mint(spec())])?;

    let started = Instant::now();
    let per = fresh.div_ceil(threads.max(1));
    let mut all: Vec<String> = Vec::with_capacity(fresh);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|i| {
                let n = per.min(fresh.saturating_sub(i * per));
                let dev = dev.clone();
                let spec = &spec;
                s.spawn(move || (0..n).map(|_| dev.mint(spec())).collect::<Vec<_>>())
            })
            .collect();
        for h in handles {
            if let Ok(v) = h.join() {
                all.extend(v);
            }
        }
    });
    if all.len() != fresh {
        return Err(format!("minted {} of {fresh} tokens", all.len()));
    }
    write_lines(&out.join("fresh.txt"), &all)?;
    eprintln!(
        "issuer {issuer}: minted {fresh} fresh RS256 tokens in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| format!("bind {bind}: {e}"))?;
        let app = dev.jwks_router(JWKS_PATH);
        write_lines(&out.join("issuer.ready"), std::slice::from_ref(&issuer))?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = until_signalled().await;
            })
            .await
            .map_err(|e| e.to_string())
    })
}

/// `idp`: starts the test IdP with an opaque-token resource `--resource`, writes `idp.env`
/// (`IDP_ISSUER`, `IDP_INTROSPECT`, `IDP_CLIENT_ID`, `IDP_CLIENT_SECRET`) and `opaque.txt` (one
/// `client_credentials` access token), and keeps the IdP up until signalled.
pub fn idp(args: &Args) -> Result<(), String> {
    let resource = args.req("resource")?.to_owned();
    loopback_url(&resource)?;
    let out = Path::new(args.req("out")?).to_owned();
    runtime()?.block_on(async move {
        let spec = ResourceSpec {
            ttl_secs: TOKEN_TTL.as_secs(),
            ..ResourceSpec::opaque(&resource, &[READ, WRITE])
        };
        let idp = TestIdp::start(vec![spec])
            .await
            .map_err(|e| e.to_string())?;
        // `--count N` opaque tokens (default 1), one per line.
        let count: usize = args.num("count", 1)?;
        let mut tokens = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let token = idp
                .client_credentials(&resource, &format!("{READ} {WRITE}"))
                .await
                .map_err(|e| e.to_string())?;
            tokens.push(token.access_token);
        }
        let (id, secret) = idp.introspection_client();
        write_lines(&out.join("opaque.txt"), &tokens)?;
        write_lines(
            &out.join("idp.env"),
            &[
                format!("IDP_ISSUER={}", idp.issuer()),
                format!("IDP_INTROSPECT={}", idp.introspection_endpoint()),
                format!("IDP_CLIENT_ID={id}"),
                format!("IDP_CLIENT_SECRET={secret}"),
            ],
        )?;
        let signalled = until_signalled().await;
        drop(idp);
        signalled
    })
}
