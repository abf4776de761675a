//! `fobsim run` and `fobsim sweep` from the outside: the built-in suite
//! from any directory, exit codes 0/1/2, report formats.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use assert_cmd::Command;

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

#[test]
fn run_without_arguments_runs_the_builtin_suite_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = fobsim()
        .current_dir(dir.path())
        .arg("run")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("pass   enable-two-consecutive-codes"),
        "{text}"
    );
    let failing: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("ERROR") || l.starts_with("n/a"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(failing.is_empty(), "{text}");
    // Exit 0: every expectation held.
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
fn the_model_engine_passes_the_whole_suite() {
    fobsim()
        .args(["run", "--engine", "model"])
        .assert()
        .success();
}

#[test]
fn json_is_byte_identical_across_runs() {
    let a = fobsim()
        .args(["run", "--format", "json", "--seed", "9"])
        .output()
        .unwrap();
    let b = fobsim()
        .args(["run", "--format", "json", "--seed", "9"])
        .output()
        .unwrap();
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["summary"]["failed"].as_u64(), Some(0));
    assert!(v["scenarios"].as_array().unwrap().len() >= 40);
}

#[test]
fn junit_goes_to_the_out_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xml");
    fobsim()
        .args(["run", "--engine", "model", "--format", "junit", "--out"])
        .arg(&path)
        .assert()
        .success();
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert!(xml.contains("failures=\"0\""));
}

#[test]
fn a_failing_expectation_exits_1_with_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("wrong.scenario");
    std::fs::write(
        &f,
        "scenario wrong\nsource bug \"b\"\ndevice fob1 gaht\nuser alice\npress fob1 as c1\nwait 30s\npress fob1 as c2\nenable alice fob1 c1 c2 -> LimitExceeded\n",
    )
    .unwrap();
    let out = fobsim().arg("run").arg(&f).assert().code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("FAIL   wrong"), "{text}");
    assert!(text.contains("-        expected: LimitExceeded"), "{text}");
    assert!(text.contains("+        got:      ok"), "{text}");
}

#[test]
fn a_malformed_file_exits_2_with_file_line_col_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.scenario");
    std::fs::write(
        &f,
        "scenario bad\nsource bug \"b\"\ndevice fob1 gaht\nwait 3 parsecs\n",
    )
    .unwrap();
    let out = fobsim().arg("run").arg(&f).assert().code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("bad.scenario:4:8: expected the end of the line"),
        "{err}"
    );
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn unknown_engine_is_bad_input() {
    fobsim().args(["run", "--engine", "nope"]).assert().code(2);
}

#[test]
fn sweep_writes_an_svg_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("map.svg");
    let out = fobsim()
        .args(["sweep", "--x-max", "2m", "--y-max", "1m", "--out"])
        .arg(&svg)
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("45 cells:"), "{text}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn the_sqlite_store_runs_scenarios_too() {
    let out = fobsim()
        .args([
            "run",
            "--store",
            "sqlite",
            "--only",
            "late-enable",
            "--format",
            "json",
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    // The console and the API variants of the seed's late-enable warning.
    assert_eq!(v["summary"]["passed"], 2);
    assert_eq!(v["summary"]["total"], 2);
}

#[test]
fn list_names_every_scenario_and_its_source() {
    let out = fobsim().args(["run", "--list"]).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.lines().count() >= 40);
    assert!(text.lines().all(|l| l.contains("  [")), "{text}");
}

/// docs/scenarios.md's pre-run checks, as written: the bad file, then each
/// `$` command of the console block after it run by `sh` in a temp folder
/// with this build's `fobsim` first on `PATH`, its output (stderr and
/// stdout together) as the doc shows it. An unknown outcome and a setting
/// the engine refuses are `file:line:col` errors with exit status 2, before
/// anything runs.
#[test]
fn the_docs_pre_run_checks_hold_as_written() {
    let doc = include_str!("../docs/scenarios.md");
    let after = doc
        .split_once("<!-- bad.scenario -->\n```text\n")
        .expect("the bad.scenario marker")
        .1;
    let (file, rest) = after.split_once("```\n").unwrap();
    let console = rest
        .split_once("```console\n")
        .unwrap()
        .1
        .split_once("```\n")
        .unwrap()
        .0;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.scenario"), file).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("fobsim");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut commands: Vec<(String, String)> = Vec::new();
    for line in console.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => commands.push((cmd.to_string(), String::new())),
            None => {
                let (_, out) = commands.last_mut().expect("output after a command");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert_eq!(commands.len(), 3);
    for (cmd, want) in commands {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{{ {cmd}; }} 2>&1"))
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{cmd}");
    }
}

/// `fobsim matrix` runs the registry's default engines when none are given.
#[test]
fn the_matrix_default_engines_are_the_registrys() {
    let out = fobsim().args(["matrix", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let want = format!("[default: {}]", fobsim_engines::MATRIX_DEFAULT.join(","));
    assert!(help.contains(&want), "{want} not in\n{help}");
}
