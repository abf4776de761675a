//! `fobsim sweep` from the outside: the map's palette (issue 18 item 9),
//! the size guard and the cleanup of its temporary databases (item 6).

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
