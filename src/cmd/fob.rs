//! `fobsim fob`: one simulated fob, one question — what does it show at a
//! given true time, with a given drift? For QA reproducing a report
//! ("47 s fast after two years") without starting an emulator.

use std::process::ExitCode;

use anyhow::Context as _;
use fobsim_core::time::{format_duration_ms, parse_duration_ms};
use fobsim_core::{Serial, Timestamp};
use fobsim_firmware::{Drift, Fob, FobSpec, preset};
use fobsim_harness::runner::DEFAULT_SEED;

use super::common::parse_time;

/// Arguments of `fobsim fob`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model preset (see `fobsim models`).
    #[arg(short = 'm', long, default_value = "gaht")]
    model: String,
    /// Serial number (default: the model's first serial).
    #[arg(long)]
    serial: Option<String>,
    /// Seed of the fob's secret and jitter (as `fobsim run` and `fobsim
    /// emulate`: the same seed and serial give the same secret).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// True time at which the RTC was set (Unix seconds, @SECONDS or RFC
    /// 3339 UTC). Default: --at.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    set_at: Option<String>,
    /// Device clock offset at --set-at, e.g. 47s or -2m.
    #[arg(long, default_value = "0s", allow_hyphen_values = true)]
    offset: String,
    /// Crystal skew in ppm (+ = fast).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = super::common::ppm)]
    ppm: f64,
    /// Jitter bound, e.g. 500ms.
    #[arg(long, default_value = "0s", allow_hyphen_values = true)]
    jitter: String,
    /// True time to press the button at: Unix seconds, @SECONDS or RFC 3339 UTC.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    at: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Run `fobsim fob`.
///
/// # Errors
/// Unknown model, invalid serial, unreadable times or durations, or a skew
/// the model refuses.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let model = preset(&args.model)
        .with_context(|| format!("unknown model {:?} (see `fobsim models`)", args.model))?;
    let serial = match &args.serial {
        Some(s) => Serial::new(s).with_context(|| format!("--serial {s:?}"))?,
        None => model.serial(1)?,
    };
    let at: Timestamp = parse_time(&args.at).context("--at")?;
    let set_at: Timestamp = match &args.set_at {
        Some(s) => parse_time(s).context("--set-at")?,
        None => at,
    };
    let jitter_ms = parse_duration_ms(&args.jitter).context("--jitter")?;
    let drift = Drift {
        offset_ms: parse_duration_ms(&args.offset).context("--offset")?,
        ppm: args.ppm,
        jitter_ms: u32::try_from(jitter_ms).map_err(|_| {
            anyhow::anyhow!(
                "--jitter {}: out of range: expected 0 or more and below 49 days (e.g. 500ms)",
                args.jitter
            )
        })?,
    };
    let mut spec = FobSpec::seeded(model, serial, args.seed, set_at)?;
    spec.drift = drift;
    let mut fob = Fob::new(spec)?;
    let shown = fob.press(at);
    let device_ms = fob.device_ms(at).unwrap_or_default();
    let offset = fob.drift(at).offset_ms;
    let step = fob.device_step(at);
    if args.json {
        let v = serde_json::json!({
            "serial": fob.serial().as_str(),
            "model": model.name,
            "true_time": at.to_string(),
            "device_time": u64::try_from(device_ms).ok().map(|m| Timestamp::from_millis(m).to_string()),
            "offset_ms": offset,
            "step": step,
            "display": shown.to_string(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!("serial   {}", fob.serial());
        outln!("model    {}", model.name);
        outln!("true     {at}");
        if let Ok(ms) = u64::try_from(device_ms) {
            outln!(
                "device   {} ({})",
                Timestamp::from_millis(ms),
                format_duration_ms(offset)
            );
        }
        if let Some(step) = step {
            outln!("step     {step}");
        }
        outln!("display  {shown}");
    }
    Ok(ExitCode::SUCCESS)
}
