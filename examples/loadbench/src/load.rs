//! `load`: a closed-loop HTTP/1.1 load generator (N keep-alive connections, each sending its
//! next request as soon as the previous answer is read) for an MCP `tools/call`, behaving like
//! an MCP client:
//!
//! - `Accept: application/json, text/event-stream` on every POST, and answers read whichever
//!   way the server sends them: a JSON body, or a server-sent event stream whose `data:` events
//!   carry the JSON-RPC messages (MCP streamable HTTP transport).
//! - With `--sessions`, every connection first does the handshake (`initialize`, then the
//!   `notifications/initialized` notification) and sends the `Mcp-Session-Id` it was given and
//!   the negotiated `MCP-Protocol-Version` on every call, as the SDK clients do. Without it,
//!   every call is a stateless request carrying `MCP-Protocol-Version`.
//! - `TCP_NODELAY` on its own socket, as reqwest (the Rust SDK's client), curl, Node's fetch
//!   (undici) and Python's asyncio (httpx under the Python SDK) all set by default
//!   (`--client-nodelay false` turns it off). This does not hide a server that leaves Nagle's
//!   algorithm on: the stall that causes is the server's small writes waiting for this side's
//!   delayed ACK, which `TCP_NODELAY` on the client does not change.
//!
//! With `--fresh`, every request carries the next token of the file (never one used before,
//! starting at `--offset`); the run ends early, and says so, when the file runs out. Every
//! answer is checked: a status other than 200, a JSON-RPC error, a tool error, an answer to
//! another request id, or no answer at all is a failure. Failures are not counted as
//! throughput; any failure makes the command exit non-zero after its `RESULT` line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::args::{Args, loopback_url};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

struct Target {
    authority: String,
    /// Where connections go (round robin, one address per connection): the URL's authority,
    /// or the replicas behind a load balancer (`--connect`), which all see the URL's `Host`.
    connect: Vec<String>,
    next_connect: AtomicUsize,
    /// Cycle through the tokens (each request takes the next, wrapping around).
    cycle: bool,
    path: String,
    tool: String,
    tokens: Vec<HeaderValue>,
    fresh: bool,
    sessions: bool,
    nodelay: bool,
    protocol_version: String,
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
        } else if self.cycle {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            self.tokens.get(i % self.tokens.len()).cloned()
        } else {
            self.tokens.first().cloned()
        }
    }

    fn post(
        &self,
        token: HeaderValue,
        session: &Session,
        body: String,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut req = Request::post(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::AUTHORIZATION, token)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(version) = &session.version {
            req = req.header(VERSION_HEADER, version.clone());
        }
        if let Some(id) = &session.id {
            req = req.header(SESSION_HEADER, id.clone());
        }
        req.body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())
    }
}

/// What a connection sends beside the token: the session id (session mode) and the protocol
/// version.
#[derive(Default)]
struct Session {
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
}

/// The JSON-RPC messages of an answer: the body itself when it is JSON, the data of each
/// `data:` event when it is an event stream (events without data, such as rmcp's priming event
/// with only `id` and `retry`, carry no message).
fn messages(content_type: &str, body: &[u8]) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "answer is not UTF-8".to_owned())?;
    if content_type.starts_with("application/json") {
        return serde_json::from_str(text)
            .map(|v| vec![v])
            .map_err(|e| format!("JSON answer does not parse: {e}"));
    }
    if !content_type.starts_with("text/event-stream") {
        return Err(format!("unexpected content type {content_type:?}"));
    }
    // Event stream (HTML Living Standard, server-sent events): lines end in CRLF, LF or CR;
    // an empty line ends an event; `data` fields of one event are joined with LF.
    let mut out = Vec::new();
    let mut data: Option<String> = None;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in text.split('\n').chain(std::iter::once("")) {
        if line.is_empty() {
            if let Some(d) = data.take()
                && !d.is_empty()
            {
                out.push(
                    serde_json::from_str(&d)
                        .map_err(|e| format!("event data does not parse: {e}: {d:?}"))?,
                );
            }
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        if field == "data" {
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    Ok(out)
}

/// The result of the answer to request `id`, or why there is none.
fn result_of(
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    id: u64,
) -> Result<Value, String> {
    let fail = |why: String| format!("{status}: {why}: {}", String::from_utf8_lossy(body));
    if status != StatusCode::OK {
        return Err(fail("status is not 200".into()));
    }
    let msgs = messages(content_type, body).map_err(fail)?;
    let answer = msgs
        .into_iter()
        .find(|m| m.get("id").and_then(Value::as_u64) == Some(id))
        .ok_or_else(|| fail(format!("no answer to request {id}")))?;
    if answer.get("error").is_some() {
        return Err(fail("JSON-RPC error".into()));
    }
    let result = answer
        .get("result")
        .cloned()
        .ok_or_else(|| fail("answer without result".into()))?;
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        return Err(fail("tool error".into()));
    }
    Ok(result)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

struct Conn {
    sender: Sender,
    session: Session,
    next_id: u64,
}

async fn connect(target: &Target) -> Result<Conn, String> {
    let i = target.next_connect.fetch_add(1, Ordering::Relaxed);
    let addr = target.connect[i % target.connect.len()].as_str();
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(target.nodelay)
        .map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn {
        sender,
        session: Session::default(),
        next_id: 1,
    })
}

/// Sends `req` and reads the whole answer: status, content type, body, session id header.
async fn exchange(
    sender: &mut Sender,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, String, Bytes, Option<HeaderValue>), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let session = resp.headers().get(SESSION_HEADER).cloned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, content_type, body, session))
}

