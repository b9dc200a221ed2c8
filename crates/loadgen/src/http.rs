//! A minimal HTTP/1.1 keep-alive client for the few JSON calls the generator makes (login, project
//! setup, unit PATCHes, availability, `/metrics`). Plain TCP to 127.0.0.1 only: no TLS, no pool
//! library, so the generator stays small and its own CPU cost is visible.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Host and port of a server, parsed from `http://host:port` or `ws://host:port`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
}

impl Endpoint {
    /// Parses `http://127.0.0.1:8080`, `ws://127.0.0.1:8080/ws` or `127.0.0.1:8080`.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .unwrap_or(url);
        if url.starts_with("https://") || url.starts_with("wss://") {
            bail!("{url}: TLS is not supported (the generator targets 127.0.0.1 only)");
        }
        let authority = rest.split('/').next().unwrap_or("").to_owned();
        if authority.is_empty() {
            bail!("{url}: no host");
        }
        let authority = if authority.contains(':') {
            authority
        } else {
            format!("{authority}:80")
        };
        Ok(Self { authority })
    }
}

/// One HTTP response: status and body.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("response is not JSON")
    }
}

/// A keep-alive connection that reconnects when the server closes it.
pub struct Client {
    endpoint: Endpoint,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Client {
    /// A client for `endpoint` (connects lazily).
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            conn: None,
            buf: Vec::with_capacity(8192),
            timeout: Duration::from_secs(30),
        }
    }

    /// Sends one request and reads the full response, bounded by the client's timeout.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Response> {
        self.request_with(method, path, token, body, &[]).await
    }

    /// [`Client::request`] with extra headers (e.g. an `Idempotency-Key`).
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let limit = self.timeout;
        let call = self.request_inner(method, path, token, body, headers);
        match tokio::time::timeout(limit, call).await {
            Ok(r) => {
                if r.is_err() {
                    self.conn = None;
                }
                r
            }
            Err(_) => {
                self.conn = None;
                Err(anyhow!("{method} {path}: timed out"))
            }
        }
    }

    async fn request_inner(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n",
            self.endpoint.authority
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(t) = token {
            head.push_str("Authorization: Bearer ");
            head.push_str(t);
            head.push_str("\r\n");
        }
        let body = body.unwrap_or(&[]);
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        // A keep-alive connection the server closed shows up as a failed write or an EOF before
        // any byte: retry once on a fresh connection.
        for attempt in 0..2 {
            if self.conn.is_none() {
                let c = TcpStream::connect(&self.endpoint.authority)
                    .await
                    .with_context(|| format!("connect {}", self.endpoint.authority))?;
                c.set_nodelay(true)?;
                self.conn = Some(c);
                self.buf.clear();
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            if conn.write_all(&req).await.is_err() {
                self.conn = None;
                continue;
            }
            match read_response(conn, &mut self.buf).await {
                Ok(Some(r)) => return Ok(r),
                Ok(None) if attempt == 0 => {
                    self.conn = None;
                }
                Ok(None) => bail!("{method} {path}: connection closed"),
                Err(e) => return Err(e),
            }
        }
        bail!("{method} {path}: connection closed")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response; `None` if the connection closed before any byte arrived.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Response>> {
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(h) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("bad status line"))?;
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            let start = h + 4;
            if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
                if let Some((body, used)) = dechunk(&buf[start..])? {
                    buf.drain(..start + used);
                    return Ok(Some(Response { status, body }));
                }
            } else {
                let len: usize = header("content-length:")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= start + len {
                    let body = buf[start..start + len].to_vec();
                    buf.drain(..start + len);
                    return Ok(Some(Response { status, body }));
                }
            }
        }
        let n = conn.read(&mut tmp).await?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            bail!("connection closed mid-response");
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Decodes a complete chunked body; `None` while incomplete.
fn dechunk(data: &[u8]) -> Result<Option<(Vec<u8>, usize)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find(&data[pos..], b"\r\n") else {
            return Ok(None);
        };
        let size_str = String::from_utf8_lossy(&data[pos..pos + eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| anyhow!("bad chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer section ends with an empty line.
            let Some(end) = find(&data[pos..], b"\r\n") else {
                return Ok(None);
            };
            return Ok(Some((out, pos + end + 2)));
        }
        if data.len() < pos + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[pos..pos + size]);
        pos += size + 2;
    }
}
