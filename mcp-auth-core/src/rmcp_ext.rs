//! rmcp integration (feature `rmcp`): extractors for `#[tool]` and `#[prompt]` functions, and
//! task handles bound to the principal that created them ([`BoundTaskManager`]).
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::prompt::PromptContext;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{DetailedTask, ErrorCode, Task};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::task_manager::{TaskContext, TaskFuture, TaskManager, TaskOptions};

use crate::policy::{McpPolicy, Operation, PolicyHandle};
use crate::token::Principal;
use crate::{AccessToken, ScopeHierarchy};

fn token_from<C: AsRequestContext>(
    context: &C,
) -> Result<(AccessToken, Option<McpPolicy>), ErrorData> {
    token_from_request(context.as_request_context())
}

fn token_from_request(
    context: &RequestContext<RoleServer>,
) -> Result<(AccessToken, Option<McpPolicy>), ErrorData> {
    let parts = context
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
#[derive(Clone)]
pub struct Auth {
    token: AccessToken,
    /// The policy the layer decided with (its scope hierarchy answers `require_scopes`); kept
    /// rather than copying the hierarchy on every call.
    policy: Option<McpPolicy>,
    /// The raw token, for the exchanger only (when the layer has one).
    #[cfg(feature = "exchange")]
    subject: Option<crate::exchange::SubjectToken>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token)
            .field("policy", &self.policy.is_some())
            .finish()
    }
}

impl Auth {
    fn checked<C: AsRequestContext>(
        context: &C,
        token: AccessToken,
        policy: Option<McpPolicy>,
        op: Operation,
    ) -> Result<Self, ErrorData> {
        #[cfg(not(feature = "exchange"))]
        let _ = context;
        if let Some(p) = &policy {
            let decision = p.decide(&token, &op);
            if !decision.is_allowed() {
                tracing::warn!(operation = ?op, "in-tool policy check refused a call the layer let through");
                return Err(insufficient(match &op {
                    Operation::ToolCall(_) => "this tool",
                    _ => "this prompt",
                }));
            }
        }
        Ok(Auth {
            token,
            policy,
            #[cfg(feature = "exchange")]
            subject: context
                .as_request_context()
                .extensions
                .get::<http::request::Parts>()
                .and_then(|p| p.extensions.get::<crate::exchange::SubjectToken>())
                .cloned(),
        })
    }

    /// A token for the downstream API `target` (one of the exchanger's configured targets),
    /// with every scope allowed there, obtained by RFC 8693 token exchange (or Entra's
    /// on-behalf-of flow) for the caller: the MCP token itself never leaves this server.
    /// Feature `exchange`; the layer needs [`crate::BearerAuthLayer::with_token_exchange`].
    ///
    /// ```ignore
    /// #[tool(description = "Read my notes")]
    /// async fn notes(&self, auth: Auth) -> Result<String, ErrorData> {
    ///     let downstream = auth.exchange_for("https://notes.example.com").await?;
    ///     let body = self.http.get("https://notes.example.com/notes")
    ///         .header("authorization", downstream.authorization())
    ///         .send().await /* ... */;
    /// }
    /// ```
    #[cfg(feature = "exchange")]
    pub async fn exchange_for(
        &self,
        target: &str,
    ) -> Result<crate::exchange::ExchangedToken, crate::exchange::ExchangeError> {
        match &self.subject {
            Some(s) => s.exchange_for(target).await,
            None => Err(crate::exchange::ExchangeError::NoSubjectToken),
        }
    }

    /// [`Auth::exchange_for`] asking for `scopes` only, each of which must be allowed at
    /// `target`.
    #[cfg(feature = "exchange")]
    pub async fn exchange_for_scopes(
        &self,
        target: &str,
        scopes: &[&str],
    ) -> Result<crate::exchange::ExchangedToken, crate::exchange::ExchangeError> {
        match &self.subject {
            Some(s) => s.exchange_for_scopes(target, scopes).await,
            None => Err(crate::exchange::ExchangeError::NoSubjectToken),
        }
    }

    /// The verified token.
    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// The thumbprint of the key the token is bound to, when the request came on the DPoP scheme
    /// with a valid proof ([`AccessToken::dpop_thumbprint`]); `None` for a bearer token.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.token.dpop_thumbprint()
    }

    /// Fails in-band unless the token holds every scope (honouring the policy's hierarchy).
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), ErrorData> {
        let flat = ScopeHierarchy::new();
        let hierarchy = self.policy.as_ref().map_or(&flat, McpPolicy::hierarchy);
        for s in scopes {
            if !hierarchy.satisfies(self.token.scopes(), s) {
                return Err(insufficient(s));
            }
        }
        Ok(())
    }
}

