//! Why is my token refused? A diagnosis of a protected resource, its authorization servers and,
//! optionally, one token: what `todo doctor` prints, offered as a library so that any server can
//! ship the same command.
//!
//! [`diagnose`] fills a [`Diagnosis`] from an [`AuthProvider`] (and, when given, the server's
//! [`McpPolicy`] and tool names). The verifier does the IdP-specific part through the
//! [`Diagnose`] trait, which [`TokenVerifier::diagnostics`](crate::TokenVerifier::diagnostics) exposes: the JWT verifier checks the
//! metadata and JWKS of each issuer and every claim of a token, the introspection verifier its
//! endpoint and the IdP's answer, the multi-issuer verifier routes to the verifier of the
//! token's issuer. The exact HTTP answer is not predicted but produced: the token goes through
//! the provider's bearer layer and the policy layer in process, as a request would.
//!
//! Exit-status rule ([`Diagnosis::is_ready`]): every [`Status::Fail`] counts (metadata, keys,
//! configuration, a refused token); [`Status::Warn`] findings concern the client flow (no `S256`
//! advertised, no client registration, a tool the token may not call) and do not.
//!
//! The token itself never appears in a diagnosis: only claims, their expected values and the
//! server's answer.
//!
//! ```
//! use mcp_auth_core::diagnose::{Check, Diagnosis, Status};
//!
//! let check = Check::fail("aud", "one of [\"https://mcp.example.com/mcp\"]", "[\"api://other\"]")
//!     .because("the token was issued for another resource");
//! assert_eq!(check.status, Status::Fail);
//! assert_eq!(
//!     check.to_string(),
//!     "[FAIL] aud: expected one of [\"https://mcp.example.com/mcp\"], found [\"api://other\"]: \
//!      the token was issued for another resource"
//! );
//! let diagnosis = Diagnosis::default();
//! assert!(diagnosis.is_ready());
//! ```

use std::convert::Infallible;
use std::fmt;

use async_trait::async_trait;
use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use tower::{Layer, ServiceExt};
#[cfg(feature = "http-client")]
use url::Url;

use crate::claims::ClaimRules;
#[cfg(feature = "http-client")]
use crate::fetch::HttpClient;
use crate::policy::{Decision, McpPolicy, Operation, ToolRule};
use crate::{AccessToken, AuthProvider, InvalidToken, VerifyError};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// As expected.
    Pass,
    /// A client-flow finding: what an MCP client will do wrong. Does not change the exit status.
    Warn,
    /// The server cannot work, or the token is refused.
    Fail,
    /// Not checked (an earlier check already decided).
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "[ok]  ",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
            Status::Skipped => "[skip]",
        }
    }
}

/// One line of a diagnosis: what was checked, what was expected and found, and why it matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`aud`, `S256`, `jwks`, ...).
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// What the server expects.
    pub expected: String,
    /// What was found.
    pub found: String,
    /// The consequence (for a failure or a warning) or a note; may be empty.
    pub why: String,
}

impl Check {
    fn new(name: &str, status: Status, expected: &str, found: &str) -> Check {
        Check {
            name: name.to_owned(),
            status,
            expected: expected.to_owned(),
            found: found.to_owned(),
            why: String::new(),
        }
    }

    /// A passing check.
    pub fn pass(name: &str, expected: &str, found: &str) -> Check {
        Check::new(name, Status::Pass, expected, found)
    }

    /// A client-flow warning.
    pub fn warn(name: &str, expected: &str, found: &str) -> Check {
        Check::new(name, Status::Warn, expected, found)
    }

    /// A failure.
    pub fn fail(name: &str, expected: &str, found: &str) -> Check {
        Check::new(name, Status::Fail, expected, found)
    }

    /// A check that was not run.
    pub fn skipped(name: &str, why: &str) -> Check {
        Check::new(name, Status::Skipped, "", "").because(why)
    }

