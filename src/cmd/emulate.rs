//! `fobsim emulate`: a fleet of fobs sharing one clock, exposed on serial
//! ptys, as uhid devices (`/dev/hidrawN`) or by a USB/IP server, with an
//! optional control socket. Runs until SIGINT/SIGTERM, then removes its
//! symlinks, devices and socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use fobsim_clock::control::Fobs;
use fobsim_core::seedfile::SeedFormat;
use fobsim_emulator::serial::PROTOCOL_VERSION;

use super::common::{ClockArgs, PidFileArgs};
use fobsim_emulator::{Fleet, FleetSpec, SerialFleet};

/// How the fobs are exposed to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// One pseudo-terminal per fob (any serial client).
    Serial,
    /// One Linux uhid device per fob: the kernel makes /dev/hidrawN (needs /dev/uhid).
    Uhid,
    /// A USB/IP server: `usbip list -r HOST`, `usbip attach -r HOST -b 1-N`.
    Usbip,
}

/// Arguments of `fobsim emulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How the fobs appear to the host.
    #[arg(long, value_enum, default_value_t = Transport::Serial)]
    transport: Transport,
    /// Address of the USB/IP server (with --transport usbip).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3240")]
    listen: std::net::SocketAddr,
    /// USB/IP: close a connection that has imported a fob and sends
    /// nothing for this long while the fob owes it nothing (no IN
    /// transfer pending), freeing the fob for the next import. 0: never.
    /// A connection that never sends its request is closed after 30 s;
    /// a host that vanishes is noticed by TCP keepalive (about 90 s).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    usbip_idle_timeout: String,
    /// Also expose a boot keyboard that types the code + Enter on each press
    /// (HID transports).
    #[arg(long)]
    keyboard: bool,
    /// Number of fobs (with --model).
    #[arg(short = 'n', long, default_value_t = 1, conflicts_with = "fleet")]
    count: usize,
    /// Model preset of the fobs (see `fobsim models`).
    #[arg(short = 'm', long, default_value = "gaht", conflicts_with = "fleet")]
    model: String,
    /// A fleet file (TOML: serials, models, drift) instead of --count/--model.
    #[arg(long, value_name = "FILE")]
    fleet: Option<PathBuf>,
    /// Seed of the fobs' secrets (same seed + serial = same secret, as in
    /// `fobsim run` and `fobsim fob`). A fleet file's `seed` wins.
    #[arg(long, default_value_t = fobsim_harness::runner::DEFAULT_SEED)]
    seed: u64,
    /// Make a stable symlink DIR/<serial> to each fob's pty (created if missing).
    #[arg(long, value_name = "DIR")]
    link_dir: Option<PathBuf>,
    #[command(flatten)]
    clock: ClockArgs,
    /// Enable the test-mode commands (CLOCK, DRIFT, BATTERY, RTC RESET).
    #[arg(long)]
    test_mode: bool,
    /// Write the fleet's seeds to FILE: PSKC (.xml, .pskc) or CSV (.csv).
    #[arg(long, value_name = "FILE")]
    export_seeds: Option<PathBuf>,
    /// Encrypt the exported PSKC's secrets under the pre-shared transport
    /// key in FILE (RFC 6030 §6.1: 32, 48 or 64 hex digits, AES-CBC, with a
    /// MAC). A missing FILE is created with a random AES-128 key. The file
    /// must be accessible by its owner only (chmod 600).
    #[arg(
        long,
        value_name = "FILE",
        requires = "export_seeds",
        conflicts_with = "pskc_password_file"
    )]
    pskc_key_file: Option<PathBuf>,
    /// Encrypt the exported PSKC's secrets under a key derived from the
    /// password in FILE (RFC 6030 §6.2: PBKDF2, AES-128-CBC, with a MAC;
    /// one trailing newline is not part of the password). The file must be
    /// accessible by its owner only (chmod 600).
    #[arg(long, value_name = "FILE", requires = "export_seeds")]
    pskc_password_file: Option<PathBuf>,
    /// Print the serial → path table as one JSON line.
    #[arg(long)]
    json: bool,
    /// Serve the fob panel (a live page of the fleet) and the HTTP+JSON
    /// control API on ADDR (e.g. 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pid: PidFileArgs,
}

/// Run `fobsim emulate`.
///
/// # Errors
/// Bad arguments or fleet file, ptys or sockets that cannot be made.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _pid_file = args.pid.claim()?;
    let spec = fleet_spec(args.fleet.as_deref(), &args.model, args.count, args.seed)?;
    let clock = args
        .clock
        .true_clock(Some(("--http ADDR", args.http.is_some())))?;
    let fleet = Arc::new(Fleet::new(&spec, clock, args.test_mode)?);
    let export = match &args.export_seeds {
        Some(path) => {
            let format = export_format(path)?;
            anyhow::ensure!(
                format == SeedFormat::Pskc
                    || (args.pskc_key_file.is_none() && args.pskc_password_file.is_none()),
                "--export-seeds {}: only PSKC is encrypted: name the file .xml or .pskc",
                path.display()
            );
            let protection = super::common::pskc_protection(
                args.pskc_key_file.as_deref(),
                args.pskc_password_file.as_deref(),
            )?;
            Some(Export {
                path: path.clone(),
                format,
                protection,
            })
        }
        None => None,
    };
    // Each fob holds up to two descriptors.
    let _ = fobsim_emulator::raise_fd_limit();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(fleet, &args, export))
}

