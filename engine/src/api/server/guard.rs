//! The shell's connection guard: who is connected and since when (so the
//! connection heard from least recently can be shed when the server is
//! full), and an IO wrapper between the socket and hyper that times out
//! stalled writes, lets a shed connection end, and holds back the bare
//! error responses hyper writes for requests it cannot parse (the shell
//! answers those in the service's own error shape instead).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a connection is doing, for shedding.
const WAITING: u8 = 0;
const ANSWERING: u8 = 1;

/// How long an evicted connection may still take to write its last answer.
const EVICTED_WRITE_GRACE: Duration = Duration::from_secs(1);

/// One connection's shared state: between the registry (shedding), the
/// service (phases, expected responses) and the IO wrapper.
#[derive(Debug)]
pub(super) struct ConnState {
    epoch: Instant,
    /// When the client last sent bytes (ms since `epoch`).
    last_heard: AtomicU64,
    phase: AtomicU8,
    evicted: AtomicBool,
    closing: AtomicBool,
    wakers: std::sync::Mutex<[Option<Waker>; 2]>,
    /// Body lengths of the responses the service handed to hyper and whose
    /// bytes have not been written yet, in order.
    expected: std::sync::Mutex<VecDeque<u64>>,
}

impl ConnState {
    fn new(epoch: Instant) -> Self {
        let s = ConnState {
            epoch,
            last_heard: AtomicU64::new(0),
            phase: AtomicU8::new(WAITING),
            evicted: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            wakers: std::sync::Mutex::new([None, None]),
            expected: std::sync::Mutex::new(VecDeque::new()),
        };
        s.heard();
        s
    }

    fn heard(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_heard.store(ms, Ordering::Relaxed);
    }

    /// The service runs for this connection: it is not shed meanwhile.
    pub(super) fn answering(&self) {
        self.phase.store(ANSWERING, Ordering::Relaxed);
    }

    /// The service has answered: waiting for the client again.
    pub(super) fn waiting(&self) {
        self.heard();
        self.phase.store(WAITING, Ordering::Relaxed);
    }

    /// Whether the registry shed this connection.
    pub(super) fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// The connection closes after its current answer (a rejection).
    pub(super) fn closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Whether [`ConnState::closing`] was called.
    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }

    fn park(&self, which: usize, cx: &Context<'_>) {
        let mut w = lock(&self.wakers);
        match &mut w[which] {
            Some(old) if old.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
    }

    /// A response with a body of `len` bytes is on its way to hyper.
    pub(super) fn expect_response(&self, len: u64) {
        lock(&self.expected).push_back(len);
    }

    fn next_expected(&self) -> Option<u64> {
        lock(&self.expected).pop_front()
    }
}

/// The open connections of one server.
#[derive(Debug)]
pub(super) struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    conns: std::sync::Mutex<HashMap<u64, Arc<ConnState>>>,
    max: usize,
}

/// A connection's place in the [`Registry`], given up on drop.
#[derive(Debug)]
pub(super) struct Admitted {
    registry: Arc<Registry>,
    id: u64,
    pub(super) state: Arc<ConnState>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.registry.conns).remove(&self.id);
    }
}

impl Registry {
    pub(super) fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: std::sync::Mutex::new(HashMap::new()),
            max: max.max(1),
        })
    }

    /// Admit a new connection. When the server is full, the waiting
    /// connection heard from least recently is shed to make room; when
    /// every connection is being answered, `None`.
    pub(super) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut conns = lock(&self.conns);
        if conns.len() >= self.max {
            let victim = conns
                .iter()
                .filter(|(_, c)| c.phase.load(Ordering::Relaxed) == WAITING)
                .min_by_key(|(_, c)| c.last_heard.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(c) = conns.remove(&victim) {
                c.evict();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.epoch));
        conns.insert(id, Arc::clone(&state));
        Some(Admitted {
            registry: Arc::clone(self),
            id,
            state,
        })
    }

    /// How many connections are open.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.conns).len()
    }
}

/// Where the response stream written by hyper is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// At the start of a response head.
    Start,
    /// Inside a head we pass on (`crlf`: how much of `\r\n\r\n` was seen),
    /// followed by `body` bytes.
    Head { crlf: u8, body: u64 },
    /// Inside a body we pass on.
    Body(u64),
}

