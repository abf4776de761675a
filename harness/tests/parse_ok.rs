//! What well-formed scenario files parse into.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_core::Channel;
use fobsim_harness::scenario::{
    Action, CodeRef, DEFAULT_START, DeviceRef, Outcome, SourceKind, parse,
};
use fobsim_harness::suite;

#[test]
fn declarations_and_steps() {
    let text = r#"
# comment line
scenario demo   # trailing comment
source seed "Each MFA device assigned to a user must be unique"
source bug "quote \" inside"
start @1111111109
setting lockout_threshold=3 lockout_period=2m
device a gaht offset=-1m30s ppm=-4.75 jitter=250ms battery=dead
device b c200 ppm=4.75 age=3y serial=C200ABCDEFGHI seed-period=30s unregistered
device v d8 secret=hex:3132 digits=8 algorithm=sha512 period=60s
user alice

press a as c1
enable alice serial:GAHT99999999 c1 123456 via api -> NoSuchEntity
repeat 3 times
  wait 1d
  look a -> blank
end
devices alice -> a,serial:XYZ123456
expect b steps -2..+3
"#;
    let s = parse("demo.scenario", text).unwrap();
    assert_eq!(s.id, "demo");
    assert_eq!(s.sources.len(), 2);
    assert_eq!(s.sources[1].kind, SourceKind::Bug);
    assert_eq!(s.sources[1].text, "quote \" inside");
    assert_eq!(s.start.as_secs(), 1_111_111_109);
    assert_ne!(s.start, DEFAULT_START);
    assert_eq!(
        s.settings,
        vec![
            ("lockout_threshold".into(), "3".into()),
            ("lockout_period".into(), "2m".into())
        ]
    );
    let a = &s.devices[0];
    assert_eq!(
        (a.drift.offset_ms, a.drift.ppm, a.drift.jitter_ms),
        (-90_000, -4.75, 250)
    );
    assert!(a.battery_dead);
    let b = &s.devices[1];
    assert!(!b.battery_dead);
    assert!(!b.registered);
    assert_eq!(b.seed_period, Some(30));
    assert_eq!(b.serial.as_deref(), Some("C200ABCDEFGHI"));
    // 3 years at 4.75 ppm ≈ 449.8 s.
    assert!(
        (449_000..=450_500).contains(&b.drift.offset_ms),
        "{}",
        b.drift.offset_ms
    );
    let v = &s.devices[2];
    assert_eq!(v.secret.as_ref().map(|x| x.0.clone()), Some(b"12".to_vec()));
    assert_eq!((v.digits, v.period), (Some(8), Some(60)));
    assert_eq!(s.steps.len(), 5);
    match &s.steps[1].action {
        Action::Enable {
            device,
            code1,
            code2,
            via,
            expect,
            ..
        } => {
            assert_eq!(device, &DeviceRef::Serial("GAHT99999999".into()));
            assert_eq!(code1, &CodeRef::Var("c1".into()));
            assert_eq!(code2, &CodeRef::Literal("123456".into()));
            assert_eq!(*via, Channel::Api);
            assert_eq!(expect, &Outcome::error("NoSuchEntity"));
        }
        other => panic!("{other:?}"),
    }
    match &s.steps[2].action {
        Action::Repeat { times, body } => assert_eq!((*times, body.len()), (3, 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.steps[2].line, 15);
    assert!(matches!(
        s.steps[4].action,
        Action::ExpectSteps {
            min: -2,
            max: 3,
            ..
        }
    ));
}

#[test]
fn the_builtin_suite_parses_and_names_its_sources() {
    let all = suite::builtin().unwrap();
    assert!(all.len() >= 40);
    for s in &all {
        assert!(!s.sources.is_empty(), "{}", s.id);
        assert_eq!(
            s.file,
            format!("fixtures/scenarios/{}.scenario", s.id),
            "file name = id"
        );
    }
}

#[test]
fn crlf_tabs_and_a_byte_order_mark_are_fine() {
    let text =
        "\u{feff}scenario crlf\r\nsource bug \"b\"\r\ndevice\tfob1\tgaht\r\npress fob1 as c1\r\n";
    let s = parse("crlf.scenario", text).unwrap();
    assert_eq!(s.id, "crlf");
    assert_eq!(s.steps[0].text, "press fob1 as c1");
}

/// The constructs added for QA repros parse into what the runner needs.
#[test]
fn repro_constructs() {
    use fobsim_harness::scenario::{Base, Refine, ServerClock};
    let text = r#"
scenario repro
source bug "aws-vault #1110"
setting lockout_threshold=3
device fob1 d8
device hot c100
user alice keys=2
user bob

import hot -> ValidationError
press fob1 as c1
expect c1 == c1
expect c1[0..6] != c1[2..8]
clock server -2m
clock server +10y
clock server reset
session alice key=2 fob1 c1[0..6] -> AccessDenied !DeviceLocked ~"invalid MFA" !~locked
sign-in bob wrong -> rejected ~invalid
sign-in bob random:8 -> rejected
session alice fob1 wrong:6 -> AccessDenied
"#;
    let s = parse("repro.scenario", text).unwrap();
    assert_eq!(s.access_keys, vec![("alice".to_string(), 2)]);
    assert_eq!(s.setting_positions, vec![(4, 9)]);
    let hot = s.devices.iter().find(|d| d.name == "hot").unwrap();
    assert!(!hot.registered, "an imported device is not given at setup");
    assert_eq!(hot.imported_at, Some(10));
    assert!(s.devices[0].registered && s.devices[0].imported_at.is_none());
    let actions: Vec<&Action> = s.steps.iter().map(|st| &st.action).collect();
    assert_eq!(
        actions[0],
        &Action::Import {
            device: "hot".into(),
            expect: Outcome::error("ValidationError"),
        }
    );
    assert_eq!(
        actions[3],
        &Action::ExpectCodes {
            left: CodeRef::Part {
                var: "c1".into(),
                from: 0,
                to: 6
            },
            equal: false,
            right: CodeRef::Part {
                var: "c1".into(),
                from: 2,
                to: 8
            },
        }
    );
    assert_eq!(
        actions[4],
        &Action::ClockServer {
            change: ServerClock::Step(-120_000)
        }
    );
    assert_eq!(
        actions[6],
        &Action::ClockServer {
            change: ServerClock::Reset
        }
    );
    let Action::Session {
        key, code, expect, ..
    } = actions[7]
    else {
        panic!("{:?}", actions[7]);
    };
    assert_eq!(*key, 2);
    assert_eq!(code.to_string(), "c1[0..6]");
    assert_eq!(expect.base, Base::Error("AccessDenied".into()));
    assert_eq!(
        expect.refine,
        vec![
            Refine::Not("DeviceLocked".into()),
            Refine::Contains("invalid MFA".into()),
            Refine::Lacks("locked".into()),
        ]
    );
    assert_eq!(
        expect.to_string(),
        "AccessDenied !DeviceLocked ~\"invalid MFA\" !~\"locked\""
    );
    let Action::SignIn { code, expect, .. } = actions[8] else {
        panic!("{:?}", actions[8]);
    };
    assert_eq!(code, &Some(CodeRef::Wrong { digits: None }));
    assert_eq!(expect.refine, vec![Refine::Contains("invalid".into())]);
    let Action::SignIn { code, .. } = actions[9] else {
        panic!("{:?}", actions[9]);
    };
    assert_eq!(code, &Some(CodeRef::Random { digits: Some(8) }));
    assert_eq!(
        code.as_ref().map(ToString::to_string).as_deref(),
        Some("random:8")
    );
}
