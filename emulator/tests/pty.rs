//! The serial transport on real pseudo-terminals, driven by the library's
//! own client (the serialport crate). Third-party clients: `third_party.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::time::Duration;

use fobsim_core::derive_secret;
use fobsim_core::{Timestamp, Totp};
use fobsim_emulator::FleetSpec;
use fobsim_emulator::serial::client::{ClientError, SerialClient};
use fobsim_emulator::testing::SerialTestbed;
use fobsim_firmware::{Display, Drift, preset};

/// Generous: only bounds how long a broken test hangs.
const TIMEOUT: Duration = Duration::from_secs(10);
const START: Timestamp = Timestamp::from_secs(1_700_000_000);

fn testbed(test_mode: bool) -> SerialTestbed {
    let mut spec = FleetSpec::uniform("gaht", 2, 42).unwrap();
    spec.fobs[0].drift = Drift {
        offset_ms: 47_000,
        ..Drift::NONE
    };
    SerialTestbed::start(&spec, START, test_mode).unwrap()
}

/// The code the RFC algorithm gives for fob `serial` (seed 42, gaht) at
/// device time `device`.
fn rfc_code(serial: &str, device: Timestamp) -> String {
    let m = preset("gaht").unwrap();
    let secret = derive_secret(42, &serial.parse().unwrap(), m.secret_len).unwrap();
    let totp = Totp::new(m.algorithm, secret.expose(), 6, 30, 0).unwrap();
    totp.code_at(device.as_secs()).unwrap().to_string()
}

#[test]
fn info_press_display_over_a_pty() {
    let tb = testbed(false);
    let port = tb.ports()[0].clone();
    assert!(port.path.starts_with("/dev/pts"), "{port:?}");
    let mut c = SerialClient::open(&port.path, TIMEOUT).unwrap();
    let info = c.info().unwrap();
    assert_eq!(info.serial, "GAHT00000001");
    assert_eq!(info.model, "gaht");
    assert_eq!((info.digits, info.step, info.protocol), (6, Some(30), 1));
    assert!(!info.test_mode);
    assert_eq!(c.display().unwrap(), Display::Blank);

    tb.advance(10_000);
    let shown = c.press().unwrap();
    let device = START.add_millis(57_000);
    assert_eq!(shown.to_string(), rfc_code("GAHT00000001", device));
    assert_eq!(c.display().unwrap(), shown);
    // The display follows the device clock into the next step while lit...
    tb.advance(14_000);
    let next = rfc_code("GAHT00000001", START.add_millis(71_000));
    assert_ne!(next, shown.to_string());
    assert_eq!(c.display().unwrap().to_string(), next);
    // ...and blanks after 15 s.
    tb.advance(1_000);
    assert_eq!(c.display().unwrap(), Display::Blank);

    // The second fob has no drift.
    let mut c2 = SerialClient::open(&tb.ports()[1].path, TIMEOUT).unwrap();
    assert_eq!(
        c2.press().unwrap().to_string(),
        rfc_code("GAHT00000002", tb.now())
    );
}

fn expect_err(c: &mut SerialClient, code: u16) {
    let line = c.read_line().unwrap();
    assert!(line.starts_with(&format!("ERR {code} ")), "{line:?}");
}

#[test]
fn garbage_nul_overlong_and_unknown_commands_get_err_and_the_fob_keeps_answering() {
    let tb = testbed(false);
    let path = tb.ports()[0].path.clone();
    let mut c = SerialClient::open(&path, TIMEOUT).unwrap();
    c.write_raw(b"\x00\x00PRESS\r\n").unwrap();
    expect_err(&mut c, 400);
    c.write_raw(b"\xff\xfe\xfd\x1b[A\n").unwrap();
    expect_err(&mut c, 400);
    c.write_raw(b"FLY\r").unwrap();
    expect_err(&mut c, 404);
    c.write_raw(b"PRESS twice\r\n").unwrap();
    expect_err(&mut c, 422);
    // 1 MiB without a newline: one ERR as soon as the line overflows, the
    // rest is dropped up to the newline.
    let junk = vec![b'A'; 1 << 20];
    c.write_raw(&junk).unwrap();
    expect_err(&mut c, 413);
    c.write_raw(b"\r\nPING\r\n").unwrap();
    assert_eq!(c.read_line().unwrap(), "OK PONG");
    // Every byte value once, then a clean command.
    let all: Vec<u8> = (0..=255u8).collect();
    c.write_raw(&all).unwrap();
    c.write_raw(b"\n").unwrap();
    for _ in 0..3 {
        // \n (10) and \r (13) end lines: bytes 0..9, 11..12, 14..255.
        let line = c.read_line().unwrap();
        assert!(line.starts_with("ERR 400 "), "{line:?}");
    }
    assert_eq!(c.info().unwrap().serial, "GAHT00000001");
    let code = c.press().unwrap();
    assert_eq!(
        code.to_string(),
        rfc_code("GAHT00000001", START.add_millis(47_000))
    );
}

