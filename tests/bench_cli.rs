//! `fobsim bench`: the run completes and prints a well-formed table and
//! JSON. No timed assertions: numbers go in the table, never in pass/fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use assert_cmd::Command;
use fobsim_bench::{Group, Options};

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

fn quick_otp() -> Options {
    let mut o = Options::new(true);
    o.only = vec![Group::Otp];
    o.peers = false;
    o
}

#[test]
fn library_quick_otp_is_well_formed() {
    let report = fobsim_bench::run(&quick_otp()).expect("bench runs");
    assert!(report.quick);
    assert_eq!(report.groups, vec![Group::Otp]);
    for alg in ["sha1", "sha256", "sha512"] {
        for who in ["fobsim", "fobsim-batch", "totp-rs"] {
            let id = format!("otp.{alg}.{who}");
            let row = report
                .rows
                .iter()
                .find(|r| r.id == id)
                .unwrap_or_else(|| panic!("row {id} missing"));
            let v = row.value.expect("measured");
            assert!(v.is_finite() && v > 0.0, "{id}: {v}");
            assert_eq!(row.unit, "codes/s");
        }
    }
    // Ratios to totp-rs exist; the OTP target is listed (met or not).
    assert!(
        report
            .ratios
            .iter()
            .any(|r| r.ours == "otp.sha1.fobsim" && r.peer == "otp.sha1.totp-rs")
    );
    assert!(report.targets.iter().any(|t| t.what.contains("totp-rs")));
    let md = report.markdown();
    assert!(md.contains("| group | what | value | unit | p50 | p99 | notes |"));
    assert!(md.contains("--quick"));
    assert!(md.contains("totp-rs TOTP::generate sha1"));
    let json = serde_json::to_value(&report).expect("serializes");
    assert!(json["rows"].as_array().is_some_and(|a| a.len() >= 9));
    assert!(json["machine"]["logical_cpus"].as_u64().is_some());
}

#[test]
fn missing_peers_are_rows_not_failures() {
    let mut o = quick_otp();
    o.peers = true;
    o.pyotp_python = "/nonexistent/python".into();
    o.oathtool = "/nonexistent/oathtool".into();
    let report = fobsim_bench::run(&o).expect("bench runs");
    for id in [
        "otp.sha1.pyotp",
        "otp.sha1.oathtool-process",
        "otp.sha1.oathtool-code",
    ] {
        let row = report.rows.iter().find(|r| r.id == id).expect(id);
        assert!(row.value.is_none(), "{id}");
        assert!(!row.note.is_empty(), "{id} says why");
    }
    assert!(report.markdown().contains("not measured"));
}

/// `fobsim bench --quick --only otp --no-peers --json` from the outside.
#[test]
fn cli_quick_otp_json() {
    let out = fobsim()
        .args(["bench", "--quick", "--only", "otp", "--no-peers", "--json"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["quick"], true);
    assert_eq!(v["groups"], serde_json::json!(["otp"]));
    assert!(
        v["rows"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["id"] == "otp.sha1.fobsim"))
    );

    let out = fobsim()
        .args([
            "bench",
            "--quick",
            "--only",
            "otp",
            "--no-peers",
            "--silent",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| group | what | value | unit | p50 | p99 | notes |"));

    fobsim().args(["bench", "--only", "nope"]).assert().code(2);
}

/// The PostgreSQL rows of `fobsim bench --only verify` (docs/PERFORMANCE.md,
/// docs/deploy.md): GetSessionToken over HTTP on 1, 2 and 3 replicas and
/// without the commit flush, each measured (a server the bench starts),
/// every request answered 200, CPU and transactions per request given.
#[test]
fn cli_quick_verify_measures_postgres_replicas() {
    let out = fobsim()
        .args([
            "bench",
            "--quick",
            "--only",
            "verify",
            "--no-peers",
            "--json",
            "--silent",
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rows = v["rows"].as_array().expect("rows");
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("row {id} missing"))
    };
    for id in [
        "verify.http.postgres.r1",
        "verify.http.postgres.r2",
        "verify.http.postgres.r3",
        "verify.http.postgres.r1.wide",
        "verify.http.postgres.r1.async",
    ] {
        let r = row(id);
        assert!(r["value"].as_f64().is_some_and(|x| x > 0.0), "{r}");
        let note = r["note"].as_str().unwrap();
        assert!(note.contains("; 0 non-200;"), "{id}: {note}");
        assert!(
            note.contains(" database transactions and ")
                && note.contains(" WAL flushes per request, "),
            "{note}"
        );
        assert!(!note.contains("? database transactions"), "{note}");
        assert!(!note.contains("? WAL flushes"), "{note}");
        let cpu = row(&id.replace("verify.http.", "verify.cpu.http."));
        assert!(cpu["value"].as_f64().is_some_and(|x| x > 0.0), "{cpu}");
    }
}

/// `fobsim bench --only console` (docs/PERFORMANCE.md): full console
/// sign-ins (password, then MFA code) over HTTP at both password costs,
/// from one connection and from several, every one signed in.
#[test]
fn cli_quick_console_signs_in() {
    let out = fobsim()
        .args([
            "bench",
            "--quick",
            "--only",
            "console",
            "--no-peers",
            "--json",
            "--silent",
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["groups"], serde_json::json!(["console"]));
    let rows = v["rows"].as_array().expect("rows");
    for id in [
        "console.signin.owasp.c1",
        "console.signin.owasp.c2",
        "console.signin.cheap.c1",
        "console.signin.cheap.c8",
    ] {
        let r = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("row {id} missing: {rows:?}"));
        assert!(r["value"].as_f64().is_some_and(|x| x > 0.0), "{r}");
        assert_eq!(r["unit"], "sign-ins/s", "{r}");
        assert!(r["p50_us"].as_f64().is_some_and(|x| x > 0.0), "{r}");
        let note = r["note"].as_str().unwrap();
        assert!(note.contains("; 0 failed;"), "{id}: {note}");
        assert!(note.contains("HTTP requests/s (5 per sign-in)"), "{note}");
    }
}
