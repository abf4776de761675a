//! A fleet: many fobs sharing one [`TrueClock`], whatever transport
//! exposes them.
//!
//! A fleet is described by a [`FleetSpec`]: `--count N --model gaht` on the
//! command line ([`FleetSpec::uniform`]), or a TOML file
//! ([`FleetSpec::from_toml`]):
//!
//! ```toml
//! seed = 7                 # secrets derive from this seed and the serial (default: --seed, 1)
//!
//! [[fob]]
//! model = "gaht"
//! serial = "GAHT00000042"  # optional: default is the model's n-th serial
//! offset = "+47s"          # device clock minus true time (optional)
//! ppm = 20.0               # crystal skew (optional)
//! jitter = "0s"            # bounded jitter (optional)
//!
//! [[fob]]
//! model = "c200"
//! count = 3                # three fobs, C200000000001..3 (not with `serial`)
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use fobsim_core::Timestamp;
use fobsim_core::time::parse_duration_ms;
use fobsim_core::{SeedRecord, Serial, SerialError};
use fobsim_firmware::{Drift, Fob, FobError, FobSpec, Model};
use serde::Deserialize;

use fobsim_clock::{TrueClock, lock};

use crate::command::{Command, Reply, execute};

/// Most fobs one fleet may hold.
pub const MAX_FLEET: usize = 100_000;

/// Why a fleet could not be described or built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// The fleet file is not valid TOML or has unknown keys.
    #[error("fleet file: {0}")]
    Toml(String),
    /// No preset has this name.
    #[error("unknown model {name:?} (see `fobsim models`)")]
    UnknownModel {
        /// The name given.
        name: String,
    },
    /// A serial number is invalid.
    #[error("fob {index}: {source}")]
    Serial {
        /// 1-based position in the fleet.
        index: usize,
        /// What is wrong.
        source: SerialError,
    },
    /// Two fobs have the same serial.
    #[error("serial {0} appears twice")]
    DuplicateSerial(String),
    /// A drift value is unreadable.
    #[error("fob {index}: bad {field} {value:?}")]
    Drift {
        /// 1-based position in the fleet.
        index: usize,
        /// `offset`, `ppm` or `jitter`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// `count` together with `serial`, a zero count, or too many fobs.
    #[error("{0}")]
    Count(String),
    /// The firmware refused the fob.
    #[error("fob {index}: {source}")]
    Fob {
        /// 1-based position in the fleet.
        index: usize,
        /// What the firmware said.
        source: FobError,
    },
}

/// One fob of a fleet.
#[derive(Debug, Clone)]
pub struct FobEntry {
    /// Serial number.
    pub serial: Serial,
    /// Model preset.
    pub model: &'static Model,
    /// Clock drift from the start.
    pub drift: Drift,
}

/// What a fleet is made of.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Seed of the secrets (and jitter): same seed + serial → same secret.
    pub seed: u64,
    /// The fobs, in order.
    pub fobs: Vec<FobEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    seed: Option<u64>,
    #[serde(default)]
    fob: Vec<FileFob>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFob {
    model: String,
    serial: Option<String>,
    offset: Option<String>,
    ppm: Option<f64>,
    jitter: Option<String>,
    count: Option<usize>,
}

fn model(name: &str) -> Result<&'static Model, FleetError> {
    fobsim_firmware::preset(name).ok_or_else(|| FleetError::UnknownModel {
        name: name.chars().take(64).collect(),
    })
}

impl FleetSpec {
    /// `count` fobs of `model_name`, serials `model.serial(1..=count)`, no drift.
    ///
    /// # Errors
    /// [`FleetError::UnknownModel`], or [`FleetError::Count`] for 0 or more
    /// than [`MAX_FLEET`].
    pub fn uniform(model_name: &str, count: usize, seed: u64) -> Result<Self, FleetError> {
        let m = model(model_name)?;
        if count == 0 || count > MAX_FLEET {
            return Err(FleetError::Count(format!(
                "--count must be 1..={MAX_FLEET}, got {count}"
            )));
        }
        let fobs = (1..=count)
            .map(|i| {
                Ok(FobEntry {
                    serial: m
                        .serial(i as u64)
                        .map_err(|source| FleetError::Serial { index: i, source })?,
                    model: m,
                    drift: Drift::NONE,
                })
            })
            .collect::<Result<_, FleetError>>()?;
        Ok(FleetSpec { seed, fobs })
    }

