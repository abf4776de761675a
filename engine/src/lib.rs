//! fobsim's reference MFA verification engine: the AWS IAM hardware-MFA
//! rules of the seed page, made precise, persistent and safe under
//! concurrency.
//!
//! - [`Engine`]: account, users, the registry of hardware tokens (from
//!   vendor seed records), `EnableMFADevice`, `ResyncMFADevice`,
//!   `DeactivateMFADevice`, `ListMFADevices`, `GetUser`, console sign-in,
//!   the session MFA check behind STS `GetSessionToken`, and root recovery
//!   by alternative factors (email + phone codes in an [`Engine::outbox`]).
//! - [`Profile`]: every number of the rules (DESIGN.md table), from TOML.
//! - [`Store`]: [`MemoryStore`], [`SqliteStore`] (WAL, migrations,
//!   secrets sealed with XChaCha20-Poly1305) and [`PgStore`] (PostgreSQL:
//!   engine replicas on one database, the same migrations and sealing). Replay protection, assignment
//!   and lockout are atomic conditional updates in the store, each write one
//!   request struct; a wrapper of a store is a [`StoreLayer`]. The names of
//!   tokens and their state: [`store`]'s glossary.
//! - [`EngineError`]: AWS error code, HTTP status and message.
//!
//! Time is a value: every operation takes `now`; nothing reads a clock.
//!
//! For harnesses and tests: [`testing`] builds a ready engine in one call
//! ([`testing::in_memory_with_fobs`], [`testing::sqlite_with_fobs`]) with
//! [`Profile::for_tests`] (cheap Argon2, fixed RNG seed, so recovery codes
//! are deterministic), presses fob buttons ([`testing::two_codes_at`]) and
//! ships a [`testing::FailingStore`] double. Large simulations on SQLite
//! should group operations with [`Engine::batch`] (one transaction per
//! batch, e.g. per simulated day).
//!
//! ```
//! use fobsim_core::{Channel, Principal};
//! use fobsim_engine::testing;
//! let now = testing::T0;
//! let (engine, mut fobs) = testing::in_memory_with_fobs(1, now);
//! let alice = Principal::user("alice");
//! let (c1, c2) = testing::two_codes(&mut fobs[0], now);
//! let later = now.add_millis(60_000);
//! engine
//!     .enable_mfa_device(later, Channel::Console, &alice, fobs[0].serial().as_str(), &c1, &c2)
//!     .unwrap();
//! let c = testing::press(&mut fobs[0], later);
//! engine.verify_session_mfa(later, &alice, fobs[0].serial().as_str(), &c).unwrap();
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod console;
mod engine;
mod error;
mod password;
mod profile;
pub mod store;
mod sync;
pub mod testing;
mod types;

pub use engine::Engine;
pub use error::{EngineError, ErrorKind, ProfileError, StoreError};
pub use profile::{PasswordCost, Profile};
pub use store::{
    KeySource, MemoryStore, PgOptions, PgStore, SqliteOptions, SqliteStore, Store, StoreLayer,
};
pub use types::{ConsoleSignIn, MfaDevice, OutboxChannel, OutboxMessage, TokenState, UserInfo};
