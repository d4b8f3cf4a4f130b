//! The serving helper (feature `rmcp`): every accepted socket has `TCP_NODELAY`, read back from
//! the server side of the connection (getsockopt), so the 40 ms stall of SSE answers (Nagle's
//! algorithm meeting the client's delayed ACK) cannot silently come back.

use std::time::Duration;

use axum::serve::Listener;
use mcp_auth_core::serve::NoDelayListener;
use tokio::net::{TcpListener, TcpStream};

async fn accept_one<L: Listener<Io = TcpStream>>(
    listener: &mut L,
    addr: std::net::SocketAddr,
) -> TcpStream {
    let client = TcpStream::connect(addr);
    let (accepted, client) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(listener.accept(), client)
    })
    .await
    .expect("loopback connection within 10 s");
    let client = client.expect("connect");
    // The client side is left as the OS made it: the option is the listener's doing.
    assert!(!client.nodelay().unwrap());
    accepted.0
}

#[tokio::test]
async fn accepted_sockets_have_tcp_nodelay() {
    let mut listener = NoDelayListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..3 {
        let socket = accept_one(&mut listener, addr).await;
        assert!(
            socket.nodelay().unwrap(),
            "TCP_NODELAY not set on an accepted socket"
        );
    }
}

#[tokio::test]
async fn a_plain_listener_leaves_nagle_on_which_is_why_the_helper_exists() {
    // The control: without the helper the accepted socket keeps Nagle's algorithm, so the
    // assertion above tests the helper, not a kernel default.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let mut plain = tcp;
    let socket = accept_one(&mut plain, addr).await;
    assert!(!socket.nodelay().unwrap());

    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let mut wrapped = NoDelayListener::from(tcp);
    assert!(accept_one(&mut wrapped, addr).await.nodelay().unwrap());
}
