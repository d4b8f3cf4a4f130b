//! MCP-aware authorization: which scopes (and claims) each tool, resource and prompt needs,
//! decided on the parsed JSON-RPC body before the MCP server runs, plus session binding.
//!
//! Stack [`McpPolicyLayer`] *inside* the bearer layer (authentication first, then the body is
//! read):
//!
//! ```
//! # use std::sync::Arc;
//! # use mcp_auth_core::{async_trait, AccessToken, InvalidToken, VerifyError};
//! # struct MyVerifier;
//! # #[async_trait]
//! # impl mcp_auth_core::TokenVerifier for MyVerifier {
//! #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
//! #         Err(InvalidToken::Malformed.into())
//! #     }
//! # }
//! use axum::{routing::post, Router};
//! use mcp_auth_core::policy::{McpPolicy, Rule};
//! use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
//!
//! let provider = RemoteAuthProvider::builder(Arc::new(MyVerifier))
//!     .resource_url("http://127.0.0.1:8000/mcp")
//!     .authorization_server("https://idp.example.com")
//!     .build()?;
//! let policy = McpPolicy::builder()
//!     .tool("list_todos", Rule::scopes(["todo:read"]))
//!     .tool("add_todo", Rule::scopes(["todo:write"]))
//!     .tool("whoami", Rule::authenticated())
//!     .resource("todo://tenant/acme/*", Rule::scopes(["todo:read"]).require_claim("org", "acme"))
//!     .default_deny(true)
//!     .filter_tools_list(true)
//!     .build(&provider)?;
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "rmcp goes here" }))
//!     .layer(policy.layer())     // inner: sees the AccessToken, reads the body
//!     .layer(provider.layer())   // outer: authenticates first
//!     .merge(provider.routes());
//! # Ok::<(), mcp_auth_core::BuildError>(())
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use tower_layer::Layer;
use tower_service::Service;

use crate::challenge::{self, INSUFFICIENT_SCOPE_DESCRIPTION, POLICY_DENIED_DESCRIPTION};
use crate::scope::{ScopeHierarchy, ScopeSet};
use crate::{AccessToken, AuthProvider, BuildError, Principal, Setting};

const POLICY: Setting = Setting::new("policy", "policy");

/// rmcp's default request body limit (4 MiB): the policy reads no more than rmcp would.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The MCP session header.
pub const SESSION_HEADER: &str = "mcp-session-id";

type Predicate = Arc<dyn Fn(&AccessToken) -> bool + Send + Sync>;

/// What one operation needs: scopes (honouring the scope hierarchy) and optionally a claims
/// predicate (tenant, organisation, subject or client allowlist).
///
/// ```
/// use mcp_auth_core::policy::Rule;
/// let rule = Rule::scopes(["todo:write"])
///     .require_claim("tenant", "acme")
///     .allow_clients(["cli-app", "web-app"]);
/// # let _ = rule;
/// ```
#[derive(Clone, Default)]
pub struct Rule {
    scopes: Vec<String>,
    predicates: Vec<Predicate>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("scopes", &self.scopes)
            .field("predicates", &self.predicates.len())
            .finish()
    }
}

impl Rule {
    /// Any valid token may perform the operation.
    pub fn authenticated() -> Rule {
        Rule::default()
    }

    /// The operation needs every one of `scopes`.
    pub fn scopes<I, S>(scopes: I) -> Rule
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Rule {
            scopes: scopes.into_iter().map(Into::into).collect(),
            predicates: Vec::new(),
        }
    }

    /// Also requires `predicate(token)` to hold.
    pub fn claims<F>(mut self, predicate: F) -> Rule
    where
        F: Fn(&AccessToken) -> bool + Send + Sync + 'static,
    {
        self.predicates.push(Arc::new(predicate));
        self
    }

    /// Also requires the claim `name` to equal the string `value` (a tenant or organisation id).
    pub fn require_claim(self, name: impl Into<String>, value: impl Into<String>) -> Rule {
        let (name, value) = (name.into(), value.into());
        self.claims(move |t| t.claim(&name).and_then(|v| v.as_str()) == Some(value.as_str()))
    }

    /// Also requires the subject to be one of `subjects`.
    pub fn allow_subjects<I, S>(self, subjects: I) -> Rule
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list: Vec<String> = subjects.into_iter().map(Into::into).collect();
        self.claims(move |t| t.subject().is_some_and(|s| list.iter().any(|x| x == s)))
    }

    /// Also requires the client id to be one of `clients`.
    pub fn allow_clients<I, S>(self, clients: I) -> Rule
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list: Vec<String> = clients.into_iter().map(Into::into).collect();
        self.claims(move |t| t.client_id().is_some_and(|s| list.iter().any(|x| x == s)))
    }
}

