//! One module per subcommand.

pub mod adapter;
pub mod bench;
pub mod clock;
pub mod code;
pub mod common;
pub mod device;
pub mod emulate;
pub mod fob;
pub mod matrix;
pub mod models;
pub mod run;
pub mod serve;
pub mod sweep;
pub mod up;
