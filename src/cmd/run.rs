//! `fobsim run`: run conformance scenarios against an engine (the main job).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use fobsim_engines::iam_remote::{ClockControl, SeedEncryption};
use fobsim_engines::{Endpoint, Registry, StoreKind, cleanup};
use fobsim_harness::adapter::Opener as _;
use fobsim_harness::driver::InProcess;
use fobsim_harness::report::Report;
use fobsim_harness::runner::{DEFAULT_SEED, Runner};
use fobsim_harness::suite;

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

/// Arguments of `fobsim run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or directories of `*.scenario` files (default: the
    /// built-in conformance suite).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Engine under test: `builtin` (fobsim's engine), `model` (the
    /// harness's small reference model of the rules), `iam-http` (fobsim's
    /// engine behind its AWS API on loopback, a fresh server per scenario;
    /// with `--endpoint`, a running IAM-compatible endpoint), `console`
    /// (the same server with its console pages driven in headless Chromium
    /// over WebDriver; `bash tests/browser/setup.sh` installs it), or a
    /// third-party engine: `privacyidea`, `pam-google`, `pam-oath`,
    /// `oathtool`, `moto`, `django-otp` (`bash tests/matrix/setup.sh`
    /// installs them); or `exec:COMMAND`: your own engine behind an adapter
    /// program that speaks JSON lines on stdin/stdout
    /// (docs/adapter-protocol.md).
    #[arg(short = 'e', long, default_value = "builtin")]
    engine: String,
    /// With `--engine iam-http`: run against this already-running endpoint
    /// (`http://HOST:PORT`) instead of a server per scenario. Needs
    /// `--bootstrap` (the file it was provisioned with, from
    /// `--write-bootstrap`) and a way to move its clock: `--control` or
    /// `--faketime-file`.
    #[arg(long, value_name = "URL", requires = "bootstrap")]
    endpoint: Option<String>,
    /// The bootstrap file the endpoint was started with (users' access keys,
    /// seed files).
    #[arg(long, value_name = "FILE", requires = "endpoint")]
    bootstrap: Option<PathBuf>,
    /// The control socket of the endpoint's clock (`fobsim serve --clock
    /// manual --control SOCKET`): scenarios move time.
    #[arg(long, value_name = "SOCKET", requires = "endpoint")]
    control: Option<PathBuf>,
    /// The libfaketime timestamp file the endpoint runs under
    /// (`LD_PRELOAD=libfaketime.so.1 FAKETIME_TIMESTAMP_FILE=FILE
    /// FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1`): for an
    /// engine without fobsim's control plane.
    #[arg(
        long,
        value_name = "FILE",
        requires = "endpoint",
        conflicts_with = "control"
    )]
    faketime_file: Option<PathBuf>,
    /// Write the bootstrap that provisions one endpoint for the selected
    /// scenarios under `--seed` (DIR/bootstrap.toml, seeds.csv or seeds.pskc,
    /// harness-policy.json), then exit. Start the endpoint with it (e.g.
    /// `fobsim serve --bootstrap DIR/bootstrap.toml --clock manual
    /// --control SOCKET`) and run with `--endpoint`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["endpoint", "list"])]
    write_bootstrap: Option<PathBuf>,
    /// With `--write-bootstrap`: write the seeds as encrypted PSKC
    /// (DIR/seeds.pskc, RFC 6030 §6.1: AES-CBC with a MAC) under the
    /// pre-shared transport key in FILE (hex; created with a random
    /// AES-128 key if missing); the bootstrap names FILE. The file must be
    /// accessible by its owner only (chmod 600).
    #[arg(
        long,
        value_name = "FILE",
        requires = "write_bootstrap",
        conflicts_with = "pskc_password_file"
    )]
    pskc_key_file: Option<PathBuf>,
    /// With `--write-bootstrap`: write the seeds as encrypted PSKC
    /// (DIR/seeds.pskc, RFC 6030 §6.2: PBKDF2, AES-128-CBC with a MAC)
    /// under the password in FILE; the bootstrap names FILE. The file must
    /// be accessible by its owner only (chmod 600).
    #[arg(long, value_name = "FILE", requires = "write_bootstrap")]
    pskc_password_file: Option<PathBuf>,
    /// Exit 0 when nothing failed even if some scenarios were `n/a` (the
    /// engine lacks a capability they need). By default `n/a` exits 1.
    #[arg(long)]
    allow_na: bool,
    /// Report format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE instead of stdout (a summary line goes to stderr).
    #[arg(short = 'o', long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Seed of fob secrets, clock jitter and the engine's RNG.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Store of the built-in engine.
    #[arg(long, value_parser = super::common::store_parser(), default_value_t = StoreKind::Memory)]
    store: StoreKind,
    /// Run only scenarios whose id contains this text.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// List the scenarios (id and what each encodes) instead of running them.
    #[arg(short = 'l', long)]
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
            outln!("{}  {}  {src}", s.id, s.file);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = &args.write_bootstrap {
        let protection = super::common::pskc_protection(
            args.pskc_key_file.as_deref(),
            args.pskc_password_file.as_deref(),
        )?;
        let encryption = protection.map(|protection| SeedEncryption {
            protection,
            file: args
                .pskc_key_file
                .clone()
                .or_else(|| args.pskc_password_file.clone())
                .unwrap_or_default(),
        });
        let done = fobsim_engines::iam_remote::write_bootstrap_encrypted(
            &scenarios,
            args.seed,
            dir,
            encryption.as_ref(),
        )?;
        outln!(
            "wrote {}: {} scenarios, {} users, {} tokens (--seed {}); start the endpoint with it, e.g.\n  fobsim serve --db DB --bootstrap {} --clock manual --control SOCKET\nthen: fobsim run --engine iam-http --endpoint URL --bootstrap {} --control SOCKET",
            done.bootstrap.display(),
            done.scenarios,
            done.users,
            done.tokens,
            args.seed,
            done.bootstrap.display(),
            done.bootstrap.display(),
        );
        if let Some(enc) = &encryption {
            outln!(
                "the seeds are in {}, encrypted (RFC 6030 PSKC) under the {} in {}",
                done.seeds.display(),
                enc.protection.kind(),
                enc.file.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let endpoint = match (&args.endpoint, &args.bootstrap) {
        (Some(url), Some(boot)) => {
            anyhow::ensure!(
                args.engine == "iam-http",
                "--endpoint needs --engine iam-http (got {:?})",
                args.engine
            );
            let clock = match (&args.control, &args.faketime_file) {
                (Some(socket), _) => ClockControl::Socket(socket.clone()),
                (None, Some(file)) => ClockControl::FakeTimeFile(file.clone()),
                (None, None) => anyhow::bail!(
                    "--endpoint needs a way to move the endpoint's clock (scenarios span years): --control SOCKET (fobsim serve --clock manual --control SOCKET) or --faketime-file FILE (an engine under libfaketime)"
                ),
            };
            Some(Endpoint {
                url: url.clone(),
                bootstrap: boot.clone(),
                clock,
            })
        }
        _ => None,
    };
    let registry = Registry {
        store: args.store.clone(),
        endpoint,
        ..Registry::new(args.seed)
    };
    // Adapter programs and servers are stopped by PID on interrupt too.
    if let Err(e) = cleanup::install_signal_handlers() {
        eprintln!("fobsim: warning: no cleanup on interrupt: {e}");
    }
    let mut engine = registry.open(&args.engine)?;
    // Before anything runs: the settings the engine refuses are bad input
    // at their file:line:col, as malformed lines are.
    fobsim_harness::runner::check_settings(engine.as_ref(), &scenarios)?;
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
    let (results, times): (Vec<_>, Vec<_>) = {
        let mut runner = Runner::new(engine.as_mut(), fobs, args.seed);
        scenarios
            .iter()
            .map(|s| {
                let t = Instant::now();
                let r = runner.run(s);
                (r, t.elapsed())
            })
            .unzip()
    };
    let elapsed = started.elapsed();
    let label = match &args.endpoint {
        Some(url) => format!("{} {url}", args.engine),
        None => args.engine.clone(),
    };
    // The JSON transcript stays the same whichever way the fobs were
    // reached; what a person reads names the transport.
    let shown = match args.transport {
        Transport::InProcess => label.clone(),
        Transport::Serial => format!("{label}, fobs over serial ptys"),
    };
    let report = Report::new(&label, args.seed, &results);
    let body = match args.format {
        Format::Text => format!(
            "{}({} scenarios in {:.3} s)\n",
            Report::new(&shown, args.seed, &results).text(),
            results.len(),
            elapsed.as_secs_f64()
        ),
        Format::Json => report.json(),
        Format::Junit => report.clone().with_times(&times).junit(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let s = report.summary;
            eprintln!(
                "{} scenarios against {}: {} passed, {} failed, {} n/a, {} errors; report in {}",
                s.total,
                shown,
                s.passed,
                s.failed,
                s.not_applicable,
                s.errors,
                path.display()
            );
        }
        None => out!("{body}"),
    }
    let s = report.summary;
    let ok = if args.allow_na {
        s.failed == 0 && s.errors == 0 && s.passed + s.not_applicable == s.total
    } else {
        s.all_passed()
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