/// A connection ready for calls: connected, and in session mode initialized.
async fn open(target: &Target, token: HeaderValue) -> Result<Conn, String> {
    let mut conn = connect(target).await?;
    if !target.sessions {
        conn.session.version =
            Some(HeaderValue::from_str(&target.protocol_version).map_err(|e| e.to_string())?);
        return Ok(conn);
    }
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": target.protocol_version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-auth-loadbench", "version": "1"}
        }
    })
    .to_string();
    let req = target.post(token.clone(), &conn.session, init)?;
    let (status, ct, body, session) = exchange(&mut conn.sender, req).await?;
    let result = result_of(status, &ct, &body, 0).map_err(|e| format!("initialize: {e}"))?;
    conn.session.id = Some(session.ok_or("initialize: no Mcp-Session-Id in the answer")?);
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or("initialize: no protocolVersion in the result")?;
    conn.session.version = Some(HeaderValue::from_str(version).map_err(|e| e.to_string())?);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned();
    let req = target.post(token, &conn.session, note)?;
    let (status, _, body, _) = exchange(&mut conn.sender, req).await?;
    if status != StatusCode::ACCEPTED {
        return Err(format!(
            "notifications/initialized: {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(conn)
}

/// One `tools/call` on `conn`: `Ok(())` when the answer is a successful tool result.
async fn call(conn: &mut Conn, target: &Target, token: HeaderValue) -> Result<(), String> {
    let id = conn.next_id;
    conn.next_id += 1;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{}","arguments":{{}}}}}}"#,
        target.tool
    );
    let req = target.post(token, &conn.session, body)?;
    let (status, ct, body, _) = exchange(&mut conn.sender, req).await?;
    result_of(status, &ct, &body, id).map(|_| ())
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    failures: u64,
    warmup: u64,
    first_failure: Option<String>,
    last_done: Option<Instant>,
}

async fn connection(
    target: Arc<Target>,
    measure_from: Instant,
    until: Instant,
) -> Result<Tally, String> {
    let first = target.token().ok_or("no token")?;
    let mut conn = open(&target, first).await?;
    let mut tally = Tally::default();
    loop {
        if Instant::now() >= until {
            break;
        }
        let Some(token) = target.token() else { break };
        let start = Instant::now();
        let outcome = call(&mut conn, &target, token.clone()).await;
        let done = Instant::now();
        if start < measure_from {
            // Nothing may fail, warm-up included.
            outcome?;
            tally.warmup += 1;
            continue;
        }
        tally.last_done = Some(done);
        match outcome {
            Ok(()) => {
                let us = done.duration_since(start).as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(e) => {
                tally.failures += 1;
                tally.first_failure.get_or_insert(e);
                if conn.sender.is_closed() {
                    conn = open(&target, token).await?;
                }
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

/// `load --url URL --tokens FILE [--fresh | --cycle] [--connect HOST:PORT,...] [--offset N] [--sessions] [--connections N]
/// [--duration S] [--warmup S] [--tool NAME] [--threads N] [--protocol-version V]
/// [--client-nodelay true|false]`: prints a `RESULT key=value ...` line on stdout; exits
/// non-zero when any request failed.
pub fn load(args: &Args) -> Result<(), String> {
    let url = args.req("url")?;
    loopback_url(url)?;
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let file = args.req("tokens")?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let offset: usize = args.num("offset", 0)?;
    let tokens = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .skip(offset)
        .map(|t| {
            HeaderValue::from_maybe_shared(Bytes::from(format!("Bearer {t}")))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if tokens.is_empty() {
        return Err(format!("{file} holds no token after the first {offset}"));
    }
    let connections: usize = args.num("connections", 16)?;
    let duration = Duration::from_secs_f64(args.num("duration", 10.0)?);
    let warmup = Duration::from_secs_f64(args.num("warmup", 2.0)?);
    let threads: usize = args.num("threads", 1)?;
    let tool = args.opt("tool").unwrap_or("list_todos");
    if !tool
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("--tool {tool:?}: letters, digits, _ and - only"));
    }
    let connect: Vec<String> = match args.opt("connect") {
        None => vec![authority.to_owned()],
        Some(list) => list
            .split(',')
            .map(|a| {
                let a = a.trim();
                loopback_url(&format!("http://{a}/")).map(|()| a.to_owned())
            })
            .collect::<Result<_, _>>()?,
    };
    let target = Arc::new(Target {
        authority: authority.to_owned(),
        connect,
        next_connect: AtomicUsize::new(0),
        cycle: args.flag("cycle"),
        path,
        tool: tool.to_owned(),
        tokens,
        fresh: args.flag("fresh"),
        sessions: args.flag("sessions"),
        nodelay: args
            .opt("client-nodelay")
            .is_none_or(|v| v != "false" && v != "0"),
        protocol_version: args
            .opt("protocol-version")
            .unwrap_or("2025-06-18")
            .to_owned(),
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

    let failures = rt.block_on(async move {
        // One checked call first, so a misconfigured run fails loudly instead of measuring
        // error responses.
        let token = target.token().ok_or("no token")?;
        let mut probe = open(&target, token).await?;
        let token = target.token().ok_or("no token")?;
        call(&mut probe, &target, token)
            .await
            .map_err(|why| format!("probe request failed: {why}"))?;
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
            all.failures += tally.failures;
            all.warmup += tally.warmup;
            if all.first_failure.is_none() {
                all.first_failure = tally.first_failure;
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
        // Only successful calls count as throughput.
        let rps = if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        };
        let exhausted = target.exhausted.load(Ordering::Relaxed);
        if let Some(e) = &all.first_failure {
            eprintln!(
                "{} failed requests; first: {}",
                all.failures,
                e.chars().take(400).collect::<String>()
            );
        }
        if exhausted {
            eprintln!("fresh tokens ran out after {elapsed:.2} s: rates are over that time");
        }
        println!(
            "RESULT requests={ok} failed={} elapsed_s={elapsed:.3} rps={rps:.1} p50_us={} \
             p90_us={} p99_us={} max_us={} exhausted={} tokens_used={} all_requests={}",
            all.failures,
            percentile(&lat, 0.50),
            percentile(&lat, 0.90),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(0),
            u8::from(exhausted),
            target.next.load(Ordering::Relaxed).min(target.tokens.len()),
            ok + all.failures + all.warmup + 1,
        );
        Ok::<u64, String>(all.failures)
    })?;
    if failures > 0 {
        return Err(format!("{failures} requests failed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_streams_give_the_data_of_each_event() {
        // rmcp's shape: a priming event with only id and retry, then the answer.
        let body = b"id: 0\nretry: 3000\ndata: \n\nevent: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}\n\n";
        let msgs = messages("text/event-stream", body).unwrap();
        assert_eq!(msgs.len(), 1);
        assert!(result_of(StatusCode::OK, "text/event-stream", body, 7).is_ok());
        // CRLF line ends, data split over two lines, no final blank line (end of stream).
        let body =
            b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":3,\"result\":{}}";
        assert!(result_of(StatusCode::OK, "text/event-stream", body, 3).is_ok());
    }

    #[test]
    fn failures_are_told_apart_from_results() {
        let sse = |json: &str| format!("event: message\ndata: {json}\n\n").into_bytes();
        let ok = sse(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#);
        assert!(result_of(StatusCode::OK, "text/event-stream", &ok, 1).is_ok());
        // Answer to another request.
        assert!(result_of(StatusCode::OK, "text/event-stream", &ok, 2).is_err());
        let err = sse(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"no"}}"#);
        assert!(result_of(StatusCode::OK, "text/event-stream", &err, 1).is_err());
        let tool_err = sse(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#);
        assert!(result_of(StatusCode::OK, "text/event-stream", &tool_err, 1).is_err());
        // A stream that ends before the answer.
        assert!(
            result_of(
                StatusCode::OK,
                "text/event-stream",
                b"id: 0\nretry: 5\ndata: \n\n",
                1
            )
            .is_err()
        );
        let json = br#"{"jsonrpc":"2.0","id":4,"result":{"content":[]}}"#;
        assert!(result_of(StatusCode::OK, "application/json", json, 4).is_ok());
        assert!(result_of(StatusCode::UNAUTHORIZED, "application/json", json, 4).is_err());
        assert!(result_of(StatusCode::OK, "text/html", json, 4).is_err());
    }
}
