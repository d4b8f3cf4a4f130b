//! A byte-exact HTTP/1.1 client: every request is written as given (`Connection: close`) and the
//! whole answer read back, so tests can send what well-behaved clients refuse to (duplicate
//! headers, raw non-UTF-8 bytes, obs-fold, oversized headers) and see exactly what came back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one exchange may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// A request to write byte for byte.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Method token.
    pub method: String,
    /// Request target (path and query).
    pub target: String,
    /// Header lines in order (name, value), written as `name: value`.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether to add `Content-Length` (off for hand-written framing).
    pub auto_length: bool,
    /// Bytes written verbatim after the other headers (e.g. an obs-fold continuation line).
    pub extra_header_bytes: Vec<u8>,
    /// `Host` value (default: the address connected to).
    pub host: Option<String>,
}

impl RawRequest {
    /// A request with no headers beyond `Host`, `Connection: close` and `Content-Length`.
    pub fn new(method: &str, target: &str) -> RawRequest {
        RawRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            auto_length: true,
            extra_header_bytes: Vec::new(),
            host: None,
        }
    }

    /// A POST to `target` with the headers an MCP client sends (JSON body, JSON or SSE answer,
    /// protocol version 2025-06-18).
    pub fn mcp_post(target: &str) -> RawRequest {
        RawRequest::new("POST", target)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
    }

    /// Adds a header line.
    pub fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> RawRequest {
        self.headers
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> RawRequest {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sets the body.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> RawRequest {
        self.body = body.as_ref().to_vec();
        self
    }

    /// Sets a JSON body.
    pub fn json(self, body: &serde_json::Value) -> RawRequest {
        self.body(body.to_string())
    }

    /// The bytes on the wire, with `Host: <host>`.
    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.target).as_bytes());
        out.extend_from_slice(format!("host: {host}\r\nconnection: close\r\n").as_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.extra_header_bytes);
        if self.auto_length {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends the request to `addr` and reads the answer.
    pub async fn send(&self, addr: SocketAddr) -> Result<RawResponse, String> {
        let host = self.host.clone().unwrap_or_else(|| addr.to_string());
        exchange(addr, &self.to_bytes(&host)).await
    }

    /// Overrides the `Host` header.
    pub fn host(mut self, host: &str) -> RawRequest {
        self.host = Some(host.to_owned());
        self
    }

    /// Appends raw bytes to the header block (they must end with CRLF to be a line).
    pub fn raw_header_bytes(mut self, bytes: impl AsRef<[u8]>) -> RawRequest {
        self.extra_header_bytes.extend_from_slice(bytes.as_ref());
        self
    }

    /// Turns off the automatic `Content-Length`.
    pub fn no_length(mut self) -> RawRequest {
        self.auto_length = false;
        self
    }
}

/// A parsed answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines (lower-cased name, raw value).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (chunked framing removed).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (lower case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// How many `name` headers there are.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC message of a JSON or SSE body (`Null` when there is none).
    pub fn message(&self) -> serde_json::Value {
        let text = self.text();
        let is_sse = self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let data = if is_sse {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .rfind(|d| !d.is_empty())
                .unwrap_or("null")
                .to_owned()
        } else {
            text
        };
        serde_json::from_str(&data).unwrap_or(serde_json::Value::Null)
    }
}

/// Writes `request` to `addr` (concurrently with reading, so an early answer to a huge request is
/// still seen) and reads until the server closes the connection.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Result<RawResponse, String> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let request = request.to_vec();
    let writer = tokio::spawn(async move {
        // The server may answer and close before reading everything: ignore write errors.
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        wr
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A reset after a complete answer still leaves that answer usable.
                Err(e) if !buf.is_empty() => {
                    let _ = e;
                    return Ok(());
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    })
    .await;
    writer.abort();
    match read {
        Err(_) => return Err("no complete answer within the timeout".into()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => {}
    }
    parse(&buf)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one HTTP/1.1 response.
pub fn parse(buf: &[u8]) -> Result<RawResponse, String> {
    if buf.is_empty() {
        return Err("connection closed without an answer".into());
    }
    let end = find(buf, b"\r\n\r\n").ok_or("answer without a header terminator")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
        .collect();
    let raw_body = &buf[end + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n == "transfer-encoding" && String::from_utf8_lossy(v).eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_vec()
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_answers() {
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.header("x-a").as_deref(), Some("1"));
        assert!(parse(b"").is_err());
    }
}