    /// Adds the consequence or a note.
    #[must_use]
    pub fn because(mut self, why: impl Into<String>) -> Check {
        self.why = why.into();
        self
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:", self.status.label(), self.name)?;
        let mut sep = " ";
        if !self.expected.is_empty() {
            write!(f, " expected {}", self.expected)?;
            sep = ", ";
        }
        if !self.found.is_empty() {
            write!(f, "{sep}found {}", self.found)?;
        }
        if !self.why.is_empty() {
            if self.expected.is_empty() && self.found.is_empty() {
                write!(f, " {}", self.why)?;
            } else {
                write!(f, ": {}", self.why)?;
            }
        }
        Ok(())
    }
}

/// The checks of one authorization server (issuer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerReport {
    /// The issuer.
    pub issuer: String,
    /// Metadata, keys, PKCE, registration, scopes.
    pub checks: Vec<Check>,
}

/// An HTTP answer: status and `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The `WWW-Authenticate` header, when sent.
    pub www_authenticate: Option<String>,
}

impl HttpAnswer {
    /// Whether the request goes through (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl fmt::Display for HttpAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(f, "{} {reason}", self.status)?;
        if let Some(w) = &self.www_authenticate {
            write!(f, ", WWW-Authenticate: {w}")?;
        }
        Ok(())
    }
}

/// What happened to the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReport {
    /// Every check, expected versus found.
    pub checks: Vec<Check>,
    /// The answer to an `initialize` request carrying the token.
    pub answer: HttpAnswer,
    /// Per tool: its scope rule (expected) versus the token's scopes (found), and the answer to
    /// `tools/call` (a refusal is a warning: the token is accepted, the tool needs more).
    pub tools: Vec<Check>,
}

/// A full diagnosis. [`Display`](fmt::Display) renders what `todo doctor` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The provider's name (`jwt`, `entra`, ...).
    pub provider: String,
    /// The resource URL (R).
    pub resource: String,
    /// The audiences the bearer layer accepts.
    pub audiences: Vec<String>,
    /// The authorization servers of the metadata.
    pub authorization_servers: Vec<String>,
    /// The scopes every request needs (as tokens carry them).
    pub required_scopes: Vec<String>,
    /// The 401 challenge's `scope` (as clients must ask for it).
    pub challenge_scope: String,
    /// The metadata's `scopes_supported` (as clients must ask for them).
    pub scopes_supported: Vec<String>,
    /// Configuration findings that belong to no issuer.
    pub configuration: Vec<Check>,
    /// One report per issuer.
    pub issuers: Vec<IssuerReport>,
    /// The token's report, when a token was given.
    pub token: Option<TokenReport>,
}

impl Diagnosis {
    fn all_checks(&self) -> impl Iterator<Item = &Check> {
        self.configuration
            .iter()
            .chain(self.issuers.iter().flat_map(|i| &i.checks))
            .chain(self.token.iter().flat_map(|t| &t.checks))
    }

    /// Ready: no check failed and the token, if given, is accepted. Warnings do not count.
    pub fn is_ready(&self) -> bool {
        self.all_checks().all(|c| c.status != Status::Fail)
            && self.token.as_ref().is_none_or(|t| t.answer.is_success())
    }

