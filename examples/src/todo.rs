//! The todo MCP server: four tools, per-user lists, and the policy that guards them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcp_auth_core::policy::{McpPolicy, Rule};
use mcp_auth_core::rmcp_ext::Auth;
use mcp_auth_core::{AuthProvider, BuildError, Owner, Principal};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

use crate::downstream::Downstream;

/// Scope to read todos.
pub const READ: &str = "todo:read";
/// Scope to change todos.
pub const WRITE: &str = "todo:write";

/// One todo item.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Its id (unique per user).
    pub id: u64,
    /// What to do.
    pub text: String,
    /// Whether it is done.
    pub done: bool,
}

/// Todo lists by owner: a user (issuer, subject) or a machine (issuer, client id); each sees only
/// their own, and nothing is keyed on a missing value.
#[derive(Debug, Default)]
pub struct Store {
    lists: Mutex<HashMap<Owner, Vec<Item>>>,
}

/// The MCP server. Cheap to clone: rmcp builds one per session.
#[derive(Clone)]
pub struct TodoServer {
    store: Arc<Store>,
    downstream: Option<Arc<Downstream>>,
    tool_router: ToolRouter<Self>,
}

/// The tool that calls the downstream API (present only when one is configured).
pub const DOWNSTREAM_TOOL: &str = "downstream_whoami";

/// Arguments of `add_todo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddTodo {
    /// What to do.
    pub text: String,
}

/// Arguments of `complete_todo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CompleteTodo {
    /// The id `add_todo` returned.
    pub id: i64,
}

/// The owner of the caller's list. The bearer layer refuses tokens that name no principal, so
/// this fails only when the server is not behind it.
fn owner(auth: &Auth) -> Result<Owner, ErrorData> {
    auth.token()
        .principal()
        .map(Principal::owner)
        .ok_or_else(|| ErrorData::invalid_request("the access token names no principal", None))
}

fn lock(store: &Store) -> std::sync::MutexGuard<'_, HashMap<Owner, Vec<Item>>> {
    store
        .lists
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[tool_router]
impl TodoServer {
    /// A server over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self::with_downstream(store, None)
    }

    /// A server over `store` whose `downstream_whoami` tool calls `downstream` (the tool is
    /// absent without one).
    pub fn with_downstream(store: Arc<Store>, downstream: Option<Arc<Downstream>>) -> Self {
        let mut tool_router = Self::tool_router();
        if downstream.is_none() {
            tool_router.remove_route(DOWNSTREAM_TOOL);
        }
        TodoServer {
            store,
            downstream,
            tool_router,
        }
    }

    /// The tool router (for the policy's start-up report).
    pub fn router(&self) -> &ToolRouter<Self> {
        &self.tool_router
    }

    #[tool(description = "List your todos (needs todo:read)")]
    fn list_todos(&self, auth: Auth) -> Result<String, ErrorData> {
        auth.require_scopes(&[READ])?;
        let lists = lock(&self.store);
        let items = lists.get(&owner(&auth)?).cloned().unwrap_or_default();
        serde_json::to_string(&items).map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    #[tool(description = "Add a todo (needs todo:write)")]
    fn add_todo(
        &self,
        auth: Auth,
        Parameters(args): Parameters<AddTodo>,
    ) -> Result<String, ErrorData> {
        auth.require_scopes(&[WRITE])?;
        let mut lists = lock(&self.store);
        let list = lists.entry(owner(&auth)?).or_default();
        let id = list.iter().map(|i| i.id).max().unwrap_or(0) + 1;
        list.push(Item {
            id,
            text: args.text,
            done: false,
        });
        Ok(format!("added todo {id}"))
    }

    #[tool(description = "Mark a todo as done (needs todo:write)")]
    fn complete_todo(
        &self,
        auth: Auth,
        Parameters(args): Parameters<CompleteTodo>,
    ) -> Result<String, ErrorData> {
        auth.require_scopes(&[WRITE])?;
        let mut lists = lock(&self.store);
        let item = lists
            .get_mut(&owner(&auth)?)
            .and_then(|l| l.iter_mut().find(|i| i.id as i64 == args.id))
            .ok_or_else(|| ErrorData::invalid_params(format!("no todo {}", args.id), None))?;
        item.done = true;
        Ok(format!("completed todo {}", args.id))
    }

    #[tool(
        description = "Ask the downstream API who you are: it is called with a token the IdP \
                       issued for its own audience in exchange for yours (needs todo:read)"
    )]
    async fn downstream_whoami(&self, auth: Auth) -> Result<String, ErrorData> {
        auth.require_scopes(&[READ])?;
        match &self.downstream {
            Some(d) => d.call(&auth).await,
            None => Err(ErrorData::internal_error(
                "no downstream API configured",
                None,
            )),
        }
    }

    #[tool(description = "Who is calling: subject, client id and scopes of the access token")]
    fn whoami(&self, auth: Auth) -> Result<String, ErrorData> {
        let t = auth.token();
        Ok(serde_json::json!({
            "subject": t.subject(),
            "client_id": t.client_id(),
            "scopes": t.scopes(),
            "dpop_jkt": auth.dpop_thumbprint(),
        })
        .to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TodoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "A todo list protected by OAuth: todo:read to list, todo:write to change.",
        )
    }
}

/// The per-tool policy: reads need `todo:read`, changes `todo:write`, `whoami` any valid token;
/// every other tool, prompt, resource and method is refused (default-deny). Lists are filtered
/// per caller, but the write tools stay listed to read-only callers: a client that looks them up
/// in `tools/list` before calling them then meets the 403 step-up challenge naming `todo:write`
/// instead of "tool not found".
pub fn policy<P: AuthProvider + ?Sized>(
    provider: &P,
    max_body: usize,
) -> Result<McpPolicy, BuildError> {
    McpPolicy::builder()
        .tool("list_todos", Rule::scopes([READ]))
        .tool("add_todo", Rule::scopes([WRITE]).listed_when_refused())
        .tool("complete_todo", Rule::scopes([WRITE]).listed_when_refused())
        .tool("whoami", Rule::authenticated())
        .tool(DOWNSTREAM_TOOL, Rule::scopes([READ]))
        .default_deny(true)
        .filter_lists(true)
        .max_body_bytes(max_body)
        .build(provider)
}
