//! The HTTP shell's answers to what is not a well-formed request: every
//! one is the AWS `<ErrorResponse>` with a code, a message and an
//! `x-amzn-RequestId` (or, for an HTTP/2 client, a GOAWAY), and the server
//! keeps serving. The table these cases make is the one in
//! `docs/hardening.md`; the test checks that it is (`FOBSIM_WRITE_DOCS=1`
//! rewrites it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fobsim_engine::api::server::{Handler, Limits, Loopback, Rejection, http2_goaway};
use fobsim_engine::api::service::AwsService;
use fobsim_engine::{Engine, Profile, testing};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};

const POLICY: &str = include_str!("../../fixtures/policies/manage-own-mfa.json");
const DOC: &str = "../docs/hardening.md";
const BEGIN: &str = "<!-- begin: http-errors (engine/tests/http_errors.rs) -->";
const END: &str = "<!-- end: http-errors -->";

/// Short timeouts, so that the slow cases take a second.
fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    }
}

fn server() -> Loopback {
    let fx = testing::enrolled_service(Engine::in_memory(Profile::for_tests()), 1, POLICY).unwrap();
    Loopback::start_with(fx.service, limits(), 2).unwrap()
}

/// What came back on one connection.
#[derive(Debug)]
struct Answer {
    raw: Vec<u8>,
    /// Whether the server closed the connection right after answering.
    closed: bool,
    /// Whether the server closed the connection at all.
    eof: bool,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    fn status(&self) -> Option<u16> {
        self.text().get(9..12)?.parse().ok()
    }

    fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let (head, _) = text.split_once("\r\n\r\n")?;
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn body(&self) -> String {
        self.text()
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    fn tag(&self, tag: &str) -> Option<String> {
        let b = self.body();
        let start = b.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = b[start..].find(&format!("</{tag}>"))? + start;
        Some(b[start..end].to_string())
    }
}

/// Send `parts` (with `pause` between them), then read until the server
/// closes or goes quiet for 5 s.
fn exchange(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        // A server that answers before reading everything may reset: ignore.
        if s.write_all(p).is_err() {
            break;
        }
    }
    finish(s)
}

/// Read until the server closes or goes quiet for 5 s. The connection
/// counts as closed by the answer if the close follows it within 500 ms
/// (the tests' idle timeout is a second).
fn finish(mut s: TcpStream) -> Answer {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut last = Instant::now();
    let eof = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                last = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let closed = eof && last.elapsed() < Duration::from_millis(500);
    Answer { raw, closed, eof }
}

/// A handler that takes its time: the AWS service, a second late.
struct Slow(Arc<AwsService>);

impl Handler for Slow {
    async fn respond(self: Arc<Self>, request: Request<Bytes>) -> Response<Full<Bytes>> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Arc::clone(&self.0).respond(request).await
    }

    fn reject(&self, rejection: &Rejection) -> Response<Full<Bytes>> {
        self.0.reject(rejection)
    }
}

/// The rows of a server with room for one connection: a newcomer while
/// the one is being answered, and a slow request shed for a newcomer.
fn overload_rows() -> Vec<String> {
    let fx = testing::enrolled_service(Engine::in_memory(Profile::for_tests()), 1, POLICY).unwrap();
    let limits = Limits {
        max_connections: 1,
        ..limits()
    };
    let s = Loopback::start_with(Arc::new(Slow(fx.service)), limits, 2).unwrap();
    let request: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    let mut rows = Vec::new();

    let mut busy = TcpStream::connect(s.addr()).unwrap();
    busy.write_all(request).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let turned_away = exchange(s.addr(), &[request], Duration::ZERO);
    rows.push(row(
        "a connection beyond `max_connections` while every open one is being answered",
        &turned_away,
    ));
    let served = finish(busy);
    assert_eq!(served.status(), Some(403), "{}", served.text());

    let mut slow = TcpStream::connect(s.addr()).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let newcomer = std::thread::spawn({
        let addr = s.addr();
        move || exchange(addr, &[request], Duration::ZERO)
    });
    let shed = finish(slow);
    rows.push(row(
        "a request still arriving when a connection beyond `max_connections` comes (shed: least recently heard from first)",
        &shed,
    ));
    let newcomer = newcomer.join().unwrap();
    assert_eq!(newcomer.status(), Some(403), "{}", newcomer.text());
    rows
}

/// One row of the table: what was sent, and what came back.
struct Case {
    input: &'static str,
    parts: Vec<Vec<u8>>,
    pause: Duration,
}

fn case(input: &'static str, bytes: impl Into<Vec<u8>>) -> Case {
    Case {
        input,
        parts: vec![bytes.into()],
        pause: Duration::ZERO,
    }
}

fn slow(input: &'static str, first: &[u8], second: &[u8], pause: Duration) -> Case {
    Case {
        input,
        parts: vec![first.to_vec(), second.to_vec()],
        pause,
    }
}