    /// The failed checks.
    pub fn failures(&self) -> Vec<&Check> {
        self.all_checks()
            .filter(|c| c.status == Status::Fail)
            .collect()
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(" ")
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "provider:              {}", self.provider)?;
        writeln!(f, "resource (R):          {}", self.resource)?;
        writeln!(f, "accepted audiences:    {}", list(&self.audiences))?;
        let issuers: Vec<String> = self.issuers.iter().map(|i| i.issuer.clone()).collect();
        writeln!(f, "accepted issuers:      {}", list(&issuers))?;
        writeln!(
            f,
            "authorization servers: {}",
            list(&self.authorization_servers)
        )?;
        writeln!(f, "required scopes:       {}", list(&self.required_scopes))?;
        writeln!(f, "challenge scopes:      {}", self.challenge_scope)?;
        writeln!(f, "scopes_supported:      {}", list(&self.scopes_supported))?;
        if !self.configuration.is_empty() {
            writeln!(f, "\nconfiguration")?;
            for c in &self.configuration {
                writeln!(f, "  {c}")?;
            }
        }
        for report in &self.issuers {
            writeln!(f, "\nissuer {}", report.issuer)?;
            for c in &report.checks {
                writeln!(f, "  {c}")?;
            }
        }
        if let Some(t) = &self.token {
            writeln!(f, "\ntoken (never printed)")?;
            for c in &t.checks {
                writeln!(f, "  {c}")?;
            }
            writeln!(f, "\nHTTP answer to initialize: {}", t.answer)?;
            if !t.tools.is_empty() {
                writeln!(f, "\ntools")?;
                for c in &t.tools {
                    writeln!(f, "  {c}")?;
                }
            }
        }
        let failures = self.failures();
        if self.is_ready() {
            writeln!(f, "\nresult: ready")
        } else if failures.is_empty() {
            writeln!(f, "\nresult: NOT ready: the token is refused")
        } else {
            let names: Vec<&str> = failures.iter().map(|c| c.name.as_str()).collect();
            writeln!(f, "\nresult: NOT ready: {} failed", names.join(", "))
        }
    }
}

/// What a verifier contributes to a diagnosis (see the [module docs](self)).
#[async_trait]
pub trait Diagnose: Send + Sync {
    /// Checks every issuer the verifier accepts: metadata (use
    /// [`check_authorization_server`]), keys or endpoints. `scopes` are the scopes clients are
    /// told to ask for (the metadata's `scopes_supported`).
    async fn check_issuers(&self, scopes: &[String]) -> Vec<IssuerReport>;

    /// Checks `token`, one line per rule, expected versus found (use [`check_claims`] for the
    /// claims). The token must not appear in the result.
    async fn check_token(&self, token: &str) -> Vec<Check>;
}

/// Most characters of an attacker-controlled value shown in a diagnosis.
const SHOWN: usize = 120;

/// `v` quoted and escaped, cut at 120 characters.
pub fn shown(v: &str) -> String {
    let mut s: String = v.chars().take(SHOWN).collect::<String>();
    if v.chars().count() > SHOWN {
        s.push('…');
    }
    format!("{:?}", s)
}

fn shown_value(v: &Value) -> String {
    match v {
        Value::String(s) => shown(s),
        other => {
            let text = other.to_string();
            let cut: String = text.chars().take(SHOWN).collect();
            if cut.len() < text.len() {
                format!("{cut}…")
            } else {
                cut
            }
        }
    }
}

fn shown_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| shown(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn one_of(items: &[String]) -> String {
    match items {
        [one] => shown(one),
        _ => format!("one of {}", shown_list(items)),
    }
}

fn present<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    claims.get(name).filter(|v| !v.is_null())
}

fn relative(t: u64, now: u64) -> String {
    if t >= now {
        format!("{t} (in {} s)", t - now)
    } else {
        format!("{t} ({} s ago)", now - t)
    }
}

