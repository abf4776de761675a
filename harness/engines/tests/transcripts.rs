//! Transcripts: snapshots (insta), determinism, n/a reporting, reports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

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
        "server-clock-stepped-back-used-code-stays-used",
        "session-two-access-keys-one-code-in-one-step",
        "eight-digit-code-cut-to-six-boxes-refused",
        "hotp-seed-import-refused",
        "c200-presses-in-one-step-show-the-same-code",
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
    assert!(
        xml.contains("tests=\"2\" skipped=\"0\" failures=\"1\""),
        "{xml}"
    );
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

fn run_on(
    engine: &mut dyn fobsim_harness::adapter::EngineAdapter,
    sc: &Scenario,
) -> ScenarioResult {
    Runner::new(engine, &mut InProcess, DEFAULT_SEED).run(sc)
}

/// Over iam-http the engine's `DeviceLocked` does not come through (the
/// AWS error shape has a code and a message): a step that names it is
/// n/a, with a note on the step saying why; matching what the endpoint
/// does say (its message) judges the same lock.
#[test]
fn iam_http_notes_why_a_finer_kind_cannot_be_judged() {
    use fobsim_engines::iam_http::IamHttp;
    let sc = builtin_scenario("brute-force-distinct-wrong-guesses-lock");
    let r = run_on(&mut IamHttp::new(DEFAULT_SEED), &sc);
    assert!(
        matches!(
            r.verdict,
            Verdict::NotApplicable {
                capability: Capability::ErrorKinds,
                ..
            }
        ),
        "{:?}",
        r.verdict
    );
    let last = r.transcript.last().unwrap();
    assert_eq!(last.result, "n/a");
    assert_eq!(last.iteration, vec![1], "the first guess names the kind");
    assert_eq!(last.got.as_deref(), Some("AccessDenied"));
    insta::assert_json_snapshot!("iam-http-brute-force-note", r);
    let note = last.note.as_deref().unwrap();
    assert!(
        note.contains("DeviceLocked does not come through"),
        "{note}"
    );
    let text = Report::new("iam-http", DEFAULT_SEED, std::slice::from_ref(&r)).text();
    assert!(
        text.contains("note: this engine answers in the AWS error shape"),
        "{text}"
    );
    // The same lock, judged on what the endpoint says.
    let by_message = sc.file.clone();
    let text = suite::builtin_files()
        .iter()
        .find(|(n, _)| by_message.ends_with(n))
        .unwrap()
        .1
        .replace(
            "session alice fob1 wrong -> AccessDenied !DeviceLocked",
            "session alice fob1 wrong -> AccessDenied !~locked",
        )
        .replace(
            "session alice fob1 c3 -> DeviceLocked",
            "session alice fob1 c3 -> AccessDenied ~\"locked\" !~\"invalid MFA\"",
        );
    let sc2 = parse("by-message.scenario", &text).unwrap();
    let r = run_on(&mut IamHttp::new(DEFAULT_SEED), &sc2);
    assert_eq!(
        r.verdict,
        Verdict::Pass,
        "{}",
        Report::new("iam-http", 1, std::slice::from_ref(&r)).text()
    );
    // In-process the kind comes through.
    assert_eq!(run_builtin(&[sc], DEFAULT_SEED)[0].verdict, Verdict::Pass);
}

