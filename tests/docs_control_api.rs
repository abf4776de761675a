//! Every command of `docs/control-api.md`, run as written and in order
//! (bash for ```sh blocks, the client venv's Python for ```python blocks,
//! in a fresh directory, the fobsim under test first on `PATH`), each
//! output compared with the ```json / ```text block that follows it on the
//! page. The block marked `# runs until Ctrl-C` (the emulator) runs in the
//! background until its first line of output, and is stopped at the end.
//!
//! Needs the client venv (requests, pyotp, playwright): `bash
//! tests/matrix/setup.sh` makes it (`$FOBSIM_CLIENT_VENV`, else
//! `$FOBSIM_PEERS_DIR/venv-client`, else `target/peers/venv-client`), and
//! Chromium at /usr/bin/chromium for the Playwright example (`bash
//! tests/browser/setup.sh`). Without them the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/client_venv.rs"]
mod client_venv;

#[path = "support/background.rs"]
mod background;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use background::Background;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
const DOC: &str = include_str!("../docs/control-api.md");

/// The fenced blocks of a Markdown page: (language, text).
fn blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut block: Option<(String, String)> = None;
    for line in doc.lines() {
        match &mut block {
            Some(_) if line.trim_end() == "```" => out.extend(block.take()),
            Some((_, b)) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {
                if let Some(lang) = line.trim_end().strip_prefix("```") {
                    block = Some((lang.to_string(), String::new()));
                }
            }
        }
    }
    assert!(block.is_none(), "an unclosed block");
    out
}

fn with_path(c: &mut Command, dir: &Path) {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.current_dir(dir).env("PATH", path).process_group(0);
}

#[test]
fn every_command_of_the_control_api_page_works_as_written() {
    let python = client_venv::client_python();
    assert!(
        std::net::TcpListener::bind("127.0.0.1:8480").is_ok(),
        "port 8480 (the page's) is taken: stop whatever listens there"
    );
    let blocks = blocks(DOC);
    let dir = tempfile::tempdir().unwrap();
    let mut background = Background::new();
    let (mut ran, mut compared) = (0, 0);
    for (i, (lang, text)) in blocks.iter().enumerate() {
        let mut cmd = match lang.as_str() {
            "sh" => {
                let mut c = Command::new("bash");
                c.args(["-euo", "pipefail", "-c", text]);
                c
            }
            "python" => {
                let file = dir.path().join(format!("block{i}.py"));
                std::fs::write(&file, text).unwrap();
                let mut c = Command::new(&python);
                c.arg(&file);
                c
            }
            _ => continue,
        };
        with_path(&mut cmd, dir.path());
        ran += 1;
        if text.contains("# runs until Ctrl-C") {
            let line = background.start(cmd, text, Duration::from_secs(60));
            assert!(line.starts_with("GAHT00000001\t"), "{line}");
            continue;
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\nfailed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((l, want)) = blocks.get(i + 1)
            && (l == "json" || l == "text")
        {
            assert_eq!(stdout, *want, "the output of\n{text}");
            compared += 1;
        }
    }
    assert_eq!(ran, 11, "blocks run");
    assert_eq!(compared, 10, "outputs compared");
}