    /// The seed of a fleet file without `seed`: the command line's default
    /// `--seed`, the same for `fobsim run`, `emulate` and `fob`.
    pub const DEFAULT_SEED: u64 = 1;

    /// Read a fleet file (see the module documentation); a file without
    /// `seed` gets [`FleetSpec::DEFAULT_SEED`].
    ///
    /// # Errors
    /// [`FleetError`] saying what is wrong and where.
    pub fn from_toml(text: &str) -> Result<Self, FleetError> {
        Self::from_toml_with_seed(text, Self::DEFAULT_SEED)
    }

    /// Read a fleet file; a file without `seed` gets `default_seed` (the
    /// command line's `--seed`).
    ///
    /// # Errors
    /// [`FleetError`] saying what is wrong and where.
    pub fn from_toml_with_seed(text: &str, default_seed: u64) -> Result<Self, FleetError> {
        let file: FileSpec = toml::from_str(text).map_err(|e| FleetError::Toml(e.to_string()))?;
        let mut fobs = Vec::new();
        let mut next_index: BTreeMap<&str, u64> = BTreeMap::new();
        for f in &file.fob {
            let m = model(&f.model)?;
            let count = f.count.unwrap_or(1);
            if count == 0 || (count > 1 && f.serial.is_some()) {
                return Err(FleetError::Count(format!(
                    "fob {}: count must be at least 1, and 1 with an explicit serial",
                    fobs.len() + 1
                )));
            }
            if fobs.len() + count > MAX_FLEET {
                return Err(FleetError::Count(format!(
                    "a fleet holds at most {MAX_FLEET} fobs"
                )));
            }
            for _ in 0..count {
                let index = fobs.len() + 1;
                let serial = match &f.serial {
                    Some(s) => Serial::new(s),
                    None => {
                        let n = next_index.entry(m.name).or_insert(0);
                        *n += 1;
                        m.serial(*n)
                    }
                }
                .map_err(|source| FleetError::Serial { index, source })?;
                let ms = |field: &'static str, v: &Option<String>| -> Result<i64, FleetError> {
                    v.as_deref().map_or(Ok(0), |s| {
                        parse_duration_ms(s).map_err(|_| FleetError::Drift {
                            index,
                            field,
                            value: s.chars().take(64).collect(),
                        })
                    })
                };
                let jitter = ms("jitter", &f.jitter)?;
                let drift = Drift {
                    offset_ms: ms("offset", &f.offset)?,
                    ppm: f.ppm.unwrap_or(0.0),
                    jitter_ms: u32::try_from(jitter).map_err(|_| FleetError::Drift {
                        index,
                        field: "jitter",
                        value: jitter.to_string(),
                    })?,
                };
                fobs.push(FobEntry {
                    serial,
                    model: m,
                    drift,
                });
            }
        }
        if fobs.is_empty() {
            return Err(FleetError::Count("the fleet file lists no [[fob]]".into()));
        }
        Ok(FleetSpec {
            seed: file.seed.unwrap_or(default_seed),
            fobs,
        })
    }
}

/// One fob of a running fleet.
#[derive(Debug)]
pub struct Device {
    serial: Serial,
    model: &'static str,
    fob: Mutex<Fob>,
}

impl Device {
    /// Serial number.
    #[must_use]
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// Model name.
    #[must_use]
    pub fn model(&self) -> &'static str {
        self.model
    }
}

/// Fobs sharing one clock. Shared between transports and the control plane
/// (`Arc<Fleet>`); each fob has its own lock.
#[derive(Debug)]
pub struct Fleet {
    clock: Arc<TrueClock>,
    devices: Vec<Device>,
    test_mode: bool,
}

