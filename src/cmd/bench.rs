//! `fobsim bench`: measure fobsim and its peers (totp-rs, pyotp, oathtool,
//! privacyIDEA) on this machine in one run and print one table (Markdown)
//! or JSON. The work is in `fobsim_bench`; peers are installed by
//! `tests/perf/peers.sh`, the whole table is reproduced by
//! `tests/perf/run.sh` (see `docs/PERFORMANCE.md`).
//!
//! Numbers never decide the exit code: 0 when the run completed (missing
//! peers are rows marked "not measured"), 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use fobsim_bench::{Group, Options};

/// Arguments of `fobsim bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Shorter runs and smaller sizes (fleet simulation 1,000 fobs × 365
    /// days); the output says so.
    #[arg(long)]
    quick: bool,
    /// Print JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Run only these groups (repeatable or comma-separated): otp, verify,
    /// search, emulator, harness, console.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Client concurrency for every verification row (ours and the peers').
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Skip the peers (pyotp, oathtool, privacyIDEA); totp-rs still runs.
    #[arg(long)]
    no_peers: bool,
    /// Python with pyotp (default: the venv `tests/perf/peers.sh` makes).
    #[arg(long)]
    pyotp_python: Option<PathBuf>,
    /// The oathtool binary.
    #[arg(long, default_value = "oathtool")]
    oathtool: PathBuf,
    /// privacyIDEA virtualenv (default: `FOBSIM_PRIVACYIDEA_VENV` or
    /// `target/peers/venv-pi`).
    #[arg(long)]
    privacyidea_venv: Option<PathBuf>,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    silent: bool,
}

/// Run `fobsim bench`.
///
/// # Errors
/// Unknown group names, `--concurrency 0`, or output that cannot be
/// written.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut opts = Options::new(args.quick);
    for name in &args.only {
        match Group::parse(name.trim()) {
            Some(g) => opts.only.push(g),
            None => bail!(
                "unknown group {name:?} (expected one of: {})",
                Group::ALL.map(Group::name).join(", ")
            ),
        }
    }
    if args.concurrency == 0 || args.concurrency > 256 {
        bail!("--concurrency must be 1..=256");
    }
    opts.concurrency = args.concurrency;
    opts.peers = !args.no_peers;
    if let Some(p) = args.pyotp_python {
        opts.pyotp_python = p;
    }
    opts.oathtool = args.oathtool;
    if let Some(v) = args.privacyidea_venv {
        opts.privacyidea_venv = v;
    }
    opts.progress = !args.silent;
    let report = fobsim_bench::run(&opts)?;
    let table = report.markdown();
    if let Some(path) = &args.out {
        std::fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{table}");
    }
    Ok(ExitCode::SUCCESS)
}
