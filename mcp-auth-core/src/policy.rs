//! MCP-aware authorization: which scopes (and claims) each tool, resource, prompt and method
//! needs, decided on the parsed JSON-RPC body before the MCP server runs (see [`Operation`] for
//! the three classes of methods), list answers filtered per caller, plus session binding.
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
//!     // Listed to read-only callers too, so that calling it meets the step-up challenge.
//!     .tool("add_todo", Rule::scopes(["todo:write"]).listed_when_refused())
//!     .tool("whoami", Rule::authenticated())
//!     .resource("todo://tenant/acme/*", Rule::scopes(["todo:read"]).require_claim("org", "acme"))
//!     .method("tasks/get", Rule::authenticated())
//!     .default_deny(true)
//!     .filter_lists(true)
//!     .build(&provider)?;
//! let mcp = tower::ServiceBuilder::new()
//!     .layer(provider.layer())   // outer: authenticates first
//!     .layer(policy.layer())     // inner: sees the AccessToken, reads the body
//!     .service(post(|| async { "rmcp goes here" }));
//! let app: Router = Router::new()
//!     .route_service("/mcp", mcp)
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
use serde::de;
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
/// The longest idle time a session binding gets (longer settings are capped to it).
#[cfg(feature = "cache")]
const MAX_SESSION_IDLE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// How long an unused session binding is kept by default: twice rmcp's default session
/// keep-alive (`SessionConfig::DEFAULT_KEEP_ALIVE`, 5 min), after which rmcp has closed an idle
/// session anyway.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(10 * 60);

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
    listed: bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("scopes", &self.scopes)
            .field("predicates", &self.predicates.len())
            .field("listed", &self.listed)
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
            listed: false,
        }
    }

    /// Lists what this rule guards to every caller, also to callers it refuses: they see the
    /// tool (prompt, resource) in the lists and meet the 403 `insufficient_scope` step-up
    /// challenge when they call it.
    ///
    /// By default a rule *hides* its target from the lists of callers it refuses (when
    /// [`McpPolicyBuilder::filter_lists`] is on). Hiding tells a weak token less about the
    /// server, but clients that look a tool up in `tools/list` before calling it (the MCP
    /// Inspector CLI among them) then report "tool not found" and never reach the challenge
    /// that would let the user step up. Listing is the right choice for targets a user is
    /// expected to unlock by consenting to more scopes.
    ///
    /// ```
    /// use mcp_auth_core::policy::Rule;
    /// let rule = Rule::scopes(["todo:write"]).listed_when_refused();
    /// # let _ = rule;
    /// ```
    pub fn listed_when_refused(mut self) -> Rule {
        self.listed = true;
        self
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
    listed: bool,
}

/// The operation a JSON-RPC message asks for, as far as the policy cares.
///
/// Every method falls in one of three classes:
///
/// - **discovery and housekeeping**, open to any valid token: `initialize`
///   ([`Operation::Initialize`]), the lists ([`Operation::List`]), `ping`, `server/discover`,
///   `logging/setLevel` and every notification, that is a `notifications/…` message without an
///   `id` ([`Operation::Housekeeping`]);
/// - **methods on named targets**, decided by the rules of every target they name:
///   `tools/call` ([`Operation::ToolCall`]), `prompts/get` ([`Operation::PromptGet`]),
///   `resources/read` ([`Operation::ResourceRead`]), the other methods taking resource URIs
///   (`resources/subscribe`, `resources/unsubscribe`, `resources/directory/read`, `skills/get`,
///   and `subscriptions/listen` with each URI of its filter: [`Operation::Resources`]) and
///   `completion/complete` through the prompt or resource it refers to
///   ([`Operation::CompletePrompt`], [`Operation::CompleteResource`]);
/// - **every other method**, known or not ([`Operation::Method`]): allowed under default-deny
///   only by an explicit [`McpPolicyBuilder::method`] rule.
///
/// JSON-RPC responses (no `method`: answers to the server's own elicitation or sampling
/// requests) are [`Operation::Response`] and pass.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `tools/call` of the named tool.
    ToolCall(String),
    /// `resources/read` of the URI.
    ResourceRead(String),
    /// `prompts/get` of the named prompt.
    PromptGet(String),
    /// Another method on resources named by URI: allowed only when every URI is (the rules of
    /// [`McpPolicyBuilder::resource`]). A `subscriptions/listen` that names no resource is
    /// allowed.
    Resources {
        /// The JSON-RPC method (`resources/subscribe`, `subscriptions/listen`, …).
        method: String,
        /// Every resource URI the request names.
        uris: Vec<String>,
    },
    /// `completion/complete` for an argument of the named prompt (`ref/prompt`): decided as
    /// `prompts/get` of that prompt.
    CompletePrompt(String),
    /// `completion/complete` for a resource template (`ref/resource`): decided as
    /// `resources/read` of that URI.
    CompleteResource(String),
    /// One of the lists (open to any valid token; results filtered per caller when
    /// [`McpPolicyBuilder::filter_lists`] is on).
    List(ListKind),
    /// `initialize`.
    Initialize,
    /// `ping`, `server/discover`, `logging/setLevel` or a notification: open to any valid token.
    Housekeeping(String),
    /// Any other method, known or not: needs an explicit [`McpPolicyBuilder::method`] rule
    /// under default-deny.
    Method(String),
    /// A JSON-RPC response or error (a body without `method`).
    Response,
}

/// The lists an MCP server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListKind {
    /// `tools/list`: entries decided as `tools/call` of their `name`.
    Tools,
    /// `resources/list`: entries decided as `resources/read` of their `uri`.
    Resources,
    /// `resources/templates/list`: entries decided as `resources/read` of their `uriTemplate`
    /// text (so `todo://tenant/acme/*` covers `todo://tenant/acme/{id}`).
    ResourceTemplates,
    /// `prompts/list`: entries decided as `prompts/get` of their `name`.
    Prompts,
    /// `skills/list`: entries decided as `skills/get` of their `uri`.
    Skills,
}

impl ListKind {
    /// The JSON-RPC method of the list.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Skills => "skills/list",
        }
    }

    /// The array of the result holding the entries.
    fn field(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
            ListKind::Prompts => "prompts",
            ListKind::Skills => "skills",
        }
    }

    /// The key of an entry naming its target.
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources | ListKind::Skills => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }

    const ALL: [ListKind; 5] = [
        ListKind::Tools,
        ListKind::Resources,
        ListKind::ResourceTemplates,
        ListKind::Prompts,
        ListKind::Skills,
    ];
}

/// Which class a method name falls in (see [`Operation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MethodClass {
    Open,
    Targeted,
    Other,
}

/// Methods taking one resource `uri` besides `resources/read`.
const URI_METHODS: [&str; 4] = [
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/directory/read",
    "skills/get",
];

