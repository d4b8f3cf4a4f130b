//! The few MCP messages the suite sends, over [`crate::raw`].

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::raw::{RawRequest, RawResponse};

/// `initialize` (protocol 2025-06-18, so rmcp runs it in session mode).
pub fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"security-suite","version":"1"}}})
}

/// `tools/call` of `name` with `arguments`.
pub fn call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":name,"arguments":arguments}})
}

/// An MCP POST to `/mcp` with `token` and optionally a session id.
pub fn post(token: &str, session: Option<&str>, body: &Value) -> RawRequest {
    let mut req = RawRequest::mcp_post("/mcp").bearer(token).json(body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req
}

/// `initialize` + `notifications/initialized` with `token`; returns the session id (rmcp's
/// legacy session mode issues one). Errors carry the status, never the token.
pub async fn open_session(addr: SocketAddr, token: &str) -> Result<Option<String>, String> {
    let resp = post(token, None, &initialize()).send(addr).await?;
    if resp.status != 200 {
        return Err(format!("initialize answered {}", resp.status));
    }
    let session = resp.header("mcp-session-id");
    let ack = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let resp = post(token, session.as_deref(), &ack).send(addr).await?;
    if !(200..300).contains(&resp.status) {
        return Err(format!(
            "notifications/initialized answered {}",
            resp.status
        ));
    }
    Ok(session)
}

/// `tools/call` of `name` in `session`.
pub async fn call_tool(
    addr: SocketAddr,
    token: &str,
    session: Option<&str>,
    name: &str,
    arguments: Value,
) -> Result<RawResponse, String> {
    post(token, session, &call(name, arguments))
        .send(addr)
        .await
}

/// Whether an answer means the operation ran: a 2xx whose JSON-RPC message carries a `result`
/// that is not a tool error.
pub fn succeeded(resp: &RawResponse) -> bool {
    if !(200..300).contains(&resp.status) {
        return false;
    }
    let msg = resp.message();
    msg.get("result")
        .is_some_and(|r| r.get("isError") != Some(&Value::Bool(true)))
}
