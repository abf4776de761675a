//! `fobsim code` and `fobsim models` from the outside: exact output, exit
//! codes, and clear errors for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use assert_cmd::Command;

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

#[test]
fn rfc6238_row_59_sha1() {
    fobsim()
        .args([
            "code",
            "--key-hex",
            "3132333435363738393031323334353637383930",
            "--digits",
            "8",
            "--at",
            "59",
        ])
        .assert()
        .success()
        .stdout("94287082\n");
}

#[test]
fn base32_sha512_and_year_2603() {
    // RFC 6238: SHA512 with its 64-byte seed at 20000000000 → 47863826.
    let seed = "1234567890123456789012345678901234567890123456789012345678901234";
    let b32 = data_encoding::BASE32_NOPAD.encode(seed.as_bytes());
    fobsim()
        .args([
            "code",
            "--key-base32",
            &b32,
            "--algorithm",
            "sha512",
            "--digits",
            "8",
            "--at",
            "20000000000",
        ])
        .assert()
        .success()
        .stdout("47863826\n");
}

#[test]
fn hotp_counter() {
    fobsim()
        .args([
            "code",
            "--key-hex",
            "3132333435363738393031323334353637383930",
            "--counter",
            "9",
        ])
        .assert()
        .success()
        .stdout("520489\n");
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let key = "3132333435363738393031323334353637383930";
    let cases: &[(&[&str], &str)] = &[
        (&["code", "--key-hex", "xyz"], "hex"),
        (&["code", "--key-base32", "1!!"], "base32"),
        (&["code", "--key-hex", key, "--step", "0"], "step"),
        (&["code", "--key-hex", key, "--digits", "11"], "digits"),
        (
            &["code", "--key-hex", key, "--algorithm", "md5"],
            "algorithm",
        ),
        (&["code", "--key-hex", key, "--at", "yesterday"], "time"),
        (
            &["code", "--key-hex", key, "--at", "99999999999999999999"],
            "--at",
        ),
        (
            &["code", "--key-hex", key, "--at", "5", "--t0", "10"],
            "epoch",
        ),
        (&["code"], "key"),
    ];
    for (args, needle) in cases {
        let out = fobsim().args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn models_lists_every_preset() {
    let out = fobsim().args(["models"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for m in fobsim_firmware::PRESETS {
        assert!(text.contains(m.name), "{text}");
    }
    let json = fobsim().args(["models", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), fobsim_firmware::PRESETS.len());
}

#[test]
fn fob_shows_totp_of_its_device_time() {
    // A gaht fob 47 s fast: at true time T it shows the code of T + 47 s.
    let out = fobsim()
        .args([
            "fob",
            "--model",
            "gaht",
            "--seed",
            "7",
            "--offset",
            "47s",
            "--at",
            "2026-01-01T00:00:00Z",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["offset_ms"], 47_000);
    assert_eq!(v["device_time"], "2026-01-01T00:00:47.000Z");
    let t = 1_767_225_600u64 + 47;
    assert_eq!(v["step"], t / 30);
    let model = fobsim_firmware::preset("gaht").unwrap();
    let secret = fobsim_core::derive_secret(7, &model.serial(1).unwrap(), 20).unwrap();
    let totp =
        fobsim_core::Totp::new(fobsim_core::Algorithm::Sha1, secret.expose(), 6, 30, 0).unwrap();
    assert_eq!(v["display"], totp.code_at(t).unwrap().to_string());
}

#[test]
fn fob_bad_input_exits_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["fob", "--serial", "SHORT", "--at", "@0"], "serial"),
        (
            &["fob", "--serial", "GAHT 1234 5678", "--at", "@0"],
            "serial",
        ),
        (&["fob", "--model", "nope", "--at", "@0"], "model"),
        (&["fob", "--at", "tomorrow"], "--at"),
        (&["fob", "--at", "@0", "--offset", "47q"], "--offset"),
        (&["fob", "--at", "@0", "--ppm", "NaN"], "--ppm"),
    ];
    for (args, needle) in cases {
        let out = fobsim().args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