/// Methods of the third class that rmcp 3.11 knows: the start-up report names those without a
/// rule.
const KNOWN_OTHER_METHODS: [&str; 3] = ["tasks/get", "tasks/update", "tasks/cancel"];

fn method_class(method: &str) -> MethodClass {
    match method {
        "initialize" | "ping" | "server/discover" | "logging/setLevel" => MethodClass::Open,
        m if m.starts_with("notifications/") => MethodClass::Open,
        m if ListKind::ALL.iter().any(|k| k.method() == m) => MethodClass::Open,
        "tools/call"
        | "prompts/get"
        | "resources/read"
        | "subscriptions/listen"
        | "completion/complete" => MethodClass::Targeted,
        m if URI_METHODS.contains(&m) => MethodClass::Targeted,
        _ => MethodClass::Other,
    }
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

/// The members of a JSON-RPC object the policy reads. `null` counts as absent; a second `id`,
/// `method` or `params` is an error, as is a `method` that is not a string; other members
/// (`jsonrpc` among them) are skipped.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: Option<de::IgnoredAny>,
    #[serde(borrow, default)]
    method: Option<Str<'a>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

/// A JSON string, borrowed from the body unless it holds escapes (serde borrows a `Cow` field
/// of a newtype, not one inside an `Option`); any other type is an error.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// A member of `params` the policy may decide on: absent, a value, or unusable (a second
/// occurrence, or a JSON type other than the one expected). Unusable counts only for the methods
/// that read the member.
#[derive(Default)]
enum Member<T> {
    #[default]
    Absent,
    Value(T),
    Unusable,
}

impl<T> Member<T> {
    fn get(self) -> Result<T, ParseError> {
        match self {
            Member::Value(v) => Ok(v),
            Member::Absent | Member::Unusable => Err(ParseError::Invalid),
        }
    }
}

/// `params`, read in the same pass as the envelope: the members some method decides on, kept
/// whatever the method turns out to be (`method` may come after `params`).
#[derive(Default)]
struct Params<'a> {
    object: bool,
    name: Member<Cow<'a, str>>,
    uri: Member<Cow<'a, str>>,
    /// `ref` of `completion/complete` and `notifications` of `subscriptions/listen`: rare, so
    /// kept raw and read when the method needs them.
    reference: Member<&'a RawValue>,
    notifications: Member<&'a RawValue>,
}

