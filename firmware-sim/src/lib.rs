//! fobsim's simulated hardware MFA key-fob.
//!
//! Pure and synchronous: no IO, and nothing here reads a clock — every call
//! takes the true time as a [`Timestamp`]. A [`Fob`] has a serial number, a
//! model, a secret, a drifting [`Rtc`], a battery, a button and a display.
//!
//! ```
//! use fobsim_core::Timestamp;
//! use fobsim_firmware::{preset, Fob, FobSpec};
//! let now = Timestamp::from_secs(1_700_000_000);
//! let model = preset("gaht").unwrap();
//! let mut fob = Fob::new(FobSpec::seeded(model, model.serial(1).unwrap(), 42, now).unwrap()).unwrap();
//! let shown = fob.press(now);
//! assert!(shown.code().is_some());
//! assert!(fob.display(now.add_millis(16_000)).code().is_none()); // blanks after 15 s
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fob;
mod model;
mod rtc;

pub use fob::{Battery, DEFAULT_RTC_RESET, Display, Fob, FobError, FobInfo, FobSpec};
pub use model::{Model, PRESETS, preset};
pub use rtc::{Drift, DriftChange, JITTER_WINDOW_MS, Rtc, YEAR_MS};
