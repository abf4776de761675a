//! The HTTP shell: hyper 1 (HTTP/1.1, keep-alive) on tokio, hardened for
//! whatever [`Handler`] it serves (the AWS service, or any other):
//!
//! - **time limits**: a request's head must arrive within
//!   [`Limits::header_read_timeout`] (also the idle time allowed between
//!   keep-alive requests), its body within [`Limits::body_read_timeout`],
//!   and a client must take each answer within [`Limits::write_timeout`];
//! - **size limits**: heads up to [`Limits::max_head`] bytes, bodies up to
//!   [`Limits::max_body`] (the `Content-Length` is checked first, then the
//!   stream);
//! - **a connection limit**: at most [`Limits::max_connections`] are open.
//!   A new connection beyond it sheds the open one heard from least
//!   recently that is not being answered (an idle keep-alive connection, or
//!   one still sending its head or body: slowloris clients go first); it is
//!   told `503` if it was in the middle of a request. When every
//!   connection is being answered, the newcomer gets `503` and is closed;
//! - **every error in the handler's shape**: requests hyper cannot parse,
//!   oversized ones, timeouts and overload get [`Handler::reject`]'s answer
//!   (the AWS `<ErrorResponse>` with a request id for [`AwsService`]),
//!   never hyper's bare status line; an HTTP/2 client gets a `GOAWAY`
//!   (`HTTP_1_1_REQUIRED`) saying this server speaks HTTP/1.1.
//!
//! `docs/hardening.md` tabulates what each malformed input gets. The
//! [`AwsService`] handler runs requests that reach the engine (signed
//! ones) on the blocking pool, so a slow or locked database never stalls
//! the async workers.

mod guard;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use self::guard::{Admitted, ConnState, GuardedIo, Registry};
use super::service::{AwsService, HttpResponse};
use fobsim_aws::sigv4::RequestParts;
use fobsim_aws::{AwsError, Fault, Service};

/// How long a client may take to send a request's head (and how long an
/// idle keep-alive connection stays open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to send a request's body, from the end of
/// its head.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may leave an answer unread before the connection is
/// closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Oversized bodies up to this size are read and discarded before the
/// 413 answer, so that clients that send the whole body before reading
/// get the answer instead of a reset connection; beyond it the
/// connection is closed after the answer.
pub const DRAIN_MAX: usize = 8 << 20;

/// After an answer that closes the connection, what the client still
/// sends is read and dropped for this long (at most [`DRAIN_MAX`] bytes),
/// so that the close does not reset the answer away.
const LINGER: Duration = Duration::from_secs(1);

/// Connections turned away with a `503` at the same time; beyond, they
/// are closed at once.
const TURN_AWAY_MAX: usize = 64;

/// The shell's limits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time for a request's head, and idle time between requests.
    pub header_read_timeout: Duration,
    /// Time for a request's body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Time a client may leave an answer unread.
    pub write_timeout: Duration,
    /// Largest request head (request line and headers), bytes; larger
    /// ones get `431` (`414` when the request line alone is too long).
    /// At least 8,192. It also bounds the connection's read buffer, so
    /// with [`Limits::max_body`] it bounds a connection's memory.
    pub max_head: usize,
    /// Largest request body, bytes; larger ones get `413`.
    pub max_body: usize,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            max_head: 16 * 1024,
            max_body: 64 * 1024,
            max_connections: 1024,
        }
    }
}

/// A request the shell answers itself, in the handler's error shape
/// ([`Handler::reject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Not HTTP/1.1 that can be parsed (`400`); `reason` is the parser's.
    Malformed {
        /// What the parser found wrong.
        reason: String,
    },
    /// The request line is longer than the head limit (`414`).
    UriTooLong {
        /// The limit, bytes.
        max: usize,
    },
    /// The head is larger than the limit (`431`).
    HeadTooLarge {
        /// The limit, bytes.
        max: usize,
    },
    /// The body is larger than the limit (`413`).
    BodyTooLarge {
        /// The limit, bytes.
        max: usize,
    },
    /// The body could not be read: broken chunked framing, or the client
    /// stopped in the middle (`400`).
    BodyUnreadable,
    /// The head or the body did not arrive in time (`408`).
    Timeout {
        /// The time allowed.
        after: Duration,
    },
    /// The server is at its connection limit (`503`, retryable).
    Overloaded,
}

