//! Task handles bound to their principal ([`BoundTaskManager`]) in front of a real rmcp
//! streamable-HTTP server, in session mode (protocol 2025-06-18, capabilities declared at
//! initialize) and stateless mode (protocol 2026-07-28, capabilities in each request's `_meta`).

mod common;

use std::time::Duration;

use axum::Router;
use common::{Server, fake, initialize, message, mint_claims, now, post, post_as};
use mcp_auth_core::policy::{McpPolicy, Rule};
use mcp_auth_core::rmcp_ext::{Auth, BoundTaskManager};
use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CreateTaskResult, GetTaskParams,
    GetTaskResult, ServerCapabilities, ServerConfig, UpdateTaskParams,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::task_manager::{TaskExit, TaskOptions};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_router};
use serde_json::{Value, json};

const R: &str = "http://127.0.0.1:8000/mcp";
const ISS: &str = "https://idp.example.com";

#[derive(Clone)]
struct Srv {
    tool_router: ToolRouter<Self>,
    tasks: BoundTaskManager,
}

#[tool_router]
impl Srv {
    #[tool(description = "Export everything (a task when the client supports tasks)")]
    fn export(&self, _auth: Auth) -> String {
        "exported".into()
    }
}

impl ServerHandler for Srv {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tasks_ok = context
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks());
        if request.name == "export" && tasks_ok {
            // Runs until cancelled, so a task's state can be watched across requests.
            let task = self.tasks.spawn(&context, TaskOptions::new(), |ctx| {
                Box::pin(async move {
                    ctx.cancelled().await;
                    Err(TaskExit::Cancelled)
                })
            })?;
            return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
        }
        if request.name == "quick" && tasks_ok {
            // Done at once and kept for no time after (ttl 0): rmcp forgets it right away.
            let options = TaskOptions::new().with_ttl_ms(0);
            let task = self.tasks.spawn(&context, options, |_ctx| {
                Box::pin(async { Ok(rmcp::model::CallToolResult::success(Vec::new())) })
            })?;
            return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(
            self.tasks.get_task(&context, &request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks
            .update_task(&context, &request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.cancel_task(&context, &request.task_id)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
    }
}

struct App {
    srv: Server,
    tasks: BoundTaskManager,
}

/// The server behind the bearer and policy layers, in session or stateless mode.
async fn app(session_mode: bool) -> App {
    let provider = RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server(ISS)
        .scopes_supported(["todo:read", "todo:write"])
        .build()
        .unwrap();
    let policy = McpPolicy::builder()
        .tool("export", Rule::scopes(["todo:read"]))
        .tool("quick", Rule::authenticated())
        // Under default-deny the task methods need rules of their own; BoundTaskManager then
        // decides whose task it is.
        .method("tasks/get", Rule::authenticated())
        .method("tasks/update", Rule::authenticated())
        .method("tasks/cancel", Rule::authenticated())
        .default_deny(true)
        .max_body_bytes(64 * 1024)
        .build(&provider)
        .unwrap();
    let tasks = BoundTaskManager::new();
    let server = Srv {
        tool_router: Srv::tool_router(),
        tasks: tasks.clone(),
    };
    assert!(policy.report_router(&server.tool_router).is_empty());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(session_mode)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(64 * 1024);
    let service: StreamableHttpService<Srv, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    let app = Router::new()
        .nest_service("/mcp", service)
        .layer(policy.layer())
        .layer(provider.layer())
        .merge(provider.routes());
    App {
        srv: Server::start(app).await,
        tasks,
    }
}

fn token(sub: &str, scopes: &str, jti: &str) -> String {
    mint_claims(json!({
        "sub": sub, "client_id": "client-1", "iss": ISS, "aud": R,
        "scope": scopes, "exp": now() + 3600, "jti": jti,
    }))
}

const INIT_WITH_TASKS: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}},"clientInfo":{"name":"t","version":"1"}}}"#;

/// One caller of the MCP endpoint: session mode (2025-06-18, its own session, tasks declared at
/// initialize) or stateless (2026-07-28, capabilities in every request's `_meta`).
struct Caller {
    url: String,
    bearer: String,
    session: Option<String>,
    stateless: bool,
}

impl Caller {
    async fn new(url: &str, bearer: String, session_mode: bool) -> Caller {
        let session = if session_mode {
            let id = initialize(url, &bearer, INIT_WITH_TASKS).await;
            assert!(id.is_some(), "session mode hands out a session id");
            id
        } else {
            None
        };
        Caller {
            url: url.to_owned(),
            bearer,
            session,
            stateless: !session_mode,
        }
    }

    /// Sends `method` with `params`; returns the HTTP status and the JSON-RPC message.
    async fn request(&self, method: &str, mut params: Value) -> (u16, Value) {
        let resp = if self.stateless {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {
                    "extensions": {"io.modelcontextprotocol/tasks": {}}
                },
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            });
            // 2026-07-28 routing headers (rmcp checks them against the body; the policy layer
            // never reads them).
            let name = params
                .get("name")
                .or_else(|| params.get("taskId"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
            let mut headers = vec![("mcp-method", method.to_owned())];
            headers.extend(name.map(|n| ("mcp-name", n)));
            post_as(
                "2026-07-28",
                &self.url,
                &self.bearer,
                None,
                &headers,
                body.to_string(),
            )
            .await
        } else {
            let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
            post(
                &self.url,
                &self.bearer,
                self.session.as_deref(),
                body.to_string(),
            )
            .await
        };
        let status = resp.status().as_u16();
        (status, message(resp).await)
    }

