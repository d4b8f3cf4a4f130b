//! Property tests: the challenge builder, the bearer header parser and the policy's body parser.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{Request, header};
use mcp_auth_core::challenge::{BearerChallenge, ChallengeError, is_quoted_value_char};
use mcp_auth_core::policy::{Operation, parse_operation};
use mcp_auth_core::testkit::parse_challenge;
use mcp_auth_core::{
    AccessToken, AuthProvider, InvalidToken, RemoteAuthProvider, TokenVerifier, VerifyError,
    async_trait,
};
use proptest::prelude::*;
use tower::ServiceExt;

fn charset_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (0x20u8..=0x7e).prop_filter("no quote or backslash", |b| *b != b'"' && *b != b'\\'),
        0..40,
    )
    .prop_map(|v| String::from_utf8(v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any input yields a header that parses, in order, within the RFC 6750 set.
    #[test]
    fn challenge_is_always_well_formed(desc in any::<String>(), scope in any::<String>(), meta in any::<String>()) {
        let header = BearerChallenge::new(&meta)
            .error(ChallengeError::InvalidToken, &desc)
            .scope(&scope)
            .to_string();
        prop_assert!(http::HeaderValue::from_str(&header).is_ok());
        let params = parse_challenge(&header);
        prop_assert!(params.is_some(), "unparseable: {header:?}");
        for p in params.unwrap() {
            prop_assert!(p.value.bytes().all(is_quoted_value_char));
        }
    }

    /// Values already within the set round-trip exactly.
    #[test]
    fn challenge_round_trips_clean_values(desc in charset_string(), scope in charset_string(), meta in charset_string()) {
        let header = BearerChallenge::new(&meta)
            .error(ChallengeError::InsufficientScope, &desc)
            .scope(&scope)
            .to_string();
        let params = parse_challenge(&header).unwrap();
        let get = |n: &str| params.iter().find(|p| p.name == n).map(|p| p.value.clone());
        prop_assert_eq!(get("error_description"), Some(desc));
        prop_assert_eq!(get("resource_metadata"), Some(meta));
        prop_assert_eq!(get("scope"), if scope.is_empty() { None } else { Some(scope) });
    }
}

/// Accepts only the exact token "good"; counts nothing.
struct OnlyGood;

#[async_trait]
impl TokenVerifier for OnlyGood {
    async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        if token == "good" {
            Ok(AccessToken::builder()
                .audience("https://api.example.com/mcp")
                .build())
        } else {
            Err(InvalidToken::BadSignature.into())
        }
    }
}

fn app() -> Router {
    let p = RemoteAuthProvider::builder(Arc::new(OnlyGood))
        .resource_url("https://api.example.com/mcp")
        .authorization_server("https://idp.example.com")
        .build()
        .unwrap();
    Router::new()
        .route("/mcp", post(|| async { "handler" }))
        .layer(p.layer())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any Authorization bytes: no panic, never the handler unless the token is exactly "good",
    /// and every answer is 401 or 400 with a well-formed challenge.
    #[test]
    fn header_parser_never_lets_garbage_in(raw in proptest::collection::vec(any::<u8>(), 0..200), prefix in prop_oneof![Just(""), Just("Bearer "), Just("bearer "), Just("Basic ")]) {
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend_from_slice(&raw);
        let Ok(value) = http::HeaderValue::from_bytes(&bytes) else { return Ok(()); };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let resp = rt.block_on(async {
            let req = Request::post("/mcp").header(header::AUTHORIZATION, value).body(Body::empty()).unwrap();
            app().oneshot(req).await.unwrap()
        });
        let trimmed: &[u8] = bytes.strip_prefix(b"Bearer ").or_else(|| bytes.strip_prefix(b"bearer ")).unwrap_or(b"");
        let is_good = trimmed.trim_ascii() == b"good";
        if is_good {
            prop_assert_eq!(resp.status(), 200);
        } else {
            prop_assert!(resp.status() == 401 || resp.status() == 400, "status {}", resp.status());
            let www = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
            prop_assert!(parse_challenge(&www).is_some(), "{www:?}");
        }
    }
}

