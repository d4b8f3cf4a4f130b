//! Starts the real, OpenID Certified `oidc-provider` (node, `testing/idp/server.mjs`) on
//! 127.0.0.1 and drives it from Rust, so integration tests can verify tokens issued by an actual
//! OAuth 2.1 authorization server rather than by a stub.
//!
//! The IdP offers open Dynamic Client Registration, RFC 8707 resource indicators (one
//! [`ResourceSpec`] per protected resource: its scopes, token format, signing algorithm and token
//! lifetime), `client_credentials`, authorization code with PKCE and a headless login, refresh
//! tokens, RFC 7662 introspection and RFC 7009 revocation. Its keys (RS256, ES256, EdDSA) are
//! generated at every start with fresh `kid`s. All its state is in memory: a restart forgets
//! every client registration and token.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_auth_idp_harness::HarnessError> {
//! use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
//! let idp = TestIdp::start(vec![ResourceSpec::jwt("http://127.0.0.1:9/mcp", &["todo:read"], "RS256")]).await?;
//! let token = idp.client_credentials("http://127.0.0.1:9/mcp", "todo:read").await?;
//! assert!(token.access_token.starts_with("ey"));
//! # Ok(()) }
//! ```
//!
//! Node (20 or later) and npm must be on `PATH`; the npm dependencies are installed on first use
//! (`testing/idp/install.sh`, once across concurrently starting test binaries).
#![deny(missing_docs)]

pub mod browser;
pub mod logs;
pub mod metrics;
pub mod ports;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::OnceCell;
use url::Url;

/// Line prefix the IdP prints on stdout once it listens.
const READY_PREFIX: &str = "READY ";
/// How long each start attempt may take to print the ready line, attempt by attempt. The IdP
/// starts in well under a second on an idle machine. Fresh-clone CI runs saw a node process
/// print its import-time warning and then nothing (for 15, 30 and 60 s, as long as they were
/// allowed), while the other starts of the same runs came up normally: a stuck start, not a slow
/// one. So a silent attempt is killed and a fresh process is started; the bounds grow in case the
/// machine really is that slow. Each silent attempt's stage markers on stderr (`idp: keys`,
/// `idp: listening`, `idp: ready`) and its process state go into the error and into
/// [`RETRY_LOG`], which `scripts/test.sh` prints at the end of a run.
const START_TIMEOUTS: [Duration; 3] = [
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(40),
];
/// File (in the system's temporary directory) to which every silent start attempt is appended,
/// so a run that passed thanks to a retry still shows what the stuck process was doing.
pub const RETRY_LOG: &str = "mcp-auth-idp-start-retries.log";
/// IdPs of one test binary start one at a time. Tests run on parallel threads, and several node
/// processes loading modules and generating RSA keys at once on 2 shared cores each took longer
/// than all of them one after the other (a CI run saw one start take over 30 s that way).
static START_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
/// How long `npm ci` may take on a cold machine.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Timeout of every HTTP request to the IdP.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a restart retries binding the same port.
const RESTART_ATTEMPTS: u32 = 10;
/// Redirect hops allowed in the authorization-code flow before giving up.
const MAX_REDIRECTS: usize = 10;
/// How much of the IdP's stderr is kept for error messages (the tail).
const STDERR_KEEP: usize = 16 * 1024;
/// How much of an unexpected response body is kept in an error.
const BODY_KEEP: usize = 2 * 1024;

const M2M_CLIENT_ID: &str = "m2m-client";
const M2M_CLIENT_SECRET: &str = "m2m-client-secret-for-tests-only";
const RS_CLIENT_ID: &str = "resource-server";
const RS_CLIENT_SECRET: &str = "resource-server-secret-for-tests-only";
const REDIRECT_URI: &str = "http://127.0.0.1/cb";

/// Format of the access tokens the IdP issues for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// RFC 9068 JWT access tokens (`typ: at+jwt`), signed with the resource's algorithm.
    Jwt,
    /// Opaque reference tokens; the only kind `oidc-provider` will introspect.
    Opaque,
}

