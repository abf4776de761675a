//! `fobsim clock`: move the true time of a running emulator started with
//! `--clock manual --control SOCKET`, or drive its fobs (drift, press,
//! battery, add and remove) — the same requests the HTTP control API
//! (`--http`) makes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fobsim_clock::control::client::ControlClient;
use fobsim_clock::control::{BatteryAction, Request};

/// Arguments of `fobsim clock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The emulator's control socket.
    #[arg(long, global = true, value_name = "SOCKET")]
    control: Option<PathBuf>,
    /// Print the emulator's JSON response.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print the true time.
    Get,
    /// Jump to a time: RFC 3339 UTC or @UNIX_SECONDS.
    Set {
        /// The new time.
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
        #[arg(long, allow_hyphen_values = true)]
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
    let Some(socket) = &args.control else {
        anyhow::bail!("--control SOCKET is required");
    };
    let req = match args.action {
        Action::Get => Request::Get,
        Action::Set { time } => Request::Set { time },
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
    let mut client = ControlClient::connect(socket, Duration::from_secs(5))?;
    let resp = client.request(&req)?;
    if args.json {
        println!("{}", serde_json::to_string(&resp)?);
        return Ok(ExitCode::SUCCESS);
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
        println!(
            "{}\t{}\tshown until {}\tdevice {}",
            resp.fob.as_ref().map_or("-", |f| f.serial.as_str()),
            d.code.as_deref().unwrap_or("blank"),
            d.shown_until.as_deref().unwrap_or("-"),
            d.device_time.as_deref().unwrap_or("-")
        );
    } else if let Some(f) = &resp.fob {
        println!("{}", fob_line(f));
    } else if let Some(fobs) = &resp.fobs {
        for f in fobs {
            println!("{}", fob_line(f));
        }
    } else if let Some(c) = &resp.clock {
        println!(
            "{} ({}, {})",
            c.now,
            c.source,
            if c.frozen { "frozen" } else { "running" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
