//! The host side over hidraw: find a fob by serial with hidapi (its
//! pure-Rust Linux backend: no libudev or libusb needed to build), run
//! commands, read the display. Blocking.

use std::time::{Duration, Instant};

use fobsim_firmware::Display;
use hidapi::{HidApi, HidDevice};

use super::frame::{Answer, AnswerAssembler, AnswerError, STATUS_OK, encode_command};
use super::{PRODUCT_ID, REPORT_LEN, USAGE_PAGE, VENDOR_ID};
use crate::command::{Command, InfoReply, MalformedReply, parse_display};

/// Why talking to a fob over HID failed.
#[derive(Debug, thiserror::Error)]
pub enum HidClientError {
    /// hidapi failed (enumerating, opening, reading or writing).
    #[error("hidapi: {0}")]
    Hid(#[from] hidapi::HidError),
    /// No fobsim HID device has this serial.
    #[error("no fobsim HID device with serial {serial:?} (found: {found:?})")]
    NotFound {
        /// The serial asked for.
        serial: String,
        /// The fobsim serials that were found.
        found: Vec<String>,
    },
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The fob refused the command.
    #[error("the fob refused: ERR {code} {message}")]
    Refused {
        /// Error code (as in the serial protocol).
        code: u16,
        /// Error text.
        message: String,
    },
    /// The answer's frames were broken.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// The answer's text was not understood.
    #[error(transparent)]
    Malformed(#[from] MalformedReply),
}

/// A fobsim HID device as enumerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFob {
    /// The fob's serial.
    pub serial: String,
    /// The hidraw path.
    pub path: String,
}

/// The fobsim vendor interfaces hidapi sees.
///
/// # Errors
/// [`HidClientError::Hid`] if enumeration fails.
pub fn list() -> Result<Vec<FoundFob>, HidClientError> {
    let api = HidApi::new()?;
    Ok(vendor_devices(&api))
}

fn vendor_devices(api: &HidApi) -> Vec<FoundFob> {
    api.device_list()
        .filter(|d| {
            d.vendor_id() == VENDOR_ID
                && d.product_id() == PRODUCT_ID
                // The keyboard (usage page 1) shares the serial.
                && (d.usage_page() == USAGE_PAGE || d.usage_page() == 0 && d.interface_number() <= 0)
        })
        .filter_map(|d| {
            Some(FoundFob {
                serial: d.serial_number()?.to_string(),
                path: d.path().to_string_lossy().into_owned(),
            })
        })
        .collect()
}

/// An open fob.
pub struct HidFob {
    dev: HidDevice,
    seq: u8,
    timeout: Duration,
}

impl std::fmt::Debug for HidFob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidFob")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl HidFob {
    /// Open the fob with this serial (answers must come within 2 s).
    ///
    /// # Errors
    /// [`HidClientError::NotFound`] or hidapi errors.
    pub fn open(serial: &str) -> Result<Self, HidClientError> {
        let api = HidApi::new()?;
        let found = vendor_devices(&api);
        let Some(f) = found.iter().find(|f| f.serial == serial) else {
            return Err(HidClientError::NotFound {
                serial: serial.to_string(),
                found: found.into_iter().map(|f| f.serial).collect(),
            });
        };
        let path =
            std::ffi::CString::new(f.path.clone()).map_err(|_| HidClientError::NotFound {
                serial: serial.to_string(),
                found: vec![],
            })?;
        Ok(HidFob {
            dev: api.open_path(&path)?,
            seq: 0,
            timeout: Duration::from_secs(2),
        })
    }

    /// Change how long to wait for an answer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Run a command; the answer, OK or not.
    ///
    /// # Errors
    /// [`HidClientError`] for IO failures, broken frames or a timeout.
    pub fn command(&mut self, cmd: &Command) -> Result<Answer, HidClientError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        // hidraw: first byte is the report number (0: unnumbered reports).
        let mut out = [0u8; REPORT_LEN + 1];
        out[1..].copy_from_slice(&encode_command(seq, cmd));
        self.dev.write(&out)?;
        let deadline = Instant::now() + self.timeout;
        let mut asm = AnswerAssembler::new(seq);
        let mut buf = [0u8; REPORT_LEN];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HidClientError::Timeout(self.timeout));
            }
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            let n = self.dev.read_timeout(&mut buf, ms)?;
            if n == 0 {
                continue;
            }
            if let Some(a) = asm.feed(&buf[..n])? {
                return Ok(a);
            }
        }
    }

    fn ok(&mut self, cmd: &Command) -> Result<String, HidClientError> {
        let a = self.command(cmd)?;
        if a.status == STATUS_OK {
            Ok(a.text)
        } else {
            Err(HidClientError::Refused {
                code: a.status,
                message: a.text,
            })
        }
    }

    /// Press the button; the code then shown.
    ///
    /// # Errors
    /// As [`HidFob::command`], and [`HidClientError::Refused`].
    pub fn press(&mut self) -> Result<Display, HidClientError> {
        Ok(parse_display(&self.ok(&Command::Press)?)?)
    }

    /// What the display shows.
    ///
    /// # Errors
    /// As [`HidFob::press`].
    pub fn display(&mut self) -> Result<Display, HidClientError> {
        Ok(parse_display(&self.ok(&Command::Display)?)?)
    }

    /// The fob's public facts.
    ///
    /// # Errors
    /// As [`HidFob::press`].
    pub fn info(&mut self) -> Result<InfoReply, HidClientError> {
        Ok(InfoReply::parse(&self.ok(&Command::Info)?)?)
    }
}