#[derive(Clone)]
struct CompiledRule {
    scopes: ScopeSet,
    /// Global required scopes plus the rule's: what the 403 challenge names.
    challenge_scope: String,
    predicates: Vec<Predicate>,
}

/// The operation a JSON-RPC message asks for, as far as the policy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `tools/call` of the named tool.
    ToolCall(String),
    /// `resources/read` of the URI.
    ResourceRead(String),
    /// `prompts/get` of the named prompt.
    PromptGet(String),
    /// `tools/list`.
    ToolsList,
    /// `initialize`.
    Initialize,
    /// Anything else (notifications, responses, other methods): no per-operation rule.
    Other,
}

/// Why a body could not be parsed for the policy check (answered 400 with a JSON-RPC parse
/// error; the request never reaches the server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not a single JSON object (a batch array, a scalar, or invalid JSON).
    #[error("the body is not a single JSON-RPC object")]
    NotAnObject,
    /// Invalid JSON, a duplicate key, or a field of the wrong type.
    #[error("the body is not valid JSON-RPC")]
    Invalid,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct NameParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct UriParams<'a> {
    #[serde(borrow)]
    uri: Cow<'a, str>,
}

fn starts_with_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// Parses a POST body the way the policy sees it: one JSON object (arrays refused), duplicate keys
/// of the envelope and of the deciding parameters refused, `params` of deciding methods an object.
pub fn parse_operation(body: &[u8]) -> Result<Operation, ParseError> {
    if !starts_with_object(body) {
        return Err(ParseError::NotAnObject);
    }
    let env: Envelope<'_> = serde_json::from_slice(body).map_err(|_| ParseError::Invalid)?;
    let Some(method) = env.method else {
        return Ok(Operation::Other);
    };
    let params = || -> Result<&str, ParseError> {
        let raw = env.params.ok_or(ParseError::Invalid)?.get();
        if starts_with_object(raw.as_bytes()) {
            Ok(raw)
        } else {
            Err(ParseError::Invalid)
        }
    };
    Ok(match method.as_ref() {
        "tools/call" => {
            let p: NameParams<'_> =
                serde_json::from_str(params()?).map_err(|_| ParseError::Invalid)?;
            Operation::ToolCall(p.name.into_owned())
        }
        "prompts/get" => {
            let p: NameParams<'_> =
                serde_json::from_str(params()?).map_err(|_| ParseError::Invalid)?;
            Operation::PromptGet(p.name.into_owned())
        }
        "resources/read" => {
            let p: UriParams<'_> =
                serde_json::from_str(params()?).map_err(|_| ParseError::Invalid)?;
            Operation::ResourceRead(p.uri.into_owned())
        }
        "tools/list" => Operation::ToolsList,
        "initialize" => Operation::Initialize,
        _ => Operation::Other,
    })
}

/// Matches `text` against a pattern where `*` stands for any run of characters.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The policy: rules per tool, resource pattern and prompt. Build with [`McpPolicy::builder`].
#[derive(Clone)]
pub struct McpPolicy {
    inner: Arc<PolicyInner>,
}

struct PolicyInner {
    tools: HashMap<String, CompiledRule>,
    resources: Vec<(String, CompiledRule)>,
    prompts: HashMap<String, CompiledRule>,
    default_deny: bool,
    filter_tools_list: bool,
    max_body: usize,
    metadata_url: String,
    global_scope: String,
    hierarchy: ScopeHierarchy,
    sessions: Option<moka::sync::Cache<Arc<str>, Arc<Principal>>>,
}

