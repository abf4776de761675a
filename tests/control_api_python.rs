//! The control API from Python: `tests/control_api/check.py` (requests +
//! pyotp, the client venv of `tests/matrix/setup.sh`) presses the fobs of
//! `fobsim emulate --http` on the system clock, reads their codes and
//! verifies each against the seed `--export-seeds` wrote, and against
//! Python's own clock. A missing venv fails the test with the install hint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/client_venv.rs"]
mod client_venv;

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

/// The emulator, stopped (its process group) on drop.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn python_requests_presses_and_pyotp_verifies_against_the_exported_seeds() {
    let python = client_venv::client_python();
    let dir = tempfile::tempdir().unwrap();
    let seeds = dir.path().join("seeds.csv");
    let mut child = Command::new(BIN)
        .args([
            "emulate",
            "--count",
            "3",
            "--seed",
            "42",
            "--http",
            "127.0.0.1:0",
            "--json",
        ])
        .arg("--export-seeds")
        .arg(&seeds)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _emulator = Emulator(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the emulator's startup line");
    let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
    let url = v["http"]
        .as_str()
        .expect("the startup line names the panel's address");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/control_api/check.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(url)
        .arg(&seeds)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check.py failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let n: usize = last
        .strip_prefix("ok ")
        .and_then(|r| r.strip_suffix(" checks"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    assert!(n >= 40, "{n} checks");
}
