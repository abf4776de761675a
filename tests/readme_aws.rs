//! README's AWS walk-through, run as written (issue 18 item 1): the AWS
//! CLI against `fobsim serve` with fobs from `fobsim emulate`: enable, a
//! session, a late enable, its resync.
//!
//! The block uses fixed paths under /tmp and port 4566, so it runs in
//! namespaces of its own (`unshare -mn`: a private /tmp and loopback),
//! never touching the machine's. Needs root (for unshare) and the AWS CLI
//! in target/aws-venv (`bash tests/aws/run.sh` makes it) or
//! `$FOBSIM_AWS_VENV`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ```bash block the README says this test runs.
fn block() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let after = readme
        .split_once("`tests/readme_aws.rs`")
        .expect("README names this test before its block")
        .1;
    let body = after.split_once("```bash\n").unwrap().1;
    body.split_once("```\n").unwrap().0.to_string()
}

#[test]
fn the_readme_aws_section_works_as_written() {
    let venv = std::env::var_os("FOBSIM_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/aws-venv"));
    let aws = venv.join("bin/aws");
    assert!(
        aws.is_file(),
        "no AWS CLI at {}: run `python3 -m venv {v} && {v}/bin/pip install awscli` (or bash tests/aws/run.sh)",
        aws.display(),
        v = venv.display()
    );
    let block = block();
    assert!(block.contains("aws --endpoint-url http://127.0.0.1:4566 sts get-session-token"));
    // Around the block as written: a private /tmp and loopback, a HOME
    // without AWS config, the background processes stopped at the end.
    let script = format!(
        "ip link set lo up && mount -t tmpfs tmpfs /tmp || exit 97\n\
         mkdir -p /tmp/home && export HOME=/tmp/home\n\
         trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n\
         cd {}\n{block}",
        root().display()
    );
    let path = format!(
        "{}:{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("unshare")
        .args(["-mn", "bash", "-c", &script])
        .env("PATH", path)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("RUST_LOG", "warn")
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(97),
        "unshare -mn needs root: {stderr}"
    );
    let ctx = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    // Two sessions: alice's, and bob's after his resync; not the one
    // between his late enable and the resync.
    assert_eq!(stdout.matches("\"SessionToken\"").count(), 2, "{ctx}");
    assert_eq!(
        stderr
            .matches("An error occurred (AccessDenied) when calling the GetSessionToken operation")
            .count(),
        1,
        "{ctx}"
    );
    assert_eq!(stderr.matches("An error occurred").count(), 1, "{ctx}");
    // The enables and the resync print nothing and succeed.
    assert!(stdout.contains("\"AccessKeyId\": \"ASIA"), "{ctx}");
}