impl Fleet {
    /// Build the fobs of `spec`; their RTCs are set at the clock's current
    /// time, with each entry's drift.
    ///
    /// # Errors
    /// [`FleetError::DuplicateSerial`], or [`FleetError::Fob`] if the
    /// firmware refuses a drift.
    pub fn new(
        spec: &FleetSpec,
        clock: impl Into<Arc<TrueClock>>,
        test_mode: bool,
    ) -> Result<Self, FleetError> {
        let clock = clock.into();
        let now = clock.now();
        // Lazily: one spec at a time, never a second list of every fob.
        let specs = spec.fobs.iter().enumerate().map(|(i, e)| {
            let mut fs =
                FobSpec::seeded(e.model, e.serial.clone(), spec.seed, now).map_err(|source| {
                    FleetError::Fob {
                        index: i + 1,
                        source,
                    }
                })?;
            fs.drift = e.drift;
            Ok(fs)
        });
        Fleet::build(specs, clock, test_mode)
    }

    /// A fleet of fobs built from explicit specs (secrets, drift and RTC
    /// set time as given), e.g. the devices of a harness scenario.
    ///
    /// # Errors
    /// [`FleetError::DuplicateSerial`], or [`FleetError::Fob`] if the
    /// firmware refuses a spec.
    pub fn from_specs(
        specs: Vec<FobSpec>,
        clock: impl Into<Arc<TrueClock>>,
        test_mode: bool,
    ) -> Result<Self, FleetError> {
        Fleet::build(specs.into_iter().map(Ok), clock.into(), test_mode)
    }

    /// The fobs of `specs` (1-based indexes in errors); serials must be unique.
    fn build(
        specs: impl ExactSizeIterator<Item = Result<FobSpec, FleetError>>,
        clock: Arc<TrueClock>,
        test_mode: bool,
    ) -> Result<Self, FleetError> {
        let mut devices = Vec::with_capacity(specs.len());
        for (i, spec) in specs.enumerate() {
            let spec = spec?;
            let serial = spec.serial.clone();
            let model = spec.model.name;
            let fob = Fob::new(spec).map_err(|source| FleetError::Fob {
                index: i + 1,
                source,
            })?;
            devices.push(Device {
                serial,
                model,
                fob: Mutex::new(fob),
            });
        }
        // Borrowed serials: no second copy of every serial at the peak.
        let mut seen = HashSet::with_capacity(devices.len());
        if let Some(d) = devices.iter().find(|d| !seen.insert(d.serial.as_str())) {
            return Err(FleetError::DuplicateSerial(d.serial.to_string()));
        }
        Ok(Fleet {
            clock,
            devices,
            test_mode,
        })
    }

