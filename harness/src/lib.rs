//! fobsim's conformance harness: scenario language, runner, engine
//! adapters, reports and drift maps.
//!
//! - [`scenario`]: the line-oriented scenario language (`docs/scenarios.md`)
//!   and its parser (`file:line:col` errors, static checks).
//! - [`suite`]: the built-in conformance suite, embedded from
//!   `fixtures/scenarios/` at build time, and loading files from disk.
//! - [`runner`]: owns the true clock ([`fobsim_core::SimClock`]), drives
//!   fobs through a [`driver::FobDriver`] and an engine through an
//!   [`adapter::EngineAdapter`], records transcripts and verdicts.
//! - [`builtin`]: the adapter for fobsim's own engine (memory or SQLite);
//!   [`iam_http`]: the same engine over its AWS Query API on loopback;
//!   [`iam_remote`]: any running IAM-compatible endpoint, provisioned by a
//!   bootstrap file this crate writes;
//!   [`testing`]: a small independent model of the rules (a test double).
//! - [`report`]: text, JSON and JUnit; [`sweep`]: drift acceptance maps
//!   (SVG + text); [`fleet`]: the many-fobs, many-years simulation.
//!
//! ```
//! use fobsim_harness::{builtin::Builtin, driver::InProcess, runner::Runner, suite};
//! let scenarios = suite::builtin().unwrap();
//! let mut engine = Builtin::in_memory(1);
//! let mut fobs = InProcess;
//! let mut runner = Runner::new(&mut engine, &mut fobs, 1);
//! let result = runner.run(&scenarios[0]);
//! assert_eq!(result.verdict, fobsim_harness::runner::Verdict::Pass);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod adapters;
pub mod bench;
pub mod builtin;
pub mod driver;
pub mod fleet;
pub mod iam_http;
pub mod iam_remote;
pub mod matrix;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod serial;
pub mod suite;
pub mod sweep;
pub mod testing;
