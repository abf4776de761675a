//! The fleet's side of the control plane ([`fobsim_clock::control`]): the
//! list of fobs, presses, batteries, drift changes, fobs added and
//! removed, on the fleet's own clock.

use fobsim_clock::control::{
    BatteryAction, ControlError, ControlErrorCode, FobState, Fobs, NewFob, no_such_fob,
};
use fobsim_core::Timestamp;
use fobsim_firmware::{Battery, DriftChange, Fob, FobError};

use crate::fleet::{CreateError, Fleet};

/// How the control plane reports a fob (never its secret).
#[must_use]
pub fn fob_state(fob: &Fob, model: &str, now: Timestamp) -> FobState {
    let d = fob.drift(now);
    FobState {
        serial: fob.serial().to_string(),
        model: model.to_string(),
        device: fob
            .device_ms(now)
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| Timestamp::from_millis(ms).to_string()),
        offset_ms: d.offset_ms,
        ppm: d.ppm,
        jitter_ms: d.jitter_ms,
        battery: match fob.battery() {
            Battery::Good => "good",
            Battery::Dead => "dead",
        }
        .to_string(),
        code: fob.display(now).code().map(|c| c.to_string()),
        shown_until: fob.next_deadline(now).map(|t| t.to_string()),
    }
}

impl Fleet {
    /// Run `f` on the fob with this serial; its state afterwards.
    fn on_fob(
        &self,
        serial: &str,
        f: impl FnOnce(&mut Fob, Timestamp) -> Result<(), ControlError>,
    ) -> Result<FobState, ControlError> {
        let index = self.index_of(serial).ok_or_else(|| no_such_fob(serial))?;
        let (_, model) = self.describe(index).ok_or_else(|| no_such_fob(serial))?;
        self.with_fob(index, |fob, now| {
            f(fob, now).map(|()| fob_state(fob, model, now))
        })
        .ok_or_else(|| no_such_fob(serial))?
    }
}

impl Fobs for Fleet {
    fn list(&self) -> Vec<FobState> {
        (0..self.slots())
            .filter_map(|i| {
                let (_, model) = self.describe(i)?;
                self.with_fob(i, |fob, now| fob_state(fob, model, now))
            })
            .collect()
    }

    fn drift(&self, serial: &str, change: DriftChange) -> Result<FobState, ControlError> {
        self.on_fob(serial, |fob, now| {
            change.apply(fob, now).map_err(|e| {
                // The firmware refuses only a skew out of range.
                ControlError::new(ControlErrorCode::BadValue, e.to_string()).with_field("ppm")
            })
        })
    }

    fn fob(&self, serial: &str) -> Result<FobState, ControlError> {
        self.on_fob(serial, |_, _| Ok(()))
    }

    fn press(&self, serial: &str) -> Result<FobState, ControlError> {
        self.on_fob(serial, |fob, now| {
            fob.press(now);
            Ok(())
        })
    }

    fn battery(&self, serial: &str, action: BatteryAction) -> Result<FobState, ControlError> {
        self.on_fob(serial, |fob, now| {
            match action {
                BatteryAction::Pull => fob.drain_battery(now),
                BatteryAction::Swap => fob.swap_battery(now),
            }
            Ok(())
        })
    }

    fn create(&self, new: NewFob) -> Result<FobState, ControlError> {
        let index = Fleet::create(self, &new.model, new.serial.as_deref(), &new.drift).map_err(
            |e| match e {
                CreateError::Exists(_) => {
                    ControlError::new(ControlErrorCode::Exists, e.to_string()).with_field("serial")
                }
                CreateError::Invalid(inner) => {
                    let (field, message) = match &inner {
                        crate::FleetError::UnknownModel { .. } => {
                            (Some("model"), inner.to_string())
                        }
                        // Not "fob N: …": the request names one fob.
                        crate::FleetError::Serial { source, .. } => {
                            (Some("serial"), source.to_string())
                        }
                        crate::FleetError::Fob { source, .. } => (
                            matches!(source, FobError::Drift(_)).then_some("ppm"),
                            source.to_string(),
                        ),
                        _ => (None, inner.to_string()),
                    };
                    let err = ControlError::new(ControlErrorCode::BadValue, message);
                    match field {
                        Some(f) => err.with_field(f),
                        None => err,
                    }
                }
            },
        )?;
        let (_, model) = self
            .describe(index)
            .ok_or_else(|| no_such_fob(new.serial.as_deref().unwrap_or("")))?;
        self.with_fob(index, |fob, now| fob_state(fob, model, now))
            .ok_or_else(|| no_such_fob(new.serial.as_deref().unwrap_or("")))
    }

