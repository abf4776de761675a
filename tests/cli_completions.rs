//! `fobsim completions SHELL` and `fobsim man` (issue 18 item 9): the bash
//! script parses (`bash -n`) and completes, the pages format without a
//! groff warning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Bash with `script` on stdin; its stdout.
fn bash(script: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new("bash")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_bash_completion_parses_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fobsim.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // What a user gets on Tab: a subcommand, then oathtool's flag of `code`.
    let out = bash(
        &format!(
            "source {}\n\
             COMP_WORDS=(fobsim ru); COMP_CWORD=1; _fobsim fobsim ru fobsim; echo \"${{COMPREPLY[@]}}\"\n\
             COMP_WORDS=(fobsim code --to); COMP_CWORD=2; _fobsim fobsim --to code; echo \"${{COMPREPLY[@]}}\"\n",
            script.display()
        ),
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "run\n--totp\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = stdout_of(&["completions", shell]);
        for sub in ["run", "emulate", "completions", "man"] {
            assert!(text.contains(sub), "{shell}: {sub}");
        }
    }
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_man_pages_format_cleanly() {
    let mut pages = vec![None];
    pages.extend(["run", "code", "emulate", "serve", "sweep", "matrix"].map(Some));
    for page in pages {
        let mut args = vec!["man"];
        args.extend(page);
        let roff = stdout_of(&args);
        let title = page.map_or("fobsim".to_string(), |p| format!("fobsim-{p}"));
        assert!(
            roff.starts_with(&format!(
                ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH {title} 1"
            )),
            "{roff}"
        );
        // groff in warning mode (with preconv, -k, as man runs it): no warning.
        let out = {
            let mut child = Command::new("groff")
                .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("groff is installed (apt-get install groff-base)");
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(roff.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{title}");
        // And `man -l` renders it with its sections.
        let shown = bash(
            &format!("MANWIDTH=100 man -l - <<'ROFF'\n{roff}\nROFF\n"),
            &[],
        );
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{title}: {text}"
        );
        let words: Vec<&str> = text.split_whitespace().collect();
        assert!(
            words.windows(2).any(|w| w == [title.as_str(), "-"]),
            "{title}: {text}"
        );
    }
    let bad = Command::new(BIN).args(["man", "nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no subcommand \"nope\"; one of: code,"));
}
