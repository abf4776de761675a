//! Every third-party adapter accepts a correct code and rejects a wrong one
//! at a faked time taken from the RFC 6238 vectors (SHA1 rows of
//! `fixtures/vectors/rfc6238.csv`). An engine that is not installed fails
//! the test with its install hint — these tests never skip
//! (`bash tests/matrix/setup.sh` installs everything).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_core::{Algorithm, Kind, Secret, SeedRecord, Serial, Timestamp};
use fobsim_core::{Channel, Principal};
use fobsim_engines as adapters;
use fobsim_harness::adapter::{Account, Answer, EngineAdapter, Request, Setup, user_password};

/// SHA1 rows: (unix time, 8-digit code).
fn sha1_vectors() -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/vectors/rfc6238.csv"
    ))
    .expect("fixtures/vectors/rfc6238.csv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(4) == Some(&"SHA1")).then(|| (f[0].parse().unwrap(), f[3].to_string()))
        })
        .collect()
}

fn code_at(t: u64, digits: usize) -> String {
    let (_, c) = sha1_vectors()
        .into_iter()
        .find(|(tt, _)| *tt == t)
        .unwrap_or_else(|| panic!("no RFC 6238 SHA1 vector at {t}"));
    c[c.len() - digits..].to_string()
}

/// The code with its last digit changed.
fn wrong(code: &str) -> String {
    let mut s: Vec<char> = code.chars().collect();
    let last = s.last_mut().unwrap();
    *last = char::from(b'0' + (last.to_digit(10).unwrap() as u8 + 1) % 10);
    s.into_iter().collect()
}

fn open(name: &str) -> Box<dyn EngineAdapter> {
    adapters::open(name, 1).unwrap_or_else(|e| panic!("engine {name} cannot run here: {e}"))
}

fn setup(digits: u8) -> Setup {
    Setup {
        scenario: "matrix-adapters".into(),
        account: Account::default(),
        users: vec![("alice".into(), user_password("alice"))],
        access_keys: Vec::new(),
        seeds: vec![SeedRecord {
            serial: Serial::new("RFC6238-SHA1").unwrap(),
            kind: Kind::Totp { period: 30 },
            algorithm: Algorithm::Sha1,
            digits,
            secret: Secret::new(b"12345678901234567890".to_vec()).unwrap(),
            counter: 0,
        }],
        settings: Vec::new(),
        start: Timestamp::from_secs(1_111_111_109),
    }
}

fn alice() -> Principal {
    Principal::User("alice".into())
}