/// The IO between the socket and hyper (see the module docs).
#[derive(Debug)]
pub(super) struct GuardedIo<T> {
    inner: T,
    conn: Arc<ConnState>,
    write_timeout: Duration,
    deadline: Option<(Instant, Pin<Box<Sleep>>)>,
    out: Out,
    /// The status line hyper began for a request it could not parse.
    held: Vec<u8>,
    /// A head start we have not classified yet (fewer than 12 bytes).
    pending: Vec<u8>,
    /// Bytes to write before anything else (a head held back in `pending`
    /// that turned out to be an informational one).
    resend: Vec<u8>,
    /// The client sent bytes since the last response began.
    read_since_response: bool,
    /// ... and a line break among them (the request line is complete).
    line_seen: bool,
    /// ... the bytes before it (the request line's length, so far).
    line_len: usize,
}

impl<T> GuardedIo<T> {
    pub(super) fn new(inner: T, conn: Arc<ConnState>, write_timeout: Duration) -> Self {
        GuardedIo {
            inner,
            conn,
            write_timeout,
            deadline: None,
            out: Out::Start,
            held: Vec::new(),
            pending: Vec::new(),
            resend: Vec::new(),
            read_since_response: false,
            line_seen: false,
            line_len: 0,
        }
    }

    /// The socket.
    pub(super) fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The status of the error response hyper wrote for a request it could
    /// not parse (held back: the shell answers in its own shape).
    pub(super) fn held_status(&self) -> Option<u16> {
        status_of(&self.held)
    }

    /// Whether the client began a request that was not answered.
    pub(super) fn unanswered(&self) -> bool {
        self.read_since_response
    }

    /// Whether the request line of the unanswered request is longer than
    /// `max` bytes (or still going on).
    pub(super) fn request_line_over(&self, max: usize) -> bool {
        !self.line_seen || self.line_len > max
    }

    fn response_begins(&mut self) {
        self.read_since_response = false;
        self.line_seen = false;
        self.line_len = 0;
    }

    /// Poll the write deadline after the socket said "not now".
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = if self.conn.evicted() {
            self.write_timeout.min(EVICTED_WRITE_GRACE)
        } else {
            self.write_timeout
        };
        let now = Instant::now();
        let rearm = match &self.deadline {
            None => true,
            Some((at, _)) => *at > now + limit,
        };
        if rearm {
            let at = now + limit;
            self.deadline = Some((
                at,
                Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at))),
            ));
        }
        self.conn.park(1, cx);
        if let Some((_, sleep)) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the response in time",
            )));
        }
        Poll::Pending
    }
}