impl<S> FromContextPart<ToolCallContext<'_, S>> for Auth {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, ErrorData> {
        let (token, policy) = token_from(context)?;
        let op = Operation::ToolCall(context.name.to_string());
        Auth::checked(context, token, policy, op)
    }
}

impl<S> FromContextPart<PromptContext<'_, S>> for Auth {
    fn from_context_part(context: &mut PromptContext<'_, S>) -> Result<Self, ErrorData> {
        let (token, policy) = token_from(context)?;
        let op = Operation::PromptGet(context.name.clone());
        Auth::checked(context, token, policy, op)
    }
}

/// An exchange failure as an in-band MCP error: the tool's input (an unknown target or scope)
/// is invalid params; the IdP refusing this user's token, invalid request; everything on our
/// side or the IdP's (unavailable, our credentials refused, misconfiguration), an internal error
/// whose data carries only the code (`{"exchange_error": "unavailable"}`), never details.
#[cfg(feature = "exchange")]
impl From<crate::exchange::ExchangeError> for ErrorData {
    fn from(e: crate::exchange::ExchangeError) -> Self {
        use crate::exchange::ExchangeError as E;
        let data = Some(serde_json::json!({ "exchange_error": e.code() }));
        match &e {
            E::UnknownTarget | E::ScopeNotAllowed => ErrorData::invalid_params(e.to_string(), data),
            E::SubjectExpired | E::Refused { .. } => {
                ErrorData::invalid_request(e.to_string(), data)
            }
            E::Unavailable { .. } => ErrorData::internal_error(
                "the identity provider is unavailable: try again later",
                data,
            ),
            _ => ErrorData::internal_error("calling the downstream API is misconfigured", data),
        }
    }
}

impl McpPolicy {
    /// Logs (warn) and returns the tools of an rmcp `ToolRouter` that have no rule; also logs
    /// the methods, resources and prompts without one ([`McpPolicy::report_without_rule`]).
    pub fn report_router<S: Send + Sync + 'static>(&self, router: &ToolRouter<S>) -> Vec<String> {
        let tools = router.list_all();
        self.report_without_rule();
        self.report_tools_without_rule(tools.iter().map(|t| t.name.as_ref()))
    }
}

/// rmcp's [`TaskManager`] with every task handle bound to the principal (issuer + subject +
/// client id) whose token created it.
///
/// Task ids travel in request bodies (`tasks/get`, `tasks/update`, `tasks/cancel`, protocol
/// 2026-07-28 tasks extension), so without binding anyone who learns an id could read another
/// user's result or cancel their work. Use this in place of rmcp's `TaskManager` in a server
/// behind the bearer layer: a task is created only for an authenticated caller, and another
/// principal asking for it gets exactly the error of an unknown task (nothing tells them it
/// exists). A refreshed token of the same principal keeps access.
///
/// ```
/// use mcp_auth_core::rmcp_ext::BoundTaskManager;
/// use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, GetTaskParams, GetTaskResult};
/// use rmcp::service::{RequestContext, RoleServer};
/// use rmcp::task_manager::TaskOptions;
/// use rmcp::ErrorData;
///
/// #[derive(Clone, Default)]
/// struct Server {
///     tasks: BoundTaskManager,
/// }
///
/// impl Server {
///     // From `ServerHandler::call_tool`, when the client declared the tasks extension.
///     fn start(&self, ctx: &RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
///         let task = self.tasks.spawn(ctx, TaskOptions::new(), |_task| {
///             Box::pin(async { Ok(CallToolResult::success(vec![ContentBlock::text("done")])) })
///         })?;
///         Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
///     }
///
///     // `ServerHandler::get_task`; `update_task` and `cancel_task` go the same way.
///     fn get(&self, p: GetTaskParams, ctx: &RequestContext<RoleServer>) -> Result<GetTaskResult, ErrorData> {
///         Ok(GetTaskResult::new(self.tasks.get_task(ctx, &p.task_id)?))
///     }
/// }
/// ```
#[derive(Clone, Default)]
pub struct BoundTaskManager {
    tasks: TaskManager,
    owners: Arc<Mutex<Owners>>,
}

#[derive(Default)]
struct Owners {
    by_task: HashMap<String, Binding>,
    /// Size at which the next spawn drops the bindings of tasks rmcp has forgotten, so the map
    /// stays within a factor of two of the tasks rmcp keeps, at amortized constant cost.
    prune_at: usize,
}

/// Who owns a task, and what tells when rmcp forgets it.
struct Binding {
    owner: Principal,
    /// The task's `ttl_ms`: rmcp evicts a finished task once it has been terminal that long
    /// (tasks without one are kept as long as the manager).
    ttl: Option<std::time::Duration>,
    /// When the operation's future ended (completed, failed, cancelled, aborted by rmcp's TTL
    /// sweep, or dropped by a shutdown).
    ended: Arc<std::sync::OnceLock<std::time::Instant>>,
}

