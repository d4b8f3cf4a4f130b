//! Load and soak client (run by `scripts/soak.sh`, not by the test command).
//!
//! Starts the `todo` binary (path in `--server`) on a free 127.0.0.1 port in JWT mode, trusting a
//! development key pair this process generates (so it can mint valid, expired and forged
//! tokens), then runs `--clients` concurrent clients for `--seconds`, mixing valid requests,
//! expired tokens and hostile requests. It samples the server's RSS from `/proc`, prints
//! requests, errors by class, p50/p99 latency and peak RSS, stops the server, and exits 1 if any
//! valid request failed, any expired or hostile request succeeded, or RSS kept growing.
//!
//! ```sh
//! load --server target/debug/todo --clients 16 --seconds 60
//! ```

use std::collections::BTreeMap;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use mcp_auth_security_suite::{READ, WRITE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Mutex;

struct Args {
    server: String,
    clients: usize,
    seconds: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        server: String::new(),
        clients: 16,
        seconds: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--server" => a.server = v,
            "--clients" => a.clients = v.parse().map_err(|e| format!("--clients: {e}"))?,
            "--seconds" => a.seconds = v.parse().map_err(|e| format!("--seconds: {e}"))?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.server.is_empty() {
        return Err("usage: load --server PATH/TO/todo [--clients N] [--seconds S]".into());
    }
    Ok(a)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The kinds of request the clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    Expired,
    Hostile,
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    /// (kind, outcome) -> count.
    classes: BTreeMap<(Kind, String), u64>,
    valid_failed: u64,
    bad_accepted: u64,
}

struct Tokens {
    valid: Vec<String>,
    read_only: String,
    expired: Vec<String>,
    hostile: Vec<(&'static str, String)>,
}

fn tokens(dev: &DevIssuer, resource: &str) -> Tokens {
    let spec = |sub: &str| {
        TokenSpec::new(sub)
            .client_id("load")
            .audience(resource)
            .scopes([READ, WRITE])
    };
    let valid: Vec<String> = (0..64)
        .map(|i| dev.mint(spec(&format!("user-{i}"))))
        .collect();
    let expired = (0..16)
        .map(|i| dev.mint(spec(&format!("late-{i}")).expires_at_unix(now() - 3600)))
        .collect();
    let v0 = valid[0].clone();
    let tampered = format!("{}AAAA", &v0[..v0.len() - 4]);
    let attacker = DevIssuer::generate_fresh(dev.issuer());
    let hostile = vec![
        ("garbage", "not-a-token-at-all".to_owned()),
        ("tampered signature", tampered),
        (
            "alg none",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_owned(),
        ),
        (
            "wrong audience",
            dev.mint(spec("x").audience("http://127.0.0.1:1/other")),
        ),
        ("attacker key", attacker.mint(spec("x"))),
        (
            "cnf bound",
            dev.mint(spec("x").claim("cnf", json!({"jkt": "abc"}))),
        ),
    ];
    Tokens {
        read_only: dev.mint(
            TokenSpec::new("reader")
                .client_id("load")
                .audience(resource)
                .scopes([READ]),
        ),
        valid,
        expired,
        hostile,
    }
}

fn call(name: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}})
}

async fn succeeded(resp: reqwest::Response) -> bool {
    if !resp.status().is_success() {
        return false;
    }
    let text = resp.text().await.unwrap_or_default();
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|d| !d.is_empty())
        .map(str::to_owned)
        .unwrap_or(text);
    let msg: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
    msg.get("result")
        .is_some_and(|r| r.get("isError") != Some(&Value::Bool(true)))
}

async fn client(
    id: usize,
    url: String,
    tokens: Arc<Tokens>,
    deadline: Instant,
    stats: Arc<Mutex<Stats>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let mut local = Stats::default();
    let mut i = id;
    while Instant::now() < deadline {
        i += 1;
        // 70 % valid, 10 % expired, 20 % hostile.
        let (kind, label, req) = match i % 10 {
            0 => {
                let t = &tokens.expired[i % tokens.expired.len()];
                (
                    Kind::Expired,
                    "expired",
                    http.post(&url)
                        .bearer_auth(t)
                        .json(&call("whoami", json!({}))),
                )
            }
            1 | 2 => {
                let h = (i / 10) % (tokens.hostile.len() + 3);
                let base = http.post(&url);
                match h {
                    0 => (
                        Kind::Hostile,
                        "read-only add_todo",
                        base.bearer_auth(&tokens.read_only)
                            .json(&call("add_todo", json!({"text": "x"}))),
                    ),
                    1 => (
                        Kind::Hostile,
                        "two headers",
                        base.bearer_auth(&tokens.valid[0])
                            .bearer_auth(&tokens.valid[1])
                            .json(&call("whoami", json!({}))),
                    ),
                    2 => (
                        Kind::Hostile,
                        "no token",
                        base.json(&call("whoami", json!({}))),
                    ),
                    n => {
                        let (label, t) = &tokens.hostile[n - 3];
                        (
                            Kind::Hostile,
                            *label,
                            base.bearer_auth(t).json(&call("whoami", json!({}))),
                        )
                    }
                }
            }
            _ => {
                let t = &tokens.valid[i % tokens.valid.len()];
                let body = if i.is_multiple_of(3) {
                    call("add_todo", json!({"text": "soak"}))
                } else {
                    call("whoami", json!({}))
                };
                (
                    Kind::Valid,
                    "valid",
                    http.post(&url).bearer_auth(t).json(&body),
                )
            }
        };
        let req = req
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        let start = Instant::now();
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let ok = succeeded(resp).await;
                if ok {
                    "ok".to_owned()
                } else {
                    status.to_string()
                }
            }
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "transport error".to_owned(),
        };
        local.latencies_us.push(start.elapsed().as_micros() as u64);
        let success = outcome == "ok";
        match kind {
            Kind::Valid if !success => local.valid_failed += 1,
            Kind::Expired | Kind::Hostile if success => local.bad_accepted += 1,
            _ => {}
        }
        *local
            .classes
            .entry((kind, format!("{label}: {outcome}")))
            .or_default() += 1;
    }
    let mut s = stats.lock().await;
    s.latencies_us.extend(local.latencies_us);
    for (k, v) in local.classes {
        *s.classes.entry(k).or_default() += v;
    }
    s.valid_failed += local.valid_failed;
    s.bad_accepted += local.bad_accepted;
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

