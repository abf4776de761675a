//! Shared test doubles and fixtures: a ready account, fobs whose seeds are
//! registered, helpers that press buttons. For this crate's tests, the
//! harness and benches; cheap password hashing, fixed RNG seed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod postgres;

use fobsim_core::{Algorithm, Kind, SeedRecord, Serial, Timestamp, Totp, derive_secret};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::error::StoreError;
use crate::profile::Profile;
use crate::store::{KeySource, Store, StoreLayer};
use fobsim_core::Principal;

/// 2026-01-01T00:00:00Z: a convenient start of simulated time.
pub const T0: Timestamp = Timestamp::from_secs(1_767_225_600);
/// The test account id.
pub const ACCOUNT_ID: &str = "123456789012";
/// The test account alias.
pub const ALIAS: &str = "fobsim-test";
/// The root user's email.
pub const ROOT_EMAIL: &str = "root@example.com";
/// The root user's phone.
pub const ROOT_PHONE: &str = "+1 555 0100";
/// The root user's password.
pub const ROOT_PASSWORD: &str = "root-Password-1";
/// The password of every test user.
pub const USER_PASSWORD: &str = "user-Password-1";
/// The test users [`create_account`] makes.
pub const USERS: [&str; 2] = ["alice", "bob"];
/// The seed from which test fob secrets are derived.
pub const FOB_SEED: u64 = 42;
/// A fixed database key for tests (never use it for real data).
pub const TEST_KEY: [u8; 32] = [0x42; 32];

/// The access key of enrolled user `i` (`u00000`, `u00001`, …) of
/// [`enrolled_service`].
#[must_use]
pub fn enrolled_credentials(i: usize) -> fobsim_aws::sigv4::Credentials {
    fobsim_aws::sigv4::Credentials {
        access_key_id: format!("AKIABENCH{i:011}"),
        secret_access_key: format!("bench-secret-{i:08}-0123456789"),
        session_token: None,
    }
}

/// The name of enrolled user `i` of [`enrolled_service`].
#[must_use]
pub fn enrolled_user(i: usize) -> String {
    format!("u{i:05}")
}

/// What [`enrolled_service`] builds.
pub struct EnrolledService {
    /// The AWS face of the engine.
    pub service: std::sync::Arc<crate::api::service::AwsService>,
    /// The service's clock (starts at `after_enable`); move it with
    /// [`SimClock::set`](fobsim_core::SimClock::set).
    pub clock: std::sync::Arc<fobsim_core::SimClock>,
    /// User `i`'s fob.
    pub fobs: Vec<TestToken>,
    /// When the devices were enabled: `T0 + 30 s`.
    pub after_enable: Timestamp,
}

/// The HTTP benchmarks' fixture: the test account and `n` users
/// ([`enrolled_user`], keys [`enrolled_credentials`], the policy
/// `policy_json` attached), each with one fob enabled with its codes at
/// [`T0`] and `T0 + 30 s`, behind an [`AwsService`](crate::api::service::AwsService)
/// whose clock the caller moves.
///
/// # Errors
/// What the engine refuses; a malformed policy or key (as `ValidationError`).
pub fn enrolled_service(
    engine: Engine,
    n: usize,
    policy_json: &str,
) -> Result<EnrolledService, EngineError> {
    use std::sync::Arc;
    let t0 = T0;
    let mut fobs: Vec<TestToken> = (0..n as u64).map(|i| gaht_fob(i, t0)).collect();
    create_account(&engine)?;
    import(&engine, &fobs)?;
    let t2 = t0.add_millis(30_000);
    engine.batch(|e| {
        fobs.iter_mut().enumerate().try_for_each(|(i, fob)| {
            let name = enrolled_user(i);
            let c1 = press(fob, t0);
            let c2 = press(fob, t2);
            e.create_user(&name, USER_PASSWORD)?;
            e.enable_mfa_device(
                t2,
                fobsim_core::Channel::Console,
                &Principal::user(&name),
                fob.serial().as_str(),
                &c1,
                &c2,
            )
        })
    })??;
    let clock = Arc::new(fobsim_core::SimClock::new(t2));
    let service = enrolled_replica(engine, n, policy_json, &clock)?;
    Ok(EnrolledService {
        service,
        clock,
        fobs,
        after_enable: t2,
    })
}

