//! `fobsim up`: the whole sandbox in one process. The reference engine
//! behind the AWS endpoint (as `fobsim serve`), a fleet of fobs whose
//! seeds the engine already knows (as `fobsim emulate`), the account,
//! users and access keys of a bootstrap file (the example one, embedded,
//! by default), and the fob panel with the HTTP control API (as `fobsim
//! emulate --http`): one true clock for all of them. Runs until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use fobsim_clock::TrueClock;
use fobsim_clock::control::{
    BatteryAction, ControlError, ControlErrorCode, FobState, Fobs, NewFob,
};
use fobsim_emulator::Fleet;
use fobsim_engine::Engine;
use fobsim_engine::api::bootstrap::{Bootstrap, import_new_seeds};
use fobsim_engine::api::server;
use fobsim_firmware::DriftChange;

use super::common::{ClockArgs, PidFileArgs};
use super::serve::{DbArgs, Endpoint, ServiceOptions, SigningTime};

/// The example bootstrap file and what it names, embedded: `fobsim up`
/// without `--bootstrap` writes them into its directory.
const EMBEDDED: [(&str, &str); 3] = [
    (
        "bootstrap/example.toml",
        include_str!("../../fixtures/bootstrap/example.toml"),
    ),
    (
        "bootstrap/seeds.csv",
        include_str!("../../fixtures/bootstrap/seeds.csv"),
    ),
    (
        "policies/manage-own-mfa.json",
        include_str!("../../fixtures/policies/manage-own-mfa.json"),
    ),
];

/// The region the printed AWS CLI environment names.
const REGION: &str = "us-east-1";

/// Arguments of `fobsim up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the AWS endpoint (IAM + STS) and of the console
    /// (`/console/`). Port 0: any free port (the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8900", value_name = "ADDR")]
    listen: SocketAddr,
    /// Address of the fob panel and the HTTP control API. Port 0: any
    /// free port (the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8901", value_name = "ADDR")]
    panel: SocketAddr,
    /// The SQLite database (created if missing; kept, so a later `fobsim
    /// up --db PATH` goes on where this one stopped), or a PostgreSQL URL
    /// as `fobsim serve` takes it. Default: a new directory in the temp
    /// directory, printed at start and kept after exit.
    #[arg(long, value_name = "PATH|URL")]
    db: Option<PathBuf>,
    /// The bootstrap file: account, users, access keys, policies, seed
    /// files. Default: the example one (users alice and bob), embedded.
    #[arg(long, value_name = "FILE")]
    bootstrap: Option<PathBuf>,
    /// Number of fobs (with --model). The first ones are meant for the
    /// bootstrap's users, in order.
    #[arg(short = 'n', long, default_value_t = 3, conflicts_with = "fleet")]
    count: usize,
    /// Model preset of the fobs (see `fobsim models`).
    #[arg(short = 'm', long, default_value = "gaht", conflicts_with = "fleet")]
    model: String,
    /// A fleet file (TOML: serials, models, drift) instead of --count/--model.
    #[arg(long, value_name = "FILE")]
    fleet: Option<PathBuf>,
    /// Seed of the fobs' secrets (same seed + serial = same secret, as in
    /// `fobsim emulate`). A fleet file's `seed` wins.
    #[arg(long, default_value_t = fobsim_harness::runner::DEFAULT_SEED)]
    seed: u64,
    #[command(flatten)]
    clock: ClockArgs,
    /// What a request's signing time (SigV4) is judged against: `system`
    /// (the real time, what the AWS CLI, boto3 and the SDKs sign with: they
    /// keep working when a manual clock is moved) or `clock` (the shared
    /// clock, as on AWS). MFA codes, sessions and lockouts always follow
    /// the shared clock.
    #[arg(long, value_enum, default_value_t = SigningTime::System)]
    signing_time: SigningTime,
    #[command(flatten)]
    db_args: DbArgs,
    /// Print one JSON line (URLs, directory, fobs, AWS environment)
    /// instead of the text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pid: PidFileArgs,
}

