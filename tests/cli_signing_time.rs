//! `fobsim serve --clock manual --signing-time system`: requests signed
//! with the real time (as the AWS CLI signs them) are judged against the
//! real time, while MFA codes follow the manual clock (issue 18 item 2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/ready.rs"]
mod ready;

use std::process::{Command, Stdio};

use fobsim_aws::Service;
use fobsim_aws::client::Client;
use fobsim_aws::sigv4::Credentials;
use fobsim_core::Timestamp;
use ready::Ready;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
/// The manual clock's start: 2001-09-09, far from the real time.
const START: u64 = 1_000_000_000;

struct Serve {
    serve: Ready,
    endpoint: String,
    _dir: tempfile::TempDir,
}

fn serve(extra: &[&str]) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--db"])
        .arg(dir.path().join("iam.db"))
        .args([
            "--bootstrap",
            "fixtures/bootstrap/example.toml",
            "--clock",
            "manual",
        ])
        .args(["--start", &START.to_string(), "--control"])
        .arg(dir.path().join("clock.sock"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    let serve = Ready::start(cmd, "fobsim serve");
    assert!(
        serve.json["now"]
            .as_str()
            .unwrap()
            .starts_with("2001-09-09T01:46:40"),
        "{}",
        serve.json
    );
    Serve {
        endpoint: serve.str("endpoint"),
        serve,
        _dir: dir,
    }
}

fn alice() -> Credentials {
    Credentials {
        access_key_id: "AKIAALICEEXAMPLE0001".into(),
        secret_access_key: "alice+Secret/Example/Key/000000000000001".into(),
        session_token: None,
    }
}

/// GetUser as alice, signed at `at`: the error code, or `None` on success.
fn get_user(s: &Serve, at: Timestamp) -> Option<String> {
    let client = Client::new(&s.endpoint).unwrap();
    let r = client
        .call(
            Service::Iam,
            &[("Action", "GetUser"), ("Version", "2010-05-08")],
            &alice(),
            at,
        )
        .unwrap();
    r.code()
}

fn real_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(u64::try_from(ms).unwrap())
}

#[test]
fn by_default_requests_are_signed_at_the_engines_clock_and_serve_says_so() {
    let mut s = serve(&[]);
    assert_eq!(get_user(&s, Timestamp::from_secs(START)), None);
    let refused = get_user(&s, real_now());
    assert_eq!(refused.as_deref(), Some("SignatureDoesNotMatch"));
    let _ = s.serve.child.kill();
    let _ = s.serve.child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut s.serve.child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("clients that sign with the real time (the AWS CLI, boto3, the SDKs) need --signing-time system"),
        "{err}"
    );
}

#[test]
fn with_signing_time_system_real_time_signatures_pass_and_codes_follow_the_manual_clock() {
    let s = serve(&["--signing-time", "system"]);
    assert_eq!(get_user(&s, real_now()), None);
    // A signature at the manual clock's time is now years off.
    assert_eq!(
        get_user(&s, Timestamp::from_secs(START)).as_deref(),
        Some("SignatureDoesNotMatch")
    );
    // MFA codes are still judged at the manual clock: the code of the
    // manual time enables alice's fob, that of the real time does not.
    let secret = seed_of("GAHT90000001");
    let totp = fobsim_core::Totp::new(fobsim_core::Algorithm::Sha1, &secret, 6, 30, 0).unwrap();
    let client = Client::new(&s.endpoint).unwrap();
    let enable = |t: u64| {
        let c1 = totp.code_at(t - 30).unwrap().to_string();
        let c2 = totp.code_at(t).unwrap().to_string();
        client
            .call(
                Service::Iam,
                &[
                    ("Action", "EnableMFADevice"),
                    ("Version", "2010-05-08"),
                    ("UserName", "alice"),
                    ("SerialNumber", "GAHT90000001"),
                    ("AuthenticationCode1", &c1),
                    ("AuthenticationCode2", &c2),
                ],
                &alice(),
                real_now(),
            )
            .unwrap()
            .code()
    };
    assert_eq!(
        enable(real_now().as_secs()).as_deref(),
        Some("InvalidAuthenticationCode")
    );
    assert_eq!(enable(START), None);
}

/// The secret of `serial` in the example bootstrap's seed file.
fn seed_of(serial: &str) -> Vec<u8> {
    let text = std::fs::read_to_string("fixtures/bootstrap/seeds.csv").unwrap();
    let recs = fobsim_core::seedfile::parse(&text).unwrap();
    recs.into_iter()
        .find(|r| r.serial.as_str() == serial)
        .unwrap_or_else(|| panic!("{serial} is not in fixtures/bootstrap/seeds.csv"))
        .secret
        .expose()
        .to_vec()
}

/// One `fobsim clock` moves the emulator's and the server's manual clocks
/// in lockstep (`--control` given twice).
#[test]
fn one_clock_command_moves_the_emulator_and_the_server() {
    let s = serve(&["--signing-time", "system"]);
    let server_sock = s._dir.path().join("clock.sock");
    let dir = tempfile::tempdir().unwrap();
    let emu_sock = dir.path().join("emu.sock");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "emulate",
        "--clock",
        "manual",
        "--start",
        &START.to_string(),
        "--control",
    ])
    .arg(&emu_sock)
    .arg("--json");
    let emu = Ready::start(cmd, "fobsim emulate");
    let clock = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("clock")
            .args(args)
            .arg("--control")
            .arg(&server_sock)
            .arg("--control")
            .arg(&emu_sock)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let checks = (|| -> Result<(), String> {
        for (args, want) in [
            (&["set", "1700000000"][..], "2023-11-14T22:13:20"),
            (&["freeze"][..], "2023-11-14T22:13:2"),
            (&["advance", "-30s"][..], "2023-11-14T22:12:5"),
            (&["get"][..], "2023-11-14T22:12:5"),
        ] {
            let (code, out, err) = clock(args);
            if code != Some(0) {
                return Err(format!("{args:?}: {err}"));
            }
            // One answer per socket, in the order given, both at `want`.
            let lines: Vec<&str> = out.lines().collect();
            if lines.len() != 4
                || !lines[0].ends_with("clock.sock:")
                || !lines[2].ends_with("emu.sock:")
                || !lines[1].starts_with(want)
                || !lines[3].starts_with(want)
            {
                return Err(format!("{args:?}: {out}"));
            }
        }
        // A socket nobody serves: nothing moves.
        let out = Command::new(BIN)
            .args(["clock", "set", "1800000000", "--control"])
            .arg(&emu_sock)
            .arg("--control")
            .arg(dir.path().join("nobody.sock"))
            .output()
            .unwrap();
        if out.status.code() != Some(2) {
            return Err("an unreachable socket was not an error".into());
        }
        let (_, now, _) = clock(&["get"]);
        if now.contains("2027-01-15") {
            return Err(format!("a clock moved: {now}"));
        }
        Ok(())
    })();
    drop(emu);
    checks.unwrap();
}
