//! `fobsim run --engine console` from the outside, as docs/console.md shows
//! it: the setup script, one scenario in the browser, a missing driver.
//! Needs `chromium` and `chromedriver` (`bash tests/browser/setup.sh`):
//! without them these tests fail, they are never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use assert_cmd::Command;

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_setup_script_finds_or_installs_the_browser() {
    let out = std::process::Command::new("bash")
        .arg("tests/browser/setup.sh")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn one_scenario_runs_in_the_browser_as_the_docs_show() {
    // docs/console.md: fobsim run --engine console --only root-lost-device-alternative-factors
    let out = fobsim()
        .current_dir(repo())
        .args([
            "run",
            "--engine",
            "console",
            "--only",
            "root-lost-device-alternative-factors",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("pass   root-lost-device-alternative-factors"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 scenarios against console (seed 1): 1 passed, 0 failed, 0 n/a, 0 errors"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
fn a_console_scenario_in_json_has_the_pages_in_its_trace() {
    let out = fobsim()
        .args([
            "run",
            "--engine",
            "console",
            "--only",
            "root-recovery-wrong-codes",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let traces: Vec<String> = v["scenarios"][0]["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["trace"].as_array().cloned().unwrap_or_default())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let all = traces.join("\n");
    assert!(all.contains("clicked a#alt-factors → recovery"), "{all}");
    assert!(
        all.contains("form#recovery-phone-form: typed phone_code=\"000000\""),
        "{all}"
    );
    assert!(all.contains("#error[data-code=AccessDenied]"), "{all}");
    assert!(!all.contains("Root-Password"), "{all}");
}

#[test]
fn a_missing_driver_is_a_setup_problem_with_the_install_hint() {
    let out = fobsim()
        .env("FOBSIM_CHROMEDRIVER", "/nonexistent/chromedriver")
        .args([
            "run",
            "--engine",
            "console",
            "--only",
            "root-console-enable-works",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "console: setup problem: FOBSIM_CHROMEDRIVER=/nonexistent/chromedriver is not a file"
        ),
        "{err}"
    );
    assert!(
        err.contains("apt-get install chromium chromium-driver"),
        "{err}"
    );
}

/// The whole suite in the browser (docs/console.md: `fobsim run --engine
/// console`) takes minutes — every sign-in is three pages, and one
/// scenario signs in daily for a year — so CI runs it as a step of its own
/// (exit 0 with --allow-na: nothing failed; the `n/a` are the scenarios that
/// name a finer kind of refusal on a session, which the API does not carry),
/// not cargo test.
#[test]
fn the_whole_suite_in_the_browser_is_a_ci_step() {
    let doc = std::fs::read_to_string(repo().join("docs/console.md")).unwrap();
    assert!(
        doc.contains("$ fobsim run --engine console --allow-na "),
        "docs/console.md"
    );
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines()
            .any(|l| l.trim() == "cargo run --locked --quiet -- run --engine console --allow-na"),
        ".ci/run does not run the console suite"
    );
}
