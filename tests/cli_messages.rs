//! Error messages say what is wrong once, in the user's terms, without
//! internals (issue 18 item 8).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use assert_cmd::Command;

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

/// Runs fobsim, expects exit 2, returns stderr.
fn bad_input(args: &[&str]) -> String {
    let out = fobsim().args(args).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    err
}

#[test]
fn a_missing_file_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let err = bad_input(&[
        "serve",
        "--db",
        db.to_str().unwrap(),
        "--bootstrap",
        "/nonexistent/bootstrap.toml",
    ]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(
        err.matches("/nonexistent/bootstrap.toml").count(),
        1,
        "{err}"
    );
    let sock = dir.path().join("nobody.sock");
    let err = bad_input(&["clock", "--control", sock.to_str().unwrap(), "get"]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("is `fobsim emulate"), "{err}");
}

#[test]
fn serve_in_a_missing_directory_says_the_directory_is_missing() {
    let err = bad_input(&[
        "serve",
        "--db",
        "/nonexistent/x.db",
        "--bootstrap",
        "fixtures/bootstrap/example.toml",
    ]);
    assert!(
        err.contains("--db /nonexistent/x.db: the directory /nonexistent does not exist"),
        "{err}"
    );
    assert!(!err.contains("key file"), "{err}");
    assert!(!err.contains("ServiceFailure"), "{err}");
}

#[test]
fn a_jitter_out_of_range_says_the_range() {
    let err = bad_input(&["fob", "--at", "@0", "--jitter", "1000y"]);
    assert!(err.contains("--jitter 1000y: out of range"), "{err}");
    assert!(err.contains("below 49 days"), "{err}");
    assert!(!err.contains("integral type"), "{err}");
}

#[test]
fn a_huge_ppm_is_not_echoed_in_309_digits() {
    let err = bad_input(&["fob", "--at", "@0", "--ppm", "1e308"]);
    assert!(
        err.contains("out of range: expected -100000 to 100000 ppm"),
        "{err}"
    );
    assert!(!err.contains("0000000000"), "{err}");
    let err = bad_input(&["fob", "--at", "@0", "--ppm", "NaN"]);
    assert!(err.contains("out of range"), "{err}");
    // A fleet file's skew is checked by the fob itself: same rule.
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, "[[fob]]\nmodel = \"gaht\"\nppm = 1e308\n").unwrap();
    let err = bad_input(&["emulate", "--fleet", fleet.to_str().unwrap()]);
    assert!(err.contains("skew 1e308 ppm is outside ±100000"), "{err}");
}

#[test]
fn a_bad_clock_time_shows_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    let err = bad_input(&[
        "clock",
        "--control",
        sock.to_str().unwrap(),
        "set",
        "17000x",
    ]);
    assert!(
        err.contains(
            "bad time \"17000x\": expected Unix seconds (1700000000), @UNIX_SECONDS (@1700000000) or RFC 3339 UTC (2026-01-01T00:00:00Z)"
        ),
        "{err}"
    );
}

#[test]
fn models_columns_line_up() {
    let out = fobsim().arg("models").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines[0];
    let serial_col = header.find("SERIAL").unwrap();
    let digits_end = header.find("DIGITS").unwrap() + "DIGITS".len();
    assert!(lines.len() >= 5, "{text}");
    for line in &lines[1..] {
        // DIGITS is right-aligned under its header, SERIAL starts under its.
        assert!(
            line[..digits_end].ends_with(|c: char| c.is_ascii_digit()),
            "{line:?}\n{text}"
        );
        assert_eq!(&line[digits_end..serial_col], "  ", "{line:?}\n{text}");
    }
    assert!(
        text.contains("d8     totp     30s sha256       8  OTPD800000001"),
        "{text}"
    );
}

#[test]
fn the_serial_transport_is_named_in_the_summary() {
    let out = fobsim()
        .args([
            "run",
            "--only",
            "enable-two-consecutive",
            "--transport",
            "serial",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("scenarios against builtin, fobs over serial ptys (seed 1): "),
        "{text}"
    );
    // The JSON transcript does not change with the transport.
    let a = fobsim()
        .args([
            "run",
            "--only",
            "enable-two-consecutive",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let b = fobsim()
        .args([
            "run",
            "--only",
            "enable-two-consecutive",
            "--format",
            "json",
            "--transport",
            "serial",
        ])
        .output()
        .unwrap();
    assert_eq!(a.stdout, b.stdout);
}
