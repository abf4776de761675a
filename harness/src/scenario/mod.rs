//! The scenario language: a line-oriented text format QA can read and
//! write without Rust (see `docs/scenarios.md`).

mod ast;
mod parse;
pub mod vocabulary;

pub use ast::{
    Action, Base, BatteryAction, CodeRef, DEFAULT_START, DeviceDecl, DeviceRef, DisplayExpect,
    Outcome, Refine, Scenario, SecretBytes, ServerClock, Source, SourceKind, Step,
    WRONG_GUARD_STEPS,
};
pub use parse::{MAX_ACCESS_KEYS, MAX_REPEAT, MAX_STEPS, ParseError, align, parse};
