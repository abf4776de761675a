//! `exec:COMMAND` engines: adapters that break (each a clear `error` cell,
//! the run finishes, nothing left running), oathtool re-done as an external
//! adapter (the same matrix column as the Rust adapter), and the reference
//! adapter with its engine's clock moved by libfaketime (frozen at each
//! `set_time`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::path::{Path, PathBuf};
use std::time::Duration;

use fobsim_engines::cleanup::{self, alive};
use fobsim_engines::{Registry, exec};
use fobsim_harness::adapter::{Capability, Opener as _};
use fobsim_harness::driver::InProcess;
use fobsim_harness::matrix::{self, Cell, Column, Options};
use fobsim_harness::runner::{Runner, ScenarioResult, Verdict};
use fobsim_harness::scenario::Scenario;
use fobsim_harness::suite;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn registry() -> Registry {
    Registry {
        exec: exec::Options {
            hello_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(20),
            exit_grace: Duration::from_secs(1),
        },
        ..Registry::new(1)
    }
}

fn scenarios(ids: &[&str]) -> Vec<Scenario> {
    let all = suite::builtin().unwrap();
    ids.iter()
        .map(|id| {
            all.iter()
                .find(|s| s.id == *id)
                .unwrap_or_else(|| panic!("no scenario {id}"))
                .clone()
        })
        .collect()
}

fn pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn column<'a>(m: &'a matrix::Matrix, name: &str) -> (usize, &'a Column) {
    m.engines
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn cells(m: &matrix::Matrix, i: usize) -> Vec<(&str, &Cell)> {
    m.scenarios
        .iter()
        .map(|r| (r.id.as_str(), &r.cells[i]))
        .collect()
}

#[test]
fn bad_adapters_are_error_cells_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exec/bad_adapter.py");
    let name = |mode: &str, file: &Path| {
        format!(
            "exec:python3 {} {mode} {}",
            script.display(),
            file.display()
        )
    };
    let modes = ["silent", "exits", "garbage", "liar", "hello-garbage"];
    let files: Vec<PathBuf> = modes
        .iter()
        .map(|m| dir.path().join(format!("{m}.pids")))
        .collect();
    let engines: Vec<String> = modes.iter().zip(&files).map(|(m, f)| name(m, f)).collect();
    let sc = scenarios(&[
        "enable-two-consecutive-codes",
        "first-code-after-resync-accepted",
        "prompt-enable-stays-in-sync",
    ]);
    let opts = Options {
        engines: engines.clone(),
        seed: 1,
        sweep: None,
        throughput: 0,
    };
    let (m, _) = matrix::run(&opts, &registry(), &sc, &mut |_, _, _| {}).unwrap();

    let expect_all = |i: usize, needles: &[&str]| {
        for (id, c) in cells(&m, column(&m, &engines[i]).0) {
            assert_eq!(c.result, "error", "{} {id}: {c:?}", modes[i]);
            let d = c.detail.as_deref().unwrap();
            for n in needles {
                assert!(d.contains(n), "{} {id}: {d:?} lacks {n:?}", modes[i]);
            }
        }
    };
    expect_all(
        0,
        &[
            "no answer to enable",
            "within 0.400 s",
            "the adapter was stopped",
            "last lines it sent",
        ],
    );
    expect_all(
        1,
        &["the adapter exited (exit status: 3) before answering enable"],
    );
    expect_all(
        2,
        &[
            "not a protocol answer while answering enable",
            "not JSON",
            "Traceback (most recent call last): KeyError 'who'",
            "log to stderr",
        ],
    );
    // The liar breaks only where it is asked to resync.
    for (id, c) in cells(&m, column(&m, &engines[3]).0) {
        if id == "first-code-after-resync-accepted" {
            assert_eq!(c.result, "error", "{c:?}");
            let d = c.detail.as_deref().unwrap();
            assert!(
                d.contains("the adapter failed on resync")
                    && d.contains("declared capability resync")
                    && d.contains("resync is not implemented yet"),
                "{d}"
            );
        } else {
            assert_ne!(c.result, "error", "{id}: {c:?}");
        }
    }
    // An adapter that cannot even say hello is a setup problem: a column,
    // not an aborted matrix.
    let (_, col) = column(&m, &engines[4]);
    assert_eq!(col.status, "setup-error");
    let problem = col.setup.as_ref().unwrap();
    assert!(
        problem.missing.contains("while answering hello")
            && problem.missing.contains("Welcome to the engine!"),
        "{problem:?}"
    );
    assert!(problem.hint.contains("docs/adapter-protocol.md"));

    // Every scenario started a fresh adapter after the failure of the one
    // before (the first was started by the opener).
    assert_eq!(pids(&files[1]).len(), 2 * sc.len(), "exits");
    // One that answers `error` keeps running: no restart.
    assert_eq!(pids(&files[3]).len(), 2, "liar");
    // Nothing left running: the adapters and what they left in their
    // process groups.
    let registered = cleanup::registered().2;
    for f in &files {
        let list = pids(f);
        assert!(!list.is_empty(), "{} recorded nothing", f.display());
        for pid in list {
            assert!(!alive(pid), "{pid} from {} is still running", f.display());
            assert!(!registered.contains(&pid), "{pid} still registered");
        }
    }
}

