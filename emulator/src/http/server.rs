//! The HTTP shell of [`ControlApi`]: hyper 1 (HTTP/1.1, keep-alive) on
//! tokio. Bodies are bounded; a bad request never takes the server down.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fobsim_clock::control::MAX_REQUEST;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::{ControlApi, HttpReply, HttpRequest};

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

fn to_hyper(r: HttpReply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

async fn answer(
    api: Arc<ControlApi>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST + 1).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => {
            return Ok(to_hyper(HttpReply::error(
                413,
                "too_long",
                &format!("the body is longer than {MAX_REQUEST} bytes or unreadable"),
                None,
            )));
        }
    };
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
    if !headers.iter().any(|(n, _)| n == "host")
        && let Some(a) = parts.uri.authority()
    {
        headers.push(("host".into(), a.as_str().to_string()));
    }
    let req = HttpRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        headers,
        body,
    };
    Ok(to_hyper(api.handle(&req)))
}

/// Serve `api` on `listener` until `shutdown` completes. Each connection
/// runs on its own task; a failing connection only ends itself.
///
/// # Errors
/// None for per-connection problems; accept errors (e.g. too many open
/// files) are retried after a short pause.
pub async fn serve(
    listener: TcpListener,
    api: Arc<ControlApi>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return Ok(()),
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let handler = service_fn(move |req| answer(Arc::clone(&api), req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

/// A panel + API server on `127.0.0.1` (any free port) with its own
/// runtime thread, for tests and benches: it stops when dropped.
#[derive(Debug)]
pub struct Loopback {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    /// Serve an API made by `make` (given the bound address) on a loopback
    /// port with one runtime thread.
    ///
    /// # Errors
    /// The runtime cannot be built or the port cannot be bound.
    pub fn start(make: impl FnOnce(std::net::SocketAddr) -> ControlApi) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
        let addr = listener.local_addr()?;
        let api = Arc::new(make(addr));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fobsim-panel-loopback".into())
            .spawn(move || {
                let _ = rt.block_on(serve(listener, api, async {
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
    pub fn url(&self) -> String {
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
