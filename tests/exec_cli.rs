//! `fobsim run --engine exec:COMMAND` from the outside: the whole built-in
//! suite through the reference adapter (pass or n/a as its capabilities
//! say, the built-in engine's transcripts), the protocol's round trip
//! through `fobsim adapter`, an interrupted run stopping its adapter, every
//! command of docs/adapter-protocol.md run as written, and the CI recipes
//! of examples/ci/ running the commands the docs show.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fobsim_core::Timestamp;
use fobsim_engines::Registry;
use fobsim_engines::builtin::Builtin;
use fobsim_engines::cleanup::alive;
use fobsim_harness::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Opener as _, Request, Setup,
};
use fobsim_harness::driver::InProcess;
use fobsim_harness::runner::Runner;
use fobsim_harness::suite;
use serde_json::Value;

const REFERENCE: &str = "exec:python3 examples/exec/adapter.py";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("fobsim")
}

/// `fobsim run --engine ENGINE --format json --allow-na` in the workspace.
fn run_json(engine: &str) -> Value {
    let out = Command::new(bin())
        .current_dir(root())
        .args(["run", "--engine", engine, "--format", "json", "--allow-na"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{engine}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scenarios(report: &Value) -> &Vec<Value> {
    report["scenarios"].as_array().unwrap()
}

/// The built-in engine declaring only `caps`: what an engine with exactly
/// these capabilities and the built-in engine's behaviour gives.
struct Limited {
    inner: Builtin,
    caps: Vec<Capability>,
}

impl EngineAdapter for Limited {
    fn name(&self) -> &str {
        "builtin"
    }
    fn capabilities(&self) -> &[Capability] {
        &self.caps
    }
    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.inner.begin(setup)
    }
    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        self.inner.call(now, request)
    }
}

fn without_engine(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("engine");
    }
    v
}

#[test]
fn the_reference_adapter_runs_the_whole_suite_as_the_builtin_engine_does() {
    let exec = run_json(REFERENCE);
    let builtin = run_json("builtin");
    // What an engine with the adapter's capabilities gives, scenario by
    // scenario: the same verdicts (pass, or n/a at the same step for the
    // same capability) and the same transcripts, n/a ones included.
    let absolute = format!(
        "exec:python3 {}",
        root().join("examples/exec/adapter.py").display()
    );
    let declared = Registry::new(1)
        .open(&absolute)
        .unwrap()
        .capabilities()
        .to_vec();
    assert!(declared.len() < Capability::ALL.len(), "{declared:?}");
    let mut limited = Limited {
        inner: Builtin::in_memory(1),
        caps: declared,
    };
    let all = suite::builtin().unwrap();
    let expected: Vec<Value> = {
        let mut fobs = InProcess;
        let mut runner = Runner::new(&mut limited, &mut fobs, 1);
        all.iter()
            .map(|s| serde_json::to_value(runner.run(s)).unwrap())
            .collect()
    };
    let (mut pass, mut na) = (0, 0);
    for ((got, want), full) in scenarios(&exec)
        .iter()
        .zip(&expected)
        .zip(scenarios(&builtin))
    {
        let id = got["id"].as_str().unwrap();
        assert_eq!(
            without_engine(got.clone()),
            without_engine(want.clone()),
            "{id}"
        );
        match got["verdict"].as_str().unwrap() {
            "pass" => {
                pass += 1;
                assert_eq!(got["transcript"], full["transcript"], "{id}");
            }
            "n/a" => na += 1,
            other => panic!("{id}: {other}"),
        }
    }
    assert_eq!(pass + na, all.len());
    assert!(pass >= 70 && na >= 5, "{pass} pass, {na} n/a");
    assert_eq!(exec["summary"]["passed"], pass);
}

#[test]
fn fobsim_adapter_round_trips_every_transcript() {
    let engine = format!("exec:'{}' adapter --engine builtin", bin().display());
    let mut exec = run_json(&engine);
    let builtin = run_json("builtin");
    exec["engine"] = "builtin".into();
    for s in exec["scenarios"].as_array_mut().unwrap() {
        assert_eq!(s["engine"], engine.as_str());
        s["engine"] = "builtin".into();
    }
    assert_eq!(exec, builtin);
    assert_eq!(builtin["summary"]["passed"], builtin["summary"]["total"]);
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_interrupted_run_stops_the_adapter_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = root().join("harness/engines/tests/exec/bad_adapter.py");
    let mut child = Command::new(bin())
        .args([
            "run",
            "--engine",
            &format!("exec:python3 {} slow {}", script.display(), pids.display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let read = || -> Vec<u32> {
        std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    };
    wait_for("the adapter to start", || read().len() == 2);
    let started = read();
    assert!(started.iter().all(|p| alive(*p)));
    // Let the run reach the adapter's first (never answered) operation.
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "not through the cleanup handler");
    wait_for("the adapter and its child to stop", || {
        started.iter().all(|p| !alive(*p))
    });
}

/// The commands of `docs/adapter-protocol.md`'s console blocks, block by block.
fn doc_blocks() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("docs/adapter-protocol.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        let t = line.trim();
        match (&mut current, t) {
            (None, "```console") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(b), _) => {
                let cmd = t.strip_prefix("$ ").unwrap_or_else(|| panic!("{t:?}"));
                b.push(cmd.to_string());
            }
            (None, _) => {}
        }
    }
    blocks
}

