//! `fobsim sweep`: a drift acceptance map for an engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use fobsim_core::time::{format_duration_ms, parse_duration_ms};
use fobsim_harness::driver::InProcess;
use fobsim_harness::sweep::{self, SweepSpec};

use fobsim_engines::Registry;
use fobsim_harness::adapter::Opener as _;

use fobsim_engines::StoreKind;

/// What the y axis measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Axis {
    /// Delay between pressing the button and submitting the code.
    Delay,
    /// Time since the last successful sign-in (the clock drifts linearly).
    SinceLast,
}

/// Arguments of `fobsim sweep`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Engine under test: any name `fobsim run --engine` takes (`builtin`,
    /// `model`, `iam-http`, `privacyidea`, ...).
    #[arg(short = 'e', long, default_value = "builtin")]
    engine: String,
    /// Store of the built-in engine.
    #[arg(long, value_parser = super::common::store_parser(), default_value_t = StoreKind::Memory)]
    store: StoreKind,
    /// Write the SVG map here.
    #[arg(short = 'o', long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the map as JSON on stdout (the summary goes to stderr), as
    /// `--json` does everywhere; `--json FILE` writes it to FILE instead.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    json: Option<Option<PathBuf>>,
    /// What the y axis measures.
    #[arg(long, value_enum, default_value_t = Axis::Delay)]
    y: Axis,
    /// Largest device clock offset either way (x axis: -MAX .. +MAX).
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    x_max: String,
    /// Column width on the x axis.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    x_step: String,
    /// Largest delay (y axis, `--y delay` only; `since-last` uses 0 s .. 3 y).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    y_max: String,
    /// Row height on the y axis (`--y delay` only).
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    y_step: String,
    /// Fob model preset (time-based).
    #[arg(short = 'm', long, default_value = "gaht")]
    model: String,
    /// Sign-in attempts per cell (more than the lockout threshold shows locking).
    #[arg(long, default_value_t = 1)]
    attempts: u32,
    /// Largest map run without `--force`: a larger one is refused with an
    /// estimate of its time, measured on a sample of its cells.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CELLS)]
    max_cells: usize,
    /// Run a map larger than `--max-cells` anyway.
    #[arg(long)]
    force: bool,
    /// Seed of the fob's secret (the same default as every `--seed`).
    #[arg(long, default_value_t = fobsim_harness::runner::DEFAULT_SEED)]
    seed: u64,
}

/// `--max-cells` by default: the default map is 1,281 cells; 20,000 take
/// about a minute on the built-in engine, far longer on a third-party one.
pub const DEFAULT_MAX_CELLS: usize = 20_000;

/// Cells of the sample that times a map refused as too large.
const SAMPLE_CELLS: usize = 40;

/// Refuse a map above `--max-cells` (unless `--force`), saying how long it
/// would take: the time of a sample of its cells on this engine, scaled.
fn guard_size(
    args: &Args,
    spec: &SweepSpec,
    engine: &mut dyn fobsim_harness::adapter::EngineAdapter,
) -> anyhow::Result<()> {
    let cells = spec.cells();
    if cells <= args.max_cells || args.force {
        return Ok(());
    }
    // A spread of the first row's offsets (accepted and rejected cells
    // cost differently).
    let mut sample = spec.clone();
    let stride = (spec.offsets_ms.len() / SAMPLE_CELLS).max(1);
    sample.offsets_ms = spec
        .offsets_ms
        .iter()
        .step_by(stride)
        .take(SAMPLE_CELLS)
        .copied()
        .collect();
    sample.delays_ms.truncate(1);
    let started = Instant::now();
    sweep::run(engine, &mut InProcess, &sample, &mut |_, _| {})?;
    let per_cell = started.elapsed().as_secs_f64() / sample.cells().max(1) as f64;
    let estimate_ms = (per_cell * cells as f64 * 1000.0).min(i64::MAX as f64) as i64;
    anyhow::bail!(
        "{cells} cells ({} offsets x {} rows, {} attempt(s) each) is more than --max-cells {}: about {} on engine {} ({:.0} cells/s measured on {} cells). Narrow the axes (--x-max, --x-step, --y-max, --y-step), or run it anyway with --force or --max-cells {cells}",
        spec.offsets_ms.len(),
        spec.delays_ms.len(),
        spec.attempts,
        args.max_cells,
        format_duration_ms(estimate_ms.max(1000) / 1000 * 1000),
        args.engine,
        1.0 / per_cell.max(1e-9),
        sample.cells()
    )
}

fn dur(name: &str, s: &str) -> anyhow::Result<i64> {
    parse_duration_ms(s).with_context(|| format!("--{name}"))
}

fn range(max: i64, step: i64, symmetric: bool) -> anyhow::Result<Vec<i64>> {
    anyhow::ensure!(
        step > 0 && max >= 0,
        "steps must be positive and maxima not negative"
    );
    let n = max / step;
    anyhow::ensure!(n <= 2_000, "too many cells: at most 2000 per axis");
    let lo = if symmetric { -n } else { 0 };
    Ok((lo..=n).map(|i| i * step).collect())
}

/// Run `fobsim sweep`.
///
/// # Errors
/// Bad durations, an unknown engine or model, an unwritable output file.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut spec = match args.y {
        Axis::Delay => SweepSpec::submit_delay_default(),
        Axis::SinceLast => SweepSpec::since_last_sign_in_default(),
    };
    spec.offsets_ms = range(
        dur("x-max", &args.x_max)?,
        dur("x-step", &args.x_step)?,
        true,
    )?;
    if args.y == Axis::Delay {
        spec.delays_ms = range(
            dur("y-max", &args.y_max)?,
            dur("y-step", &args.y_step)?,
            false,
        )?;
    }
    spec.model = args.model.clone();
    spec.attempts = args.attempts;
    spec.seed = args.seed;
    let registry = Registry {
        store: args.store.clone(),
        ..Registry::new(args.seed)
    };
    if let Err(e) = fobsim_engines::cleanup::install_signal_handlers() {
        eprintln!("fobsim: warning: no cleanup on interrupt: {e}");
    }
    let mut engine = registry.open(&args.engine)?;
    guard_size(&args, &spec, engine.as_mut())?;
    let mut fobs = InProcess;
    let map = sweep::run_with_progress(engine.as_mut(), &mut fobs, &spec, 200)?;
    if matches!(args.json, Some(None)) {
        eprint!("{}", map.summary());
    } else {
        out!("{}", map.summary());
    }
    if let Some(path) = &args.out {
        std::fs::write(path, map.svg()?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("map written to {}", path.display());
    }
    match &args.json {
        Some(Some(path)) => {
            let text = serde_json::to_string_pretty(&map)? + "\n";
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Some(None) => outln!("{}", serde_json::to_string_pretty(&map)?),
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}
