//! The `todo` binary as users run it is served by core's serving helper: every accepted socket
//! has `TCP_NODELAY` (without it every SSE answer waits up to 40 ms for the client's delayed
//! ACK), and SIGTERM stops it cleanly even with an MCP session open.
//!
//! The option is read back on the server's side of the connection (getsockopt): the helper logs
//! it for each accepted connection at debug level.

mod support;

use std::time::Duration;

use support::{Mcp, Todo};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Removes ANSI colour sequences from a log line.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn todo_sets_tcp_nodelay_on_every_connection_and_stops_on_sigterm() {
    let mut todo = Todo::start(&[("RUST_LOG", "warn,mcp_auth_core::serve=debug")]).await;
    let mut log = BufReader::new(todo.take_stderr().expect("stderr")).lines();
    let url = todo.url();
    let token = todo.printed("token (read+write");

    // A session over one keep-alive connection, and a second client on its own connection.
    let mut first = Mcp::new(&url, &token);
    first.initialize().await;
    assert_eq!(
        first.call_ok("list_todos", serde_json::json!({})).await,
        "[]"
    );
    let mut second = Mcp::new(&url, &token);
    second.initialize().await;

    let mut accepted = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = log.next_line().await {
            let line = plain(&line);
            if line.contains("accepted connection") {
                accepted.push(line);
                if accepted.len() == 2 {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "two accepted connections logged: {accepted:?}");
    for line in &accepted {
        assert!(line.contains("nodelay=true"), "{line}");
    }

    // The session's standalone SSE stream (GET) stays open until the server ends it. On
    // SIGTERM, rmcp's sessions are cancelled with the server, so the process exits, with
    // success, well within the helper's 10 s grace period (which would otherwise drop it).
    let session = first.session().expect("session mode gives a session id");
    let stream = support::http()
        .get(&url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        todo.terminate().await,
        "todo exits with success within 5 s of SIGTERM"
    );
    drop(stream);
}