impl Binding {
    /// Whether rmcp has forgotten (or is about to forget) the task. Decided from our own record,
    /// so pruning never calls into rmcp: each of its calls sweeps every task under its lock,
    /// which made pruning quadratic and held our lock across those sweeps.
    fn expired(&self) -> bool {
        match (self.ttl, self.ended.get()) {
            (Some(ttl), Some(end)) => end.elapsed() >= ttl,
            _ => false,
        }
    }
}

/// Records when the task's future is dropped, whichever way it ends.
struct EndGuard(Arc<std::sync::OnceLock<std::time::Instant>>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        let _ = self.0.set(std::time::Instant::now());
    }
}

impl std::fmt::Debug for BoundTaskManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundTaskManager")
            .field("running", &self.tasks.running_task_count())
            .finish_non_exhaustive()
    }
}

impl BoundTaskManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        // The map holds no invariant a panic elsewhere could break halfway.
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawns the operation as a task owned by the caller of `context` and returns its seed
    /// state for a `CreateTaskResult`. Fails in-band, spawning nothing, when the request carries
    /// no verified token (the server is not behind the bearer layer).
    pub fn spawn<F>(
        &self,
        context: &RequestContext<RoleServer>,
        options: TaskOptions,
        make_future: F,
    ) -> Result<Task, ErrorData>
    where
        F: FnOnce(TaskContext) -> TaskFuture,
    {
        let (token, _) = token_from_request(context)?;
        let principal = token.principal().cloned().ok_or_else(|| {
            ErrorData::invalid_request("the access token names no principal", None)
        })?;
        let ended = Arc::new(std::sync::OnceLock::new());
        let guard = EndGuard(ended.clone());
        let task = self.tasks.spawn(options, move |ctx| {
            let future = make_future(ctx);
            Box::pin(async move {
                let _guard = guard;
                future.await
            })
        });
        let binding = Binding {
            owner: principal,
            ttl: task.ttl_ms.map(std::time::Duration::from_millis),
            ended,
        };
        let mut owners = self.owners();
        if owners.by_task.len() >= owners.prune_at {
            owners.by_task.retain(|_, b| !b.expired());
            owners.prune_at = (owners.by_task.len() * 2).max(64);
        }
        owners.by_task.insert(task.task_id.clone(), binding);
        Ok(task)
    }

    /// Checks that the caller of `context` owns `task_id`; an unknown task, a task of another
    /// principal and a request without a token all give the same in-band error.
    fn check_owner(
        &self,
        context: &RequestContext<RoleServer>,
        task_id: &str,
    ) -> Result<(), ErrorData> {
        let (token, _) = token_from_request(context)?;
        let owners = self.owners();
        match owners.by_task.get(task_id) {
            Some(b) if Some(&b.owner) == token.principal() => Ok(()),
            Some(_) => {
                tracing::warn!(
                    reason = "task_principal_mismatch",
                    "request for another principal's task refused"
                );
                Err(unknown_task(task_id))
            }
            None => Err(unknown_task(task_id)),
        }
    }

    /// `tasks/get`: the task's current state, for its owner only.
    pub fn get_task(
        &self,
        context: &RequestContext<RoleServer>,
        task_id: &str,
    ) -> Result<DetailedTask, ErrorData> {
        self.check_owner(context, task_id)?;
        self.tasks.get_task(task_id)
    }

    /// `tasks/update`: delivers input responses to the task, for its owner only.
    pub fn update_task(
        &self,
        context: &RequestContext<RoleServer>,
        task_id: &str,
        input_responses: impl IntoIterator<Item = (String, serde_json::Value)>,
    ) -> Result<(), ErrorData> {
        self.check_owner(context, task_id)?;
        self.tasks.update_task(task_id, input_responses)
    }

    /// `tasks/cancel`: requests cooperative cancellation, for the task's owner only.
    pub fn cancel_task(
        &self,
        context: &RequestContext<RoleServer>,
        task_id: &str,
    ) -> Result<(), ErrorData> {
        self.check_owner(context, task_id)?;
        self.tasks.cancel_task(task_id)
    }

    /// Number of task bindings held (all principals): tasks rmcp may still know. Bounded by
    /// twice what rmcp keeps.
    pub fn bound_task_count(&self) -> usize {
        self.owners().by_task.len()
    }

    /// Number of tasks not yet in a terminal state (all principals).
    pub fn running_task_count(&self) -> usize {
        self.tasks.running_task_count()
    }

    /// Aborts every task and forgets all of them and their bindings.
    pub fn shutdown(&self) {
        self.tasks.shutdown();
        self.owners().by_task.clear();
    }
}

/// The error rmcp gives for a task id it does not know (SEP-2663: invalid params).
fn unknown_task(task_id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown task: {task_id}"), None)
}