/// Another service over the users [`enrolled_service`] made: `engine` on
/// the same database (a replica: PostgreSQL), the same access keys and
/// policy, the clock `clock`. Writes nothing.
///
/// # Errors
/// A malformed policy or key (as `ValidationError`).
pub fn enrolled_replica(
    engine: Engine,
    n: usize,
    policy_json: &str,
    clock: &std::sync::Arc<fobsim_core::SimClock>,
) -> Result<std::sync::Arc<crate::api::service::AwsService>, EngineError> {
    use crate::api::credentials::KeyRing;
    use crate::api::policy::Policy;
    use crate::api::service::{AwsService, ServiceConfig};
    use std::sync::Arc;
    let invalid = |e: &dyn std::fmt::Display| {
        EngineError::new(crate::error::ErrorKind::ValidationError, e.to_string())
    };
    let mut ring = KeyRing::new(&[5; 32], Some(1));
    let policy = Arc::new(Policy::parse(policy_json).map_err(|e| invalid(&e))?);
    let mut policies = std::collections::HashMap::new();
    for i in 0..n {
        let c = enrolled_credentials(i);
        ring.add_access_key(
            &c.access_key_id,
            &c.secret_access_key,
            Principal::user(&enrolled_user(i)),
        )
        .map_err(|e| invalid(&e))?;
        policies.insert(enrolled_user(i), vec![Arc::clone(&policy)]);
    }
    Ok(Arc::new(AwsService::new(
        Arc::new(engine),
        ring,
        policies,
        Arc::clone(clock) as Arc<dyn fobsim_core::Clock>,
        ServiceConfig::default(),
    )?))
}

/// Create the test account (root user) and the [`USERS`].
///
/// # Errors
/// Whatever [`Engine::create_account`] or [`Engine::create_user`] return.
pub fn create_account(engine: &Engine) -> Result<(), EngineError> {
    engine.create_account(ACCOUNT_ID, ALIAS, ROOT_EMAIL, ROOT_PHONE, ROOT_PASSWORD)?;
    for u in USERS {
        engine.create_user(u, USER_PASSWORD)?;
    }
    Ok(())
}

/// A token in perfect sync (optionally a fixed offset off true time): what
/// the engine's tests need of a fob, without the device model (drifting
/// clocks, batteries and buttons live in `fobsim-firmware`, which the
/// engine does not depend on). The `index`-th token has the serial and the
/// secret of the `index`-th `gaht` fob seeded with [`FOB_SEED`], so its
/// codes are that fob's (checked by `engine/tests/test_token.rs`).
#[derive(Debug, Clone)]
pub struct TestToken {
    record: SeedRecord,
    totp: Totp,
    offset_ms: i64,
}

impl TestToken {
    /// A token in sync from any time-based seed record (another model's,
    /// a vendor file's).
    ///
    /// # Errors
    /// [`ErrorKind::ValidationError`](crate::ErrorKind::ValidationError) for
    /// an event-based record or invalid parameters.
    pub fn from_record(record: SeedRecord) -> Result<TestToken, EngineError> {
        let invalid = |m: String| EngineError::new(crate::error::ErrorKind::ValidationError, m);
        let Kind::Totp { period } = record.kind else {
            return Err(invalid(format!("{} is event-based", record.serial)));
        };
        let totp = Totp::new(
            record.algorithm,
            record.secret.expose(),
            u32::from(record.digits),
            period,
            0,
        )
        .map_err(|e| invalid(e.to_string()))?;
        Ok(TestToken {
            record,
            totp,
            offset_ms: 0,
        })
    }

    /// The token's serial.
    #[must_use]
    pub fn serial(&self) -> &Serial {
        &self.record.serial
    }

    /// The vendor's seed record (what [`import`] registers).
    #[must_use]
    pub fn seed_record(&self) -> SeedRecord {
        self.record.clone()
    }

    /// Step length in seconds.
    #[must_use]
    pub fn period(&self) -> u64 {
        self.totp.period()
    }

    /// Let the token's clock run `ms` ahead of true time (behind if
    /// negative) from now on.
    pub fn set_offset_ms(&mut self, ms: i64) {
        self.offset_ms = ms;
    }

    /// The step the token's clock is in at true time `now`.
    #[must_use]
    pub fn step_at(&self, now: Timestamp) -> u64 {
        now.add_millis(self.offset_ms).as_secs() / self.totp.period()
    }

    /// The code the token shows at true time `now`.
    #[must_use]
    pub fn code_at(&self, now: Timestamp) -> String {
        self.totp.code_for_step(self.step_at(now)).to_string()
    }
}