fn sign_in(engine: &mut dyn EngineAdapter, t: u64, code: String) -> Answer {
    engine
        .call(
            Timestamp::from_secs(t),
            &Request::SignIn {
                who: alice(),
                password_ok: true,
                code: Some(code),
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", engine.name()))
}

/// Enable with the consecutive vector rows at 1111111109 and 1111111111,
/// then at 1234567890 and 2000000000: the wrong code is refused, the
/// vector's code accepted.
fn accepts_right_rejects_wrong(name: &str, digits: usize) {
    let mut engine = open(name);
    let e = engine.as_mut();
    e.begin(&setup(u8::try_from(digits).unwrap()))
        .unwrap_or_else(|err| panic!("{name}: {err}"));
    let enable = Request::Enable {
        who: alice(),
        serial: "RFC6238-SHA1".into(),
        code1: code_at(1_111_111_109, digits),
        code2: code_at(1_111_111_111, digits),
        channel: Channel::Console,
    };
    let a = e
        .call(Timestamp::from_secs(1_111_111_111), &enable)
        .unwrap_or_else(|err| panic!("{name}: {err}"));
    assert!(a.is_ok(), "{name}: enable with the RFC codes: {a:?}");
    for t in [1_234_567_890, 2_000_000_000] {
        let good = code_at(t, digits);
        let a = sign_in(e, t, wrong(&good));
        assert!(
            !a.is_ok(),
            "{name}: a wrong code was accepted at @{t}: {a:?}"
        );
        let a = sign_in(e, t, good);
        assert!(a.is_ok(), "{name}: the RFC code at @{t} was refused: {a:?}");
    }
}

#[test]
fn oathtool_accepts_rfc_code_rejects_wrong_one() {
    accepts_right_rejects_wrong("oathtool", 8);
}

#[test]
fn pam_oath_accepts_rfc_code_rejects_wrong_one() {
    accepts_right_rejects_wrong("pam-oath", 8);
}

#[test]
fn pam_google_accepts_rfc_code_rejects_wrong_one() {
    // pam_google_authenticator takes 6-digit codes only: the vectors'
    // last 6 digits (dynamic truncation mod 10^6).
    accepts_right_rejects_wrong("pam-google", 6);
}

#[test]
fn builtin_accepts_rfc_code_rejects_wrong_one() {
    accepts_right_rejects_wrong("builtin", 8);
}

#[test]
fn oathtool_prints_the_step_distance_without_a_sign() {
    use fobsim_engines::oathtool::{OathtoolChecker, Verdict};
    let c = OathtoolChecker::new(1).unwrap_or_else(|e| panic!("{e}"));
    let seed = &setup(8).seeds[0];
    let code = code_at(1_111_111_109, 8);
    // One step late and one step early both print "1".
    let late = c
        .verify(Timestamp::from_secs(1_111_111_139), seed, &code)
        .unwrap();
    let early = c
        .verify(Timestamp::from_secs(1_111_111_079), seed, &code)
        .unwrap();
    assert_eq!(late, Verdict::Accepted(1));
    assert_eq!(early, Verdict::Accepted(1));
    let out = c
        .verify(Timestamp::from_secs(1_111_111_169), seed, &code)
        .unwrap();
    assert_eq!(out, Verdict::Rejected, "two steps late is outside -w 1");
}

#[test]
fn privacyidea_accepts_rfc_code_rejects_wrong_one() {
    accepts_right_rejects_wrong("privacyidea", 8);
}

/// moto is the contrast: it accepts the right code *and* the wrong one
/// (it checks no code). If moto ever starts checking codes, this fails.
#[test]
fn moto_accepts_rfc_code_and_also_a_wrong_one() {
    let mut engine = open("moto");
    let e = engine.as_mut();
    e.begin(&setup(6))
        .unwrap_or_else(|err| panic!("moto: {err}"));
    let (c1, c2) = (code_at(1_111_111_109, 6), code_at(1_111_111_111, 6));
    let enable = |code1: String, code2: String, serial: &str| Request::Enable {
        who: alice(),
        serial: serial.into(),
        code1,
        code2,
        channel: Channel::Api,
    };
    let now = Timestamp::from_secs(1_111_111_111);
    let a = e
        .call(now, &enable(c1.clone(), c2.clone(), "RFC6238-SHA1"))
        .unwrap();
    assert!(a.is_ok(), "moto refused the RFC codes: {a:?}");
    let t = 1_234_567_890;
    let session = |code: String| Request::Session {
        who: alice(),
        key: 1,
        serial: "RFC6238-SHA1".into(),
        code,
    };
    let good = code_at(t, 6);
    let a = e
        .call(Timestamp::from_secs(t), &session(good.clone()))
        .unwrap();
    assert!(a.is_ok(), "moto refused the RFC code: {a:?}");
    let a = e
        .call(Timestamp::from_secs(t), &session(wrong(&good)))
        .unwrap();
    assert!(
        a.is_ok(),
        "moto now rejects a wrong session code ({a:?}): update docs/conformance.md"
    );
    let a = e
        .call(now, &enable(wrong(&c1), wrong(&c2), "GAHT00000042"))
        .unwrap();
    assert!(
        a.is_ok(),
        "moto now rejects wrong enable codes ({a:?}): update docs/conformance.md"
    );
}
