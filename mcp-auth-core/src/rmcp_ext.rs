//! rmcp integration (feature `rmcp`): extractors for `#[tool]` and `#[prompt]` functions.
//!
//! rmcp's streamable-HTTP server puts each request's `http::request::Parts` into the request
//! context; the bearer layer put the [`AccessToken`] into those parts' extensions. Note that
//! rmcp's own `Extension<AccessToken>` looks in the context's map, not in `Parts`, and fails with
//! "missing extension": use [`AccessToken`] or [`Auth`] as the parameter instead.
//!
//! ```ignore
//! #[tool(description = "Add a todo")]
//! async fn add_todo(&self, auth: Auth, Parameters(p): Parameters<AddTodo>) -> Result<String, ErrorData> {
//!     auth.require_scopes(&["todo:write"])?;   // defence in depth; the policy layer checked first
//!     Ok(format!("added for {}", auth.token().subject().unwrap_or("?")))
//! }
//! ```

use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::prompt::PromptContext;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::ErrorCode;

use crate::policy::{McpPolicy, Operation, PolicyHandle};
use crate::{AccessToken, ScopeHierarchy};

fn token_from<C: AsRequestContext>(
    context: &C,
) -> Result<(AccessToken, Option<McpPolicy>), ErrorData> {
    let parts = context
        .as_request_context()
        .extensions
        .get::<http::request::Parts>()
        .ok_or_else(|| {
            unauthenticated("no HTTP request parts: is the server behind the bearer layer?")
        })?;
    let token = parts
        .extensions
        .get::<AccessToken>()
        .cloned()
        .ok_or_else(|| {
            unauthenticated("no access token: is the server behind the bearer layer?")
        })?;
    let policy = parts.extensions.get::<PolicyHandle>().map(|p| p.0.clone());
    Ok((token, policy))
}

fn unauthenticated(message: &'static str) -> ErrorData {
    tracing::error!("{message}");
    ErrorData::new(ErrorCode::INTERNAL_ERROR, "not authenticated", None)
}

fn insufficient(operation: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_REQUEST,
        format!("insufficient scope for {operation}"),
        None,
    )
}

/// Any request context: the verified token (fails in-band when the layer is missing).
impl<C: AsRequestContext> FromContextPart<C> for AccessToken {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        token_from(context).map(|(t, _)| t)
    }
}

/// The caller's token, with the policy re-checked for the tool or prompt being run.
///
/// As a `#[tool]` parameter it re-runs the policy for that tool's name (so a parser difference
/// between the policy layer and rmcp can only cause an in-band error, never a bypass), and offers
/// [`Auth::require_scopes`] for checks inside the tool.
#[derive(Clone, Debug)]
pub struct Auth {
    token: AccessToken,
    hierarchy: ScopeHierarchy,
}

impl Auth {
    fn checked(
        token: AccessToken,
        policy: Option<McpPolicy>,
        op: Operation,
    ) -> Result<Self, ErrorData> {
        let hierarchy = match &policy {
            Some(p) => {
                let decision = p.decide(&token, &op);
                if !decision.is_allowed() {
                    tracing::warn!(operation = ?op, "in-tool policy check refused a call the layer let through");
                    return Err(insufficient(match &op {
                        Operation::ToolCall(_) => "this tool",
                        _ => "this prompt",
                    }));
                }
                p.hierarchy().clone()
            }
            None => ScopeHierarchy::new(),
        };
        Ok(Auth { token, hierarchy })
    }

    /// The verified token.
    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// Fails in-band unless the token holds every scope (honouring the policy's hierarchy).
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), ErrorData> {
        for s in scopes {
            if !self.hierarchy.satisfies(self.token.scopes(), s) {
                return Err(insufficient(s));
            }
        }
        Ok(())
    }
}

impl<S> FromContextPart<ToolCallContext<'_, S>> for Auth {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, ErrorData> {
        let (token, policy) = token_from(context)?;
        Auth::checked(token, policy, Operation::ToolCall(context.name.to_string()))
    }
}

impl<S> FromContextPart<PromptContext<'_, S>> for Auth {
    fn from_context_part(context: &mut PromptContext<'_, S>) -> Result<Self, ErrorData> {
        let (token, policy) = token_from(context)?;
        Auth::checked(token, policy, Operation::PromptGet(context.name.clone()))
    }
}

impl McpPolicy {
    /// Logs (warn) and returns the tools of an rmcp `ToolRouter` that have no rule.
    pub fn report_router<S: Send + Sync + 'static>(&self, router: &ToolRouter<S>) -> Vec<String> {
        let tools = router.list_all();
        self.report_tools_without_rule(tools.iter().map(|t| t.name.as_ref()))
    }
}
