//! `fobsim adapter`: serve one of fobsim's engines over the exec adapter
//! protocol on stdin/stdout (docs/adapter-protocol.md). The protocol's
//! reference implementation: `fobsim run --engine 'exec:fobsim adapter
//! --engine builtin'` gives the transcripts of `--engine builtin`.

use std::process::ExitCode;

use fobsim_engines::Registry;
use fobsim_harness::adapter::Opener as _;
use fobsim_harness::runner::DEFAULT_SEED;

use fobsim_engines::StoreKind;

/// Arguments of `fobsim adapter`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The engine to serve: any name `fobsim run --engine` takes.
    #[arg(long, default_value = "builtin")]
    engine: String,
    /// Seed of the engine's RNG (recovery codes, salts).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Store of the built-in engine.
    #[arg(long, value_parser = super::common::store_parser(), default_value_t = StoreKind::Memory)]
    store: StoreKind,
}

/// Run `fobsim adapter` until stdin ends.
///
/// # Errors
/// An unknown engine or one that cannot be set up; stdin or stdout failing.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let registry = Registry {
        store: args.store.clone(),
        ..Registry::new(args.seed)
    };
    if let Err(e) = fobsim_engines::cleanup::install_signal_handlers() {
        eprintln!("fobsim: warning: no cleanup on interrupt: {e}");
    }
    let mut engine = registry.open(&args.engine)?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    fobsim_engines::exec::serve(engine.as_mut(), stdin, stdout)?;
    Ok(ExitCode::SUCCESS)
}