impl Rejection {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Malformed { .. } | Rejection::BodyUnreadable => 400,
            Rejection::UriTooLong { .. } => 414,
            Rejection::HeadTooLarge { .. } => 431,
            Rejection::BodyTooLarge { .. } => 413,
            Rejection::Timeout { .. } => 408,
            Rejection::Overloaded => 503,
        }
    }

    /// The AWS-style error code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed { .. } | Rejection::BodyUnreadable => "MalformedRequest",
            Rejection::UriTooLong { .. } => "RequestURITooLong",
            Rejection::HeadTooLarge { .. } => "RequestHeaderSectionTooLarge",
            Rejection::BodyTooLarge { .. } => "RequestEntityTooLarge",
            Rejection::Timeout { .. } => "RequestTimeout",
            Rejection::Overloaded => "ServiceUnavailable",
        }
    }

    /// A human message (never echoes the request).
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Rejection::Malformed { reason } => {
                format!("The request is not valid HTTP/1.1: {reason}.")
            }
            Rejection::UriTooLong { max } => {
                format!("The request line must be at most {max} bytes.")
            }
            Rejection::HeadTooLarge { max } => {
                format!("The request head must be at most {max} bytes.")
            }
            Rejection::BodyTooLarge { max } => {
                format!("Request body must be at most {max} bytes.")
            }
            Rejection::BodyUnreadable => "The request body could not be read.".to_string(),
            Rejection::Timeout { after } => format!(
                "The request was not received within {} seconds.",
                after.as_secs()
            ),
            Rejection::Overloaded => {
                "The server is at its connection limit: retry the request.".to_string()
            }
        }
    }
}

/// What the shell serves: a request whose body has been read in full, in;
/// a response out. The shell applies its [`Limits`] first and answers what
/// it refuses with [`Handler::reject`].
pub trait Handler: Send + Sync + 'static {
    /// Answer `request`. Work that may block (a database) belongs on the
    /// blocking pool (`tokio::task::spawn_blocking`), not here.
    fn respond(
        self: Arc<Self>,
        request: Request<Bytes>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;

    /// The answer to a request the shell refuses. The default is plain
    /// text: `Code: message`.
    fn reject(&self, rejection: &Rejection) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(format!(
            "{}: {}\n",
            rejection.code(),
            rejection.message()
        ))));
        *resp.status_mut() =
            StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::BAD_REQUEST);
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

fn to_hyper(r: HttpResponse) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(&r.request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// The address a connection comes from (a request extension, for the log).
#[derive(Debug, Clone, Copy)]
struct Peer(std::net::SocketAddr);

/// The `Action` parameter of a Query request (form body or query
/// string): the only part of a request's content the log shows.
fn action_of(form: &[u8]) -> Option<String> {
    form.split(|b| *b == b'&')
        .find_map(|kv| kv.strip_prefix(b"Action="))
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.iter().all(u8::is_ascii_alphanumeric))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The `<Code>` of an AWS error document.
fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    body.get(start..start + len)
}

/// A request's parts, owned (to move to the blocking pool).
struct OwnedRequest {
    method: Method,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl OwnedRequest {
    fn new(request: Request<Bytes>) -> Self {
        let (parts, body) = request.into_parts();
        let mut headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        // HTTP/1.1 requires Host; clients that sign it send it. Keep absent as absent.
        if !headers.iter().any(|(n, _)| n == "host")
            && let Some(a) = parts.uri.authority()
        {
            headers.push(("host".to_string(), a.as_str().to_string()));
        }
        OwnedRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            headers,
            body,
        }
    }

    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: self.method.as_str(),
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    /// Signed requests may reach the engine (and its store); the others
    /// are refused before it.
    fn signed(&self) -> bool {
        self.headers.iter().any(|(n, _)| n == "authorization")
    }
}

/// The AWS Query service: signed requests run on the blocking pool (they
/// may wait for the database); errors are `<ErrorResponse>` documents
/// with an `x-amzn-RequestId`.
impl Handler for AwsService {
    async fn respond(self: Arc<Self>, request: Request<Bytes>) -> Response<Full<Bytes>> {
        let started = std::time::Instant::now();
        let peer = request.extensions().get::<Peer>().map(|p| p.0);
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let action = action_of(request.body())
            .or_else(|| action_of(request.uri().query().unwrap_or("").as_bytes()));
        let req = OwnedRequest::new(request);
        let r = if req.signed() {
            let svc = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || AwsService::handle(&svc, &req.parts())).await
            {
                Ok(r) => r,
                Err(_) => self.error(Service::Iam, &AwsError::internal()),
            }
        } else {
            AwsService::handle(&self, &req.parts())
        };
        tracing::info!(
            target: "fobsim::serve",
            peer = %peer.map_or_else(|| "-".to_string(), |p| p.to_string()),
            method = %method,
            path = %path,
            action = %action.as_deref().unwrap_or("-"),
            status = r.status,
            error = %error_code(&r.body).filter(|_| r.status >= 400).unwrap_or("-"),
            request_id = %r.request_id,
            ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
            "request"
        );
        to_hyper(r)
    }

    fn reject(&self, rejection: &Rejection) -> Response<Full<Bytes>> {
        let status = rejection.status();
        let e = AwsError {
            status,
            code: rejection.code(),
            message: rejection.message().into(),
            fault: if status >= 500 {
                Fault::Receiver
            } else {
                Fault::Sender
            },
        };
        to_hyper(self.error(Service::Iam, &e))
    }
}

