//! The fob's command set, version [`PROTOCOL_VERSION`], transport-neutral:
//! commands, replies, their canonical text form, and what a fob does with
//! them. Every transport carries these: the serial line protocol as text
//! lines, HID as 64-byte reports (`crate::hid::frame`), USB/IP and uhid
//! through HID. Sans-IO: parse/emit over strings and byte vectors, and
//! [`execute`], a pure function of the fob and the true time.
//!
//! See `docs/serial-protocol.md` for the text form, `docs/hid-protocol.md`
//! for the reports.

use std::fmt::Write as _;

use fobsim_core::time::parse_duration_ms;
use fobsim_core::{Algorithm, Code};
use fobsim_core::{Kind, Timestamp};
use fobsim_firmware::{Battery, Display, Drift, DriftChange, Fob};

/// Version of the line protocol, reported by `INFO` as `protocol=`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Firmware version reported by `INFO` as `firmware=`.
pub const FIRMWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest error text sent (longer texts are cut).
const MAX_MESSAGE: usize = 120;

/// A command from the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `INFO`: public facts about the fob and the protocol.
    Info,
    /// `PRESS`: press the button; answers the code then displayed.
    Press,
    /// `DISPLAY`: what the display shows now.
    Display,
    /// `PING [token]`: liveness check, answered `OK PONG [token]`. A client
    /// resynchronises by sending a fresh token and skipping lines until its
    /// echo.
    Ping(Option<String>),
    /// `HELP`: the list of commands.
    Help,
    /// `CLOCK` (test mode): the device clock.
    Clock,
    /// `DRIFT [offset=D] [ppm=F] [jitter=D]` (test mode): read or change the
    /// clock drift.
    Drift(DriftChange),
    /// `BATTERY [DRAIN|SWAP]` (test mode): read, drain or swap the battery.
    Battery(BatteryOp),
    /// `RTC RESET` (test mode): reset the device clock as a battery swap does.
    RtcReset,
}

/// What `BATTERY` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatteryOp {
    /// Report the state.
    Get,
    /// Drain it (the fob goes blank).
    Drain,
    /// Put in a fresh one (the RTC resets).
    Swap,
}

/// Error codes of `ERR <code> <text>` replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the line held a NUL, control or non-ASCII byte.
    BadLine,
    /// 403: a test-mode command while the emulator is not in test mode.
    TestModeOnly,
    /// 404: no such command.
    UnknownCommand,
    /// 409: the fob's state does not allow it (dead battery, event fob).
    Conflict,
    /// 413: the line is longer than [`crate::serial::MAX_LINE`].
    LineTooLong,
    /// 422: a known command with bad arguments.
    BadArgument,
}

impl ErrorCode {
    /// The number on the wire.
    #[must_use]
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::BadLine => 400,
            ErrorCode::TestModeOnly => 403,
            ErrorCode::UnknownCommand => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::LineTooLong => 413,
            ErrorCode::BadArgument => 422,
        }
    }

    /// The code for a number on the wire, if it is one of ours.
    #[must_use]
    pub fn from_u16(n: u16) -> Option<Self> {
        Some(match n {
            400 => ErrorCode::BadLine,
            403 => ErrorCode::TestModeOnly,
            404 => ErrorCode::UnknownCommand,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::LineTooLong,
            422 => ErrorCode::BadArgument,
            _ => return None,
        })
    }
}

/// A refused command: code and human text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ERR {} {message}", code.as_u16())]
pub struct ProtocolError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable text (printable ASCII, no line breaks).
    pub message: String,
}

impl ProtocolError {
    /// A new error; the text is cut to a bounded length and stripped of
    /// anything but printable ASCII.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl AsRef<str>) -> Self {
        let message = message
            .as_ref()
            .replace('±', "+/-")
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
            .take(MAX_MESSAGE)
            .collect();
        ProtocolError { code, message }
    }
}

/// Shorten a client's word for an error message.
fn quote(word: &str) -> String {
    let w: String = word.chars().take(32).collect();
    if w.len() < word.len() {
        format!("{w}...")
    } else {
        w
    }
}

