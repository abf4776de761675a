//! `fobsim serve`: the reference engine behind the AWS Query protocol (IAM
//! MFA actions + STS `GetSessionToken`), so the AWS CLI and boto3 work
//! with `--endpoint-url`. SQLite database, a bootstrap file for the
//! account, the system clock or a manual clock moved through the same
//! control plane as `fobsim emulate` (`fobsim clock --control SOCKET`).
//! Runs until SIGINT/SIGTERM. Logs one line per request on stderr
//! (`RUST_LOG`, default `info`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use fobsim_clock::TrueClock;
use fobsim_clock::control::server::ControlSocket;
use fobsim_engine::api::bootstrap::Bootstrap;
use fobsim_engine::api::server;
use fobsim_engine::api::service::{AwsService, ServiceConfig};
use fobsim_engine::{Engine, KeySource};

use super::common::ClockArgs;

/// Arguments of `fobsim serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0: any free port; the chosen address is
    /// printed on stdout as JSON).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The SQLite database (created if missing).
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// The bootstrap file: account, users, access keys, policies, seed files.
    #[arg(long, value_name = "FILE")]
    bootstrap: PathBuf,
    #[command(flatten)]
    clock: ClockArgs,
    /// The database encryption key file (64 hex digits; created if
    /// missing). Default: PATH.key. The variable FOBSIM_DB_KEY wins.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The key that seals STS session tokens (created if missing); keep it
    /// to keep sessions valid across restarts. Default: PATH.session-key.
    #[arg(long, value_name = "FILE")]
    session_key_file: Option<PathBuf>,
    /// What a request's signing time (SigV4) is judged against: `clock`
    /// (the engine's clock, as on AWS; what `fobsim run --engine iam-http
    /// --endpoint` signs with) or `system` (the real time, what the AWS
    /// CLI, boto3 and the SDKs sign with: for `--clock manual` away from
    /// now). MFA codes, sessions and lockouts always follow `--clock`.
    #[arg(long, value_enum, default_value_t = SigningTime::Clock)]
    signing_time: SigningTime,
    /// Accepted difference between a request's signing time and the
    /// clock of `--signing-time` (AWS: 5m).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    max_skew: String,
    /// Largest request body in bytes (larger ones get 413).
    #[arg(long, default_value_t = 64 * 1024)]
    max_body: usize,
    /// Worker threads of the HTTP server (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
}

/// One line per request on stderr (target `fobsim::serve`), at the
/// level `RUST_LOG` asks for (default `info`; `RUST_LOG=warn` silences
/// the request lines). The lines carry no headers, bodies, keys or codes.
fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// What a request's signing time is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SigningTime {
    /// The engine's clock (`--clock`).
    Clock,
    /// The system clock (real time), whatever `--clock` says.
    System,
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Run `fobsim serve`.
///
/// # Errors
/// Bad arguments, an unusable bootstrap file, database or key, a listen
/// address or control socket that cannot be bound.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    // The database and its key files are created next to each other: a
    // missing directory is said as such, before any key file is tried.
    let dir = match args.db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    anyhow::ensure!(
        dir.is_dir(),
        "--db {}: the directory {} does not exist (create it first)",
        args.db.display(),
        dir.display()
    );
    let boot = Bootstrap::load(&args.bootstrap).context("--bootstrap")?;
    let policies = boot.policies()?;
    let key = KeySource::EnvOrFile {
        var: "FOBSIM_DB_KEY".into(),
        path: args
            .key_file
            .clone()
            .unwrap_or_else(|| with_suffix(&args.db, ".key")),
    };
    let engine = Engine::sqlite(&args.db, &key, boot.profile.clone())
        .with_context(|| format!("opening {}", args.db.display()))?;
    let applied = boot.apply(&engine)?;
    let session_key_path = args
        .session_key_file
        .clone()
        .unwrap_or_else(|| with_suffix(&args.db, ".session-key"));
    let session_key = KeySource::File(session_key_path.clone())
        .resolve()
        .with_context(|| format!("session key {}", session_key_path.display()))?;
    let keys = boot.key_ring(&session_key, None)?;
    let skew = fobsim_core::time::parse_duration_ms(&args.max_skew)
        .ok()
        .and_then(|ms| u64::try_from(ms).ok())
        .with_context(|| {
            format!(
                "--max-skew {:?}: expected a duration such as 5m",
                args.max_skew
            )
        })?;
    let clock = args.clock.true_clock()?;
    let config = ServiceConfig {
        max_skew_ms: skew,
        max_body: args.max_body,
        request_id_seed: u64::from_le_bytes(session_key[..8].try_into().unwrap_or_default())
            ^ clock.now().as_millis(),
    };
    let mut service = AwsService::new(
        Arc::new(engine),
        keys,
        policies,
        Arc::clone(&clock) as Arc<dyn fobsim_core::Clock>,
        config,
    )?;
    if args.clock.clock == super::common::ClockArg::Manual
        && args.signing_time == SigningTime::Clock
    {
        eprintln!(
            "fobsim: note: requests must be signed at the manual clock's time (within --max-skew {}); clients that sign with the real time (the AWS CLI, boto3, the SDKs) need --signing-time system",
            args.max_skew
        );
    }
    if args.signing_time == SigningTime::System {
        let real = TrueClock::from_kind(fobsim_clock::ClockKind::System, None)?;
        service = service.with_signing_clock(Arc::new(real));
    }
    let service = Arc::new(service);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build()?;
    rt.block_on(serve(service, clock, &args, applied))
}

async fn serve(
    service: Arc<AwsService>,
    clock: Arc<TrueClock>,
    args: &Args,
    applied: fobsim_engine::api::bootstrap::Applied,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let control = match &args.clock.control {
        Some(path) => Some(
            ControlSocket::bind(path)
                .with_context(|| format!("binding the control socket {}", path.display()))?,
        ),
        None => None,
    };
    let line = serde_json::json!({
        "listen": addr.to_string(),
        "endpoint": format!("http://{addr}"),
        "control": control.as_ref().map(|c| c.path()),
        "clock": clock.source(),
        "signing_time": match args.signing_time {
            SigningTime::Clock => "clock",
            SigningTime::System => "system",
        },
        "now": clock.now().to_string(),
        "account_created": applied.account_created,
        "users_created": applied.users_created,
        "tokens_imported": applied.tokens_imported,
    });
    outln!("{line}");
    use std::io::Write as _;
    std::io::stdout().flush().map_err(crate::StdoutError)?;

    let control_task = async {
        match &control {
            Some(c) => c.run(Arc::clone(&clock), Arc::new(())).await,
            None => std::future::pending().await,
        }
    };
    let shutdown = async {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
    };
    tokio::select! {
        r = server::serve(listener, service, shutdown) => r?,
        () = control_task => {}
    }
    drop(control);
    Ok(ExitCode::SUCCESS)
}
