//! The HTTP shell: hyper 1 (HTTP/1.1, keep-alive) on tokio. Bodies are
//! bounded (`Content-Length` checked first, then the stream), every error
//! is an AWS `<ErrorResponse>`, and a bad request never takes the server
//! down.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::service::{AwsService, HttpResponse};
use fobsim_aws::sigv4::RequestParts;
use fobsim_aws::{AwsError, Service};

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

fn too_large(service: &AwsService) -> HttpResponse {
    let max = service.config().max_body;
    service.error(
        Service::Iam,
        &AwsError::sender(
            413,
            "RequestEntityTooLarge",
            format!("Request body must be at most {max} bytes."),
        ),
    )
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

/// Oversized bodies up to this size are read and discarded before the
/// 413 answer, so that clients that send the whole body before reading
/// get the answer instead of a reset connection; beyond it the
/// connection is closed after the answer.
pub const DRAIN_MAX: usize = 8 << 20;

/// Read and drop up to `cap` more bytes of `body`.
async fn drain(body: &mut Incoming, cap: usize) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(d) = frame.into_data() {
            seen = seen.saturating_add(d.len());
            if seen > cap {
                return;
            }
        }
    }
}

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
    Some(&body[start..start + len])
}

/// Answer one HTTP request and log it: one line at `info` (target
/// `fobsim::serve`) with the peer, method, path, `Action`, status, error
/// code, request id and time taken. Never headers, bodies, keys or codes.
async fn answer(
    service: Arc<AwsService>,
    peer: std::net::SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let (r, action) = respond(&service, req).await;
    tracing::info!(
        target: "fobsim::serve",
        peer = %peer,
        method = %method,
        path = %path,
        action = %action.as_deref().unwrap_or("-"),
        status = r.status,
        error = %error_code(&r.body).filter(|_| r.status >= 400).unwrap_or("-"),
        request_id = %r.request_id,
        ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    Ok(to_hyper(r))
}

/// The answer to one HTTP request, with its `Action` once the body is read.
async fn respond(service: &AwsService, req: Request<Incoming>) -> (HttpResponse, Option<String>) {
    let (parts, body) = req.into_parts();
    let max = service.config().max_body;
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
    let mut body = body;
    if declared.is_some_and(|n| n > max as u64) {
        if !expects_continue && declared.is_some_and(|n| n <= DRAIN_MAX as u64) {
            drain(&mut body, DRAIN_MAX).await;
        }
        return (too_large(service), None);
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > max {
                        drain(&mut body, DRAIN_MAX).await;
                        return (too_large(service), None);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(_)) => {
                let e = AwsError::sender(
                    400,
                    "MalformedRequest",
                    "The request body could not be read.",
                );
                return (service.error(Service::Iam, &e), None);
            }
        }
    }
    let bytes = buf;
    let action =
        action_of(&bytes).or_else(|| action_of(parts.uri.query().unwrap_or("").as_bytes()));
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let host_header;
    let mut headers = headers;
    // HTTP/1.1 requires Host; clients that sign it send it. Keep absent as absent.
    if !headers.iter().any(|(n, _)| n == "host")
        && let Some(a) = parts.uri.authority()
    {
        host_header = a.as_str().to_string();
        headers.push(("host".to_string(), host_header));
    }
    let rp = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body: &bytes,
    };
    (service.handle(&rp), action)
}

/// Serve `service` on `listener` until `shutdown` completes. Each
/// connection runs on its own task; a failing connection only ends itself.
///
/// # Errors
/// Never for per-connection problems; accept errors (e.g. too many open
/// files) are retried after a short pause.
pub async fn serve(
    listener: TcpListener,
    service: Arc<AwsService>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return Ok(()),
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = Arc::clone(&service);
        tokio::spawn(async move {
            let handler = service_fn(move |req| answer(Arc::clone(&svc), peer, req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
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
                let _ = rt.block_on(serve(listener, service, async {
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
