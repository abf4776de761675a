//! README's "The sandbox: fobsim up", run as written: `fobsim up` on its
//! default ports, the output it shows, then the seed's flow with curl and
//! the AWS CLI (two consecutive codes: it waits 30 s of real time).
//!
//! The default ports are fixed (8900, 8901), so it runs in namespaces of
//! its own (`unshare -mn`: a private /tmp and loopback), never touching the
//! machine's. Needs root (for unshare), curl, jq, and the AWS CLI in
//! target/aws-venv (`bash tests/aws/venv.sh` makes it) or `$FOBSIM_AWS_VENV`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/isolated.rs"]
mod isolated;

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced blocks of the README's sandbox section, in order, with
/// their language.
fn blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("\n## The sandbox: fobsim up\n")
        .expect("README has the sandbox section")
        .1;
    let section = section.split_once("\n## ").map_or(section, |(s, _)| s);
    let mut out = Vec::new();
    let mut rest = section;
    while let Some((_, after)) = rest.split_once("```") {
        let (lang, body) = after.split_once('\n').unwrap();
        let (body, after) = body.split_once("```\n").unwrap();
        out.push((lang.to_string(), body.to_string()));
        rest = after;
    }
    out
}

/// `fobsim-up-XXXXXX` → `fobsim-up-*`, and the time after `now ` → `*`:
/// what differs between two starts.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| {
            let mut l = l.to_string();
            while let Some(i) = l.find("fobsim-up-") {
                let start = i + "fobsim-up-".len();
                let end = (start + 6).min(l.len());
                l.replace_range(i..end, "fobsim-up<*>");
            }
            if let Some((head, _)) = l.split_once(", now ") {
                l = format!("{head}, now *");
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_sandbox_section_works_as_written() {
    let venv = isolated::aws_venv();
    let blocks = blocks();
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, ["bash", "text", "bash"], "{blocks:?}");
    let start = blocks[0].1.trim_end();
    let start = start
        .strip_suffix("# runs until Ctrl-C")
        .expect("the command is marked `# runs until Ctrl-C`")
        .trim_end();
    assert_eq!(start, "fobsim up");
    let shown = &blocks[1].1;
    let flow = &blocks[2].1;

    let script = format!(
        "{start} > /tmp/up.out 2> /tmp/up.err &\n\
         up=$!\n\
         trap 'kill $up 2>/dev/null || true' EXIT\n\
         for _ in $(seq 100); do curl -sf http://127.0.0.1:8901/api/clock > /dev/null && break; sleep 0.1; done\n\
         set -e -o pipefail\n\
         {flow}\n\
         kill -TERM $up; status=0; wait $up || status=$?\n\
         echo \"=== up exited $status\"; cat /tmp/up.out\n"
    );
    let out = isolated::run_isolated(&venv, &script);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    let ctx = format!(
        "{script}\nstatus: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(out.status.success(), "{ctx}");
    // The flow: the device is alice's.
    assert!(
        stdout.contains("\"SerialNumber\": \"GAHT00000001\""),
        "{ctx}"
    );
    assert!(stdout.contains("\"UserName\": \"alice\""), "{ctx}");
    // A clean stop, and the output the README shows.
    let (_, printed) = stdout
        .split_once("=== up exited 0\n")
        .unwrap_or_else(|| panic!("fobsim up did not exit 0 on SIGTERM: {ctx}"));
    assert_eq!(normalize(printed.trim_end()), normalize(shown.trim_end()));
}

#[test]
fn normalize_keeps_what_must_match() {
    assert_eq!(
        normalize("  directory     /tmp/fobsim-up-Ab12Cd (kept after exit)"),
        normalize("  directory     /tmp/fobsim-up-zZ9xY8 (kept after exit)")
    );
    assert_ne!(
        normalize("  directory     /tmp/fobsim-up-Ab12Cd (kept after exit)"),
        normalize("  directory     /var/fobsim-up-Ab12Cd (kept after exit)")
    );
    assert_eq!(
        normalize("  clock         system, now 2026-01-01T00:00:00.000Z"),
        "  clock         system, now *"
    );
}
