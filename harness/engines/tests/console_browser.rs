#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly
//! The `console` adapter in headless Chromium: console scenarios pass with
//! the built-in engine's verdicts and answers, the transcript says which
//! pages were used, and the browser is gone after the adapter. Needs
//! `chromium` and `chromedriver` (`bash tests/browser/setup.sh`): without
//! them these tests fail, they are never skipped.

use fobsim_engines::builtin::Builtin;
use fobsim_engines::cleanup;
use fobsim_engines::console::ConsoleAdapter;
use fobsim_engines::{Registry, StoreKind};
use fobsim_harness::adapter::{Answer, Opener};
use fobsim_harness::driver::InProcess;
use fobsim_harness::runner::{DEFAULT_SEED, Runner, ScenarioResult, Verdict};
use fobsim_harness::suite;

/// Scenarios that need the console: root enable, sign-ins, recovery, the
/// wizard's refusals, a resync in the console, a replay across console
/// and API, a lockout observed.
const CONSOLE_SCENARIOS: [&str; 9] = [
    "root-console-enable-works",
    "root-lost-device-alternative-factors",
    "root-recovery-wrong-codes",
    "sign-in-needs-code-once-enabled",
    "enable-device-assigned-to-another-user",
    "enable-malformed-codes",
    "late-enable-out-of-sync-then-resync",
    "replay-across-console-and-session",
    "lockout-after-n-failures",
];

fn open() -> ConsoleAdapter {
    match ConsoleAdapter::new(StoreKind::Memory, DEFAULT_SEED) {
        Ok(a) => a,
        Err(e) => panic!("{e} (run `bash tests/browser/setup.sh` as root)"),
    }
}

/// Every answer, in order (what the engine said, without the trace).
fn answers(r: &ScenarioResult) -> Vec<Answer> {
    r.transcript
        .iter()
        .flat_map(|e| e.answered.iter().cloned())
        .collect()
}

#[test]
fn console_scenarios_pass_with_the_builtin_engines_answers() {
    let scenarios = suite::builtin().unwrap();
    let mut console = open();
    let mut builtin = Builtin::in_memory(DEFAULT_SEED);
    for id in CONSOLE_SCENARIOS {
        let sc = scenarios
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id} is not in the suite"));
        let b = Runner::new(&mut builtin, &mut InProcess, DEFAULT_SEED).run(sc);
        let c = Runner::new(&mut console, &mut InProcess, DEFAULT_SEED).run(sc);
        assert_eq!(c.verdict, Verdict::Pass, "{id}: {:#?}", c.transcript);
        assert_eq!(b.verdict, Verdict::Pass, "{id} on builtin");
        // Same codes, kinds (`data-kind`) and messages.
        let want: Vec<Answer> = answers(&b);
        assert_eq!(answers(&c), want, "{id}: answers differ from builtin's");
        // The console's pages said it: every console request has a trace.
        assert!(
            c.transcript
                .iter()
                .any(|e| e.trace.iter().any(|t| t.contains("/console/"))),
            "{id}: no page in the trace"
        );
    }
}

#[test]
fn the_transcript_says_what_was_typed_and_what_the_page_answered() {
    let sc = suite::builtin()
        .unwrap()
        .into_iter()
        .find(|s| s.id == "sign-in-needs-code-once-enabled")
        .unwrap();
    let mut console = open();
    let r = Runner::new(&mut console, &mut InProcess, DEFAULT_SEED).run(&sc);
    assert_eq!(r.verdict, Verdict::Pass);
    let all: Vec<&String> = r.transcript.iter().flat_map(|e| &e.trace).collect();
    let has = |needle: &str| all.iter().any(|t| t.contains(needle));
    assert!(
        has("form#assign-mfa-form: typed serial=\"GAHT00000001\""),
        "{all:#?}"
    );
    assert!(
        has("clicked #assign-mfa → security-credentials"),
        "{all:#?}"
    );
    assert!(
        has("#notice \"The MFA device GAHT00000001 is assigned.\""),
        "{all:#?}"
    );
    assert!(
        has("#error[data-code=AccessDenied] \"Your authentication information is incorrect."),
        "{all:#?}"
    );
    assert!(has("password=(a wrong password)"), "{all:#?}");
    assert!(has("→ signin-mfa (/console/signin/mfa, 200)"), "{all:#?}");
    assert!(has("form#mfa-form: typed code="), "{all:#?}");
    // Never the password itself.
    assert!(!all.iter().any(|t| t.contains("Pw-alice")), "{all:#?}");
    // The JSON report carries it (deterministic: no ports, no times).
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"trace\":["));
    assert!(!json.contains("127.0.0.1"));
}

#[test]
fn the_registry_opens_console_and_the_browser_goes_with_the_adapter() {
    let registry = Registry::new(DEFAULT_SEED);
    assert!(registry.knows("console"));
    let adapter = registry.open("console").unwrap();
    assert_eq!(adapter.name(), "console");
    drop(adapter);
    let console = open();
    let pid = console.browser().driver_pid();
    let dir = console.browser().dir().to_path_buf();
    assert!(cleanup::alive(pid));
    assert!(cleanup::registered().2.contains(&pid));
    drop(console);
    assert!(!cleanup::alive(pid), "chromedriver {pid} still runs");
    assert!(!cleanup::registered().2.contains(&pid));
    assert!(!dir.exists(), "{} is left", dir.display());
    // No browser of that driver is left either (its process group).
    assert!(
        !cleanup::group_alive(pid),
        "a process of group {pid} still runs"
    );
}