impl Command {
    /// Parse one line (without terminator). Command words are
    /// case-insensitive; arguments are separated by spaces or tabs.
    ///
    /// # Errors
    /// [`ErrorCode::UnknownCommand`] or [`ErrorCode::BadArgument`].
    pub fn parse(line: &str) -> Result<Command, ProtocolError> {
        let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
        let Some(word) = words.next() else {
            return Err(ProtocolError::new(ErrorCode::UnknownCommand, "empty line"));
        };
        let args: Vec<&str> = words.collect();
        let no_args = |cmd: Command| {
            if args.is_empty() {
                Ok(cmd)
            } else {
                Err(ProtocolError::new(
                    ErrorCode::BadArgument,
                    format!("{} takes no arguments", word.to_ascii_uppercase()),
                ))
            }
        };
        match word.to_ascii_uppercase().as_str() {
            "INFO" => no_args(Command::Info),
            "PRESS" => no_args(Command::Press),
            "DISPLAY" => no_args(Command::Display),
            "PING" => match args.as_slice() {
                [] => Ok(Command::Ping(None)),
                [token] if is_token(token) => Ok(Command::Ping(Some((*token).to_string()))),
                _ => Err(ProtocolError::new(
                    ErrorCode::BadArgument,
                    "usage: PING [token of 1-32 letters, digits, - or _]",
                )),
            },
            "HELP" => no_args(Command::Help),
            "CLOCK" => no_args(Command::Clock),
            "DRIFT" => parse_drift(&args).map(Command::Drift),
            "BATTERY" => match args.as_slice() {
                [] => Ok(Command::Battery(BatteryOp::Get)),
                [op] if op.eq_ignore_ascii_case("DRAIN") => Ok(Command::Battery(BatteryOp::Drain)),
                [op] if op.eq_ignore_ascii_case("SWAP") => Ok(Command::Battery(BatteryOp::Swap)),
                _ => Err(ProtocolError::new(
                    ErrorCode::BadArgument,
                    "usage: BATTERY [DRAIN|SWAP]",
                )),
            },
            "RTC" => match args.as_slice() {
                [op] if op.eq_ignore_ascii_case("RESET") => Ok(Command::RtcReset),
                _ => Err(ProtocolError::new(
                    ErrorCode::BadArgument,
                    "usage: RTC RESET",
                )),
            },
            _ => Err(ProtocolError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command {}", quote(word)),
            )),
        }
    }

    /// True for the commands refused unless the emulator runs in test mode.
    #[must_use]
    pub fn is_test_only(&self) -> bool {
        matches!(
            self,
            Command::Clock | Command::Drift(_) | Command::Battery(_) | Command::RtcReset
        )
    }

    /// The command as a client sends it (without terminator).
    #[must_use]
    pub fn to_line(&self) -> String {
        match self {
            Command::Info => "INFO".into(),
            Command::Press => "PRESS".into(),
            Command::Display => "DISPLAY".into(),
            Command::Ping(None) => "PING".into(),
            Command::Ping(Some(t)) => format!("PING {t}"),
            Command::Help => "HELP".into(),
            Command::Clock => "CLOCK".into(),
            Command::Drift(d) => {
                let mut s = String::from("DRIFT");
                if let Some(o) = d.offset_ms {
                    let _ = write!(s, " offset={o}ms");
                }
                if let Some(p) = d.ppm {
                    let _ = write!(s, " ppm={p}");
                }
                if let Some(j) = d.jitter_ms {
                    let _ = write!(s, " jitter={j}ms");
                }
                s
            }
            Command::Battery(BatteryOp::Get) => "BATTERY".into(),
            Command::Battery(BatteryOp::Drain) => "BATTERY DRAIN".into(),
            Command::Battery(BatteryOp::Swap) => "BATTERY SWAP".into(),
            Command::RtcReset => "RTC RESET".into(),
        }
    }
}

/// A `PING` token: 1-32 letters, digits, `-` or `_`.
#[must_use]
pub fn is_token(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_drift(args: &[&str]) -> Result<DriftChange, ProtocolError> {
    let bad = |m: String| ProtocolError::new(ErrorCode::BadArgument, m);
    let mut d = DriftChange::default();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(bad(format!(
                "DRIFT takes offset=D ppm=F jitter=D, got {}",
                quote(arg)
            )));
        };
        match key.to_ascii_lowercase().as_str() {
            "offset" => {
                d.offset_ms = Some(
                    parse_duration_ms(value)
                        .map_err(|_| bad(format!("bad offset {}", quote(value))))?,
                );
            }
            "ppm" => {
                let p: f64 = value
                    .parse()
                    .ok()
                    .filter(|p: &f64| p.is_finite())
                    .ok_or_else(|| bad(format!("bad ppm {}", quote(value))))?;
                d.ppm = Some(p);
            }
            "jitter" => {
                let j = parse_duration_ms(value)
                    .ok()
                    .and_then(|j| u32::try_from(j).ok())
                    .ok_or_else(|| bad(format!("bad jitter {}", quote(value))))?;
                d.jitter_ms = Some(j);
            }
            _ => return Err(bad(format!("unknown DRIFT key {}", quote(key)))),
        }
    }
    Ok(d)
}