/// Builder for [`McpPolicy`].
#[must_use]
#[derive(Default)]
pub struct McpPolicyBuilder {
    tools: Vec<(String, Rule)>,
    resources: Vec<(String, Rule)>,
    prompts: Vec<(String, Rule)>,
    default_deny: bool,
    filter_tools_list: bool,
    max_body: Option<usize>,
    session_binding: Option<bool>,
    session_capacity: Option<u64>,
    session_idle: Option<Duration>,
}

impl McpPolicyBuilder {
    /// The rule for `tools/call` of `name`.
    pub fn tool(mut self, name: impl Into<String>, rule: Rule) -> Self {
        self.tools.push((name.into(), rule));
        self
    }

    /// The rule for `resources/read` of URIs matching `pattern` (`*` is a wildcard; the first
    /// matching pattern wins).
    pub fn resource(mut self, pattern: impl Into<String>, rule: Rule) -> Self {
        self.resources.push((pattern.into(), rule));
        self
    }

    /// The rule for `prompts/get` of `name`.
    pub fn prompt(mut self, name: impl Into<String>, rule: Rule) -> Self {
        self.prompts.push((name.into(), rule));
        self
    }

    /// Refuse (403) tool calls, resource reads and prompt gets that have no rule.
    pub fn default_deny(mut self, on: bool) -> Self {
        self.default_deny = on;
        self
    }

    /// Remove from `tools/list` results the tools the caller may not call.
    pub fn filter_tools_list(mut self, on: bool) -> Self {
        self.filter_tools_list = on;
        self
    }

    /// The body limit (default rmcp's, 4 MiB): set it to the value given to rmcp's
    /// `max_request_body_bytes`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// Bind `Mcp-Session-Id` sessions to the principal that created them (default on).
    pub fn session_binding(mut self, on: bool) -> Self {
        self.session_binding = Some(on);
        self
    }

    /// How many session bindings are kept (default 100,000) and for how long unused (default
    /// 8 h). A session whose binding was dropped must be re-initialized.
    pub fn session_limits(mut self, capacity: u64, idle: Duration) -> Self {
        self.session_capacity = Some(capacity);
        self.session_idle = Some(idle);
        self
    }

    /// Validates the rules against `provider` (scopes, the metadata URL for challenges).
    pub fn build<P: AuthProvider + ?Sized>(self, provider: &P) -> Result<McpPolicy, BuildError> {
        let pr = provider.protected_resource();
        let global = pr.required_scopes().clone();
        let compile = |what: &str, rule: Rule| -> Result<CompiledRule, BuildError> {
            let scopes = ScopeSet::try_from_iter(rule.scopes)
                .map_err(|e| BuildError::invalid(POLICY, format!("policy for {what}: {e}")))?;
            let mut all = global.clone();
            all.extend_from(&scopes);
            Ok(CompiledRule {
                scopes,
                challenge_scope: pr.challenge_scopes(&all),
                predicates: rule.predicates,
            })
        };
        let mut tools = HashMap::new();
        for (name, rule) in self.tools {
            let compiled = compile(&format!("tool {name}"), rule)?;
            if tools.insert(name.clone(), compiled).is_some() {
                return Err(BuildError::invalid(
                    POLICY,
                    format!("tool {name} listed twice"),
                ));
            }
        }
        let mut prompts = HashMap::new();
        for (name, rule) in self.prompts {
            let compiled = compile(&format!("prompt {name}"), rule)?;
            if prompts.insert(name.clone(), compiled).is_some() {
                return Err(BuildError::invalid(
                    POLICY,
                    format!("prompt {name} listed twice"),
                ));
            }
        }
        let mut resources = Vec::new();
        for (pattern, rule) in self.resources {
            let compiled = compile(&format!("resource {pattern}"), rule)?;
            resources.push((pattern, compiled));
        }
        let sessions = self.session_binding.unwrap_or(true).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(self.session_capacity.unwrap_or(100_000))
                .time_to_idle(self.session_idle.unwrap_or(Duration::from_secs(8 * 3600)))
                .build()
        });
        Ok(McpPolicy {
            inner: Arc::new(PolicyInner {
                tools,
                resources,
                prompts,
                default_deny: self.default_deny,
                filter_tools_list: self.filter_tools_list,
                max_body: self.max_body.unwrap_or(DEFAULT_MAX_BODY_BYTES),
                metadata_url: pr.resource().metadata_url(),
                global_scope: pr.challenge_scopes(&global),
                hierarchy: pr.hierarchy().clone(),
                sessions,
            }),
        })
    }
}