    async fn task_status(&self, task_id: &str) -> Result<String, Value> {
        let (status, msg) = self.request("tasks/get", json!({"taskId": task_id})).await;
        assert_eq!(status, 200, "{msg}");
        match msg["result"]["status"].as_str() {
            Some(s) => Ok(s.to_owned()),
            None => Err(msg["error"].clone()),
        }
    }
}

/// The in-band error of an unknown task: what a stranger sees for someone else's task.
fn assert_unknown_task(error: &Value, task_id: &str) {
    assert_eq!(error["code"], -32602, "{error}");
    assert_eq!(
        error["message"],
        format!("unknown task: {task_id}"),
        "{error}"
    );
}

async fn tasks_are_bound_to_their_principal(session_mode: bool) {
    let a = app(session_mode).await;
    let url = a.srv.url("/mcp");
    let alice = Caller::new(&url, token("alice", "todo:read", "a1"), session_mode).await;
    let bob = Caller::new(
        &url,
        token("bob", "todo:read todo:write", "b1"),
        session_mode,
    )
    .await;

    let (status, created) = alice
        .request("tools/call", json!({"name": "export", "arguments": {}}))
        .await;
    assert_eq!(status, 200, "{created}");
    let task_id = created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("a task handle: {created}"))
        .to_owned();
    assert_eq!(alice.task_status(&task_id).await.unwrap(), "working");
    assert_eq!(a.tasks.running_task_count(), 1);

    // Bob holds a valid token of his own and Alice's task id: every task method refuses him
    // exactly as for an id that does not exist, and nothing happens to the task.
    assert_unknown_task(&bob.task_status(&task_id).await.unwrap_err(), &task_id);
    for (method, params) in [
        ("tasks/cancel", json!({"taskId": task_id})),
        (
            "tasks/update",
            json!({"taskId": task_id, "inputResponses": {"k": {"action": "accept"}}}),
        ),
    ] {
        let (status, msg) = bob.request(method, params).await;
        assert_eq!(status, 200, "{msg}");
        assert_unknown_task(&msg["error"], &task_id);
    }
    let bogus = "00000000-0000-4000-8000-000000000000";
    assert_unknown_task(&bob.task_status(bogus).await.unwrap_err(), bogus);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(alice.task_status(&task_id).await.unwrap(), "working");
    assert_eq!(a.tasks.running_task_count(), 1);

    // Another client of the same user is another principal too.
    let other_client = Caller::new(
        &url,
        mint_claims(json!({
            "sub": "alice", "client_id": "client-2", "iss": ISS, "aud": R,
            "scope": "todo:read", "exp": now() + 3600,
        })),
        session_mode,
    )
    .await;
    assert_unknown_task(
        &other_client.task_status(&task_id).await.unwrap_err(),
        &task_id,
    );

    // Alice with a refreshed token (same issuer, subject and client) keeps her task and cancels it.
    let refreshed = Caller {
        bearer: token("alice", "todo:read", "a2"),
        ..alice
    };
    assert_ne!(refreshed.bearer, token("alice", "todo:read", "a1"));
    let (status, msg) = refreshed
        .request("tasks/cancel", json!({"taskId": task_id}))
        .await;
    assert_eq!(status, 200, "{msg}");
    assert!(msg["error"].is_null(), "{msg}");
    let mut state = String::new();
    for _ in 0..100 {
        state = refreshed.task_status(&task_id).await.unwrap();
        if state == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state, "cancelled");
    assert_eq!(a.tasks.running_task_count(), 0);
    a.srv.stop().await;
}

#[tokio::test]
async fn tasks_are_bound_to_their_principal_in_session_mode() {
    tasks_are_bound_to_their_principal(true).await;
}

#[tokio::test]
async fn tasks_are_bound_to_their_principal_in_stateless_mode() {
    tasks_are_bound_to_their_principal(false).await;
}

/// Bindings of tasks rmcp has forgotten are pruned as tasks are created, so the bindings stay
/// within a small factor of what rmcp keeps; a running task's binding is never pruned.
#[tokio::test]
async fn bindings_of_forgotten_tasks_are_pruned() {
    let a = app(true).await;
    let url = a.srv.url("/mcp");
    let alice = Caller::new(&url, token("alice", "todo:read", "a1"), true).await;
    let (_, created) = alice
        .request("tools/call", json!({"name": "export", "arguments": {}}))
        .await;
    let running = created["result"]["taskId"].as_str().unwrap().to_owned();
    for _ in 0..300 {
        let (status, msg) = alice
            .request("tools/call", json!({"name": "quick", "arguments": {}}))
            .await;
        assert_eq!(status, 200, "{msg}");
        assert!(msg["result"]["taskId"].is_string(), "{msg}");
    }
    let bound = a.tasks.bound_task_count();
    assert!(
        bound <= 130,
        "{bound} bindings for 1 running task and 300 forgotten ones"
    );
    assert_eq!(alice.task_status(&running).await.unwrap(), "working");
    a.srv.stop().await;
}

#[tokio::test]
async fn a_task_needs_an_authenticated_caller() {
    // No bearer layer in front: spawning fails in-band and starts nothing.
    let tasks = BoundTaskManager::new();
    let server = Srv {
        tool_router: Srv::tool_router(),
        tasks: tasks.clone(),
    };
    let service: StreamableHttpService<Srv, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(server.clone()),
        Default::default(),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    );
    let srv = Server::start(Router::new().nest_service("/mcp", service)).await;
    let caller = Caller::new(&srv.url("/mcp"), "anything".into(), false).await;
    let (status, msg) = caller
        .request("tools/call", json!({"name": "export", "arguments": {}}))
        .await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["error"]["message"], "not authenticated", "{msg}");
    assert!(msg["result"].is_null(), "{msg}");
    assert_eq!(tasks.running_task_count(), 0);
    srv.stop().await;
}