/// `wrong` codes are seeded (same seed, same codes), differ from guess to
/// guess, and are never a code the fob shows near now; `random` too is
/// seeded.
#[test]
fn wrong_and_random_codes_are_seeded_distinct_guesses() {
    let mut text = String::from(
        "scenario guesses\nsource bug \"kagi #50\"\nsetting lockout_threshold=0\ndevice fob1 gaht\nuser alice\n\
         press fob1 as c1\nwait 30s\npress fob1 as c2\nenable alice fob1 c1 c2 -> ok\nwait 30s\n",
    );
    for _ in 0..40 {
        text.push_str("session alice fob1 wrong -> AccessDenied !DeviceLocked ~\"invalid MFA\"\n");
    }
    text.push_str("session alice fob1 random:8 -> rejected\n");
    let sc = parse("guesses.scenario", &text).unwrap();
    let codes = |r: &ScenarioResult| -> Vec<String> {
        r.transcript
            .iter()
            .flat_map(|e| e.sent.iter())
            .filter_map(|q| match q {
                fobsim_harness::adapter::Request::Session { code, .. } => Some(code.clone()),
                _ => None,
            })
            .collect()
    };
    let a = run_builtin(std::slice::from_ref(&sc), 5).remove(0);
    assert_eq!(a.verdict, Verdict::Pass, "{:?}", a.verdict);
    let b = run_builtin(std::slice::from_ref(&sc), 5).remove(0);
    assert_eq!(codes(&a), codes(&b), "same seed, same guesses");
    let c = run_builtin(std::slice::from_ref(&sc), 6).remove(0);
    assert_ne!(codes(&a), codes(&c), "another seed, other guesses");
    let guesses = codes(&a);
    assert_eq!(guesses.len(), 41);
    assert_eq!(guesses[40].len(), 8, "random:8");
    let wrong = &guesses[..40];
    let distinct: std::collections::HashSet<&String> = wrong.iter().collect();
    assert_eq!(distinct.len(), 40, "{wrong:?}");
    assert!(
        wrong
            .iter()
            .all(|g| g.len() == 6 && g.bytes().all(|b| b.is_ascii_digit()))
    );
    // None of them is a code the fob shows within the guard.
    let spec = fobsim_harness::runner::device_spec(&sc.devices[0], 5, sc.start).unwrap();
    let totp =
        fobsim_core::Totp::new(spec.model.algorithm, spec.secret.expose(), 6, 30, 0).unwrap();
    let now = sc.start.as_secs() / 30 + 2;
    for step in now - 30..=now + 30 {
        let code = totp.code_for_step(step).to_string();
        assert!(!wrong.contains(&code), "{code} of step {step} was guessed");
    }
}

/// The engine's clock (`clock server`) is what requests are judged at,
/// and the transcript says so; the fobs keep true time.
#[test]
fn the_server_clock_is_recorded_and_sent() {
    let r = run_builtin(
        &[builtin_scenario(
            "server-clock-stepped-back-used-code-stays-used",
        )],
        DEFAULT_SEED,
    )
    .remove(0);
    let step = |text: &str| {
        r.transcript
            .iter()
            .find(|e| e.step.starts_with(text))
            .unwrap_or_else(|| panic!("no step {text}"))
    };
    let back = step("clock server -1m");
    assert_eq!(back.clock, "2026-01-01T00:01:30.000Z");
    assert_eq!(
        back.server_clock.as_deref(),
        Some("2026-01-01T00:00:30.000Z")
    );
    let replay = step("session alice fob1 c3 -> AccessDenied");
    assert_eq!(
        replay.server_clock.as_deref(),
        Some("2026-01-01T00:00:30.000Z")
    );
    let reset = step("clock server reset");
    assert_eq!(reset.server_clock.as_deref(), Some(reset.clock.as_str()));
    let fresh = step("session alice fob1 c4");
    assert_eq!(fresh.server_clock, None, "no offset, no server clock");
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"server_clock\":\"2026-01-01T00:00:30.000Z\""));
}

