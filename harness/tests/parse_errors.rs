//! Malformed scenario files get `file:line:col: what was expected`, and
//! nothing runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_harness::scenario::parse;
use fobsim_harness::suite;

const HEAD: &str = "scenario t\nsource bug \"b\"\ndevice fob1 gaht\nuser alice\n";

fn err(body: &str) -> String {
    let text = format!("{HEAD}{body}");
    match parse("t.scenario", &text) {
        Ok(s) => panic!("parsed: {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_point_at_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("presss fob1\n", "t.scenario:5:1: expected a step (press"),
        (
            "press fob9 as c1\n",
            "t.scenario:5:7: expected a declared device, found \"fob9\"",
        ),
        (
            "wait 3x\n",
            "t.scenario:5:6: expected a duration such as 30s",
        ),
        (
            "wait -5s\n",
            "t.scenario:5:6: expected a duration of zero or more",
        ),
        (
            "press fob1 as c1\nenable alice fob1 c1 c2 -> ok\n",
            "t.scenario:6:22: expected a code captured earlier",
        ),
        (
            "press fob1 as c1\nwait 30s\npress fob1 as c2\nenable bob fob1 c1 c2 -> ok\n",
            "t.scenario:8:8: expected a declared user or root",
        ),
        (
            "press fob1 as c1\nwait 30s\npress fob1 as c2\nenable alice fob1 c1 c2\n",
            "t.scenario:8:24: expected '->' and the expected outcome",
        ),
        (
            "press fob1 as c1\nwait 30s\npress fob1 as c2\nenable alice fob1 c1 c2 -> maybe\n",
            "t.scenario:8:28: expected an outcome: ok, rejected or an error code",
        ),
        (
            "press fob1 as c1\nwait 30s\npress fob1 as c2\nenable alice fob1 c1 c2 via fax -> ok\n",
            "t.scenario:8:29: expected console or api",
        ),
        (
            "lose fob1\npress fob1\n",
            "t.scenario:6:7: expected a device at hand: fob1 was lost at line 5",
        ),
        ("find fob1\n", "t.scenario:5:6: expected a lost device"),
        (
            "repeat 3\nwait 1d\n",
            "t.scenario:5:1: expected 'end' to close this 'repeat'",
        ),
        (
            "end\n",
            "t.scenario:5:1: expected a step: 'end' closes a 'repeat'",
        ),
        (
            "repeat 0\nwait 1d\nend\n",
            "t.scenario:5:8: expected a count from 1 to",
        ),
        (
            "wait 1d\nat 2020-01-01T00:00:00Z\n",
            "t.scenario:6:1: expected a time at or after",
        ),
        (
            "at yesterday\n",
            "t.scenario:5:4: expected a time: RFC 3339 UTC",
        ),
        (
            "expect fob1 steps 3..1\n",
            "t.scenario:5:19: expected a range of steps A..B",
        ),
        (
            "expect fob1 sideways\n",
            "t.scenario:5:13: expected steps A..B, locked or unlocked",
        ),
        (
            "battery fob1 flat\n",
            "t.scenario:5:14: expected dead or new",
        ),
        (
            "drift fob1 ppm=lots\n",
            "t.scenario:5:12: expected ppm=NUMBER",
        ),
        (
            "press fob1 as c1 -> blank\n",
            "t.scenario:5:1: expected either 'as NAME'",
        ),
        (
            "press fob1 \"quoted\n",
            "t.scenario:5:12: expected a closing '\"'",
        ),
        (
            "wait 1s extra\n",
            "t.scenario:5:9: expected the end of the line, found \"extra\"",
        ),
        (
            "wait 1s\nuser bob\n",
            "t.scenario:6:1: 'user' is a declaration",
        ),
        ("recover alice -> ok\n", "t.scenario:5:9: expected root"),
        (
            "devices alice -> fob1,fob7\n",
            "t.scenario:5:18: expected none or declared devices",
        ),
        (
            "repeat 2\nat @2000000000\nend\n",
            "t.scenario:6:1: expected 'wait' or 'align' inside 'repeat'",
        ),
        (
            "repeat 100000\nrepeat 100000\nwait 1s\nend\nend\n",
            "t.scenario:5:1: expected at most 1000000 steps to run",
        ),
        (
            "lose fob1\nexpect fob1 steps 0..0\n",
            "t.scenario:6:8: expected a device at hand",
        ),
    ];
    for (body, want) in cases {
        let got = err(body);
        assert!(
            got.starts_with(want),
            "for {body:?}\n got: {got}\nwant: {want}…"
        );
    }
}

#[test]
fn header_errors() {
    let e = |t: &str| parse("h.scenario", t).unwrap_err().to_string();
    assert!(
        e("source bug \"x\"\nwait 1s\n")
            .starts_with("h.scenario:2:1: expected 'scenario ID' first")
    );
    assert!(
        e("scenario a\nwait 1s\n").starts_with("h.scenario:2:1: expected at least one 'source")
    );
    assert!(
        e("scenario a\nsource bug \"x\"\n")
            .starts_with("h.scenario:2:1: expected at least one timeline step")
    );
    assert!(
        e("scenario a\nsource rumour \"x\"\n")
            .starts_with("h.scenario:2:8: expected seed, bug, rfc or design")
    );
    assert!(
        e("scenario a\nsource bug x\n")
            .starts_with("h.scenario:2:12: expected a non-empty quoted text")
    );
    assert!(
        e("scenario a\nscenario b\n").starts_with("h.scenario:2:1: expected one 'scenario' line")
    );
    assert!(e("scenario a\ndevice f1 nokia\n").starts_with(
        "h.scenario:2:11: expected a model (gaht, c200, d8 or c100), found \"nokia\""
    ));
    assert!(e("scenario a\ndevice f1 gaht serial=AB\n").starts_with(
        "h.scenario:2:16: expected serial=SERIAL: serial number must be 9-256 characters"
    ));
    assert!(
        e("scenario a\ndevice f1 gaht color=red\n")
            .starts_with("h.scenario:2:16: expected one of serial, offset")
    );
    assert!(
        e("scenario a\ndevice f1 gaht\ndevice f1 gaht\n")
            .starts_with("h.scenario:3:8: the name \"f1\" is already declared")
    );
    assert!(
        e("scenario a\nuser root\n").starts_with("h.scenario:2:6: the root user is always there")
    );
    assert!(
        e("scenario a\ndevice f1 c100 period=60s\n")
            .starts_with("h.scenario:2:16: period applies to time-based models only")
    );
    assert!(
        e("scenario a\ndevice f1 gaht secret=hex:zz\n")
            .starts_with("h.scenario:2:16: expected secret=hex:")
    );
    assert!(e("scenario a\nsetting nokey\n").starts_with("h.scenario:2:9: expected KEY=VALUE"));
    assert!(e("scenario a\nstart noon\n").starts_with("h.scenario:2:7: expected a time"));
}

#[test]
fn junk_never_panics() {
    // Arbitrary bytes and truncations of real files: an error or a scenario, never a panic.
    let real = suite::builtin_files()[0].1;
    for cut in 0..real.len() {
        if real.is_char_boundary(cut) {
            let _ = parse("cut.scenario", &real[..cut]);
        }
    }
    for junk in [
        "\u{0}\u{1}\"",
        "->",
        "press ->",
        "scenario é\n",
        "\"",
        "#\n#",
        "scenario a\nsource bug \"\\\"\n",
    ] {
        let _ = parse("junk.scenario", junk);
    }
}

#[test]
fn a_malformed_file_stops_the_whole_load() {
    let dir = std::env::temp_dir().join(format!("fobsim-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = format!("{HEAD}press fob1 as c1\n");
    std::fs::write(
        dir.join("a.scenario"),
        good.replace("scenario t", "scenario a"),
    )
    .unwrap();
    std::fs::write(dir.join("b.scenario"), format!("{HEAD}wiat 3s\n")).unwrap();
    let e = suite::load_paths(std::slice::from_ref(&dir))
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.contains("b.scenario:5:1: expected a step"), "{e}");
}

#[test]
fn duplicate_ids_are_refused() {
    let dir = std::env::temp_dir().join(format!("fobsim-dup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = format!("{HEAD}press fob1 as c1\n");
    std::fs::write(dir.join("a.scenario"), &good).unwrap();
    std::fs::write(dir.join("b.scenario"), &good).unwrap();
    let e = suite::load_paths(std::slice::from_ref(&dir))
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.contains("scenario id \"t\" is already used"), "{e}");
}

/// Random scenarios from the language's own words: parsing never panics,
/// and whatever parses also runs without panicking.
#[test]
fn random_scenarios_parse_or_fail_cleanly_and_run_without_panics() {
    use fobsim_harness::driver::InProcess;
    use fobsim_harness::runner::Runner;
    use fobsim_harness::testing::ModelEngine;

    let words = [
        "press fob1 as c1",
        "press fob2 as c2",
        "press fob1 -> blank",
        "look fob1 as c3",
        "wait 30s",
        "wait 1y",
        "wait 99999y",
        "align 30s",
        "at @1",
        "at @99999999999",
        "enable alice fob1 c1 c2 -> ok",
        "enable root fob2 c2 c1 via api -> rejected",
        "resync alice fob1 c1 c2 -> ok",
        "deactivate alice fob1 -> ok",
        "replace alice fob1 fob2 c1 c2 -> ok",
        "sign-in alice c1 -> ok",
        "sign-in root -> AccessDenied",
        "session alice serial:X c1 -> ok",
        "devices alice -> none",
        "recover root -> ok",
        "lose fob1",
        "find fob1",
        "battery fob1 dead",
        "battery fob1 new",
        "drift fob1 offset=+9999999h ppm=99999",
        "drift fob2 ppm=-99999 jitter=49d",
        "expect fob1 steps -99999999999..99999999999",
        "expect fob2 locked",
        "expect c1 == c2",
        "expect c1[0..3] != c2[3..6]",
        "sign-in alice wrong -> AccessDenied !DeviceLocked",
        "session alice fob1 random -> rejected ~\"invalid\"",
        "session alice key=2 fob1 c1 -> ok",
        "clock server -10y",
        "clock server +99999y",
        "clock server reset",
        "import fob1 -> ValidationError",
        "import fob2 -> ok",
        "repeat 3",
        "end",
        "wait",
        "-> ok",
        "\"",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut ran = 0;
    for _ in 0..3000 {
        let mut text = String::from(
            "scenario r\nsource bug \"b\"\ndevice fob1 gaht ppm=20\ndevice fob2 c200 offset=-1y\nuser alice keys=2\n",
        );
        for _ in 0..(2 + next(6)) {
            text.push_str(words[next(words.len())]);
            text.push('\n');
        }
        if let Ok(s) = parse("r.scenario", &text) {
            let mut engine = ModelEngine::new();
            let mut fobs = InProcess;
            let _ = Runner::new(&mut engine, &mut fobs, 1).run(&s);
            ran += 1;
        }
    }
    assert!(ran > 20, "only {ran} random scenarios parsed");
}

/// The errors of the constructs added for QA repros (issue 16 §2) and the
/// pre-run checks of issue 18, pinned as a snapshot: each one's
/// `file:line:col` and wording.
#[test]
fn errors_of_the_repro_constructs() {
    let cases: &[&str] = &[
        // Outcomes: unknown names, refinements.
        "press fob1 as c1\nenable alice fob1 c1 c1 -> Denied\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> accessdenied\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> AccessDenied !Locked\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> ok !DeviceLocked\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> AccessDenied !AccessDenied\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> AccessDenied \"invalid\"\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> AccessDenied ~\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> AccessDenied ~\"unclosed\n",
        "press fob1 as c1\nenable alice fob1 c1 c1 -> AccessDenied locked\n",
        // Code parts.
        "press fob1 as c1\nsign-in alice c1[0..7] -> rejected\n",
        "press fob1 as c1\nsign-in alice c1[3..3] -> rejected\n",
        "press fob1 as c1\nsign-in alice c1[0..x] -> rejected\n",
        "sign-in alice c9[0..6] -> rejected\n",
        // Seeded guesses.
        "sign-in alice wrong:0 -> rejected\n",
        "sign-in alice random:11 -> rejected\n",
        "press fob1 as wrong\n",
        // Code comparison.
        "press fob1 as c1\nexpect c1 == c2\n",
        "press fob1 as c1\nexpect c1 == c1 extra\n",
        // Server clock.
        "clock server 10m\n",
        "clock fob1 +10m\n",
        "clock server\n",
        "clock server -57y\n",
        "clock server +7974y\n",
        "repeat 60\nclock server -1y\nend\n",
        // Access keys.
        "press fob1 as c1\nsession alice key=2 fob1 c1 -> ok\n",
        "press fob1 as c1\nsession alice key=0 fob1 c1 -> ok\n",
        // Import.
        "import fob9 -> ok\n",
        "import fob1\n",
    ];
    let mut out = String::new();
    for body in cases {
        out.push_str(&format!("{body}=> {}\n\n", err(body)));
    }
    let e = |t: &str| parse("h.scenario", t).unwrap_err().to_string();
    for text in [
        "scenario a\nsource bug \"b\"\nuser alice keys=3\n",
        "scenario a\nsource bug \"b\"\nuser alice keys\n",
        "scenario a\nsource bug \"b\"\nsetting lockout_threshold=3 lockout_threshold=4\n",
        "scenario a\nsource bug \"b\"\ndevice f1 c100 unregistered\nimport f1 -> ok\n",
    ] {
        out.push_str(&format!("{text}=> {}\n\n", e(text)));
    }
    insta::assert_snapshot!("repro_construct_errors", out);
}