/// The `index`-th test token: `gaht` parameters (6 digits, 30 s, SHA1),
/// serial `GAHT` + 8 digits, secret derived from [`FOB_SEED`], in sync.
///
/// # Panics
/// Never: the parameters are valid.
#[must_use]
pub fn gaht_fob(index: u64, now: Timestamp) -> TestToken {
    let _ = now;
    #[allow(clippy::expect_used)]
    let serial: Serial = format!("GAHT{:08}", index % 100_000_000)
        .parse()
        .expect("GAHT + 8 digits is a valid serial");
    #[allow(clippy::expect_used)]
    let secret = derive_secret(FOB_SEED, &serial, 20).expect("20 bytes is a valid length");
    #[allow(clippy::expect_used)]
    let totp = Totp::new(Algorithm::Sha1, secret.expose(), 6, 30, 0).expect("valid parameters");
    TestToken {
        record: SeedRecord {
            serial,
            kind: Kind::Totp { period: 30 },
            algorithm: Algorithm::Sha1,
            digits: 6,
            secret,
            counter: 0,
        },
        totp,
        offset_ms: 0,
    }
}

/// Register the seed records of `fobs`.
///
/// # Errors
/// Whatever [`Engine::import_seeds`] returns.
pub fn import(engine: &Engine, fobs: &[TestToken]) -> Result<usize, EngineError> {
    let recs: Vec<_> = fobs.iter().map(TestToken::seed_record).collect();
    engine.import_seeds(&recs)
}

/// An in-memory engine ([`Profile::for_tests`]) with the test account,
/// [`USERS`], and `n` registered `gaht` fobs (indices `0..n`).
///
/// # Panics
/// Never: the fixture data is valid.
#[must_use]
pub fn in_memory_with_fobs(n: u64, now: Timestamp) -> (Engine, Vec<TestToken>) {
    let engine = Engine::in_memory(Profile::for_tests());
    let fobs: Vec<TestToken> = (0..n).map(|i| gaht_fob(i, now)).collect();
    #[allow(clippy::expect_used)]
    create_account(&engine).expect("fixture account is valid");
    #[allow(clippy::expect_used)]
    import(&engine, &fobs).expect("fixture fobs are valid");
    (engine, fobs)
}

/// Like [`in_memory_with_fobs`] over a SQLite file at `path` (key
/// [`TEST_KEY`]).
///
/// # Errors
/// If the database cannot be opened or already holds an account/fobs.
pub fn sqlite_with_fobs(
    path: &Path,
    n: u64,
    now: Timestamp,
    profile: Profile,
) -> Result<(Engine, Vec<TestToken>), EngineError> {
    let engine = Engine::sqlite(path, &KeySource::Bytes(TEST_KEY), profile)?;
    let fobs: Vec<TestToken> = (0..n).map(|i| gaht_fob(i, now)).collect();
    create_account(&engine)?;
    import(&engine, &fobs)?;
    Ok((engine, fobs))
}

/// The code the token shows at `now` (a press, as a user reads it).
pub fn press(fob: &mut TestToken, now: Timestamp) -> String {
    fob.code_at(now)
}

/// What a user does at enable time: read code 1, wait until the token
/// shows the next step (one period), read code 2. Returns the two codes
/// and the true time of the second reading.
pub fn two_codes_at(fob: &mut TestToken, now: Timestamp) -> (String, String, Timestamp) {
    let c1 = fob.code_at(now);
    let period_ms = i64::try_from(fob.period().saturating_mul(1000)).unwrap_or(30_000);
    let t2 = now.add_millis(period_ms);
    let c2 = fob.code_at(t2);
    (c1, c2, t2)
}

/// [`two_codes_at`] without the time.
pub fn two_codes(fob: &mut TestToken, now: Timestamp) -> (String, String) {
    let (a, b, _) = two_codes_at(fob, now);
    (a, b)
}

/// A [`Store`] double that wraps another store (a [`StoreLayer`]) and,
/// while [`FailingStore::fail_writes`] is on, fails every write with a
/// [`StoreError::Corrupt`] ("injected failure") before touching the inner
/// store. Reads always pass through. For testing how callers handle a
/// store that goes away (`ServiceFailure`, 500) and that nothing is
/// half-applied.
pub struct FailingStore<S> {
    inner: S,
    failing: AtomicBool,
}

impl<S: Store> FailingStore<S> {
    /// Wrap `inner`; writes succeed until [`FailingStore::fail_writes`].
    pub fn new(inner: S) -> Self {
        FailingStore {
            inner,
            failing: AtomicBool::new(false),
        }
    }

    /// Turn write failures on or off.
    pub fn fail_writes(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }
}

impl<S: Store> StoreLayer for FailingStore<S> {
    type Inner = S;
    fn inner(&self) -> &S {
        &self.inner
    }
    fn before_write(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Corrupt("injected failure".into()))
        } else {
            Ok(())
        }
    }
}
