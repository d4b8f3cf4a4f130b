//! The todo app served in process on 127.0.0.1:0, and a process-wide panic counter.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use axum::Router;
use mcp_auth_core::serve::{self, CancellationToken, NoDelayListener};
use mcp_auth_core::{AuthProvider, RemoteAuthProvider, TokenVerifier};
use mcp_auth_examples::app::{AppOptions, todo_app};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{READ, WRITE};

static PANICS: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();

/// Installs (once) a panic hook that counts panics anywhere in the process, then calls the
/// previous hook.
pub fn count_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Panics counted since [`count_panics`] was installed.
pub fn panics() -> u64 {
    PANICS.load(Ordering::SeqCst)
}

/// A server task on 127.0.0.1, aborted on drop.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A listener on a free 127.0.0.1 port.
pub async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// Serves `app` on `listener` the way the `todo` binary serves it (core's serving helper:
/// `TCP_NODELAY` on every accepted socket).
pub fn spawn(listener: TcpListener, app: Router) -> Running {
    let addr = listener.local_addr().expect("local addr");
    let handle = tokio::spawn(async move {
        let _ = serve::serve(
            NoDelayListener::from(listener),
            app,
            CancellationToken::new(),
        )
        .await;
    });
    Running { addr, handle }
}

/// The resource URL of a todo server on `addr`.
pub fn resource_url(addr: SocketAddr) -> String {
    format!("http://{addr}/mcp")
}

/// The provider the todo binary builds: `verifier` guarding `resource`, `authorization_server`
/// in the metadata, scopes read + write, initial scope read.
pub fn provider(
    verifier: Arc<dyn TokenVerifier>,
    resource: &str,
    authorization_server: &str,
) -> Arc<dyn AuthProvider> {
    let provider = RemoteAuthProvider::builder(verifier)
        .resource_url(resource)
        .authorization_server(authorization_server)
        .scopes_supported([READ, WRITE])
        .initial_scopes([READ])
        .build()
        .expect("provider builds");
    Arc::new(provider)
}

/// A running todo app (rmcp behind the policy and bearer layers, as the `todo` binary serves it).
pub struct TodoServer {
    /// The server task.
    pub running: Running,
    /// Its resource URL (`http://127.0.0.1:PORT/mcp`).
    pub resource: String,
    /// Its protected-resource metadata URL.
    pub metadata_url: String,
}

impl TodoServer {
    /// Serves the todo app for `provider` on `listener` (session mode, SSE answers: the todo
    /// binary's defaults).
    pub fn start(listener: TcpListener, provider: Arc<dyn AuthProvider>) -> TodoServer {
        let resource = provider.protected_resource().resource().as_str().to_owned();
        let metadata_url = provider.protected_resource().resource().metadata_url();
        let (app, _store) = todo_app(provider, &AppOptions::default()).expect("todo app builds");
        TodoServer {
            running: spawn(listener, app),
            resource,
            metadata_url,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }
}
