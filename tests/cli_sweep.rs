//! `fobsim sweep` from the outside: the map's palette (issue 18 item 9),
//! the size guard and the cleanup of its temporary databases (item 6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use assert_cmd::Command;

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

/// The SVG map tells accepted, rejected and locked cells apart without
/// relying on red against green: Okabe-Ito colours, and a shape on each
/// cell that is not accepted.
#[test]
fn the_svg_map_is_readable_with_any_colour_vision() {
    let dir = tempfile::tempdir().unwrap();
    let mut fills = Vec::new();
    for (attempts, want) in [
        ("1", "7 accepted, 6 rejected, 0 locked"),
        ("6", "7 accepted, 0 rejected, 6 locked"),
    ] {
        let svg = dir.path().join(format!("map-{attempts}.svg"));
        let out = fobsim()
            .args([
                "sweep",
                "--x-max",
                "3m",
                "--y-max",
                "0s",
                "--attempts",
                attempts,
                "--out",
            ])
            .arg(&svg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains(want), "{text}");
        let svg = std::fs::read_to_string(&svg).unwrap().to_ascii_lowercase();
        // The old red and green are gone.
        assert!(
            !svg.contains("#2ea043") && !svg.contains("#cf222e"),
            "{svg}"
        );
        let count = |s: &str| svg.matches(s).count();
        fills.push((
            count("fill=\"#0072b2\""),
            count("fill=\"#e69f00\""),
            count("fill=\"#d55e00\""),
        ));
        // Rejected: one stroke per cell; locked: two (a cross).
        let strokes = svg.matches("<polyline").count();
        assert_eq!(strokes, if attempts == "1" { 6 } else { 12 }, "{svg}");
        assert!(svg.contains("blue: accepted (7)"), "{svg}");
    }
    assert_eq!(fills, vec![(7, 6, 0), (7, 0, 6)]);
}

/// The map (542,101 cells, some 40 minutes) is refused at once with
/// an estimate; `--force` or a large enough `--max-cells` runs a map.
#[test]
fn a_map_above_max_cells_is_refused_with_an_estimate() {
    let started = std::time::Instant::now();
    let out = fobsim()
        .args(["sweep", "--x-step", "1s", "--y-step", "1s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("542101 cells (1801 offsets x 301 rows, 1 attempt(s) each) is more than --max-cells 20000: about "),
        "{err}"
    );
    assert!(err.contains("cells/s measured on 40 cells"), "{err}");
    assert!(err.contains("--force or --max-cells 542101"), "{err}");
    assert!(out.stdout.is_empty());
    // Refused after a sample, not after the map.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));

    let small = ["sweep", "--x-max", "2m", "--y-max", "1m"]; // 9 x 5 = 45 cells
    let refused = fobsim()
        .args(small)
        .args(["--max-cells", "44"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("45 cells (9 offsets x 5 rows"));
    for extra in [
        &["--max-cells", "45"][..],
        &["--max-cells", "44", "--force"][..],
    ] {
        let out = fobsim().args(small).args(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("45 cells:"),
            "{extra:?}"
        );
    }
}

/// Ctrl-C during a sweep on the SQLite store removes its temporary
/// databases (`fobsim-run-<pid>-N.sqlite` and SQLite's companions).
#[test]
fn an_interrupted_sqlite_sweep_leaves_no_database_behind() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fobsim"))
        .args([
            "sweep", "--store", "sqlite", "--x-step", "1s", "--y-step", "1s", "--force",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let prefix = format!("fobsim-run-{pid}-");
    let ours = || -> Vec<String> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ours().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no database appeared in {}",
            tmp.path().display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Let it run a few cells (a database open, others already removed).
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("fobsim: interrupted; cleaned up"), "{err}");
    assert_eq!(ours(), Vec::<String>::new());
}