#[test]
fn a_client_leaving_mid_line_or_unread_replies_does_not_disturb_the_next() {
    let tb = testbed(false);
    let path = tb.ports()[0].path.clone();
    for round in 0..5 {
        {
            let mut c = SerialClient::open(&path, TIMEOUT).unwrap();
            // Commands whose replies are never read, then half a line.
            c.write_raw(b"INFO\r\nFLY\r\nPRE").unwrap();
        }
        let mut c = SerialClient::open(&path, TIMEOUT).unwrap();
        // If "PRE" had survived, this would be "PREPING" → ERR 404; if a
        // stale reply had survived, we would read INFO's answer.
        assert_eq!(
            c.request_line("PING").unwrap(),
            fobsim_emulator::command::Response::Ok("PONG".into()),
            "round {round}"
        );
        assert_eq!(c.info().unwrap().serial, "GAHT00000001");
    }
}

#[test]
fn test_mode_commands_are_refused_without_test_mode() {
    let tb = testbed(false);
    let mut c = tb.client(0, TIMEOUT).unwrap();
    for cmd in [
        "CLOCK",
        "DRIFT offset=5s",
        "DRIFT",
        "BATTERY",
        "BATTERY DRAIN",
        "RTC RESET",
    ] {
        match c.request_line(cmd).unwrap() {
            fobsim_emulator::command::Response::Err { code, .. } => {
                assert_eq!(code, 403, "{cmd}");
            }
            other => panic!("{cmd}: {other:?}"),
        }
    }
    // Nothing changed: the fob still shows the code at +47 s.
    assert_eq!(
        c.press().unwrap().to_string(),
        rfc_code("GAHT00000001", START.add_millis(47_000))
    );
}

#[test]
fn test_mode_commands_work_in_test_mode() {
    let tb = testbed(true);
    let mut c = tb.client(0, TIMEOUT).unwrap();
    assert!(c.info().unwrap().test_mode);
    let clock = c.request(&fobsim_emulator::serial::Command::Clock).unwrap();
    let want_ms = START.as_millis() + 47_000;
    assert!(
        clock.starts_with(&format!("device_ms={want_ms} ")),
        "{clock}"
    );
    assert!(clock.contains(" offset_ms=47000 "), "{clock}");
    assert_eq!(
        c.request_line("DRIFT offset=-90s").unwrap(),
        fobsim_emulator::command::Response::Ok("offset_ms=-90000 ppm=0 jitter_ms=0".into())
    );
    assert_eq!(
        c.press().unwrap().to_string(),
        rfc_code("GAHT00000001", START.add_millis(-90_000))
    );
    assert_eq!(c.request_line("BATTERY DRAIN").unwrap(), ok("DEAD"));
    assert_eq!(c.press().unwrap(), Display::Blank);
    assert!(matches!(
        c.request(&fobsim_emulator::serial::Command::Clock),
        Err(ClientError::Refused { code: 409, .. })
    ));
    assert_eq!(c.request_line("BATTERY SWAP").unwrap(), ok("GOOD"));
    // The RTC restarted at 2000-01-01.
    let clock = c.request(&fobsim_emulator::serial::Command::Clock).unwrap();
    assert!(
        clock.contains(" device=2000-01-01T00:00:00.000Z "),
        "{clock}"
    );
    assert_eq!(
        c.press().unwrap().to_string(),
        rfc_code("GAHT00000001", Timestamp::from_secs(946_684_800))
    );
}

fn ok(s: &str) -> fobsim_emulator::command::Response {
    fobsim_emulator::command::Response::Ok(s.into())
}

#[test]
fn a_second_exclusive_opener_is_told_the_port_is_busy() {
    let tb = testbed(false);
    let path = tb.ports()[0].path.clone();
    let mut first = SerialClient::open(&path, TIMEOUT).unwrap();
    assert!(matches!(
        SerialClient::open(&path, TIMEOUT),
        Err(ClientError::Busy { .. })
    ));
    assert_eq!(first.request_line("PING").unwrap(), ok("PONG"));
    drop(first);
    // Released on close.
    let mut again = SerialClient::open(&path, TIMEOUT).unwrap();
    assert_eq!(again.request_line("PING").unwrap(), ok("PONG"));
    drop(again);
    // Shared openers coexist.
    let mut a = SerialClient::open_shared(&path, TIMEOUT).unwrap();
    let b = SerialClient::open_shared(&path, TIMEOUT).unwrap();
    assert_eq!(a.request_line("PING").unwrap(), ok("PONG"));
    drop(b);
}
