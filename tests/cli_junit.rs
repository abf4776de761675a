//! JUnit XML of `fobsim run` and `fobsim matrix` (one writer): real `time`
//! attributes, and everything else deterministic (issue 18 item 9).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use assert_cmd::Command;

fn fobsim() -> Command {
    Command::cargo_bin("fobsim").expect("the fobsim binary is built")
}

/// The `time` attributes of `xml`, in document order.
fn times(xml: &str) -> Vec<f64> {
    xml.split(" time=\"")
        .skip(1)
        .map(|rest| {
            let v = &rest[..rest.find('"').unwrap()];
            v.parse::<f64>()
                .unwrap_or_else(|e| panic!("time={v:?}: {e}"))
        })
        .collect()
}

/// `xml` without its `time` attributes: what must not change between runs.
fn untimed(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find(" time=\"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        rest = &after[after.find('"').unwrap() + 1..];
    }
    out.push_str(rest);
    out
}

/// Runs `args` twice: `cases[i]` test cases in suite i, every element
/// timed, sums that add up (to the millisecond each is rounded to), and
/// everything but the times the same on both runs.
fn check(args: &[&str], cases: &[usize]) {
    let a = fobsim().args(args).output().unwrap();
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let xml = String::from_utf8(a.stdout).unwrap();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        "{xml}"
    );
    let t = times(&xml);
    // Document order: the root, then each suite followed by its cases.
    assert_eq!(
        t.len(),
        1 + cases.len() + cases.iter().sum::<usize>(),
        "{xml}"
    );
    assert!(t[0] > 0.0, "the run took some time: {t:?}");
    let mut at = 1;
    let mut suites = 0.0;
    for &n in cases {
        let suite = t[at];
        let sum: f64 = t[at + 1..=at + n].iter().sum();
        assert!(
            (suite - sum).abs() <= 0.001 * (n as f64 + 1.0),
            "suite {suite} vs cases {sum}"
        );
        suites += suite;
        at += n + 1;
    }
    assert!(
        (t[0] - suites).abs() <= 0.001 * (cases.len() as f64 + 1.0),
        "{t:?}"
    );
    let b = fobsim().args(args).output().unwrap();
    let xml_b = String::from_utf8(b.stdout).unwrap();
    assert_eq!(untimed(&xml), untimed(&xml_b));
    assert!(!untimed(&xml).contains("time="));
}

#[test]
fn run_junit_has_wall_times() {
    let n = String::from_utf8(fobsim().args(["run", "--list"]).output().unwrap().stdout)
        .unwrap()
        .lines()
        .count();
    check(&["run", "--format", "junit"], &[n]);
    let xml = String::from_utf8(
        fobsim()
            .args(["run", "--only", "rfc6238-sha1-vectors", "-f", "junit"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        untimed(&xml),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<testsuites name=\"fobsim\" tests=\"1\" skipped=\"0\" failures=\"0\" errors=\"0\">
    <testsuite name=\"fobsim conformance (builtin)\" tests=\"1\" skipped=\"0\" errors=\"0\" failures=\"0\">
        <properties>
            <property name=\"engine\" value=\"builtin\"/>
            <property name=\"seed\" value=\"1\"/>
        </properties>
        <testcase name=\"rfc6238-sha1-vectors\" classname=\"fobsim.builtin\" file=\"fixtures/scenarios/rfc6238-sha1-vectors.scenario\"/>
    </testsuite>
</testsuites>
"
    );
    let t = times(&xml);
    assert_eq!(t.len(), 3);
    // One suite of one case: all three are the same wall time.
    assert_eq!(t[0], t[1]);
    assert_eq!(t[1], t[2]);
}

#[test]
fn matrix_junit_has_wall_times_per_engine() {
    let n = String::from_utf8(fobsim().args(["run", "--list"]).output().unwrap().stdout)
        .unwrap()
        .lines()
        .count();
    check(
        &[
            "matrix",
            "--engines",
            "builtin,model",
            "--no-sweep",
            "--format",
            "junit",
        ],
        &[n, n],
    );
}
