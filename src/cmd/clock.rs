//! `fobsim clock`: move the true time of a running emulator started with
//! `--clock manual --control SOCKET`, or drive its fobs (drift, press,
//! battery, add and remove) — the same requests the HTTP control API
//! (`--http`) makes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use fobsim_clock::control::client::ControlClient;
use fobsim_clock::control::{BatteryAction, Request};

/// Arguments of `fobsim clock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The control socket of an emulator or of `fobsim serve --clock
    /// manual`; give it more than once to move several clocks in lockstep
    /// (e.g. the emulator's and the server's), in the order given.
    #[arg(long, global = true, value_name = "SOCKET")]
    control: Vec<PathBuf>,
    /// Print the emulator's JSON response.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print the true time.
    Get,
    /// Jump to a time: Unix seconds, @UNIX_SECONDS or RFC 3339 UTC.
    Set {
        /// The new time.
        #[arg(allow_hyphen_values = true)]
        time: String,
    },
    /// Move the time by a signed duration (30s, -4m, 1y).
    Advance {
        /// How far.
        #[arg(allow_hyphen_values = true)]
        by: String,
    },
    /// Stop the clock.
    Freeze,
    /// Let the clock run at real-time rate.
    Resume,
    /// Read or change one fob's drift (omitted values are kept).
    Drift {
        /// The fob's serial.
        serial: String,
        /// Device minus true time from now on (e.g. +47s, -2m).
        #[arg(long, allow_hyphen_values = true)]
        offset: Option<String>,
        /// Crystal skew in ppm.
        #[arg(long, allow_hyphen_values = true, value_parser = super::common::ppm)]
        ppm: Option<f64>,
        /// Jitter bound (e.g. 500ms).
        #[arg(long)]
        jitter: Option<String>,
    },
    /// List the fobs with their device clocks.
    Fobs,
    /// Read one fob and its display.
    Fob {
        /// The fob's serial.
        serial: String,
    },
    /// Press one fob's button (prints what the display shows).
    Press {
        /// The fob's serial.
        serial: String,
    },
    /// Pull a fob's battery out, or swap in a fresh one (its RTC restarts).
    Battery {
        /// The fob's serial.
        serial: String,
        /// `pull` or `swap`.
        #[arg(value_enum)]
        action: BatteryArg,
    },
    /// Add a fob (its secret derives from the fleet's seed and the serial).
    Create {
        /// Model preset (see `fobsim models`).
        #[arg(long, default_value = "gaht")]
        model: String,
        /// Serial number (default: the model's first free one).
        #[arg(long)]
        serial: Option<String>,
        /// Device minus true time (e.g. +47s).
        #[arg(long, allow_hyphen_values = true)]
        offset: Option<String>,
        /// Crystal skew in ppm.
        #[arg(long, allow_hyphen_values = true)]
        ppm: Option<f64>,
    },
    /// Take a fob out of the fleet.
    Remove {
        /// The fob's serial.
        serial: String,
    },
}

/// What to do with a battery.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BatteryArg {
    /// Pull it out: the fob dies.
    Pull,
    /// A fresh battery: the fob works again, its RTC restarts.
    Swap,
}

/// Run `fobsim clock`.
///
/// # Errors
/// No emulator at the socket, or a refused request (system clock, unknown
/// serial, unreadable time).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.control.is_empty(), "--control SOCKET is required");
    let req = match args.action {
        Action::Get => Request::Get,
        // Read here, with the accepted forms in the error, and sent in the
        // one form the control plane reads.
        Action::Set { time } => Request::Set {
            time: super::common::parse_time(&time)
                .context("clock set")?
                .to_string(),
        },
        Action::Advance { by } => Request::Advance { by },
        Action::Freeze => Request::Freeze,
        Action::Resume => Request::Resume,
        Action::Drift {
            serial,
            offset,
            ppm,
            jitter,
        } => Request::Drift {
            serial,
            offset,
            ppm,
            jitter,
        },
        Action::Fobs => Request::Fobs,
        Action::Fob { serial } => Request::Fob { serial },
        Action::Press { serial } => Request::Press { serial },
        Action::Battery { serial, action } => Request::Battery {
            serial,
            action: match action {
                BatteryArg::Pull => BatteryAction::Pull,
                BatteryArg::Swap => BatteryAction::Swap,
            },
        },
        Action::Create {
            model,
            serial,
            offset,
            ppm,
        } => Request::Create {
            model,
            serial,
            offset,
            ppm,
            jitter: None,
        },
        Action::Remove { serial } => Request::Remove { serial },
    };
    // Every socket is reached before any clock moves: one that cannot be
    // reached leaves all of them where they were.
    let mut clients = Vec::with_capacity(args.control.len());
    for socket in &args.control {
        clients.push(ControlClient::connect(socket, Duration::from_secs(5))?);
    }
    for (client, socket) in clients.iter_mut().zip(&args.control) {
        let resp = client.request(&req)?;
        if args.control.len() > 1 && !args.json {
            outln!("{}:", socket.display());
        }
        print_response(&resp, args.json)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One socket's answer, as text or JSON.
fn print_response(resp: &fobsim_clock::control::Response, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string(resp)?);
        return Ok(());
    }
    let fob_line = |f: &fobsim_clock::control::FobState| {
        format!(
            "{}\t{}\tdevice {}\toffset {}\tppm {}\tjitter {}ms\tbattery {}",
            f.serial,
            f.model,
            f.device.as_deref().unwrap_or("-"),
            fobsim_core::time::format_duration_ms(f.offset_ms),
            f.ppm,
            f.jitter_ms,
            f.battery
        )
    };
    if let Some(d) = &resp.display {
        outln!(
            "{}\t{}\tshown until {}\tdevice {}",
            resp.fob.as_ref().map_or("-", |f| f.serial.as_str()),
            d.code.as_deref().unwrap_or("blank"),
            d.shown_until.as_deref().unwrap_or("-"),
            d.device_time.as_deref().unwrap_or("-")
        );
    } else if let Some(f) = &resp.fob {
        outln!("{}", fob_line(f));
    } else if let Some(fobs) = &resp.fobs {
        for f in fobs {
            outln!("{}", fob_line(f));
        }
    } else if let Some(c) = &resp.clock {
        outln!(
            "{} ({}, {})",
            c.now,
            c.source,
            if c.frozen { "frozen" } else { "running" }
        );
    }
    Ok(())
}