/// The claim checks of core's identity model ([`map_claims`](crate::claims::map_claims)), one
/// line each, expected versus found: `iss`, `aud` (or the client allowlist standing in for it),
/// `exp`, `nbf`, `sub` (or the client that makes a machine principal), the client allowlist,
/// each required claim, and the scopes found. `map_claims` stays the judge; this explains.
pub fn check_claims(rules: &ClaimRules, claims: &Map<String, Value>, now: u64) -> Vec<Check> {
    let mut out = Vec::new();
    let leeway = rules.leeway();

    let issuers = rules.accepted_issuers();
    match present(claims, "iss") {
        _ if issuers.is_empty() => out.push(Check::pass("iss", "any issuer", "")),
        Some(Value::String(iss)) if issuers.contains(iss) => {
            out.push(Check::pass("iss", &one_of(issuers), &shown(iss)))
        }
        Some(v) => out.push(
            Check::fail("iss", &one_of(issuers), &shown_value(v))
                .because("the token comes from another authorization server (or tenant)"),
        ),
        None => out.push(
            Check::fail("iss", &one_of(issuers), "no iss")
                .because("the token does not say who issued it"),
        ),
    }

    let client = rules
        .client_id_claim_names()
        .iter()
        .find_map(|n| present(claims, n).map(|v| (n.clone(), v)));
    let client_id = client.as_ref().and_then(|(_, v)| v.as_str());
    let allowed = rules.accepted_clients();
    let client_allowed =
        |c: Option<&str>| allowed.is_some_and(|a| c.is_some_and(|c| a.iter().any(|x| x == c)));

    let aud: Option<Vec<String>> = present(claims, "aud").map(|v| match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or("").to_owned())
            .collect(),
        other => vec![other.to_string()],
    });
    match (rules.accepted_audiences(), &aud) {
        (None, _) => out.push(Check::pass("aud", "any audience (check off)", "")),
        (Some(accepted), Some(found)) if found.iter().any(|a| accepted.contains(a)) => {
            out.push(Check::pass("aud", &one_of(accepted), &shown_list(found)))
        }
        (Some(accepted), Some(found)) => out.push(
            Check::fail("aud", &one_of(accepted), &shown_list(found)).because(
                "the token was issued for another resource: the client must request it with \
                 resource=R (RFC 8707), and the IdP must put R (or an accepted alias) in aud",
            ),
        ),
        (Some(accepted), None) if rules.audience_optional() && client_allowed(client_id) => out
            .push(
                Check::pass("aud", &one_of(accepted), "no aud")
                    .because("accepted: the client allowlist stands in for the audience"),
            ),
        (Some(accepted), None) => out.push(
            Check::fail("aud", &one_of(accepted), "no aud")
                .because("a token without audience could be replayed at any resource"),
        ),
    }

    let date = |name: &str| present(claims, name).map(|v| v.as_u64().ok_or(v));
    match date("exp") {
        Some(Ok(exp)) if exp.saturating_add(leeway) > now => out.push(Check::pass(
            "exp",
            &format!("after now - {leeway} s leeway"),
            &relative(exp, now),
        )),
        Some(Ok(exp)) => out.push(
            Check::fail(
                "exp",
                &format!("after now - {leeway} s leeway"),
                &relative(exp, now),
            )
            .because("the token has expired: the client must refresh it or log in again"),
        ),
        Some(Err(v)) => out.push(
            Check::fail("exp", "a NumericDate", &shown_value(v)).because("exp is not a number"),
        ),
        None if rules.requires_exp() => {
            out.push(Check::fail("exp", "a NumericDate", "no exp").because("a token must expire"))
        }
        None => out.push(Check::pass("exp", "optional", "no exp")),
    }
    for name in ["nbf", "iat"] {
        match date(name) {
            Some(Ok(t)) if t <= now.saturating_add(leeway) => out.push(Check::pass(
                name,
                &format!("before now + {leeway} s leeway"),
                &relative(t, now),
            )),
            Some(Ok(t)) => out.push(
                Check::fail(
                    name,
                    &format!("before now + {leeway} s leeway"),
                    &relative(t, now),
                )
                .because("the token is not valid yet: check the clocks of the IdP and this server"),
            ),
            Some(Err(v)) => out
                .push(Check::fail(name, "a NumericDate", &shown_value(v)).because("not a number")),
            None => {}
        }
    }

    let sub = present(claims, "sub");
    match (sub, client_id) {
        (Some(Value::String(s)), _) => {
            out.push(Check::pass("sub", "a user (sub) or a client", &shown(s)))
        }
        (Some(v), _) => out
            .push(Check::fail("sub", "a string", &shown_value(v)).because("sub must be a string")),
        (None, Some(c)) => out.push(
            Check::pass(
                "sub",
                "a user (sub) or a client",
                &format!("no sub, client {}", shown(c)),
            )
            .because("a machine principal (client credentials)"),
        ),
        (None, None) => out.push(
            Check::fail(
                "sub",
                "a user (sub) or a client",
                "neither sub nor a client id",
            )
            .because("nobody to attribute the request to"),
        ),
    }

    let names = rules.client_id_claim_names().join(" or ");
    match (allowed, &client) {
        (Some(a), Some((n, v))) if client_allowed(v.as_str()) => out.push(Check::pass(
            "client",
            &format!("{} in {}", names, shown_list(a)),
            &format!("{n} {}", shown_value(v)),
        )),
        (Some(a), Some((n, v))) => out.push(
            Check::fail(
                "client",
                &format!("{} in {}", names, shown_list(a)),
                &format!("{n} {}", shown_value(v)),
            )
            .because("this client is not allowed to call this resource"),
        ),
        (Some(a), None) => out.push(
            Check::fail(
                "client",
                &format!("{} in {}", names, shown_list(a)),
                "no client id",
            )
            .because("the token does not name its client"),
        ),
        (None, Some((n, v))) => out.push(Check::pass(
            "client",
            &names,
            &format!("{n} {}", shown_value(v)),
        )),
        (None, None) => {}
    }

    for (name, value) in rules.required_claims() {
        match present(claims, name) {
            Some(Value::String(found)) if found == value => {
                out.push(Check::pass(name, &shown(value), &shown(found)))
            }
            Some(v) => out.push(
                Check::fail(name, &shown(value), &shown_value(v))
                    .because(required_claim_consequence(name)),
            ),
            None => out.push(
                Check::fail(name, &shown(value), &format!("no {name}"))
                    .because(required_claim_consequence(name)),
            ),
        }
    }

    let scope_claim = rules
        .scope_claim_names()
        .iter()
        .find_map(|n| present(claims, n).map(|v| (n, v)));
    match scope_claim {
        Some((n, v)) => out.push(Check::pass(
            "scopes",
            &format!("from {}", rules.scope_claim_names().join(" or ")),
            &format!("{n} {}", shown_value(v)),
        )),
        None => out.push(
            Check::pass(
                "scopes",
                &format!("from {}", rules.scope_claim_names().join(" or ")),
                "none",
            )
            .because("only tools needing no scope are callable"),
        ),
    }
    out
}

