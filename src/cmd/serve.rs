//! `fobsim serve`: the reference engine behind the AWS Query protocol (IAM
//! MFA actions + STS `GetSessionToken`), so the AWS CLI and boto3 work
//! with `--endpoint-url`. A SQLite database (embedded default) or a
//! PostgreSQL one (`--db postgres://…`: several replicas on one database,
//! see docs/deploy.md), a bootstrap file for the account, the system clock or a manual clock moved through the same
//! control plane as `fobsim emulate` (`fobsim clock --control SOCKET`).
//! Runs until SIGINT/SIGTERM. Logs one line per request on stderr
//! (`RUST_LOG`, default `info`). Paths under `/console` serve the AWS
//! console model (docs/console.md) over the same engine and clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use fobsim_clock::TrueClock;
use fobsim_engine::api::bootstrap::{Applied, Bootstrap};
use fobsim_engine::api::server;
use fobsim_engine::api::service::{AwsService, ServiceConfig};
use fobsim_engine::store::{is_postgres_url, redact_url};
use fobsim_engine::{Engine, KeySource, PgOptions, SqliteOptions};

use super::common::{ClockArgs, PidFileArgs};

/// Arguments of `fobsim serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0: any free port; the chosen address is
    /// printed on stdout as JSON).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The SQLite database (created if missing), or a PostgreSQL URL
    /// (`postgres://user:password@host:port/dbname`; its schema is created
    /// or migrated at start) shared by every replica.
    #[arg(long, value_name = "PATH|URL")]
    db: PathBuf,
    /// The bootstrap file: account, users, access keys, policies, seed files.
    #[arg(long, value_name = "FILE")]
    bootstrap: PathBuf,
    #[command(flatten)]
    clock: ClockArgs,
    #[command(flatten)]
    db_args: DbArgs,
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
    /// Most connections open at once. Beyond, the connection heard from
    /// least recently that is not being answered is closed to make room;
    /// when every one is being answered, the newcomer gets 503. Capped by
    /// the open-file limit.
    #[arg(long, default_value_t = server::Limits::default().max_connections, value_name = "N")]
    max_connections: usize,
    #[command(flatten)]
    pid: PidFileArgs,
}

/// How `fobsim serve` and `fobsim up` open their database (besides
/// `--db` itself): its keys and its waits.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// The database encryption key file (64 hex digits; created if
    /// missing). Default: PATH.key; with a PostgreSQL URL it must be given
    /// (the same key on every replica). The variable FOBSIM_DB_KEY wins.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The key that seals STS session tokens (created if missing); keep it
    /// to keep sessions valid across restarts. Default: PATH.session-key;
    /// with a PostgreSQL URL it must be given (the same file on every
    /// replica, so any replica accepts the sessions another issued).
    #[arg(long, value_name = "FILE")]
    session_key_file: Option<PathBuf>,
    /// With a PostgreSQL URL: most database connections of this replica
    /// (replicas × N must stay below the server's max_connections).
    #[arg(long, default_value_t = PgOptions::default().pool_size, value_name = "N")]
    db_pool: u32,
    /// With a PostgreSQL URL: how long a request waits for a database
    /// connection before it gets 503 ServiceUnavailable (retryable).
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    db_timeout: String,
    /// How long a request waits for a database locked by another process
    /// before it gets 503 ServiceUnavailable (retryable).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    busy_timeout: String,
}

