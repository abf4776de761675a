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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
    removed: AtomicBool,
}

impl Device {
    fn new(serial: Serial, model: &'static str, fob: Fob) -> Self {
        Device {
            serial,
            model,
            fob: Mutex::new(fob),
            removed: AtomicBool::new(false),
        }
    }

    /// Whether the fob was taken out of the fleet ([`Fleet::remove`]).
    #[must_use]
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

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
///
/// Fobs are addressed by index, stable for the fleet's life: the fobs it
/// was built with are `0..len()`, fobs added later ([`Fleet::create`])
/// follow, and a removed fob's index stays taken (it answers as unknown).
/// The transports expose the fobs the fleet was built with; added fobs are
/// reached through the control plane.
#[derive(Debug)]
pub struct Fleet {
    clock: Arc<TrueClock>,
    devices: Vec<Device>,
    added: RwLock<Vec<Arc<Device>>>,
    seed: u64,
    test_mode: bool,
}

/// Why a fob could not be added to a running fleet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CreateError {
    /// Unknown model, bad serial or drift, or a full fleet.
    #[error(transparent)]
    Invalid(#[from] FleetError),
    /// A fob with this serial is in the fleet.
    #[error("a fob {0} exists already")]
    Exists(String),
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
        Fleet::build(specs, clock, spec.seed, test_mode)
    }

    /// A fleet of fobs built from explicit specs (secrets, drift and RTC
    /// set time as given), e.g. the devices of a harness scenario. Fobs
    /// added later derive their secrets from seed 0.
    ///
    /// # Errors
    /// [`FleetError::DuplicateSerial`], or [`FleetError::Fob`] if the
    /// firmware refuses a spec.
    pub fn from_specs(
        specs: Vec<FobSpec>,
        clock: impl Into<Arc<TrueClock>>,
        test_mode: bool,
    ) -> Result<Self, FleetError> {
        Fleet::build(specs.into_iter().map(Ok), clock.into(), 0, test_mode)
    }