    fn remove(&self, serial: &str) -> Result<FobState, ControlError> {
        let before = self.fob(serial)?;
        Fleet::remove(self, serial).ok_or_else(|| no_such_fob(serial))?;
        Ok(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetSpec;
    use fobsim_clock::TrueClock;
    use fobsim_clock::control::{
        ControlErrorCode, MAX_REQUEST, Request, Response, Session, apply, parse_request,
    };

    fn fleet(clock: TrueClock) -> Fleet {
        Fleet::new(&FleetSpec::uniform("gaht", 2, 3).unwrap(), clock, false).unwrap()
    }

    fn transcript(fleet: &Fleet, lines: &[&str]) -> String {
        let mut s = Session::new();
        let mut text = String::new();
        for l in lines {
            let mut out = Vec::new();
            s.feed(fleet.clock(), fleet, l.as_bytes(), &mut out);
            text.push_str(&format!(
                "> {}\n< {}",
                l.escape_debug(),
                String::from_utf8_lossy(&out)
            ));
            if out.is_empty() {
                text.push('\n');
            }
        }
        text
    }

    #[test]
    fn snapshot_manual_clock() {
        let f = fleet(TrueClock::manual(Timestamp::from_secs(1_111_111_109)));
        insta::assert_snapshot!(transcript(
            &f,
            &[
                "{\"op\":\"get\"}\n",
                "{\"op\":\"advance\",\"by\":\"30s\"}\n",
                "{\"op\":\"advance\",\"by\":\"-1h\"}\r\n",
                "{\"op\":\"set\",\"time\":\"@1111111109\"}\n",
                "{\"op\":\"set\",\"time\":\"2026-01-01T00:00:00Z\"}\n",
                "{\"op\":\"drift\",\"serial\":\"GAHT00000002\",\"offset\":\"+47s\",\"ppm\":20}\n",
                "{\"op\":\"drift\",\"serial\":\"GAHT00000002\",\"ppm\":-5}\n",
                "{\"op\":\"fobs\"}\n",
                "{\"op\":\"freeze\"}\n",
                "\n",
                "{\"op\":\"get\"",
                "}\n",
            ],
        ));
    }

    #[test]
    fn snapshot_errors() {
        let f = fleet(TrueClock::manual(Timestamp::from_secs(0)));
        insta::assert_snapshot!(transcript(
            &f,
            &[
                "not json\n",
                "[1,2]\n",
                "{\"op\":\"launch\"}\n",
                "{\"op\":\"get\",\"extra\":1}\n",
                "{\"op\":\"set\",\"time\":\"yesterday\"}\n",
                "{\"op\":\"advance\",\"by\":\"soon\"}\n",
                "{\"op\":\"drift\",\"serial\":\"NOPE00000000\"}\n",
                "{\"op\":\"drift\",\"serial\":\"GAHT00000001\",\"jitter\":\"-1s\"}\n",
                "{\"op\":\"drift\",\"serial\":\"GAHT00000001\",\"ppm\":1e300}\n",
                "\u{0}\u{1}\n",
            ],
        ));
    }

    #[test]
    fn snapshot_fob_ops() {
        let f = fleet(TrueClock::manual(Timestamp::from_secs(1_111_111_109)));
        insta::assert_snapshot!(transcript(
            &f,
            &[
                "{\"op\":\"fob\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"press\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"advance\",\"by\":\"1s\"}\n",
                "{\"op\":\"fob\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"advance\",\"by\":\"15s\"}\n",
                "{\"op\":\"fob\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"battery\",\"serial\":\"GAHT00000002\",\"action\":\"pull\"}\n",
                "{\"op\":\"press\",\"serial\":\"GAHT00000002\"}\n",
                "{\"op\":\"battery\",\"serial\":\"GAHT00000002\",\"action\":\"swap\"}\n",
                "{\"op\":\"create\",\"model\":\"c100\",\"offset\":\"+5s\"}\n",
                "{\"op\":\"press\",\"serial\":\"C100000000001\"}\n",
                "{\"op\":\"create\",\"model\":\"gaht\"}\n",
                "{\"op\":\"create\",\"model\":\"gaht\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"create\",\"model\":\"zzz\"}\n",
                "{\"op\":\"create\",\"model\":\"gaht\",\"serial\":\"x\"}\n",
                "{\"op\":\"remove\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"press\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"remove\",\"serial\":\"GAHT00000001\"}\n",
                "{\"op\":\"fobs\"}\n",
                "{\"op\":\"create\",\"model\":\"gaht\"}\n",
                "{\"op\":\"battery\",\"serial\":\"GAHT00000002\",\"action\":\"eat\"}\n",
            ],
        ));
    }

    #[test]
    fn removed_fobs_keep_their_index_and_transports_see_no_such_fob() {
        let f = fleet(TrueClock::manual(Timestamp::from_secs(0)));
        assert_eq!(f.index_of("GAHT00000002"), Some(1));
        assert_eq!(Fleet::remove(&f, "GAHT00000001"), Some(0));
        assert_eq!(f.index_of("GAHT00000001"), None);
        assert_eq!(f.index_of("GAHT00000002"), Some(1));
        assert!(f.execute(0, &crate::command::Command::Press).is_none());
        let i = Fleet::create(&f, "gaht", None, &DriftChange::default()).unwrap();
        assert_eq!(i, 2);
        assert_eq!(f.index_of("GAHT00000001"), Some(2));
        assert_eq!(f.slots(), 3);
        assert_eq!(f.len(), 2);
        // Same seed and serial: the same secret as the fob it replaces.
        let before = fleet(TrueClock::manual(Timestamp::from_secs(0))).seed_records()[0].clone();
        let again = f.with_fob(2, |fob, _| fob.seed_record()).unwrap();
        assert_eq!(before, again);
    }

    #[test]
    fn system_clock_cannot_be_moved_but_drift_can_change() {
        let f = fleet(TrueClock::System);
        for req in [
            Request::Set { time: "@0".into() },
            Request::Advance { by: "1s".into() },
            Request::Freeze,
            Request::Resume,
        ] {
            let r = apply(f.clock(), &f, &req);
            assert_eq!(
                r.error.map(|e| e.code),
                Some(ControlErrorCode::SystemClock),
                "{req:?}"
            );
        }
        let r = apply(
            f.clock(),
            &f,
            &Request::Drift {
                serial: "GAHT00000001".into(),
                offset: Some("5s".into()),
                ppm: None,
                jitter: None,
            },
        );
        assert!(r.ok);
        assert_eq!(r.fob.map(|s| s.offset_ms), Some(5000));
        assert_eq!(r.clock.map(|c| c.source), Some("system".into()));
    }

    #[test]
    fn overlong_request_is_refused_once_and_the_next_line_works() {
        let f = fleet(TrueClock::manual(Timestamp::from_secs(0)));
        let mut s = Session::new();
        let mut out = Vec::new();
        let junk = vec![b' '; 4096];
        for _ in 0..100 {
            s.feed(f.clock(), &f, &junk, &mut out);
            assert!(s.buffered() <= MAX_REQUEST);
        }
        s.feed(f.clock(), &f, b"\n{\"op\":\"get\"}\n", &mut out);
        let lines: Vec<_> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            Response::parse(lines[0]).unwrap().error.map(|e| e.code),
            Some(ControlErrorCode::TooLong)
        );
        assert!(Response::parse(lines[1]).unwrap().ok);
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Get,
            Request::Set { time: "@5".into() },
            Request::Advance { by: "-4m".into() },
            Request::Freeze,
            Request::Resume,
            Request::Fobs,
            Request::Drift {
                serial: "GAHT00000001".into(),
                offset: None,
                ppm: Some(1.5),
                jitter: Some("1s".into()),
            },
            Request::Fob {
                serial: "GAHT00000001".into(),
            },
            Request::Press {
                serial: "GAHT00000001".into(),
            },
            Request::Battery {
                serial: "GAHT00000001".into(),
                action: fobsim_clock::control::BatteryAction::Swap,
            },
            Request::Create {
                model: "c200".into(),
                serial: None,
                offset: Some("-2m".into()),
                ppm: None,
                jitter: None,
            },
            Request::Remove {
                serial: "GAHT00000001".into(),
            },
        ] {
            let line = r.to_line();
            assert_eq!(parse_request(&line[..line.len() - 1]), Ok(r));
        }
        for extra in [
            &br#"{"op":"set","time":"@1","x":1}"#[..],
            br#"{"op":"drift","serial":"GAHT00000001","colour":"red"}"#,
            br#"{"op":"fobs","all":true}"#,
            br#"{"op":"press","serial":"GAHT00000001","twice":true}"#,
            br#"{"op":"create","model":"gaht","secret":"JBSWY3DPEHPK3PXP"}"#,
        ] {
            assert_eq!(
                parse_request(extra).map_err(|e| e.code),
                Err(ControlErrorCode::BadRequest)
            );
        }
    }
}