/// One line per request on stderr (target `fobsim::serve`), at the
/// level `RUST_LOG` asks for (default `info`; `RUST_LOG=warn` silences
/// the request lines). The lines carry no headers, bodies, keys or codes.
pub fn init_logging() {
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

impl DbArgs {
    /// `--busy-timeout` in milliseconds, after checking that the
    /// directory of a SQLite `db` exists: what can be said before the
    /// bootstrap file is read.
    ///
    /// # Errors
    /// A malformed `--busy-timeout`, a missing directory.
    pub fn check(&self, db: &std::path::Path) -> anyhow::Result<u32> {
        let busy_ms = fobsim_core::time::parse_duration_ms(&self.busy_timeout)
            .ok()
            .and_then(|ms| u32::try_from(ms).ok())
            .with_context(|| {
                format!(
                    "--busy-timeout {:?}: expected a duration such as 5s",
                    self.busy_timeout
                )
            })?;
        if !db.to_str().is_some_and(is_postgres_url) {
            // The database and its key files are created next to each other: a
            // missing directory is said as such, before any key file is tried.
            let dir = match db.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => std::path::Path::new("."),
            };
            anyhow::ensure!(
                dir.is_dir(),
                "--db {}: the directory {} does not exist (create it first)",
                db.display(),
                dir.display()
            );
        }
        Ok(busy_ms)
    }

    /// The engine over `db` (a SQLite path, created if missing; or a
    /// PostgreSQL URL) with the rules of `boot`, and where the session key
    /// lives; `busy_ms` from [`DbArgs::check`].
    ///
    /// # Errors
    /// A malformed duration, a PostgreSQL URL without its key files, a
    /// database or key that cannot be opened.
    pub fn open(
        &self,
        db: &std::path::Path,
        boot: &Bootstrap,
        busy_ms: u32,
    ) -> anyhow::Result<(Engine, PathBuf)> {
        let Some(url) = db.to_str().filter(|d| is_postgres_url(d)) else {
            let key = KeySource::EnvOrFile {
                var: "FOBSIM_DB_KEY".into(),
                path: self
                    .key_file
                    .clone()
                    .unwrap_or_else(|| with_suffix(db, ".key")),
            };
            let options = SqliteOptions {
                busy_timeout_ms: busy_ms,
                ..SqliteOptions::default()
            };
            let engine = Engine::sqlite_with_options(db, &key, options, boot.profile.clone())
                .with_context(|| format!("opening {}", db.display()))?;
            let session = self
                .session_key_file
                .clone()
                .unwrap_or_else(|| with_suffix(db, ".session-key"));
            return Ok((engine, session));
        };
        let shown = redact_url(url);
        let key = if std::env::var_os("FOBSIM_DB_KEY").is_some() {
            KeySource::Env("FOBSIM_DB_KEY".into())
        } else if let Some(path) = &self.key_file {
            KeySource::File(path.clone())
        } else {
            anyhow::bail!(
                "--db {shown}: give --key-file FILE or FOBSIM_DB_KEY (every replica must use the same database key)"
            );
        };
        let Some(session) = self.session_key_file.clone() else {
            anyhow::bail!(
                "--db {shown}: give --session-key-file FILE (the same key on every replica, so each accepts the sessions another issued)"
            );
        };
        let timeout_ms = fobsim_core::time::parse_duration_ms(&self.db_timeout)
            .ok()
            .and_then(|ms| u64::try_from(ms).ok())
            .filter(|ms| *ms > 0)
            .with_context(|| {
                format!(
                    "--db-timeout {:?}: expected a duration such as 3s",
                    self.db_timeout
                )
            })?;
        anyhow::ensure!(self.db_pool > 0, "--db-pool must be at least 1");
        let options = PgOptions {
            pool_size: self.db_pool,
            connect_timeout_ms: timeout_ms,
        };
        let engine = Engine::postgres(url, &key, options, boot.profile.clone())
            .with_context(|| format!("opening {shown}"))?;
        Ok((engine, session))
    }
}

/// How the AWS endpoint judges requests: what [`aws_service`] needs
/// besides the engine.
pub struct ServiceOptions<'a> {
    /// What a request's signing time is judged against.
    pub signing_time: SigningTime,
    /// `--max-skew`, as given.
    pub max_skew: &'a str,
    /// Largest request body in bytes.
    pub max_body: usize,
}

/// What [`aws_service`] made.
pub struct Endpoint {
    /// The bootstrap file, parsed.
    pub boot: Bootstrap,
    /// The engine (for callers that add to it).
    pub engine: Arc<Engine>,
    /// What the bootstrap created in it.
    pub applied: Applied,
    /// The AWS service over the engine.
    pub service: AwsService,
}

/// The bootstrap file at `path`, applied to the engine over `db`, and the
/// AWS service over both, its requests judged by `clock` (and the real
/// time with [`SigningTime::System`]).
///
/// # Errors
/// An unusable bootstrap file, database, key or duration.
pub fn aws_service(
    path: &std::path::Path,
    db: &std::path::Path,
    db_args: &DbArgs,
    clock: &Arc<TrueClock>,
    opts: &ServiceOptions<'_>,
) -> anyhow::Result<Endpoint> {
    let busy_ms = db_args.check(db)?;
    let boot = Bootstrap::load(path).context("--bootstrap")?;
    let policies = boot.policies()?;
    let (engine, session_key_path) = db_args.open(db, &boot, busy_ms)?;
    let applied = boot.apply(&engine)?;
    let session_key = KeySource::File(session_key_path.clone())
        .resolve()
        .with_context(|| format!("session key {}", session_key_path.display()))?;
    let keys = boot.key_ring(&session_key, None)?;
    let skew = fobsim_core::time::parse_duration_ms(opts.max_skew)
        .ok()
        .and_then(|ms| u64::try_from(ms).ok())
        .with_context(|| {
            format!(
                "--max-skew {:?}: expected a duration such as 5m",
                opts.max_skew
            )
        })?;
    let config = ServiceConfig {
        max_skew_ms: skew,
        max_body: opts.max_body,
        request_id_seed: u64::from_le_bytes(session_key[..8].try_into().unwrap_or_default())
            ^ clock.now().as_millis(),
    };
    let engine = Arc::new(engine);
    let mut service = AwsService::new(
        Arc::clone(&engine),
        keys,
        policies,
        Arc::clone(clock) as Arc<dyn fobsim_core::Clock>,
        config,
    )?;
    if opts.signing_time == SigningTime::System {
        let real = TrueClock::from_kind(fobsim_clock::ClockKind::System, None)?;
        service = service.with_signing_clock(Arc::new(real));
    }
    Ok(Endpoint {
        boot,
        engine,
        applied,
        service,
    })
}

