//! A real MCP client that does OAuth itself (rmcp's client, feature `auth`) against the todo
//! server in JWT mode and the real test IdP: it starts with no token, gets 401, discovers the
//! protected-resource metadata and the IdP from the challenge, registers dynamically, completes
//! authorization code + PKCE (the harness plays the browser), lists tools and calls them; with
//! only `todo:read` it gets 403 on `add_todo`, re-authorizes for `todo:write`, and succeeds.

mod support;

use std::borrow::Cow;
use std::time::Duration;

use mcp_auth_idp_harness::browser::{CALLBACK_URI, login};
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::{
    InsufficientScopeError, StreamableHttpClientTransportConfig,
};
use support::{Todo, free_port, www};

/// Runs the whole OAuth dance the way an MCP client does, starting from a `WWW-Authenticate`
/// challenge; returns an authorized HTTP client for the MCP transport.
async fn authorize(
    resource: &str,
    challenge: &str,
    scopes: Option<&[&str]>,
) -> AuthClient<reqwest::Client> {
    let mut state = OAuthState::new(resource, None).await.expect("oauth state");
    let mut request = AuthorizationRequest::new(CALLBACK_URI)
        .with_challenge(challenge)
        .with_client_name("mcp-auth e2e client");
    if let Some(s) = scopes {
        request = request.with_scopes(s.iter().copied());
    }
    state
        .start_authorization(request)
        .await
        .expect("discovery and registration");
    let url = state
        .get_authorization_url()
        .await
        .expect("authorization URL");
    assert!(url.contains("code_challenge="), "PKCE expected: {url}");
    assert!(
        url.contains(&format!("resource={}", urlencode(resource))),
        "resource indicator expected: {url}"
    );
    let callback = login(&url).await.expect("headless login");
    state
        .handle_callback_url(&callback)
        .await
        .expect("token exchange");
    let manager = state.into_authorization_manager().expect("manager");
    AuthClient::new(reqwest::Client::default(), manager)
}

/// The 403 `insufficient_scope` error somewhere in `err`'s chain of sources.
fn insufficient_scope<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a InsufficientScopeError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<InsufficientScopeError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn call(name: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(Cow::Borrowed(name));
    if let serde_json::Value::Object(map) = args {
        p = p.with_arguments(map);
    }
    p
}

#[tokio::test]
async fn an_mcp_client_discovers_registers_logs_in_and_steps_up() {
    // The MCP transport keeps streams open, so its client has no per-request timeout: the whole
    // run is bounded instead (the server and the IdP stop when dropped).
    tokio::time::timeout(
        Duration::from_secs(120),
        discovers_registers_logs_in_and_steps_up(),
    )
    .await
    .expect("the OAuth run took over 2 minutes");
}

async fn discovers_registers_logs_in_and_steps_up() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = TestIdp::start(vec![ResourceSpec::jwt(
        &resource,
        &["todo:read", "todo:write"],
        "ES256",
    )])
    .await
    .expect("test IdP");
    let todo = Todo::start_on(
        port,
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
            ("MCP_AUTH_JWT_ALGORITHMS", "RS256 ES256 EdDSA"),
            ("MCP_AUTH_RESOURCE_URL", &resource),
        ],
    )
    .await;

    // 1. No token: 401 and a challenge naming the metadata and the initial scope.
    let first = support::http().post(&resource).send().await.unwrap();
    assert_eq!(first.status(), 401);
    let challenge = www(&first);
    assert!(challenge.contains("resource_metadata=") && challenge.contains("scope=\"todo:read\""));

    // 2. The client authorizes least-privileged (todo:read, the challenge's scope; rmcp would
    //    otherwise ask for every scope the metadata lists) and uses the tools.
    let reader = authorize(&resource, &challenge, Some(&["todo:read"])).await;
    let transport = StreamableHttpClientTransport::with_client(
        reader,
        StreamableHttpClientTransportConfig::with_uri(resource.clone()),
    );
    let client = ().serve(transport).await.expect("MCP initialize");
    let tools = client
        .list_tools(Default::default())
        .await
        .expect("tools/list");
    let mut names: Vec<String> = tools.tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["add_todo", "complete_todo", "list_todos", "whoami"],
        "the write tools stay listed to a reader, so a call reaches the step-up challenge"
    );
    let listed = client
        .call_tool(call("list_todos", serde_json::json!({})))
        .await
        .expect("list_todos");
    assert_eq!(listed.is_error, Some(false));

    // 3. add_todo needs todo:write: the server answers 403 with an `insufficient_scope`
    //    challenge naming the scope to ask for (rmcp's transport surfaces a 403 with a
    //    challenge as `InsufficientScopeError`, carrying the header).
    let denied = client
        .call_tool(call("add_todo", serde_json::json!({"text": "milk"})))
        .await
        .expect_err("add_todo must fail with todo:read only");
    let step_up = insufficient_scope(&denied)
        .unwrap_or_else(|| panic!("no 403 insufficient_scope challenge in {denied:?}"));
    let header = &step_up.www_authenticate_header;
    assert!(
        header.starts_with("Bearer error=\"insufficient_scope\""),
        "{header}"
    );
    assert!(header.contains("scope=\"todo:write\""), "{header}");
    assert!(
        header.contains(&format!(
            "resource_metadata=\"{}\"",
            support::metadata_url(&resource)
        )),
        "{header}"
    );
    let wanted = step_up
        .get_required_scope()
        .expect("the challenge names a scope")
        .to_owned();
    assert_eq!(wanted, "todo:write");
    let _ = client.cancel().await;

    // 4. Step up: ask the IdP again, from the 403 challenge, for what is held plus the scope it
    //    names; then add and list with the new token.
    let mut scopes = vec!["todo:read"];
    scopes.extend(wanted.split(' '));
    let writer = authorize(&resource, header, Some(&scopes)).await;
    let transport = StreamableHttpClientTransport::with_client(
        writer,
        StreamableHttpClientTransportConfig::with_uri(resource.clone()),
    );
    let client = ().serve(transport).await.expect("MCP initialize");
    let added = client
        .call_tool(call("add_todo", serde_json::json!({"text": "milk"})))
        .await
        .expect("add_todo after step-up");
    assert_eq!(added.is_error, Some(false));
    let listed = client
        .call_tool(call("list_todos", serde_json::json!({})))
        .await
        .expect("list_todos");
    let text = serde_json::to_string(&listed.content).unwrap();
    assert!(text.contains("milk"), "{text}");
    let _ = client.cancel().await;
    todo.stop().await;
}