/// A JSON value that is a string, or anything else (skipped).
enum MaybeStr<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> de::Visitor<'de> for V<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(MaybeStr::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(MaybeStr::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> de::Visitor<'de> for V<'a> {
            type Value = Params<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                fn string<'de: 'a, 'a, A: de::MapAccess<'de>>(
                    map: &mut A,
                    slot: &mut Member<Cow<'a, str>>,
                ) -> Result<(), A::Error> {
                    let value = map.next_value::<MaybeStr<'a>>()?;
                    *slot = match (&*slot, value) {
                        (Member::Absent, MaybeStr::Str(s)) => Member::Value(s),
                        _ => Member::Unusable,
                    };
                    Ok(())
                }
                fn raw<'de: 'a, 'a, A: de::MapAccess<'de>>(
                    map: &mut A,
                    slot: &mut Member<&'a RawValue>,
                ) -> Result<(), A::Error> {
                    let value = map.next_value::<&'a RawValue>()?;
                    *slot = match slot {
                        Member::Absent => Member::Value(value),
                        _ => Member::Unusable,
                    };
                    Ok(())
                }
                let mut p = Params {
                    object: true,
                    ..Params::default()
                };
                // Keys are borrowed from the body unless escaped (no allocation per key).
                while let Some(Str(key)) = map.next_key::<Str<'_>>()? {
                    match key.as_ref() {
                        "name" => string(&mut map, &mut p.name)?,
                        "uri" => string(&mut map, &mut p.uri)?,
                        "ref" => raw(&mut map, &mut p.reference)?,
                        "notifications" => raw(&mut map, &mut p.notifications)?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(p)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Params::default())
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct ListenFilter {
    #[serde(rename = "resourceSubscriptions", default)]
    resource_subscriptions: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CompleteRef {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
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
    // UTF-8 checked once for the whole body, not string by string as `from_slice` would.
    let text = std::str::from_utf8(body).map_err(|_| ParseError::Invalid)?;
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|_| ParseError::Invalid)?;
    let Some(method) = env.method else {
        return Ok(Operation::Response);
    };
    // Deciding methods need `params` to be an object; the members they read were taken in the
    // same pass (one parse of the body, not two).
    let params = move || -> Result<Params<'_>, ParseError> {
        match env.params {
            Some(p) if p.object => Ok(p),
            _ => Err(ParseError::Invalid),
        }
    };
    fn read<'de, T: Deserialize<'de>>(raw: &'de RawValue) -> Result<T, ParseError> {
        serde_json::from_str(raw.get()).map_err(|_| ParseError::Invalid)
    }
    let m = method.0.as_ref();
    Ok(match m {
        "tools/call" => Operation::ToolCall(params()?.name.get()?.into_owned()),
        "prompts/get" => Operation::PromptGet(params()?.name.get()?.into_owned()),
        "resources/read" => Operation::ResourceRead(params()?.uri.get()?.into_owned()),
        m if URI_METHODS.contains(&m) => Operation::Resources {
            method: m.to_owned(),
            uris: vec![params()?.uri.get()?.into_owned()],
        },
        "subscriptions/listen" => Operation::Resources {
            method: m.to_owned(),
            uris: read::<ListenFilter>(params()?.notifications.get()?)?
                .resource_subscriptions
                .unwrap_or_default(),
        },
        "completion/complete" => {
            let r = read::<CompleteRef>(params()?.reference.get()?)?;
            match (r.kind.as_str(), r.name, r.uri) {
                ("ref/prompt", Some(name), _) => Operation::CompletePrompt(name),
                ("ref/resource", _, Some(uri)) => Operation::CompleteResource(uri),
                _ => return Err(ParseError::Invalid),
            }
        }
        "initialize" => Operation::Initialize,
        // A "notification" carrying an id is a request (JSON-RPC 2.0 §4.1): a server could
        // answer it, so it is not open to every token.
        m if m.starts_with("notifications/") && env.id.is_some() => Operation::Method(m.to_owned()),
        m => match ListKind::ALL.iter().find(|k| k.method() == m) {
            Some(kind) => Operation::List(*kind),
            None if method_class(m) == MethodClass::Open => Operation::Housekeeping(m.to_owned()),
            None => Operation::Method(m.to_owned()),
        },
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

/// Whether every URI `later` matches is also matched by `earlier` (so `later` never decides
/// anything). Conservative: `earlier` must match `later`'s text with its `*` read literally,
/// which `*` in `earlier` always does.
fn shadows(earlier: &str, later: &str) -> bool {
    wildcard_match(earlier, later)
}

/// What one rule is looked up for.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Tool(&'a str),
    Prompt(&'a str),
    Resource(&'a str),
    Method(&'a str),
}

/// The policy: rules per tool, resource pattern, prompt and method. Build with
/// [`McpPolicy::builder`].
#[derive(Clone)]
pub struct McpPolicy {
    inner: Arc<PolicyInner>,
}

struct PolicyInner {
    tools: HashMap<String, CompiledRule>,
    resources: Vec<(String, CompiledRule)>,
    prompts: HashMap<String, CompiledRule>,
    methods: HashMap<String, CompiledRule>,
    default_deny: bool,
    filter_lists: bool,
    max_body: usize,
    metadata_url: String,
    global_scope: String,
    hierarchy: ScopeHierarchy,
    sessions: Option<SessionMap>,
    /// `algs` of DPoP challenges (empty when DPoP is off).
    dpop_algs: String,
    /// Every challenge on the DPoP scheme (`required` mode).
    dpop_required: bool,
}

/// Session bindings: an LRU map with an idle timeout (moka, feature `cache`).
#[cfg(feature = "cache")]
type SessionMap = moka::sync::Cache<Arc<str>, Arc<SessionOwner>>;

/// Without the `cache` feature there is no session map: [`McpPolicyBuilder::build`] refuses to
/// build with session binding on, so this type is never constructed.
#[cfg(not(feature = "cache"))]
enum SessionMap {}

#[cfg(not(feature = "cache"))]
impl SessionMap {
    fn get<Q: ?Sized>(&self, _: &Q) -> Option<Arc<SessionOwner>> {
        match *self {}
    }
    fn insert(&self, _: Arc<str>, _: Arc<SessionOwner>) {
        match *self {}
    }
    fn invalidate<Q: ?Sized>(&self, _: &Q) {
        match *self {}
    }
}

/// Who a session belongs to: the principal that opened it and, when it was opened with a
/// DPoP-bound token, that key (a session opened with a proof of possession never continues
/// with a bearer token, nor with a token bound to another key).
#[derive(Debug, PartialEq, Eq)]
struct SessionOwner {
    principal: Principal,
    dpop_jkt: Option<String>,
}

impl SessionOwner {
    fn admits(&self, token: &AccessToken) -> bool {
        Some(&self.principal) == token.principal()
            && match &self.dpop_jkt {
                None => true,
                Some(jkt) => token.dpop_thumbprint() == Some(jkt.as_str()),
            }
    }
}

/// Builder for [`McpPolicy`].
#[must_use]
#[derive(Default)]
pub struct McpPolicyBuilder {
    tools: Vec<(String, Rule)>,
    resources: Vec<(String, Rule)>,
    prompts: Vec<(String, Rule)>,
    methods: Vec<(String, Rule)>,
    default_deny: bool,
    filter_lists: bool,
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

    /// The rule for every method on resources whose URI matches `pattern` (`*` is a wildcard;
    /// the first matching pattern wins): `resources/read`, `resources/subscribe`,
    /// `resources/unsubscribe`, `resources/directory/read`, `skills/get` (the skill's
    /// `SKILL.md` URI), `subscriptions/listen` (every URI of its filter) and
    /// `completion/complete` of a `ref/resource`. A pattern that an earlier one already covers
    /// never decides anything: [`McpPolicyBuilder::build`] warns about it.
    pub fn resource(mut self, pattern: impl Into<String>, rule: Rule) -> Self {
        self.resources.push((pattern.into(), rule));
        self
    }

    /// The rule for `prompts/get` of `name` (and `completion/complete` of its arguments).
    pub fn prompt(mut self, name: impl Into<String>, rule: Rule) -> Self {
        self.prompts.push((name.into(), rule));
        self
    }

    /// The rule for a JSON-RPC method that names no tool, prompt or resource and is not
    /// discovery or housekeeping (see [`Operation`]): `tasks/get`, `tasks/cancel`, or a custom
    /// method of your server. Under default-deny such a method is refused without a rule.
    ///
    /// [`McpPolicyBuilder::build`] refuses a rule for a method that is open to every valid
    /// token (`ping`, the lists, …) or decided per target (`tools/call`: use
    /// [`McpPolicyBuilder::tool`]).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use mcp_auth_core::{async_trait, AccessToken, InvalidToken, VerifyError};
    /// # struct MyVerifier;
    /// # #[async_trait]
    /// # impl mcp_auth_core::TokenVerifier for MyVerifier {
    /// #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
    /// #         Err(InvalidToken::Malformed.into())
    /// #     }
    /// # }
    /// use mcp_auth_core::policy::{McpPolicy, Rule};
    /// use mcp_auth_core::RemoteAuthProvider;
    /// let provider = RemoteAuthProvider::builder(Arc::new(MyVerifier))
    ///     .resource_url("http://127.0.0.1:8000/mcp")
    ///     .authorization_server("https://idp.example.com")
    ///     .build()?;
    /// let policy = McpPolicy::builder()
    ///     .method("tasks/get", Rule::authenticated())
    ///     .method("admin/reset", Rule::scopes(["todo:admin"]))
    ///     .default_deny(true)
    ///     .build(&provider)?;
    /// assert!(McpPolicy::builder()
    ///     .method("tools/call", Rule::authenticated())
    ///     .build(&provider)
    ///     .is_err());
    /// # let _ = policy;
    /// # Ok::<(), mcp_auth_core::BuildError>(())
    /// ```
    pub fn method(mut self, name: impl Into<String>, rule: Rule) -> Self {
        self.methods.push((name.into(), rule));
        self
    }

    /// Refuse (403) every tool call, prompt, resource method and other method that has no rule
    /// (see [`Operation`] for what needs one).
    pub fn default_deny(mut self, on: bool) -> Self {
        self.default_deny = on;
        self
    }

    /// Remove from every list result (`tools/list`, `resources/list`,
    /// `resources/templates/list`, `prompts/list`, `skills/list`, in JSON and SSE answers) the
    /// entries the caller may not use, except those whose rule is
    /// [`Rule::listed_when_refused`]. A filtered list is marked `cacheScope: "private"` where the
    /// protocol version has that field (2026-07-28). A list answer that cannot be parsed is
    /// never passed on unfiltered: the caller gets a 500.
    pub fn filter_lists(mut self, on: bool) -> Self {
        self.filter_lists = on;
        self
    }

    /// The body limit (default rmcp's, 4 MiB): set it to the value given to rmcp's
    /// `max_request_body_bytes`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// Bind `Mcp-Session-Id` sessions to the principal that created them (default on; needs the
    /// `cache` feature, on by default: without it, building with binding on is an error).
    pub fn session_binding(mut self, on: bool) -> Self {
        self.session_binding = Some(on);
        self
    }

    /// How many session bindings are kept (default 100,000) and for how long unused (default
    /// [`DEFAULT_SESSION_IDLE`]; keep it at least the `keep_alive` of rmcp's `SessionConfig`).
    /// A binding also goes when rmcp answers that it no longer knows the session, or when the
    /// session is deleted. When the capacity is reached the least recently used binding goes,
    /// so a new session is always bound (one principal opening sessions in a loop cannot get
    /// everybody else's new sessions refused). A session whose binding was dropped must be
    /// re-initialized.
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
                listed: rule.listed,
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
        let mut methods = HashMap::new();
        for (name, rule) in self.methods {
            match method_class(&name) {
                MethodClass::Other => {}
                class => {
                    let why = if class == MethodClass::Open {
                        "is open to every valid token"
                    } else {
                        "is decided by the rules of the tools, prompts or resources it names"
                    };
                    return Err(BuildError::invalid(
                        POLICY,
                        format!("method {name} {why}: it takes no method rule"),
                    ));
                }
            }
            let compiled = compile(&format!("method {name}"), rule)?;
            if methods.insert(name.clone(), compiled).is_some() {
                return Err(BuildError::invalid(
                    POLICY,
                    format!("method {name} listed twice"),
                ));
            }
        }
        let mut resources: Vec<(String, CompiledRule)> = Vec::new();
        for (pattern, rule) in self.resources {
            let compiled = compile(&format!("resource {pattern}"), rule)?;
            if let Some((earlier, _)) = resources.iter().find(|(p, _)| shadows(p, &pattern)) {
                tracing::warn!(
                    pattern = %pattern,
                    earlier = %earlier,
                    "resource pattern never decides anything: an earlier pattern matches every \
                     URI it matches (the first matching pattern wins)"
                );
            }
            resources.push((pattern, compiled));
        }
        #[cfg(not(feature = "cache"))]
        if self.session_binding.unwrap_or(true) {
            return Err(BuildError::invalid(
                POLICY,
                "session binding needs mcp-auth-core's `cache` feature; turn it off with \
                 `session_binding(false)` only when the server runs without sessions (stateless)",
            ));
        }
        #[cfg(not(feature = "cache"))]
        let sessions: Option<SessionMap> = None;
        #[cfg(feature = "cache")]
        let sessions = self.session_binding.unwrap_or(true).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(self.session_capacity.unwrap_or(100_000))
                // moka refuses (panics on) an idle time over 1000 years: a longer one means
                // "never idle out", which a century already is.
                .time_to_idle(
                    self.session_idle
                        .unwrap_or(DEFAULT_SESSION_IDLE)
                        .min(MAX_SESSION_IDLE),
                )
                // moka's default (TinyLFU) may refuse to admit a new entry in favour of often-
                // used ones: a new user's session would then be refused as unknown.
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build()
        });
        Ok(McpPolicy {
            inner: Arc::new(PolicyInner {
                tools,
                resources,
                prompts,
                methods,
                default_deny: self.default_deny,
                filter_lists: self.filter_lists,
                max_body: self.max_body.unwrap_or(DEFAULT_MAX_BODY_BYTES),
                metadata_url: pr.resource().metadata_url(),
                global_scope: pr.challenge_scopes(&global),
                hierarchy: pr.hierarchy().clone(),
                sessions,
                dpop_algs: pr.dpop().algs_header().to_owned(),
                dpop_required: pr.dpop().mode() == crate::dpop::DpopMode::Required,
            }),
        })
    }
}

/// What the rule of a tool asks of a token ([`McpPolicy::tool_rule`]): what a diagnosis shows
/// as a tool's expected scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolRule {
    /// The tool has no rule: refused when `default_deny` is on, else open to every valid token.
    Unruled {
        /// Whether default-deny refuses it.
        default_deny: bool,
    },
    /// The tool's rule.
    Ruled {
        /// Every scope the rule needs, as tokens carry them (a broader scope of the
        /// [hierarchy](McpPolicy::hierarchy) also satisfies one); empty for
        /// [`Rule::authenticated`]. The scopes every request needs come on top.
        scopes: Vec<String>,
        /// Whether the rule also has claim conditions ([`Rule::claims`] and its shorthands).
        claims: bool,
    },
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

    fn rule_for(&self, target: Target<'_>) -> Option<&CompiledRule> {
        let i = &self.inner;
        match target {
            Target::Tool(name) => i.tools.get(name),
            Target::Prompt(name) => i.prompts.get(name),
            Target::Resource(uri) => i
                .resources
                .iter()
                .find(|(p, _)| wildcard_match(p, uri))
                .map(|(_, r)| r),
            Target::Method(name) => i.methods.get(name),
        }
    }

    fn decide_target(&self, token: &AccessToken, target: Target<'_>) -> Decision {
        match self.rule_for(target) {
            None if self.inner.default_deny => Decision::Denied {
                scope: self.inner.global_scope.clone(),
            },
            None => Decision::Allow,
            Some(rule) => self.check_rule(token, rule),
        }
    }

    /// Every URI must be allowed. A refusal by a claims predicate or default-deny wins; missing
    /// scopes are named together, so that one step-up covers them all.
    fn decide_all(&self, token: &AccessToken, uris: &[String]) -> Decision {
        let mut missing: Vec<&str> = Vec::new();
        let mut scopes = Vec::new();
        for uri in uris {
            match self.decide_target(token, Target::Resource(uri)) {
                Decision::Allow => {}
                Decision::MissingScope { scope } => scopes.push(scope),
                denied => return denied,
            }
        }
        for s in scopes.iter().flat_map(|s| s.split(' ')) {
            if !s.is_empty() && !missing.contains(&s) {
                missing.push(s);
            }
        }
        if scopes.is_empty() {
            Decision::Allow
        } else {
            Decision::MissingScope {
                scope: missing.join(" "),
            }
        }
    }

    /// Decides whether `token` may perform `op`.
    pub fn decide(&self, token: &AccessToken, op: &Operation) -> Decision {
        match op {
            Operation::ToolCall(name) => self.decide_target(token, Target::Tool(name)),
            Operation::PromptGet(name) | Operation::CompletePrompt(name) => {
                self.decide_target(token, Target::Prompt(name))
            }
            Operation::ResourceRead(uri) | Operation::CompleteResource(uri) => {
                self.decide_target(token, Target::Resource(uri))
            }
            Operation::Resources { uris, .. } => self.decide_all(token, uris),
            Operation::Method(name) => self.decide_target(token, Target::Method(name)),
            Operation::List(_)
            | Operation::Initialize
            | Operation::Housekeeping(_)
            | Operation::Response => Decision::Allow,
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

    /// What the rule of the tool `name` asks of a token (what a diagnosis shows).
    pub fn tool_rule(&self, name: &str) -> ToolRule {
        match self.rule_for(Target::Tool(name)) {
            None => ToolRule::Unruled {
                default_deny: self.inner.default_deny,
            },
            Some(rule) => ToolRule::Ruled {
                scopes: rule.scopes.as_slice().to_vec(),
                claims: !rule.predicates.is_empty(),
            },
        }
    }

    /// Whether `token` may call the tool `name`.
    pub fn may_call_tool(&self, token: &AccessToken, name: &str) -> bool {
        self.decide_target(token, Target::Tool(name)).is_allowed()
    }

    /// Whether an entry of a `kind` list naming `target` is shown to `token` (what list
    /// filtering uses): the caller may use it, or its rule is [`Rule::listed_when_refused`].
    pub fn lists(&self, token: &AccessToken, kind: ListKind, target: &str) -> bool {
        let target = match kind {
            ListKind::Tools => Target::Tool(target),
            ListKind::Prompts => Target::Prompt(target),
            ListKind::Resources | ListKind::ResourceTemplates | ListKind::Skills => {
                Target::Resource(target)
            }
        };
        if self.rule_for(target).is_some_and(|r| r.listed) {
            return true;
        }
        self.decide_target(token, target).is_allowed()
    }

    /// The methods rmcp knows that need a [`McpPolicyBuilder::method`] rule and have none
    /// (`tasks/get`, `tasks/update`, `tasks/cancel`), plus a note when no resource or prompt
    /// has a rule at all: what default-deny refuses outright, or what any valid token may do
    /// without it.
    pub fn without_rule(&self) -> Vec<String> {
        let mut out: Vec<String> = KNOWN_OTHER_METHODS
            .iter()
            .filter(|m| !self.inner.methods.contains_key(**m))
            .map(|m| format!("method {m}"))
            .collect();
        if self.inner.resources.is_empty() {
            out.push("resources (every URI)".to_owned());
        }
        if self.inner.prompts.is_empty() {
            out.push("prompts (every name)".to_owned());
        }
        out
    }

    /// Logs (warn) what [`McpPolicy::without_rule`] returns, and returns it.
    pub fn report_without_rule(&self) -> Vec<String> {
        let missing = self.without_rule();
        if !missing.is_empty() {
            tracing::warn!(unruled = ?missing, "no policy rule: {}", self.mode());
        }
        missing
    }

    fn mode(&self) -> &'static str {
        if self.inner.default_deny {
            "they are refused (default-deny)"
        } else {
            "any valid token may use them"
        }
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
            tracing::warn!(tools = ?missing, "tools without a policy rule: {}", self.mode());
        }
        missing
    }

    /// The 403, on the DPoP scheme for a DPoP-bound token (which only gets here with a proof)
    /// and in `required` mode, on the Bearer scheme otherwise.
    fn forbidden(&self, decision: &Decision, token: &AccessToken) -> Response<Body> {
        let (description, scope) = match decision {
            Decision::MissingScope { scope } => (INSUFFICIENT_SCOPE_DESCRIPTION, scope.as_str()),
            Decision::Denied { scope } => (POLICY_DENIED_DESCRIPTION, scope.as_str()),
            Decision::Allow => (POLICY_DENIED_DESCRIPTION, ""),
        };
        let scheme = if token.is_dpop_bound() || self.inner.dpop_required {
            challenge::Scheme::Dpop {
                algs: &self.inner.dpop_algs,
            }
        } else {
            challenge::Scheme::Bearer
        };
        challenge::insufficient_scope_on(scheme, description, scope, &self.inner.metadata_url)
    }

    fn bound_principal(&self, session: &str) -> Option<Option<Arc<SessionOwner>>> {
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

/// [`SESSION_HEADER`] as a header name (looked up without parsing the name per request).
const SESSION_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(SESSION_HEADER);

/// The request's session id: `Err` for two headers or a value that is not visible ASCII.
fn session_id(headers: &http::HeaderMap) -> Result<Option<HeaderValue>, ()> {
    let mut all = headers.get_all(SESSION_HEADER_NAME).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(());
    }
    match first {
        None => Ok(None),
        Some(v) if v.to_str().is_ok() => Ok(Some(v.clone())),
        Some(_) => Err(()),
    }
}

/// The text of a session id [`session_id`] accepted.
fn session_text(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or_default()
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
    type Future = PolicyFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if crate::layer::is_preflight(&req) {
            // The bearer layer outside answers preflights; never run the server without a
            // token should this layer be stacked on its own.
            return PolicyFuture::answer(crate::layer::preflight_response());
        }
        let (parts, body) = req.into_parts();
        let Some(token) = parts.extensions.get::<AccessToken>().cloned() else {
            tracing::error!(
                "McpPolicyLayer found no AccessToken: stack it inside the bearer layer"
            );
            return PolicyFuture::answer(challenge::server_error());
        };

        // Session binding: a session belongs to the principal that created it.
        let session = match session_id(&parts.headers) {
            Ok(s) => s,
            Err(()) => {
                return PolicyFuture::answer(jsonrpc_error(
                    StatusCode::BAD_REQUEST,
                    -32600,
                    "Invalid Mcp-Session-Id header",
                ));
            }
        };
        if let Some(id) = &session {
            match self.policy.bound_principal(session_text(id)) {
                Some(Some(owner)) if !owner.admits(&token) => {
                    tracing::warn!(
                        reason = "session_principal_mismatch",
                        "request with another principal's session id refused"
                    );
                    return PolicyFuture::answer(session_not_found());
                }
                Some(None) => {
                    tracing::debug!(reason = "unknown_session", "unbound session id refused");
                    return PolicyFuture::answer(session_not_found());
                }
                _ => {}
            }
        }

        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let pending = Pending {
            inner,
            parts,
            after: After {
                policy: self.policy.clone(),
                token,
                session,
                op: None,
                is_delete: false,
            },
        };
        if pending.parts.method == Method::POST {
            PolicyFuture {
                state: State::Reading {
                    body: ReadBody::new(body, self.policy.inner.max_body),
                    pending: Some(pending),
                },
            }
        } else {
            pending.call(Body::new(body))
        }
    }
}

