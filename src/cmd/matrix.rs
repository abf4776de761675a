//! `fobsim matrix`: run the conformance suite against several engines —
//! fobsim's own and third-party ones (privacyIDEA, pam_google_authenticator,
//! pam_oath, oathtool, moto, django-otp) — and print the scenario × engine table with a
//! drift acceptance map per engine. See `docs/conformance.md`.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fobsim_engines::{Registry, cleanup};
use fobsim_harness::adapter::Opener as _;
use fobsim_harness::matrix::{self, Options};
use fobsim_harness::runner::DEFAULT_SEED;
use fobsim_harness::suite;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The table, totals, deviations and the maps side by side.
    Text,
    /// A Markdown table (as published in docs/conformance.md).
    Markdown,
    /// Everything, deterministic (no wall times): what the snapshot test pins.
    Json,
    /// JUnit XML, one test suite per engine.
    Junit,
}

/// Arguments of `fobsim matrix`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or directories (default: the built-in suite).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Engines, comma-separated, in column order: any name `fobsim run
    /// --engine` takes, `exec:COMMAND` too (a COMMAND with a comma: put it
    /// in a script).
    #[arg(
        short = 'e',
        long,
        value_delimiter = ',',
        default_value = "builtin,privacyidea,pam-google,pam-oath,oathtool,moto,django-otp"
    )]
    engines: Vec<String>,
    /// Report format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE (a summary goes to stderr).
    #[arg(short = 'o', long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Seed of fob secrets, clock jitter and the built-in engine's RNG.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Run only scenarios whose id contains this text.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Skip the drift acceptance maps.
    #[arg(long)]
    no_sweep: bool,
    /// Also measure verification throughput: N correct codes per engine
    /// through its adapter (printed to stderr).
    #[arg(long, value_name = "N", default_value_t = 0)]
    bench: u32,
}

/// One line per engine on a terminal's stderr, rewritten as its scenarios
/// run (`privacyidea: 37/102 scenarios`); nothing when stderr is not a
/// terminal (CI logs get the summary at the end).
struct Progress {
    tty: bool,
    /// A line is open (no newline yet).
    open: bool,
}

impl Progress {
    fn new(tty: bool) -> Self {
        Progress { tty, open: false }
    }

    fn update(&mut self, engine: &str, done: usize, total: usize) {
        if !self.tty {
            return;
        }
        if done == 0 {
            self.finish();
            eprint!("  {engine}: starting ({total} scenarios)");
        } else {
            eprint!("\r\x1b[K  {engine}: {done}/{total} scenarios");
        }
        self.open = true;
        let _ = std::io::stderr().flush();
    }

    fn finish(&mut self) {
        if self.open {
            eprintln!();
            self.open = false;
        }
    }
}

/// Run `fobsim matrix`.
///
/// Exit status: 0 when every engine was set up, no adapter broke and the
/// built-in engine passed all it can express (third-party deviations are
/// the matrix's findings, not failures); 1 otherwise; 2 for bad input.
///
/// # Errors
/// Bad input: malformed scenarios, an unknown engine, an unwritable `--out`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Err(e) = cleanup::install_signal_handlers() {
        eprintln!("fobsim: warning: no cleanup on interrupt: {e}");
    }
    let mut scenarios = if args.paths.is_empty() {
        suite::builtin()?
    } else {
        suite::load_paths(&args.paths)?
    };
    if let Some(only) = &args.only {
        scenarios.retain(|s| s.id.contains(only.as_str()));
        anyhow::ensure!(!scenarios.is_empty(), "no scenario id contains {only:?}");
    }
    // Settings are the built-in engine's profile keys (docs/scenarios.md):
    // a bad one is bad input, found before any engine starts.
    fobsim_harness::runner::check_settings(
        Registry::new(args.seed).open("builtin")?.as_ref(),
        &scenarios,
    )?;
    let opts = Options {
        engines: args.engines.clone(),
        seed: args.seed,
        sweep: (!args.no_sweep).then(matrix::default_sweep),
        throughput: args.bench,
    };
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let (m, timings) = matrix::run(
        &opts,
        &Registry::new(args.seed),
        &scenarios,
        &mut |engine, done, total| progress.update(engine, done, total),
    )?;
    progress.finish();
    let body = match args.format {
        Format::Text => m.text(),
        Format::Markdown => m.markdown(),
        Format::Json => m.json(),
        Format::Junit => m.junit_timed(Some(&timings)),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("matrix written to {}", path.display());
        }
        None => out!("{body}"),
    }
    eprintln!(
        "matrix: {} scenarios x {} engines in {:.1} s",
        scenarios.len(),
        args.engines.len(),
        timings.total.as_secs_f64()
    );
    for (name, t_sc, t_sw) in &timings.engines {
        eprintln!(
            "  {name:12} scenarios {:7.2} s   drift map {:7.2} s",
            t_sc.as_secs_f64(),
            t_sw.as_secs_f64()
        );
    }
    for (name, t) in &timings.throughput {
        match t {
            Ok(t) => eprintln!(
                "  {name:12} {:9.1} verifications/s through the adapter ({} in {:.3} s)",
                t.per_second(),
                t.verifications,
                t.elapsed.as_secs_f64()
            ),
            Err(e) => eprintln!("  {name:12} throughput not measured: {e}"),
        }
    }
    Ok(if m.complete() && m.builtin_conforms() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
