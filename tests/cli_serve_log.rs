//! `fobsim serve` logs one line per request on stderr, at the level
//! `RUST_LOG` asks for, without secrets (issue 18 item 9).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

/// Starts `fobsim serve` (RUST_LOG = `level`, or unset), sends `requests`
/// raw HTTP requests, stops it with SIGTERM; returns its stderr.
fn serve_and_log(level: Option<&str>, requests: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--db"])
        .arg(dir.path().join("iam.db"))
        .args(["--bootstrap", "fixtures/bootstrap/example.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    if let Some(l) = level {
        cmd.env("RUST_LOG", l);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let addr = ready["listen"].as_str().unwrap().to_string();
    for req in requests {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

fn requests() -> Vec<String> {
    let body = "Action=EnableMFADevice&UserName=alice&SerialNumber=GAHT00000001\
                &AuthenticationCode1=123456&AuthenticationCode2=654321&Version=2010-05-08";
    vec![
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=5ec7e75ec7e75ec7e7\r\n\
             X-Amz-Security-Token: T0KENT0KEN\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        "GET /?Action=ListUsers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
    ]
}

#[test]
fn one_line_per_request_without_secrets() {
    let log = serve_and_log(None, &requests());
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fobsim::serve: request"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains(" INFO "), "{log}");
    assert!(
        lines[0].contains(
            "method=POST path=/ action=EnableMFADevice status=403 error=InvalidClientTokenId"
        ),
        "{log}"
    );
    assert!(
        lines[1].contains(
            "method=GET path=/ action=ListUsers status=403 error=MissingAuthenticationToken"
        ),
        "{log}"
    );
    for l in &lines {
        assert!(
            l.contains("request_id=") && l.contains(" ms=") && l.contains("peer=127.0.0.1:"),
            "{l}"
        );
    }
    for secret in [
        "5ec7e7",
        "T0KENT0KEN",
        "123456",
        "654321",
        "AKIAEXAMPLE",
        "alice",
        "GAHT00000001",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn rust_log_sets_the_level() {
    let log = serve_and_log(Some("warn"), &requests());
    assert!(!log.contains("fobsim::serve"), "{log}");
    let log = serve_and_log(Some("fobsim::serve=debug"), &requests()[..1]);
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("fobsim::serve: request"))
            .count(),
        1,
        "{log}"
    );
}