impl TokenFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Opaque => "opaque",
        }
    }
}

/// A protected resource (RFC 8707 resource indicator) the IdP issues tokens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    /// The resource indicator, also the tokens' `aud`.
    pub url: String,
    /// Scopes the resource accepts; tokens carry the requested subset.
    pub scopes: Vec<String>,
    /// Access-token format.
    pub format: TokenFormat,
    /// JWT signing algorithm: `"RS256"`, `"ES256"` or `"EdDSA"` (ignored for opaque tokens).
    pub alg: String,
    /// Access-token lifetime in seconds.
    pub ttl_secs: u64,
}

impl ResourceSpec {
    /// Default access-token lifetime of the constructors, in seconds.
    pub const DEFAULT_TTL_SECS: u64 = 300;

    /// A resource that gets JWT access tokens signed with `alg` (`RS256`, `ES256` or `EdDSA`),
    /// valid [`Self::DEFAULT_TTL_SECS`].
    pub fn jwt(url: &str, scopes: &[&str], alg: &str) -> Self {
        Self {
            url: url.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            format: TokenFormat::Jwt,
            alg: alg.to_owned(),
            ttl_secs: Self::DEFAULT_TTL_SECS,
        }
    }

    /// A resource that gets opaque access tokens (introspectable), valid
    /// [`Self::DEFAULT_TTL_SECS`].
    pub fn opaque(url: &str, scopes: &[&str]) -> Self {
        Self {
            format: TokenFormat::Opaque,
            ..Self::jwt(url, scopes, "RS256")
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "scopes": self.scopes,
            "format": self.format.as_str(),
            "alg": self.alg,
            "ttl": self.ttl_secs,
        })
    }
}

/// A successful token-endpoint response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    /// The access token (a JWT or an opaque string, per the resource's format).
    pub access_token: String,
    /// The refresh token, when the grant issues one (authorization code and refresh).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Lifetime of the access token in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// `Bearer`, or `DPoP` for a token bound to the client's key (RFC 9449 §5).
    #[serde(default)]
    pub token_type: Option<String>,
}