/// Public facts `INFO` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoReply {
    /// Serial number.
    pub serial: String,
    /// Model name.
    pub model: String,
    /// `totp` or `hotp`.
    pub kind: String,
    /// Digits shown.
    pub digits: u8,
    /// Step in seconds (time-based fobs only).
    pub step: Option<u64>,
    /// HMAC hash name (`SHA1`, ...).
    pub algorithm: String,
    /// Firmware version.
    pub firmware: String,
    /// Protocol version.
    pub protocol: u32,
    /// Whether test-mode commands are enabled.
    pub test_mode: bool,
}

/// The device clock as `CLOCK` reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockReply {
    /// Device time, ms since the epoch (negative for clocks set before 1970).
    pub device_ms: i64,
    /// True time, ms since the epoch.
    pub true_ms: u64,
    /// Device minus true time, ms.
    pub offset_ms: i64,
    /// Skew in ppm.
    pub ppm: f64,
    /// Jitter bound in ms.
    pub jitter_ms: u32,
    /// TOTP step the device is in (time-based fobs).
    pub step: Option<u64>,
}

/// An answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `OK serial=... model=... ...`
    Info(InfoReply),
    /// `OK 123456` or `OK BLANK` (answers PRESS and DISPLAY).
    Display(Display),
    /// `OK PONG [token]`
    Pong(Option<String>),
    /// `OK INFO PRESS DISPLAY ...`
    Help {
        /// Whether the test-mode commands are listed.
        test_mode: bool,
    },
    /// `OK device_ms=... ...`
    Clock(ClockReply),
    /// `OK offset_ms=... ppm=... jitter_ms=...`
    Drift(Drift),
    /// `OK GOOD` or `OK DEAD`
    Battery(Battery),
    /// `ERR <code> <text>`
    Err(ProtocolError),
}

impl From<ProtocolError> for Reply {
    fn from(e: ProtocolError) -> Self {
        Reply::Err(e)
    }
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Sha1 => "SHA1",
        Algorithm::Sha256 => "SHA256",
        Algorithm::Sha512 => "SHA512",
    }
}

impl Reply {
    /// Append the reply line, terminated by CRLF, to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut s = String::with_capacity(64);
        match self {
            Reply::Info(i) => {
                let _ = write!(
                    s,
                    "OK serial={} model={} kind={} digits={}",
                    i.serial, i.model, i.kind, i.digits
                );
                if let Some(step) = i.step {
                    let _ = write!(s, " step={step}");
                }
                let _ = write!(
                    s,
                    " algorithm={} firmware={} protocol={} test-mode={}",
                    i.algorithm,
                    i.firmware,
                    i.protocol,
                    u8::from(i.test_mode)
                );
            }
            Reply::Display(Display::Blank) => s.push_str("OK BLANK"),
            Reply::Display(Display::Code(c)) => {
                let _ = write!(s, "OK {c}");
            }
            Reply::Pong(None) => s.push_str("OK PONG"),
            Reply::Pong(Some(t)) => {
                let _ = write!(s, "OK PONG {t}");
            }
            Reply::Help { test_mode } => {
                s.push_str("OK INFO PRESS DISPLAY PING HELP");
                if *test_mode {
                    s.push_str(" CLOCK DRIFT BATTERY RTC");
                }
            }
            Reply::Clock(c) => {
                let _ = write!(s, "OK device_ms={}", c.device_ms);
                if let Ok(ms) = u64::try_from(c.device_ms) {
                    let _ = write!(s, " device={}", Timestamp::from_millis(ms));
                }
                let _ = write!(
                    s,
                    " true={} offset_ms={} ppm={} jitter_ms={}",
                    Timestamp::from_millis(c.true_ms),
                    c.offset_ms,
                    c.ppm,
                    c.jitter_ms
                );
                if let Some(step) = c.step {
                    let _ = write!(s, " step={step}");
                }
            }
            Reply::Drift(d) => {
                let _ = write!(
                    s,
                    "OK offset_ms={} ppm={} jitter_ms={}",
                    d.offset_ms, d.ppm, d.jitter_ms
                );
            }
            Reply::Battery(Battery::Good) => s.push_str("OK GOOD"),
            Reply::Battery(Battery::Dead) => s.push_str("OK DEAD"),
            Reply::Err(e) => {
                let _ = write!(s, "ERR {} {}", e.code.as_u16(), e.message);
            }
        }
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// A reply line as a client sees it: `OK <rest>` or `ERR <code> <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `OK` and the rest of the line (may be empty).
    Ok(String),
    /// `ERR`, its number and text.
    Err {
        /// The number on the wire (see [`ErrorCode::from_u16`]).
        code: u16,
        /// The text.
        message: String,
    },
}

