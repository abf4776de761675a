//! What the exec adapter protocol costs: the built-in suite through
//! `exec:` vs in-process for the same engine (fobsim's own, served over the
//! protocol by this very binary), and one request's round trip. Numbers in
//! docs/PERFORMANCE.md ("The exec adapter protocol").
//!
//! `cargo bench -p fobsim-engines --bench exec`. Run with
//! `FOBSIM_BENCH_EXEC_SERVE=1` this binary is the adapter: the built-in
//! engine behind `fobsim_engines::exec::serve` on stdin/stdout (what
//! `fobsim adapter --engine builtin` does).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use fobsim_core::{Principal, Timestamp};
use fobsim_engines::builtin::Builtin;
use fobsim_engines::exec::{self, Exec};
use fobsim_harness::adapter::{Account, EngineAdapter, Request, Setup, user_password};
use fobsim_harness::driver::InProcess;
use fobsim_harness::runner::{DEFAULT_SEED, Runner, Verdict};
use fobsim_harness::scenario::Scenario;
use fobsim_harness::suite;

const SERVE: &str = "FOBSIM_BENCH_EXEC_SERVE";

fn run_suite(engine: &mut dyn EngineAdapter, scenarios: &[Scenario]) -> usize {
    let mut fobs = InProcess;
    let mut runner = Runner::new(engine, &mut fobs, DEFAULT_SEED);
    let passed = scenarios
        .iter()
        .filter(|s| runner.run(s).verdict == Verdict::Pass)
        .count();
    assert_eq!(passed, scenarios.len(), "the suite must pass both ways");
    passed
}

fn exec_builtin() -> Exec {
    let me = std::env::current_exe().expect("the bench binary's path");
    let command = format!("{SERVE}=1 exec '{}'", me.display());
    Exec::open(&command, exec::Options::default()).expect("the bench binary serves the protocol")
}

fn setup() -> Setup {
    Setup {
        scenario: "bench".into(),
        account: Account::default(),
        users: vec![("alice".into(), user_password("alice"))],
        access_keys: Vec::new(),
        seeds: Vec::new(),
        settings: Vec::new(),
        start: Timestamp::from_secs(1_767_225_600),
    }
}

fn suite(c: &mut Criterion) {
    let scenarios = suite::builtin().expect("the built-in suite parses");
    let mut g = c.benchmark_group("exec/suite");
    g.sample_size(10);
    g.throughput(Throughput::Elements(scenarios.len() as u64));
    g.bench_function("in-process builtin", |b| {
        b.iter(|| run_suite(&mut Builtin::in_memory(DEFAULT_SEED), &scenarios));
    });
    let mut exec = exec_builtin();
    let before = exec.messages();
    run_suite(&mut exec, &scenarios);
    eprintln!(
        "exec/suite: {} protocol messages per run of the {} scenarios",
        exec.messages() - before,
        scenarios.len()
    );
    g.bench_function("exec: builtin (fobsim_engines::exec::serve)", |b| {
        b.iter(|| run_suite(&mut exec, &scenarios));
    });
    g.finish();
}

fn request(c: &mut Criterion) {
    let who = Principal::user("alice");
    let list = Request::ListDevices { who };
    let t0 = Timestamp::from_secs(1_767_225_600);
    let mut g = c.benchmark_group("exec/request");
    g.measurement_time(Duration::from_secs(5));
    let mut inproc = Builtin::in_memory(DEFAULT_SEED);
    inproc.begin(&setup()).expect("begin");
    g.bench_function("in-process list_devices", |b| {
        b.iter(|| inproc.call(t0, &list).expect("call"));
    });
    let mut exec = exec_builtin();
    exec.begin(&setup()).expect("begin");
    g.bench_function("exec: list_devices (1 message)", |b| {
        b.iter(|| exec.call(t0, &list).expect("call"));
    });
    let mut ms = 0u64;
    g.bench_function(
        "exec: list_devices at a new time (set_time + op: 2 messages)",
        |b| {
            b.iter_batched(
                || {
                    ms += 1;
                    t0.add_millis(i64::try_from(ms).unwrap_or(i64::MAX))
                },
                |t| exec.call(t, &list).expect("call"),
                BatchSize::SmallInput,
            );
        },
    );
    g.finish();
}

fn main() {
    if std::env::var_os(SERVE).is_some() {
        let mut engine = Builtin::in_memory(DEFAULT_SEED);
        let stdin = std::io::stdin().lock();
        let stdout = std::io::stdout().lock();
        exec::serve(&mut engine, stdin, stdout).expect("serving the protocol");
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    suite(&mut c);
    request(&mut c);
    c.final_summary();
}