fn ci_block() -> Vec<String> {
    let blocks = doc_blocks();
    let mut ci = blocks
        .into_iter()
        .filter(|b| b.iter().any(|c| c.starts_with("cargo install")));
    let block = ci.next().expect("the docs show the CI commands");
    assert!(ci.next().is_none());
    block
}

/// Run a documented command; a trailing `# exits N` comment in the docs
/// says it exits N (else 0).
fn sh(dir: &Path, path: &str, cmd: &str, env: &[(&str, &Path)]) {
    let want = cmd
        .rsplit_once("# exits ")
        .and_then(|(_, n)| n.split(':').next()?.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).current_dir(dir).env("PATH", path);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.code() == Some(want),
        "`{cmd}` did not exit {want} ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_with(dir: &Path) -> String {
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut parts = vec![dir.to_path_buf()];
    parts.extend(std::env::split_paths(&old));
    std::env::join_paths(parts)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_commands_of_the_protocol_doc_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("examples"), dir.path().join("examples")).unwrap();
    let path = path_with(bin().parent().unwrap());
    let ci = ci_block();
    let mut n = 0;
    for block in doc_blocks().into_iter().filter(|b| *b != ci) {
        for cmd in block {
            sh(dir.path(), &path, &cmd, &[]);
            n += 1;
        }
    }
    assert!(n >= 7, "{n} commands");
    // The README's exec: commands are among them (so they ran too).
    let shown: Vec<String> = doc_blocks().into_iter().flatten().collect();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let exec_lines: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("fobsim ") && l.contains("exec:"))
        .collect();
    assert!(!exec_lines.is_empty());
    for l in exec_lines {
        assert!(shown.iter().any(|c| c == l.trim()), "README: {l}");
    }
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert!(read("report.xml").contains("<testsuites name=\"fobsim\""));
    for f in ["exec.json", "faked.json", "oathtool.json"] {
        serde_json::from_str::<Value>(&read(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

/// Kills the engine the CI commands start if a later command failed.
struct Engine(PathBuf);

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// The CI block as a CI job runs it: in a checkout (here: the workspace's
/// sources linked into a temp folder), `cargo install` into a temp root
/// (its build kept in target/ci-install between runs).
#[test]
fn the_ci_commands_of_the_protocol_doc_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != "target" && name != ".git" {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    let install = dir.path().join("cargo-root");
    let path = path_with(&install.join("bin"));
    let target = root().join("target/ci-install");
    let _engine = Engine(dir.path().join("tiny-mfa.pid"));
    for cmd in ci_block() {
        sh(
            dir.path(),
            &path,
            &cmd,
            &[
                ("CARGO_INSTALL_ROOT", &install),
                ("CARGO_TARGET_DIR", &target),
            ],
        );
    }
    assert!(install.join("bin/fobsim").is_file());
    let junit = std::fs::read_to_string(dir.path().join("fobsim-junit.xml")).unwrap();
    assert!(
        junit.contains("failures=\"0\" errors=\"0\"") && junit.contains("<skipped"),
        "{junit}"
    );
}

fn yaml(file: &str) -> yaml_rust2::Yaml {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{file}");
    docs.remove(0)
}

fn lines(s: &str) -> impl Iterator<Item = String> + '_ {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

#[test]
fn the_ci_recipes_run_the_commands_the_docs_show() {
    let docs = ci_block();
    let out_file = docs
        .iter()
        .find_map(|c| c.split("--out ").nth(1))
        .expect("the docs' run writes a report")
        .to_string();
    assert!(docs.iter().any(|c| c.contains("--format junit")));

    let gh = yaml("examples/ci/github-actions.yml");
    let steps = gh["jobs"]["conformance"]["steps"].as_vec().unwrap();
    let run: Vec<String> = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .flat_map(lines)
        .collect();
    assert_eq!(run, docs, "GitHub Actions");
    let junit_step = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.contains("junit-report"))
        })
        .expect("a step publishes the JUnit report");
    assert_eq!(
        junit_step["with"]["report_paths"].as_str(),
        Some(out_file.as_str())
    );
    assert!(
        gh["on"]["push"].is_null() && !gh["on"]["pull_request"].is_badvalue(),
        "runs on every push and pull request"
    );

    let gl = yaml("examples/ci/gitlab-ci.yml");
    let job = &gl["fobsim-conformance"];
    let script: Vec<String> = job["script"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(script, docs, "GitLab CI");
    assert_eq!(
        job["artifacts"]["reports"]["junit"].as_str(),
        Some(out_file.as_str())
    );
    assert_eq!(job["artifacts"]["when"].as_str(), Some("always"));
}