/// The fleet, whose new fobs (added from the panel or the control API)
/// are registered in the engine as they are made.
struct KnownFleet {
    fleet: Arc<Fleet>,
    engine: Arc<Engine>,
}

impl Fobs for KnownFleet {
    fn list(&self) -> Vec<FobState> {
        Fobs::list(&*self.fleet)
    }

    fn drift(&self, serial: &str, change: DriftChange) -> Result<FobState, ControlError> {
        Fobs::drift(&*self.fleet, serial, change)
    }

    fn fob(&self, serial: &str) -> Result<FobState, ControlError> {
        Fobs::fob(&*self.fleet, serial)
    }

    fn press(&self, serial: &str) -> Result<FobState, ControlError> {
        Fobs::press(&*self.fleet, serial)
    }

    fn battery(&self, serial: &str, action: BatteryAction) -> Result<FobState, ControlError> {
        Fobs::battery(&*self.fleet, serial, action)
    }

    fn create(&self, new: NewFob) -> Result<FobState, ControlError> {
        let state = Fobs::create(&*self.fleet, new)?;
        let record = self
            .fleet
            .index_of(&state.serial)
            .and_then(|i| self.fleet.with_fob(i, |fob, _| fob.seed_record()));
        let imported = match record {
            Some(r) => import_new_seeds(&self.engine, vec![r], &state.serial)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err(format!("fob {} vanished", state.serial)),
        };
        if let Err(why) = imported {
            // Not half made: a fob the engine does not know is taken out.
            let _ = Fobs::remove(&*self.fleet, &state.serial);
            return Err(ControlError::new(
                ControlErrorCode::BadValue,
                format!("the engine refused fob {}: {why}", state.serial),
            ));
        }
        Ok(state)
    }

    fn remove(&self, serial: &str) -> Result<FobState, ControlError> {
        Fobs::remove(&*self.fleet, serial)
    }
}

/// The sandbox's directory: made when the database or the bootstrap file
/// are left to it.
fn make_dir() -> anyhow::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("fobsim-up-")
        .tempdir()
        .context("creating the sandbox directory in the temp directory (set TMPDIR, or give --db and --bootstrap)")?
        .keep();
    Ok(dir)
}

/// Write the embedded example bootstrap into `dir`; its path.
fn write_embedded(dir: &Path) -> anyhow::Result<PathBuf> {
    for (name, text) in EMBEDDED {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir.join(EMBEDDED[0].0))
}

/// The first user of `boot` with an access key: the one the printed AWS
/// environment is for.
fn example_user(boot: &Bootstrap) -> Option<(&str, &str, &str)> {
    boot.users.iter().find_map(|u| {
        u.access_keys
            .first()
            .map(|k| (u.name.as_str(), k.id.as_str(), k.secret.as_str()))
    })
}

/// Run `fobsim up`.
///
/// # Errors
/// Bad arguments, fleet or bootstrap file, an unusable database or key,
/// an address or control socket that cannot be bound.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::serve::init_logging();
    let _pid_file = args.pid.claim()?;
    let spec =
        super::emulate::fleet_spec(args.fleet.as_deref(), &args.model, args.count, args.seed)?;
    let clock = args.clock.true_clock(Some(("--panel ADDR", true)))?;
    let _ = fobsim_emulator::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The addresses first: a busy port leaves nothing behind.
    let doors = rt.block_on(Doors::bind(&args))?;
    let dir = if args.db.is_none() || args.bootstrap.is_none() {
        Some(make_dir()?)
    } else {
        None
    };
    let built = build(&args, &clock, &spec, dir.as_deref());
    let (endpoint, fleet, fleet_imported, db, bootstrap) = match built {
        Ok(b) => b,
        Err(e) => {
            // Nothing to keep from a sandbox that never started.
            if let Some(d) = &dir {
                let _ = std::fs::remove_dir_all(d);
            }
            return Err(e);
        }
    };
    let known = fleet.len().saturating_sub(fleet_imported);
    if known > 0 {
        eprintln!(
            "fobsim up: {known} fob(s) were in the database already: the seeds there are kept (with another --seed than the run that put them there, their codes are refused)"
        );
    }
    let place = Place {
        dir,
        db,
        bootstrap,
        embedded: args.bootstrap.is_none(),
        fleet_imported,
    };
    rt.block_on(serve(&args, doors, clock, fleet, endpoint, place))
}