/// A reply line the client could not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply from the fob: {0:?}")]
pub struct MalformedReply(pub String);

impl MalformedReply {
    fn of(line: &str) -> Self {
        MalformedReply(line.chars().take(80).collect())
    }
}

impl Response {
    /// Parse one reply line (terminator optional).
    ///
    /// # Errors
    /// [`MalformedReply`] if the line is neither `OK ...` nor `ERR <n> ...`.
    pub fn parse(line: &str) -> Result<Response, MalformedReply> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "OK" {
            return Ok(Response::Ok(String::new()));
        }
        if let Some(rest) = line.strip_prefix("OK ") {
            return Ok(Response::Ok(rest.to_string()));
        }
        if let Some(rest) = line.strip_prefix("ERR ") {
            let (num, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = num.parse().map_err(|_| MalformedReply::of(line))?;
            return Ok(Response::Err {
                code,
                message: text.to_string(),
            });
        }
        Err(MalformedReply::of(line))
    }
}

/// Read the `key=value` words of an `OK` reply.
fn fields(rest: &str) -> impl Iterator<Item = (&str, &str)> {
    rest.split(' ').filter_map(|w| w.split_once('='))
}

impl InfoReply {
    /// Parse the part after `OK ` of an `INFO` reply. Unknown keys are
    /// ignored (later protocol versions may add some).
    ///
    /// # Errors
    /// [`MalformedReply`] if a required key is missing or malformed.
    pub fn parse(rest: &str) -> Result<InfoReply, MalformedReply> {
        let bad = || MalformedReply::of(rest);
        let mut info = InfoReply {
            serial: String::new(),
            model: String::new(),
            kind: String::new(),
            digits: 0,
            step: None,
            algorithm: String::new(),
            firmware: String::new(),
            protocol: 0,
            test_mode: false,
        };
        for (k, v) in fields(rest) {
            match k {
                "serial" => info.serial = v.to_string(),
                "model" => info.model = v.to_string(),
                "kind" => info.kind = v.to_string(),
                "digits" => info.digits = v.parse().map_err(|_| bad())?,
                "step" => info.step = Some(v.parse().map_err(|_| bad())?),
                "algorithm" => info.algorithm = v.to_string(),
                "firmware" => info.firmware = v.to_string(),
                "protocol" => info.protocol = v.parse().map_err(|_| bad())?,
                "test-mode" => info.test_mode = v == "1",
                _ => {}
            }
        }
        if info.serial.is_empty() || info.digits == 0 || info.protocol == 0 {
            return Err(bad());
        }
        Ok(info)
    }
}

/// Parse the part after `OK ` of a `PRESS` or `DISPLAY` reply.
///
/// # Errors
/// [`MalformedReply`] unless it is `BLANK` or 6–8 digits.
pub fn parse_display(rest: &str) -> Result<Display, MalformedReply> {
    if rest == "BLANK" {
        return Ok(Display::Blank);
    }
    let digits = u8::try_from(rest.len()).map_err(|_| MalformedReply::of(rest))?;
    Code::parse(rest, digits)
        .map(Display::Code)
        .map_err(|_| MalformedReply::of(rest))
}

