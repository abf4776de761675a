//! The control plane: JSON lines that move a process's true time and change
//! a fob's drift, served on a Unix socket (`--control SOCKET`).
//!
//! Sans-IO core: [`parse_request`] / [`Response::emit`] over bytes, and
//! [`apply`], which runs a request on a [`TrueClock`] and the process's
//! [`Fobs`] (the emulator's fleet; `()` for a process without fobs, such as
//! `fobsim serve`). [`server`] carries it over any `AsyncRead + AsyncWrite`
//! (a Unix socket), [`client`] is the blocking client behind `fobsim clock`.
//!
//! One request per line, one response line per request:
//!
//! ```text
//! {"op":"get"}
//! {"op":"set","time":"2026-01-01T00:00:00Z"}      (or "@1767225600")
//! {"op":"advance","by":"30s"}                     (negative: "-4m")
//! {"op":"freeze"}        {"op":"resume"}
//! {"op":"drift","serial":"GAHT00000001","offset":"+47s","ppm":20,"jitter":"0s"}
//! {"op":"fobs"}
//! {"op":"fob","serial":"GAHT00000001"}           (read one fob and its display)
//! {"op":"press","serial":"GAHT00000001"}
//! {"op":"battery","serial":"GAHT00000001","action":"pull"}   (or "swap")
//! {"op":"create","model":"gaht","serial":"GAHT00000009","offset":"+5s"}
//! {"op":"remove","serial":"GAHT00000009"}
//! ```
//!
//! Answers: `{"ok":true,"clock":{...}}` (plus `"fob"` for the ops on one
//! fob, `"display"` for `press` and `fob`, `"fobs"` for `fobs`), or
//! `{"ok":false,"error":{"code":"...","message":"...","field":"..."}}`.
//! Secrets never appear. The HTTP control API (`fobsim emulate --http`)
//! translates its routes into these requests and runs them through the
//! same [`apply`].

pub mod client;
pub mod server;

use fobsim_core::Timestamp;
use fobsim_core::time::parse_duration_ms;
use fobsim_firmware::DriftChange;
use serde::{Deserialize, Serialize};

use crate::{ManualClock, TrueClock};

/// Version of the control protocol (reported in every clock state).
pub const CONTROL_VERSION: u32 = 1;

/// Longest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Read the clock.
    Get,
    /// Jump to a time: RFC 3339 UTC or `@UNIX_SECONDS`.
    Set {
        /// The new true time.
        time: String,
    },
    /// Move by a signed duration (`30s`, `-4m`, `1y`).
    Advance {
        /// How far.
        by: String,
    },
    /// Stop the clock.
    Freeze,
    /// Let the clock run at real-time rate.
    Resume,
    /// Read or change one fob's drift (omitted fields are kept).
    Drift {
        /// The fob.
        serial: String,
        /// Device minus true time from now on (a duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<String>,
        /// Skew in ppm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ppm: Option<f64>,
        /// Jitter bound (a duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter: Option<String>,
    },
    /// List the fobs and their clocks.
    Fobs,
    /// Read one fob: its clock, battery and display.
    Fob {
        /// The fob.
        serial: String,
    },
    /// Press a fob's button.
    Press {
        /// The fob.
        serial: String,
    },
    /// Pull a fob's battery out (it dies) or put a fresh one in.
    Battery {
        /// The fob.
        serial: String,
        /// `pull` or `swap`.
        action: BatteryAction,
    },
    /// Add a fob to the fleet (its secret derives from the fleet's seed
    /// and the serial, as at start-up).
    Create {
        /// Model preset (`fobsim models`).
        model: String,
        /// Serial number; default: the model's first free one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<String>,
        /// Device minus true time (a duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<String>,
        /// Skew in ppm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ppm: Option<f64>,
        /// Jitter bound (a duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter: Option<String>,
    },
    /// Take a fob out of the fleet.
    Remove {
        /// The fob.
        serial: String,
    },
}

/// What to do with a fob's battery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatteryAction {
    /// The battery dies: the display blanks, the button stops working.
    Pull,
    /// A fresh battery: the fob works again, its RTC restarts at its reset
    /// time (2000-01-01 by default).
    Swap,
}

/// A new fob for [`Fobs::create`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewFob {
    /// Model preset name.
    pub model: String,
    /// Serial number; `None`: the model's first free one.
    pub serial: Option<String>,
    /// Drift from the start (omitted parts: none).
    pub drift: DriftChange,
}

