//! `fobsim up` (issue 15 part 3): the whole sandbox in one process. The
//! engine behind the AWS endpoint, fobs whose seeds it already knows, the
//! example users and keys, the fob panel and the control API, one clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/ready.rs"]
mod ready;

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use fobsim_aws::Service;
use fobsim_aws::client::{Client, HttpResponse};
use fobsim_aws::sigv4::Credentials;
use fobsim_core::Timestamp;
use fobsim_emulator::http::client::PanelClient;
use ready::Ready;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

/// A running `fobsim up`, its temp directory (TMPDIR) and its ready line.
struct Up {
    up: Ready,
    /// Its TMPDIR: handed back by [`Up::stop`], to look at after exit.
    tmp: Option<tempfile::TempDir>,
}

impl Up {
    /// `fobsim up --listen 127.0.0.1:0 --panel 127.0.0.1:0 --json EXTRA`,
    /// TMPDIR a fresh temp directory.
    fn start(extra: &[&str]) -> Up {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["up", "--listen", "127.0.0.1:0", "--panel", "127.0.0.1:0"])
            .args(["--json"])
            .args(extra)
            .env("TMPDIR", tmp.path())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped());
        Up {
            up: Ready::start(cmd, "fobsim up"),
            tmp: Some(tmp),
        }
    }

    /// The ready line.
    fn ready(&self) -> &serde_json::Value {
        &self.up.json
    }

    fn str(&self, key: &str) -> String {
        self.up.str(key)
    }

    fn panel_addr(&self) -> SocketAddr {
        let url = self.str("panel");
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap()
    }

    fn panel(&self) -> PanelClient {
        PanelClient::connect(self.panel_addr()).unwrap()
    }

    /// Press `serial` through the control API: the code it shows.
    fn press(&self, serial: &str) -> String {
        let a = self
            .panel()
            .request("POST", &format!("/api/fobs/{serial}/press"), Some(""))
            .unwrap();
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let code = a.json()["code"].as_str().unwrap().to_string();
        assert_eq!(code.len(), 6, "{code}");
        code
    }

    fn advance(&self, by: &str) {
        let a = self
            .panel()
            .request(
                "POST",
                "/api/clock/advance",
                Some(&format!(r#"{{"by":"{by}"}}"#)),
            )
            .unwrap();
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }

    /// The printed credentials of the example user.
    fn creds(&self) -> Credentials {
        let env = &self.ready()["aws_env"];
        Credentials {
            access_key_id: env["AWS_ACCESS_KEY_ID"].as_str().unwrap().into(),
            secret_access_key: env["AWS_SECRET_ACCESS_KEY"].as_str().unwrap().into(),
            session_token: None,
        }
    }

    /// An IAM call signed with the printed keys at the real time.
    fn iam(&self, params: &[(&str, &str)]) -> HttpResponse {
        self.iam_as(&self.creds(), params)
    }

    /// An IAM call signed with `creds` at the real time.
    fn iam_as(&self, creds: &Credentials, params: &[(&str, &str)]) -> HttpResponse {
        let endpoint = self.ready()["aws_env"]["AWS_ENDPOINT_URL"]
            .as_str()
            .unwrap();
        assert_eq!(endpoint, self.str("endpoint"));
        let mut all = params.to_vec();
        all.push(("Version", "2010-05-08"));
        Client::new(endpoint)
            .unwrap()
            .call(Service::Iam, &all, creds, real_now())
            .unwrap()
    }

    /// SIGTERM; its exit status and stderr, and its TMPDIR.
    fn stop(mut self) -> (std::process::ExitStatus, String, tempfile::TempDir) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.up.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.up.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running 10 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        self.up
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err, self.tmp.take().unwrap())
    }
}

fn real_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(u64::try_from(ms).unwrap())
}