/// Everything that can go wrong while starting or talking to the test IdP.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// `npm ci` (through `testing/idp/install.sh`) failed or timed out.
    #[error("installing the test IdP's npm dependencies failed: {0}")]
    Install(String),
    /// A program (`node`, `bash`) could not be started.
    #[error("cannot run `{program}` (is it installed and on PATH?): {source}")]
    Spawn {
        /// The program that was run.
        program: &'static str,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The IdP did not print its ready line in time.
    #[error("the test IdP did not become ready within {timeout:?}; its stderr:\n{stderr}")]
    StartTimeout {
        /// How long the harness waited.
        timeout: Duration,
        /// The tail of the IdP's stderr.
        stderr: String,
    },
    /// The IdP exited (or closed stdout) before printing its ready line.
    #[error("the test IdP exited before it was ready ({status}); its stderr:\n{stderr}")]
    Exited {
        /// The exit status, as text.
        status: String,
        /// The tail of the IdP's stderr.
        stderr: String,
    },
    /// A local I/O error (lock file, pipes).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP request to the IdP failed (connection, timeout, undecodable body).
    #[error("HTTP request to the test IdP failed: {0}")]
    Http(#[from] reqwest::Error),
    /// An IdP endpoint answered with an unexpected status (an OAuth error is in `body`).
    #[error("{endpoint} answered {status}: {body}")]
    Endpoint {
        /// The endpoint path, e.g. `/token`.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The authorization endpoint redirected back to the client with an error (for example
    /// `access_denied` when the `login_hint` is `"refuse"`).
    #[error("authorization failed: {error} ({description})")]
    Authorization {
        /// The OAuth `error` code.
        error: String,
        /// The `error_description`, or an empty string.
        description: String,
    },
    /// The IdP's answer did not follow the protocol (missing redirect, wrong `state`, …).
    #[error("unexpected answer from the test IdP: {0}")]
    Protocol(String),
}

/// A running test IdP. Dropping it kills the node process.
#[derive(Debug)]
pub struct TestIdp {
    child: Child,
    port: u16,
    issuer: String,
    resources_json: String,
    http: reqwest::Client,
    stderr: Arc<Mutex<String>>,
    public_client: OnceCell<String>,
}

#[derive(Deserialize)]
struct Ready {
    port: u16,
}

#[derive(Deserialize)]
struct Stats {
    introspection: u64,
    #[serde(default)]
    exchange: u64,
}

#[derive(Deserialize)]
struct Registration {
    client_id: String,
}

impl TestIdp {
    /// Starts the IdP on a free 127.0.0.1 port, issuing tokens for `resources` (the first one is
    /// the default resource for requests without `resource`). Installs the npm dependencies on
    /// first use. A start that stays silent is killed and retried (three attempts, silent for
    /// 10, 20 and 40 s at most);
    /// fails with each attempt's stderr when none comes up (starts in one test binary are
    /// serialized, and the bound counts from this start's turn).
    pub async fn start(resources: Vec<ResourceSpec>) -> Result<TestIdp, HarnessError> {
        ensure_installed().await?;
        let resources_json =
            serde_json::Value::Array(resources.iter().map(ResourceSpec::to_json).collect())
                .to_string();
        let (child, port, stderr) = spawn(&resources_json, 0).await?;
        Ok(TestIdp {
            child,
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            resources_json,
            http: http_client(false)?,
            stderr,
            public_client: OnceCell::new(),
        })
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash); also the base of every endpoint.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port the IdP listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JWKS URI (`{issuer}/jwks`), publishing the public RS256, ES256 and EdDSA keys.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The token endpoint (`{issuer}/token`).
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// The RFC 7662 introspection endpoint (`{issuer}/token/introspection`).
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/token/introspection", self.issuer)
    }

    /// `(client_id, client_secret)` of the confidential resource-server client, allowed to
    /// introspect (and revoke) any token; it authenticates with `client_secret_basic` or
    /// `client_secret_post`.
    pub fn introspection_client(&self) -> (&str, &str) {
        (RS_CLIENT_ID, RS_CLIENT_SECRET)
    }

    /// `(client_id, client_secret)` of the confidential machine-to-machine client used by
    /// [`Self::client_credentials`] (allowed every resource).
    pub fn m2m_client(&self) -> (&str, &str) {
        (M2M_CLIENT_ID, M2M_CLIENT_SECRET)
    }

    /// A `client_credentials` token for `resource` with `scope` (space-separated; empty asks for
    /// no scope), issued to the m2m client. The token's `sub` and `client_id` are the m2m
    /// client's id.
    pub async fn client_credentials(
        &self,
        resource: &str,
        scope: &str,
    ) -> Result<TokenResponse, HarnessError> {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let request = self
            .http
            .post(self.token_endpoint())
            .basic_auth(M2M_CLIENT_ID, Some(M2M_CLIENT_SECRET))
            .form(&form);
        token_call(request, "/token").await
    }

    /// Like [`Self::client_credentials`], with a DPoP proof (RFC 9449 §5) for
    /// `POST <token endpoint>` in the `DPoP` header: the IdP binds the token to the proof's key
    /// (`cnf.jkt` in a JWT access token and in the introspection response of an opaque one) and
    /// answers `token_type: DPoP`.
    pub async fn client_credentials_dpop(
        &self,
        resource: &str,
        scope: &str,
        proof: &str,
    ) -> Result<TokenResponse, HarnessError> {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let request = self
            .http
            .post(self.token_endpoint())
            .basic_auth(M2M_CLIENT_ID, Some(M2M_CLIENT_SECRET))
            .header("dpop", proof)
            .form(&form);
        token_call(request, "/token").await
    }

    /// Runs the whole browser flow headlessly: registers (DCR, once per IdP process) a public
    /// client, sends an authorization request with PKCE S256, `resource`, `scope` (empty: the
    /// IdP grants the resource's scopes) and `login_hint` (the account logged in, whose id
    /// becomes `sub`; `"refuse"` makes the user refuse, giving
    /// [`HarnessError::Authorization`] with `access_denied`), follows the redirects with a
    /// fresh cookie jar, and exchanges the code for tokens (with `resource`). The response
    /// includes a refresh token.
    pub async fn authorization_code(
        &self,
        resource: &str,
        scope: &str,
        login_hint: &str,
    ) -> Result<TokenResponse, HarnessError> {
        let client_id = self.public_client_id().await?;
        let verifier = random_b64(32)?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_b64(16)?;

        let mut url = Url::parse(&format!("{}/auth", self.issuer))
            .map_err(|e| HarnessError::Protocol(format!("bad issuer URL: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", client_id)
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("resource", resource)
                .append_pair("state", &state);
            if !scope.is_empty() {
                query.append_pair("scope", scope);
            }
            if !login_hint.is_empty() {
                query.append_pair("login_hint", login_hint);
            }
        }

        let browser = http_client(true)?;
        let code = follow_to_redirect_uri(&browser, url, &state).await?;

        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client_id),
            ("code_verifier", verifier.as_str()),
            ("resource", resource),
        ];
        let request = self.http.post(self.token_endpoint()).form(&form);
        token_call(request, "/token").await
    }

    /// Exchanges a refresh token from [`Self::authorization_code`] for new tokens for
    /// `resource`. The IdP rotates refresh tokens of public clients: use the returned one next.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        resource: &str,
    ) -> Result<TokenResponse, HarnessError> {
        let client_id = self.public_client_id().await?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
            ("resource", resource),
        ];
        let request = self.http.post(self.token_endpoint()).form(&form);
        token_call(request, "/token").await
    }

    /// Revokes `token` (RFC 7009) as the resource-server client. Only opaque access tokens and
    /// refresh tokens can be revoked; the IdP answers 200 for unknown tokens too.
    pub async fn revoke(&self, token: &str) -> Result<(), HarnessError> {
        let response = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth(RS_CLIENT_ID, Some(RS_CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await?;
        expect_success(response, "/token/revocation").await?;
        Ok(())
    }

    /// Introspects `token` (RFC 7662) as the resource-server client and returns the JSON
    /// answer (`{"active": false}` for unknown, revoked or expired tokens). Counts in
    /// [`Self::introspection_count`].
    pub async fn introspect(&self, token: &str) -> Result<serde_json::Value, HarnessError> {
        let response = self
            .http
            .post(self.introspection_endpoint())
            .basic_auth(RS_CLIENT_ID, Some(RS_CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await?;
        let response = expect_success(response, "/token/introspection").await?;
        Ok(response.json().await?)
    }

    /// How many requests the introspection endpoint has received since this IdP process started
    /// (all callers, successful or not; reset by [`Self::restart_with_new_keys`]).
    pub async fn introspection_count(&self) -> Result<u64, HarnessError> {
        let response = self
            .http
            .get(format!("{}/test/stats", self.issuer))
            .send()
            .await?;
        let response = expect_success(response, "/test/stats").await?;
        Ok(response.json::<Stats>().await?.introspection)
    }

    /// How many tokens the IdP has issued by token exchange (RFC 8693) or on-behalf-of
    /// (jwt-bearer) since this IdP process started (the resource-server client of
    /// [`Self::introspection_client`] may use both grants).
    pub async fn exchange_count(&self) -> Result<u64, HarnessError> {
        let response = self
            .http
            .get(format!("{}/test/stats", self.issuer))
            .send()
            .await?;
        let response = expect_success(response, "/test/stats").await?;
        Ok(response.json::<Stats>().await?.exchange)
    }

    /// Stops the IdP process now (an "IdP down" drill: its port then refuses connections).
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        self.child.kill().await?;
        Ok(())
    }

    /// Stops the IdP and starts a new one on the same port with the same resources and freshly
    /// generated keys (new `kid`s). Everything else the IdP held in memory is gone: issued
    /// tokens, refresh tokens, registered clients, introspection count.
    pub async fn restart_with_new_keys(&mut self) -> Result<(), HarnessError> {
        self.child.kill().await?;
        let mut attempt = 0;
        let (child, _, stderr) = loop {
            attempt += 1;
            match spawn(&self.resources_json, self.port).await {
                Ok(started) => break started,
                Err(HarnessError::Exited { .. }) if attempt < RESTART_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.child = child;
        self.stderr = stderr;
        self.http = http_client(false)?;
        self.public_client = OnceCell::new();
        Ok(())
    }

    /// The tail of what the IdP printed on stderr so far (for diagnosing a failing test).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    async fn public_client_id(&self) -> Result<&str, HarnessError> {
        let id = self
            .public_client
            .get_or_try_init(|| async {
                let body = serde_json::json!({
                    "client_name": "mcp-auth harness public client",
                    "redirect_uris": [REDIRECT_URI],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                });
                let response = self
                    .http
                    .post(format!("{}/reg", self.issuer))
                    .json(&body)
                    .send()
                    .await?;
                let response = expect_success(response, "/reg").await?;
                Ok::<_, HarnessError>(response.json::<Registration>().await?.client_id)
            })
            .await?;
        Ok(id)
    }
}

/// The node project: `testing/idp` next to this crate.
fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("idp")
}

/// True when `node_modules` was installed from the current lockfile (install.sh's stamp).
fn installed(dir: &Path) -> bool {
    match (
        std::fs::read(dir.join("package-lock.json")),
        std::fs::read(dir.join("node_modules").join(".install-stamp")),
    ) {
        (Ok(lock), Ok(stamp)) => lock == stamp,
        _ => false,
    }
}

/// Runs `install.sh` unless the dependencies are already installed, under an exclusive file
/// lock so that test binaries starting in parallel install once.
async fn ensure_installed() -> Result<(), HarnessError> {
    let dir = idp_dir();
    if installed(&dir) {
        return Ok(());
    }
    let lock_path = dir.join(".install.lock");
    let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)?;
        fs4::FileExt::lock(&file)?;
        Ok(file)
    })
    .await
    .map_err(|e| HarnessError::Install(format!("lock task failed: {e}")))??;
    // Another process may have installed while this one waited for the lock.
    if !installed(&dir) {
        let mut command = Command::new("bash");
        command
            .arg("install.sh")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(INSTALL_TIMEOUT, command.output())
            .await
            .map_err(|_| HarnessError::Install(format!("timed out after {INSTALL_TIMEOUT:?}")))?
            .map_err(|source| HarnessError::Spawn {
                program: "bash",
                source,
            })?;
        if !output.status.success() {
            return Err(HarnessError::Install(format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
    }
    drop(lock);
    Ok(())
}

/// Starts `node server.mjs PORT` and waits for its ready line, one start at a time per process
/// ([`START_GATE`]). An attempt that stays silent for its bound ([`START_TIMEOUTS`]) is killed and
/// retried with a fresh process; the bounds count from this start's turn.
async fn spawn(
    resources_json: &str,
    port: u16,
) -> Result<(Child, u16, Arc<Mutex<String>>), HarnessError> {
    // The gate is never closed, so acquiring cannot fail; a failure would only mean no gating.
    let _turn = START_GATE.acquire().await.ok();
    let mut silent = String::new();
    for (attempt, bound) in (1..).zip(START_TIMEOUTS) {
        match spawn_once(resources_json, port, bound).await? {
            Ok(started) => {
                if attempt > 1 {
                    eprintln!("test IdP ready on attempt {attempt}");
                }
                return Ok(started);
            }
            Err(report) => {
                let line = format!("attempt {attempt}, silent for {bound:?}: {report}\n");
                eprint!("test IdP start {line}");
                log_retry(&line);
                silent.push_str(&line);
            }
        }
    }
    Err(HarnessError::StartTimeout {
        timeout: START_TIMEOUTS.iter().sum(),
        stderr: silent,
    })
}

/// Appends `line` to [`RETRY_LOG`]; best effort (a diagnostic, never a reason to fail a test).
fn log_retry(line: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::temp_dir().join(RETRY_LOG))
    {
        let _ = write!(f, "[{test}] {line}");
    }
}

/// One start attempt: `Ok(Ok(..))` once ready, `Ok(Err(report))` when the process stayed silent
/// for `bound` (it is killed; `report` holds its state and stderr), `Err` when it could not be
/// started or exited early.
async fn spawn_once(
    resources_json: &str,
    port: u16,
    bound: Duration,
) -> Result<Result<(Child, u16, Arc<Mutex<String>>), String>, HarnessError> {
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .arg(port.to_string())
        .current_dir(idp_dir())
        .env("IDP_RESOURCES", resources_json)
        .env("IDP_M2M_CLIENT_ID", M2M_CLIENT_ID)
        .env("IDP_M2M_CLIENT_SECRET", M2M_CLIENT_SECRET)
        .env("IDP_RS_CLIENT_ID", RS_CLIENT_ID)
        .env("IDP_RS_CLIENT_SECRET", RS_CLIENT_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
        program: "node",
        source,
    })?;

    let stderr = Arc::new(Mutex::new(String::new()));
    let stderr_task = child
        .stderr
        .take()
        .map(|pipe| tokio::spawn(collect_tail(pipe, Arc::clone(&stderr))));
    let Some(stdout) = child.stdout.take() else {
        return Err(HarnessError::Protocol("no stdout pipe".into()));
    };

    match tokio::time::timeout(bound, wait_ready(stdout)).await {
        Ok(Ok(ready_port)) => Ok(Ok((child, ready_port, stderr))),
        Ok(Err(())) => {
            let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .map(|s| s.map_or_else(|e| e.to_string(), |s| s.to_string()))
                .unwrap_or_else(|_| "stdout closed, still running".into());
            // Let the stderr reader drain what the process wrote before exiting.
            if let Some(task) = stderr_task {
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            }
            Err(HarnessError::Exited {
                status,
                stderr: tail(&stderr),
            })
        }
        Err(_) => {
            let state = child.id().map(process_state).unwrap_or_default();
            let _ = child.kill().await;
            Ok(Err(format!("{state}; stderr:\n{}", tail(&stderr))))
        }
    }
}

