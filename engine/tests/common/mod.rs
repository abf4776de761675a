//! Fixtures shared by the integration tests: the same test on every store
//! (memory, SQLite, PostgreSQL: one server per test binary, a fresh schema
//! per fixture; see `fobsim_engine::testing::postgres`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use fobsim_core::{Timestamp, Totp};
use fobsim_engine::testing::{self, TestToken};
use fobsim_engine::{Engine, KeySource, PgOptions, Profile};

/// Which store a test runs on (as `fobsim_engines::StoreKind` is for the
/// harness; this crate's tests cannot depend on it, and create the SQLite
/// file in a temp dir of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Sqlite,
    Postgres,
}

pub struct Fx {
    pub engine: Engine,
    pub fobs: Vec<TestToken>,
    pub dir: Option<tempfile::TempDir>,
}

impl Fx {
    pub fn serial(&self, i: usize) -> String {
        self.fobs[i].serial().as_str().to_string()
    }

    /// The code fob `i` shows at device step `step` (computed from its seed
    /// record, as the vendor's seed file would).
    pub fn code(&self, i: usize, step: u64) -> String {
        let r = self.fobs[i].seed_record();
        let totp = Totp::new(r.algorithm, r.secret.expose(), u32::from(r.digits), 30, 0).unwrap();
        totp.code_for_step(step).to_string()
    }
}

pub fn fx_with(store: StoreKind, n: u64, profile: Profile) -> Fx {
    match store {
        StoreKind::Memory => {
            let engine = Engine::in_memory(profile);
            let fobs: Vec<TestToken> = (0..n).map(|i| testing::gaht_fob(i, testing::T0)).collect();
            testing::create_account(&engine).unwrap();
            testing::import(&engine, &fobs).unwrap();
            Fx {
                engine,
                fobs,
                dir: None,
            }
        }
        StoreKind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let (engine, fobs) =
                testing::sqlite_with_fobs(&dir.path().join("engine.db"), n, testing::T0, profile)
                    .unwrap();
            Fx {
                engine,
                fobs,
                dir: Some(dir),
            }
        }
        StoreKind::Postgres => {
            let engine = Engine::postgres(
                &pg_url(),
                &KeySource::Bytes(testing::TEST_KEY),
                PgOptions::default(),
                profile,
            )
            .unwrap();
            let fobs: Vec<TestToken> = (0..n).map(|i| testing::gaht_fob(i, testing::T0)).collect();
            testing::create_account(&engine).unwrap();
            testing::import(&engine, &fobs).unwrap();
            Fx {
                engine,
                fobs,
                dir: None,
            }
        }
    }
}

/// A fresh, empty schema on this test binary's PostgreSQL server (started
/// on first use; fails loudly where PostgreSQL is not installed).
pub fn pg_url() -> String {
    testing::postgres::shared()
        .unwrap_or_else(|e| panic!("{e}"))
        .fresh_schema_url()
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn fx(store: StoreKind, n: u64) -> Fx {
    fx_with(store, n, Profile::for_tests())
}

/// The TOTP step (30 s) of true time `t`.
pub fn step(t: Timestamp) -> u64 {
    t.as_secs() / 30
}

/// Ten seconds into the step `T0` starts, plus `steps` steps.
pub fn at(steps: i64) -> Timestamp {
    testing::T0.add_millis(10_000 + steps * 30_000)
}

/// Run a test body on every store (the name is older than PostgreSQL).
#[macro_export]
macro_rules! both {
    ($name:ident, |$b:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($b: StoreKind) $body
            #[test]
            fn memory() {
                run(StoreKind::Memory)
            }
            #[test]
            fn sqlite() {
                run(StoreKind::Sqlite)
            }
            #[test]
            fn postgres() {
                run(StoreKind::Postgres)
            }
        }
    };
}

/// The real `gaht` fob behind test token `i` (same serial and secret, RTC
/// set at `T0`, no drift yet): for tests of drifting device clocks.
pub fn real_fob(i: u64) -> fobsim_firmware::Fob {
    let model = fobsim_firmware::preset("gaht").unwrap();
    fobsim_firmware::Fob::new(
        fobsim_firmware::FobSpec::seeded(
            model,
            model.serial(i).unwrap(),
            testing::FOB_SEED,
            testing::T0,
        )
        .unwrap(),
    )
    .unwrap()
}
