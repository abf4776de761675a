//! `fobsim device`: talk to an emulated fob as a client would — over its
//! serial port (the serialport crate; no libudev), or as a USB HID device
//! found by serial number (`--hid SERIAL`, hidapi on hidraw).
//!
//! A serial port is opened exclusively (TIOCEXCL + flock) unless `--shared`:
//! while another exclusive client holds it, this command fails with "busy".

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fobsim_core::time::parse_duration_ms;
use fobsim_emulator::command::Response;
use fobsim_emulator::serial::client::SerialClient;

/// Arguments of `fobsim device`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// How long to wait for an answer, and with --hid for the device to
    /// appear (e.g. 2s, 500ms).
    #[arg(long, global = true, default_value = "2s")]
    timeout: String,
    /// Open the port with a shared lock instead of exclusively.
    #[arg(long, global = true)]
    shared: bool,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Talk to the fob with this serial number over USB HID (hidraw)
    /// instead of a serial port; then give no PATH.
    #[arg(long, global = true, value_name = "SERIAL")]
    hid: Option<String>,
}

/// An open connection to a fob, over either transport.
enum Client {
    Serial(SerialClient),
    Hid(fobsim_emulator::hid::client::HidFob),
}

impl Client {
    fn info(&mut self) -> anyhow::Result<fobsim_emulator::command::InfoReply> {
        Ok(match self {
            Client::Serial(c) => c.info()?,
            Client::Hid(h) => h.info()?,
        })
    }

    fn press(&mut self) -> anyhow::Result<fobsim_firmware::Display> {
        Ok(match self {
            Client::Serial(c) => c.press()?,
            Client::Hid(h) => h.press()?,
        })
    }

    fn display(&mut self) -> anyhow::Result<fobsim_firmware::Display> {
        Ok(match self {
            Client::Serial(c) => c.display()?,
            Client::Hid(h) => h.display()?,
        })
    }

    /// One raw protocol line → (ok, reply text).
    fn send(&mut self, line: &str) -> anyhow::Result<(bool, String)> {
        match self {
            Client::Serial(c) => {
                let reply = c.request_line(line).context("sending the line")?;
                Ok(match &reply {
                    Response::Ok(rest) => (true, format!("OK {rest}").trim_end().to_string()),
                    Response::Err { code, message } => (false, format!("ERR {code} {message}")),
                })
            }
            Client::Hid(h) => {
                let cmd = fobsim_emulator::command::Command::parse(line)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let a = h.command(&cmd)?;
                Ok(if a.status == 0 {
                    (true, format!("OK {}", a.text).trim_end().to_string())
                } else {
                    (false, format!("ERR {} {}", a.status, a.text))
                })
            }
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Serial, model, digits, step, firmware and protocol version.
    Info {
        /// The fob's port (a pty path or its symlink); omit with --hid.
        #[arg(required_unless_present = "hid")]
        path: Option<PathBuf>,
    },
    /// Press the button; print the code then displayed.
    Press {
        /// The fob's port; omit with --hid.
        #[arg(required_unless_present = "hid")]
        path: Option<PathBuf>,
    },
    /// Print what the display shows (a code or `blank`).
    Display {
        /// The fob's port; omit with --hid.
        #[arg(required_unless_present = "hid")]
        path: Option<PathBuf>,
    },
    /// Send one raw protocol line (e.g. "CLOCK" in test mode) and print the reply.
    Send {
        /// The fob's port (with --hid, give only LINE).
        #[arg(required_unless_present = "hid")]
        path: Option<PathBuf>,
        /// The line, without terminator.
        line: Option<String>,
    },
}

/// Opens the HID fob with this serial number, waiting up to `timeout`
/// for it to appear: a fob attached a moment ago (`usbip attach` returns
/// before the kernel has made its hidraw node) is found, not refused.
fn open_hid(
    serial: &str,
    timeout: Duration,
) -> anyhow::Result<fobsim_emulator::hid::client::HidFob> {
    use fobsim_emulator::hid::client::{HidClientError, HidFob};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match HidFob::open(serial) {
            Err(HidClientError::NotFound { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r.with_context(|| format!("opening the HID fob {serial}")),
        }
    }
}

/// Run `fobsim device`.
///
/// # Errors
/// Unreadable timeout, a port that cannot be opened (busy, missing), no
/// answer in time, or a refused command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ms = parse_duration_ms(&args.timeout)?;
    anyhow::ensure!(ms > 0, "--timeout must be positive");
    let timeout = Duration::from_millis(ms.unsigned_abs());
    let path = match &args.action {
        Action::Info { path } | Action::Press { path } | Action::Display { path } => path.clone(),
        Action::Send { path, .. } => path.clone(),
    };
    let mut client = match (&args.hid, path) {
        (Some(serial), None) => {
            let mut h = open_hid(serial, timeout)?;
            h.set_timeout(timeout);
            Client::Hid(h)
        }
        // `send --hid S LINE`: clap put LINE in the PATH slot.
        (Some(serial), Some(p)) if matches!(&args.action, Action::Send { line: None, .. }) => {
            let mut h = open_hid(serial, timeout)?;
            h.set_timeout(timeout);
            let line = p.to_string_lossy().into_owned();
            return finish_send(&mut Client::Hid(h), &line, args.json);
        }
        (Some(_), Some(_)) => anyhow::bail!("give either PATH or --hid SERIAL, not both"),
        (None, Some(p)) => Client::Serial(if args.shared {
            SerialClient::open_shared(&p, timeout)
        } else {
            SerialClient::open(&p, timeout)
        }?),
        (None, None) => anyhow::bail!("give the fob's PATH or --hid SERIAL"),
    };
    match &args.action {
        Action::Info { .. } => {
            let i = client.info()?;
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({
                        "serial": i.serial, "model": i.model, "kind": i.kind,
                        "digits": i.digits, "step": i.step, "algorithm": i.algorithm,
                        "firmware": i.firmware, "protocol": i.protocol, "test_mode": i.test_mode,
                    })
                );
            } else {
                outln!("serial     {}", i.serial);
                outln!("model      {}", i.model);
                outln!("kind       {}", i.kind);
                outln!("digits     {}", i.digits);
                if let Some(step) = i.step {
                    outln!("step       {step}s");
                }
                outln!("algorithm  {}", i.algorithm);
                outln!("firmware   {}", i.firmware);
                outln!("protocol   {}", i.protocol);
                outln!("test-mode  {}", if i.test_mode { "on" } else { "off" });
            }
        }
        Action::Press { .. } | Action::Display { .. } => {
            let shown = if matches!(args.action, Action::Press { .. }) {
                client.press()?
            } else {
                client.display()?
            };
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({ "display": shown.code().map(|c| c.to_string()) })
                );
            } else {
                outln!("{shown}");
            }
        }
        Action::Send { line, .. } => {
            let line = line.as_deref().context("give the LINE to send")?;
            return finish_send(&mut client, line, args.json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn finish_send(client: &mut Client, line: &str, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !line.contains(['\r', '\n']),
        "the line must not hold CR or LF"
    );
    let (ok, text) = client.send(line)?;
    if json {
        outln!("{}", serde_json::json!({ "ok": ok, "reply": text }));
    } else {
        outln!("{text}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
