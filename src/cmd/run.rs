//! `fobsim run`: run conformance scenarios against an engine (the main job).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use fobsim_harness::adapter::EngineAdapter;
use fobsim_harness::builtin::{Builtin, StoreKind};
use fobsim_harness::driver::InProcess;
use fobsim_harness::report::Report;
use fobsim_harness::runner::{DEFAULT_SEED, Runner};
use fobsim_harness::suite;
use fobsim_harness::testing::ModelEngine;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per scenario; failures show the transcript diff.
    Text,
    /// Every transcript, byte-identical for the same scenarios and seed.
    Json,
    /// JUnit XML for CI systems.
    Junit,
}

/// Where the built-in engine keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Store {
    /// In memory (fastest).
    Memory,
    /// A fresh SQLite database per scenario in the temp directory.
    Sqlite,
}

/// Arguments of `fobsim run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or directories of `*.scenario` files (default: the
    /// built-in conformance suite).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Engine under test: `builtin` (fobsim's engine) or `model` (the
    /// harness's small reference model of the rules).
    #[arg(long, default_value = "builtin")]
    engine: String,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE instead of stdout (a summary line goes to stderr).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Seed of fob secrets, clock jitter and the engine's RNG.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Store of the built-in engine.
    #[arg(long, value_enum, default_value_t = Store::Memory)]
    store: Store,
    /// Run only scenarios whose id contains this text.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// List the scenarios (id and what each encodes) instead of running them.
    #[arg(long)]
    list: bool,
    /// How the runner reaches the fobs: in this process, or over real
    /// serial ptys (the emulator's line protocol).
    #[arg(long, value_enum, default_value_t = Transport::InProcess)]
    transport: Transport,
}

/// How the runner reaches the fobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Call the fob model directly.
    #[value(name = "in-process")]
    InProcess,
    /// Press over a pseudo-terminal per fob, as a serial client does.
    Serial,
}

/// Build the adapter named on the command line.
///
/// # Errors
/// An unknown engine name.
pub fn adapter(name: &str, store: Store, seed: u64) -> anyhow::Result<Box<dyn EngineAdapter>> {
    Ok(match name {
        "builtin" => Box::new(Builtin::new(
            match store {
                Store::Memory => StoreKind::Memory,
                Store::Sqlite => StoreKind::Sqlite {
                    dir: std::env::temp_dir(),
                },
            },
            seed,
        )),
        "model" => Box::new(ModelEngine::new()),
        "iam-http" => Box::new(fobsim_harness::iam_http::IamHttp::new(seed)),
        other => anyhow::bail!("unknown engine {other:?}: expected builtin, model or iam-http"),
    })
}

/// Run `fobsim run`.
///
/// # Errors
/// Bad input: unreadable or malformed scenario files (`file:line:col`), an
/// unknown engine, an unwritable `--out`. Failed expectations are exit 1.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut scenarios = if args.paths.is_empty() {
        suite::builtin()?
    } else {
        suite::load_paths(&args.paths)?
    };
    if let Some(only) = &args.only {
        scenarios.retain(|s| s.id.contains(only.as_str()));
        anyhow::ensure!(!scenarios.is_empty(), "no scenario id contains {only:?}");
    }
    if args.list {
        for s in &scenarios {
            let src = s
                .sources
                .first()
                .map(|x| format!("[{}] {}", x.kind.as_str(), x.text))
                .unwrap_or_default();
            println!("{}  {}  {src}", s.id, s.file);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut engine = adapter(&args.engine, args.store, args.seed)?;
    let mut in_process = InProcess;
    let mut serial;
    let fobs: &mut dyn fobsim_harness::driver::FobBackend = match args.transport {
        Transport::InProcess => &mut in_process,
        Transport::Serial => {
            serial = fobsim_harness::serial::SerialBackend::new(std::time::Duration::from_secs(10))
                .context("starting the serial ptys")?;
            &mut serial
        }
    };
    let started = Instant::now();
    let results: Vec<_> = {
        let mut runner = Runner::new(engine.as_mut(), fobs, args.seed);
        scenarios.iter().map(|s| runner.run(s)).collect()
    };
    let elapsed = started.elapsed();
    let report = Report::new(&args.engine, args.seed, &results);
    let body = match args.format {
        Format::Text => format!(
            "{}({} scenarios in {:.3} s)\n",
            report.text(),
            results.len(),
            elapsed.as_secs_f64()
        ),
        Format::Json => report.json(),
        Format::Junit => report.junit(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let s = report.summary;
            eprintln!(
                "{} scenarios against {}: {} passed, {} failed, {} n/a, {} errors; report in {}",
                s.total,
                args.engine,
                s.passed,
                s.failed,
                s.not_applicable,
                s.errors,
                path.display()
            );
        }
        None => print!("{body}"),
    }
    Ok(if report.summary.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
