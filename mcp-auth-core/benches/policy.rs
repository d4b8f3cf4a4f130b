//! The per-tool policy check on a 1 KiB `tools/call` body (target: under 5 µs): the typed parse
//! plus the decision, as the policy layer does it per request.

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_auth_core::policy::{McpPolicy, Rule, parse_operation};
use mcp_auth_core::{
    AccessToken, InvalidToken, RemoteAuthProvider, TokenVerifier, VerifyError, async_trait,
};
use std::hint::black_box;
use std::sync::Arc;

struct Never;

#[async_trait]
impl TokenVerifier for Never {
    async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
        Err(InvalidToken::Malformed.into())
    }
}

fn bench(c: &mut Criterion) {
    let provider = RemoteAuthProvider::builder(Arc::new(Never))
        .resource_url("https://api.example.com/mcp")
        .authorization_server("https://idp.example.com")
        .build()
        .unwrap();
    let mut builder = McpPolicy::builder();
    for i in 0..50 {
        builder = builder.tool(format!("tool_{i}"), Rule::scopes(["todo:read"]));
    }
    let policy = builder
        .tool("add_todo", Rule::scopes(["todo:write"]))
        .build(&provider)
        .unwrap();
    let token = AccessToken::builder()
        .subject("alice")
        .scopes(["todo:read", "todo:write"])
        .audience("https://api.example.com/mcp")
        .build();
    let text = "x".repeat(900);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"add_todo","arguments":{{"text":"{text}","priority":3,"tags":["a","b"]}},"_meta":{{"progressToken":"p1"}}}}}}"#
    );
    assert!((1000..1100).contains(&body.len()), "{}", body.len());
    c.bench_function("policy/tools_call_1KiB_parse_and_decide", |b| {
        b.iter(|| {
            let op = parse_operation(black_box(body.as_bytes())).unwrap();
            black_box(policy.decide(&token, &op))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
