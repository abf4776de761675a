//! Flag spellings (issue 18 item 7): `fobsim code` against the real
//! `oathtool` on the same inputs, one set of time forms for `--at`,
//! `--start` and `clock set`, one `--seed` default, negative values, short
//! flags, `sweep --json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/ready.rs"]
mod ready;

use std::process::{Command, Output, Stdio};

use ready::Ready;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
/// RFC 6238's SHA1 test key (hex of "12345678901234567890").
const K: &str = "3132333435363738393031323334353637383930";
/// The same key in base32.
const K32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn fobsim(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run fobsim")
}

fn oathtool(args: &[&str]) -> Output {
    Command::new("oathtool")
        .args(args)
        .output()
        .expect("oathtool is installed (apt-get install oathtool)")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn code_generates_what_oathtool_generates_with_oathtools_flags() {
    let sha512_key =
        hex::encode(b"1234567890123456789012345678901234567890123456789012345678901234");
    let cases: Vec<Vec<&str>> = vec![
        vec!["--totp", "-N", "@59", K],
        vec!["--totp", "-d", "8", "-N", "@59", K],
        vec!["--totp", "--digits=7", "--now=@1111111109", K],
        vec!["--totp=SHA256", "-d", "8", "-N", "@1111111109", K],
        vec![
            "--totp=sha512",
            "-d",
            "8",
            "-N",
            "@20000000000",
            &sha512_key,
        ],
        vec!["--totp", "-w", "3", "-N", "@59", K],
        vec!["--totp", "-s", "60", "-N", "@120", K],
        vec!["--totp", "-s", "1m", "-N", "@120", K],
        vec!["--totp", "--time-step-size=45s", "-N", "@1000", K],
        vec!["--totp", "-S", "@60", "-N", "@120", K],
        vec!["--totp", "-b", "-N", "@1111111109", K32],
        vec!["--totp", "-N", "2009-02-13T23:31:30Z", K],
        vec!["--hotp", "-c", "5", K],
        vec!["--hotp", "-c", "0", "-w", "4", K],
        vec!["--hotp", "--counter=9", "-d", "8", K],
    ];
    for args in cases {
        let ours = fobsim(&[&["code"], args.as_slice()].concat());
        let theirs = oathtool(&args);
        assert!(theirs.status.success(), "oathtool {args:?}");
        assert!(
            ours.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert_eq!(text(&ours), text(&theirs), "{args:?}");
    }
}

#[test]
fn code_verifies_like_oathtool_and_says_which_step() {
    // (args, what oathtool prints, what fobsim prints)
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        // The code of step 1 (t = 59) at t = 59: offset 0.
        (
            vec!["--totp", "-N", "@59", "-w", "3", K, "287082"],
            "0\n",
            "0\n",
        ),
        // At t = 0 (step 0) it is one step ahead.
        (
            vec!["--totp", "-N", "@0", "-w", "3", K, "287082"],
            "1\n",
            "1\n",
        ),
        // At t = 149 (step 4) it is three steps old: oathtool says 3,
        // fobsim says which way.
        (
            vec!["--totp", "-N", "@149", "-w", "3", K, "287082"],
            "3\n",
            "-3\n",
        ),
        // HOTP: the code of counter 3 from counter 2.
        (
            vec!["--hotp", "-c", "2", "-w", "3", K, "969429"],
            "1\n",
            "1\n",
        ),
        (
            vec!["--totp", "-b", "-N", "@59", K32, "287082"],
            "0\n",
            "0\n",
        ),
    ];
    for (args, oath_out, our_out) in cases {
        let theirs = oathtool(&args);
        assert_eq!(text(&theirs), oath_out, "oathtool {args:?}");
        assert!(theirs.status.success());
        let ours = fobsim(&[&["code"], args.as_slice()].concat());
        assert_eq!(text(&ours), our_out, "{args:?}");
        assert_eq!(ours.status.code(), Some(0), "{args:?}");
    }
    // No match within the window: both fail, nothing on stdout; fobsim
    // exits 1 (a finding), not 2 (bad input).
    let args = ["--totp", "-N", "@59", "-w", "1", K, "000000"];
    let theirs = oathtool(&args);
    assert!(!theirs.status.success());
    let ours = fobsim(&[&["code"], &args[..]].concat());
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(text(&ours), "");
    assert!(
        String::from_utf8_lossy(&ours.stderr).contains("matches none within a window of 1 steps")
    );
    // Not a code at all: bad input.
    let ours = fobsim(&["code", "--totp", "-N", "@59", K, "28708x"]);
    assert_eq!(ours.status.code(), Some(2));
}

#[test]
fn code_reads_the_key_from_stdin_or_a_file_as_oathtool_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, format!("{K}\n")).unwrap();
    let at_file = format!("@{}", file.display());
    let ours = fobsim(&["code", "--totp", "-N", "@59", &at_file]);
    let theirs = oathtool(&["--totp", "-N", "@59", &at_file]);
    assert_eq!(text(&ours), "287082\n");
    assert_eq!(text(&ours), text(&theirs));
    let mut child = Command::new(BIN)
        .args(["code", "--totp", "-N", "@59", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(K.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out), "287082\n");
}

