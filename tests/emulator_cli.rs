//! `fobsim emulate`, `fobsim device` and `fobsim clock` end to end: a real
//! emulator process, its ptys, symlinks, control socket and seed file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use fobsim_core::{Timestamp, Totp};

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
const T0: u64 = 1_700_000_000;

fn fobsim(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run fobsim")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "fobsim failed: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

struct Emulator {
    child: Child,
    ready: serde_json::Value,
}

impl Emulator {
    fn start(args: &[&str]) -> Emulator {
        let mut child = Command::new(BIN)
            .arg("emulate")
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fobsim emulate");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the ready line");
        let ready = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        Emulator { child, ready }
    }

    fn port(&self, i: usize, key: &str) -> PathBuf {
        PathBuf::from(self.ready["fobs"][i][key].as_str().unwrap())
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn code_at(seeds: &Path, serial: &str, secs: u64) -> String {
    let text = std::fs::read_to_string(seeds).unwrap();
    let recs = fobsim_core::seedfile::parse(&text).unwrap();
    let r = recs.iter().find(|r| r.serial.as_str() == serial).unwrap();
    let totp = Totp::new(r.algorithm, r.secret.expose(), u32::from(r.digits), 30, 0).unwrap();
    totp.code_at(secs).unwrap().to_string()
}

#[test]
fn emulate_device_and_clock_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("links");
    let socket = dir.path().join("ctl.sock");
    let seeds = dir.path().join("seeds.csv");
    let emu = Emulator::start(&[
        "--count",
        "2",
        "--model",
        "gaht",
        "--seed",
        "11",
        "--link-dir",
        links.to_str().unwrap(),
        "--clock",
        "manual",
        "--start",
        &format!("@{T0}"),
        "--control",
        socket.to_str().unwrap(),
        "--export-seeds",
        seeds.to_str().unwrap(),
    ]);
    assert_eq!(emu.ready["clock"], "manual");
    assert_eq!(emu.ready["fobs"][1]["serial"], "GAHT00000002");
    let link1 = emu.port(0, "link");
    let link2 = emu.port(1, "link");
    assert_eq!(link1, links.join("GAHT00000001"));
    assert_eq!(std::fs::read_link(&link1).unwrap(), emu.port(0, "path"));
    // The seed file is private.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&seeds).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let l1 = link1.to_str().unwrap();
    let l2 = link2.to_str().unwrap();
    let info = stdout(&fobsim(&["device", "info", l1, "--json"]));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["serial"], "GAHT00000001");
    assert_eq!(info["protocol"], 1);
    assert_eq!(stdout(&fobsim(&["device", "display", l1])), "blank");
    assert_eq!(
        stdout(&fobsim(&["device", "press", l1])),
        code_at(&seeds, "GAHT00000001", T0)
    );

    let sock = socket.to_str().unwrap();
    assert_eq!(
        stdout(&fobsim(&["clock", "advance", "30s", "--control", sock])),
        "2023-11-14T22:13:50.000Z (manual, frozen)"
    );
    assert_eq!(
        stdout(&fobsim(&["clock", "advance", "-10s", "--control", sock])),
        "2023-11-14T22:13:40.000Z (manual, frozen)"
    );
    assert_eq!(
        stdout(&fobsim(&["device", "press", l1])),
        code_at(&seeds, "GAHT00000001", T0 + 20)
    );
    stdout(&fobsim(&[
        "clock",
        "drift",
        "GAHT00000002",
        "--offset=+47s",
        "--control",
        sock,
    ]));
    assert_eq!(
        stdout(&fobsim(&["device", "press", l2])),
        code_at(&seeds, "GAHT00000002", T0 + 20 + 47)
    );
    let get = stdout(&fobsim(&["clock", "get", "--control", sock, "--json"]));
    let get: serde_json::Value = serde_json::from_str(&get).unwrap();
    assert_eq!(get["clock"]["now_ms"], (T0 + 20) * 1000);

    // Test-mode commands are refused: the emulator runs without --test-mode.
    let refused = fobsim(&["device", "send", l1, "BATTERY DRAIN"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).starts_with("ERR 403 "));

    let status = emu.terminate();
    assert!(status.success(), "{status}");
    assert!(!link1.exists() && std::fs::symlink_metadata(&link1).is_err());
    assert!(
        std::fs::symlink_metadata(&socket).is_err(),
        "socket removed"
    );
}

