//! `diagnose`'s per-tool lines: each tool's scope rule (expected) versus the token's scopes
//! (found), then the answer the policy layer gives to `tools/call` and what would change it.

mod common;

use std::time::Duration;

use common::{fake, mint};
use mcp_auth_core::RemoteAuthProvider;
use mcp_auth_core::diagnose::diagnose;
use mcp_auth_core::policy::{McpPolicy, Rule};

const R: &str = "http://127.0.0.1:8000/mcp";

/// The tool lines `diagnose` gives for `token`, as printed.
async fn tool_lines(token: &str) -> Vec<String> {
    // The advertised authorization server is a loopback port nothing serves: its metadata
    // check fails fast and is not what this test looks at.
    let provider = RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server("http://127.0.0.1:9")
        .scopes_supported(["todo:read", "todo:write"])
        .build()
        .unwrap();
    let policy = McpPolicy::builder()
        .tool("list_todos", Rule::scopes(["todo:read"]))
        .tool("both", Rule::scopes(["todo:read", "todo:write"]))
        .tool("whoami", Rule::authenticated())
        .tool(
            "tenant_report",
            Rule::scopes(["todo:read"]).require_claim("tenant", "acme"),
        )
        .default_deny(true)
        .build(&provider)
        .unwrap();
    let tools: Vec<String> = ["list_todos", "both", "whoami", "tenant_report", "unruled"]
        .map(String::from)
        .to_vec();
    let d = tokio::time::timeout(
        Duration::from_secs(30),
        diagnose("fake", &provider, Some(&policy), &tools, Some(token)),
    )
    .await
    .expect("diagnosis within 30 s");
    let report = d.token.expect("a token report");
    assert_eq!(report.answer.status, 200, "{report:?}");
    report.tools.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn each_tool_line_shows_its_rule_expected_versus_the_token_scopes_found() {
    let lines = tool_lines(&mint(&["todo:read"], R)).await;
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert_eq!(
        lines[0],
        "[ok]   list_todos: expected scope \"todo:read\", found [\"todo:read\"]: callable"
    );
    assert!(
        lines[1].starts_with(
            "[warn] both: expected scopes [\"todo:read\", \"todo:write\"], found [\"todo:read\"]: \
             403 Forbidden, WWW-Authenticate: Bearer error=\"insufficient_scope\""
        ) && lines[1].contains("scope=\"todo:read todo:write\"")
            && lines[1].ends_with(
                ": this token may not call it: the client must ask for the challenge's scope"
            ),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        "[ok]   whoami: expected no scope, found [\"todo:read\"]: callable"
    );
    // Scopes satisfied, refused by the rule's claim condition: asking for more scopes is no fix.
    assert!(
        lines[3].starts_with(
            "[warn] tenant_report: expected scope \"todo:read\" and the rule's claim conditions, \
             found [\"todo:read\"]: 403 Forbidden"
        ) && lines[3].ends_with(
            ": this token may not call it: the rule's claim conditions or default-deny refuse \
             it, more scopes do not help"
        ),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with(
            "[warn] unruled: expected a rule for this tool (none: default-deny refuses it), found \
             [\"todo:read\"]: 403 Forbidden"
        ) && lines[4].ends_with("more scopes do not help"),
        "{}",
        lines[4]
    );

    // A token without scopes.
    let lines = tool_lines(&mint(&[], R)).await;
    assert!(
        lines[0].starts_with(
            "[warn] list_todos: expected scope \"todo:read\", found no scopes: 403 Forbidden"
        ),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[2],
        "[ok]   whoami: expected no scope, found no scopes: callable"
    );
}
