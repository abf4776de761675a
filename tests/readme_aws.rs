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

#[path = "support/isolated.rs"]
mod isolated;

use std::path::PathBuf;

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
    let venv = isolated::aws_venv();
    let block = block();
    assert!(block.contains("aws --endpoint-url http://127.0.0.1:4566 sts get-session-token"));
    // The background processes stopped at the end.
    let out = isolated::run_isolated(
        &venv,
        &format!("trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{block}"),
    );
    let (stdout, stderr) = (&out.stdout, &out.stderr);
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