async fn run(a: Args) -> Result<bool, String> {
    // The resource URL names the port before the server starts: one below the ephemeral range,
    // so nothing else takes it in between.
    let port = mcp_auth_idp_harness::ports::try_free_port().map_err(|e| e.to_string())?;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let issuer = "https://soak-issuer.test";
    let dev = DevIssuer::generate_fresh(issuer);
    let mut child = Command::new(&a.server)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .env("TODO_STATELESS", "1")
        .env("MCP_AUTH_PROVIDER", "jwt")
        .env("MCP_AUTH_RESOURCE_URL", &resource)
        .env("MCP_AUTH_JWT_ISSUER", issuer)
        .env("MCP_AUTH_JWT_PUBLIC_KEY", dev.jwks_json().to_string())
        .env("MCP_AUTH_JWT_ALGORITHMS", "RS256,ES256,EdDSA")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", a.server))?;
    let pid = child.id().ok_or("server has no pid")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("listening on") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !ready {
        return Err("the todo server did not start".into());
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let tokens = Arc::new(tokens(&dev, &resource));
    // Sanity: a valid call works before the clock starts.
    let probe = reqwest::Client::new()
        .post(&resource)
        .bearer_auth(&tokens.valid[0])
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&call("whoami", json!({})))
        .send()
        .await
        .map_err(|e| format!("probe: {e}"))?;
    if !succeeded(probe).await {
        return Err("a valid probe request failed before the run".into());
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let mut handles = Vec::new();
    for id in 0..a.clients {
        handles.push(tokio::spawn(client(
            id,
            resource.clone(),
            tokens.clone(),
            deadline,
            stats.clone(),
        )));
    }
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while Instant::now() < deadline {
        if let Some(kib) = rss_kib(pid) {
            samples.push((start.elapsed().as_secs_f64(), kib));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for h in handles {
        h.await.map_err(|e| e.to_string())?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;

    let mut s = stats.lock().await;
    s.latencies_us.sort_unstable();
    let total = s.latencies_us.len();
    let peak = samples.iter().map(|(_, k)| *k).max().unwrap_or(0);
    let window_max = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| *t >= from * a.seconds as f64 && *t < to * a.seconds as f64)
            .map(|(_, k)| *k)
            .max()
            .unwrap_or(0)
    };
    let mid = window_max(0.25, 0.5);
    let late = window_max(0.75, 1.01);
    let grew = late > mid + mid / 4 && late > mid + 16 * 1024;

    println!(
        "soak: {} clients for {:.1} s against the todo server (JWT mode, stateless)",
        a.clients, elapsed
    );
    println!("  requests: {total} ({:.0}/s)", total as f64 / elapsed);
    println!(
        "  latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&s.latencies_us, 0.5),
        percentile(&s.latencies_us, 0.99),
        percentile(&s.latencies_us, 1.0)
    );
    println!("  by class:");
    for ((kind, class), n) in &s.classes {
        println!("    {kind:?} {class}: {n}");
    }
    println!("  valid requests failed: {}", s.valid_failed);
    println!("  expired/hostile requests accepted: {}", s.bad_accepted);
    println!(
        "  server RSS: peak {:.1} MiB, max 25-50 % {:.1} MiB, max 75-100 % {:.1} MiB{}",
        peak as f64 / 1024.0,
        mid as f64 / 1024.0,
        late as f64 / 1024.0,
        if grew { " (GROWING)" } else { "" }
    );
    Ok(s.valid_failed == 0 && s.bad_accepted == 0 && !grew && total > 0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}");
            return ExitCode::from(2);
        }
    };
    match run(a).await {
        Ok(true) => {
            println!("soak: PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("soak: FAIL");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}