/// What a fob's display shows (the answer to a press).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayState {
    /// The code shown, `null` while blank.
    pub code: Option<String>,
    /// True time (RFC 3339) until which this code stays shown: the display
    /// blanks or the device steps to the next code then. `null` while blank.
    pub shown_until: Option<String>,
    /// Device time (RFC 3339), `null` with a dead battery.
    pub device_time: Option<String>,
}

/// The clock as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    /// True time, RFC 3339.
    pub now: String,
    /// True time, ms since the epoch.
    pub now_ms: u64,
    /// `system` or `manual`.
    pub source: String,
    /// Whether the clock stands still.
    pub frozen: bool,
    /// Control protocol version.
    pub version: u32,
}

/// One fob as reported (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FobState {
    /// Serial number.
    pub serial: String,
    /// Model name.
    pub model: String,
    /// Device time, RFC 3339 (`null` with a dead battery or before 1970).
    pub device: Option<String>,
    /// Device minus true time, ms.
    pub offset_ms: i64,
    /// Skew, ppm.
    pub ppm: f64,
    /// Jitter bound, ms.
    pub jitter_ms: u32,
    /// `good` or `dead`.
    pub battery: String,
    /// The code on the display (absent while blank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// True time (RFC 3339) until which that code stays shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_until: Option<String>,
}

impl FobState {
    /// The fob's display.
    #[must_use]
    pub fn display(&self) -> DisplayState {
        DisplayState {
            code: self.code.clone(),
            shown_until: self.shown_until.clone(),
            device_time: self.device.clone(),
        }
    }
}

/// Error codes of the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlErrorCode {
    /// Not JSON, not an object, an unknown op or field.
    BadRequest,
    /// A value (time, duration, ppm) is unreadable or out of range.
    BadValue,
    /// No fob has this serial.
    NoSuchFob,
    /// The emulator runs on the system clock, which cannot be moved.
    SystemClock,
    /// The request line is longer than [`MAX_REQUEST`].
    TooLong,
    /// A fob with this serial exists already.
    Exists,
    /// This process has no fleet to add fobs to.
    NoFleet,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ControlError {
    /// Machine-readable code.
    pub code: ControlErrorCode,
    /// Human-readable text.
    pub message: String,
    /// The request field at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ControlError {
    /// An error with its message cut to 200 characters.
    #[must_use]
    pub fn new(code: ControlErrorCode, message: impl Into<String>) -> Self {
        let message: String = message.into();
        ControlError {
            code,
            message: message.chars().take(200).collect(),
            field: None,
        }
    }

    /// The same error, naming the request field at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The clock after the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockState>,
    /// The fob a `drift` request was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fob: Option<FobState>,
    /// All fobs (`fobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fobs: Option<Vec<FobState>>,
    /// The display (`press`, `fob`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<DisplayState>,
    /// Why the request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ControlError>,
}

impl Response {
    /// The response refusing a request.
    #[must_use]
    pub fn error(e: ControlError) -> Self {
        Response {
            ok: false,
            clock: None,
            fob: None,
            fobs: None,
            display: None,
            error: Some(e),
        }
    }

    /// Append the response as one JSON line to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        // Serialising these plain structs cannot fail; keep the line
        // protocol intact even so.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.extend_from_slice(br#"{"ok":false}"#);
        }
        out.push(b'\n');
    }

    /// Parse one response line.
    ///
    /// # Errors
    /// The JSON error.
    pub fn parse(line: &[u8]) -> Result<Response, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