fn required_claim_consequence(name: &str) -> &'static str {
    match name {
        "tid" => "a token of another tenant",
        "token_use" => "not an access token (send the access token, not the ID token)",
        _ => "a claim this server requires holds another value",
    }
}

/// The line a verifier's verdict gives when no earlier line explains a refusal.
pub fn verdict(result: &Result<AccessToken, VerifyError>) -> Check {
    match result {
        Ok(_) => Check::pass("verifier", "accepted", "accepted"),
        Err(VerifyError::Invalid(reason)) => Check::fail(
            "verifier",
            "accepted",
            &format!("refused ({})", reason.code()),
        )
        .because(reason.description()),
        Err(e) => Check::fail("verifier", "accepted", &e.to_string()).because(
            "the server cannot check tokens right now: the IdP is unreachable or misconfigured",
        ),
    }
}

/// The metadata locations of `issuer`, in the order the MCP authorization spec has clients try
/// them: RFC 8414 with path insertion, OpenID Connect with path insertion, OpenID Connect with
/// the path appended (the last two are one URL for an issuer without a path).
#[cfg(feature = "http-client")]
fn metadata_urls(issuer: &Url) -> Vec<(Url, &'static str)> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let mut out = Vec::new();
    let candidates = [
        (
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            "RFC 8414",
        ),
        (
            format!("{origin}/.well-known/openid-configuration{path}"),
            "OpenID Connect",
        ),
        (
            format!("{origin}{path}/.well-known/openid-configuration"),
            "OpenID Connect",
        ),
    ];
    for (u, kind) in candidates {
        if let Ok(u) = Url::parse(&u)
            && !out.iter().any(|(seen, _)| *seen == u)
        {
            out.push((u, kind));
        }
    }
    out
}

