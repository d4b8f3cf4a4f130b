//! A loopback HTTP server answering every request with the bytes of the current fuzz input, so a
//! target can drive a component's real fetch-and-parse path (status, size cap, JSON) through its
//! public API. One process-wide current-thread runtime: the server task runs while the target
//! blocks on its request.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use http::{Response, header};

/// The runtime every target blocks on (the server is spawned onto it).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

static BODY: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// The server's address; started on first use on a port the OS picks.
pub fn addr() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(|| async {
            let body = BODY.lock().unwrap().clone();
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap()
        });
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    })
}

/// `http://127.0.0.1:<port><path>`.
pub fn url(path: &str) -> String {
    format!("http://{}{path}", addr())
}

/// Makes `body` the answer to the next requests.
pub fn answer_with(body: &[u8]) {
    addr();
    *BODY.lock().unwrap() = body.to_vec();
}