/// Run one command on a fob at true time `now`. Pure: the same fob, time
/// and command give the same reply. Test-mode commands are refused with
/// [`ErrorCode::TestModeOnly`] unless `test_mode`. The secret is never part
/// of any reply.
pub fn execute(cmd: &Command, fob: &mut Fob, now: Timestamp, test_mode: bool) -> Reply {
    if cmd.is_test_only() && !test_mode {
        return Reply::Err(ProtocolError::new(
            ErrorCode::TestModeOnly,
            "test-mode command refused: start the emulator with --test-mode",
        ));
    }
    match cmd {
        Command::Info => {
            let info = fob.info();
            let (kind, step) = match info.kind {
                Kind::Totp { period } => ("totp", Some(period)),
                Kind::Hotp => ("hotp", None),
            };
            Reply::Info(InfoReply {
                serial: info.serial.to_string(),
                model: info.model.to_string(),
                kind: kind.to_string(),
                digits: info.digits,
                step,
                algorithm: algorithm_name(info.algorithm).to_string(),
                firmware: FIRMWARE_VERSION.to_string(),
                protocol: PROTOCOL_VERSION,
                test_mode,
            })
        }
        Command::Press => Reply::Display(fob.press(now)),
        Command::Display => Reply::Display(fob.display(now)),
        Command::Ping(token) => Reply::Pong(token.clone()),
        Command::Help => Reply::Help { test_mode },
        Command::Clock => match fob.device_ms(now) {
            Some(device_ms) => {
                let d = fob.drift(now);
                Reply::Clock(ClockReply {
                    device_ms,
                    true_ms: now.as_millis(),
                    offset_ms: d.offset_ms,
                    ppm: d.ppm,
                    jitter_ms: d.jitter_ms,
                    step: fob.device_step(now),
                })
            }
            None => Reply::Err(ProtocolError::new(
                ErrorCode::Conflict,
                "battery is dead: the RTC has stopped",
            )),
        },
        Command::Drift(change) => match change.apply(fob, now) {
            Ok(()) => Reply::Drift(fob.drift(now)),
            Err(e) => Reply::Err(ProtocolError::new(ErrorCode::BadArgument, e.to_string())),
        },
        Command::Battery(op) => {
            match op {
                BatteryOp::Get => {}
                BatteryOp::Drain => fob.drain_battery(now),
                BatteryOp::Swap => fob.swap_battery(now),
            }
            Reply::Battery(fob.battery())
        }
        Command::RtcReset => {
            fob.reset_rtc(now);
            execute(&Command::Clock, fob, now, test_mode)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_case_insensitive_and_strict_about_arguments() {
        assert_eq!(Command::parse("press"), Ok(Command::Press));
        assert_eq!(Command::parse(" \tInFo  "), Ok(Command::Info));
        assert_eq!(
            Command::parse("PRESS now").unwrap_err().code,
            ErrorCode::BadArgument
        );
        assert_eq!(
            Command::parse("SECRET").unwrap_err().code,
            ErrorCode::UnknownCommand
        );
        assert_eq!(
            Command::parse("DRIFT offset=+47s ppm=-20.5 jitter=1s"),
            Ok(Command::Drift(DriftChange {
                offset_ms: Some(47_000),
                ppm: Some(-20.5),
                jitter_ms: Some(1000)
            }))
        );
        for bad in [
            "DRIFT ppm=NaN",
            "DRIFT ppm=inf",
            "DRIFT offset=x",
            "DRIFT jitter=-1s",
            "DRIFT 47s",
            "DRIFT color=red",
            "BATTERY EAT",
            "RTC",
            "PING a b",
            "PING a.b",
        ] {
            assert_eq!(
                Command::parse(bad).unwrap_err().code,
                ErrorCode::BadArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn to_line_round_trips() {
        for c in [
            Command::Info,
            Command::Press,
            Command::Display,
            Command::Ping(None),
            Command::Ping(Some("abc-12_Z".into())),
            Command::Help,
            Command::Clock,
            Command::Drift(DriftChange::default()),
            Command::Drift(DriftChange {
                offset_ms: Some(-1500),
                ppm: Some(4.75),
                jitter_ms: Some(20),
            }),
            Command::Battery(BatteryOp::Get),
            Command::Battery(BatteryOp::Drain),
            Command::Battery(BatteryOp::Swap),
            Command::RtcReset,
        ] {
            assert_eq!(Command::parse(&c.to_line()), Ok(c));
        }
    }

    #[test]
    fn error_text_is_bounded_and_printable() {
        let e = ProtocolError::new(ErrorCode::BadArgument, format!("a\r\nb{}", "x".repeat(500)));
        assert!(e.message.len() <= MAX_MESSAGE);
        assert!(e.message.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        let long = "Z".repeat(200);
        let e = Command::parse(&long).unwrap_err();
        assert!(e.message.len() < 60, "{}", e.message);
    }

    #[test]
    fn responses_parse() {
        assert_eq!(
            Response::parse("OK 123456\r\n"),
            Ok(Response::Ok("123456".into()))
        );
        assert_eq!(Response::parse("OK"), Ok(Response::Ok(String::new())));
        assert_eq!(
            Response::parse("ERR 404 unknown command X"),
            Ok(Response::Err {
                code: 404,
                message: "unknown command X".into()
            })
        );
        assert!(Response::parse("HELLO").is_err());
        assert!(Response::parse("ERR x y").is_err());
        assert_eq!(parse_display("BLANK"), Ok(Display::Blank));
        assert_eq!(parse_display("00042").ok(), None);
        assert_eq!(
            parse_display("012345").unwrap().code().map(Code::value),
            Some(12_345)
        );
        for code in [400, 403, 404, 409, 413, 422] {
            assert_eq!(ErrorCode::from_u16(code).map(ErrorCode::as_u16), Some(code));
        }
    }
}
