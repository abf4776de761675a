//! The README's other command blocks, run as written: "Two commands" (what
//! CI runs), "The main job", "Other engines" (the quick line), the running
//! endpoint block and the emulator's blocks. Scratch paths under `/tmp/` are
//! moved into a temporary directory so parallel runs do not meet; nothing
//! else in a command changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The body of the first fenced block of `lang` after `heading`.
fn block(heading: &str, lang: &str) -> String {
    let readme = readme();
    let after = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let body = after
        .split_once(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading:?}"))
        .1;
    body.split_once("```\n").unwrap().0.to_string()
}

/// A command line without its trailing `# comment`.
fn command(line: &str) -> String {
    match line.find("  #") {
        Some(i) => line[..i].trim_end().to_string(),
        None => line.trim_end().to_string(),
    }
}

fn path_with_bin() -> String {
    format!(
        "{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `script` in bash with the built binary first on PATH, in `dir`; jobs
/// it left in the background are killed when it ends.
fn bash(script: &str, dir: &Path) -> Output {
    let wrapped = format!("trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{script}\n");
    Command::new("bash")
        .arg("-c")
        .arg(&wrapped)
        .current_dir(dir)
        .env("PATH", path_with_bin())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The two commands are the ones CI runs.
#[test]
fn the_two_commands_are_what_ci_runs() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let lines: Vec<String> = block("## Two commands", "bash")
        .lines()
        .map(command)
        .collect();
    assert_eq!(
        lines,
        ["cargo run -- run", "tests/run.sh"],
        "README's two commands changed: update .ci/run and this test"
    );
    for line in &lines {
        assert!(
            ci.lines().any(|l| l.trim().ends_with(line.as_str())),
            ".ci/run does not run {line:?}"
        );
    }
}

/// Every line of "The main job" block, in a scratch directory holding the
/// scenarios and README's example scenario as `my-bug.scenario`; each
/// exits as the README says (0 when every expectation held; 1 when a
/// scenario is n/a, as over `iam-http`). The `--endpoint URL` line is the
/// running-endpoint block's, run below with real values.
#[test]
fn the_main_job_block_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("fixtures"), dir.path().join("fixtures")).unwrap();
    std::fs::write(
        dir.path().join("my-bug.scenario"),
        block("## The main job: conformance runs", "text"),
    )
    .unwrap();
    let lines: Vec<String> = block("## The main job: conformance runs", "bash")
        .lines()
        .map(command)
        .collect();
    assert!(lines.len() >= 9, "{lines:?}");
    let mut ran = 0;
    for line in &lines {
        if line.contains("--endpoint URL") {
            assert!(
                readme().contains("fobsim run --engine iam-http --endpoint http://"),
                "the endpoint line has no runnable twin"
            );
            continue;
        }
        let out = bash(line, dir.path());
        let want = if line == "fobsim run --engine iam-http" {
            1
        } else {
            0
        };
        assert_eq!(out.status.code(), Some(want), "{line}\n{}", text(&out));
        if want == 1 {
            let t = text(&out);
            assert!(t.contains("n/a") && !t.contains("FAIL"), "{line}\n{t}");
        }
        ran += 1;
    }
    assert_eq!(ran, lines.len() - 1);
    let report = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    assert!(report.contains("<testsuites"), "{report}");
    let map = std::fs::read_to_string(dir.path().join("map.svg")).unwrap();
    assert!(
        map.starts_with("<svg") || map.contains("<svg"),
        "not an SVG"
    );
}

/// The matrix block's quick line as written (oathtool comes from
/// tests/matrix/setup.sh, which tests/run.sh runs); the full matrix line is
/// what CI's last step runs (there with a JUnit report).
#[test]
fn the_matrix_block_works_as_written() {
    let lines: Vec<String> = block("## Other engines: the conformance matrix", "bash")
        .lines()
        .map(command)
        .collect();
    assert_eq!(lines[0], "fobsim matrix");
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("-- matrix"), ".ci/run does not run the matrix");
    let dir = tempfile::tempdir().unwrap();
    let out = bash(&lines[1], dir.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{}\n{t}", lines[1]);
    assert!(t.contains("| builtin") || t.contains("builtin |"), "{t}");
    assert!(t.contains("oathtool"), "{t}");
}

/// The running-endpoint block: write the bootstrap, start `fobsim serve` in
/// the background, run the suite against it (the harness waits for the
/// endpoint to come up), as the README shows.
#[test]
fn the_running_endpoint_block_works_as_written() {
    let script = running_endpoint_block();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = script
        .replace("/tmp/", &format!("{}/", dir.path().display()))
        .replace("127.0.0.1:4566", &format!("127.0.0.1:{port}"));
    let out = bash(&script, dir.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{script}\n{t}");
    assert!(t.contains("n/a"), "{t}");
    assert!(!t.contains("FAIL"), "{t}");
}

/// The block that starts with `fobsim run --write-bootstrap`.
fn running_endpoint_block() -> String {
    let readme = readme();
    let start = readme
        .find("```bash\nfobsim run --write-bootstrap")
        .expect("README has no running-endpoint block");
    let body = &readme[start + "```bash\n".len()..];
    body.split_once("```\n").unwrap().0.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The emulator's blocks up to the lines that need a kernel module
/// (`usbip attach`, hidraw, /dev/uhid: tests/vm/run.sh runs the block's USB
/// lines as written in a real-kernel VM): fobs on ptys pressed by `fobsim device`
/// and by picocom, the clock moved and a fob drifted over the control
/// socket, the USB/IP server listed by the real `usbip` tool.
#[test]
fn the_emulator_block_works_as_written() {
    let body = block("### The emulator: fobs a host can talk to", "bash");
    let kernel = ["usbip attach", "--hid", "--transport uhid"];
    let runnable: Vec<&str> = body
        .lines()
        .take_while(|l| !kernel.iter().any(|k| l.contains(k)))
        .collect();
    let rest: Vec<&str> = body.lines().skip(runnable.len()).collect();
    assert_eq!(rest.len(), 3, "{rest:?}");
    for (line, k) in rest.iter().zip(kernel) {
        assert!(line.contains(k), "{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let script = runnable
        .join("\n")
        .replace("/tmp/", &format!("{}/", dir.path().display()));
    // 3240 is the USB/IP port as written: one run at a time on a machine.
    let out = bash(&format!("set -e\n{script}"), dir.path());
    let t = text(&out);
    assert!(out.status.success(), "{script}\n{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // emulate lists its fobs on stdout first; then `device press` prints
    // the code, which picocom's PRESS shows again (the same step).
    let code = stdout
        .lines()
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("device press printed no code\n{t}"));
    assert!(
        t.contains("OK serial=GAHT00000001") && t.contains(&format!("OK {code}")),
        "picocom's INFO and PRESS\n{t}"
    );
    assert!(t.contains("offset 47s\tppm 20"), "clock drift\n{t}");
    assert!(
        t.contains("1-1") && t.contains("1-2") && t.contains("1209:0001"),
        "usbip list\n{t}"
    );
    assert!(dir.path().join("seeds.xml").is_file());
}