/// What the policy holds while the body is read: the request without its body, and the inner
/// service to call with it.
struct Pending<S> {
    inner: S,
    parts: http::request::Parts,
    after: After,
}

impl<S> Pending<S> {
    /// Calls the inner service with the request (the policy's handle in its extensions).
    fn call<B>(self, body: Body) -> PolicyFuture<S, B>
    where
        S: Service<Request<Body>>,
    {
        let Pending {
            mut inner,
            mut parts,
            mut after,
        } = self;
        parts.extensions.insert(PolicyHandle(after.policy.clone()));
        after.is_delete = parts.method == Method::DELETE;
        PolicyFuture {
            state: State::Calling {
                fut: inner.call(Request::from_parts(parts, body)),
                after: Some(after),
            },
        }
    }
}

/// What the policy does with the server's answer: session bookkeeping and list filtering.
struct After {
    policy: McpPolicy,
    token: AccessToken,
    session: Option<HeaderValue>,
    /// The operation, kept only when the answer needs it (`initialize`, the lists).
    op: Option<Operation>,
    is_delete: bool,
}

impl After {
    /// Binds a new session, forgets ended ones, and says whether the answer is a list to filter.
    fn answered(&self, resp: &Response<Body>) -> Option<ListKind> {
        let policy = &self.policy;
        if let Some(sessions) = &policy.inner.sessions {
            let ok = resp.status().is_success();
            let created = resp
                .headers()
                .get(SESSION_HEADER_NAME)
                .and_then(|v| v.to_str().ok());
            if let (Some(Operation::Initialize), true, Some(new_id), Some(principal)) =
                (&self.op, ok, created, self.token.principal())
            {
                sessions.insert(
                    Arc::from(new_id),
                    Arc::new(SessionOwner {
                        principal: principal.clone(),
                        dpop_jkt: self.token.dpop_thumbprint().map(str::to_owned),
                    }),
                );
            }
            if let (true, true, Some(id)) = (self.is_delete, ok, &self.session) {
                sessions.invalidate(session_text(id));
            }
            // rmcp no longer knows the session (closed after its keep-alive, or shut down):
            // the binding goes with it.
            if let (StatusCode::NOT_FOUND, Some(id)) = (resp.status(), &self.session) {
                sessions.invalidate(session_text(id));
            }
        }
        match (&self.op, policy.inner.filter_lists) {
            (Some(Operation::List(kind)), true) => Some(*kind),
            _ => None,
        }
    }
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Read,
}