/// The engine with the bootstrap applied, the fleet (its seeds imported),
/// how many of them were new, the database and the bootstrap file used:
/// both in `dir` unless given.
fn build(
    args: &Args,
    clock: &Arc<TrueClock>,
    spec: &fobsim_emulator::FleetSpec,
    dir: Option<&Path>,
) -> anyhow::Result<(Endpoint, Arc<Fleet>, usize, PathBuf, PathBuf)> {
    // `run` makes the directory whenever --db or --bootstrap is missing.
    let dir = || dir.context("no sandbox directory");
    let db = match &args.db {
        Some(db) => db.clone(),
        None => dir()?.join("iam.db"),
    };
    let bootstrap = match &args.bootstrap {
        Some(b) => b.clone(),
        None => write_embedded(dir()?)?,
    };
    let opts = ServiceOptions {
        signing_time: args.signing_time,
        max_skew: "5m",
        max_body: MAX_BODY,
    };
    let endpoint = super::serve::aws_service(&bootstrap, &db, &args.db_args, clock, &opts)?;
    let fleet = Arc::new(Fleet::new(spec, Arc::clone(clock), false)?);
    let imported = import_new_seeds(&endpoint.engine, fleet.seed_records(), "the fleet")?;
    Ok((endpoint, fleet, imported, db, bootstrap))
}

/// Largest request body of the AWS endpoint (as `fobsim serve`'s default).
const MAX_BODY: usize = 64 * 1024;

/// Where the sandbox keeps its state, for the start message.
struct Place {
    dir: Option<PathBuf>,
    db: PathBuf,
    bootstrap: PathBuf,
    embedded: bool,
    fleet_imported: usize,
}

/// The listening sockets, bound before anything is made.
struct Doors {
    aws: tokio::net::TcpListener,
    aws_addr: SocketAddr,
    panel: tokio::net::TcpListener,
    panel_addr: SocketAddr,
    control: Option<fobsim_clock::control::server::ControlSocket>,
}

impl Doors {
    async fn bind(args: &Args) -> anyhow::Result<Doors> {
        let (aws, aws_addr) = bind(args.listen, "the AWS endpoint", "--listen").await?;
        let (panel, panel_addr) = bind(args.panel, "the fob panel", "--panel").await?;
        let control = match &args.clock.control {
            Some(path) => Some(super::common::bind_control(path)?),
            None => None,
        };
        Ok(Doors {
            aws,
            aws_addr,
            panel,
            panel_addr,
            control,
        })
    }
}

/// Listen on `addr` for `what`; a refusal names the flag that changes it.
async fn bind(
    addr: SocketAddr,
    what: &str,
    flag: &str,
) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} for {what}: {e} (another address: {flag} 127.0.0.1:PORT)"
        )
    })?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