/// The fleet of `--fleet FILE` (its `seed` wins over `seed`), or else
/// `count` fobs of `model`.
///
/// # Errors
/// An unreadable or malformed fleet file, an unknown model, a bad count.
pub fn fleet_spec(
    file: Option<&std::path::Path>,
    model: &str,
    count: usize,
    seed: u64,
) -> anyhow::Result<FleetSpec> {
    Ok(match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            FleetSpec::from_toml_with_seed(&text, seed)
                .with_context(|| path.display().to_string())?
        }
        None => FleetSpec::uniform(model, count, seed)?,
    })
}

/// Bind the fob panel's address; the listener and the address it got.
///
/// # Errors
/// The address cannot be bound.
async fn bind_panel(
    addr: std::net::SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the fob panel to {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serve the fob panel and the HTTP control API of `fobs` (on `clock`)
/// on `listener`, bound to `bound`, until `shutdown` completes.
///
/// # Errors
/// As [`fobsim_emulator::http::server::serve`].
pub async fn serve_panel(
    listener: tokio::net::TcpListener,
    bound: std::net::SocketAddr,
    clock: Arc<fobsim_clock::TrueClock>,
    fobs: Arc<dyn Fobs>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let api = fobsim_emulator::http::ControlApi::new(clock, fobs).bound_to(bound);
    fobsim_emulator::http::server::serve(listener, Arc::new(api), shutdown).await
}

/// What `--export-seeds` writes, checked before anything starts and
/// written once the process holds its paths (a second emulator refused
/// for a busy control socket or link directory writes nothing).
struct Export {
    path: PathBuf,
    format: SeedFormat,
    protection: Option<fobsim_core::seedfile::Protection>,
}

/// The format of an exported seed file, from its extension: `.xml`/`.pskc`
/// → PSKC (RFC 6030), `.csv` → CSV.
fn export_format(path: &std::path::Path) -> anyhow::Result<SeedFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    Ok(match ext.as_deref() {
        Some("xml" | "pskc") => SeedFormat::Pskc,
        Some("csv") => SeedFormat::Csv,
        _ => anyhow::bail!(
            "--export-seeds {}: name the file .xml or .pskc (PSKC) or .csv (CSV)",
            path.display()
        ),
    })
}

/// Write the fleet's seed file in `format`; with `protection`, the PSKC
/// secrets are encrypted (RFC 6030 §6). It holds the secrets: written new
/// with mode 0600 and renamed into place; an existing file is replaced only
/// if it is a regular file only its owner may access (never a symlink).
fn export_seeds(
    fleet: &Fleet,
    path: &std::path::Path,
    format: SeedFormat,
    protection: Option<&fobsim_core::seedfile::Protection>,
) -> anyhow::Result<()> {
    use fobsim_core::seedfile::{write, write_pskc_protected};
    let text = match protection {
        None => write(&fleet.seed_records(), format),
        Some(p) => write_pskc_protected(&fleet.seed_records(), p, &mut rand::rng()),
    };
    fobsim_core::private_file::write(path, text.as_bytes()).context("--export-seeds")?;
    Ok(())
}

async fn serve(fleet: Arc<Fleet>, args: &Args, export: Option<Export>) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    if args.transport != Transport::Serial {
        anyhow::ensure!(
            args.link_dir.is_none(),
            "--link-dir is for --transport serial (HID fobs are found by serial number)"
        );
    } else {
        anyhow::ensure!(!args.keyboard, "--keyboard needs --transport uhid or usbip");
    }
    let opts = fobsim_emulator::hid::HidOptions {
        keyboard: args.keyboard,
    };
    let mut usbip_listener = None;
    let exposed = match args.transport {
        Transport::Serial => Exposed::Serial(
            SerialFleet::start(Arc::clone(&fleet), args.link_dir.as_deref())
                .context("serving the fobs on ptys")?,
        ),
        Transport::Uhid => Exposed::Uhid(
            fobsim_emulator::uhid::UhidFleet::start(Arc::clone(&fleet), opts)
                .context("creating uhid devices")?,
        ),
        Transport::Usbip => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding the USB/IP server to {}", args.listen))?;
            let addr = listener.local_addr()?;
            let idle = fobsim_core::time::parse_duration_ms(&args.usbip_idle_timeout)
                .ok()
                .and_then(|ms| u64::try_from(ms).ok())
                .with_context(|| {
                    format!(
                        "--usbip-idle-timeout {:?}: expected a duration such as 5m (0: never)",
                        args.usbip_idle_timeout
                    )
                })?;
            let timeouts = fobsim_emulator::usbip::Timeouts {
                idle: (idle > 0).then(|| std::time::Duration::from_millis(idle)),
                ..fobsim_emulator::usbip::Timeouts::default()
            };
            let server = Arc::new(
                fobsim_emulator::usbip::UsbipServer::new(Arc::clone(&fleet), opts)
                    .with_timeouts(timeouts),
            );
            usbip_listener = Some(listener);
            Exposed::Usbip { server, addr }
        }
    };
    let control = match &args.clock.control {
        Some(path) => Some(super::common::bind_control(path)?),
        None => None,
    };

    if let Some(e) = &export {
        export_seeds(&fleet, &e.path, e.format, e.protection.as_ref())?;
    }

    let http = match args.http {
        Some(addr) => Some(bind_panel(addr).await?),
        None => None,
    };
    let http_url = http.as_ref().map(|(_, a)| format!("http://{a}/"));

    let rows = exposed.rows(&fleet);
    if args.json {
        let line = serde_json::json!({
            "transport": format!("{:?}", args.transport).to_lowercase(),
            "fobs": rows,
            "control": control.as_ref().map(|c| c.path()),
            "http": http_url,
            "clock": fleet.clock().source(),
            "now": fleet.now().to_string(),
            "test_mode": fleet.test_mode(),
            "protocol": PROTOCOL_VERSION,
        });
        outln!("{line}");
    } else {
        for r in &rows {
            let cols: Vec<&str> = [
                r["serial"].as_str(),
                r["path"].as_str(),
                r["link"].as_str(),
                r["busid"].as_str(),
                r["at"].as_str(),
            ]
            .into_iter()
            .flatten()
            .collect();
            outln!("{}", cols.join("\t"));
        }
        if let Some(c) = &control {
            eprintln!("fobsim: control socket {}", c.path().display());
        }
        if let Some(url) = &http_url {
            eprintln!("fobsim: fob panel and control API {url}");
        }
        eprintln!(
            "fobsim: {} fob(s) on {:?}; Ctrl-C to stop",
            rows.len(),
            args.transport
        );
    }
    use std::io::Write as _;
    std::io::stdout().flush().map_err(crate::StdoutError)?;

    let control_task = async {
        match &control {
            Some(c) => {
                c.run(
                    Arc::clone(fleet.clock()),
                    Arc::clone(&fleet) as Arc<dyn Fobs>,
                )
                .await
            }
            None => std::future::pending().await,
        }
    };
    let usbip_server = match &exposed {
        Exposed::Usbip { server, .. } => Some(Arc::clone(server)),
        _ => None,
    };
    let usbip_task = async move {
        match (usbip_server, usbip_listener) {
            (Some(server), Some(listener)) => server.run(listener).await,
            _ => std::future::pending().await,
        }
    };
    let http_task = async {
        match http {
            Some((listener, bound)) => {
                serve_panel(
                    listener,
                    bound,
                    Arc::clone(fleet.clock()),
                    Arc::clone(&fleet) as Arc<dyn Fobs>,
                    std::future::pending(),
                )
                .await
            }
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        _ = sigint.recv() => Ok(()),
        _ = sigterm.recv() => Ok(()),
        () = control_task => Ok(()),
        r = usbip_task => r.context("USB/IP server"),
        r = http_task => r.context("fob panel server"),
    };
    match exposed {
        Exposed::Serial(serial) => serial.shutdown().await,
        Exposed::Uhid(uhid) => uhid.shutdown().await,
        Exposed::Usbip { .. } => {}
    }
    drop(control);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The fleet as the chosen transport exposes it.
enum Exposed {
    Serial(SerialFleet),
    Uhid(fobsim_emulator::uhid::UhidFleet),
    Usbip {
        server: Arc<fobsim_emulator::usbip::UsbipServer>,
        addr: std::net::SocketAddr,
    },
}

impl Exposed {
    /// One row per fob: where a client finds it.
    fn rows(&self, fleet: &Fleet) -> Vec<serde_json::Value> {
        match self {
            Exposed::Serial(s) => s
                .ports()
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "serial": p.serial.to_string(),
                        "path": p.path.display().to_string(),
                        "link": p.link.as_ref().map(|l| l.display().to_string()),
                    })
                })
                .collect(),
            Exposed::Uhid(u) => u
                .ports()
                .iter()
                .map(|p| serde_json::json!({"serial": p.serial, "model": p.model, "keyboard": p.keyboard}))
                .collect(),
            Exposed::Usbip { server, addr, .. } => server
                .devices()
                .iter()
                .zip(fleet.devices())
                .map(|(d, f)| {
                    serde_json::json!({
                        "serial": f.serial().to_string(),
                        "busid": d.busid,
                        "at": addr.to_string(),
                    })
                })
                .collect(),
        }
    }
}