#[test]
fn the_sandbox_answers_on_every_door_and_stops_cleanly() {
    let up = Up::start(&[]);
    // Where its state lives: a new directory in TMPDIR, with the database.
    let dir = std::path::PathBuf::from(up.str("dir"));
    assert!(
        dir.starts_with(up.tmp.as_ref().unwrap().path()),
        "{}",
        up.ready()
    );
    assert!(dir.join("iam.db").is_file());
    assert_eq!(up.str("db"), dir.join("iam.db").display().to_string());
    assert_eq!(up.str("clock"), "system");
    let console = up.ready()["console"].as_str().unwrap();
    assert!(console.ends_with("/console/"), "{}", up.ready());
    // Three fobs, the first two for the example's users, all known.
    let fobs = up.ready()["fobs"].as_array().unwrap();
    let users: Vec<_> = fobs.iter().map(|f| f["user"].as_str()).collect();
    assert_eq!(users, [Some("alice"), Some("bob"), None]);
    assert_eq!(fobs[0]["serial"], "GAHT00000001");
    assert_eq!(up.ready()["tokens_imported"], 3);
    assert_eq!(up.ready()["aws_user"], "alice");

    // The panel page.
    let page = up.panel().request("GET", "/", None).unwrap();
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<html"));
    // The control API: the fleet, a press.
    let list = up.panel().request("GET", "/api/fobs", None).unwrap();
    assert_eq!(list.json()["fobs"].as_array().unwrap().len(), 3, "{list:?}");
    up.press("GAHT00000002");
    // The AWS endpoint, with the printed keys.
    let me = up.iam(&[("Action", "GetUser")]);
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(
        me.body.contains("<UserName>alice</UserName>"),
        "{}",
        me.body
    );
    // A wrong code for a fob the engine knows is refused as such (not "no
    // such device").
    let bad = up.iam(&[
        ("Action", "EnableMFADevice"),
        ("UserName", "alice"),
        ("SerialNumber", "GAHT00000001"),
        ("AuthenticationCode1", "000000"),
        ("AuthenticationCode2", "000001"),
    ]);
    assert_eq!(bad.status, 403, "{}", bad.body);
    assert_eq!(bad.code().as_deref(), Some("InvalidAuthenticationCode"));

    let (status, err, _tmp) = up.stop();
    assert!(status.success(), "{status:?}\n{err}");
    assert!(!err.contains("error"), "{err}");
    // Kept after exit, as it says.
    assert!(dir.join("iam.db").is_file());
}

#[test]
fn the_seed_flow_on_a_manual_clock_moved_from_the_control_api() {
    let up = Up::start(&["--clock", "manual", "--start", "2026-01-01T00:00:00Z"]);
    assert_eq!(up.str("clock"), "manual");
    assert!(up.str("now").starts_with("2026-01-01T00:00:00"));
    // A day on: the fob and the engine move together (a code of the moved
    // fob is accepted, two consecutive ones enable it).
    up.advance("1d");
    let c1 = up.press("GAHT00000001");
    up.advance("30s");
    let c2 = up.press("GAHT00000001");
    let enable = up.iam(&[
        ("Action", "EnableMFADevice"),
        ("UserName", "alice"),
        ("SerialNumber", "GAHT00000001"),
        ("AuthenticationCode1", &c1),
        ("AuthenticationCode2", &c2),
    ]);
    assert_eq!(enable.status, 200, "{}", enable.body);
    let list = up.iam(&[("Action", "ListMFADevices"), ("UserName", "alice")]);
    assert!(list.body.contains("GAHT00000001"), "{}", list.body);
    assert!(
        list.body.contains("<EnableDate>2026-01-02T00:00:30"),
        "the engine's time is the moved clock's: {}",
        list.body
    );
    // A fob added from the control API is known to the engine too.
    let added = up
        .panel()
        .request(
            "POST",
            "/api/fobs",
            Some(r#"{"model":"gaht","serial":"GAHT00000042"}"#),
        )
        .unwrap();
    assert_eq!(
        added.status,
        201,
        "{}",
        String::from_utf8_lossy(&added.body)
    );
    up.advance("30s");
    let c1 = up.press("GAHT00000042");
    up.advance("30s");
    let c2 = up.press("GAHT00000042");
    // bob (keys of the example bootstrap) enables it.
    let bob = Credentials {
        access_key_id: "AKIABOBEXAMPLE000001".into(),
        secret_access_key: "bob+Secret/Example/Key/00000000000000001".into(),
        session_token: None,
    };
    let enable = up.iam_as(
        &bob,
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "bob"),
            ("SerialNumber", "GAHT00000042"),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
    );
    assert_eq!(enable.status, 200, "{}", enable.body);
    let (status, err, _) = up.stop();
    assert!(status.success(), "{status:?}\n{err}");
}

