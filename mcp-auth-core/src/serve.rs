//! Serving a protected MCP app (feature `rmcp`): the listener, the shared rmcp service, the
//! hosts rmcp accepts, and graceful shutdown.
//!
//! * [`NoDelayListener`]: a TCP listener that sets `TCP_NODELAY` on every accepted socket.
//!   rmcp's streamable-HTTP server answers a `tools/call` as a server-sent event stream, which
//!   leaves the socket in several small writes; with Nagle's algorithm on (the default of every
//!   accepted socket), the second write waits until the client acknowledges the first, and
//!   clients delay that acknowledgement by up to 40 ms (delayed ACK, RFC 1122 §4.2.3.2). A plain
//!   `axum::serve(TcpListener, app)` therefore answers every SSE call about 40 ms late however
//!   idle the server is.
//! * [`serve`]: `axum::serve` on that listener, with a graceful shutdown bounded in time.
//! * [`shutdown_on_signal`]: a [`CancellationToken`] cancelled on SIGINT or SIGTERM; give the
//!   same token to rmcp (`StreamableHttpServerConfig::with_cancellation_token`) so its sessions
//!   and open streams end when the server stops.
//! * [`SharedMcpService`]: rmcp's `StreamableHttpService` behind an `Arc`, so the per-request
//!   clones tower makes cost a reference count instead of a copy of the configuration.
//! * [`allowed_hosts`]: the `Host` values rmcp must accept for a resource URL R (rmcp refuses
//!   other hosts to guard against DNS rebinding).
//!
//! ```no_run
//! use std::sync::Arc;
//! # use mcp_auth_core::{AccessToken, InvalidToken, VerifyError};
//! # struct JwtVerifier;
//! # #[mcp_auth_core::async_trait]
//! # impl mcp_auth_core::TokenVerifier for JwtVerifier {
//! #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
//! #         Err(InvalidToken::Malformed.into())
//! #     }
//! # }
//! # #[derive(Clone)]
//! # struct TodoServer;
//! # impl rmcp::ServerHandler for TodoServer {}
//! use mcp_auth_core::serve::{self, NoDelayListener, SharedMcpService};
//! use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
//! use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
//! use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = RemoteAuthProvider::builder(Arc::new(JwtVerifier))
//!     .resource_url("https://api.example.com/mcp")
//!     .authorization_server("https://idp.example.com")
//!     .build()?;
//! let resource = provider.protected_resource().resource();
//! let shutdown = serve::shutdown_on_signal();
//! let config = StreamableHttpServerConfig::default()
//!     .with_allowed_hosts(serve::allowed_hosts(resource))
//!     .with_cancellation_token(shutdown.child_token());
//! let rmcp_service: StreamableHttpService<TodoServer, LocalSessionManager> =
//!     StreamableHttpService::new(|| Ok(TodoServer), Default::default(), config);
//! let mcp = tower::ServiceBuilder::new()
//!     .layer(provider.layer())
//!     .service(SharedMcpService::new(rmcp_service));
//! let app = axum::Router::new()
//!     .route_service(resource.path(), mcp)
//!     .merge(provider.routes())
//!     .layer(mcp_auth_core::metadata::mcp_cors());
//!
//! let listener = NoDelayListener::bind("0.0.0.0:8000").await?;
//! serve::serve(listener, app, shutdown).await?;
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::serve::{Listener, ListenerExt, TapIo};
use http::{Request, Response};
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::SessionManager;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::ResourceUrl;

/// The token [`serve`] stops on, re-exported from `tokio-util` (the type rmcp's
/// `StreamableHttpServerConfig::with_cancellation_token` takes).
pub use tokio_util::sync::CancellationToken;

/// How long [`serve`] waits, once shutdown starts, for the connections still open to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A TCP listener that sets `TCP_NODELAY` on every socket it accepts (see the
/// [module documentation](self) for the 40 ms it saves on every SSE answer).
///
/// It is an [`axum::serve::Listener`], so it works with `axum::serve` directly as well as with
/// [`serve`]. Accept errors are handled as `axum::serve` handles them for a plain
/// [`TcpListener`].
///
/// ```no_run
/// use axum::serve::Listener;
/// use mcp_auth_core::serve::NoDelayListener;
///
/// # async fn run() -> std::io::Result<()> {
/// let mut listener = NoDelayListener::bind("127.0.0.1:0").await?;
/// let (socket, _peer) = listener.accept().await;
/// assert!(socket.nodelay()?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct NoDelayListener {
    inner: TapIo<TcpListener, fn(&mut TcpStream)>,
}

impl NoDelayListener {
    /// Binds a TCP listener on `addr`.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(Self::new(TcpListener::bind(addr).await?))
    }

    /// Wraps a bound listener.
    pub fn new(listener: TcpListener) -> Self {
        NoDelayListener {
            inner: listener.tap_io(set_nodelay as fn(&mut TcpStream)),
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Listener::local_addr(&self.inner)
    }
}

impl From<TcpListener> for NoDelayListener {
    fn from(listener: TcpListener) -> Self {
        Self::new(listener)
    }
}

impl Listener for NoDelayListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (TcpStream, SocketAddr)> + Send {
        self.inner.accept()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Listener::local_addr(&self.inner)
    }
}

