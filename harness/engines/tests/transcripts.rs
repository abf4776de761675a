//! Transcripts: snapshots (insta), determinism, n/a reporting, reports.

use fobsim_engines::builtin::Builtin;
use fobsim_harness::adapter::Capability;
use fobsim_harness::driver::InProcess;
use fobsim_harness::report::Report;
use fobsim_harness::runner::{DEFAULT_SEED, Runner, ScenarioResult, Verdict};
use fobsim_harness::scenario::{Scenario, parse};
use fobsim_harness::suite;
use fobsim_harness::testing::ModelEngine;

fn run_builtin(scenarios: &[Scenario], seed: u64) -> Vec<ScenarioResult> {
    let mut engine = Builtin::in_memory(seed);
    let mut fobs = InProcess;
    let mut runner = Runner::new(&mut engine, &mut fobs, seed);
    scenarios.iter().map(|s| runner.run(s)).collect()
}

fn builtin_scenario(id: &str) -> Scenario {
    suite::builtin()
        .unwrap()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no scenario {id}"))
}

#[test]
fn transcript_snapshots() {
    for id in [
        "late-enable-out-of-sync-then-resync",
        "first-code-after-resync-accepted",
        "root-lost-device-alternative-factors",
        "lockout-after-n-failures",
        "battery-swap-resets-rtc",
        "rfc6238-sha1-vectors",
        "drift-20ppm-fast-1y-weekly-sign-ins",
    ] {
        let r = run_builtin(&[builtin_scenario(id)], DEFAULT_SEED).remove(0);
        assert_eq!(r.verdict, Verdict::Pass, "{id}");
        insta::assert_json_snapshot!(id, r);
    }
}

#[test]
fn failure_report_shows_the_transcript_diff() {
    let text = "scenario qa-repro\nsource bug \"QA ticket\"\ndevice fob1 gaht offset=+47s\nuser alice\n\
                press fob1 as c1\nwait 30s\npress fob1 as c2\nwait 4m\nenable alice fob1 c1 c2 -> ok\n\
                wait 30s\npress fob1 as c3\nsign-in alice c3 -> ok\n";
    let sc = parse("qa.scenario", text).unwrap();
    let results = run_builtin(&[sc], DEFAULT_SEED);
    assert!(matches!(results[0].verdict, Verdict::Fail { line: 12, .. }));
    let report = Report::new("builtin", DEFAULT_SEED, &results);
    assert!(!report.summary.all_passed());
    insta::assert_snapshot!("failure_text", report.text());
}

#[test]
fn failing_repeat_iteration_is_kept_in_the_transcript() {
    // Sign-ins every 20 s: the second one falls in the step of the first (a replay).
    let text = "scenario r\nsource bug \"b\"\ndevice fob1 gaht\nuser alice\n\
                wait 15s\npress fob1 as c1\nwait 30s\npress fob1 as c2\nenable alice fob1 c1 c2 -> ok\n\
                repeat 10\n  wait 20s\n  press fob1 as c\n  sign-in alice c -> ok\nend\n";
    let sc = parse("r.scenario", text).unwrap();
    let r = run_builtin(&[sc], DEFAULT_SEED).remove(0);
    assert!(
        matches!(r.verdict, Verdict::Fail { line: 13, .. }),
        "{:?}",
        r.verdict
    );
    let rep = r.transcript.iter().find(|e| e.step == "repeat 10").unwrap();
    assert_eq!(rep.result, "fail");
    let failing = r.transcript.last().unwrap();
    assert_eq!(failing.result, "fail");
    assert_eq!(failing.iteration.len(), 1);
    assert_eq!(failing.iteration, vec![2]);
    assert_eq!(rep.iterations, Some(1));
    assert_eq!(
        r.transcript.len(),
        5 + 1 + 3,
        "passing iterations are folded"
    );
}

