//! The README's "Install" and "More commands" blocks, run as written
//! (issue 18 item 9; every command a doc shows is run by a test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of the first ```bash block after `heading`.
fn block(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let after = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let body = after.split_once("```bash\n").unwrap().1;
    let body = body.split_once("```\n").unwrap().0;
    body.lines().map(str::to_string).collect()
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `cargo install --locked --path .` into a scratch root (never the user's
/// ~/.cargo/bin), then the completion and the man page commands as
/// written, with the installed binary first on PATH and HOME a scratch
/// directory.
#[test]
fn the_install_block_works_as_written() {
    let lines = block("## Install");
    assert!(
        lines[0].starts_with("cargo install --locked --path . "),
        "{lines:?}"
    );
    let home = tempfile::tempdir().unwrap();
    let install_root = home.path().join(".cargo");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let script = format!("set -e -o pipefail\n{}\n", lines.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root())
        .env("HOME", home.path())
        .env("CARGO_HOME", &cargo_home)
        .env("CARGO_INSTALL_ROOT", &install_root)
        // A build of its own, kept between runs; unoptimized, to keep the
        // test's cost that of a debug build.
        .env("CARGO_TARGET_DIR", root().join("target/readme-install"))
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
        .env("PATH", path_with(&install_root.join("bin")))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = install_root.join("bin/fobsim");
    assert!(
        installed.is_file(),
        "cargo install made no {}",
        installed.display()
    );
    // The completion script is where bash-completion looks, and parses.
    let completion = home
        .path()
        .join(".local/share/bash-completion/completions/fobsim");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&completion)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        std::fs::read_to_string(&completion)
            .unwrap()
            .contains("_fobsim")
    );
    // `man -l -` rendered the page.
    assert!(
        stdout.contains("NAME") && stdout.contains("fobsim - Hardware MFA token emulator"),
        "{stdout}"
    );
    // The installed binary is this source's.
    let v = Command::new(&installed).arg("--version").output().unwrap();
    let mine = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(v.stdout, mine.stdout);
}

/// Each line of "More commands" runs and, where it says `→ VALUE`, prints
/// VALUE first.
#[test]
fn the_more_commands_block_works_as_written() {
    let lines = block("## More commands");
    assert!(lines.len() >= 7, "{lines:?}");
    let bin_dir = Path::new(BIN).parent().unwrap();
    for line in &lines {
        let out = Command::new("bash")
            .arg("-c")
            .arg(line)
            .current_dir(root())
            .env("PATH", path_with(bin_dir))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((_, want)) = line.split_once("→ ") {
            let want = want.split_whitespace().next().unwrap();
            assert_eq!(stdout.lines().next(), Some(want), "{line}");
        }
    }
}
