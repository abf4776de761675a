//! Fleet simulation: many fobs with random crystal skew, signing in every
//! day for years against the built-in engine (SQLite, PostgreSQL or
//! memory), counting
//! accepts and the resyncs needed. The benchmark of issue 4 runs 10,000
//! fobs for 5 years.

use std::path::Path;

use fobsim_core::Principal;
use fobsim_core::{SimClock, Timestamp};
use fobsim_engine::{Engine, EngineError, KeySource, Profile};
use fobsim_firmware::{Drift, Fob, FobSpec, preset};
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use fobsim_harness::scenario::DEFAULT_START;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationSpec {
    /// Number of fobs (one IAM user each).
    pub fobs: u32,
    /// Simulated days; every fob signs in once a day.
    pub days: u32,
    /// Crystal skew is uniform in ±this many ppm.
    pub max_ppm: f64,
    /// Seed of secrets, skews and sign-in times.
    pub seed: u64,
    /// One store transaction per simulated day (the engine's `batch`).
    pub batch: bool,
}

impl Default for SimulationSpec {
    /// The benchmark: 10,000 fobs, ±30 ppm, daily for 5 years.
    fn default() -> Self {
        SimulationSpec {
            fobs: 10_000,
            days: 1826,
            max_ppm: 30.0,
            seed: 1,
            batch: true,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FleetStats {
    /// Sign-in attempts with a fresh code (first tries).
    pub sign_ins: u64,
    /// First tries accepted.
    pub accepted: u64,
    /// Resyncs performed after a rejected first try.
    pub resyncs: u64,
    /// Resyncs that failed (the device is beyond the resync window).
    pub resync_failures: u64,
    /// Sign-ins after a successful resync that were accepted.
    pub accepted_after_resync: u64,
}

impl std::ops::AddAssign for FleetStats {
    fn add_assign(&mut self, s: FleetStats) {
        self.sign_ins += s.sign_ins;
        self.accepted += s.accepted;
        self.resyncs += s.resyncs;
        self.resync_failures += s.resync_failures;
        self.accepted_after_resync += s.accepted_after_resync;
    }
}

impl FleetStats {
    /// Accepted first tries / sign-ins.
    #[must_use]
    pub fn accept_rate(&self) -> f64 {
        if self.sign_ins == 0 {
            0.0
        } else {
            self.accepted as f64 / self.sign_ins as f64
        }
    }
}

/// Fleet simulation errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulationError {
    /// The engine failed (setup, store).
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// A fob could not be built.
    #[error("fob: {0}")]
    Fob(String),
}

fn code(fob: &mut Fob, now: Timestamp) -> String {
    fob.press(now)
        .code()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// An engine over a fresh SQLite database at `path` with the default rules
/// (cheap password hashing, fixed RNG seed).
///
/// # Errors
/// [`SimulationError::Engine`] if the database cannot be created.
pub fn sqlite_engine(path: &Path, seed: u64) -> Result<Engine, SimulationError> {
    let profile = Profile {
        rng_seed: Some(seed),
        ..Profile::for_tests()
    };
    Ok(Engine::sqlite(
        path,
        &KeySource::Bytes([0x5e; 32]),
        profile,
    )?)
}

/// An engine over the (empty) PostgreSQL database at `url` with the rules
/// of [`sqlite_engine`].
///
/// # Errors
/// [`SimulationError::Engine`] if the database cannot be opened.
pub fn postgres_engine(url: &str, seed: u64) -> Result<Engine, SimulationError> {
    let profile = Profile {
        rng_seed: Some(seed),
        ..Profile::for_tests()
    };
    Ok(Engine::postgres(
        url,
        &KeySource::Bytes([0x5e; 32]),
        fobsim_engine::PgOptions::default(),
        profile,
    )?)
}

/// Run the simulation on `engine` (which must be empty). `progress(day)` is
/// called after each simulated day.
///
/// # Errors
/// [`SimulationError`] if setup fails or the store breaks.
pub fn simulate(
    engine: &Engine,
    spec: &SimulationSpec,
    progress: &mut dyn FnMut(u32),
) -> Result<FleetStats, SimulationError> {
    let model = preset("gaht").ok_or_else(|| SimulationError::Fob("no gaht preset".into()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let start = DEFAULT_START;
    engine.create_account(
        "123456789012",
        "fobsim-fleet",
        "root@example.com",
        "+15555550100",
        "Root-Password-1",
    )?;
    let mut fobs = Vec::with_capacity(spec.fobs as usize);
    let mut who = Vec::with_capacity(spec.fobs as usize);
    let mut seeds = Vec::with_capacity(spec.fobs as usize);
    for i in 0..spec.fobs {
        let serial = model
            .serial(u64::from(i) + 1)
            .map_err(|e| SimulationError::Fob(e.to_string()))?;
        let mut fs = FobSpec::seeded(model, serial, spec.seed, start)
            .map_err(|e| SimulationError::Fob(e.to_string()))?;
        let ppm = if spec.max_ppm > 0.0 {
            rng.random_range(-spec.max_ppm..=spec.max_ppm)
        } else {
            0.0
        };
        fs.drift = Drift { ppm, ..Drift::NONE };
        let fob = Fob::new(fs).map_err(|e| SimulationError::Fob(e.to_string()))?;
        seeds.push(fob.seed_record());
        fobs.push(fob);
        who.push(Principal::User(format!("user{i:05}")));
    }
    engine.batch(|e| -> Result<(), SimulationError> {
        for w in &who {
            if let Principal::User(name) = w {
                e.create_user(name, "Fleet-Password-1")?;
            }
        }
        e.import_seeds(&seeds)?;
        // Enable each fob in sync, mid-step.
        let t1 = start.add_millis(15_000);
        let t2 = t1.add_millis(30_000);
        for (fob, w) in fobs.iter_mut().zip(&who) {
            let c1 = code(fob, t1);
            let c2 = code(fob, t2);
            e.enable_mfa_device(
                t2,
                fobsim_core::Channel::Console,
                w,
                fob.serial().as_str(),
                &c1,
                &c2,
            )?;
        }
        Ok(())
    })??;
    let serials: Vec<String> = fobs.iter().map(|f| f.serial().to_string()).collect();
    // Each user signs in at their own minute of the working day.
    let minute: Vec<i64> = (0..spec.fobs)
        .map(|_| rng.random_range(0..600i64))
        .collect();
    let mut stats = FleetStats::default();
    let clock = SimClock::new(start);
    for day in 1..=spec.days {
        let day_start = start.add_millis(i64::from(day) * 86_400_000 + 8 * 3_600_000);
        clock.set(day_start);
        let mut run_day = |e: &Engine| -> Result<FleetStats, SimulationError> {
            let mut s = FleetStats::default();
            for (((fob, w), m), serial) in fobs.iter_mut().zip(&who).zip(&minute).zip(&serials) {
                let now = day_start.add_millis(m * 60_000);
                let c = code(fob, now);
                s.sign_ins += 1;
                if e.verify_session_mfa(now, w, serial, &c).is_ok() {
                    s.accepted += 1;
                    continue;
                }
                // Out of sync: resync with two consecutive codes, then sign in.
                s.resyncs += 1;
                let r1 = code(fob, now.add_millis(30_000));
                let r2 = code(fob, now.add_millis(60_000));
                if e.resync_mfa_device(now.add_millis(60_000), w, serial, &r1, &r2)
                    .is_err()
                {
                    s.resync_failures += 1;
                    continue;
                }
                let c = code(fob, now.add_millis(90_000));
                if e.verify_session_mfa(now.add_millis(90_000), w, serial, &c)
                    .is_ok()
                {
                    s.accepted_after_resync += 1;
                }
            }
            Ok(s)
        };
        let s = if spec.batch {
            engine.batch(|e| run_day(e))??
        } else {
            run_day(engine)?
        };
        stats += s;
        progress(day);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_fleet_stays_in_sync_with_daily_sign_ins() {
        let engine = Engine::in_memory(Profile::for_tests());
        let spec = SimulationSpec {
            fobs: 20,
            days: 60,
            ..SimulationSpec::default()
        };
        let s = simulate(&engine, &spec, &mut |_| {}).unwrap();
        assert_eq!(s.sign_ins, 20 * 60);
        assert_eq!(s.accepted, s.sign_ins, "{s:?}");
        assert_eq!(s.resyncs, 0);
    }

    #[test]
    fn a_wild_fleet_needs_resyncs() {
        // ±2000 ppm: about 3 min a day, beyond the ±1 step window.
        let engine = Engine::in_memory(Profile::for_tests());
        let spec = SimulationSpec {
            fobs: 10,
            days: 5,
            max_ppm: 2000.0,
            seed: 3,
            batch: false,
        };
        let s = simulate(&engine, &spec, &mut |_| {}).unwrap();
        assert!(s.resyncs > 0, "{s:?}");
        assert_eq!(s.accepted + s.resyncs, s.sign_ins);
        assert_eq!(s.accepted_after_resync, s.resyncs - s.resync_failures);
        assert!(s.accept_rate() < 1.0);
    }
}
