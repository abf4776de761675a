//! What well-formed scenario files parse into.

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
