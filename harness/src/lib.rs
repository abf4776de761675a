//! fobsim's conformance harness core: scenario language, runner, the engine
//! adapter trait, reports, drift maps and the conformance matrix. It links
//! no engine: engines come through an [`adapter::Opener`] (fobsim's own
//! and third-party ones are in the `fobsim-engines` crate), so a team that
//! judges its own engine links only what it uses.
//!
//! - [`scenario`]: the line-oriented scenario language (`docs/scenarios.md`)
//!   and its parser (`file:line:col` errors, static checks).
//! - [`suite`]: the built-in conformance suite, embedded from
//!   `fixtures/scenarios/` at build time, and loading files from disk.
//! - [`adapter`]: the [`adapter::EngineAdapter`] trait every system under
//!   test is judged through, its requests, answers and capabilities, and
//!   the [`adapter::Opener`] that opens engines by name.
//! - [`runner`]: owns the true clock ([`fobsim_core::SimClock`]), drives
//!   fobs through a [`driver::FobDriver`] (in-process, or over real ptys:
//!   [`serial`]) and an engine through an adapter, records transcripts and
//!   verdicts.
//! - [`testing`]: a small independent model of the rules (a test double,
//!   and the `model` engine).
//! - [`report`]: text, JSON and JUnit; [`sweep`]: drift acceptance maps
//!   (SVG + text); [`matrix`]: the suite against several engines.
//!
//! ```
//! use fobsim_harness::{driver::InProcess, runner::Runner, suite, testing::ModelEngine};
//! let scenarios = suite::builtin().unwrap();
//! let mut engine = ModelEngine::new();
//! let mut fobs = InProcess;
//! let mut runner = Runner::new(&mut engine, &mut fobs, 1);
//! let result = runner.run(&scenarios[0]);
//! assert_eq!(result.verdict, fobsim_harness::runner::Verdict::Pass);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod driver;
pub mod junit;
pub mod matrix;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod serial;
pub mod suite;
pub mod sweep;
pub mod testing;