/// The kernel's view of a process (`State:` from `/proc/PID/status` and its wait channel), to tell
/// a stuck start (sleeping, and where) from a slow one (running) in a timeout report.
fn process_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let state = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map_or("unknown", str::trim);
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let mut out = format!("pid {pid} state {state}, wchan {wchan:?}");
    // Each thread of the process (node's main thread, libuv's pool, V8's workers) and where it
    // waits; the main thread's kernel stack too (`stack` is readable by root only, as on CI).
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let dir = task.path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let state = read("status")
                .lines()
                .find_map(|l| l.strip_prefix("State:").map(|s| s.trim().to_owned()))
                .unwrap_or_default();
            out.push_str(&format!(
                "\n  thread {} {:?} {state} wchan {:?}",
                task.file_name().to_string_lossy(),
                read("comm").trim(),
                read("wchan"),
            ));
            let stack = if task.file_name().to_string_lossy() == pid.to_string() {
                read("stack")
            } else {
                String::new()
            };
            if !stack.is_empty() {
                out.push_str(&format!("\n    {}", stack.trim().replace('\n', "\n    ")));
            }
        }
    }
    out
}

/// Reads stdout until the ready line and returns the port it announces; keeps draining stdout
/// afterwards so the IdP never blocks on a full pipe. `Err` when stdout ends first.
async fn wait_ready(stdout: ChildStdout) -> Result<u16, ()> {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(json) = line.strip_prefix(READY_PREFIX)
            && let Ok(ready) = serde_json::from_str::<Ready>(json)
        {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(ready.port);
        }
    }
    Err(())
}

