//! The fob: a button, a display, an RTC, a battery and a secret it never
//! reveals except through a vendor seed record.

use fobsim_core::{
    Code, Hotp, Kind, OtpError, Secret, SeedRecord, Serial, SerialError, Timestamp, Totp,
    derive_secret,
};

use crate::model::Model;
use crate::rtc::{Drift, Rtc};

/// What the display shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Nothing (not pressed, timed out, or dead battery).
    Blank,
    /// A code.
    Code(Code),
}

impl Display {
    /// The code, if one is shown.
    #[must_use]
    pub fn code(self) -> Option<Code> {
        match self {
            Display::Blank => None,
            Display::Code(c) => Some(c),
        }
    }
}

impl std::fmt::Display for Display {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Display::Blank => f.write_str("blank"),
            Display::Code(c) => c.fmt(f),
        }
    }
}

/// Battery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Battery {
    /// Working.
    Good,
    /// Dead: blank display, button does nothing, the RTC has stopped.
    Dead,
}

/// Errors building or driving a fob.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FobError {
    /// The serial number is invalid.
    #[error(transparent)]
    Serial(#[from] SerialError),
    /// The OTP parameters are invalid.
    #[error(transparent)]
    Otp(#[from] OtpError),
    /// A drift value is not finite or out of range.
    #[error("invalid drift: {0}")]
    Drift(String),
}

/// Everything needed to build a fob.
#[derive(Debug, Clone)]
pub struct FobSpec {
    /// Serial number printed on the back.
    pub serial: Serial,
    /// The model (a preset or a custom one).
    pub model: Model,
    /// The shared secret the vendor programmed.
    pub secret: Secret,
    /// Clock deviation at `rtc_set_at` and from then on.
    pub drift: Drift,
    /// True time at which the RTC was set (manufacture).
    pub rtc_set_at: Timestamp,
    /// Seed of the jitter sequence.
    pub jitter_seed: u64,
    /// What the RTC reads right after a battery swap.
    pub rtc_reset_to: Timestamp,
    /// Initial HOTP counter (event models).
    pub counter: u64,
}

/// Default device time after an RTC reset: 2000-01-01T00:00:00Z.
pub const DEFAULT_RTC_RESET: Timestamp = Timestamp::from_secs(946_684_800);

impl FobSpec {
    /// A fob of `model` with a secret derived deterministically from `seed`
    /// and the serial (same seed + serial → same secret), no drift, RTC set
    /// at `now`.
    ///
    /// # Errors
    /// [`FobError::Otp`] if the model's parameters are invalid.
    pub fn seeded(
        model: &Model,
        serial: Serial,
        seed: u64,
        now: Timestamp,
    ) -> Result<Self, FobError> {
        let secret = derive_secret(seed, &serial, model.secret_len)?;
        Ok(FobSpec {
            serial,
            model: model.clone(),
            secret,
            drift: Drift::NONE,
            rtc_set_at: now,
            jitter_seed: seed ^ 0x6a09_e667_f3bc_c908,
            rtc_reset_to: DEFAULT_RTC_RESET,
            counter: 0,
        })
    }
}

#[derive(Debug, Clone)]
enum Generator {
    Totp(Totp),
    Hotp(Hotp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lit {
    Off,
    /// A time-based display follows the device's current step while lit.
    Live {
        until: Timestamp,
    },
    /// An event display shows one code until it blanks.
    Fixed {
        code: Code,
        until: Timestamp,
    },
}

/// What a fob tells about itself (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FobInfo {
    /// Serial number.
    pub serial: Serial,
    /// Model name.
    pub model: &'static str,
    /// Time- or event-based.
    pub kind: Kind,
    /// Digits shown.
    pub digits: u8,
    /// HMAC hash.
    pub algorithm: fobsim_core::Algorithm,
}

/// A simulated hardware token. Synchronous and pure: every method takes the
/// true time; nothing reads a clock. Same spec + same calls → same outputs.
#[derive(Debug, Clone)]
pub struct Fob {
    serial: Serial,
    model: Model,
    secret: Secret,
    generator: Generator,
    rtc: Rtc,
    rtc_reset_to: Timestamp,
    battery: Battery,
    lit: Lit,
    counter: u64,
    presses: u64,
}

fn check_drift(d: &Drift) -> Result<(), FobError> {
    if !d.ppm.is_finite() || d.ppm.abs() > 100_000.0 {
        // `1e308` is said as such, not as its 309 digits.
        let shown = if d.ppm.abs() < 1e9 {
            d.ppm.to_string()
        } else {
            format!("{:e}", d.ppm)
        };
        return Err(FobError::Drift(format!(
            "skew {shown} ppm is outside ±100000"
        )));
    }
    Ok(())
}

impl Fob {
    /// Build a fob.
    ///
    /// # Errors
    /// [`FobError`] for invalid OTP parameters or drift.
    pub fn new(spec: FobSpec) -> Result<Self, FobError> {
        check_drift(&spec.drift)?;
        let m = &spec.model;
        let key = spec.secret.expose();
        let generator = match m.kind {
            Kind::Totp { period } => {
                Generator::Totp(Totp::new(m.algorithm, key, u32::from(m.digits), period, 0)?)
            }
            Kind::Hotp => Generator::Hotp(Hotp::new(m.algorithm, key, u32::from(m.digits))?),
        };
        Ok(Fob {
            rtc: Rtc::new(spec.rtc_set_at, spec.drift, spec.jitter_seed),
            serial: spec.serial,
            model: spec.model,
            secret: spec.secret,
            generator,
            rtc_reset_to: spec.rtc_reset_to,
            battery: Battery::Good,
            lit: Lit::Off,
            counter: spec.counter,
            presses: 0,
        })
    }

    /// Serial number.
    #[must_use]
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// The model.
    #[must_use]
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Public facts about the device.
    #[must_use]
    pub fn info(&self) -> FobInfo {
        FobInfo {
            serial: self.serial.clone(),
            model: self.model.name,
            kind: self.model.kind,
            digits: self.model.digits,
            algorithm: self.model.algorithm,
        }
    }

    /// The vendor seed record (for PSKC/CSV export only).
    #[must_use]
    pub fn seed_record(&self) -> SeedRecord {
        SeedRecord {
            serial: self.serial.clone(),
            kind: self.model.kind,
            algorithm: self.model.algorithm,
            digits: self.model.digits,
            secret: self.secret.clone(),
            counter: self.counter,
        }
    }

    /// Battery state.
    #[must_use]
    pub fn battery(&self) -> Battery {
        self.battery
    }

    /// How many times the button was pressed.
    #[must_use]
    pub fn presses(&self) -> u64 {
        self.presses
    }

    /// The HOTP counter (the next press shows this counter's code).
    #[must_use]
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Device time in ms since the Unix epoch, `None` with a dead battery.
    #[must_use]
    pub fn device_ms(&self, now: Timestamp) -> Option<i64> {
        (self.battery == Battery::Good).then(|| self.rtc.device_ms(now))
    }

    /// The TOTP step the device is in, `None` for event fobs, a dead
    /// battery or a device clock before 1970.
    #[must_use]
    pub fn device_step(&self, now: Timestamp) -> Option<u64> {
        let Generator::Totp(t) = &self.generator else {
            return None;
        };
        let ms = u64::try_from(self.device_ms(now)?).ok()?;
        t.step_at(ms / 1000).ok()
    }

    /// The current drift: device minus true time at `now`, skew, jitter.
    #[must_use]
    pub fn drift(&self, now: Timestamp) -> Drift {
        self.rtc.drift_at(now)
    }

    /// Press the button; returns what the display then shows.
    pub fn press(&mut self, now: Timestamp) -> Display {
        if self.battery == Battery::Dead {
            return Display::Blank;
        }
        self.presses += 1;
        let until = now.add_millis(i64::try_from(self.model.display_ms).unwrap_or(i64::MAX));
        self.lit = match &self.generator {
            Generator::Totp(_) => Lit::Live { until },
            Generator::Hotp(h) => {
                let code = h.code(self.counter);
                self.counter = self.counter.wrapping_add(1);
                Lit::Fixed { code, until }
            }
        };
        self.display(now)
    }

    /// What the display shows at `now`.
    #[must_use]
    pub fn display(&self, now: Timestamp) -> Display {
        if self.battery == Battery::Dead {
            return Display::Blank;
        }
        match self.lit {
            Lit::Off => Display::Blank,
            Lit::Live { until } if now < until => match (self.device_step(now), &self.generator) {
                (Some(step), Generator::Totp(t)) => Display::Code(t.code_for_step(step)),
                _ => Display::Blank,
            },
            Lit::Fixed { code, until } if now < until => Display::Code(code),
            Lit::Live { .. } | Lit::Fixed { .. } => Display::Blank,
        }
    }

    /// The next true time after `now` at which the display may change
    /// (blanking, or the device stepping to a new code), `None` while blank.
    /// Like smoltcp's `poll_at`: come back no later than this.
    #[must_use]
    pub fn next_deadline(&self, now: Timestamp) -> Option<Timestamp> {
        if self.display(now) == Display::Blank {
            return None;
        }
        match self.lit {
            Lit::Off => None,
            Lit::Fixed { until, .. } => Some(until),
            Lit::Live { until } => {
                let period_ms = i64::try_from(self.model.period()?.saturating_mul(1000)).ok()?;
                let dev = self.rtc.device_ms(now);
                let next_step_ms = dev
                    .div_euclid(period_ms)
                    .saturating_add(1)
                    .saturating_mul(period_ms);
                Some(until.min(self.rtc.true_time_of(now, next_step_ms)))
            }
        }
    }

    /// Change the clock drift from `now` on (the offset is set relative to
    /// true time now).
    ///
    /// # Errors
    /// [`FobError::Drift`] for a non-finite or absurd skew; the fob is unchanged.
    pub fn set_drift(&mut self, now: Timestamp, drift: Drift) -> Result<(), FobError> {
        check_drift(&drift)?;
        self.rtc.set_drift(now, drift);
        Ok(())
    }

    /// Change only the skew from `now`, keeping device time continuous.
    ///
    /// # Errors
    /// [`FobError::Drift`] for a non-finite or absurd skew; the fob is unchanged.
    pub fn set_ppm(&mut self, now: Timestamp, ppm: f64) -> Result<(), FobError> {
        check_drift(&Drift { ppm, ..Drift::NONE })?;
        self.rtc.set_ppm(now, ppm);
        Ok(())
    }

    /// The battery dies: the display blanks and the button stops working.
    pub fn drain_battery(&mut self, _now: Timestamp) {
        self.battery = Battery::Dead;
        self.lit = Lit::Off;
    }

    /// A fresh battery: the fob works again but its RTC was reset and reads
    /// the reset time (2000-01-01 by default) at `now`.
    pub fn swap_battery(&mut self, now: Timestamp) {
        self.battery = Battery::Good;
        self.lit = Lit::Off;
        self.rtc.reset(now, self.rtc_reset_to);
    }

    /// Reset the RTC without a battery swap (a test-mode command).
    pub fn reset_rtc(&mut self, now: Timestamp) {
        self.rtc.reset(now, self.rtc_reset_to);
    }
}
