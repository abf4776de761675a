//! A closed standard output (the reader of the pipe is gone, as with
//! `| head -5`) ends a command quietly: no panic, no exit 101, nothing on
//! stderr about it (issue 18 item 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::process::{Command, Stdio};

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("fobsim")
}

/// Runs fobsim with a standard output whose reading end is closed before
/// the process starts: its first write fails with EPIPE, every time.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("fobsim runs")
}

fn assert_quiet(args: &[&str]) {
    let out = with_closed_stdout(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    assert!(!err.contains("error"), "{args:?}: {err}");
}

#[test]
fn run_list_into_a_closed_pipe_is_quiet() {
    assert_quiet(&["run", "--list"]);
}

#[test]
fn run_json_into_a_closed_pipe_is_quiet() {
    assert_quiet(&["run", "--engine", "model", "--format", "json"]);
}

#[test]
fn matrix_into_a_closed_pipe_is_quiet() {
    assert_quiet(&["matrix", "--engines", "builtin,model", "--no-sweep"]);
}

#[test]
fn models_and_code_into_a_closed_pipe_are_quiet() {
    assert_quiet(&["models"]);
    assert_quiet(&[
        "code",
        "--key-hex",
        "3132333435363738393031323334353637383930",
        "--at",
        "59",
    ]);
}

/// The issue's commands as a user types them, under `pipefail`: whether or
/// not the write races `head`'s exit, the pipeline succeeds and says nothing.
#[test]
fn the_issues_pipelines_exit_0_with_nothing_on_stderr() {
    let dir = bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (line, lines) in [
        ("fobsim run --list | head -5", 5),
        ("fobsim run --format json | head -1", 1),
        (
            "fobsim matrix --engines builtin,model --no-sweep | head -1",
            1,
        ),
    ] {
        let out = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {line}")])
            .env("PATH", &path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{line}: {err}");
        assert!(!err.contains("panicked"), "{line}: {err}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            lines,
            "{line}"
        );
    }
}
