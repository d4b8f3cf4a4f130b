//! `load`: a closed-loop HTTP/1.1 load generator (N keep-alive connections, each sending its
//! next request as soon as the previous answer is read) for a stateless MCP `tools/call`.
//!
//! With `--fresh`, every request carries the next token of the file (never one used before);
//! the run ends early, and says so, when the file runs out. Every answer is checked: a status
//! other than 200, or a JSON-RPC error, or a tool error counts as an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::args::{Args, loopback_url};

struct Target {
    authority: String,
    path: String,
    body: Bytes,
    tokens: Vec<HeaderValue>,
    fresh: bool,
    next: AtomicUsize,
    exhausted: AtomicBool,
}

impl Target {
    fn token(&self) -> Option<HeaderValue> {
        if self.fresh {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let t = self.tokens.get(i).cloned();
            if t.is_none() {
                self.exhausted.store(true, Ordering::Relaxed);
            }
            t
        } else {
            self.tokens.first().cloned()
        }
    }

    fn request(&self, token: HeaderValue) -> Result<Request<Full<Bytes>>, String> {
        Request::post(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::AUTHORIZATION, token)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Why an answer is not a successful tool result, if it is not.
fn failure(status: http::StatusCode, body: &[u8]) -> Option<String> {
    if status != http::StatusCode::OK
        || contains(body, b"\"error\"")
        || contains(body, b"\"isError\":true")
        || !contains(body, b"\"result\"")
    {
        Some(format!("{status}: {}", String::from_utf8_lossy(body)))
    } else {
        None
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on `sender`; `Ok(None)` when the answer is a success.
async fn once(
    sender: &mut Sender,
    target: &Target,
    token: HeaderValue,
) -> Result<Option<String>, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(target.request(token)?)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(failure(status, &body))
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    warmup: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

async fn connection(
    target: Arc<Target>,
    measure_from: Instant,
    until: Instant,
) -> Result<Tally, String> {
    let mut sender = connect(&target.authority).await?;
    let mut tally = Tally::default();
    loop {
        if Instant::now() >= until {
            break;
        }
        let Some(token) = target.token() else { break };
        let start = Instant::now();
        let outcome = once(&mut sender, &target, token).await;
        let done = Instant::now();
        if start < measure_from {
            if let Err(e) = &outcome {
                return Err(e.clone());
            }
            tally.warmup += 1;
            continue;
        }
        tally.last_done = Some(done);
        match outcome {
            Ok(None) => {
                let us = done.duration_since(start).as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Ok(Some(why)) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(why);
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e);
                sender = connect(&target.authority).await?;
            }
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `load --url URL --tokens FILE [--fresh] [--connections N] [--duration S] [--warmup S]
/// [--tool NAME] [--threads N]`: prints a `RESULT key=value ...` line on stdout.
pub fn load(args: &Args) -> Result<(), String> {
    let url = args.req("url")?;
    loopback_url(url)?;
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let file = args.req("tokens")?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let tokens = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|t| {
            HeaderValue::from_maybe_shared(Bytes::from(format!("Bearer {t}")))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if tokens.is_empty() {
        return Err(format!("{file} holds no token"));
    }
    let connections: usize = args.num("connections", 16)?;
    let duration = Duration::from_secs_f64(args.num("duration", 10.0)?);
    let warmup = Duration::from_secs_f64(args.num("warmup", 2.0)?);
    let threads: usize = args.num("threads", 1)?;
    let tool = args.opt("tool").unwrap_or("list_todos");
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": {}}
    })
    .to_string();
    let target = Arc::new(Target {
        authority: authority.to_owned(),
        path,
        body: Bytes::from(body),
        tokens,
        fresh: args.flag("fresh"),
        next: AtomicUsize::new(0),
        exhausted: AtomicBool::new(false),
    });

    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())?;

    rt.block_on(async move {
        // One checked request first, so a misconfigured run fails loudly instead of measuring
        // error responses.
        let mut probe = connect(&target.authority).await?;
        let token = target.token().ok_or("no token")?;
        if let Some(why) = once(&mut probe, &target, token).await? {
            return Err(format!("probe request failed: {why}"));
        }
        drop(probe);

        let begin = Instant::now();
        let measure_from = begin + warmup;
        let until = measure_from + duration;
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(target.clone(), measure_from, until)))
            .collect();
        let mut all = Tally::default();
        for t in tasks {
            let tally = t.await.map_err(|e| e.to_string())??;
            all.latencies_us.extend(tally.latencies_us);
            all.errors += tally.errors;
            all.warmup += tally.warmup;
            if all.first_error.is_none() {
                all.first_error = tally.first_error;
            }
            all.last_done = all.last_done.max(tally.last_done);
        }
        let elapsed = all
            .last_done
            .map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(measure_from)
            })
            .as_secs_f64();
        let mut lat = all.latencies_us;
        lat.sort_unstable();
        let ok = lat.len() as u64;
        let rps = if elapsed > 0.0 {
            (ok + all.errors) as f64 / elapsed
        } else {
            0.0
        };
        let exhausted = target.exhausted.load(Ordering::Relaxed);
        if let Some(e) = &all.first_error {
            eprintln!("first error: {}", e.chars().take(400).collect::<String>());
        }
        if exhausted {
            eprintln!("fresh tokens ran out after {elapsed:.2} s: rates are over that time");
        }
        println!(
            "RESULT requests={} errors={} elapsed_s={elapsed:.3} rps={rps:.1} p50_us={} p90_us={} \
             p99_us={} max_us={} exhausted={} tokens_used={} all_requests={}",
            ok + all.errors,
            all.errors,
            percentile(&lat, 0.50),
            percentile(&lat, 0.90),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(0),
            u8::from(exhausted),
            target.next.load(Ordering::Relaxed).min(target.tokens.len()),
            ok + all.errors + all.warmup + 1,
        );
        Ok(())
    })
}