/// The AWS API and, under `/console`, the console (docs/console.md) on
/// one port: the same engine, policies and clock.
///
/// # Errors
/// The bootstrap's policies do not parse; the console cannot start.
pub fn with_console(
    service: Arc<AwsService>,
    boot: &Bootstrap,
    clock: &Arc<TrueClock>,
) -> anyhow::Result<Arc<fobsim_engine::console::Routes>> {
    let console = fobsim_engine::console::Console::new(
        Arc::clone(service.engine()),
        boot.policies()?,
        boot.users.iter().map(|u| u.name.clone()).collect(),
        Arc::clone(clock) as Arc<dyn fobsim_core::Clock>,
        fobsim_engine::console::ConsoleConfig::default(),
    )?;
    Ok(Arc::new(fobsim_engine::console::Routes::new(
        service,
        Arc::new(console),
    )))
}

/// Run `fobsim serve`.
///
/// # Errors
/// Bad arguments, an unusable bootstrap file, database or key, a listen
/// address or control socket that cannot be bound.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    let _pid_file = args.pid.claim()?;
    let clock = args.clock.true_clock(None)?;
    let opts = ServiceOptions {
        signing_time: args.signing_time,
        max_skew: &args.max_skew,
        max_body: args.max_body,
    };
    let Endpoint {
        boot,
        applied,
        service,
        ..
    } = aws_service(&args.bootstrap, &args.db, &args.db_args, &clock, &opts)?;
    if args.clock.clock == super::common::ClockArg::Manual
        && args.signing_time == SigningTime::Clock
    {
        eprintln!(
            "fobsim: note: requests must be signed at the manual clock's time (within --max-skew {}); clients that sign with the real time (the AWS CLI, boto3, the SDKs) need --signing-time system",
            args.max_skew
        );
    }
    let service = Arc::new(service);
    let routes = with_console(service, &boot, &clock)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build()?;
    rt.block_on(serve(routes, clock, &args, applied))
}

async fn serve(
    service: Arc<fobsim_engine::console::Routes>,
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
        Some(path) => Some(super::common::bind_control(path)?),
        None => None,
    };
    let line = serde_json::json!({
        "listen": addr.to_string(),
        "endpoint": format!("http://{addr}"),
        "console": format!("http://{addr}/console/"),
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
    let limits = limits(args.max_body, args.max_connections, "serve");
    tokio::select! {
        r = server::serve_with(listener, service, limits, shutdown) => r?,
        () = give_back_memory() => {}
        () = control_task => {}
    }
    drop(control);
    Ok(ExitCode::SUCCESS)
}

/// The HTTP server's limits: at most `max_connections`, lowered (and said
/// so on stderr, naming `fobsim COMMAND`) to what the open-file limit
/// leaves room for.
pub fn limits(max_body: usize, max_connections: usize, command: &str) -> server::Limits {
    // Each connection holds a descriptor: keep room for the database,
    // the control plane and the accept that finds the server full.
    let fds = fobsim_emulator::raise_fd_limit().unwrap_or(1024);
    let room = usize::try_from(fds.saturating_sub(64))
        .unwrap_or(usize::MAX)
        .max(16);
    if max_connections > room {
        eprintln!(
            "fobsim {command}: --max-connections {} lowered to {room} (the open-file limit is {fds})",
            max_connections
        );
    }
    server::Limits {
        max_body,
        max_connections: max_connections.min(room),
        ..server::Limits::default()
    }
}

/// The resident memory of this process, bytes (`/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// After a burst of connections (an attack, a load test) glibc keeps the
/// freed heap of its per-thread arenas: every 2 s while the process holds
/// 32 MiB more than it did once it was serving, hand free memory back to
/// the system.
pub async fn give_back_memory() {
    const SLACK: u64 = 32 << 20;
    let Some(base) = resident_bytes() else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if resident_bytes().is_some_and(|now| now > base + SLACK) {
            trim();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's
    // arenas; it takes their locks and touches no memory of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
