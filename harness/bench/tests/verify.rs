//! The `verify` group drives every server it measures to completion: our
//! AWS Query server over HTTP (SQLite and memory) and privacyIDEA (started
//! by `fobsim_engines::privacyidea::Server`), every request answered and
//! accepted. No timed assertions: the numbers are the table's business.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_bench::{Group, Options, Report, Row};

fn row<'a>(report: &'a Report, id: &str) -> &'a Row {
    report
        .rows
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("row {id} missing: {:#?}", report.rows))
}

fn measured(r: &Row) -> f64 {
    let v = r
        .value
        .unwrap_or_else(|| panic!("{}: not measured: {}", r.id, r.note));
    assert!(v.is_finite() && v > 0.0, "{}: {v}", r.id);
    v
}

#[test]
fn quick_verify_measures_our_server_and_privacyidea() {
    let mut o = Options::new(true);
    o.only = vec![Group::Verify];
    o.concurrency = 4;
    let report = fobsim_bench::run(&o).expect("bench runs");
    assert_eq!(report.groups, vec![Group::Verify]);
    for store in ["sqlite", "memory"] {
        let r = row(&report, &format!("verify.http.{store}"));
        measured(r);
        assert_eq!(r.unit, "requests/s");
        assert!(r.p50_us.is_some() && r.p99_us.is_some(), "{r:?}");
        assert!(
            r.note
                .starts_with("400 requests (200 users × 2 steps), 4 keep-alive connections"),
            "{}",
            r.note
        );
        assert!(r.note.contains("; 0 non-200;"), "{}", r.note);
    }
    // The same SQLite server with twice the connections (what the
    // PostgreSQL `.wide` row is compared with).
    let wide = row(&report, "verify.http.sqlite.wide");
    measured(wide);
    assert!(
        wide.note
            .starts_with("400 requests (200 users × 2 steps), 8 keep-alive connections"),
        "{}",
        wide.note
    );
    assert!(wide.note.contains("; 0 non-200;"), "{}", wide.note);
    measured(row(&report, "verify.cpu.http.sqlite.wide"));
    let pi = row(&report, "verify.privacyidea");
    measured(pi);
    assert!(
        pi.note
            .starts_with("24 timed requests after 8 untimed warm-up"),
        "{}",
        pi.note
    );
    assert!(pi.note.contains("; 0 not accepted;"), "{}", pi.note);
    measured(row(&report, "verify.cpu.privacyidea"));
    assert!(
        report
            .ratios
            .iter()
            .any(|r| r.ours == "verify.http.sqlite" && r.peer == "verify.privacyidea")
    );
}