/// [`check_authorization_server`] with the shared HTTP client; without the `http-client` feature,
/// a skipped check saying so.
pub(crate) async fn check_authorization_server_shared(
    issuer: &str,
    scopes: &[String],
) -> Vec<Check> {
    #[cfg(feature = "http-client")]
    {
        check_authorization_server(&HttpClient::shared(), issuer, scopes)
            .await
            .0
    }
    #[cfg(not(feature = "http-client"))]
    {
        let _ = (issuer, scopes);
        vec![Check::skipped(
            "metadata",
            "mcp-auth-core was built without its `http-client` feature: metadata not fetched",
        )]
    }
}

/// The authorization server's metadata as an MCP client sees it: found (RFC 8414 or OpenID
/// Connect discovery) and naming `issuer`; `code_challenge_methods_supported` with `S256`; a
/// `registration_endpoint` (DCR) or `client_id_metadata_document_supported` (CIMD); the `scopes`
/// clients are told to request in `scopes_supported`. Returns the checks and the document.
#[cfg(feature = "http-client")]
pub async fn check_authorization_server(
    http: &HttpClient,
    issuer: &str,
    scopes: &[String],
) -> (Vec<Check>, Option<Map<String, Value>>) {
    let mut out = Vec::new();
    let Ok(url) = Url::parse(issuer) else {
        out.push(
            Check::fail("metadata", "an issuer URL", &shown(issuer))
                .because("the issuer is not a URL"),
        );
        return (out, None);
    };
    let mut doc = None;
    let mut tried = Vec::new();
    for (candidate, kind) in metadata_urls(&url) {
        match http.get_json::<Map<String, Value>>(&candidate).await {
            Ok(found) => {
                let named = found
                    .body
                    .get("issuer")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if named.as_deref() == Some(issuer) {
                    out.push(Check::pass(
                        "metadata",
                        &format!("issuer {}", shown(issuer)),
                        &format!("{kind} document at {candidate}"),
                    ));
                    doc = Some(found.body);
                    break;
                }
                tried.push(format!(
                    "{candidate}: names issuer {}",
                    named.as_deref().map_or("(none)".into(), shown)
                ));
            }
            Err(e) => tried.push(format!("{candidate}: {e}")),
        }
    }
    let Some(doc) = doc else {
        out.push(
            Check::fail("metadata", &format!("a document naming issuer {}", shown(issuer)), &tried.join("; "))
                .because("MCP clients find the authorization and token endpoints there: without it they cannot log in"),
        );
        return (out, None);
    };
    let strings = |name: &str| -> Option<Vec<String>> {
        doc.get(name).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    match strings("code_challenge_methods_supported") {
        Some(m) if m.iter().any(|m| m == "S256") => out.push(Check::pass("S256", "code_challenge_methods_supported with S256", &shown_list(&m))),
        found => out.push(
            Check::warn(
                "S256",
                "code_challenge_methods_supported with S256",
                &found.map_or("not advertised".into(), |m| shown_list(&m)),
            )
            .because("MCP clients must refuse to log in when the metadata does not advertise PKCE S256 (MCP authorization spec); some go on anyway"),
        ),
    }
    let dcr = doc.get("registration_endpoint").and_then(Value::as_str);
    let cimd = doc
        .get("client_id_metadata_document_supported")
        .and_then(Value::as_bool)
        == Some(true);
    match (dcr, cimd) {
        (Some(r), _) => out.push(Check::pass("registration", "registration_endpoint (DCR) or client_id_metadata_document_supported (CIMD)", &format!("registration_endpoint {}", shown(r)))),
        (None, true) => out.push(Check::pass("registration", "registration_endpoint (DCR) or client_id_metadata_document_supported (CIMD)", "client_id_metadata_document_supported")),
        (None, false) => out.push(
            Check::warn("registration", "registration_endpoint (DCR) or client_id_metadata_document_supported (CIMD)", "neither")
                .because("an MCP client without a pre-registered client id cannot register itself: the user must create a client in the IdP and give its id to the client"),
        ),
    }
    if !scopes.is_empty() {
        match strings("scopes_supported") {
            Some(s) => {
                let missing: Vec<String> =
                    scopes.iter().filter(|x| !s.contains(x)).cloned().collect();
                if missing.is_empty() {
                    out.push(Check::pass(
                        "scopes_supported",
                        &shown_list(scopes),
                        "all listed",
                    ));
                } else {
                    out.push(
                        Check::warn("scopes_supported", &shown_list(scopes), &format!("missing {}", shown_list(&missing)))
                            .because("clients requesting these scopes may be refused (invalid_scope), or get tokens without them and meet 403"),
                    );
                }
            }
            None => out.push(
                Check::warn("scopes_supported", &shown_list(scopes), "not advertised").because(
                    "clients cannot tell whether the IdP grants the scopes this server asks for",
                ),
            ),
        }
    }
    (out, Some(doc))
}

/// The body of the `initialize` request sent through the layers.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "mcp-auth doctor", "version": "1"}}})
}