/// Refined outcomes: `!NAME` refuses that code or kind, `~"TEXT"` needs
/// the message to contain it (case ignored), `!~"TEXT"` not.
#[test]
fn refined_outcomes_judge_code_kind_and_message() {
    let head = "scenario o\nsource bug \"b\"\nsetting lockout_threshold=1\ndevice fob1 gaht\ndevice other gaht\nuser alice\n\
                press fob1 as c1\nwait 30s\npress fob1 as c2\nenable alice fob1 c1 c2 -> ok\nwait 30s\npress other as x\n";
    let run = |tail: &str| {
        let sc = parse("o.scenario", &format!("{head}{tail}")).unwrap();
        run_builtin(&[sc], DEFAULT_SEED).remove(0).verdict
    };
    let pass = |tail: &str| assert_eq!(run(tail), Verdict::Pass, "{tail}");
    let fail = |tail: &str| assert!(matches!(run(tail), Verdict::Fail { .. }), "{tail}");
    pass("sign-in alice x -> AccessDenied !DeviceLocked ~\"INVALID mfa\" !~locked\n");
    pass("sign-in alice x -> rejected !ValidationError\n");
    fail("sign-in alice x -> AccessDenied !~\"invalid MFA\"\n");
    fail("sign-in alice x -> rejected !AccessDenied\n");
    fail("sign-in alice x -> AccessDenied ~\"locked\"\n");
    // The one failure locked (threshold 1): the lock is DeviceLocked.
    pass("sign-in alice x -> AccessDenied\nsign-in alice x -> AccessDenied ~locked\n");
    fail("sign-in alice x -> AccessDenied\nsign-in alice x -> AccessDenied !DeviceLocked\n");
    pass("sign-in alice x -> AccessDenied\nsign-in alice x -> DeviceLocked\n");
    let sc = parse(
        "o.scenario",
        &format!("{head}sign-in alice x -> AccessDenied !~\"invalid MFA\"\n"),
    )
    .unwrap();
    let r = run_builtin(&[sc], DEFAULT_SEED).remove(0);
    let last = r.transcript.last().unwrap();
    assert_eq!(
        last.expected.as_deref(),
        Some("AccessDenied !~\"invalid MFA\"")
    );
    assert_eq!(
        last.got.as_deref(),
        Some(
            "AccessDenied \"MultiFactorAuthentication failed with invalid MFA one time pass code.\""
        )
    );
}

/// An engine without a notion of access keys is n/a for a second key,
/// never a pass.
#[test]
fn a_second_access_key_is_n_a_without_the_capability() {
    let caps: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::AccessKeys)
        .collect();
    let mut weak = ModelEngine::with_capabilities(&caps);
    let sc = builtin_scenario("session-two-access-keys-one-code-in-one-step");
    let r = run_on(&mut weak, &sc);
    assert!(
        matches!(
            r.verdict,
            Verdict::NotApplicable {
                capability: Capability::AccessKeys,
                line: 18
            }
        ),
        "{:?}",
        r.verdict
    );
    let mut weak = ModelEngine::with_capabilities(
        &Capability::ALL
            .into_iter()
            .filter(|c| *c != Capability::Import)
            .collect::<Vec<_>>(),
    );
    let r = run_on(&mut weak, &builtin_scenario("hotp-seed-import-refused"));
    assert!(matches!(
        r.verdict,
        Verdict::NotApplicable {
            capability: Capability::Import,
            ..
        }
    ));
}

/// Every scenario example in docs/scenarios.md parses and passes on the
/// built-in engine, as written; an example marked `<!-- run over iam-http
/// too -->` passes over iam-http as well; the one marked `<!--
/// bad.scenario -->` is the bad input `tests/harness_cli.rs` runs.
#[test]
fn the_scenario_examples_in_the_docs_pass() {
    use fobsim_engines::iam_http::IamHttp;
    let doc = include_str!("../../../docs/scenarios.md");
    let (mut examples, mut over_http) = (0, 0);
    let mut in_block = false;
    let mut block = String::new();
    let mut marker = "";
    let mut previous = "";
    for line in doc.lines() {
        if line.starts_with("```") {
            if !in_block {
                marker = previous;
            } else if block.lines().any(|l| l.starts_with("scenario "))
                && marker != "<!-- bad.scenario -->"
            {
                let sc =
                    parse("docs/scenarios.md", &block).unwrap_or_else(|e| panic!("{e}\n{block}"));
                let r = run_builtin(std::slice::from_ref(&sc), DEFAULT_SEED).remove(0);
                assert_eq!(
                    r.verdict,
                    Verdict::Pass,
                    "{}",
                    Report::new("builtin", 1, std::slice::from_ref(&r)).text()
                );
                examples += 1;
                if marker == "<!-- run over iam-http too -->" {
                    let r = run_on(&mut IamHttp::new(DEFAULT_SEED), &sc);
                    assert_eq!(
                        r.verdict,
                        Verdict::Pass,
                        "{}",
                        Report::new("iam-http", 1, std::slice::from_ref(&r)).text()
                    );
                    over_http += 1;
                }
            }
            in_block = !in_block;
            block.clear();
            continue;
        }
        if in_block {
            block.push_str(line);
            block.push('\n');
        } else if !line.trim().is_empty() {
            previous = line;
        }
    }
    assert!(examples >= 11, "{examples} examples");
    assert_eq!(over_http, 1);
}