/// JSON-RPC-ish bodies built to confuse: duplicate keys, escapes, arrays, odd params.
fn body_strategy() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("\"add_todo\"".to_string()),
        Just("\"list_todos\"".to_string()),
        Just("\"\\u0061dd_todo\"".to_string()),
        Just("\"add_todo\\u0000\"".to_string()),
        Just("7".to_string()),
        Just("null".to_string()),
        Just("[\"add_todo\"]".to_string()),
    ];
    let method = prop_oneof![
        Just("\"tools/call\"".to_string()),
        Just("\"tools/list\"".to_string()),
        Just("\"tools\\/call\"".to_string()),
        Just("\"TOOLS/CALL\"".to_string()),
        Just("\"prompts/get\"".to_string()),
    ];
    (
        method.clone(),
        proptest::option::of(method),
        name.clone(),
        proptest::option::of(name),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(m, m2, n, n2, with_id, params_array, batch)| {
            let mut params = format!("\"name\":{n}");
            if let Some(n2) = n2 {
                params.push_str(&format!(",\"name\":{n2}"));
            }
            let params = if params_array {
                format!("[{n}]")
            } else {
                format!("{{{params},\"arguments\":{{}}}}")
            };
            let mut body = String::from("{\"jsonrpc\":\"2.0\"");
            if with_id {
                body.push_str(",\"id\":1");
            }
            body.push_str(&format!(",\"method\":{m}"));
            if let Some(m2) = m2 {
                body.push_str(&format!(",\"method\":{m2}"));
            }
            body.push_str(&format!(",\"params\":{params}}}"));
            if batch { format!("[{body}]") } else { body }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the policy decides on, rmcp either refuses the body or reads the same operation.
    #[test]
    fn policy_parser_agrees_with_rmcp(body in body_strategy()) {
        let ours = parse_operation(body.as_bytes());
        let theirs = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(body.as_bytes());
        if let Ok(rmcp::model::JsonRpcMessage::Request(req)) = &theirs {
            match &req.request {
                rmcp::model::ClientRequest::CallToolRequest(call) => {
                    prop_assert_eq!(&ours, &Ok(Operation::ToolCall(call.params.name.to_string())), "{}", body);
                }
                rmcp::model::ClientRequest::GetPromptRequest(get) => {
                    prop_assert_eq!(&ours, &Ok(Operation::PromptGet(get.params.name.clone())), "{}", body);
                }
                _ => {}
            }
        }
        if let Ok(Operation::ToolCall(name)) = &ours {
            // We decided on `name`: rmcp must not run a different tool.
            if let Ok(rmcp::model::JsonRpcMessage::Request(req)) = &theirs
                && let rmcp::model::ClientRequest::CallToolRequest(call) = &req.request
            {
                prop_assert_eq!(call.params.name.as_ref(), name.as_str());
            }
        }
    }
}

/// The differential property above is only meaningful if rmcp accepts some of those bodies.
#[test]
fn rmcp_parses_the_plain_cases() {
    for (body, name) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_todo","arguments":{}}}"#,
            "add_todo",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u0061dd_todo","arguments":{}}}"#,
            "add_todo",
        ),
    ] {
        let msg =
            serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(body.as_bytes()).unwrap();
        let rmcp::model::JsonRpcMessage::Request(req) = msg else {
            panic!("not a request")
        };
        let rmcp::model::ClientRequest::CallToolRequest(call) = req.request else {
            panic!("not tools/call")
        };
        assert_eq!(call.params.name, name);
        assert_eq!(
            parse_operation(body.as_bytes()),
            Ok(Operation::ToolCall(name.into()))
        );
    }
    // What does rmcp do with duplicate names? Whatever it does, the policy refuses the body.
    let dup = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_todos","name":"add_todo","arguments":{}}}"#;
    assert!(parse_operation(dup.as_bytes()).is_err());
}