    /// The fleet's true time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<TrueClock> {
        &self.clock
    }

    /// Whether test-mode commands are enabled.
    #[must_use]
    pub fn test_mode(&self) -> bool {
        self.test_mode
    }

    /// The fobs, in order.
    #[must_use]
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Number of fobs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True for a fleet without fobs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Position of the fob with this serial.
    #[must_use]
    pub fn index_of(&self, serial: &str) -> Option<usize> {
        self.devices
            .iter()
            .position(|d| d.serial.as_str() == serial)
    }

    /// Run `f` on fob `index` at the fleet's current time; `None` for an
    /// index out of range.
    pub fn with_fob<R>(&self, index: usize, f: impl FnOnce(&mut Fob, Timestamp) -> R) -> Option<R> {
        let d = self.devices.get(index)?;
        let now = self.now();
        Some(f(&mut lock(&d.fob), now))
    }

    /// Run a serial-protocol command on fob `index` (see
    /// [`execute`]); `None` for an index
    /// out of range.
    #[must_use]
    pub fn execute(&self, index: usize, cmd: &Command) -> Option<Reply> {
        let test_mode = self.test_mode;
        self.with_fob(index, |fob, now| execute(cmd, fob, now, test_mode))
    }

    /// [`Fleet::execute`] for a transport serving fob `index`: an index
    /// out of range answers `ERR 409 no such fob` instead of `None`.
    #[must_use]
    pub fn reply(&self, index: usize, cmd: &Command) -> Reply {
        self.execute(index, cmd).unwrap_or_else(|| {
            Reply::Err(crate::command::ProtocolError::new(
                crate::command::ErrorCode::Conflict,
                "no such fob",
            ))
        })
    }

    /// The fleet's seed records, for a vendor seed file. The only way the
    /// secrets leave the fleet.
    #[must_use]
    pub fn seed_records(&self) -> Vec<SeedRecord> {
        self.devices
            .iter()
            .map(|d| lock(&d.fob).seed_record())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_fleet_serials() {
        let s = FleetSpec::uniform("gaht", 3, 0).unwrap();
        let serials: Vec<_> = s.fobs.iter().map(|f| f.serial.to_string()).collect();
        assert_eq!(serials, ["GAHT00000001", "GAHT00000002", "GAHT00000003"]);
        assert!(matches!(
            FleetSpec::uniform("nope", 1, 0),
            Err(FleetError::UnknownModel { .. })
        ));
        assert!(matches!(
            FleetSpec::uniform("gaht", 0, 0),
            Err(FleetError::Count(_))
        ));
    }

    #[test]
    fn fleet_file() {
        let s = FleetSpec::from_toml(
            r#"
seed = 7
[[fob]]
model = "gaht"
serial = "GAHT00000042"
offset = "+47s"
ppm = 20.0
[[fob]]
model = "c200"
count = 2
[[fob]]
model = "gaht"
jitter = "500ms"
"#,
        )
        .unwrap();
        assert_eq!(s.seed, 7);
        let got: Vec<_> = s
            .fobs
            .iter()
            .map(|f| {
                (
                    f.serial.to_string(),
                    f.model.name,
                    f.drift.offset_ms,
                    f.drift.jitter_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("GAHT00000042".to_string(), "gaht", 47_000, 0),
                ("C200000000001".to_string(), "c200", 0, 0),
                ("C200000000002".to_string(), "c200", 0, 0),
                ("GAHT00000001".to_string(), "gaht", 0, 500),
            ]
        );
        assert!((s.fobs[0].drift.ppm - 20.0).abs() < f64::EPSILON);
    }

    #[test]
    fn bad_fleet_files() {
        for (text, want) in [
            ("", "lists no"),
            ("[[fob]]\nmodel = \"zzz\"", "unknown model"),
            ("[[fob]]\nmodel = \"gaht\"\ncolour = 1", "unknown field"),
            ("[[fob]]\nmodel = \"gaht\"\nserial = \"X\"", "fob 1"),
            ("[[fob]]\nmodel = \"gaht\"\noffset = \"soon\"", "bad offset"),
            ("[[fob]]\nmodel = \"gaht\"\njitter = \"-1s\"", "bad jitter"),
            (
                "[[fob]]\nmodel = \"gaht\"\ncount = 2\nserial = \"GAHT00000001\"",
                "count",
            ),
            ("[[fob]]\nmodel = \"gaht\"\nppm = 1e9", ""),
        ] {
            match FleetSpec::from_toml(text) {
                Err(e) => assert!(e.to_string().contains(want), "{text}: {e}"),
                Ok(spec) => {
                    // Valid syntax; the firmware refuses the drift.
                    let e = Fleet::new(&spec, TrueClock::manual(Timestamp::from_secs(0)), false)
                        .unwrap_err();
                    assert!(matches!(e, FleetError::Fob { index: 1, .. }), "{text}: {e}");
                }
            }
        }
        let spec = FleetSpec::from_toml(
            "[[fob]]\nmodel = \"gaht\"\n[[fob]]\nmodel = \"gaht\"\nserial = \"GAHT00000001\"",
        )
        .unwrap();
        assert!(matches!(
            Fleet::new(&spec, TrueClock::System, false),
            Err(FleetError::DuplicateSerial(_))
        ));
    }
}