/// The status code of a response head `HTTP/1.x NNN ...`.
fn status_of(head: &[u8]) -> Option<u16> {
    let code = head.get(9..12)?;
    if !head.starts_with(b"HTTP/1.") || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// How far `data` takes a `\r\n\r\n` search that had matched `crlf`
/// bytes: `Ok(end)` when the head ends after `data[..end]`, else the new
/// match length.
fn scan_head(mut crlf: u8, data: &[u8]) -> Result<usize, u8> {
    const END: &[u8; 4] = b"\r\n\r\n";
    for (i, &b) in data.iter().enumerate() {
        crlf = if b == END[usize::from(crlf)] {
            crlf + 1
        } else if b == b'\r' {
            1
        } else {
            0
        };
        if crlf == 4 {
            return Ok(i + 1);
        }
    }
    Err(crlf)
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.conn.evicted() {
            // Shed: the connection reads as closed by the client.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut me.inner).poll_read(cx, buf) {
            Poll::Pending => {
                me.conn.park(0, cx);
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    me.conn.heard();
                    me.read_since_response = true;
                    if !me.line_seen {
                        match new.iter().position(|&b| b == b'\n') {
                            Some(i) => {
                                me.line_seen = true;
                                me.line_len += i;
                            }
                            None => me.line_len += new.len(),
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> GuardedIo<T> {
    /// Write `data` to the socket, under the write deadline.
    fn write_inner(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                self.deadline = None;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.stalled(cx),
        }
    }

    /// Write out `resend` first.
    fn poll_resend(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.resend.is_empty() {
            let data = std::mem::take(&mut self.resend);
            let r = self.write_inner(cx, &data);
            self.resend = data;
            match r {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.resend.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !me.held.is_empty() {
            // hyper's error response: kept, never sent (at most its head).
            let room = 64usize.saturating_sub(me.held.len());
            me.held.extend_from_slice(&data[..data.len().min(room)]);
            return Poll::Ready(Ok(data.len()));
        }
        match me.poll_resend(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        if me.out == Out::Start {
            if let Some(body) = me.conn.next_expected() {
                // A response the service gave.
                me.response_begins();
                me.out = Out::Head { crlf: 0, body };
            } else {
                // Not the service's: an informational head (100 Continue)
                // or hyper's answer to a request it could not parse.
                let take = data.len().min(12 - me.pending.len().min(12));
                me.pending.extend_from_slice(&data[..take]);
                if me.pending.len() < 12 {
                    return Poll::Ready(Ok(take));
                }
                let head = std::mem::take(&mut me.pending);
                match status_of(&head) {
                    Some(s) if (100..200).contains(&s) => {
                        me.resend = head;
                        me.out = Out::Head { crlf: 0, body: 0 };
                        // The 12 bytes are part of the head: scan them.
                        if let Err(c) = scan_head(0, &me.resend) {
                            me.out = Out::Head { crlf: c, body: 0 };
                        }
                    }
                    _ => me.held = head,
                }
                return Poll::Ready(Ok(take));
            }
        }
        match me.out {
            Out::Body(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                let r = me.write_inner(cx, &data[..n]);
                if let Poll::Ready(Ok(k)) = r {
                    let rest = left - k as u64;
                    me.out = if rest == 0 {
                        Out::Start
                    } else {
                        Out::Body(rest)
                    };
                }
                r
            }
            // Classified above: a head always follows Start.
            Out::Start => Poll::Ready(Err(io::Error::other("response framing lost"))),
            Out::Head { crlf, body } => {
                let (n, ends) = match scan_head(crlf, data) {
                    Ok(end) => (end, true),
                    Err(_) => (data.len(), false),
                };
                let r = me.write_inner(cx, &data[..n]);
                if let Poll::Ready(Ok(k)) = r {
                    me.out = match scan_head(crlf, &data[..k]) {
                        Ok(_) if ends && k == n => {
                            if body == 0 {
                                Out::Start
                            } else {
                                Out::Body(body)
                            }
                        }
                        Ok(_) => Out::Start,
                        Err(c) => Out::Head { crlf: c, body },
                    };
                }
                r
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.held.is_empty() {
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(me.poll_resend(cx))?;
        match Pin::new(&mut me.inner).poll_flush(cx) {
            Poll::Pending => me.stalled(cx).map_ok(|_| ()),
            r => r,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The shell closes the socket itself once hyper is done (it may
        // still have an answer to write).
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_end_at_the_blank_line_across_writes() {
        assert_eq!(scan_head(0, b"HTTP/1.1 200 OK\r\n\r\nbody"), Ok(19));
        assert_eq!(scan_head(0, b"HTTP/1.1 200 OK\r\n\r"), Err(3));
        assert_eq!(scan_head(3, b"\nrest"), Ok(1));
        assert_eq!(scan_head(2, b"\r\r\n\r\n"), Ok(5));
        assert_eq!(scan_head(0, b"a\r\nb: c\r\n\r\n"), Ok(11));
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 431 Request"), Some(431));
        assert_eq!(status_of(b"HTTP/1.0 100 "), Some(100));
        assert_eq!(status_of(b"HTTP/2 200 "), None);
        assert_eq!(status_of(b"HTTP/1.1 2"), None);
    }

    #[test]
    fn a_full_registry_sheds_the_least_recently_heard_waiting_connection() {
        let r = Registry::new(2);
        let a = r.admit().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let b = r.admit().unwrap();
        // a is being answered: b goes, although a was heard from earlier.
        a.state.answering();
        let c = r.admit().unwrap();
        assert!(b.state.evicted() && !a.state.evicted());
        assert_eq!(r.len(), 2);
        // Everyone is being answered: no room.
        c.state.answering();
        assert!(r.admit().is_none());
        drop(b);
        assert_eq!(r.len(), 2, "an evicted connection left already");
        drop(a);
        assert_eq!(r.len(), 1);
        assert!(r.admit().is_some());
    }
}