pin_project_lite::pin_project! {
    /// Reads a request body whole, up to a limit: a body that arrives in one piece (the usual
    /// case) is kept as it is, without a copy or a buffer list.
    struct ReadBody<B> {
        #[pin]
        body: B,
        first: Option<Bytes>,
        rest: Vec<u8>,
        len: usize,
        max: usize,
    }
}

impl<B> ReadBody<B> {
    fn new(body: B, max: usize) -> Self {
        ReadBody {
            body,
            first: None,
            rest: Vec::new(),
            len: 0,
            max,
        }
    }
}

impl<B: http_body::Body<Data = Bytes>> Future for ReadBody<B> {
    type Output = Result<Bytes, BodyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match std::task::ready!(this.body.as_mut().poll_frame(cx)) {
                None => {
                    let whole = match this.first.take() {
                        Some(first) => first,
                        None => Bytes::from(std::mem::take(this.rest)),
                    };
                    return Poll::Ready(Ok(whole));
                }
                Some(Err(_)) => return Poll::Ready(Err(BodyError::Read)),
                Some(Ok(frame)) => {
                    // Trailers are not part of the JSON-RPC message.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    *this.len = this.len.saturating_add(data.len());
                    if *this.len > *this.max {
                        return Poll::Ready(Err(BodyError::TooLarge));
                    }
                    if data.is_empty() {
                        continue;
                    }
                    match this.first.take() {
                        None if this.rest.is_empty() => *this.first = Some(data),
                        first => {
                            if let Some(first) = first {
                                this.rest.extend_from_slice(&first);
                            }
                            this.rest.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
    }
}

type BoxedResponse = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<Body>>,
    {
        /// Answered by the policy itself.
        Answer { resp: Option<Response<Body>> },
        /// Reading a POST body to decide on it.
        Reading {
            #[pin]
            body: ReadBody<B>,
            pending: Option<Pending<S>>,
        },
        /// The server is answering.
        Calling {
            #[pin]
            fut: S::Future,
            after: Option<After>,
        },
        /// Filtering a list answer (boxed: only list answers take this way).
        Filtering { fut: BoxedResponse },
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`McpPolicyService`].
    pub struct PolicyFuture<S, B>
    where
        S: Service<Request<Body>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

impl<S, B> PolicyFuture<S, B>
where
    S: Service<Request<Body>>,
{
    fn answer(resp: Response<Body>) -> Self {
        PolicyFuture {
            state: State::Answer { resp: Some(resp) },
        }
    }
}

impl<S, B, ResBody> Future for PolicyFuture<S, B>
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Answer { resp } => {
                    // Polled again after it answered: a server error rather than a panic.
                    return Poll::Ready(Ok(resp.take().unwrap_or_else(challenge::server_error)));
                }
                StateProj::Reading { body, pending } => {
                    let read = std::task::ready!(body.poll(cx));
                    let Some(mut pending) = pending.take() else {
                        return Poll::Ready(Ok(challenge::server_error()));
                    };
                    let bytes = match read {
                        Ok(bytes) => bytes,
                        Err(BodyError::TooLarge) => {
                            return Poll::Ready(Ok(jsonrpc_error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                -32600,
                                "Request body too large",
                            )));
                        }
                        Err(BodyError::Read) => {
                            return Poll::Ready(Ok(jsonrpc_error(
                                StatusCode::BAD_REQUEST,
                                -32700,
                                "Parse error",
                            )));
                        }
                    };
                    let parsed = match parse_operation(&bytes) {
                        Ok(op) => op,
                        Err(_) => {
                            tracing::debug!(reason = "unparseable_body", "request refused");
                            return Poll::Ready(Ok(jsonrpc_error(
                                StatusCode::BAD_REQUEST,
                                -32700,
                                "Parse error",
                            )));
                        }
                    };
                    let after = &mut pending.after;
                    let decision = after.policy.decide(&after.token, &parsed);
                    if !decision.is_allowed() {
                        tracing::debug!(operation = ?parsed, decision = ?decision, "request refused by policy");
                        return Poll::Ready(Ok(after.policy.forbidden(&decision, &after.token)));
                    }
                    if matches!(parsed, Operation::Initialize | Operation::List(_)) {
                        after.op = Some(parsed);
                    }
                    pending.call(Body::from(bytes)).state
                }
                StateProj::Calling { fut, after } => {
                    let resp = std::task::ready!(fut.poll(cx))?.map(Body::new);
                    let Some(after) = after.take() else {
                        return Poll::Ready(Ok(challenge::server_error()));
                    };
                    match after.answered(&resp) {
                        None => return Poll::Ready(Ok(resp)),
                        Some(kind) => State::Filtering {
                            fut: Box::pin(async move {
                                filter_list_response(resp, &after.policy, &after.token, kind).await
                            }),
                        },
                    }
                }
                StateProj::Filtering { fut } => return fut.as_mut().poll(cx).map(Ok),
            };
            state.set(next);
        }
    }
}

