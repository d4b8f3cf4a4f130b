//! Forwarded authorization-server metadata (`mcp_auth_core::forward::MetadataForwarder`) with an
//! arbitrary upstream body: never panics; a JSON object is served byte for byte (200, JSON),
//! anything else is a 502 `upstream_unavailable`, never a 200 with the upstream's bytes.
#![no_main]

#[path = "common/upstream.rs"]
mod upstream;

use axum::body::{Body, to_bytes};
use http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use mcp_auth_core::forward::{AS_METADATA_PATH, MetadataForwarder};
use serde_json::Value;
use tower::ServiceExt;

fuzz_target!(|data: &[u8]| {
    upstream::answer_with(data);
    // A fresh forwarder per input: its cache would otherwise serve the first document.
    let router = MetadataForwarder::new(&upstream::url("/upstream-metadata"))
        .unwrap()
        .router();
    let request = Request::get(AS_METADATA_PATH).body(Body::empty()).unwrap();
    let (status, content_type, body) = upstream::runtime().block_on(async {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type, body)
    });
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "the forwarder answered without a JSON content type"
    );
    if matches!(serde_json::from_slice::<Value>(data), Ok(Value::Object(_))) {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            &body[..],
            data,
            "a JSON object was not forwarded byte for byte"
        );
    } else {
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(&body[..], br#"{"error":"upstream_unavailable"}"#);
    }
});