    /// The fobs of `specs` (1-based indexes in errors); serials must be unique.
    fn build(
        specs: impl ExactSizeIterator<Item = Result<FobSpec, FleetError>>,
        clock: Arc<TrueClock>,
        seed: u64,
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
            devices.push(Device::new(serial, model, fob));
        }
        // Borrowed serials: no second copy of every serial at the peak.
        let mut seen = HashSet::with_capacity(devices.len());
        if let Some(d) = devices.iter().find(|d| !seen.insert(d.serial.as_str())) {
            return Err(FleetError::DuplicateSerial(d.serial.to_string()));
        }
        Ok(Fleet {
            clock,
            devices,
            added: RwLock::new(Vec::new()),
            seed,
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

    /// The fobs the fleet was built with, in order (removed ones
    /// included: see [`Device::is_removed`]).
    #[must_use]
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Number of fobs the fleet was built with.
    #[must_use]
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True for a fleet built without fobs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Number of indexes in use: the fobs built with, then every fob
    /// added (removed ones included).
    #[must_use]
    pub fn slots(&self) -> usize {
        self.devices.len() + read(&self.added).len()
    }

    /// The fob at `index` unless it was removed.
    fn device(&self, index: usize) -> Option<DeviceRef<'_>> {
        let d = match self.devices.get(index) {
            Some(d) => DeviceRef::Built(d),
            None => DeviceRef::Added(Arc::clone(
                read(&self.added).get(index - self.devices.len())?,
            )),
        };
        (!d.get().is_removed()).then_some(d)
    }

    /// Serial and model of the fob at `index`, unless out of range or removed.
    #[must_use]
    pub fn describe(&self, index: usize) -> Option<(Serial, &'static str)> {
        let d = self.device(index)?;
        Some((d.get().serial.clone(), d.get().model))
    }

    /// Position of the fob with this serial (removed fobs are not found).
    #[must_use]
    pub fn index_of(&self, serial: &str) -> Option<usize> {
        let found = |d: &Device| d.serial.as_str() == serial && !d.is_removed();
        self.devices.iter().position(found).or_else(|| {
            read(&self.added)
                .iter()
                .position(|d| found(d))
                .map(|i| i + self.devices.len())
        })
    }

    /// Run `f` on fob `index` at the fleet's current time; `None` for an
    /// index out of range or a removed fob.
    pub fn with_fob<R>(&self, index: usize, f: impl FnOnce(&mut Fob, Timestamp) -> R) -> Option<R> {
        let d = self.device(index)?;
        let now = self.now();
        Some(f(&mut lock(&d.get().fob), now))
    }

    /// Add a fob of `model_name` with `drift`: serial as given or the
    /// model's first one not in use, secret from the fleet's seed and the
    /// serial, RTC set now. Returns its index.
    ///
    /// # Errors
    /// [`CreateError::Exists`] for a serial in use; [`CreateError::Invalid`]
    /// for an unknown model, a bad serial or drift, or a fleet holding
    /// [`MAX_FLEET`] indexes.
    pub fn create(
        &self,
        model_name: &str,
        serial: Option<&str>,
        drift: &fobsim_firmware::DriftChange,
    ) -> Result<usize, CreateError> {
        let m = model(model_name)?;
        // One writer at a time: the serial check and the push are atomic.
        let mut added = self
            .added
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = self.devices.len() + added.len();
        if index >= MAX_FLEET {
            return Err(
                FleetError::Count(format!("a fleet holds at most {MAX_FLEET} fobs")).into(),
            );
        }
        let in_use = |s: &str| {
            self.devices
                .iter()
                .chain(added.iter().map(AsRef::as_ref))
                .any(|d| d.serial.as_str() == s && !d.is_removed())
        };
        let serial = match serial {
            Some(s) => {
                let s = Serial::new(s).map_err(|source| FleetError::Serial {
                    index: index + 1,
                    source,
                })?;
                if in_use(s.as_str()) {
                    return Err(CreateError::Exists(s.to_string()));
                }
                s
            }
            None => {
                let mut n = 1u64;
                loop {
                    let s = m.serial(n).map_err(|source| FleetError::Serial {
                        index: index + 1,
                        source,
                    })?;
                    if !in_use(s.as_str()) {
                        break s;
                    }
                    n += 1;
                }
            }
        };
        let now = self.now();
        let fob_err = |source| FleetError::Fob {
            index: index + 1,
            source,
        };
        let spec = FobSpec::seeded(m, serial.clone(), self.seed, now).map_err(fob_err)?;
        let mut fob = Fob::new(spec).map_err(fob_err)?;
        drift.apply(&mut fob, now).map_err(fob_err)?;
        added.push(Arc::new(Device::new(serial, m.name, fob)));
        Ok(index)
    }

    /// Take the fob with this serial out of the fleet: it is no longer
    /// listed, found or driven (its transport answers "no such fob").
    /// Returns its index, `None` for an unknown serial.
    pub fn remove(&self, serial: &str) -> Option<usize> {
        // Under the write lock: a concurrent create sees it gone or not.
        let added = self
            .added
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = |d: &Device| d.serial.as_str() == serial && !d.is_removed();
        let (index, d) = match self.devices.iter().position(found) {
            Some(i) => (i, &self.devices[i]),
            None => {
                let i = added.iter().position(|d| found(d))?;
                (i + self.devices.len(), added[i].as_ref())
            }
        };
        d.removed.store(true, Ordering::Release);
        Some(index)
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

/// A fob of the fleet: one it was built with, or one added later.
enum DeviceRef<'a> {
    Built(&'a Device),
    Added(Arc<Device>),
}

impl DeviceRef<'_> {
    fn get(&self) -> &Device {
        match self {
            DeviceRef::Built(d) => d,
            DeviceRef::Added(d) => d,
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
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