/// Cap on a list response the filter buffers.
const MAX_LIST_RESPONSE: usize = 16 * 1024 * 1024;

/// Why a list answer could not be filtered (it is then refused, never passed on).
#[derive(Debug)]
struct Unfilterable(&'static str);

async fn filter_list_response(
    resp: Response<Body>,
    policy: &McpPolicy,
    token: &AccessToken,
    kind: ListKind,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.trim_start().to_ascii_lowercase());
    let is_sse = content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let is_json = content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("application/json"));
    let bytes = match http_body_util::Limited::new(body, MAX_LIST_RESPONSE)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => return challenge::server_error(),
    };
    let filtered = if is_sse {
        filter_sse(bytes, policy, token, kind).await
    } else if is_json {
        filter_json_message(&bytes, policy, token, kind)
    } else if !parts.status.is_success() || bytes.is_empty() {
        // An HTTP-level error (rmcp's 4xx answers) carries no list: nothing to filter.
        Ok(bytes.to_vec())
    } else {
        Err(Unfilterable("list answer of an unknown content type"))
    };
    match filtered {
        Ok(filtered) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(filtered))
        }
        Err(Unfilterable(why)) => {
            tracing::error!(
                list = kind.method(),
                reason = why,
                "list answer refused: it cannot be filtered"
            );
            challenge::server_error()
        }
    }
}