#[test]
fn a_missing_command_is_a_setup_problem_with_a_hint() {
    let Err(e) = registry().open("exec:./no-such-adapter --flag") else {
        panic!("opened a missing command");
    };
    let text = e.to_string();
    assert!(
        text.contains("exec:./no-such-adapter --flag") && text.contains("exit status: 127"),
        "{text}"
    );
    assert!(registry().knows("exec:anything"));
    assert!(!registry().knows("exec"));
    let Err(e) = registry().open("exec:  ") else {
        panic!("opened an empty command");
    };
    assert!(e.to_string().contains("exec:COMMAND"), "{e}");
}

fn same_columns(a: &Column, b: &Column) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.setup, b.setup);
    assert_eq!(a.capabilities, b.capabilities);
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.sweep, b.sweep);
}

fn run_all(engine: &mut dyn fobsim_harness::adapter::EngineAdapter) -> Vec<ScenarioResult> {
    let sc = suite::builtin().unwrap();
    let mut fobs = InProcess;
    let mut runner = Runner::new(engine, &mut fobs, 1);
    sc.iter().map(|s| runner.run(s)).collect()
}

#[test]
fn oathtool_through_the_protocol_is_the_same_matrix_column() {
    let ported = format!(
        "exec:python3 {}",
        examples().join("oathtool/adapter.py").display()
    );
    let opts = Options {
        engines: vec!["oathtool".into(), ported.clone()],
        seed: 1,
        sweep: Some(matrix::default_sweep()),
        throughput: 0,
    };
    let all = suite::builtin().unwrap();
    let (m, _) = matrix::run(&opts, &registry(), &all, &mut |_, _, _| {}).unwrap();
    let (i, rust) = column(&m, "oathtool");
    let (j, python) = column(&m, &ported);
    assert_eq!(rust.status, "ran", "{:?}", rust.setup);
    same_columns(rust, python);
    assert!(matches!(rust.sweep, matrix::SweepResult::Map { .. }));
    for row in &m.scenarios {
        let (a, b) = (&row.cells[i], &row.cells[j]);
        assert_eq!((a.result, &a.detail), (b.result, &b.detail), "{}", row.id);
    }
    let s = rust.summary.unwrap();
    assert!(
        s.passed > 10 && s.failed > 10 && s.not_applicable > 10,
        "{s:?}"
    );
    // And the transcripts, step by step.
    let reg = registry();
    let a = run_all(reg.open("oathtool").unwrap().as_mut());
    let b = run_all(reg.open(&ported).unwrap().as_mut());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.verdict, y.verdict, "{}", x.id);
        assert_eq!(x.transcript, y.transcript, "{}", x.id);
    }
}

#[test]
fn the_reference_adapter_under_libfaketime_gives_the_same_transcripts() {
    if let Err(p) = fobsim_engines::peers::libfaketime("exec") {
        panic!("{p}");
    }
    let dir = tempfile::tempdir().unwrap();
    let adapter = examples().join("exec/adapter.py");
    let reg = registry();
    let injected = run_all(
        reg.open(&format!("exec:python3 {}", adapter.display()))
            .unwrap()
            .as_mut(),
    );
    let mut faked = reg
        .open(&format!(
            "exec:python3 {} --faketime-file {}",
            adapter.display(),
            dir.path().join("clock").display()
        ))
        .unwrap();
    assert!(faked.capabilities().contains(&Capability::ObserveLockout));
    let faked = run_all(faked.as_mut());
    let mut na = 0;
    for (x, y) in injected.iter().zip(&faked) {
        assert!(
            matches!(x.verdict, Verdict::Pass | Verdict::NotApplicable { .. }),
            "{}: {:?}",
            x.id,
            x.verdict
        );
        if x.id.starts_with("rfc6238-sha") && x.id.ends_with("-vectors") {
            // Their last vector is in the year 2603: past CPython's clock
            // (nanoseconds in 64 bits end in 2262) once libfaketime moves
            // the real clock there. An error, never a pass.
            assert!(
                matches!(&y.verdict, Verdict::Error { line: 18, message } if message.contains("sign_in")),
                "{:?}",
                y.verdict
            );
        } else {
            // A frozen absolute time: the same transcript, to the millisecond.
            assert_eq!(x.verdict, y.verdict, "{}", x.id);
            assert_eq!(x.transcript, y.transcript, "{}", x.id);
        }
        na += usize::from(matches!(x.verdict, Verdict::NotApplicable { .. }));
    }
    assert!(na > 0 && na < injected.len() / 4, "{na} n/a");
}
