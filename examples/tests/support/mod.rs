//! Starts the `todo` binary as a child process (killed on drop) and talks MCP to it over HTTP.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub mod dpop;

/// An HTTP client whose every request is bounded in time (10 s).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A running todo server.
pub struct Todo {
    child: Child,
    /// Lines printed at start-up, by label (`MCP endpoint`, `metadata`, tokens...).
    pub info: HashMap<String, String>,
}

impl Todo {
    /// Starts `todo --bind 127.0.0.1:0` with exactly `env` (plus PATH/HOME) and waits for
    /// "listening on".
    pub async fn start(env: &[(&str, &str)]) -> Todo {
        match Self::try_start(env).await {
            Ok(t) => t,
            Err(e) => panic!("todo did not start: {e}"),
        }
    }

    /// Starts on a given port (when the resource URL must be known before start-up).
    pub async fn start_on(port: u16, env: &[(&str, &str)]) -> Todo {
        match Self::try_start_bind(&format!("127.0.0.1:{port}"), env).await {
            Ok(t) => t,
            Err(e) => panic!("todo did not start: {e}"),
        }
    }

    /// Like [`Todo::start`], but returns the process's stderr when it exits instead.
    pub async fn try_start(env: &[(&str, &str)]) -> Result<Todo, String> {
        Self::try_start_bind("127.0.0.1:0", env).await
    }

    async fn try_start_bind(bind: &str, env: &[(&str, &str)]) -> Result<Todo, String> {
        Self::try_start_exe(env!("CARGO_BIN_EXE_todo"), &["--bind", bind], env).await
    }