/// The outcome of a policy decision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Refused: the token lacks scopes. `scope` names every scope the operation needs.
    MissingScope {
        /// The `scope` value of the challenge.
        scope: String,
    },
    /// Refused by a claims predicate, or by default-deny.
    Denied {
        /// The `scope` value of the challenge.
        scope: String,
    },
}

impl Decision {
    /// Whether the operation may go on.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

impl McpPolicy {
    /// Starts a builder.
    pub fn builder() -> McpPolicyBuilder {
        McpPolicyBuilder::default()
    }

    /// The scope hierarchy the policy honours (the provider's).
    pub fn hierarchy(&self) -> &ScopeHierarchy {
        &self.inner.hierarchy
    }

    /// The tower layer enforcing this policy (stack it inside the bearer layer).
    pub fn layer(&self) -> McpPolicyLayer {
        McpPolicyLayer {
            policy: self.clone(),
        }
    }

    fn rule_for(&self, op: &Operation) -> Option<Option<&CompiledRule>> {
        let i = &self.inner;
        match op {
            Operation::ToolCall(name) => Some(i.tools.get(name)),
            Operation::PromptGet(name) => Some(i.prompts.get(name)),
            Operation::ResourceRead(uri) => Some(
                i.resources
                    .iter()
                    .find(|(p, _)| wildcard_match(p, uri))
                    .map(|(_, r)| r),
            ),
            _ => None,
        }
    }

    /// Decides whether `token` may perform `op`.
    pub fn decide(&self, token: &AccessToken, op: &Operation) -> Decision {
        match self.rule_for(op) {
            None => Decision::Allow,
            Some(None) if self.inner.default_deny => Decision::Denied {
                scope: self.inner.global_scope.clone(),
            },
            Some(None) => Decision::Allow,
            Some(Some(rule)) => self.check_rule(token, rule),
        }
    }

    fn check_rule(&self, token: &AccessToken, rule: &CompiledRule) -> Decision {
        if !self
            .inner
            .hierarchy
            .satisfies_all(token.scopes(), &rule.scopes)
        {
            return Decision::MissingScope {
                scope: rule.challenge_scope.clone(),
            };
        }
        if !rule.predicates.iter().all(|p| p(token)) {
            return Decision::Denied {
                scope: rule.challenge_scope.clone(),
            };
        }
        Decision::Allow
    }

    /// Whether `token` may call the tool `name` (what `tools/list` filtering uses).
    pub fn may_call_tool(&self, token: &AccessToken, name: &str) -> bool {
        self.decide(token, &Operation::ToolCall(name.to_owned()))
            .is_allowed()
    }

    /// The tool names among `tools` that have no rule: log them at start-up, or fail in
    /// default-deny deployments.
    pub fn tools_without_rule<'a, I>(&self, tools: I) -> Vec<String>
    where
        I: IntoIterator<Item = &'a str>,
    {
        tools
            .into_iter()
            .filter(|t| !self.inner.tools.contains_key(*t))
            .map(str::to_owned)
            .collect()
    }

    /// Logs (warn) every tool of `tools` without a rule, and returns them.
    pub fn report_tools_without_rule<'a, I>(&self, tools: I) -> Vec<String>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let missing = self.tools_without_rule(tools);
        if !missing.is_empty() {
            let mode = if self.inner.default_deny {
                "they are refused (default-deny)"
            } else {
                "any valid token may call them"
            };
            tracing::warn!(tools = ?missing, "tools without a policy rule: {mode}");
        }
        missing
    }

