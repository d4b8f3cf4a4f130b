//! Hostile-input suite: table-driven bad requests through the real HTTP stack of the todo app
//! (rmcp behind the policy and bearer layers, served on 127.0.0.1), once per verifier: JWT (the
//! development issuer's keys) and introspection (the real `oidc-provider` test IdP, behind a stub
//! that adds canned answers for what the IdP never says). Each case asserts its exact status and
//! challenge; none may succeed; the server must serve valid requests afterwards.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_core::InvalidToken;
use mcp_auth_core::testkit::{in_contract_order, parse_challenge};
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_introspect::IntrospectionVerifier;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use mcp_auth_security_suite::raw::{RawRequest, RawResponse};
use mcp_auth_security_suite::server::{self, TodoServer};
use mcp_auth_security_suite::stub::Stub;
use mcp_auth_security_suite::{READ, WRITE, bounded, mcp};
use serde_json::{Value, json};

const DESC_SCOPE: &str = "The access token lacks a required scope";
const DESC_DENIED: &str = mcp_auth_core::challenge::POLICY_DENIED_DESCRIPTION;

/// What a case must get back.
#[derive(Debug, Clone)]
enum Expect {
    /// 401, challenge without `error`, empty body.
    NoCredentials,
    /// 401 `invalid_token` with this reason's description.
    Invalid(InvalidToken),
    /// 401 `invalid_token` with one of these reasons.
    InvalidOneOf(&'static [InvalidToken]),
    /// 400 `invalid_request` challenge.
    InvalidRequest,
    /// 403 `insufficient_scope` naming `scope` (none when empty), with `description`.
    Forbidden(&'static str, &'static str),
    /// This status (a JSON-RPC error or hyper's own answer); any challenge must be well formed.
    Status(u16),
}

struct Case {
    name: String,
    req: RawRequest,
    expect: Expect,
}

fn case(name: impl Into<String>, req: RawRequest, expect: Expect) -> Case {
    Case {
        name: name.into(),
        req,
        expect,
    }
}

#[derive(Default, Debug)]
struct Tally {
    tried: usize,
    /// Names of the probes run (one per distinct probe, whichever verifier ran it).
    probes: std::collections::BTreeSet<String>,
    /// Names of the probes that assert the full challenge (every parameter the contract fixes),
    /// not only the status.
    full_challenge: std::collections::BTreeSet<String>,
    accepted: usize,
    panics: u64,
    server_errors: usize,
    failures: Vec<String>,
}

fn param<'a>(params: &'a [mcp_auth_core::testkit::Param], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

/// Checks one answer against its expectation.
fn check(resp: &RawResponse, expect: &Expect, metadata_url: &str) -> Result<(), String> {
    let want_status = match expect {
        Expect::NoCredentials | Expect::Invalid(_) | Expect::InvalidOneOf(_) => 401,
        Expect::InvalidRequest => 400,
        Expect::Forbidden(..) => 403,
        Expect::Status(s) => *s,
    };
    if resp.status != want_status {
        return Err(format!(
            "status {} (want {want_status}); www-authenticate {:?}; body {:.200}",
            resp.status,
            resp.header("www-authenticate"),
            resp.text()
        ));
    }
    let www = resp.header("www-authenticate");
    if resp.header_count("www-authenticate") > 1 {
        return Err("more than one WWW-Authenticate header".into());
    }
    let params = match &www {
        Some(h) => {
            let p = parse_challenge(h).ok_or_else(|| format!("malformed challenge {h:?}"))?;
            if !in_contract_order(&p) {
                return Err(format!("challenge out of order: {h}"));
            }
            if param(&p, "resource_metadata") != Some(metadata_url) {
                return Err(format!("resource_metadata is not {metadata_url}: {h}"));
            }
            Some(p)
        }
        None => None,
    };
    let need = |name: &str| -> Result<&Vec<mcp_auth_core::testkit::Param>, String> {
        params
            .as_ref()
            .ok_or_else(|| format!("{name}: no WWW-Authenticate challenge"))
    };
    match expect {
        Expect::NoCredentials => {
            let p = need("no credentials")?;
            if param(p, "error").is_some() || param(p, "scope") != Some(READ) {
                return Err(format!("challenge {www:?}"));
            }
            if !resp.body.is_empty() {
                return Err("401 without credentials has a body".into());
            }
        }
        Expect::Invalid(_) | Expect::InvalidOneOf(_) => {
            let p = need("invalid token")?;
            let allowed: Vec<InvalidToken> = match expect {
                Expect::Invalid(r) => vec![*r],
                Expect::InvalidOneOf(rs) => rs.to_vec(),
                _ => Vec::new(),
            };
            let desc = param(p, "error_description").unwrap_or_default();
            if param(p, "error") != Some("invalid_token")
                || !allowed.iter().any(|r| r.description() == desc)
                || param(p, "scope") != Some(READ)
            {
                return Err(format!("challenge {www:?}, want one of {allowed:?}"));
            }
            let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            if body["error"] != "invalid_token" || body["error_description"] != desc {
                return Err(format!("body {body}"));
            }
        }
        Expect::InvalidRequest => {
            let p = need("invalid request")?;
            if param(p, "error") != Some("invalid_request") {
                return Err(format!("challenge {www:?}"));
            }
        }
        Expect::Forbidden(scope, description) => {
            let p = need("forbidden")?;
            if param(p, "error") != Some("insufficient_scope")
                || param(p, "scope") != (!scope.is_empty()).then_some(*scope)
                || param(p, "error_description") != Some(*description)
            {
                return Err(format!("challenge {www:?}, want scope {scope:?}"));
            }
        }
        Expect::Status(_) => {}
    }
    Ok(())
}

async fn run(label: &str, server: &TodoServer, cases: Vec<Case>) -> Tally {
    let mut names = std::collections::HashSet::new();
    let mut tally = Tally::default();
    for c in cases {
        assert!(
            names.insert(c.name.clone()),
            "duplicate case name {}",
            c.name
        );
        tally.tried += 1;
        // A probe is known by its name: the common cases run under both verifiers under the
        // same names and count once.
        if !matches!(c.expect, Expect::Status(_) | Expect::InvalidRequest) {
            tally.full_challenge.insert(c.name.clone());
        }
        tally.probes.insert(c.name.clone());
        let before = server::panics();
        let result = c.req.send(server.addr()).await;
        let panicked = server::panics() - before;
        tally.panics += panicked;
        match result {
            Err(e) => {
                tally.panics += 1;
                tally
                    .failures
                    .push(format!("[{label}] {}: no answer ({e})", c.name));
            }
            Ok(resp) => {
                if resp.status >= 500 {
                    tally.server_errors += 1;
                }
                if mcp::succeeded(&resp) {
                    tally.accepted += 1;
                    tally
                        .failures
                        .push(format!("[{label}] {}: ACCEPTED ({})", c.name, resp.status));
                }
                if let Err(e) = check(&resp, &c.expect, &server.metadata_url) {
                    tally.failures.push(format!("[{label}] {}: {e}", c.name));
                }
            }
        }
        if panicked > 0 {
            tally.failures.push(format!("[{label}] {}: panic", c.name));
        }
    }
    tally
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(s: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn init(token: &str) -> RawRequest {
    mcp::post(token, None, &mcp::initialize())
}

fn add_todo_body() -> Value {
    mcp::call("add_todo", json!({"text": "pwned"}))
}

/// What the verifier-independent cases need.
struct Ctx {
    /// A valid token with both scopes (principal A).
    rw: String,
    /// A valid read-only token (principal B).
    ro: String,
    /// Principal A's session id.
    session_rw: String,
    /// The reason a well-formed but unknown bearer string gets (`Malformed` for JWT,
    /// `Inactive` for introspection).
    unknown: InvalidToken,
    /// The reason a structurally valid but forged/truncated JWT gets.
    forged: InvalidToken,
}

/// Header, transport, session and body cases: the same for every verifier.
fn common_cases(ctx: &Ctx) -> Vec<Case> {
    use Expect::*;
    let ro = ctx.ro.as_str();
    let rw = ctx.rw.as_str();
    let body = mcp::initialize();
    let plain = || RawRequest::mcp_post("/mcp").json(&body);
    let with_auth = |v: &[u8]| plain().header("authorization", v);
    let mut cases = vec![
        // Missing or foreign credentials.
        case("no authorization header", plain(), NoCredentials),
        case(
            "basic scheme",
            with_auth(b"Basic dXNlcjpwYXNz"),
            NoCredentials,
        ),
        case(
            "digest scheme",
            with_auth(b"Digest username=\"a\""),
            NoCredentials,
        ),
        case(
            "scheme glued to token",
            with_auth(format!("Bearer{ro}").as_bytes()),
            NoCredentials,
        ),
        case(
            "tab after scheme",
            with_auth(format!("Bearer\t{ro}").as_bytes()),
            NoCredentials,
        ),
        case(
            "no-break space after scheme",
            with_auth(format!("Bearer\u{a0}{rw}").as_bytes()),
            NoCredentials,
        ),
        case(
            "token only in the query",
            RawRequest::mcp_post(&format!("/mcp?access_token={rw}")).json(&body),
            NoCredentials,
        ),
        case(
            "token only in a form body",
            RawRequest::new("POST", "/mcp")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("access_token={rw}")),
            NoCredentials,
        ),
        case(
            "GET without token",
            RawRequest::new("GET", "/mcp").header("accept", "text/event-stream"),
            NoCredentials,
        ),
        case(
            "PUT without token",
            RawRequest::new("PUT", "/mcp"),
            NoCredentials,
        ),
        // The endpoint is routed at exactly R's path and dot segments are not normalised, so
        // these are not the MCP endpoint at all: 404 before any auth, with or without a token,
        // and never a request that reaches rmcp.
        case(
            "dot-segment path without token",
            RawRequest::mcp_post("/mcp/../mcp").json(&body),
            Status(404),
        ),
        case(
            "dot-segment path with a valid token",
            RawRequest::mcp_post("/mcp/../mcp").bearer(rw).json(&body),
            Status(404),
        ),
        case(
            "sub-path of the endpoint with a valid token",
            RawRequest::mcp_post("/mcp/extra").bearer(rw).json(&body),
            Status(404),
        ),
        case(
            "forwarded host does not move resource_metadata",
            plain()
                .header("x-forwarded-host", "evil.example")
                .header("x-forwarded-proto", "https"),
            NoCredentials,
        ),
        // Malformed bearer values.
        case(
            "bearer without token",
            with_auth(b"Bearer"),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "bearer with only spaces",
            with_auth(b"Bearer    "),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "token with inner space",
            with_auth(b"Bearer abc def"),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "token with comma",
            with_auth(b"Bearer abc,def"),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "quoted token",
            with_auth(b"Bearer \"abc\""),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "only padding",
            with_auth(b"Bearer ===="),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "padding inside token",
            with_auth(b"Bearer ab=cd"),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "tab inside token",
            with_auth(b"Bearer abc\tdef"),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "double scheme",
            with_auth(format!("Bearer Bearer {rw}").as_bytes()),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "non-UTF-8 token bytes",
            with_auth(b"Bearer \xff\xfe\xfd\xfc"),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "UTF-8 letters in token",
            with_auth("Bearer t\u{f6}ken\u{2603}".as_bytes()),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "upper-case scheme, unknown token",
            with_auth(b"BEARER zzzzzzzz"),
            Invalid(ctx.unknown),
        ),
        case(
            "random token",
            with_auth(b"Bearer 0123456789abcdef0123456789abcdef"),
            Invalid(ctx.unknown),
        ),
        case(
            "token of 8 KiB + 1",
            with_auth(format!("Bearer {}", "a".repeat(8 * 1024 + 1)).as_bytes()),
            Invalid(InvalidToken::TooLarge),
        ),
        case(
            "token of 64 KiB",
            with_auth(format!("Bearer {}", "a".repeat(64 * 1024)).as_bytes()),
            Invalid(InvalidToken::TooLarge),
        ),
        case(
            "truncated token",
            with_auth(format!("Bearer {}", &rw[..rw.len() - 5]).as_bytes()),
            Invalid(ctx.forged),
        ),
        case(
            "half a token",
            with_auth(format!("Bearer {}", &rw[..rw.len() / 2]).as_bytes()),
            Invalid(ctx.unknown),
        ),
        // Smuggling: two headers, comma-joined values.
        case(
            "comma-joined bearer values",
            with_auth(format!("Bearer {ro}, Bearer {rw}").as_bytes()),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "comma-joined tokens",
            with_auth(format!("Bearer {rw},{rw}").as_bytes()),
            Invalid(InvalidToken::Malformed),
        ),
        case(
            "two bearer headers",
            with_auth(format!("Bearer {rw}").as_bytes()).bearer(rw),
            InvalidRequest,
        ),
        case(
            "garbage then valid header",
            with_auth(b"Bearer garbage").bearer(rw),
            InvalidRequest,
        ),
        case(
            "basic then bearer header",
            with_auth(b"Basic dXNlcjpwYXNz").bearer(rw),
            InvalidRequest,
        ),
        case(
            "empty then bearer header",
            with_auth(b"").bearer(ro),
            InvalidRequest,
        ),
        case(
            "header and query token",
            RawRequest::mcp_post(&format!("/mcp?access_token={rw}"))
                .json(&body)
                .bearer(rw),
            InvalidRequest,
        ),
        // What hyper refuses before the layer runs (the server survives).
        case(
            "NUL in header value",
            with_auth(b"Bearer abc\0def"),
            Status(400),
        ),
        case(
            "control byte in header value",
            with_auth(b"Bearer abc\x01def"),
            Status(400),
        ),
        case(
            "bare CR header injection",
            with_auth(b"Bearer abc\rx-injected: 1"),
            Status(400),
        ),
        case(
            "obs-fold continuation",
            plain().raw_header_bytes(format!("authorization: Bearer\r\n {rw}\r\n")),
            Status(400),
        ),
        case(
            "space before colon",
            plain().raw_header_bytes(format!("authorization : Bearer {rw}\r\n")),
            Status(400),
        ),
        case(
            "1 MiB header",
            with_auth(format!("Bearer {}", "a".repeat(1024 * 1024)).as_bytes()),
            Status(431),
        ),
        case(
            "200 headers",
            (0..200)
                .fold(plain(), |r, i| r.header(format!("x-h{i}"), "v"))
                .bearer(rw),
            Status(431),
        ),
        case(
            "content-length and chunked together",
            RawRequest::mcp_post("/mcp")
                .bearer(ro)
                .no_length()
                .header("content-length", "4")
                .header("transfer-encoding", "chunked")
                .body({
                    let b = add_todo_body().to_string();
                    format!("{:x}\r\n{b}\r\n0\r\n\r\n", b.len())
                }),
            // hyper lets chunked framing win (RFC 9112 §6.3): the policy sees add_todo.
            Forbidden(WRITE, DESC_SCOPE),
        ),
        // Host and method games.
        case(
            "disallowed Host header, read-only token",
            init(ro).host("evil.example"),
            Status(403),
        ),
        // The CORS layer (outermost) answers every OPTIONS itself, empty: nothing runs.
        case(
            "OPTIONS without preflight header",
            RawRequest::new("OPTIONS", "/mcp").header("authorization", "Bearer zzzz"),
            Status(200),
        ),
        case(
            "DELETE with garbage token",
            RawRequest::new("DELETE", "/mcp").header("authorization", "Bearer zzzz"),
            Invalid(ctx.unknown),
        ),
        // Sessions are bound to their principal.
        case(
            "another principal's session",
            mcp::post(
                ro,
                Some(&ctx.session_rw),
                &mcp::call("list_todos", json!({})),
            ),
            Status(404),
        ),
        case(
            "another principal's session, add_todo",
            mcp::post(ro, Some(&ctx.session_rw), &add_todo_body()),
            Status(404),
        ),
        case(
            "unknown session id",
            mcp::post(
                ro,
                Some("00000000-0000-0000-0000-000000000000"),
                &mcp::call("list_todos", json!({})),
            ),
            Status(404),
        ),
        case(
            "two session id headers",
            mcp::post(
                ro,
                Some(&ctx.session_rw),
                &mcp::call("list_todos", json!({})),
            )
            .header("mcp-session-id", "x"),
            Status(400),
        ),
        case(
            "non-ASCII session id",
            mcp::post(ro, None, &mcp::call("list_todos", json!({})))
                .header("mcp-session-id", b"\xff\xfe"),
            Status(400),
        ),
    ];

    // JSON-RPC bodies built to confuse the per-tool scope check, sent with the read-only token.
    let forbid_write = Forbidden(WRITE, DESC_SCOPE);
    let forbid_unknown = Forbidden("", DESC_DENIED);
    let raw_body = |name: &str, b: &[u8], expect: Expect| {
        case(
            name,
            RawRequest::mcp_post("/mcp").bearer(ro).body(b),
            expect,
        )
    };
    let add = add_todo_body().to_string();
    let nested = |depth: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"add_todo","arguments":{{"text":"x","deep":{}1{}}}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    cases.extend([
        raw_body("plain add_todo with read-only token", add.as_bytes(), forbid_write.clone()),
        raw_body("batch of one add_todo", format!("[{add}]").as_bytes(), Status(400)),
        raw_body("batch list_todos then add_todo", format!(r#"[{},{add}]"#, mcp::call("list_todos", json!({}))).as_bytes(), Status(400)),
        raw_body("empty batch", b"[]", Status(400)),
        raw_body("duplicate name, allowed first", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_todos","name":"add_todo","arguments":{"text":"x"}}}"#, Status(400)),
        raw_body("duplicate name, allowed last", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_todo","name":"list_todos","arguments":{"text":"x"}}}"#, Status(400)),
        raw_body("duplicate method", br#"{"jsonrpc":"2.0","id":2,"method":"tools/list","method":"tools/call","params":{"name":"add_todo","arguments":{"text":"x"}}}"#, Status(400)),
        raw_body("duplicate params", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_todos"},"params":{"name":"add_todo","arguments":{"text":"x"}}}"#, Status(400)),
        raw_body("escaped underscore in tool name", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add\u005ftodo","arguments":{"text":"x"}}}"#, forbid_write.clone()),
        raw_body("fully escaped tool name", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"\u0061\u0064\u0064\u005f\u0074\u006f\u0064\u006f","arguments":{"text":"x"}}}"#, forbid_write.clone()),
        raw_body("escaped slash in method", br#"{"jsonrpc":"2.0","id":2,"method":"tools\/call","params":{"name":"add_todo","arguments":{"text":"x"}}}"#, forbid_write.clone()),
        raw_body("unicode-escaped method", br#"{"jsonrpc":"2.0","id":2,"method":"\u0074ools/call","params":{"name":"add_todo","arguments":{"text":"x"}}}"#, forbid_write.clone()),
        raw_body("escaped key name", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"n\u0061me":"add_todo","arguments":{"text":"x"}}}"#, forbid_write.clone()),
        raw_body("NUL after tool name", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_todo\u0000","arguments":{"text":"x"}}}"#, forbid_unknown.clone()),
        raw_body("homoglyph tool name", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"add_tod\u{43e}\",\"arguments\":{\"text\":\"x\"}}}".as_bytes(), forbid_unknown.clone()),
        raw_body("lone surrogate in tool name", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_todo\ud800","arguments":{"text":"x"}}}"#, Status(400)),
        raw_body("invalid UTF-8 in tool name", b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"add_todo\xff\",\"arguments\":{\"text\":\"x\"}}}", Status(400)),
        raw_body("nesting 100 deep in arguments", nested(100).as_bytes(), forbid_write.clone()),
        // The policy decides on the name; the arguments' depth only matters to rmcp, which
        // refuses past its recursion limit (with 415, its answer to undeserializable bodies).
        raw_body("nesting 10000 deep in arguments", nested(10_000).as_bytes(), forbid_write.clone()),
        raw_body("nesting 10000 deep, allowed tool", nested(10_000).replace("add_todo", "list_todos").as_bytes(), Status(415)),
        raw_body("params as array", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":["add_todo",{"text":"x"}]}"#, Status(400)),
        raw_body("params missing", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call"}"#, Status(400)),
        raw_body("name is a number", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":7,"arguments":{}}}"#, Status(400)),
        raw_body("name is null", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":null,"arguments":{}}}"#, Status(400)),
        raw_body("name is an array", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":["list_todos","add_todo"]}}"#, Status(400)),
        raw_body("byte-order mark before body", format!("\u{feff}{add}").as_bytes(), Status(400)),
        raw_body("trailing garbage", format!("{add}xyz").as_bytes(), Status(400)),
        raw_body("two concatenated objects", format!("{}{add}", mcp::call("list_todos", json!({}))).as_bytes(), Status(400)),
        raw_body("comment in JSON", br#"{"jsonrpc":"2.0","id":2,/*x*/"method":"tools/call","params":{"name":"add_todo"}}"#, Status(400)),
        raw_body("JSON string body", br#""add_todo""#, Status(400)),
        raw_body("empty body", b"", Status(400)),
        raw_body("truncated body", &add.as_bytes()[..add.len() - 3], Status(400)),
        raw_body("body over 4 MiB", format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"list_todos","arguments":{{"pad":"{}"}}}}}}"#, "x".repeat(4 * 1024 * 1024 + 10)).as_bytes(), Status(413)),
        case("add_todo as text/plain", RawRequest::new("POST", "/mcp").bearer(ro).header("content-type", "text/plain").header("accept", "application/json, text/event-stream").body(add.as_bytes()), forbid_write.clone()),
        case("add_todo in a session of its own principal", mcp::post(ro, None, &add_todo_body()), forbid_write.clone()),
        raw_body("complete_todo with read-only token", mcp::call("complete_todo", json!({"id": 1})).to_string().as_bytes(), forbid_write.clone()),
        raw_body("unknown tool", mcp::call("drop_tables", json!({})).to_string().as_bytes(), forbid_unknown.clone()),
        raw_body("resources/read without a rule", br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///etc/passwd"}}"#, forbid_unknown.clone()),
        raw_body("prompts/get without a rule", br#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"x"}}"#, forbid_unknown.clone()),
    ]);

    // Every method class under default-deny, sent with the read+write token: the todo server
    // has rules for its four tools only, so each of these is refused before rmcp runs, however
    // the method or its targets are spelled.
    let rw_body = |name: &str, b: &[u8], expect: Expect| {
        case(
            name,
            RawRequest::mcp_post("/mcp").bearer(rw).body(b),
            expect,
        )
    };
    cases.extend([
        rw_body("class: unknown method admin/reset", br#"{"jsonrpc":"2.0","id":2,"method":"admin/reset","params":{}}"#, forbid_unknown.clone()),
        rw_body("class: unknown method without params", br#"{"jsonrpc":"2.0","id":2,"method":"admin/reset"}"#, forbid_unknown.clone()),
        rw_body("class: escaped unknown method", br#"{"jsonrpc":"2.0","id":2,"method":"\u0061dmin\/reset","params":{}}"#, forbid_unknown.clone()),
        rw_body("class: notification method sent with an id", br#"{"jsonrpc":"2.0","id":2,"method":"notifications/reset","params":{}}"#, forbid_unknown.clone()),
        rw_body("class: method differing in case", br#"{"jsonrpc":"2.0","id":2,"method":"Tools/call","params":{"name":"list_todos"}}"#, forbid_unknown.clone()),
        rw_body("class: method with trailing space", br#"{"jsonrpc":"2.0","id":2,"method":"tools/call ","params":{"name":"list_todos"}}"#, forbid_unknown.clone()),
        rw_body("class: tasks/get without a rule", br#"{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"t"}}"#, forbid_unknown.clone()),
        rw_body("class: tasks/cancel without a rule", br#"{"jsonrpc":"2.0","id":2,"method":"tasks/cancel","params":{"taskId":"t"}}"#, forbid_unknown.clone()),
        rw_body("class: sampling/createMessage sent to the server", br#"{"jsonrpc":"2.0","id":2,"method":"sampling/createMessage","params":{}}"#, forbid_unknown.clone()),
        rw_body("class: completion of a prompt", br#"{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"x"},"argument":{"name":"a","value":""}}}"#, forbid_unknown.clone()),
        rw_body("class: completion of a resource", br#"{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///{p}"},"argument":{"name":"a","value":""}}}"#, forbid_unknown.clone()),
        rw_body("class: completion with an unknown ref type", br#"{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/tool","name":"add_todo"},"argument":{"name":"a","value":""}}}"#, Status(400)),
        rw_body("class: completion with a duplicate ref", br#"{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"x"},"ref":{"type":"ref/prompt","name":"y"},"argument":{"name":"a","value":""}}}"#, Status(400)),
        rw_body("class: resources/subscribe", br#"{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"file:///etc/passwd"}}"#, forbid_unknown.clone()),
        rw_body("class: resources/unsubscribe", br#"{"jsonrpc":"2.0","id":2,"method":"resources/unsubscribe","params":{"uri":"file:///etc/passwd"}}"#, forbid_unknown.clone()),
        rw_body("class: resources/directory/read", br#"{"jsonrpc":"2.0","id":2,"method":"resources/directory/read","params":{"uri":"file:///"}}"#, forbid_unknown.clone()),
        rw_body("class: skills/get", br#"{"jsonrpc":"2.0","id":2,"method":"skills/get","params":{"uri":"skill://x/SKILL.md"}}"#, forbid_unknown.clone()),
        rw_body("class: subscriptions/listen naming a resource", br#"{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///etc/passwd"]}}}"#, forbid_unknown.clone()),
        rw_body("class: subscriptions/listen with a duplicate filter key", br#"{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[],"resourceSubscriptions":["file:///etc/passwd"]}}}"#, Status(400)),
        rw_body("class: subscriptions/listen filter not a list", br#"{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":"file:///etc/passwd"}}}"#, Status(400)),
        rw_body("class: resources/subscribe with params as array", br#"{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":["file:///etc/passwd"]}"#, Status(400)),
        rw_body("class: resources/subscribe with a duplicate uri", br#"{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"todo://a","uri":"file:///etc/passwd"}}"#, Status(400)),
    ]);
    cases
}

/// Attack JWTs (the jwt issue's list), each with the reason the JWT verifier must give.
fn jwt_attacks(dev: &DevIssuer, resource: &str) -> Vec<(String, String, InvalidToken)> {
    use InvalidToken::*;
    let iss = dev.issuer().to_owned();
    let spec = || {
        TokenSpec::new("mallory")
            .scopes([READ, WRITE])
            .audience(resource)
            .client_id("evil")
    };
    let claims = json!({"iss": iss, "sub": "mallory", "aud": resource, "exp": now() + 600, "scope": "todo:read todo:write"});
    let hs256 = |secret: &[u8], kid: Option<&str>| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let jwks = dev.jwks_json();
    let rsa_jwk = jwks["keys"][0].to_string();
    let n = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    let rs_kid = dev.kid(DevAlg::RS256).to_owned();
    let payload = b64(claims.to_string().as_bytes());
    let valid = dev.mint(spec());
    let parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let mut tampered: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    tampered["sub"] = json!("admin");
    let attacker = DevIssuer::generate_fresh(iss.clone());
    let attacker_jwk = attacker.jwks_json()["keys"][0].clone();
    let injected = |kid: &str| {
        attacker.mint(
            spec()
                .kid(Some(kid))
                .header("jku", json!("https://evil.example/jwks"))
                .header("x5u", json!("https://evil.example/cert"))
                .header("jwk", attacker_jwk.clone()),
        )
    };
    let header_rs = json!({"alg": "RS256", "typ": "at+jwt", "kid": rs_kid}).to_string();
    let exp = now() + 600;
    let mut out = vec![
        ("alg none".into(), format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"at+jwt"}"#)), Algorithm),
        ("alg None".into(), format!("{}.{payload}.", b64(br#"{"alg":"None"}"#)), Algorithm),
        ("alg none with a signature".into(), format!("{}.{payload}.{}", b64(br#"{"alg":"none"}"#), b64(b"sig")), Algorithm),
        ("HS256 keyed with the RSA JWK".into(), hs256(rsa_jwk.as_bytes(), Some(&rs_kid)), Algorithm),
        ("HS256 keyed with the RSA modulus".into(), hs256(&n, Some(&rs_kid)), Algorithm),
        ("HS256 keyed with the JWKS".into(), hs256(jwks.to_string().as_bytes(), None), Algorithm),
        ("ES256 token naming the RSA kid".into(), dev.mint(spec().alg(DevAlg::ES256).kid(Some(&rs_kid))), Algorithm),
        ("EdDSA token naming the EC kid".into(), dev.mint(spec().alg(DevAlg::EdDSA).kid(Some(dev.kid(DevAlg::ES256)))), Algorithm),
        ("cnf jkt bound".into(), dev.mint(spec().claim("cnf", json!({"jkt": "abc"}))), SenderConstrained),
        ("cnf x5t bound".into(), dev.mint(spec().claim("cnf", json!({"x5t#S256": "abc"}))), SenderConstrained),
        ("jku/x5u/jwk injection, attacker kid".into(), injected(attacker.kid(DevAlg::RS256)), UnknownKey),
        ("jku/x5u/jwk injection, legit kid".into(), injected(&rs_kid), BadSignature),
        ("attacker key, own kid".into(), attacker.mint(spec()), UnknownKey),
        ("attacker key, legit kid".into(), attacker.mint(spec().kid(Some(&rs_kid))), BadSignature),
        ("expired two minutes ago".into(), dev.mint(spec().expires_at_unix(now() - 120)), Expired),
        ("expired in 1970".into(), dev.mint(spec().expires_at_unix(1)), Expired),
        ("nbf in the future".into(), dev.mint(spec().not_before_unix(now() + 600)), NotYetValid),
        ("iat in the future".into(), dev.mint(spec().issued_at_unix(now() + 600)), NotYetValid),
        ("wrong issuer".into(), dev.mint(spec().issuer("https://evil.example")), Issuer),
        ("issuer with trailing slash".into(), dev.mint(spec().issuer(format!("{iss}/"))), Issuer),
        ("issuer missing".into(), dev.mint(spec().claim("iss", Value::Null)), Issuer),
        ("another resource's token".into(), dev.mint(spec().audience("http://127.0.0.1:1/other")), Audience),
        ("audience array without ours".into(), dev.mint(spec().audiences(["https://a.example", "https://b.example"])), Audience),
        ("audience with trailing slash".into(), dev.mint(spec().audience(format!("{resource}/"))), Audience),
        ("audience missing".into(), dev.mint(spec().claim("aud", Value::Null)), Audience),
        ("exp missing".into(), dev.mint(spec().claim("exp", Value::Null)), MissingClaim),
        ("exp as a string".into(), dev.mint(spec().claim("exp", json!("4102444800"))), MissingClaim),
        ("tampered payload".into(), format!("{}.{}.{}", parts[0], b64(tampered.to_string().as_bytes()), parts[2]), BadSignature),
        ("signature of another token".into(), format!("{}.{}.{}", parts[0], parts[1], dev.mint(spec()).rsplit('.').next().unwrap()), BadSignature),
        ("empty signature".into(), format!("{}.{}.", parts[0], parts[1]), Malformed),
        ("two segments".into(), format!("{}.{}", parts[0], parts[1]), Malformed),
        ("four segments".into(), format!("{valid}.extra"), Malformed),
        ("only dots".into(), "....".into(), Malformed),
        ("crit names exp".into(), dev.mint(spec().header("crit", json!(["exp"])).header("exp", json!(1))), Critical),
        ("typ JOSE".into(), dev.mint(spec().typ(Some("JOSE"))), Type),
        ("typ dpop+jwt".into(), dev.mint(spec().typ(Some("dpop+jwt"))), Type),
        ("typ id_token+jwt".into(), dev.mint(spec().typ(Some("id_token+jwt"))), Type),
        ("kid with quotes and backslashes".into(), dev.mint(spec().kid(Some("a\"b\\c\", scope=\"admin"))), UnknownKey),
        ("kid with CRLF".into(), dev.mint(spec().kid(Some("k\r\nx-injected: 1"))), UnknownKey),
        ("issuer with CRLF".into(), dev.mint(spec().issuer(format!("{iss}\r\nx: y"))), Issuer),
        (
            "duplicate aud claims".into(),
            dev.sign_raw(DevAlg::RS256, &header_rs, format!(r#"{{"iss":"{iss}","sub":"m","aud":"https://evil.example","aud":"{resource}","exp":{exp}}}"#).as_bytes()),
            Malformed,
        ),
        (
            "duplicate kid header".into(),
            dev.sign_raw(DevAlg::RS256, &format!(r#"{{"alg":"RS256","kid":"{rs_kid}","kid":"other"}}"#), format!(r#"{{"iss":"{iss}","sub":"m","aud":"{resource}","exp":{exp}}}"#).as_bytes()),
            Malformed,
        ),
    ];
    for (i, p) in [&b"not json"[..], b"[1,2,3]", b"\"string\"", b"{\"a\":"]
        .into_iter()
        .enumerate()
    {
        out.push((
            format!("payload not JSON #{i}"),
            dev.sign_raw(DevAlg::RS256, &header_rs, p),
            Malformed,
        ));
    }
    for alg in DevAlg::ALL {
        let t = dev.mint(spec().alg(alg));
        out.push((
            format!("truncated {} signature", alg.name()),
            t[..t.len() - 4].to_owned(),
            BadSignature,
        ));
    }
    out
}

/// Valid tokens whose claims carry quotes, backslashes and control characters: they may only get
/// 403 for `add_todo`, with a well-formed challenge naming `todo:write`.
fn weird_scope_tokens(dev: &DevIssuer, resource: &str) -> Vec<(String, String)> {
    let spec = |sub: &str| TokenSpec::new(sub).audience(resource);
    vec![
        (
            "scope with quotes".into(),
            dev.mint(spec("q").scopes([READ, "\"todo:write\""])),
        ),
        (
            "scope with backslash".into(),
            dev.mint(spec("b").scopes([READ, "todo:write\\"])),
        ),
        (
            "scope with control characters".into(),
            dev.mint(spec("c").scopes([READ, "todo:write\u{1}\r\n"])),
        ),
        (
            "scope with NUL suffix".into(),
            dev.mint(spec("n").scopes(["todo:write\u{0}"])),
        ),
        (
            "scope in upper case".into(),
            dev.mint(spec("u").scopes(["TODO:WRITE"])),
        ),
        (
            "scope challenge injection".into(),
            dev.mint(spec("i").scopes(["todo:read\", error=\"none"])),
        ),
        (
            "scp array with newline".into(),
            dev.mint(spec("s").claim("scp", json!([READ, "todo:write\n"]))),
        ),
        (
            "subject with quotes and CRLF".into(),
            dev.mint(spec("a\"b\\c\r\nd").scopes([READ])),
        ),
    ]
}

fn summary(label: &str, t: &Tally) -> String {
    format!(
        "hostile[{label}]: {} probes ({} assert the full challenge), {} accepted, {} panics, {} 5xx",
        t.probes.len(),
        t.full_challenge.len(),
        t.accepted,
        t.panics,
        t.server_errors
    )
}

/// After the barrage: a valid client still works, and the read-only principal's list is empty.
async fn still_serves(server: &TodoServer, rw: &str, ro: &str) {
    let addr = server.addr();
    let session = mcp::open_session(addr, rw)
        .await
        .expect("valid session after the barrage");
    let resp = mcp::call_tool(
        addr,
        rw,
        session.as_deref(),
        "add_todo",
        json!({"text": "still here"}),
    )
    .await
    .unwrap();
    assert!(
        mcp::succeeded(&resp),
        "valid add_todo after the barrage: {} {}",
        resp.status,
        resp.text()
    );
    let session = mcp::open_session(addr, ro)
        .await
        .expect("read-only session");
    let resp = mcp::call_tool(addr, ro, session.as_deref(), "list_todos", json!({}))
        .await
        .unwrap();
    assert!(mcp::succeeded(&resp), "list_todos: {}", resp.status);
    let text = resp.message()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        text, "[]",
        "a hostile request changed the read-only principal's list"
    );
}

fn report(label: &str, tally: &Tally) {
    eprintln!("{}", summary(label, tally));
    for f in &tally.failures {
        eprintln!("  FAIL {f}");
    }
}

async fn jwt_suite() -> Tally {
    let (listener, addr) = server::bind().await;
    let resource = server::resource_url(addr);
    let issuer = format!("http://{addr}");
    let dev = DevIssuer::generate(issuer.clone());
    let verifier = dev.verifier_builder().audience(&resource).build().unwrap();
    let provider = server::provider(Arc::new(verifier), &resource, &issuer);
    let srv = TodoServer::start(listener, provider);
    let rw = dev.mint(
        TokenSpec::new("writer")
            .client_id("c")
            .scopes([READ, WRITE])
            .audience(&resource),
    );
    let ro = dev.mint(
        TokenSpec::new("reader")
            .client_id("c")
            .scopes([READ])
            .audience(&resource),
    );
    let session_rw = mcp::open_session(addr, &rw)
        .await
        .unwrap()
        .expect("session id");
    let ctx = Ctx {
        rw: rw.clone(),
        ro: ro.clone(),
        session_rw,
        unknown: InvalidToken::Malformed,
        forged: InvalidToken::BadSignature,
    };
    let mut cases = common_cases(&ctx);
    for (name, token, reason) in jwt_attacks(&dev, &resource) {
        cases.push(case(
            format!("jwt: {name}"),
            init(&token),
            Expect::Invalid(reason),
        ));
    }
    let huge = dev.mint(
        TokenSpec::new("m")
            .audience(&resource)
            .claim("pad", json!("x".repeat(100 * 1024))),
    );
    cases.push(case(
        "jwt: token of 100 KiB",
        init(&huge),
        Expect::Invalid(InvalidToken::TooLarge),
    ));
    for (name, token) in weird_scope_tokens(&dev, &resource) {
        cases.push(case(
            format!("claims: {name}"),
            mcp::post(&token, None, &add_todo_body()),
            Expect::Forbidden(WRITE, DESC_SCOPE),
        ));
    }
    let tally = run("jwt", &srv, cases).await;
    still_serves(&srv, &rw, &ro).await;
    tally
}

async fn introspect_suite() -> Tally {
    let (listener, addr) = server::bind().await;
    let resource = server::resource_url(addr);
    let other = "http://127.0.0.1:1/other";
    let idp = bounded(
        "test IdP start",
        60,
        TestIdp::start(vec![
            ResourceSpec::opaque(&resource, &[READ, WRITE]),
            ResourceSpec::opaque(other, &[READ, WRITE]),
        ]),
    )
    .await
    .expect("test IdP starts");
    let stub = Stub::start(json!({"keys": []})).await;
    stub.proxy_to(&idp.introspection_endpoint());
    let (id, secret) = idp.introspection_client();
    let verifier = IntrospectionVerifier::builder()
        .endpoint(stub.introspection_uri())
        .client_secret_basic(id, secret)
        .issuer(idp.issuer())
        .resource_url(&resource)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let provider = server::provider(Arc::new(verifier), &resource, idp.issuer());
    let srv = TodoServer::start(listener, provider);

    let user = bounded(
        "authorization code",
        30,
        idp.authorization_code(&resource, "todo:read todo:write", "alice"),
    )
    .await
    .unwrap();
    let rw = user.access_token.clone();
    let refresh = user.refresh_token.clone().expect("refresh token");
    let ro = idp
        .client_credentials(&resource, READ)
        .await
        .unwrap()
        .access_token;
    let other_token = idp
        .client_credentials(other, "todo:read todo:write")
        .await
        .unwrap()
        .access_token;
    let revoked = idp
        .client_credentials(&resource, "todo:read todo:write")
        .await
        .unwrap()
        .access_token;
    idp.revoke(&revoked).await.unwrap();
    let session_rw = mcp::open_session(addr, &rw)
        .await
        .unwrap()
        .expect("session id");

    let ctx = Ctx {
        rw: rw.clone(),
        ro: ro.clone(),
        session_rw,
        unknown: InvalidToken::Inactive,
        forged: InvalidToken::Inactive,
    };
    let mut cases = common_cases(&ctx);
    // Every JWT attack token is just an unknown string to the IdP.
    let dev = DevIssuer::generate(idp.issuer());
    for (name, token, _) in jwt_attacks(&dev, &resource) {
        cases.push(case(
            format!("jwt string: {name}"),
            init(&token),
            Expect::Invalid(InvalidToken::Inactive),
        ));
    }
    let forged_jwt = dev.mint(
        TokenSpec::new("m")
            .scopes([READ, WRITE])
            .audience(&resource),
    );
    cases.push(case(
        "well-formed JWT the IdP never issued",
        init(&forged_jwt),
        Expect::Invalid(InvalidToken::Inactive),
    ));
    // Real IdP tokens used the wrong way.
    cases.push(case(
        "refresh token as bearer",
        init(&refresh),
        Expect::InvalidOneOf(&[
            InvalidToken::RefreshToken,
            InvalidToken::Inactive,
            InvalidToken::Audience,
        ]),
    ));
    cases.push(case(
        "another resource's token",
        init(&other_token),
        Expect::Invalid(InvalidToken::Audience),
    ));
    cases.push(case(
        "revoked token",
        init(&revoked),
        Expect::Invalid(InvalidToken::Inactive),
    ));
    cases.push(case(
        "lower-cased opaque token",
        init(&rw.to_ascii_lowercase()),
        Expect::Invalid(InvalidToken::Inactive),
    ));
    // Canned IdP answers the test IdP never gives.
    let base = json!({"active": true, "iss": idp.issuer(), "aud": resource, "sub": "mallory",
        "client_id": "evil", "scope": "todo:read todo:write", "exp": now() + 600, "token_type": "Bearer"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let canned: Vec<(&str, Value, Expect)> = vec![
        (
            "cnf-bound answer",
            with("cnf", json!({"jkt": "abc"})),
            Expect::Invalid(InvalidToken::SenderConstrained),
        ),
        (
            "DPoP token type",
            with("token_type", json!("DPoP")),
            Expect::Invalid(InvalidToken::SenderConstrained),
        ),
        (
            "refresh token type",
            with("token_type", json!("refresh_token")),
            Expect::Invalid(InvalidToken::RefreshToken),
        ),
        (
            "another audience",
            with("aud", json!(other)),
            Expect::Invalid(InvalidToken::Audience),
        ),
        (
            "audience with trailing slash",
            with("aud", json!(format!("{resource}/"))),
            Expect::Invalid(InvalidToken::Audience),
        ),
        (
            "expired answer",
            with("exp", json!(now() - 300)),
            Expect::Invalid(InvalidToken::Expired),
        ),
        (
            "nbf in the future",
            with("nbf", json!(now() + 600)),
            Expect::Invalid(InvalidToken::NotYetValid),
        ),
        (
            "wrong issuer",
            with("iss", json!("https://evil.example")),
            Expect::Invalid(InvalidToken::Issuer),
        ),
        (
            "active as a string",
            with("active", json!("true")),
            Expect::Invalid(InvalidToken::Inactive),
        ),
        (
            "active as 1",
            with("active", json!(1)),
            Expect::Invalid(InvalidToken::Inactive),
        ),
        (
            "exp as a string",
            with("exp", json!("4102444800")),
            Expect::Invalid(InvalidToken::MissingClaim),
        ),
    ];
    for (i, (name, answer, expect)) in canned.into_iter().enumerate() {
        let token = format!("canned-{i}-{}", now());
        stub.can(&token, answer);
        cases.push(case(format!("canned: {name}"), init(&token), expect));
    }
    let weird: Vec<(&str, Value)> = vec![
        ("scope with quotes", json!("todo:read \"todo:write\"")),
        ("scope with backslash", json!("todo:read todo:write\\")),
        (
            "scope with control characters",
            json!("todo:read todo:write\u{1}\r\n"),
        ),
        (
            "scope challenge injection",
            json!("todo:read\", error=\"none"),
        ),
        ("scope in upper case", json!("TODO:WRITE")),
    ];
    for (i, (name, scope)) in weird.into_iter().enumerate() {
        let token = format!("weird-{i}-{}", now());
        stub.can(&token, with("scope", scope));
        cases.push(case(
            format!("claims: {name}"),
            mcp::post(&token, None, &add_todo_body()),
            Expect::Forbidden(WRITE, DESC_SCOPE),
        ));
    }
    let tally = run("introspect", &srv, cases).await;
    still_serves(&srv, &rw, &ro).await;
    drop(srv);
    drop(idp);
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_refused_by_both_verifiers() {
    server::count_panics();
    let (jwt, introspect) = bounded("hostile suite", 240, async {
        let jwt = jwt_suite().await;
        report("jwt", &jwt);
        let introspect = introspect_suite().await;
        report("introspect", &introspect);
        (jwt, introspect)
    })
    .await;
    let total = Tally {
        tried: jwt.tried + introspect.tried,
        probes: jwt.probes.union(&introspect.probes).cloned().collect(),
        full_challenge: jwt
            .full_challenge
            .union(&introspect.full_challenge)
            .cloned()
            .collect(),
        accepted: jwt.accepted + introspect.accepted,
        panics: jwt.panics + introspect.panics,
        server_errors: jwt.server_errors + introspect.server_errors,
        failures: Vec::new(),
    };
    eprintln!(
        "hostile: {} distinct probes ({} requests over both verifiers), {} of them assert the \
         full challenge; {} accepted, {} panics, {} 5xx",
        total.probes.len(),
        total.tried,
        total.full_challenge.len(),
        total.accepted,
        total.panics,
        total.server_errors
    );
    for t in [&jwt, &introspect] {
        assert!(t.tried >= 60, "{}", t.tried);
        assert!(
            t.failures.is_empty(),
            "{} failures, first: {}",
            t.failures.len(),
            t.failures[0]
        );
    }
    assert_eq!(
        (total.accepted, total.panics, total.server_errors),
        (0, 0, 0)
    );
}
