//! `fobsim models`: list the fob model presets.

use std::process::ExitCode;

use fobsim_core::Kind;
use fobsim_firmware::PRESETS;

/// Arguments of `fobsim models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run `fobsim models`.
///
/// # Errors
/// Only if standard output cannot be written.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.json {
        let list: Vec<_> = PRESETS
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "kind": match m.kind { Kind::Totp { .. } => "totp", Kind::Hotp => "hotp" },
                    "period": m.period(),
                    "algorithm": m.algorithm.as_str(),
                    "digits": m.digits,
                    "display_ms": m.display_ms,
                    "serial_example": m.serial(1).map(|s| s.to_string()).unwrap_or_default(),
                    "description": m.description,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<6} {:<5} {:>6} {:<7} {:>6}  {:<16} DESCRIPTION",
        "MODEL",
        "KIND",
        "STEP",
        "HASH",
        "DIGITS",
        "SERIAL"
    );
    for m in PRESETS {
        let (kind, step) = match m.kind {
            Kind::Totp { period } => ("totp", format!("{period}s")),
            Kind::Hotp => ("hotp", "-".to_string()),
        };
        let serial = m.serial(1).map(|s| s.to_string()).unwrap_or_default();
        outln!(
            "{:<6} {:<5} {:>6} {:<7} {:>6}  {:<16} {}",
            m.name,
            kind,
            step,
            m.algorithm.as_str(),
            m.digits,
            serial,
            m.description
        );
    }
    Ok(ExitCode::SUCCESS)
}