async fn serve(
    args: &Args,
    doors: Doors,
    clock: Arc<TrueClock>,
    fleet: Arc<Fleet>,
    endpoint: Endpoint,
    place: Place,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let Doors {
        aws,
        aws_addr,
        panel,
        panel_addr,
        control,
    } = doors;
    let fobs: Arc<dyn Fobs> = Arc::new(KnownFleet {
        fleet: Arc::clone(&fleet),
        engine: Arc::clone(&endpoint.engine),
    });

    let ready = Ready {
        endpoint: format!("http://{aws_addr}"),
        console: format!("http://{aws_addr}/console/"),
        panel: format!("http://{panel_addr}/"),
        api: format!("http://{panel_addr}/api"),
        control: control.as_ref().map(|c| c.path().to_path_buf()),
        clock: &clock,
        signing_time: args.signing_time,
        place: &place,
        boot: &endpoint.boot,
        fleet: &fleet,
    };
    if args.json {
        outln!("{}", ready.json());
    } else {
        out!("{}", ready.text());
    }
    use std::io::Write as _;
    std::io::stdout().flush().map_err(crate::StdoutError)?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let control_task = async {
        match &control {
            Some(c) => c.run(Arc::clone(&clock), Arc::clone(&fobs)).await,
            None => std::future::pending().await,
        }
    };
    let limits = super::serve::limits(MAX_BODY, server::Limits::default().max_connections, "up");
    let servers = async {
        tokio::try_join!(
            async {
                server::serve_with(
                    aws,
                    super::serve::with_console(Arc::new(endpoint.service), &endpoint.boot, &clock)?,
                    limits,
                    until_stopped(stopped.clone()),
                )
                .await
                .context("AWS endpoint")
            },
            async {
                super::emulate::serve_panel(
                    panel,
                    panel_addr,
                    Arc::clone(&clock),
                    Arc::clone(&fobs),
                    until_stopped(stopped.clone()),
                )
                .await
                .context("fob panel server")
            },
        )
    };
    tokio::pin!(servers);
    let result = tokio::select! {
        r = &mut servers => r.map(|_| ()),
        _ = sigint.recv() => Ok(()),
        _ = sigterm.recv() => Ok(()),
        () = control_task => Ok(()),
        () = super::serve::give_back_memory() => Ok(()),
    };
    if result.is_ok() {
        // Stop accepting, let the servers finish what they answer.
        let _ = stop.send(true);
        let wait = tokio::time::timeout(std::time::Duration::from_secs(5), &mut servers).await;
        if let Ok(Err(e)) = wait {
            return Err(e);
        }
    }
    drop(control);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// What the start message says.
struct Ready<'a> {
    endpoint: String,
    /// The console's URL (`/console/` on the AWS port).
    console: String,
    panel: String,
    api: String,
    control: Option<PathBuf>,
    clock: &'a TrueClock,
    signing_time: SigningTime,
    place: &'a Place,
    boot: &'a Bootstrap,
    fleet: &'a Fleet,
}

