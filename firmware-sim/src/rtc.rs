//! The device's real-time clock: device time as a function of true time.
//!
//! `device(t) = anchor_device + (t - anchor_true) * (1 + ppm / 1e6) + jitter(t)`
//!
//! The anchor is when the RTC was last set (at the factory, or by a battery
//! swap). Skew accumulates from there: a +20 ppm crystal is about 631 s
//! ahead a year later. Jitter is bounded (`±jitter_ms`), deterministic from a
//! seed, and constant within each hour of true time.

use fobsim_core::Timestamp;

/// Jitter is drawn once per window of true time.
pub const JITTER_WINDOW_MS: u64 = 3_600_000;

/// One Julian year in milliseconds (365.25 days), used by [`Drift::aged`].
pub const YEAR_MS: i64 = 31_557_600_000;

/// How a device clock deviates from true time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Drift {
    /// Device time minus true time when the RTC is anchored, in ms.
    pub offset_ms: i64,
    /// Constant frequency error in parts per million (+ = runs fast).
    pub ppm: f64,
    /// Bound of the deterministic jitter, in ms (0 = none).
    pub jitter_ms: u32,
}

impl Drift {
    /// No drift at all.
    pub const NONE: Drift = Drift {
        offset_ms: 0,
        ppm: 0.0,
        jitter_ms: 0,
    };

    /// The offset a crystal with `ppm` error accumulates over `years`
    /// starting from a perfectly set clock, with the same skew going on.
    /// `Drift::aged(3.0, 20.0)` is about +31.5 min (63 steps of 30 s); the
    /// Feitian-like field reports of 7–8 steps of 60 s after three years are
    /// about `Drift::aged(3.0, 4.75)`.
    #[must_use]
    pub fn aged(years: f64, ppm: f64) -> Drift {
        Drift {
            offset_ms: (years * YEAR_MS as f64 * ppm * 1e-6).round() as i64,
            ppm,
            jitter_ms: 0,
        }
    }
}

/// SplitMix64: a tiny, well-mixed deterministic hash for jitter.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The device's RTC state.
#[derive(Debug, Clone, PartialEq)]
pub struct Rtc {
    anchor_true: Timestamp,
    anchor_device_ms: i64,
    ppm: f64,
    jitter_ms: u32,
    jitter_seed: u64,
}

impl Rtc {
    /// An RTC set at true time `set_at` with `drift`; jitter drawn from `seed`.
    #[must_use]
    pub fn new(set_at: Timestamp, drift: Drift, seed: u64) -> Self {
        Rtc {
            anchor_true: set_at,
            anchor_device_ms: ms_i64(set_at).saturating_add(drift.offset_ms),
            ppm: drift.ppm,
            jitter_ms: drift.jitter_ms,
            jitter_seed: seed,
        }
    }

    fn jitter(&self, now: Timestamp) -> i64 {
        if self.jitter_ms == 0 {
            return 0;
        }
        let window = now.as_millis() / JITTER_WINDOW_MS;
        let span = 2 * u64::from(self.jitter_ms) + 1;
        (splitmix64(self.jitter_seed ^ splitmix64(window)) % span) as i64
            - i64::from(self.jitter_ms)
    }

    /// Device time without jitter, in ms since the Unix epoch (may be
    /// negative for a clock set far back).
    fn smooth_ms(&self, now: Timestamp) -> i64 {
        let elapsed = now.millis_since(self.anchor_true) as f64;
        let scaled = (elapsed * (1.0 + self.ppm * 1e-6)).floor();
        self.anchor_device_ms.saturating_add(scaled as i64)
    }

    /// Device time at true time `now`, in ms since the Unix epoch.
    #[must_use]
    pub fn device_ms(&self, now: Timestamp) -> i64 {
        self.smooth_ms(now).saturating_add(self.jitter(now))
    }

    /// The earliest true time after `now` at which the device clock reaches
    /// `device_target_ms` (ignoring jitter changes, which happen only at
    /// window boundaries — those are returned if earlier). Never earlier
    /// than `now + 1 ms`.
    #[must_use]
    pub fn true_time_of(&self, now: Timestamp, device_target_ms: i64) -> Timestamp {
        let rate = 1.0 + self.ppm * 1e-6;
        let ahead = (device_target_ms - self.device_ms(now)) as f64;
        let mut t = if rate > 0.0 {
            now.add_millis((ahead / rate).ceil().max(1.0) as i64)
        } else {
            Timestamp::from_millis(u64::MAX)
        };
        // Floating point rounding: settle on the first millisecond at which
        // the device really is there.
        for _ in 0..8 {
            if self.device_ms(t) >= device_target_ms {
                break;
            }
            t = t.add_millis(1);
        }
        for _ in 0..8 {
            let earlier = t.add_millis(-1);
            if earlier <= now || self.device_ms(earlier) < device_target_ms {
                break;
            }
            t = earlier;
        }
        if self.jitter_ms > 0 {
            let next_window =
                (now.as_millis() / JITTER_WINDOW_MS + 1).saturating_mul(JITTER_WINDOW_MS);
            t = t.min(Timestamp::from_millis(next_window));
        }
        t
    }