    /// Starts another example binary the same way (it must print `label: value` lines and
    /// `listening on …`).
    pub async fn start_exe(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Todo {
        match Self::try_start_exe(exe, args, env).await {
            Ok(t) => t,
            Err(e) => panic!("{exe} did not start: {e}"),
        }
    }

    async fn try_start_exe(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Todo, String> {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut info = HashMap::new();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("listening on") {
                    return true;
                }
                if let Some((k, v)) = line.split_once(':') {
                    info.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !ready {
            let _ = child.start_kill();
            let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Todo { child, info })
    }

    /// The MCP endpoint URL.
    pub fn url(&self) -> String {
        self.info["MCP endpoint"].clone()
    }

    /// A printed value by its label's prefix.
    pub fn printed(&self, prefix: &str) -> String {
        self.info
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("nothing printed for {prefix}: {:?}", self.info.keys()))
    }

    /// The server's stderr (its log), once: later calls return `None`.
    pub fn take_stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Sends SIGTERM and waits (up to 5 s, half the serving helper's grace period) for the
    /// server to exit; returns whether it exited with success in time.
    pub async fn terminate(mut self) -> bool {
        let Some(pid) = self.child.id() else {
            return false;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !sent {
            return false;
        }
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => false,
        }
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// A 127.0.0.1 port for a server this test starts in a child process: below the kernel's
/// ephemeral range (so neither `bind(:0)` nor an outgoing connection takes it in the meantime),
/// never handed out twice in this test binary, and bindable when handed out.
pub fn free_port() -> u16 {
    mcp_auth_idp_harness::ports::free_port()
}

/// Runs `todo` expecting a start-up failure; returns its stderr.
pub async fn start_failure(env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_todo"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("todo did not exit")
        .expect("spawn todo");
    assert!(!out.status.success(), "todo started although it should not");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A minimal MCP client over HTTP (what an MCP client sends, nothing more).
pub struct Mcp {
    http: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
    dpop: Option<dpop::DpopKey>,
}

impl Mcp {
    /// A client for `url` with `token`.
    pub fn new(url: &str, token: &str) -> Mcp {
        Mcp {
            http: http(),
            url: url.to_owned(),
            token: token.to_owned(),
            session: None,
            dpop: None,
        }
    }

    /// A client that sends `token` on the DPoP scheme with a fresh proof of `key` per request.
    pub fn with_dpop(url: &str, token: &str, key: dpop::DpopKey) -> Mcp {
        let mut m = Mcp::new(url, token);
        m.dpop = Some(key);
        m
    }

    /// Sets the session id (to try another principal's or another binding's session).
    pub fn set_session(&mut self, session: Option<String>) {
        self.session = session;
    }

    /// Sends one JSON-RPC message; returns the HTTP response.
    pub async fn send(&self, body: serde_json::Value) -> reqwest::Response {
        let mut req = self.http.post(&self.url);
        req = match &self.dpop {
            None => req.bearer_auth(&self.token),
            Some(key) => req
                .header("authorization", format!("DPoP {}", self.token))
                .header("dpop", key.proof("POST", &self.url, Some(&self.token))),
        };
        let mut req = req
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req.json(&body).send().await.unwrap()
    }

    /// The session id the server gave at `initialize` (session mode).
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// `initialize` + `notifications/initialized`.
    pub async fn initialize(&mut self) {
        let resp = self
            .send(serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}))
            .await;
        assert_eq!(resp.status(), 200, "initialize");
        self.session = resp
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let _ = body_message(resp).await;
        let ack = self
            .send(serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert!(ack.status().is_success());
    }

    /// `tools/call`; returns the HTTP response.
    pub async fn call(&self, name: &str, args: serde_json::Value) -> reqwest::Response {
        self.send(
            serde_json::json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
            "params":{"name":name,"arguments":args}}),
        )
        .await
    }

    /// `tools/call` that must succeed: HTTP 200, a JSON-RPC result (not an error, not an
    /// unparseable body), `isError` not true, and a text content; returns that text.
    pub async fn call_ok(&self, name: &str, args: serde_json::Value) -> String {
        let resp = self.call(name, args).await;
        assert_eq!(resp.status(), 200, "{name}");
        let msg = body_message(resp).await;
        assert!(msg.get("error").is_none(), "{name}: {msg}");
        let result = msg
            .get("result")
            .unwrap_or_else(|| panic!("{name}: no JSON-RPC result in {msg}"));
        assert_ne!(
            result.get("isError"),
            Some(&serde_json::Value::Bool(true)),
            "{name}: the tool failed: {result}"
        );
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no text content in {result}"))
            .to_owned()
    }

    /// Replaces the token (step-up, refresh).
    pub fn set_token(&mut self, token: &str) {
        self.token = token.to_owned();
    }
}

/// The JSON-RPC message in a JSON or SSE response body.
pub async fn body_message(resp: reqwest::Response) -> serde_json::Value {
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    if ct.starts_with("text/event-stream") {
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|d| !d.is_empty())
            .unwrap_or("null")
            .to_owned();
        serde_json::from_str(&data).unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

/// GETs `url` and parses the body as JSON (panics, failing the test, on any error).
pub async fn get_json(url: &str) -> serde_json::Value {
    http().get(url).send().await.unwrap().json().await.unwrap()
}

/// The WWW-Authenticate header of a response.
pub fn www(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The protected-resource metadata URL of `resource` (RFC 9728 §3.1: the well-known segment goes
/// between the origin and the path).
pub fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource
        .split_once("://")
        .expect("an absolute resource URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    format!("{scheme}://{host}/.well-known/oauth-protected-resource{path}")
}

/// Asserts a refusal the way a client reads it: the status, a Bearer challenge with
/// `error="{error}"` and `error_description="{description}"` first, and `resource_metadata`
/// naming `resource`'s metadata. Returns the challenge.
pub fn assert_refused(
    resp: &reqwest::Response,
    status: u16,
    error: &str,
    description: &str,
    resource: &str,
) -> String {
    let challenge = www(resp);
    assert_eq!(resp.status(), status, "{challenge}");
    assert!(
        challenge.starts_with(&format!(
            "Bearer error=\"{error}\", error_description=\"{description}\""
        )),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{}\"", metadata_url(resource))),
        "{challenge}"
    );
    challenge
}

/// An issuer on 127.0.0.1: OIDC discovery and a JWKS (fresh keys), counting every request it
/// serves; stopped on drop. Tokens are minted with [`Issuer::mint`] in whatever shape a case
/// needs (no certified IdP issues an expired or identity-less token on demand).
pub struct Issuer {
    /// `http://127.0.0.1:<port>`, the `iss` of its tokens.
    pub origin: String,
    /// The key pair that signs its tokens.
    pub dev: mcp_auth_jwt::dev::DevIssuer,
    /// Requests served (discovery and JWKS).
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: tokio::task::JoinHandle<()>,
}

impl Issuer {
    /// Binds 127.0.0.1:0 and serves `/.well-known/openid-configuration` and `/jwks`.
    pub async fn start() -> Issuer {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let dev = mcp_auth_jwt::dev::DevIssuer::generate_fresh(origin.clone());
        let doc = serde_json::json!({"issuer": origin, "jwks_uri": format!("{origin}/jwks")});
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let app: axum::Router = dev
            .jwks_router("/jwks")
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc) }
                }),
            )
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(req)
                },
            ));
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Issuer {
            origin,
            dev,
            hits,
            handle,
        }
    }

    /// A token signed by this issuer.
    pub fn mint(&self, spec: mcp_auth_jwt::dev::TokenSpec) -> String {
        self.dev.mint(spec)
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