fn cases() -> Vec<Case> {
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let big_header = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_headers = format!(
        "POST / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let big_body = {
        let mut b = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n".to_vec();
        b.extend(std::iter::repeat_n(b'a', 1 << 20));
        b
    };
    let big_chunked = {
        let mut b = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..16 {
            b.extend_from_slice(b"10000\r\n");
            b.extend(std::iter::repeat_n(b'a', 0x10000));
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"0\r\n\r\n");
        b
    };
    let hold = Duration::from_millis(1500);
    vec![
        case("`GARBAGE\\r\\n\\r\\n`", "GARBAGE\r\n\r\n"),
        case(
            "TLS ClientHello bytes",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
        ),
        case(
            "`Content-Length: abc`",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        ),
        case(
            "two different `Content-Length`s",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        case(
            "a header name with a space",
            "POST / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        ),
        case(
            "`HTTP/3.0` request line",
            "GET / HTTP/3.0\r\nHost: x\r\n\r\n",
        ),
        case("a 100 KB URI", long_uri),
        case("a 1 MB header", big_header),
        case("200 headers", many_headers),
        case("a declared 1 MB body", big_body),
        case("a chunked 1 MB body", big_chunked),
        case(
            "broken chunked framing",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ),
        slow(
            "head, then silence (header-slowloris)",
            b"POST / HTTP/1.1\r\nHost: x\r\n",
            b"",
            hold,
        ),
        slow(
            "`Content-Length: 100`, 10 bytes, then silence (body-slowloris)",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
            b"",
            hold,
        ),
        case(
            "`Expect: 100-continue` and a declared 1 MB body",
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1048576\r\n\r\n",
        ),
        case(
            "`Transfer-Encoding: gzip`",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        ),
        case(
            "`DELETE /` (well-formed; the service's answer)",
            "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "the HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec(),
        ),
    ]
}

/// The table row of one answer, after checking its shape.
fn row(input: &str, a: &Answer) -> String {
    if a.raw == http2_goaway() {
        assert!(a.closed, "{input}: closed after the GOAWAY");
        return format!(
            "| {input} | HTTP/2 `GOAWAY` `HTTP_1_1_REQUIRED` (\"fobsim serves HTTP/1.1 only\") | — | closed |"
        );
    }
    let status = a
        .status()
        .unwrap_or_else(|| panic!("{input}: no HTTP answer: {:?}", a.text()));
    assert!(a.body().contains("<ErrorResponse"), "{input}: {}", a.text());
    let rid = a
        .header("x-amzn-requestid")
        .unwrap_or_else(|| panic!("{input}: no request id: {}", a.text()));
    assert_eq!(a.tag("RequestId"), Some(rid), "{input}");
    let code = a.tag("Code").unwrap_or_else(|| panic!("{input}: no code"));
    let message = a
        .tag("Message")
        .unwrap_or_else(|| panic!("{input}: no message"));
    assert!(!message.is_empty(), "{input}");
    let then = if a.closed { "closed" } else { "kept open" };
    format!("| {input} | `{status}` | `{code}` | {then} |")
}

fn table(rows: &[String]) -> String {
    let mut t = String::from("| input | status | code | connection |\n|---|---|---|---|\n");
    for r in rows {
        t.push_str(r);
        t.push('\n');
    }
    t
}

#[test]
fn every_http_error_is_aws_shaped_and_the_table_says_so() {
    let s = server();
    let mut rows = Vec::new();
    for c in cases() {
        let parts: Vec<&[u8]> = c.parts.iter().map(Vec::as_slice).collect();
        let a = exchange(s.addr(), &parts, c.pause);
        rows.push(row(c.input, &a));
    }
    // An idle keep-alive connection is closed after the header timeout,
    // without an answer (nothing was asked).
    let started = Instant::now();
    let idle = exchange(s.addr(), &[], Duration::ZERO);
    assert!(idle.eof && idle.raw.is_empty(), "{:?}", idle.text());
    assert!(started.elapsed() >= Duration::from_millis(900));
    rows.push(
        "| nothing (an idle connection) | — (no answer: nothing was asked) | — | closed after the header timeout |"
            .to_string(),
    );
    rows.extend(overload_rows());
    // Still serving.
    let ok = exchange(
        s.addr(),
        &[b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"],
        Duration::ZERO,
    );
    assert_eq!(ok.status(), Some(403), "{}", ok.text());
    assert_eq!(
        ok.tag("Code").as_deref(),
        Some("MissingAuthenticationToken")
    );

    let table = table(&rows);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let doc = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = doc
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("{DOC} has no {BEGIN}"));
    let (old, tail) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("{DOC} has no {END}"));
    let fresh = format!("\n{table}");
    if old != fresh {
        if std::env::var_os("FOBSIM_WRITE_DOCS").is_some() {
            std::fs::write(&path, format!("{head}{BEGIN}{fresh}{END}{tail}")).unwrap();
        } else {
            panic!(
                "{DOC} is out of date (rerun with FOBSIM_WRITE_DOCS=1 to rewrite it); the table is:\n{table}"
            );
        }
    }
}
