//! `fobsim run --store postgres://…`: the suite on PostgreSQL, through
//! the built-in engine in-process and through `fobsim serve`'s HTTP face
//! (`--engine iam-http`), each scenario on a fresh schema of a real
//! server this test starts. The transcripts are the in-memory store's,
//! byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::process::Command;

use fobsim_engine::testing::postgres as pg;

fn run(engine: &str, store: &str) -> (bool, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fobsim"))
        .args([
            "run",
            "--engine",
            engine,
            "--store",
            store,
            "--format",
            "json",
            "--allow-na",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn same_suite_on_postgres(engine: &str, db: &str) {
    let server = pg::shared().unwrap_or_else(|e| panic!("{e}"));
    let url = server.database(db).unwrap();
    let (ok, on_pg, err) = run(engine, &url);
    let v: serde_json::Value = serde_json::from_slice(&on_pg).unwrap_or_default();
    let failed: Vec<String> = v["scenarios"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["outcome"] != "pass")
                .map(ToString::to_string)
                .take(3)
                .collect()
        })
        .unwrap_or_default();
    assert!(
        ok,
        "{engine} on PostgreSQL: {err} {} {failed:?}",
        v["summary"]
    );
    assert!(!err.contains("panicked"), "{engine} on PostgreSQL: {err}");
    let (ok, in_memory, err) = run(engine, "memory");
    assert!(ok, "{engine} in memory: {err}");
    let v: serde_json::Value = serde_json::from_slice(&on_pg).unwrap();
    assert_eq!(v["summary"]["failed"], 0, "{}", v["summary"]);
    assert!(v["summary"]["passed"].as_u64().unwrap() > 40);
    assert!(
        on_pg == in_memory,
        "{engine}: the transcript on PostgreSQL differs from the in-memory one"
    );
    // Every scenario's schema was dropped after it.
    let mut c = server.admin(db).unwrap();
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'fobsim_run_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn the_suite_passes_over_http_on_postgres() {
    same_suite_on_postgres("iam-http", "store_iam_http");
}

#[test]
fn the_suite_passes_in_process_on_postgres() {
    same_suite_on_postgres("builtin", "store_builtin");
}

#[test]
fn a_store_that_is_neither_a_name_nor_a_url_is_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_fobsim"))
        .args(["run", "--store", "mysql://x/y"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expected memory, sqlite or a postgres:// URL"),
        "{err}"
    );
}