/// The methods decided by the resources they name: wherever rmcp reads a request, the policy
/// read the same targets (or refused the body).
#[test]
fn resource_methods_agree_with_rmcp() {
    use rmcp::model::{ClientRequest, JsonRpcMessage};
    let uris = [
        r#""todo://a""#,
        r#""todo:\/\/a""#,
        r#""\u0074odo://a""#,
        r#""todo://a","uri":"file:///x""#,
        "7",
        "null",
    ];
    let mut bodies = Vec::new();
    for method in [
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "resources/directory/read",
        "skills/get",
    ] {
        for uri in uris {
            bodies.push(format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":{uri}}}}}"#
            ));
        }
    }
    for list in [
        r#"["todo://a","file:///x"]"#,
        r#"[]"#,
        r#""todo://a""#,
        r#"["todo://a"],"resourceSubscriptions":["file:///x"]"#,
    ] {
        bodies.push(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{{"name":"t","version":"1"}},"io.modelcontextprotocol/clientCapabilities":{{}}}},"notifications":{{"resourceSubscriptions":{list}}}}}}}"#
        ));
    }
    for r in [
        r#"{"type":"ref/prompt","name":"p"}"#,
        r#"{"type":"ref/resource","uri":"todo://{id}"}"#,
        r#"{"type":"ref/prompt","name":"p","uri":"file:///x"}"#,
        r#"{"type":"ref/prompt","name":"p","type":"ref/resource"}"#,
    ] {
        bodies.push(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{{"ref":{r},"argument":{{"name":"a","value":""}}}}}}"#
        ));
    }
    let mut agreed = 0;
    for body in &bodies {
        let ours = parse_operation(body.as_bytes());
        let Ok(JsonRpcMessage::Request(req)) =
            serde_json::from_str::<rmcp::model::ClientJsonRpcMessage>(body)
        else {
            continue;
        };
        let expected = match &req.request {
            ClientRequest::ReadResourceRequest(r) => Operation::ResourceRead(r.params.uri.clone()),
            ClientRequest::SubscribeRequest(r) => Operation::Resources {
                method: "resources/subscribe".into(),
                uris: vec![r.params.uri.clone()],
            },
            ClientRequest::UnsubscribeRequest(r) => Operation::Resources {
                method: "resources/unsubscribe".into(),
                uris: vec![r.params.uri.clone()],
            },
            ClientRequest::ReadResourceDirectoryRequest(r) => Operation::Resources {
                method: "resources/directory/read".into(),
                uris: vec![r.params.uri.clone()],
            },
            ClientRequest::GetSkillRequest(r) => Operation::Resources {
                method: "skills/get".into(),
                uris: vec![r.params.uri.clone()],
            },
            ClientRequest::SubscriptionsListenRequest(r) => Operation::Resources {
                method: "subscriptions/listen".into(),
                uris: r
                    .params
                    .notifications
                    .resource_subscriptions
                    .clone()
                    .unwrap_or_default(),
            },
            ClientRequest::CompleteRequest(r) => match &r.params.r#ref {
                rmcp::model::Reference::Prompt(p) => Operation::CompletePrompt(p.name.clone()),
                rmcp::model::Reference::Resource(res) => {
                    Operation::CompleteResource(res.uri.clone())
                }
                _ => continue,
            },
            // rmcp falls back to a custom request (last duplicate key wins) for what it cannot
            // read as the typed request: the policy must have refused that body.
            ClientRequest::CustomRequest(_) => {
                assert!(ours.is_err(), "{body}: policy read {ours:?}");
                continue;
            }
            other => panic!("{body}: rmcp read {other:?}"),
        };
        if let Ok(op) = &ours {
            assert_eq!(op, &expected, "{body}");
            agreed += 1;
        }
    }
    assert!(agreed >= 15, "only {agreed} bodies read by both");
}