    fn forbidden(&self, decision: &Decision) -> Response<Body> {
        let (description, scope) = match decision {
            Decision::MissingScope { scope } => (INSUFFICIENT_SCOPE_DESCRIPTION, scope.as_str()),
            Decision::Denied { scope } => (POLICY_DENIED_DESCRIPTION, scope.as_str()),
            Decision::Allow => (POLICY_DENIED_DESCRIPTION, ""),
        };
        challenge::insufficient_scope(description, scope, &self.inner.metadata_url)
    }

    fn bound_principal(&self, session: &str) -> Option<Option<Arc<Principal>>> {
        let sessions = self.inner.sessions.as_ref()?;
        Some(sessions.get(session))
    }
}

/// Extension the policy layer puts into requests it let through, so in-tool checks can re-run
/// the same policy (defence in depth).
#[derive(Clone)]
pub struct PolicyHandle(pub McpPolicy);

/// The tower layer of an [`McpPolicy`].
#[derive(Clone)]
pub struct McpPolicyLayer {
    policy: McpPolicy,
}

impl<S> Layer<S> for McpPolicyLayer {
    type Service = McpPolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpPolicyService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`McpPolicyLayer`].
#[derive(Clone)]
pub struct McpPolicyService<S> {
    inner: S,
    policy: McpPolicy,
}

fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn session_not_found() -> Response<Body> {
    jsonrpc_error(StatusCode::NOT_FOUND, -32001, "Session not found")
}

fn session_id(headers: &http::HeaderMap) -> Result<Option<Arc<str>>, ()> {
    let mut all = headers.get_all(SESSION_HEADER).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(());
    }
    match first {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(Arc::from(s))).map_err(|_| ()),
    }
}

impl<S, B, ResBody> Service<Request<B>> for McpPolicyService<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if parts.method == Method::OPTIONS
                && parts
                    .headers
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            {
                return Ok(inner
                    .call(Request::from_parts(parts, Body::new(body)))
                    .await?
                    .map(Body::new));
            }
            let Some(token) = parts.extensions.get::<AccessToken>().cloned() else {
                tracing::error!(
                    "McpPolicyLayer found no AccessToken: stack it inside the bearer layer"
                );
                return Ok(challenge::server_error());
            };

            // Session binding: a session belongs to the principal that created it.
            let session = match session_id(&parts.headers) {
                Ok(s) => s,
                Err(()) => {
                    return Ok(jsonrpc_error(
                        StatusCode::BAD_REQUEST,
                        -32600,
                        "Invalid Mcp-Session-Id header",
                    ));
                }
            };
            // Only session binding needs the principal (three string copies): skip it otherwise.
            let principal = policy
                .inner
                .sessions
                .as_ref()
                .and_then(|_| token.principal().cloned());
            if let Some(id) = &session {
                match policy.bound_principal(id) {
                    Some(Some(owner)) if Some(&*owner) != principal.as_ref() => {
                        tracing::warn!(
                            reason = "session_principal_mismatch",
                            "request with another principal's session id refused"
                        );
                        return Ok(session_not_found());
                    }
                    Some(None) => {
                        tracing::debug!(reason = "unknown_session", "unbound session id refused");
                        return Ok(session_not_found());
                    }
                    _ => {}
                }
            }

            let mut op = Operation::Other;
            let body = if parts.method == Method::POST {
                let limited = http_body_util::Limited::new(body, policy.inner.max_body);
                let bytes = match limited.collect().await {
                    Ok(c) => c.to_bytes(),
                    Err(e) => {
                        if e.downcast_ref::<http_body_util::LengthLimitError>()
                            .is_some()
                        {
                            return Ok(jsonrpc_error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                -32600,
                                "Request body too large",
                            ));
                        }
                        return Ok(jsonrpc_error(
                            StatusCode::BAD_REQUEST,
                            -32700,
                            "Parse error",
                        ));
                    }
                };
                op = match parse_operation(&bytes) {
                    Ok(op) => op,
                    Err(_) => {
                        tracing::debug!(reason = "unparseable_body", "request refused");
                        return Ok(jsonrpc_error(
                            StatusCode::BAD_REQUEST,
                            -32700,
                            "Parse error",
                        ));
                    }
                };
                let decision = policy.decide(&token, &op);
                if !decision.is_allowed() {
                    tracing::debug!(operation = ?op, decision = ?decision, "request refused by policy");
                    return Ok(policy.forbidden(&decision));
                }
                Body::from(bytes)
            } else {
                Body::new(body)
            };
            parts.extensions.insert(PolicyHandle(policy.clone()));
            let is_delete = parts.method == Method::DELETE;
            let resp = inner
                .call(Request::from_parts(parts, body))
                .await?
                .map(Body::new);

            if let Some(sessions) = &policy.inner.sessions {
                let ok = resp.status().is_success();
                let created = resp
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok());
                if let (Operation::Initialize, true, Some(new_id), Some(principal)) =
                    (&op, ok, created, principal)
                {
                    sessions.insert(Arc::from(new_id), Arc::new(principal));
                }
                if let (true, true, Some(id)) = (is_delete, ok, &session) {
                    sessions.invalidate(id);
                }
            }
            if op == Operation::ToolsList && policy.inner.filter_tools_list {
                return Ok(filter_tools_response(resp, &policy, &token).await);
            }
            Ok(resp)
        })
    }
}

