//! The scenario language: a line-oriented text format QA can read and
//! write without Rust (see `docs/scenarios.md`).

mod ast;
mod parse;

pub use ast::{
    Action, BatteryAction, CodeRef, DEFAULT_START, DeviceDecl, DeviceRef, DisplayExpect, Outcome,
    Scenario, SecretBytes, Source, SourceKind, Step,
};
pub use parse::{MAX_REPEAT, MAX_STEPS, ParseError, align, parse};