#[test]
fn a_given_database_and_bootstrap_are_used_and_kept() {
    let up = Up::start(&[]);
    let dir = std::path::PathBuf::from(up.str("dir"));
    let (status, _, _tmp) = up.stop();
    assert!(status.success());
    // Again on the same database and the written bootstrap: nothing new to
    // import, no new directory.
    let db = dir.join("iam.db");
    let boot = dir.join("bootstrap/example.toml");
    let again = Up::start(&[
        "--db",
        db.to_str().unwrap(),
        "--bootstrap",
        boot.to_str().unwrap(),
    ]);
    assert!(again.ready()["dir"].is_null(), "{}", again.ready());
    assert_eq!(again.ready()["tokens_imported"], 0);
    assert_eq!(again.str("db"), db.display().to_string());
    let me = again.iam(&[("Action", "GetUser")]);
    assert_eq!(me.status, 200, "{}", me.body);
    let (status, err, _) = again.stop();
    assert!(status.success(), "{err}");
}

#[test]
fn the_text_says_urls_directory_fobs_environment_and_the_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--panel", "127.0.0.1:0"])
        .env("TMPDIR", tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("--authentication-code2") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "{text}");
        text.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    for want in [
        "AWS endpoint  http://127.0.0.1:",
        "fob panel     http://127.0.0.1:",
        "control API   http://127.0.0.1:",
        "directory     ",
        "GAHT00000001  gaht    for alice",
        "GAHT00000002  gaht    for bob",
        "GAHT00000003  gaht    spare",
        "export AWS_ENDPOINT_URL=http://127.0.0.1:",
        "export AWS_ACCESS_KEY_ID=AKIAALICEEXAMPLE0001 AWS_SECRET_ACCESS_KEY=alice+Secret/Example/Key/000000000000001",
        "aws iam enable-mfa-device --user-name alice --serial-number GAHT00000001",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert!(!text.contains(":0\n") && !text.contains(":0/"), "{text}");
}

/// Bad arguments: exit 2 with a message that names the problem.
#[test]
fn bad_arguments_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let missing = tmp.path().join("nope.toml");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--listen", "nowhere"],
            "invalid value 'nowhere' for '--listen",
        ),
        (
            vec!["--count", "2", "--fleet", "f.toml"],
            "cannot be used with",
        ),
        (
            vec!["--start", "2026-01-01T00:00:00Z"],
            "--start needs --clock manual",
        ),
        (vec!["--model", "nosuch"], "nosuch"),
        (vec!["--listen", &taken], "--listen 127.0.0.1:PORT"),
        (vec!["--panel", &taken], "--panel 127.0.0.1:PORT"),
        (
            vec!["--bootstrap", missing.to_str().unwrap()],
            "--bootstrap",
        ),
        (
            vec!["--db", "postgres://fob@127.0.0.1:1/x"],
            "--key-file FILE or FOBSIM_DB_KEY",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["up"];
        for flag in ["--listen", "--panel"] {
            if !args.contains(&flag) {
                all.extend([flag, "127.0.0.1:0"]);
            }
        }
        all.extend(&args);
        let out = Command::new(BIN)
            .args(&all)
            .env("TMPDIR", tmp.path())
            .env("RUST_LOG", "warn")
            .env_remove("FOBSIM_DB_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        // A sandbox that never started leaves no directory behind.
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?}: {left:?}");
    }
}