/// Sends `body` with `token` through the provider's bearer layer and, when given, the policy
/// layer, to a handler answering 200: the answer the server would give.
async fn answer(
    provider: &dyn AuthProvider,
    policy: Option<&McpPolicy>,
    token: &str,
    body: &Value,
) -> HttpAnswer {
    let ok = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let request = Request::post(provider.protected_resource().resource().as_str())
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(Body::from(body.to_string()));
    let Ok(request) = request else {
        return HttpAnswer {
            status: 400,
            www_authenticate: None,
        };
    };
    let resp = match policy {
        Some(p) => {
            provider
                .layer()
                .layer(p.layer().layer(ok))
                .oneshot(request)
                .await
        }
        None => provider.layer().layer(ok).oneshot(request).await,
    };
    match resp {
        Ok(r) => HttpAnswer {
            status: r.status().as_u16(),
            www_authenticate: r
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        Err(_) => HttpAnswer {
            status: 500,
            www_authenticate: None,
        },
    }
}

/// Diagnoses `provider` (named `name` in the report) and, when given, `token`: the
/// configuration, each issuer (through the verifier's [`Diagnose`], when it has one), every
/// check of the token, the answer to `initialize`, and with `policy` the answer to `tools/call`
/// of each of `tools`.
pub async fn diagnose(
    name: &str,
    provider: &dyn AuthProvider,
    policy: Option<&McpPolicy>,
    tools: &[String],
    token: Option<&str>,
) -> Diagnosis {
    let pr = provider.protected_resource();
    let meta = provider.metadata();
    let verifier = provider.verifier();
    let mut d = Diagnosis {
        provider: name.to_owned(),
        resource: pr.resource().as_str().to_owned(),
        audiences: pr.audiences().to_vec(),
        authorization_servers: meta.authorization_servers.clone(),
        required_scopes: pr.required_scopes().iter().map(str::to_owned).collect(),
        challenge_scope: pr.challenge_scope(),
        scopes_supported: meta.scopes_supported.clone(),
        ..Diagnosis::default()
    };
    if meta.authorization_servers.is_empty() {
        d.configuration.push(
            Check::fail("authorization_servers", "at least one", "none")
                .because("clients cannot find where to log in"),
        );
    }
    match verifier.diagnostics() {
        Some(diag) => {
            d.issuers = diag.check_issuers(&meta.scopes_supported).await;
            for a in &meta.authorization_servers {
                if !d.issuers.iter().any(|i| &i.issuer == a) {
                    let checks = check_authorization_server_shared(a, &meta.scopes_supported).await;
                    d.issuers.push(IssuerReport {
                        issuer: a.clone(),
                        checks,
                    });
                }
            }
        }
        None => {
            d.configuration.push(Check::skipped(
                "verifier",
                "this verifier offers no diagnosis of its own: only the advertised authorization servers are checked",
            ));
            for a in &meta.authorization_servers {
                let checks = check_authorization_server_shared(a, &meta.scopes_supported).await;
                d.issuers.push(IssuerReport {
                    issuer: a.clone(),
                    checks,
                });
            }
        }
    }
    if let Some(token) = token {
        let mut checks = match verifier.diagnostics() {
            Some(diag) => diag.check_token(token).await,
            None => Vec::new(),
        };
        let result = verifier.verify(token).await;
        let explained = checks.iter().any(|c| c.status == Status::Fail);
        if result.is_ok() || !explained {
            checks.push(verdict(&result));
        }
        let answer_init = answer(provider, policy, token, &initialize()).await;
        if result.is_ok() && !answer_init.is_success() {
            checks.push(
                Check::fail(
                    "resource",
                    "accepted by this resource's bearer layer",
                    &answer_init.status.to_string(),
                )
                .because(layer_refusal(&answer_init)),
            );
        }
        let mut tool_checks = Vec::new();
        if let Some(p) = policy
            && answer_init.is_success()
        {
            let granted = result.as_ref().ok();
            for (i, tool) in tools.iter().enumerate() {
                let body = json!({"jsonrpc": "2.0", "id": i + 2, "method": "tools/call",
                    "params": {"name": tool, "arguments": {}}});
                let a = answer(provider, Some(p), token, &body).await;
                tool_checks.push(tool_check(p, tool, granted, &a));
            }
        }
        d.token = Some(TokenReport {
            checks,
            answer: answer_init,
            tools: tool_checks,
        });
    }
    d
}

/// A tool's line: its scope rule (expected) versus the token's scopes (found), then the answer
/// to `tools/call` and, for a refusal, what would change it. The answer decides the status; the
/// rest explains it.
fn tool_check(
    policy: &McpPolicy,
    tool: &str,
    token: Option<&AccessToken>,
    answer: &HttpAnswer,
) -> Check {
    let expected = match policy.tool_rule(tool) {
        ToolRule::Unruled { default_deny: true } => {
            "a rule for this tool (none: default-deny refuses it)".to_owned()
        }
        ToolRule::Unruled { .. } => "no scope (no rule: any valid token)".to_owned(),
        ToolRule::Ruled { scopes, claims } => {
            let scopes = match scopes.as_slice() {
                [] => "no scope".to_owned(),
                [one] => format!("scope {}", shown(one)),
                more => format!("scopes {}", shown_list(more)),
            };
            if claims {
                format!("{scopes} and the rule's claim conditions")
            } else {
                scopes
            }
        }
    };
    let found = match token.map(AccessToken::scopes) {
        Some([]) => "no scopes".to_owned(),
        Some(scopes) => shown_list(scopes),
        None => "(token not verified)".to_owned(),
    };
    if answer.is_success() {
        return Check::pass(tool, &expected, &found).because("callable");
    }
    let fix = match token.map(|t| policy.decide(t, &Operation::ToolCall(tool.to_owned()))) {
        Some(Decision::Denied { .. }) => {
            "this token may not call it: the rule's claim conditions or default-deny refuse it, \
             more scopes do not help"
        }
        _ => "this token may not call it: the client must ask for the challenge's scope",
    };
    Check::warn(tool, &expected, &found).because(format!("{answer}: {fix}"))
}

fn layer_refusal(a: &HttpAnswer) -> &'static str {
    match a.status {
        401 => {
            "the verifier accepts it but this resource does not (audience or client of another resource)"
        }
        403 => "the token lacks the scopes every request needs",
        _ => "refused by the server",
    }
}

/// The reason codes as a diagnosis names them (for the verifier implementations).
pub fn reason_line(name: &str, reason: InvalidToken, expected: &str, why: &str) -> Check {
    Check::fail(name, expected, &format!("refused ({})", reason.code())).because(why)
}
