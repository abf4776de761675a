//! Serving the line protocol over any byte stream (a pty, a duplex pipe in
//! tests, a socket).

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::session::Session;
use crate::command::{Command, Reply};

/// Size of the read buffer of one connection.
const READ_BUF: usize = 512;

/// Serve one connection until the client goes away (end of stream).
///
/// Every complete line gets one reply (see [`Session::feed`]); commands are
/// run by `exec`, which locks the fob and reads the clock.
///
/// # Errors
/// IO errors of the stream (a write to a client that left is one).
pub async fn serve<T, F>(mut io: T, mut exec: F) -> std::io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&Command) -> Reply,
{
    let mut session = Session::new();
    let mut buf = [0u8; READ_BUF];
    let mut out = Vec::with_capacity(64);
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        session.feed(&buf[..n], &mut out, &mut exec);
        if !out.is_empty() {
            io.write_all(&out).await?;
            io.flush().await?;
            out.clear();
            if out.capacity() > 4096 {
                out.shrink_to(64);
            }
        }
    }
}