/// Cap on a `tools/list` response the filter buffers.
const MAX_LIST_RESPONSE: usize = 16 * 1024 * 1024;

async fn filter_tools_response(
    resp: Response<Body>,
    policy: &McpPolicy,
    token: &AccessToken,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let bytes = match http_body_util::Limited::new(body, MAX_LIST_RESPONSE)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => return challenge::server_error(),
    };
    let filtered = if is_sse {
        filter_sse(&bytes, policy, token)
    } else {
        filter_json_message(&bytes, policy, token).unwrap_or_else(|| bytes.to_vec())
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(filtered))
}

fn filter_json_message(data: &[u8], policy: &McpPolicy, token: &AccessToken) -> Option<Vec<u8>> {
    let mut msg: serde_json::Value = serde_json::from_slice(data).ok()?;
    let tools = msg.get_mut("result")?.get_mut("tools")?.as_array_mut()?;
    tools.retain(|t| {
        t.get("name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| policy.may_call_tool(token, n))
    });
    serde_json::to_vec(&msg).ok()
}

fn filter_sse(bytes: &[u8], policy: &McpPolicy, token: &AccessToken) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for event in text.split_inclusive("\n\n") {
        let mut data = String::new();
        let mut others = Vec::new();
        for line in event.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            } else if !line.is_empty() {
                others.push(line);
            }
        }
        match filter_json_message(data.as_bytes(), policy, token) {
            Some(filtered) if !data.is_empty() => {
                for l in others {
                    out.push_str(l);
                    out.push('\n');
                }
                out.push_str("data: ");
                out.push_str(&String::from_utf8_lossy(&filtered));
                out.push_str("\n\n");
            }
            _ => out.push_str(event),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_deciding_fields() {
        let op = parse_operation(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_todo","arguments":{"text":"x"}}}"#,
        );
        assert_eq!(op, Ok(Operation::ToolCall("add_todo".into())));
        let op = parse_operation(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u0061dd_todo"}}"#,
        );
        assert_eq!(op, Ok(Operation::ToolCall("add_todo".into())));
        let op = parse_operation(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"todo://a"}}"#,
        );
        assert_eq!(op, Ok(Operation::ResourceRead("todo://a".into())));
        let op = parse_operation(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(op, Ok(Operation::Other));
    }

    #[test]
    fn refuses_what_could_be_read_two_ways() {
        for body in [
            &br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}]"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"a"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["a"]}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}} x"#,
            b"\"tools/call\"",
            b"",
        ] {
            assert!(parse_operation(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{deep}}}}}"#
        );
        // Skipped values are not depth-limited, but the decision still binds to the tool name
        // (and rmcp, which builds a Value, refuses such a body itself).
        assert_eq!(
            parse_operation(body.as_bytes()),
            Ok(Operation::ToolCall("a".into()))
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("todo://*", "todo://a/b"));
        assert!(wildcard_match("todo://*/items", "todo://x/items"));
        assert!(!wildcard_match("todo://*/items", "todo://x/other"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(!wildcard_match("a*b*c", "aXcYb"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }
}