    /// Change the drift from `now` on: the device clock is set to
    /// `now + drift.offset_ms` and runs with the new skew and jitter.
    pub fn set_drift(&mut self, now: Timestamp, drift: Drift) {
        let seed = self.jitter_seed;
        *self = Rtc::new(now, drift, seed);
    }

    /// Change only the skew from `now` on, keeping the device time continuous.
    pub fn set_ppm(&mut self, now: Timestamp, ppm: f64) {
        self.anchor_device_ms = self.smooth_ms(now);
        self.anchor_true = now;
        self.ppm = ppm;
    }

    /// Reset the clock, as a battery swap does: at true time `now` the device
    /// reads `reset_to`, and runs on with its crystal's skew.
    pub fn reset(&mut self, now: Timestamp, reset_to: Timestamp) {
        self.anchor_true = now;
        self.anchor_device_ms = ms_i64(reset_to);
    }

    /// Current drift parameters: the offset is device minus true time at `now`.
    #[must_use]
    pub fn drift_at(&self, now: Timestamp) -> Drift {
        Drift {
            offset_ms: self.device_ms(now) - ms_i64(now),
            ppm: self.ppm,
            jitter_ms: self.jitter_ms,
        }
    }
}

fn ms_i64(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

/// A change of some parts of a fob's [`Drift`] (`None`: keep): what the
/// serial `DRIFT` command, the control plane and the fob panel ask for.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DriftChange {
    /// New offset (device minus true time), in ms.
    pub offset_ms: Option<i64>,
    /// New skew in ppm.
    pub ppm: Option<f64>,
    /// New jitter bound in ms.
    pub jitter_ms: Option<u32>,
}

impl DriftChange {
    /// True when nothing is to be changed (a query).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.offset_ms.is_none() && self.ppm.is_none() && self.jitter_ms.is_none()
    }

    /// Apply to `fob` at `now`: nothing for a query; a ppm-only change
    /// re-anchors the skew at `now` (device time does not jump); otherwise
    /// the given parts replace the current drift's.
    ///
    /// # Errors
    /// The fob refuses the values (e.g. an out-of-range skew).
    pub fn apply(&self, fob: &mut crate::Fob, now: Timestamp) -> Result<(), crate::FobError> {
        match (self.offset_ms, self.ppm, self.jitter_ms) {
            (None, None, None) => Ok(()),
            (None, Some(ppm), None) => fob.set_ppm(now, ppm),
            _ => {
                let cur = fob.drift(now);
                fob.set_drift(
                    now,
                    Drift {
                        offset_ms: self.offset_ms.unwrap_or(cur.offset_ms),
                        ppm: self.ppm.unwrap_or(cur.ppm),
                        jitter_ms: self.jitter_ms.unwrap_or(cur.jitter_ms),
                    },
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_ppm_is_about_631_s_per_year() {
        let start = Timestamp::from_secs(1_700_000_000);
        let rtc = Rtc::new(
            start,
            Drift {
                ppm: 20.0,
                ..Drift::NONE
            },
            0,
        );
        let later = start.add_millis(YEAR_MS);
        let ahead = rtc.device_ms(later) - ms_i64(later);
        assert!((631_000..=631_200).contains(&ahead), "{ahead}");
    }

    #[test]
    fn jitter_is_bounded_and_deterministic() {
        let start = Timestamp::from_secs(1_700_000_000);
        let d = Drift {
            jitter_ms: 500,
            ..Drift::NONE
        };
        let a = Rtc::new(start, d, 42);
        let b = Rtc::new(start, d, 42);
        for h in 0..500 {
            let t = start.add_millis(h * 3_600_000 + 17);
            let j = a.device_ms(t) - ms_i64(t);
            assert!(j.abs() <= 500);
            assert_eq!(a.device_ms(t), b.device_ms(t));
        }
    }

    #[test]
    fn true_time_of_lands_on_target() {
        let start = Timestamp::from_secs(1_700_000_000);
        for ppm in [-50.0, 0.0, 20.0, 1000.0] {
            let rtc = Rtc::new(
                start,
                Drift {
                    offset_ms: 4_321,
                    ppm,
                    jitter_ms: 0,
                },
                1,
            );
            let now = start.add_millis(123_456_789);
            let target = rtc.device_ms(now) + 30_000;
            let t = rtc.true_time_of(now, target);
            assert!(rtc.device_ms(t) >= target);
            assert!(rtc.device_ms(t.add_millis(-1)) < target);
        }
    }

    #[test]
    fn set_ppm_keeps_time_continuous() {
        let start = Timestamp::from_secs(1_700_000_000);
        let mut rtc = Rtc::new(
            start,
            Drift {
                offset_ms: 10_000,
                ppm: 20.0,
                jitter_ms: 0,
            },
            0,
        );
        let now = start.add_millis(YEAR_MS);
        let before = rtc.device_ms(now);
        rtc.set_ppm(now, -20.0);
        assert_eq!(rtc.device_ms(now), before);
    }
}