/// Filters one JSON-RPC message. A message that is not a response (a notification or a request
/// of the server) and an error response pass; a result must hold the list.
fn filter_json_message(
    data: &[u8],
    policy: &McpPolicy,
    token: &AccessToken,
    kind: ListKind,
) -> Result<Vec<u8>, Unfilterable> {
    let mut msg: serde_json::Value =
        serde_json::from_slice(data).map_err(|_| Unfilterable("not JSON"))?;
    let obj = msg
        .as_object_mut()
        .ok_or(Unfilterable("not a JSON-RPC object"))?;
    let Some(result) = obj.get_mut("result") else {
        if obj.contains_key("error") || obj.contains_key("method") {
            return Ok(data.to_vec());
        }
        return Err(Unfilterable("neither a result, an error nor a message"));
    };
    let result = result
        .as_object_mut()
        .ok_or(Unfilterable("the result is not an object"))?;
    let entries = result
        .get_mut(kind.field())
        .and_then(|v| v.as_array_mut())
        .ok_or(Unfilterable("the result holds no list"))?;
    entries.retain(|e| {
        e.get(kind.key())
            .and_then(|n| n.as_str())
            .is_some_and(|n| policy.lists(token, kind, n))
    });
    // 2026-07-28 results carry `resultType` and `cacheScope` (SEP-2549): a list filtered for
    // this caller must not be cached for anyone else.
    if result.contains_key("cacheScope") || result.contains_key("resultType") {
        result.insert("cacheScope".into(), serde_json::Value::from("private"));
    }
    serde_json::to_vec(&msg).map_err(|_| Unfilterable("cannot serialize"))
}

/// Filters every message of an SSE answer, parsed by `sse-stream` (the parser rmcp's own client
/// uses: CRLF, CR or LF line ends, events split anywhere). Any event that cannot be parsed
/// refuses the whole answer.
async fn filter_sse(
    bytes: Bytes,
    policy: &McpPolicy,
    token: &AccessToken,
    kind: ListKind,
) -> Result<Vec<u8>, Unfilterable> {
    use futures_util::StreamExt;
    let mut events = sse_stream::SseStream::new(http_body_util::Full::new(bytes));
    let mut out = Vec::new();
    while let Some(event) = events.next().await {
        let mut event = event.map_err(|_| Unfilterable("malformed SSE"))?;
        if let Some(data) = event.data.as_deref().filter(|d| !d.trim().is_empty()) {
            let filtered = filter_json_message(data.as_bytes(), policy, token, kind)?;
            let text = String::from_utf8(filtered).map_err(|_| Unfilterable("not UTF-8"))?;
            event.data = Some(text);
        }
        encode_sse(&event, &mut out);
    }
    Ok(out)
}