/// Read and drop up to `cap` more bytes of `body`, until `deadline`.
async fn drain(body: &mut Incoming, cap: usize, deadline: tokio::time::Instant) {
    let mut seen = 0usize;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Ok(d) = frame.into_data() {
            seen = seen.saturating_add(d.len());
            if seen > cap {
                return;
            }
        }
    }
}

/// Read a request's body under the limits.
async fn read_body(
    parts: &hyper::http::request::Parts,
    mut body: Incoming,
    limits: &Limits,
) -> Result<Bytes, Rejection> {
    let max = limits.max_body;
    let too_large = Rejection::BodyTooLarge { max };
    let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    // A client that waits for `100 Continue` never sends an oversized
    // body if we answer first; others are sending it already.
    let expects_continue = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|n| n > max as u64) {
        if !expects_continue && declared.is_some_and(|n| n <= DRAIN_MAX as u64) {
            drain(&mut body, DRAIN_MAX, deadline).await;
        }
        return Err(too_large);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let expected = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max));
    let mut buf: Vec<u8> = Vec::with_capacity(expected.min(max));
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(Rejection::Timeout {
                    after: limits.body_read_timeout,
                });
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > max {
                        drain(&mut body, DRAIN_MAX, deadline).await;
                        return Err(too_large);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(_))) => return Err(Rejection::BodyUnreadable),
        }
    }
    Ok(Bytes::from(buf))
}

/// One request on a connection: the body under the limits, then the
/// handler, or the handler's rejection (which closes the connection).
async fn exchange<H: Handler>(
    handler: Arc<H>,
    req: Request<Incoming>,
    limits: Limits,
    conn: Arc<ConnState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let no_body = req.method() == Method::HEAD;
    let (parts, body) = req.into_parts();
    let read = read_body(&parts, body, &limits).await;
    let mut resp = match read {
        Ok(bytes) if !conn.evicted() => {
            conn.answering();
            let r = handler.respond(Request::from_parts(parts, bytes)).await;
            conn.waiting();
            r
        }
        Ok(_) => closing(handler.reject(&Rejection::Overloaded), &conn),
        Err(_) if conn.evicted() => closing(handler.reject(&Rejection::Overloaded), &conn),
        Err(r) => closing(handler.reject(&r), &conn),
    };
    if conn.evicted() {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let s = resp.status().as_u16();
    let len = if no_body || s < 200 || s == 204 || s == 304 {
        0
    } else {
        resp.body().size_hint().exact().unwrap_or(0)
    };
    conn.expect_response(len);
    Ok(resp)
}

/// `resp`, closing the connection after it.
fn closing(mut resp: Response<Full<Bytes>>, conn: &ConnState) -> Response<Full<Bytes>> {
    conn.closing();
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// `resp` as HTTP/1.1 bytes, closing the connection.
async fn encode(resp: Response<Full<Bytes>>) -> Vec<u8> {
    let (parts, body) = resp.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    out
}

/// The HTTP/2 answer to an HTTP/2 connection preface: the server's
/// (empty) SETTINGS, then GOAWAY with `HTTP_1_1_REQUIRED` (RFC 9113 §7)
/// and a human-readable reason.
#[must_use]
pub fn http2_goaway() -> Vec<u8> {
    const DEBUG: &[u8] = b"fobsim serves HTTP/1.1 only";
    let mut out = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let len = u32::try_from(8 + DEBUG.len()).unwrap_or(0).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], 0x7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xd]);
    out.extend_from_slice(DEBUG);
    out
}

/// After an answer that closes the connection: stop writing, read what
/// the client still sends for a moment, close.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 16 * 1024];
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + LINGER;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
        seen += n;
        if n == 0 || seen > DRAIN_MAX {
            break;
        }
    }
}