impl Ready<'_> {
    /// Each fob: serial, model, and the user it is meant for (the
    /// bootstrap's users in order; the rest are spare).
    fn fobs(&self) -> Vec<(String, &'static str, Option<&str>)> {
        self.fleet
            .devices()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    d.serial().to_string(),
                    d.model(),
                    self.boot.users.get(i).map(|u| u.name.as_str()),
                )
            })
            .collect()
    }

    /// The AWS CLI environment of the example user: name and variables.
    fn aws_env(&self) -> Option<(&str, Vec<(&'static str, String)>)> {
        let (user, id, secret) = example_user(self.boot)?;
        Some((
            user,
            vec![
                ("AWS_ENDPOINT_URL", self.endpoint.clone()),
                ("AWS_DEFAULT_REGION", REGION.to_string()),
                ("AWS_ACCESS_KEY_ID", id.to_string()),
                ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
            ],
        ))
    }

    /// The serial and user of the seed's flow: the first fob meant for
    /// the example user.
    fn flow(&self) -> Option<(String, String)> {
        let (user, _, _) = example_user(self.boot)?;
        self.fobs()
            .into_iter()
            .find(|(_, _, u)| *u == Some(user))
            .map(|(s, _, _)| (s, user.to_string()))
    }

    fn db_shown(&self) -> String {
        match self.place.db.to_str() {
            Some(url) if fobsim_engine::store::is_postgres_url(url) => {
                fobsim_engine::store::redact_url(url)
            }
            _ => self.place.db.display().to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        let env = self.aws_env();
        serde_json::json!({
            "endpoint": self.endpoint,
            "console": self.console,
            "panel": self.panel,
            "control_api": self.api,
            "control": self.control,
            "clock": self.clock.source(),
            "signing_time": match self.signing_time {
                SigningTime::Clock => "clock",
                SigningTime::System => "system",
            },
            "now": self.clock.now().to_string(),
            "dir": self.place.dir,
            "db": self.db_shown(),
            "bootstrap": self.place.bootstrap,
            "fobs": self.fobs().iter().map(|(s, m, u)| serde_json::json!({
                "serial": s, "model": m, "user": u,
            })).collect::<Vec<_>>(),
            "aws_user": env.as_ref().map(|(u, _)| *u),
            "aws_env": env.as_ref().map(|(_, vars)| vars.iter().map(|(k, v)| ((*k).to_string(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>()),
            "tokens_imported": self.place.fleet_imported,
        })
    }

    fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(t, "fobsim up: the sandbox is ready (Ctrl-C to stop)");
        let _ = writeln!(t);
        let _ = writeln!(t, "  AWS endpoint  {}", self.endpoint);
        let _ = writeln!(t, "  console       {}", self.console);
        let _ = writeln!(t, "  fob panel     {}", self.panel);
        let _ = writeln!(t, "  control API   {}  (docs/control-api.md)", self.api);
        if let Some(c) = &self.control {
            let _ = writeln!(t, "  control sock  {}", c.display());
        }
        let clock = match self.clock.source() {
            "manual" => "manual (move it from the panel or POST /api/clock/advance)",
            other => other,
        };
        let _ = writeln!(t, "  clock         {clock}, now {}", self.clock.now());
        if let Some(d) = &self.place.dir {
            let _ = writeln!(t, "  directory     {} (kept after exit)", d.display());
        }
        let _ = writeln!(t, "  database      {}", self.db_shown());
        let _ = writeln!(
            t,
            "  bootstrap     {}{}",
            self.place.bootstrap.display(),
            if self.place.embedded {
                " (the example: users alice and bob)"
            } else {
                ""
            }
        );
        let _ = writeln!(t);
        let _ = writeln!(t, "fobs (their seeds are in the engine):");
        for (serial, model, user) in self.fobs() {
            let _ = writeln!(
                t,
                "  {serial}  {model:<6}  {}",
                user.map_or_else(|| "spare".to_string(), |u| format!("for {u}"))
            );
        }
        if let Some((user, vars)) = self.aws_env() {
            let _ = writeln!(t);
            let _ = writeln!(
                t,
                "AWS CLI environment ({user}; or aws --endpoint-url {}):",
                self.endpoint
            );
            for pair in vars.chunks(2) {
                let line: Vec<String> = pair.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(t, "  export {}", line.join(" "));
            }
        }
        if let Some((serial, user)) = self.flow() {
            let _ = writeln!(t);
            let _ = writeln!(
                t,
                "Try: press {serial} in the panel, press again once its code changes, then\n  \
                 aws iam enable-mfa-device --user-name {user} --serial-number {serial} \
                 --authentication-code1 CODE1 --authentication-code2 CODE2"
            );
            if let Some(u) = self.boot.users.iter().find(|u| u.name == user) {
                // The example's password is public (it is in the fixtures);
                // a bootstrap of the user's own is not printed.
                let password = if self.place.embedded {
                    format!("password {}", u.password)
                } else {
                    format!("the password in {}", self.place.bootstrap.display())
                };
                let _ = writeln!(
                    t,
                    "or in the console ({}): account {}, user {user}, {password};\n  \
                     My security credentials > Assign MFA device",
                    self.console, self.boot.account.alias
                );
            }
        }
        if self.clock.source() == "manual" && self.signing_time == SigningTime::Clock {
            let _ = writeln!(
                t,
                "note: requests must be signed at the manual clock's time; the AWS CLI needs --signing-time system"
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_bootstrap_is_the_example() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_embedded(dir.path()).unwrap();
        let boot = Bootstrap::load(&path).unwrap();
        boot.policies().unwrap();
        let (user, id, _) = example_user(&boot).unwrap();
        assert_eq!((user, id), ("alice", "AKIAALICEEXAMPLE0001"));
        for (name, text) in EMBEDDED {
            let original = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(name);
            assert_eq!(std::fs::read_to_string(original).unwrap(), text, "{name}");
        }
    }
}
