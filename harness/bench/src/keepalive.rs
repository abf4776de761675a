//! The load generator's HTTP client: one keep-alive HTTP/1.1 connection
//! (hyper's client on a current-thread runtime of its own), driven by one
//! thread. Used by the `verify` and `console` groups.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::{BenchError, setup};

/// The sending half of a connection.
pub(crate) type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Connect to `addr` (no Nagle delay) and run `work` on the connection,
/// all of it within `deadline`: one timer for the whole connection (a
/// timer per request would cost the client more than the rest of its
/// work). `what` names the work in the timeout error ("the requests took
/// over …").
///
/// # Errors
///
/// The connection or a request failing, `work`'s own errors, or the
/// deadline passing.
pub(crate) fn on_connection<T>(
    addr: SocketAddr,
    deadline: Duration,
    what: &str,
    work: impl AsyncFnOnce(&mut Sender) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::time::timeout(deadline, async {
            let io = tokio::net::TcpStream::connect(addr).await?;
            io.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                    .await
                    .map_err(|e| setup("HTTP client", e))?;
            let conn = tokio::spawn(conn);
            let out = work(&mut sender).await?;
            drop(sender);
            let _ = conn.await;
            Ok(out)
        })
        .await
        .map_err(|_| setup("HTTP client", format!("{what} took over {deadline:?}")))?
    })
}