/// Serve one connection until it ends; then answer what hyper could not
/// (a request it could not parse, a head that timed out, an HTTP/2
/// client) in the handler's shape.
async fn connection<H: Handler>(
    stream: TcpStream,
    handler: Arc<H>,
    limits: Limits,
    admitted: Admitted,
) {
    let conn = Arc::clone(&admitted.state);
    let peer = stream.peer_addr().ok().map(Peer);
    let mut io = GuardedIo::new(stream, Arc::clone(&conn), limits.write_timeout);
    let service = {
        let handler = Arc::clone(&handler);
        let conn = Arc::clone(&conn);
        service_fn(move |mut req: Request<Incoming>| {
            if let Some(p) = peer {
                req.extensions_mut().insert(p);
            }
            exchange(Arc::clone(&handler), req, limits, Arc::clone(&conn))
        })
    };
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head.max(8192))
        .max_header_size(limits.max_head.max(8192))
        .writev(false)
        .keep_alive(true)
        .serve_connection(TokioIo::new(&mut io), service)
        .await;
    let reply = match &result {
        Err(e) if e.is_parse_version_h2() => Some(http2_goaway()),
        _ => {
            let max = limits.max_head.max(8192);
            let rejection = match (io.held_status(), &result) {
                (Some(414), _) => Some(Rejection::UriTooLong { max }),
                (Some(431), _) if io.request_line_over(max) => Some(Rejection::UriTooLong { max }),
                (Some(431), _) => Some(Rejection::HeadTooLarge { max }),
                (Some(_), Err(e)) => Some(Rejection::Malformed {
                    reason: e.to_string(),
                }),
                (Some(_), Ok(())) => Some(Rejection::Malformed {
                    reason: "unparsable request".to_string(),
                }),
                (None, Err(e)) if e.is_timeout() && io.unanswered() => Some(Rejection::Timeout {
                    after: limits.header_read_timeout,
                }),
                (None, _) if conn.evicted() && io.unanswered() => Some(Rejection::Overloaded),
                (None, _) => None,
            };
            match rejection {
                Some(r) => Some(encode(handler.reject(&r)).await),
                None => None,
            }
        }
    };
    let stream = io.get_mut();
    // A shed connection goes at once: its place is taken already.
    let shed = conn.evicted();
    if let Some(bytes) = reply {
        let limit = if shed { LINGER } else { limits.write_timeout };
        let _ = tokio::time::timeout(limit, stream.write_all(&bytes)).await;
        if !shed {
            linger(stream).await;
        }
    } else if conn.is_closing() && !shed {
        linger(stream).await;
    }
    drop(admitted);
}

/// A connection beyond the limit while every open one is being answered:
/// `503`, then close.
async fn turn_away(mut stream: TcpStream, resp: Response<Full<Bytes>>) {
    let bytes = encode(resp).await;
    if tokio::time::timeout(LINGER, stream.write_all(&bytes))
        .await
        .is_ok()
    {
        linger(&mut stream).await;
    }
}

/// Serve `service` on `listener` until `shutdown` completes, with the
/// default [`Limits`] and the service's `max_body`.
///
/// # Errors
/// Never for per-connection problems; accept errors (e.g. too many open
/// files) are retried after a short pause.
pub async fn serve(
    listener: TcpListener,
    service: Arc<AwsService>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limits = Limits {
        max_body: service.config().max_body,
        ..Limits::default()
    };
    serve_with(listener, service, limits, shutdown).await
}

/// Serve `handler` on `listener` under `limits` until `shutdown`
/// completes. Each connection runs on its own task; a failing connection
/// only ends itself.
///
/// # Errors
/// Never for per-connection problems; accept errors (e.g. too many open
/// files) are retried after a short pause.
pub async fn serve_with<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let registry = Registry::new(limits.max_connections);
    let turning_away = Arc::new(tokio::sync::Semaphore::new(TURN_AWAY_MAX));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return Ok(()),
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match registry.admit() {
            Some(admitted) => {
                tokio::spawn(connection(stream, Arc::clone(&handler), limits, admitted));
            }
            None => {
                // Beyond these, closed at once.
                if let Ok(permit) = Arc::clone(&turning_away).try_acquire_owned() {
                    let resp = handler.reject(&Rejection::Overloaded);
                    tokio::spawn(async move {
                        turn_away(stream, resp).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// A server on `127.0.0.1` (any free port) with its own runtime thread,
/// for tests, benches and the harness: it stops when dropped.
#[derive(Debug)]
pub struct Loopback {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    /// Serve `service` on a loopback port with `workers` runtime threads.
    ///
    /// # Errors
    /// The runtime cannot be built or the port cannot be bound.
    pub fn start(service: Arc<AwsService>, workers: usize) -> std::io::Result<Loopback> {
        let limits = Limits {
            max_body: service.config().max_body,
            ..Limits::default()
        };
        Loopback::start_with(service, limits, workers)
    }

    /// Serve `handler` under `limits` on a loopback port with `workers`
    /// runtime threads.
    ///
    /// # Errors
    /// The runtime cannot be built or the port cannot be bound.
    pub fn start_with<H: Handler>(
        handler: Arc<H>,
        limits: Limits,
        workers: usize,
    ) -> std::io::Result<Loopback> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fobsim-aws-loopback".into())
            .spawn(move || {
                let _ = rt.block_on(serve_with(listener, handler, limits, async {
                    let _ = rx.await;
                }));
            })?;
        Ok(Loopback {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