/// Writes one event back (WHATWG HTML §9.2.5): one `data:` line per line of its data.
fn encode_sse(event: &sse_stream::Sse, out: &mut Vec<u8>) {
    let mut field = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    };
    if let Some(e) = &event.event {
        field("event", e);
    }
    if let Some(id) = &event.id {
        field("id", id);
    }
    if let Some(retry) = event.retry {
        field("retry", &retry.to_string());
    }
    if let Some(data) = &event.data {
        for line in data.split('\n') {
            field("data", line);
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pieces: Vec<Result<&'static str, ()>>, max: usize) -> Result<Bytes, BodyError> {
        let frames = pieces.into_iter().map(|p| {
            p.map(|s| http_body::Frame::data(Bytes::from_static(s.as_bytes())))
                .map_err(|()| std::io::Error::other("connection reset"))
        });
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(ReadBody::new(body, max))
    }

    #[test]
    fn a_body_in_pieces_is_read_whole_and_up_to_the_limit() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_todo"}}"#;
        let (a, rest) = call.split_at(10);
        let (b, c) = rest.split_at(30);
        let whole = read(vec![Ok(a), Ok(""), Ok(b), Ok(c)], call.len())
            .ok()
            .unwrap();
        assert_eq!(&whole[..], call.as_bytes());
        assert_eq!(
            parse_operation(&whole),
            Ok(Operation::ToolCall("add_todo".into()))
        );
        // One byte over the limit, across pieces: refused, whatever came before.
        assert!(matches!(
            read(vec![Ok(a), Ok(b), Ok(c)], call.len() - 1),
            Err(BodyError::TooLarge)
        ));
        assert!(matches!(
            read(vec![Ok(a), Err(())], call.len()),
            Err(BodyError::Read)
        ));
        assert_eq!(&read(vec![], 10).ok().unwrap()[..], b"");
    }

    #[test]
    fn a_body_in_one_piece_is_kept_without_a_copy() {
        let call: &'static str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let whole = read(vec![Ok(call)], call.len()).ok().unwrap();
        assert_eq!(whole.as_ptr(), call.as_ptr());
    }

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
        assert_eq!(
            op,
            Ok(Operation::Housekeeping("notifications/initialized".into()))
        );
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
    fn one_pass_reads_only_the_members_the_method_decides_on() {
        let op = |b: &str| parse_operation(b.as_bytes());
        // An escaped key is the same key.
        assert_eq!(
            op(r#"{"id":1,"method":"tools/call","params":{"n\u0061me":"a"}}"#),
            Ok(Operation::ToolCall("a".into()))
        );
        // `params` before `method`, and members another method would read, in any shape.
        assert_eq!(
            op(r#"{"params":{"uri":7,"name":"a","ref":1},"id":1,"method":"tools/call"}"#),
            Ok(Operation::ToolCall("a".into()))
        );
        assert_eq!(
            op(r#"{"id":1,"method":"resources/read","params":{"name":1,"name":2,"uri":"x://y"}}"#),
            Ok(Operation::ResourceRead("x://y".into()))
        );
        // A member the method reads: twice, or of another type, is refused.
        for body in [
            r#"{"id":1,"method":"resources/read","params":{"uri":"x://y","uri":"x://y"}}"#,
            r#"{"id":1,"method":"resources/read","params":{"uri":["x://y"]}}"#,
            r#"{"id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"ref":{}}}"#,
            r#"{"id":1,"method":"subscriptions/listen","params":{"notifications":null}}"#,
            r#"{"id":1,"method":"prompts/get","params":null}"#,
        ] {
            assert_eq!(op(body), Err(ParseError::Invalid), "{body}");
        }
        // Methods that decide on nothing take `params` of any shape.
        assert_eq!(
            op(r#"{"id":1,"method":"ping","params":[1,{"a":[]}]}"#),
            Ok(Operation::Housekeeping("ping".into()))
        );
        assert_eq!(
            op(
                r#"{"id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"x://{id}"}}}"#
            ),
            Ok(Operation::CompleteResource("x://{id}".into()))
        );
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let read = |json: &'static str| serde_json::from_str::<Str<'static>>(json).unwrap().0;
        assert!(matches!(
            read(r#""tools/call""#),
            Cow::Borrowed("tools/call")
        ));
        assert!(matches!(read(r#""tools\/call""#), Cow::Owned(s) if s == "tools/call"));
        assert!(serde_json::from_str::<Str<'_>>("7").is_err());
    }

    #[test]
    fn envelope_members() {
        let op = |b: &[u8]| parse_operation(b);
        // Escaped names and values read as what they stand for.
        assert_eq!(
            op(br#"{"id":1,"m\u0065thod":"tools\/call","params":{"name":"a"}}"#),
            Ok(Operation::ToolCall("a".into()))
        );
        // `null` is absent: no method is a response, no id a notification.
        assert_eq!(
            op(br#"{"id":1,"method":null,"result":{}}"#),
            Ok(Operation::Response)
        );
        assert_eq!(
            op(br#"{"id":null,"method":"notifications/x"}"#),
            Ok(Operation::Housekeeping("notifications/x".into()))
        );
        // Members the policy does not read are skipped, twice or not.
        assert_eq!(
            op(br#"{"jsonrpc":"2.0","jsonrpc":1,"id":1,"method":"tools/list"}"#),
            Ok(Operation::List(ListKind::Tools))
        );
        for body in [
            &br#"{"id":1,"id":2,"method":"tools/list"}"#[..],
            br#"{"id":1,"method":7}"#,
            br#"{"id":1,"method":["tools/list"]}"#,
            br#"{"id":1,"method":"tools/list","method":null}"#,
            br#"{"id":1,"method":"tools/call","params":{"name":"a"},"params":null}"#,
            // Invalid UTF-8 in a skipped string, and in the name itself.
            b"{\"id\":1,\"method\":\"tools/list\",\"x\":\"\xff\"}",
            b"{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xc3\"}}",
            br#"{"id":1,"method":"tools/call","params":{"name":"\ud800"}}"#,
        ] {
            assert_eq!(
                op(body),
                Err(ParseError::Invalid),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn parses_every_method_class() {
        let op = |b: &str| parse_operation(b.as_bytes());
        assert_eq!(
            op(
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"a://b"}}"#
            ),
            Ok(Operation::Resources {
                method: "resources/subscribe".into(),
                uris: vec!["a://b".into()]
            })
        );
        assert_eq!(
            op(
                r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a://1","a://2"]}}}"#
            ),
            Ok(Operation::Resources {
                method: "subscriptions/listen".into(),
                uris: vec!["a://1".into(), "a://2".into()]
            })
        );
        assert_eq!(
            op(
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}}"#
            ),
            Ok(Operation::CompletePrompt("p".into()))
        );
        assert_eq!(
            op(
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"a://{x}"}}}"#
            ),
            Ok(Operation::CompleteResource("a://{x}".into()))
        );
        assert_eq!(
            op(r#"{"jsonrpc":"2.0","id":1,"method":"resources/templates/list"}"#),
            Ok(Operation::List(ListKind::ResourceTemplates))
        );
        assert_eq!(
            op(r#"{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}"#),
            Ok(Operation::Housekeeping("logging/setLevel".into()))
        );
        assert_eq!(
            op(r#"{"jsonrpc":"2.0","id":1,"method":"admin/reset"}"#),
            Ok(Operation::Method("admin/reset".into()))
        );
        assert_eq!(
            op(r#"{"jsonrpc":"2.0","id":1,"method":"notifications/x"}"#),
            Ok(Operation::Method("notifications/x".into())),
            "a notification with an id is a request"
        );
        assert_eq!(
            op(r#"{"jsonrpc":"2.0","method":"notifications/x"}"#),
            Ok(Operation::Housekeeping("notifications/x".into()))
        );
        assert_eq!(
            op(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Ok(Operation::Response)
        );
        for bad in [
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":["a"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[1]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","name":"b"}}}"#,
        ] {
            assert_eq!(op(bad), Err(ParseError::Invalid), "{bad}");
        }
    }

    #[test]
    fn huge_session_limits_do_not_panic() {
        struct V;
        #[async_trait::async_trait]
        impl crate::TokenVerifier for V {
            async fn verify(&self, _: &str) -> Result<AccessToken, crate::VerifyError> {
                Err(crate::InvalidToken::Malformed.into())
            }
        }
        let provider = crate::RemoteAuthProvider::builder(Arc::new(V))
            .resource_url("http://127.0.0.1:8000/mcp")
            .authorization_server("https://idp.example.com")
            .build()
            .unwrap();
        let policy = McpPolicy::builder()
            .session_limits(u64::MAX, Duration::MAX)
            .build(&provider);
        assert!(policy.is_ok());
    }

    #[test]
    fn shadowed_patterns() {
        assert!(shadows("todo://*", "todo://tenant/*"));
        assert!(shadows("todo://*", "todo://a"));
        assert!(shadows("a*c", "a*b*c"));
        assert!(shadows("x", "x"));
        assert!(!shadows("todo://tenant/*", "todo://*"));
        assert!(!shadows("a*", "*b"));
        assert!(!shadows("todo://a", "todo://*"));
    }

    #[test]
    fn sse_events_are_written_back_line_by_line() {
        let mut out = Vec::new();
        let event = sse_stream::Sse {
            event: Some("message".into()),
            data: Some("{\n\"a\": 1\n}".into()),
            id: Some("7".into()),
            retry: Some(3000),
        };
        encode_sse(&event, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: message\nid: 7\nretry: 3000\ndata: {\ndata: \"a\": 1\ndata: }\n\n"
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
