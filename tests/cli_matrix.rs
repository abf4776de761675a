//! `fobsim matrix` on a terminal shows a progress line per engine on
//! stderr; off a terminal (CI logs, pipes) it does not (issue 18 item 6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

#[test]
fn a_progress_line_per_engine_on_a_terminal_only() {
    let n = String::from_utf8(
        Command::new(BIN)
            .args(["run", "--list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .lines()
    .count();
    // `script` gives the command a pseudo-terminal; stdout goes to
    // /dev/null inside it, so what comes through is stderr.
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{BIN} matrix -e builtin,model --no-sweep >/dev/null"),
            "/dev/null",
        ])
        .output()
        .expect("script is installed (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tty = String::from_utf8_lossy(&out.stdout);
    // The last state of each engine's line, as the terminal shows it.
    let lines: Vec<String> = tty
        .split("\r\n")
        .map(|l| {
            l.rsplit('\r')
                .next()
                .unwrap_or("")
                .trim_start_matches("\x1b[K")
                .to_string()
        })
        .collect();
    assert_eq!(lines[0], format!("  builtin: {n}/{n} scenarios"), "{tty:?}");
    assert_eq!(lines[1], format!("  model: {n}/{n} scenarios"), "{tty:?}");
    assert!(
        tty.contains(&format!("  builtin: starting ({n} scenarios)")),
        "{tty:?}"
    );
    assert!(
        lines[2].starts_with(&format!("matrix: {n} scenarios x 2 engines in ")),
        "{tty:?}"
    );
    // Not a terminal: only the summary.
    let out = Command::new(BIN)
        .args(["matrix", "-e", "builtin,model", "--no-sweep"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("matrix: "), "{err}");
    assert!(!err.contains("starting") && !err.contains('\r'), "{err}");
}
