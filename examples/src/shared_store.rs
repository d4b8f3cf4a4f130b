//! The store several replicas share (`MCP_AUTH_STORE_URL`), one per process.

use std::sync::{Arc, OnceLock};

use mcp_auth_core::config::ConfigError;
use mcp_auth_core::store::{Store, StoreConfig};

/// The shared store and its key prefix (`MCP_AUTH_STORE_PREFIX`).
pub type SharedStore = (Arc<dyn Store>, String);

static SHARED: OnceLock<Option<SharedStore>> = OnceLock::new();

/// The shared store and its key prefix when `MCP_AUTH_STORE_URL` is set (`None` otherwise:
/// each replica keeps its state in process). Built once per process (one connection manager);
/// connecting is lazy, so a store that is down at start-up does not stop the server.
pub fn shared_store() -> Result<Option<SharedStore>, ConfigError> {
    if let Some(s) = SHARED.get() {
        return Ok(s.clone());
    }
    let config = StoreConfig::from_env()?;
    let built = if config.is_shared() {
        let store = config.build()?;
        tracing::info!(store = ?store, "shared store configured (MCP_AUTH_STORE_URL)");
        Some((store, config.prefix().to_owned()))
    } else {
        None
    };
    Ok(SHARED.get_or_init(|| built).clone())
}
