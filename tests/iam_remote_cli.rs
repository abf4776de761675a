//! `fobsim run --engine iam-http --endpoint URL --bootstrap FILE --control
//! SOCKET | --faketime-file FILE` against a real, already-running `fobsim
//! serve` (a child process on loopback, SQLite; a manual clock on the
//! control plane, or the system clock under libfaketime): the bootstrap `--write-bootstrap`
//! writes provisions it, the suite gets the verdicts of the in-process
//! `iam-http` adapter (and of the built-in engine wherever HTTP can say
//! it), and a stale or mismatched endpoint is a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

/// A `fobsim serve` child, killed on drop.
struct Server {
    child: Child,
    endpoint: String,
    /// How `fobsim run` moves its clock: `--control SOCKET` or
    /// `--faketime-file FILE`.
    clock_args: [String; 2],
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the test endpoint's clock moves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClockMode {
    /// `--clock manual --control SOCKET`.
    Manual,
    /// `--clock system` with a control socket that cannot move it.
    System,
    /// `--clock system` under libfaketime with a timestamp file.
    FakeTime,
}

/// `fobsim serve` on loopback, SQLite in `dir`, and its first stdout line.
fn serve(dir: &Path, bootstrap: &Path, mode: ClockMode) -> (Server, Value) {
    let control = dir.join("clock.sock");
    let clock_file = dir.join("faketime");
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("fobsim"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--db"])
        .arg(dir.join("iam.db"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let clock_args = match mode {
        ClockMode::Manual | ClockMode::System => {
            let clock = if mode == ClockMode::Manual {
                "manual"
            } else {
                "system"
            };
            cmd.args(["--clock", clock, "--control"]).arg(&control);
            ["--control".to_string(), control.display().to_string()]
        }
        ClockMode::FakeTime => {
            // Fails loudly where libfaketime is missing (tests/run.sh
            // installs it through tests/matrix/setup.sh).
            let lib =
                fobsim_engines::peers::libfaketime("iam-http").unwrap_or_else(|p| panic!("{p}"));
            std::fs::write(&clock_file, "+0\n").unwrap();
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", &clock_file)
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            [
                "--faketime-file".to_string(),
                clock_file.display().to_string(),
            ]
        }
    };
    let mut child = cmd.spawn().expect("fobsim serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("fobsim serve prints its endpoint");
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let expected = if mode == ClockMode::Manual {
        "manual"
    } else {
        "system"
    };
    assert_eq!(v["clock"], expected, "{line}");
    let server = Server {
        endpoint: v["endpoint"].as_str().expect("endpoint").to_string(),
        child,
        clock_args,
    };
    (server, v)
}

/// `fobsim run --write-bootstrap DIR/boot [--only ONLY]`: the bootstrap file.
fn write_bootstrap(dir: &Path, only: Option<&str>) -> PathBuf {
    let boot_dir = dir.join("boot");
    let mut cmd = fobsim();
    cmd.args(["run", "--write-bootstrap"]).arg(&boot_dir);
    if let Some(only) = only {
        cmd.args(["--only", only]);
    }
    cmd.assert().success();
    boot_dir.join("bootstrap.toml")
}

fn remote_run(server: &Server, bootstrap: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = fobsim()
        .args([
            "run",
            "--engine",
            "iam-http",
            "--endpoint",
            &server.endpoint,
        ])
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(&server.clock_args)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A transcript without error messages (they name the endpoint's
/// namespaced users and serials) and without the engine label.
fn comparable(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| *k != "message" && *k != "engine")
                .map(|(k, v)| (k.clone(), comparable(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(comparable).collect()),
        other => other.clone(),
    }
}

fn scenarios(report: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {report}"));
    v["scenarios"].as_array().expect("scenarios").clone()
}

#[test]
fn the_suite_over_a_running_endpoint_matches_in_process() {
    suite_matches_in_process(ClockMode::Manual);
}

/// The same with the endpoint's clock moved by libfaketime (how an engine
/// without fobsim's control plane is driven).
#[test]
fn the_suite_over_a_faketime_endpoint_matches_in_process() {
    suite_matches_in_process(ClockMode::FakeTime);
}

fn suite_matches_in_process(mode: ClockMode) {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_bootstrap(dir.path(), None);
    let (server, started) = serve(dir.path(), &bootstrap, mode);
    // Every scenario's users, and every fob the engine gets at the start
    // (those an `import` step gives it are not in the bootstrap).
    let suite = fobsim_harness::suite::builtin().unwrap();
    let users: usize = suite.iter().map(|s| s.users.len()).sum();
    let tokens: usize = suite
        .iter()
        .map(|s| s.devices.iter().filter(|d| d.registered).count())
        .sum();
    assert_eq!(started["users_created"], users, "{started}");
    assert_eq!(started["tokens_imported"], tokens, "{started}");

    // A run under another seed is refused before it touches the endpoint:
    // its fobs are not the provisioned ones.
    let (code, text) = remote_run(
        &server,
        &bootstrap,
        &["--seed", "2", "--only", "enable-two-consecutive"],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("another --seed"), "{text}");
    assert!(text.contains("0 passed"), "{text}");

    let remote_json = dir.path().join("remote.json");
    let (code, text) = remote_run(
        &server,
        &bootstrap,
        &[
            "--format",
            "json",
            "--allow-na",
            "--out",
            remote_json.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let remote = scenarios(&std::fs::read_to_string(&remote_json).unwrap());

    let local = fobsim()
        .args(["run", "--engine", "iam-http", "--format", "json"])
        .output()
        .unwrap();
    let local = scenarios(&String::from_utf8(local.stdout).unwrap());
    let builtin = fobsim().args(["run", "--format", "json"]).output().unwrap();
    let builtin = scenarios(&String::from_utf8(builtin.stdout).unwrap());
    assert_eq!(remote.len(), local.len());
    assert_eq!(remote.len(), builtin.len());

    let (mut same, mut settings) = (0, 0);
    for ((r, l), b) in remote.iter().zip(&local).zip(&builtin) {
        let id = r["id"].as_str().unwrap();
        assert_eq!(id, l["id"].as_str().unwrap());
        if r["verdict"] == "n/a" && r["capability"] == "settings" {
            // A running endpoint's rules cannot change per scenario.
            settings += 1;
            continue;
        }
        if r["verdict"] == "n/a" && r["capability"] == "import" {
            // Its seed records are the bootstrap's: nothing imports mid-run
            // (in process, the harness hands the served engine the record).
            assert_eq!(l["verdict"], "pass", "{}", r["id"]);
            continue;
        }
        // Byte for byte the in-process iam-http transcript (messages aside).
        assert_eq!(comparable(r), comparable(l), "{id}");
        if r["verdict"] == "n/a" {
            let cap = r["capability"].as_str().unwrap();
            assert!(
                [
                    "console-sign-in",
                    "root-user",
                    "root-recovery",
                    "observe-lockout",
                    "error-kinds"
                ]
                .contains(&cap),
                "{id}: n/a for {cap}"
            );
        } else {
            assert_eq!(r["verdict"], b["verdict"], "{id}: built-in disagrees");
            same += 1;
        }
    }
    assert!(same >= 20, "{same} scenarios ran to the end over HTTP");
    assert!(settings >= 1, "scenarios with settings are n/a");

    // A second run on the same database is refused, scenario by scenario:
    // the codes the first run used stay used.
    let (code, text) = remote_run(&server, &bootstrap, &["--only", "enable-two-consecutive"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("already ran there"), "{text}");
}

#[test]
fn endpoint_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    // --endpoint needs --bootstrap ...
    fobsim()
        .args([
            "run",
            "--engine",
            "iam-http",
            "--endpoint",
            "http://127.0.0.1:9",
        ])
        .assert()
        .code(2);
    // Only the iam-http engine speaks to an endpoint.
    let bootstrap = write_bootstrap(dir.path(), Some("session-token-with-mfa"));
    // `fobsim run --engine ENGINE --endpoint (nothing listens) --bootstrap
    // B CLOCK...`: exit code and stderr.
    let refused = |engine: &str, clock: &[&str]| {
        let out = fobsim()
            .args([
                "run",
                "--engine",
                engine,
                "--endpoint",
                "http://127.0.0.1:9",
            ])
            .arg("--bootstrap")
            .arg(&bootstrap)
            .args(clock)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let no_socket = ["--control", "/nonexistent/clock.sock"];
    let err = refused("builtin", &no_socket);
    assert!(err.contains("--engine iam-http"), "{err}");
    // ... and a way to move the endpoint's clock.
    let err = refused("iam-http", &[]);
    assert!(
        err.contains("--control SOCKET") && err.contains("--faketime-file"),
        "{err}"
    );
    // Nothing listens at the endpoint: one clear error naming it.
    let err = refused("iam-http", &no_socket);
    assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");
    // No control socket: a clear error naming it.
    let (server, _) = serve(dir.path(), &bootstrap, ClockMode::Manual);
    let out = fobsim()
        .args([
            "run",
            "--engine",
            "iam-http",
            "--endpoint",
            &server.endpoint,
        ])
        .arg("--bootstrap")
        .arg(&bootstrap)
        .args(no_socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/clock.sock"), "{err}");
}

#[test]
fn a_system_clock_endpoint_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_bootstrap(dir.path(), Some("session-token-with-mfa"));
    let (server, _) = serve(dir.path(), &bootstrap, ClockMode::System);
    let (code, text) = remote_run(&server, &bootstrap, &["--only", "session-token-with-mfa"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--clock manual"), "{text}");
}

/// `--write-bootstrap DIR --pskc-key-file KEY`: the seeds go out encrypted
/// (seeds.pskc, RFC 6030 §6.1), the bootstrap names the key, the endpoint
/// loads them, and scenarios pass against it; a key others may read stops
/// the endpoint before it imports anything.
#[test]
fn an_encrypted_bootstrap_provisions_the_endpoint() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("transport.key");
    let boot_dir = dir.path().join("boot");
    let out = fobsim()
        .args([
            "run",
            "--only",
            "session-token-with-mfa",
            "--write-bootstrap",
        ])
        .arg(&boot_dir)
        .arg("--pskc-key-file")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("seeds.pskc, encrypted (RFC 6030 PSKC) under the pre-shared key"),
        "{said}"
    );
    assert!(!boot_dir.join("seeds.csv").exists());
    let pskc = std::fs::read_to_string(boot_dir.join("seeds.pskc")).unwrap();
    assert!(pskc.contains("<pskc:EncryptedValue>"), "{pskc}");
    let bootstrap = boot_dir.join("bootstrap.toml");
    let toml = std::fs::read_to_string(&bootstrap).unwrap();
    assert!(
        toml.contains(&format!("key_file = \"{}\"", key.display())),
        "{toml}"
    );

    let (server, ready) = serve(dir.path(), &bootstrap, ClockMode::Manual);
    assert_eq!(ready["tokens_imported"], 1, "{ready}");
    let (code, text) = remote_run(
        &server,
        &bootstrap,
        &["--only", "session-token-with-mfa", "--format", "json"],
    );
    assert_eq!(code, Some(0), "{text}");
    drop(server);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = fobsim()
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("other.db"))
        .arg("--bootstrap")
        .arg(&bootstrap)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0640 are too open"), "{err}");
}