/// Appends everything read from `pipe` to `buffer`, keeping its last [`STDERR_KEEP`] bytes.
async fn collect_tail(pipe: impl AsyncRead + Unpin, buffer: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(mut buffer) = buffer.lock() else {
            return;
        };
        buffer.push_str(&line);
        buffer.push('\n');
        if buffer.len() > STDERR_KEEP {
            let mut cut = buffer.len() - STDERR_KEEP;
            while !buffer.is_char_boundary(cut) {
                cut += 1;
            }
            buffer.drain(..cut);
        }
    }
}

fn tail(buffer: &Mutex<String>) -> String {
    buffer.lock().map(|s| s.clone()).unwrap_or_default()
}

fn http_client(cookies: bool) -> Result<reqwest::Client, HarnessError> {
    Ok(reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(cookies)
        .build()?)
}

fn random_b64(bytes: usize) -> Result<String, HarnessError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| HarnessError::Protocol(format!("no randomness available: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Follows redirects from the authorization request through the interaction routes until the
/// IdP redirects to [`REDIRECT_URI`]; returns the `code` (checking `state`).
async fn follow_to_redirect_uri(
    browser: &reqwest::Client,
    url: Url,
    state: &str,
) -> Result<String, HarnessError> {
    let callback = follow_to_callback(browser, url, state).await?;
    callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| HarnessError::Protocol("redirect without code".into()))
}

/// Like [`follow_to_redirect_uri`], but returns the whole callback URL (code, state and the RFC
/// 9207 `iss`), for clients that check the authorization response themselves.
async fn follow_to_callback(
    browser: &reqwest::Client,
    mut url: Url,
    state: &str,
) -> Result<Url, HarnessError> {
    for _ in 0..MAX_REDIRECTS {
        let response = browser.get(url.clone()).send().await?;
        if !response.status().is_redirection() {
            let endpoint = url.path().to_owned();
            let status = response.status().as_u16();
            return Err(HarnessError::Endpoint {
                endpoint,
                status,
                body: body_start(response).await,
            });
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| HarnessError::Protocol(format!("redirect without Location at {url}")))?;
        let next = url
            .join(location)
            .map_err(|e| HarnessError::Protocol(format!("bad Location {location:?}: {e}")))?;
        if next.as_str().starts_with(REDIRECT_URI) {
            let param = |name: &str| {
                next.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            if param("state").as_deref() != Some(state) {
                return Err(HarnessError::Protocol("state mismatch in redirect".into()));
            }
            if let Some(error) = param("error") {
                return Err(HarnessError::Authorization {
                    error,
                    description: param("error_description").unwrap_or_default(),
                });
            }
            if param("code").is_none() {
                return Err(HarnessError::Protocol("redirect without code".into()));
            }
            return Ok(next);
        }
        url = next;
    }
    Err(HarnessError::Protocol(format!(
        "more than {MAX_REDIRECTS} redirects in the authorization flow"
    )))
}

async fn token_call(
    request: reqwest::RequestBuilder,
    endpoint: &str,
) -> Result<TokenResponse, HarnessError> {
    let response = expect_success(request.send().await?, endpoint).await?;
    Ok(response.json().await?)
}

async fn expect_success(
    response: reqwest::Response,
    endpoint: &str,
) -> Result<reqwest::Response, HarnessError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    Err(HarnessError::Endpoint {
        endpoint: endpoint.to_owned(),
        status,
        body: body_start(response).await,
    })
}

async fn body_start(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let mut end = text.len().min(BODY_KEEP);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
