//! A small blocking AWS Query client over plain HTTP/1.1 (keep-alive):
//! signs with SigV4 at a caller-supplied time, reads `Content-Length` or
//! chunked responses. For tests, benches and the harness adapter — real
//! users have the AWS CLI and the SDKs.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use fobsim_core::Timestamp;

use crate::query::encode_form;
use crate::sigv4::{Credentials, RequestParts, sign};
use crate::{Service, xml};

/// Longest response accepted.
const MAX_RESPONSE: usize = 1 << 20;

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not `http://HOST:PORT[/]`.
    #[error("bad endpoint {0:?}: expected http://HOST:PORT")]
    BadEndpoint(String),
    /// Connecting, writing or reading failed.
    #[error("HTTP IO: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is not HTTP/1.1 as expected.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// The `<Code>` of an error response.
    #[must_use]
    pub fn code(&self) -> Option<String> {
        xml::text_of(&self.body, "Code")
    }

    /// The `<Message>` of an error response.
    #[must_use]
    pub fn message(&self) -> Option<String> {
        xml::text_of(&self.body, "Message")
    }

    /// The first `<tag>` text.
    #[must_use]
    pub fn text(&self, tag: &str) -> Option<String> {
        xml::text_of(&self.body, tag)
    }
}

/// Build a signed Query request (`POST /`, form body) as raw bytes.
#[must_use]
pub fn build_request(
    host: &str,
    service: Service,
    params: &[(&str, &str)],
    creds: &Credentials,
    region: &str,
    now: Timestamp,
) -> Vec<u8> {
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 2);
    if !params.iter().any(|(k, _)| *k == "Version") {
        all.push(("Version", service.version()));
    }
    all.extend_from_slice(params);
    let body = encode_form(&all);
    let headers = vec![
        ("host".to_string(), host.to_string()),
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
    ];
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let signed = sign(&parts, creds, region, service.signing_name(), now);
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in signed {
        req.push_str(&n);
        req.push_str(": ");
        req.push_str(&v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    req.into_bytes()
}

fn malformed(s: impl Into<String>) -> ClientError {
    ClientError::Malformed(s.into())
}

/// Read one HTTP/1.1 response.
///
/// # Errors
/// [`ClientError::Io`] (`UnexpectedEof` if the peer closed first) or
/// [`ClientError::Malformed`].
pub fn read_response<R: BufRead>(r: &mut R) -> Result<Reply, ClientError> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(format!("status line {:?}", line.trim_end())))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(malformed("headers cut short"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| malformed("content-length"))?,
                );
            } else if n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| malformed("chunk size"))?;
            if size == 0 {
                line.clear();
                r.read_line(&mut line)?;
                break;
            }
            if body.len() + size > MAX_RESPONSE {
                return Err(malformed("response too large"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        let n = length.ok_or_else(|| malformed("no content-length"))?;
        if n > MAX_RESPONSE {
            return Err(malformed("response too large"));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A keep-alive connection to an endpoint.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    host: String,
    region: String,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client of `http://HOST:PORT` (region `us-east-1`).
    ///
    /// # Errors
    /// [`ClientError::BadEndpoint`] if it is not plain HTTP or does not resolve.
    pub fn new(endpoint: &str) -> Result<Client, ClientError> {
        let bad = || ClientError::BadEndpoint(endpoint.chars().take(100).collect());
        let rest = endpoint.strip_prefix("http://").ok_or_else(bad)?;
        let host = rest.split('/').next().unwrap_or("");
        let addr = host
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(bad)?;
        Ok(Client {
            addr,
            host: host.to_string(),
            region: "us-east-1".to_string(),
            timeout: Duration::from_secs(30),
            conn: None,
        })
    }

    /// The `Host` header value.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    fn connection(&mut self) -> Result<&mut BufReader<TcpStream>, ClientError> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        self.conn.as_mut().ok_or_else(|| malformed("no connection"))
    }

    /// Send raw request bytes and read the answer; a stale keep-alive
    /// connection is replaced once.
    ///
    /// # Errors
    /// [`ClientError`] when no answer arrives.
    pub fn send_raw(&mut self, request: &[u8]) -> Result<Reply, ClientError> {
        for attempt in 0..2 {
            let fresh = self.conn.is_none();
            let result = (|| {
                let c = self.connection()?;
                c.get_mut().write_all(request)?;
                read_response(c)
            })();
            match result {
                Ok(r) => return Ok(r),
                Err(ClientError::Io(e)) if attempt == 0 && !fresh => {
                    let _ = e;
                    self.conn = None;
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        Err(malformed("no answer"))
    }

    /// Call an action signed with `creds` at time `now`.
    ///
    /// # Errors
    /// [`ClientError`] when no answer arrives (AWS errors are answers).
    pub fn call(
        &mut self,
        service: Service,
        params: &[(&str, &str)],
        creds: &Credentials,
        now: Timestamp,
    ) -> Result<Reply, ClientError> {
        let req = build_request(&self.host, service, params, creds, &self.region, now);
        self.send_raw(&req)
    }
}