#[test]
fn at_takes_bare_seconds_at_seconds_and_rfc3339_everywhere() {
    let forms = ["1700000000", "@1700000000", "2023-11-14T22:13:20Z"];
    let fob: Vec<String> = forms
        .iter()
        .map(|t| {
            let o = fobsim(&["fob", "--at", t, "--json"]);
            assert!(
                o.status.success(),
                "{t}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            text(&o)
        })
        .collect();
    assert!(fob.iter().all(|f| f == &fob[0]), "{fob:?}");
    let set_at = fobsim(&[
        "fob",
        "--at",
        "1700000060",
        "--set-at",
        "1700000000",
        "--json",
    ]);
    assert!(set_at.status.success());
    let code: Vec<String> = forms
        .iter()
        .map(|t| text(&fobsim(&["code", "--key-hex", K, "--at", t])))
        .collect();
    assert!(
        code.iter().all(|c| c == &code[0] && c.len() == 7),
        "{code:?}"
    );
}

#[test]
fn emulate_start_and_clock_set_take_the_same_time_forms() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("clock.sock");
    let sock_s = sock.to_str().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "emulate",
        "--clock",
        "manual",
        "--start",
        "1700000000",
        "--control",
        sock_s,
        "--json",
    ])
    .stderr(Stdio::inherit());
    let emu = Ready::start(cmd, "fobsim emulate");
    let get = || {
        let o = fobsim(&["clock", "--control", sock_s, "get"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        text(&o)
    };
    let checks = (|| -> Result<(), String> {
        let now = get();
        if !now.starts_with("2023-11-14T22:13:20") {
            return Err(format!("--start 1700000000: {now}"));
        }
        for (form, want) in [
            ("1700000100", "2023-11-14T22:15:00"),
            ("@1700000200", "2023-11-14T22:16:40"),
            ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00"),
        ] {
            let o = fobsim(&["clock", "--control", sock_s, "set", form]);
            if !o.status.success() {
                return Err(format!(
                    "set {form}: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            let now = get();
            if !now.starts_with(want) {
                return Err(format!("set {form}: {now}"));
            }
        }
        // A negative duration is a value, not an unknown flag.
        let o = fobsim(&["clock", "--control", sock_s, "advance", "-60s"]);
        if !o.status.success() {
            return Err(format!(
                "advance -60s: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        let now = get();
        if !now.starts_with("2023-12-31T23:59:00") {
            return Err(format!("advance -60s: {now}"));
        }
        Ok(())
    })();
    drop(emu);
    checks.unwrap();
}

#[test]
fn negative_values_reach_fobsim_not_clap() {
    // Meaningful: a clock offset; the fob shows the code of 2 minutes earlier.
    let slow = fobsim(&["fob", "--at", "@1000", "--offset", "-2m", "--json"]);
    let earlier = fobsim(&["fob", "--at", "@880", "--set-at", "@1000", "--json"]);
    assert!(slow.status.success() && earlier.status.success());
    let display = |o: &Output| {
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["display"].clone()
    };
    assert_eq!(display(&slow), display(&earlier));
    // Not meaningful: fobsim's own message, not "unexpected argument".
    for (args, want) in [
        (
            vec!["fob", "--at", "-5"],
            "--at: bad time \"-5\": expected Unix seconds",
        ),
        (
            vec!["code", "--key-hex", K, "--at", "-5"],
            "--at: bad time \"-5\"",
        ),
        (
            vec!["code", "--key-hex", K, "-N", "-5"],
            "--at: bad time \"-5\"",
        ),
        (
            vec!["fob", "--at", "@0", "--jitter", "-5s"],
            "--jitter -5s: out of range",
        ),
    ] {
        let o = fobsim(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
    }
}

#[test]
fn one_seed_default_for_run_fob_and_emulate() {
    // `fobsim fob` without --seed is `--seed 1`, as `fobsim run`.
    let a = fobsim(&["fob", "--at", "@1700000000", "--json"]);
    let b = fobsim(&["fob", "--at", "@1700000000", "--json", "--seed", "1"]);
    assert_eq!(text(&a), text(&b));
    // `fobsim emulate` without --seed exports the secret of seed 1, as does
    // a fleet file without `seed`.
    let want =
        fobsim_core::derive_secret(1, &fobsim_core::Serial::new("GAHT00000001").unwrap(), 20)
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, "[[fob]]\nmodel = \"gaht\"\n").unwrap();
    for extra in [vec![], vec!["--fleet", fleet.to_str().unwrap()]] {
        let csv = dir.path().join("seeds.csv");
        let _ = std::fs::remove_file(&csv);
        let mut cmd = Command::new(BIN);
        cmd.arg("emulate")
            .args(&extra)
            .args(["--export-seeds", csv.to_str().unwrap(), "--json"]);
        // Up (its ready line printed): the seeds are written.
        drop(Ready::start(cmd, "fobsim emulate"));
        let recs = fobsim_core::seedfile::parse(&std::fs::read_to_string(&csv).unwrap()).unwrap();
        assert_eq!(recs[0].serial.as_str(), "GAHT00000001");
        assert_eq!(recs[0].secret.expose(), want.expose(), "{extra:?}");
    }
}

#[test]
fn short_flags_and_sweep_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = fobsim(&[
        "run",
        "-e",
        "model",
        "-f",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["engine"], "model");
    let list = text(&fobsim(&["run", "-l"]));
    assert_eq!(list, text(&fobsim(&["run", "--list"])));
    let fob = fobsim(&["fob", "-m", "c200", "--at", "@0", "--json"]);
    assert!(text(&fob).contains("\"model\": \"c200\""));
    // `--json` prints JSON on stdout, as everywhere; `--json FILE` still writes FILE.
    let o = fobsim(&["sweep", "--x-max", "1m", "--y-max", "30s", "--json"]);
    assert!(o.status.success());
    let map: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(map["engine"], "builtin");
    assert!(String::from_utf8_lossy(&o.stderr).contains("15 cells:"));
    let file = dir.path().join("map.json");
    let o = fobsim(&[
        "sweep",
        "-e",
        "builtin",
        "--x-max",
        "1m",
        "--y-max",
        "30s",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(text(&o).contains("15 cells:"));
    let from_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(from_file, map);
}