fn set_nodelay(socket: &mut TcpStream) {
    if let Err(error) = socket.set_nodelay(true) {
        // The connection still works, only SSE answers may wait for delayed ACKs.
        tracing::warn!(%error, "could not set TCP_NODELAY on an accepted connection");
    } else if tracing::enabled!(tracing::Level::DEBUG) {
        // Read back from the socket (getsockopt): the log shows what the kernel applies.
        let peer = socket.peer_addr().ok();
        match socket.nodelay() {
            Ok(nodelay) => tracing::debug!(?peer, nodelay, "accepted connection"),
            Err(error) => tracing::debug!(?peer, %error, "accepted connection"),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled.
///
/// Then it stops accepting connections, closes idle keep-alive connections, and waits up to
/// [`SHUTDOWN_GRACE`] for the requests in flight; connections still open after that are
/// dropped. Give rmcp a child of the same token
/// (`StreamableHttpServerConfig::with_cancellation_token(shutdown.child_token())`): its
/// sessions and server-sent event streams, which would otherwise stay open, then end at once.
///
/// Errors are those of `axum::serve` (which in practice never fails once bound).
pub async fn serve(
    listener: NoDelayListener,
    app: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_with_grace(listener, app, shutdown, SHUTDOWN_GRACE).await
}

async fn serve_with_grace(
    listener: NoDelayListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let signal = shutdown.clone().cancelled_owned();
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(grace = ?grace, "connections still open after the shutdown grace period: dropped");
            Ok(())
        }
    }
}

/// A token cancelled when the process receives SIGINT (Ctrl-C) or, on Unix, SIGTERM: the
/// `shutdown` of [`serve`].
///
/// The signal handlers are installed by a task spawned on the current tokio runtime, so this
/// must be called from within one (it panics otherwise, like `tokio::spawn`).
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("shutdown signal received");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn signalled() {
    let _ = tokio::signal::ctrl_c().await;
}

/// `Host` values rmcp must accept for the resource URL R: loopback (`localhost`, `127.0.0.1`,
/// `::1`), R's host, and R's `host:port` when R names a port.
///
/// rmcp refuses requests whose `Host` is not listed (DNS-rebinding protection, per the MCP
/// transport's security warning), so a deployment behind a proxy works as long as R, which is
/// configured and never derived from the request, names the public host.
///
/// ```
/// use mcp_auth_core::ResourceUrl;
/// use mcp_auth_core::serve::allowed_hosts;
///
/// let r = ResourceUrl::parse("https://api.example.com:8443/mcp").unwrap();
/// assert_eq!(
///     allowed_hosts(&r),
///     ["127.0.0.1", "::1", "api.example.com", "api.example.com:8443", "localhost"]
/// );
/// ```
pub fn allowed_hosts(resource: &ResourceUrl) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    // R is a validated absolute URL; its origin always parses.
    if let Ok(url) = url::Url::parse(resource.origin())
        && let Some(host) = url.host_str()
    {
        hosts.push(host.trim_matches(|c| c == '[' || c == ']').to_owned());
        if let Some(port) = url.port() {
            hosts.push(format!("{host}:{port}"));
        }
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// rmcp's streamable-HTTP service behind an `Arc`.
///
/// tower clones a service for every request it serves (once per layer and route above it);
/// cloning `StreamableHttpService` copies its whole configuration (the allowed-host list among
/// it), cloning this is one reference-count increment. Requests are handled exactly as rmcp's
/// own `Service` implementation handles them.
///
/// ```
/// use mcp_auth_core::serve::SharedMcpService;
/// use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
/// use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
///
/// #[derive(Clone)]
/// struct Server;
/// impl rmcp::ServerHandler for Server {}
///
/// let rmcp_service: StreamableHttpService<Server, LocalSessionManager> =
///     StreamableHttpService::new(|| Ok(Server), Default::default(), StreamableHttpServerConfig::default());
/// let shared = SharedMcpService::new(rmcp_service);
/// let app: axum::Router = axum::Router::new().route_service("/mcp", shared);
/// ```
pub struct SharedMcpService<S, M>(Arc<StreamableHttpService<S, M>>);

impl<S, M> SharedMcpService<S, M> {
    /// Shares `service`.
    pub fn new(service: StreamableHttpService<S, M>) -> Self {
        SharedMcpService(Arc::new(service))
    }

    /// The shared service (its configuration is `config`).
    pub fn inner(&self) -> &StreamableHttpService<S, M> {
        &self.0
    }
}

impl<S, M> Clone for SharedMcpService<S, M> {
    fn clone(&self) -> Self {
        SharedMcpService(self.0.clone())
    }
}

impl<S, M> std::fmt::Debug for SharedMcpService<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMcpService")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl<S, M> tower_service::Service<Request<Body>> for SharedMcpService<S, M>
where
    S: ServerHandler + Send + 'static,
    M: SessionManager,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(service.handle(req).await.map(Body::new)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_name_loopback_and_the_resource_host() {
        let r = ResourceUrl::parse("https://api.example.com/mcp").unwrap();
        assert_eq!(
            allowed_hosts(&r),
            ["127.0.0.1", "::1", "api.example.com", "localhost"]
        );
        let r = ResourceUrl::parse("http://[::1]:8000/mcp").unwrap();
        assert_eq!(
            allowed_hosts(&r),
            ["127.0.0.1", "::1", "[::1]:8000", "localhost"]
        );
    }

    #[tokio::test]
    async fn serve_returns_after_the_grace_period_when_a_request_never_ends() {
        let listener = NoDelayListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A handler that never answers keeps its connection busy past the grace period.
        let (started_tx, mut started) = tokio::sync::mpsc::channel::<()>(1);
        let app = Router::new().route(
            "/",
            axum::routing::get(move || {
                let started_tx = started_tx.clone();
                async move {
                    let _ = started_tx.send(()).await;
                    std::future::pending::<&'static str>().await
                }
            }),
        );
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_with_grace(
            listener,
            app,
            shutdown.clone(),
            Duration::from_millis(100),
        ));
        let mut client = TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut client,
            b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        )
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(10), started.recv())
            .await
            .expect("the request reaches the handler");
        shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serve returns once the grace period is over")
            .unwrap();
        assert!(result.is_ok());
    }
}