impl Request {
    /// The request as one JSON line (with newline).
    #[must_use]
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Parse one request line (without its newline; a trailing CR is ignored).
///
/// # Errors
/// [`ControlErrorCode::BadRequest`] with serde's explanation.
pub fn parse_request(line: &[u8]) -> Result<Request, ControlError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let bad = |e: serde_json::Error| ControlError::new(ControlErrorCode::BadRequest, e.to_string());
    let req: Request = serde_json::from_slice(line).map_err(bad)?;
    // serde ignores extra fields of the ops that take none: refuse them too.
    if matches!(
        req,
        Request::Get | Request::Freeze | Request::Resume | Request::Fobs
    ) {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).map_err(bad)?;
        if let Some(extra) = obj.keys().find(|k| *k != "op") {
            return Err(ControlError::new(
                ControlErrorCode::BadRequest,
                format!(
                    "unknown field `{}`: this op takes none",
                    extra.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(req)
}

/// The error response for a request line longer than [`MAX_REQUEST`].
#[must_use]
pub fn too_long() -> Response {
    Response::error(ControlError::new(
        ControlErrorCode::TooLong,
        format!("request longer than {MAX_REQUEST} bytes"),
    ))
}

fn clock_state(clock: &TrueClock) -> ClockState {
    let now = clock.now();
    ClockState {
        now: now.to_string(),
        now_ms: now.as_millis(),
        source: clock.source().to_string(),
        frozen: clock.is_frozen(),
        version: CONTROL_VERSION,
    }
}

/// The fobs a control plane can reach: the emulator's fleet implements it;
/// `()` is a process with a clock and no fobs (`fobsim serve`).
pub trait Fobs: Send + Sync {
    /// Every fob, in order.
    fn list(&self) -> Vec<FobState>;

    /// Change one fob's drift and say how it is now.
    ///
    /// # Errors
    /// [`ControlErrorCode::NoSuchFob`] for an unknown serial,
    /// [`ControlErrorCode::BadValue`] for a drift the fob refuses.
    fn drift(&self, serial: &str, change: DriftChange) -> Result<FobState, ControlError>;

    /// One fob as it is now.
    ///
    /// # Errors
    /// [`ControlErrorCode::NoSuchFob`] for an unknown serial.
    fn fob(&self, serial: &str) -> Result<FobState, ControlError>;

    /// Press one fob's button; the state after the press (its display).
    ///
    /// # Errors
    /// [`ControlErrorCode::NoSuchFob`] for an unknown serial.
    fn press(&self, serial: &str) -> Result<FobState, ControlError>;

    /// Pull or swap one fob's battery.
    ///
    /// # Errors
    /// [`ControlErrorCode::NoSuchFob`] for an unknown serial.
    fn battery(&self, serial: &str, action: BatteryAction) -> Result<FobState, ControlError>;

    /// Add a fob.
    ///
    /// # Errors
    /// [`ControlErrorCode::BadValue`] for an unknown model, a bad serial or
    /// drift, or a full fleet; [`ControlErrorCode::Exists`] for a serial in
    /// use; [`ControlErrorCode::NoFleet`] where there is no fleet.
    fn create(&self, new: NewFob) -> Result<FobState, ControlError>;

    /// Take a fob out; how it was.
    ///
    /// # Errors
    /// [`ControlErrorCode::NoSuchFob`] for an unknown serial.
    fn remove(&self, serial: &str) -> Result<FobState, ControlError>;
}

/// No fobs: the clock alone.
impl Fobs for () {
    fn list(&self) -> Vec<FobState> {
        Vec::new()
    }

    fn drift(&self, serial: &str, _: DriftChange) -> Result<FobState, ControlError> {
        Err(no_such_fob(serial))
    }

    fn fob(&self, serial: &str) -> Result<FobState, ControlError> {
        Err(no_such_fob(serial))
    }

    fn press(&self, serial: &str) -> Result<FobState, ControlError> {
        Err(no_such_fob(serial))
    }

    fn battery(&self, serial: &str, _: BatteryAction) -> Result<FobState, ControlError> {
        Err(no_such_fob(serial))
    }

    fn create(&self, _: NewFob) -> Result<FobState, ControlError> {
        Err(ControlError::new(
            ControlErrorCode::NoFleet,
            "this process has no fleet of fobs",
        ))
    }

    fn remove(&self, serial: &str) -> Result<FobState, ControlError> {
        Err(no_such_fob(serial))
    }
}

/// The `NoSuchFob` error for `serial`.
#[must_use]
pub fn no_such_fob(serial: &str) -> ControlError {
    ControlError::new(
        ControlErrorCode::NoSuchFob,
        format!("no fob {:?}", serial.chars().take(64).collect::<String>()),
    )
}

fn bad_value(field: &str, value: &str) -> ControlError {
    let what = if field == "by" { "duration" } else { field };
    ControlError::new(
        ControlErrorCode::BadValue,
        format!(
            "bad {what} {:?}",
            value.chars().take(64).collect::<String>()
        ),
    )
    .with_field(field)
}

/// A drift change from the request's text fields.
fn drift_change(
    offset: Option<&str>,
    ppm: Option<f64>,
    jitter: Option<&str>,
) -> Result<DriftChange, ControlError> {
    let offset_ms = offset
        .map(|o| parse_duration_ms(o).map_err(|_| bad_value("offset", o)))
        .transpose()?;
    let jitter_ms = jitter
        .map(|j| {
            parse_duration_ms(j)
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad_value("jitter", j))
        })
        .transpose()?;
    if ppm.is_some_and(|p| !p.is_finite()) {
        return Err(bad_value("ppm", "non-finite"));
    }
    Ok(DriftChange {
        offset_ms,
        ppm,
        jitter_ms,
    })
}

fn manual<R>(
    clock: &TrueClock,
    f: impl FnOnce(&mut ManualClock, u64) -> R,
) -> Result<R, ControlError> {
    clock.with_manual(f).ok_or_else(|| {
        ControlError::new(
            ControlErrorCode::SystemClock,
            "the emulator runs on the system clock: start it with --clock manual to move time",
        )
    })
}

/// Carry out `req` on `clock` and `fobs` and say what happened.
#[must_use]
pub fn apply(clock: &TrueClock, fobs: &dyn Fobs, req: &Request) -> Response {
    match try_apply(clock, fobs, req) {
        Ok(r) => r,
        Err(e) => Response::error(e),
    }
}

fn try_apply(clock: &TrueClock, fobs: &dyn Fobs, req: &Request) -> Result<Response, ControlError> {
    let mut resp = Response {
        ok: true,
        clock: None,
        fob: None,
        fobs: None,
        display: None,
        error: None,
    };
    match req {
        Request::Get => {}
        Request::Set { time } => {
            let t: Timestamp = time.parse().map_err(|_| bad_value("time", time))?;
            manual(clock, |c, mono| c.set(t, mono))?;
        }
        Request::Advance { by } => {
            let ms = parse_duration_ms(by).map_err(|_| bad_value("by", by))?;
            manual(clock, |c, mono| c.advance(ms, mono))?;
        }
        Request::Freeze => manual(clock, |c, mono| c.freeze(mono))?,
        Request::Resume => manual(clock, |c, mono| c.resume(mono))?,
        Request::Drift {
            serial,
            offset,
            ppm,
            jitter,
        } => {
            let change = drift_change(offset.as_deref(), *ppm, jitter.as_deref())?;
            let state = fobs.drift(serial, change)?;
            resp.fob = Some(state);
        }
        Request::Fobs => {
            let fobs = fobs.list();
            resp.fobs = Some(fobs);
        }
        Request::Fob { serial } => {
            let state = fobs.fob(serial)?;
            resp.display = Some(state.display());
            resp.fob = Some(state);
        }
        Request::Press { serial } => {
            let state = fobs.press(serial)?;
            resp.display = Some(state.display());
            resp.fob = Some(state);
        }
        Request::Battery { serial, action } => {
            resp.fob = Some(fobs.battery(serial, *action)?);
        }
        Request::Create {
            model,
            serial,
            offset,
            ppm,
            jitter,
        } => {
            let drift = drift_change(offset.as_deref(), *ppm, jitter.as_deref())?;
            resp.fob = Some(fobs.create(NewFob {
                model: model.clone(),
                serial: serial.clone(),
                drift,
            })?);
        }
        Request::Remove { serial } => {
            resp.fob = Some(fobs.remove(serial)?);
        }
    }
    resp.clock = Some(clock_state(clock));
    Ok(resp)
}

/// Handle a chunk of request bytes: every complete line gets a response
/// line in `out`. Bounded: at most [`MAX_REQUEST`] bytes are held.
#[derive(Debug, Default)]
pub struct Session {
    buf: Vec<u8>,
    discarding: bool,
}

impl Session {
    /// Bytes held of an incomplete line (at most [`MAX_REQUEST`]).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// A fresh session.
    #[must_use]
    pub fn new() -> Self {
        Session::default()
    }

    /// Feed bytes; responses for complete lines go to `out`.
    pub fn feed(&mut self, clock: &TrueClock, fobs: &dyn Fobs, input: &[u8], out: &mut Vec<u8>) {
        for chunk in input.split_inclusive(|&b| b == b'\n') {
            let complete = chunk.last() == Some(&b'\n');
            let body = if complete {
                &chunk[..chunk.len() - 1]
            } else {
                chunk
            };
            if !self.discarding {
                if self.buf.len() + body.len() > MAX_REQUEST {
                    self.buf.clear();
                    self.discarding = true;
                    too_long().emit(out);
                } else {
                    self.buf.extend_from_slice(body);
                }
            }
            if complete {
                if !self.discarding && !self.buf.iter().all(u8::is_ascii_whitespace) {
                    match parse_request(&self.buf) {
                        Ok(req) => apply(clock, fobs, &req).emit(out),
                        Err(e) => Response::error(e).emit(out),
                    }
                }
                self.buf.clear();
                self.discarding = false;
            }
        }
    }
}