#[test]
fn same_seed_gives_byte_identical_json() {
    let scenarios = suite::builtin().unwrap();
    let a = run_builtin(&scenarios, 42);
    let b = run_builtin(&scenarios, 42);
    let ja = Report::new("builtin", 42, &a).json();
    let jb = Report::new("builtin", 42, &b).json();
    assert_eq!(ja, jb);
    let c = run_builtin(&scenarios, 43);
    assert_ne!(
        ja,
        Report::new("builtin", 43, &c).json(),
        "the seed must change the codes"
    );
    let failed: Vec<&str> = c
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| r.id.as_str())
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn builtin_and_model_agree_on_every_verdict() {
    let scenarios = suite::builtin().unwrap();
    let builtin = run_builtin(&scenarios, DEFAULT_SEED);
    let mut model = ModelEngine::new();
    let mut fobs = InProcess;
    let mut runner = Runner::new(&mut model, &mut fobs, DEFAULT_SEED);
    for (s, b) in scenarios.iter().zip(&builtin) {
        let m = runner.run(s);
        assert_eq!(m.verdict, b.verdict, "{}", s.id);
        let codes = |r: &ScenarioResult| {
            r.transcript
                .iter()
                .map(|e| e.got.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&m), codes(b), "{}", s.id);
    }
}

#[test]
fn missing_capabilities_are_n_a_never_pass() {
    let scenarios = suite::builtin().unwrap();
    let caps: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| {
            !matches!(
                c,
                Capability::RootUser | Capability::RootRecovery | Capability::Settings
            )
        })
        .collect();
    let mut weak = ModelEngine::with_capabilities(&caps);
    let mut fobs = InProcess;
    let mut runner = Runner::new(&mut weak, &mut fobs, DEFAULT_SEED);
    let results: Vec<_> = scenarios.iter().map(|s| runner.run(s)).collect();
    let report = Report::new("weak", DEFAULT_SEED, &results);
    let s = report.summary;
    assert!(s.not_applicable >= 8, "{s:?}");
    assert_eq!(s.failed + s.errors, 0, "{}", report.text());
    assert_eq!(s.passed + s.not_applicable, s.total);
    assert!(!s.all_passed());
    let root = results
        .iter()
        .find(|r| r.id == "root-lost-device-alternative-factors")
        .unwrap();
    assert!(matches!(
        root.verdict,
        Verdict::NotApplicable {
            capability: Capability::RootUser,
            ..
        }
    ));
    let lock = results
        .iter()
        .find(|r| r.id == "lockout-after-n-failures")
        .unwrap();
    assert!(matches!(
        lock.verdict,
        Verdict::NotApplicable {
            capability: Capability::Settings,
            ..
        }
    ));
    let junit = report.junit();
    assert!(junit.contains("skipped=\""), "{junit}");
    assert!(junit.contains("<skipped message=\"n/a: fixtures/scenarios/root-"));
    assert!(report.text().contains("n/a    root-api-enable-refused"));
}

#[test]
fn junit_is_well_formed_xml_with_counts() {
    let text = "scenario bad\nsource bug \"b <&> \\\"q\\\"\"\ndevice fob1 gaht\nuser alice\n\
                press fob1 as c1\nenable alice fob1 c1 c1 -> ok\n";
    let mut scenarios = vec![parse("bad.scenario", text).unwrap()];
    scenarios.push(builtin_scenario("enable-two-consecutive-codes"));
    let results = run_builtin(&scenarios, DEFAULT_SEED);
    let xml = Report::new("builtin", DEFAULT_SEED, &results).junit();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                match e.name().as_ref() {
                    "testcase" => cases += 1,
                    "failure" => failures += 1,
                    _ => {}
                }
            }
            Ok(_) => {}
            Err(e) => panic!("bad XML: {e}\n{xml}"),
        }
    }
    assert_eq!((cases, failures), (2, 1));
    assert!(xml.contains("tests=\"2\" failures=\"1\""));
}

#[test]
fn rfc6238_scenarios_use_the_fixture_vectors() {
    let csv = include_str!("../../../fixtures/vectors/rfc6238.csv");
    let files = suite::builtin_files();
    for alg in ["sha1", "sha256", "sha512"] {
        let (_, text) = files
            .iter()
            .find(|(n, _)| *n == format!("rfc6238-{alg}-vectors.scenario"))
            .unwrap();
        for line in csv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            if f[4].eq_ignore_ascii_case(alg) && f[0] != "59" {
                assert!(text.contains(f[3]), "{alg}: {} missing", f[3]);
            }
        }
    }
}