#[test]
fn fleet_file_test_mode_and_pskc_export() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        "seed = 3\n[[fob]]\nmodel = \"gaht\"\nserial = \"GAHT12345678\"\noffset = \"-95s\"\n",
    )
    .unwrap();
    let seeds = dir.path().join("seeds.pskc");
    let socket = dir.path().join("c");
    let emu = Emulator::start(&[
        "--fleet",
        fleet.to_str().unwrap(),
        "--clock",
        "manual",
        "--start",
        "2030-01-01T00:00:00Z",
        "--control",
        socket.to_str().unwrap(),
        "--test-mode",
        "--export-seeds",
        seeds.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&seeds)
            .unwrap()
            .contains("KeyContainer")
    );
    let path = emu.port(0, "path");
    assert!(emu.ready["fobs"][0]["link"].is_null());
    let p = path.to_str().unwrap();
    let clock = stdout(&fobsim(&["device", "send", p, "CLOCK"]));
    assert!(
        clock.contains(" device=2029-12-31T23:58:25.000Z "),
        "{clock}"
    );
    let t: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        stdout(&fobsim(&["device", "press", p])),
        code_at(&seeds, "GAHT12345678", t.as_secs() - 95)
    );
    assert!(emu.terminate().success());
}

#[test]
fn export_encrypted_seeds_under_a_key_or_a_password() {
    use fobsim_core::seedfile::{self, Protection};
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("transport.key");
    let seeds = dir.path().join("seeds.pskc");
    let socket = dir.path().join("c");
    let emu = Emulator::start(&[
        "--count",
        "2",
        "--seed",
        "11",
        "--clock",
        "manual",
        "--start",
        &format!("@{T0}"),
        "--control",
        socket.to_str().unwrap(),
        "--export-seeds",
        seeds.to_str().unwrap(),
        "--pskc-key-file",
        key.to_str().unwrap(),
    ]);
    // The missing key file was made: 32 hex digits, private.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&seeds), 0o600);
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 32);
    let text = std::fs::read_to_string(&seeds).unwrap();
    assert!(text.contains("EncryptedValue") && !text.contains("<pskc:PlainValue>MT"));
    assert!(seedfile::parse(&text).is_err(), "readable without the key");
    let k = seedfile::read_key_file(&key).unwrap();
    let records = seedfile::parse_with(&text, Some(&Protection::Key(k))).unwrap();
    assert_eq!(records.len(), 2);
    // The decrypted secret is the fob's: its code is the one it shows.
    let r = &records[0];
    let totp = Totp::new(r.algorithm, r.secret.expose(), u32::from(r.digits), 30, 0).unwrap();
    let shown = stdout(&fobsim(&[
        "device",
        "press",
        emu.port(0, "path").to_str().unwrap(),
    ]));
    assert_eq!(shown, totp.code_at(T0).unwrap().to_string());
    assert!(emu.terminate().success());

    // The same fleet under a password: the same records.
    let pass = dir.path().join("pskc.pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let seeds2 = dir.path().join("seeds-pw.xml");
    let emu = Emulator::start(&[
        "--count",
        "2",
        "--seed",
        "11",
        "--export-seeds",
        seeds2.to_str().unwrap(),
        "--pskc-password-file",
        pass.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&seeds2).unwrap();
    let p = seedfile::read_password_file(&pass).unwrap();
    assert_eq!(
        seedfile::parse_with(&text, Some(&Protection::Password(p))).unwrap(),
        records
    );
    assert!(emu.terminate().success());
}

#[test]
fn bad_invocations_fail_with_exit_code_2() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let key = dir.path().join("k");
    let open = dir.path().join("open.pass");
    std::fs::write(&open, "pw\n").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pskc = dir.path().join("s.pskc");
    let csv = dir.path().join("s.csv");
    let (key, open, pskc, csv) = (
        key.to_str().unwrap(),
        open.to_str().unwrap(),
        pskc.to_str().unwrap(),
        csv.to_str().unwrap(),
    );
    for (args, says) in [
        (vec!["emulate", "--pskc-key-file", key], "--export-seeds"),
        (
            vec!["emulate", "--export-seeds", csv, "--pskc-key-file", key],
            "only PSKC is encrypted",
        ),
        (
            vec![
                "emulate",
                "--export-seeds",
                pskc,
                "--pskc-key-file",
                key,
                "--pskc-password-file",
                open,
            ],
            "cannot be used with",
        ),
        (
            vec![
                "emulate",
                "--export-seeds",
                pskc,
                "--pskc-password-file",
                open,
            ],
            "0644 are too open",
        ),
    ] {
        let o = fobsim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Nothing was written by the refused invocations.
    assert!(!Path::new(key).exists() && !Path::new(pskc).exists() && !Path::new(csv).exists());
    for args in [
        vec!["device", "press", missing.to_str().unwrap()],
        vec!["clock", "get", "--control", missing.to_str().unwrap()],
        vec!["clock", "get"],
        vec!["emulate", "--clock", "manual"],
        vec!["emulate", "--model", "nope"],
        vec!["emulate", "--count", "0"],
        vec!["emulate", "--export-seeds", "seeds.txt"],
    ] {
        let o = fobsim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
}
