//! `policy::parse_operation` on arbitrary bodies: never panics, and whenever it names a tool,
//! resource or prompt, a plain JSON parse of the same bytes agrees (a single object whose
//! `method`/`params` say the same thing), so the policy cannot decide on something else than
//! what a JSON-RPC server would run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_core::policy::{Operation, parse_operation};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(op) = parse_operation(data) else {
        return;
    };
    let value: Value = serde_json::from_slice(data).expect("policy accepted invalid JSON");
    let obj = value.as_object().expect("policy accepted a non-object");
    let method = obj.get("method").and_then(Value::as_str);
    let param = |k: &str| obj.get("params").and_then(|p| p.get(k)).and_then(Value::as_str);
    match op {
        Operation::ToolCall(name) => {
            assert_eq!(method, Some("tools/call"));
            assert_eq!(param("name"), Some(name.as_str()));
        }
        Operation::PromptGet(name) => {
            assert_eq!(method, Some("prompts/get"));
            assert_eq!(param("name"), Some(name.as_str()));
        }
        Operation::ResourceRead(uri) => {
            assert_eq!(method, Some("resources/read"));
            assert_eq!(param("uri"), Some(uri.as_str()));
        }
        Operation::Resources { method: m, uris } => {
            assert_eq!(method, Some(m.as_str()));
            if m != "subscriptions/listen" {
                assert_eq!(param("uri"), uris.first().map(String::as_str));
            }
        }
        Operation::List(kind) => assert_eq!(method, Some(kind.method())),
        Operation::Initialize => assert_eq!(method, Some("initialize")),
        Operation::Method(m) | Operation::Housekeeping(m) => assert_eq!(method, Some(m.as_str())),
        Operation::Response => assert_eq!(method, None),
        _ => {}
    }
});
