//! The binary framing of the serial protocol's commands in 64-byte HID
//! reports (`docs/hid-protocol.md`). Sans-IO: parse/emit over byte slices.
//!
//! Every report, either way:
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | `seq`: chosen by the host, echoed in every fragment of the answer |
//! | 1 | fragment number, from 0 |
//! | 2 | number of fragments of the message (1..) |
//! | 3 | payload bytes in this report (0..=60) |
//! | 4..64 | payload, zero-padded |
//!
//! A command is one report whose payload is an opcode and binary arguments
//! ([`encode_command`]). An answer is a message of one or more reports:
//! status (u16 big-endian: 0 = OK, else the serial protocol's error code)
//! followed by ASCII text — after OK the serial reply without `OK ` and
//! CRLF, after an error its text ([`encode_reply`]).

use crate::command::{BatteryOp, Command, ErrorCode, ProtocolError, Reply};
use fobsim_firmware::DriftChange;

use super::REPORT_LEN;

/// Header bytes of each report.
pub const HEADER_LEN: usize = 4;
/// Payload bytes a report can carry.
pub const PAYLOAD_MAX: usize = REPORT_LEN - HEADER_LEN;
/// Longest answer message (status + text), in bytes.
pub const MAX_MESSAGE: usize = 1024;
/// Most fragments of one answer.
pub const MAX_FRAGMENTS: usize = MAX_MESSAGE.div_ceil(PAYLOAD_MAX);
/// Longest `PING` token.
pub const MAX_TOKEN: usize = 32;

/// Opcodes of the commands.
pub mod opcode {
    /// `INFO`, no arguments.
    pub const INFO: u8 = 0x01;
    /// `PRESS`, no arguments.
    pub const PRESS: u8 = 0x02;
    /// `DISPLAY`, no arguments.
    pub const DISPLAY: u8 = 0x03;
    /// `PING [token]`: the token's bytes (0..=32 of `A-Z a-z 0-9 - _`).
    pub const PING: u8 = 0x04;
    /// `HELP`, no arguments.
    pub const HELP: u8 = 0x05;
    /// `CLOCK` (test mode), no arguments.
    pub const CLOCK: u8 = 0x10;
    /// `DRIFT` (test mode): flags (bit 0 offset, bit 1 ppm, bit 2 jitter),
    /// then the flagged fields in that order: offset i64 ms, ppm f64,
    /// jitter u32 ms, all big-endian.
    pub const DRIFT: u8 = 0x11;
    /// `BATTERY` (test mode): one byte, 0 read, 1 drain, 2 swap.
    pub const BATTERY: u8 = 0x12;
    /// `RTC RESET` (test mode), no arguments.
    pub const RTC_RESET: u8 = 0x13;
}

/// Status of an OK answer.
pub const STATUS_OK: u16 = 0;

/// A report's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sequence number, echoed in answers.
    pub seq: u8,
    /// Fragment number.
    pub fragment: u8,
    /// Fragments in the message.
    pub count: u8,
    /// Payload bytes in this report.
    pub len: u8,
}

/// Why a report is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The report is not [`REPORT_LEN`] bytes long.
    #[error("report is {0} bytes, not {REPORT_LEN}")]
    Length(usize),
    /// The payload length is over [`PAYLOAD_MAX`].
    #[error("payload length {0} over {PAYLOAD_MAX}")]
    PayloadLength(u8),
    /// The fragment fields are inconsistent.
    #[error("fragment {fragment} of {count}")]
    Fragment {
        /// Fragment number.
        fragment: u8,
        /// Fragment count.
        count: u8,
    },
}

/// Read a report's header and payload. Output reports shorter than
/// [`REPORT_LEN`] are accepted (hidraw writes need not be padded) as long
/// as they hold the header and the payload.
///
/// # Errors
/// [`FrameError`].
pub fn parse_report(report: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    if report.len() < HEADER_LEN || report.len() > REPORT_LEN {
        return Err(FrameError::Length(report.len()));
    }
    let h = Header {
        seq: report[0],
        fragment: report[1],
        count: report[2],
        len: report[3],
    };
    if usize::from(h.len) > PAYLOAD_MAX {
        return Err(FrameError::PayloadLength(h.len));
    }
    if h.count == 0 || h.fragment >= h.count {
        return Err(FrameError::Fragment {
            fragment: h.fragment,
            count: h.count,
        });
    }
    let end = HEADER_LEN + usize::from(h.len);
    let payload = report
        .get(HEADER_LEN..end)
        .ok_or(FrameError::Length(report.len()))?;
    Ok((h, payload))
}

/// Emit one report.
fn report(h: Header, payload: &[u8]) -> [u8; REPORT_LEN] {
    let mut r = [0u8; REPORT_LEN];
    r[0] = h.seq;
    r[1] = h.fragment;
    r[2] = h.count;
    r[3] = h.len;
    r[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    r
}

/// Whether `t` is a valid `PING` token (as in the serial protocol).
fn is_token(t: &[u8]) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOKEN
        && t.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// The payload of a command (opcode and arguments).
#[must_use]
pub fn command_payload(cmd: &Command) -> Vec<u8> {
    let mut p = Vec::with_capacity(PAYLOAD_MAX);
    match cmd {
        Command::Info => p.push(opcode::INFO),
        Command::Press => p.push(opcode::PRESS),
        Command::Display => p.push(opcode::DISPLAY),
        Command::Ping(t) => {
            p.push(opcode::PING);
            if let Some(t) = t {
                p.extend(t.bytes().take(MAX_TOKEN));
            }
        }
        Command::Help => p.push(opcode::HELP),
        Command::Clock => p.push(opcode::CLOCK),
        Command::Drift(d) => {
            p.push(opcode::DRIFT);
            let flags = u8::from(d.offset_ms.is_some())
                | u8::from(d.ppm.is_some()) << 1
                | u8::from(d.jitter_ms.is_some()) << 2;
            p.push(flags);
            if let Some(o) = d.offset_ms {
                p.extend(o.to_be_bytes());
            }
            if let Some(ppm) = d.ppm {
                p.extend(ppm.to_be_bytes());
            }
            if let Some(j) = d.jitter_ms {
                p.extend(j.to_be_bytes());
            }
        }
        Command::Battery(op) => {
            p.push(opcode::BATTERY);
            p.push(match op {
                BatteryOp::Get => 0,
                BatteryOp::Drain => 1,
                BatteryOp::Swap => 2,
            });
        }
        Command::RtcReset => p.push(opcode::RTC_RESET),
    }
    p
}

/// The output report carrying `cmd` with sequence number `seq`.
#[must_use]
pub fn encode_command(seq: u8, cmd: &Command) -> [u8; REPORT_LEN] {
    let p = command_payload(cmd);
    let len = p.len().min(PAYLOAD_MAX);
    report(
        Header {
            seq,
            fragment: 0,
            count: 1,
            // `len` is at most PAYLOAD_MAX (60).
            len: u8::try_from(len).unwrap_or(0),
        },
        &p[..len],
    )
}

/// Parse a command payload (opcode and arguments).
///
/// # Errors
/// A [`ProtocolError`] with the serial protocol's codes:
/// [`ErrorCode::UnknownCommand`] for an empty payload or unknown opcode,
/// [`ErrorCode::BadArgument`] for bad arguments.
pub fn parse_command_payload(p: &[u8]) -> Result<Command, ProtocolError> {
    let Some((&op, args)) = p.split_first() else {
        return Err(ProtocolError::new(
            ErrorCode::UnknownCommand,
            "empty command",
        ));
    };
    let bad = |m: &str| ProtocolError::new(ErrorCode::BadArgument, m);
    let no_args = |name: &str, cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(bad(&format!("{name} takes no arguments")))
        }
    };
    match op {
        opcode::INFO => no_args("INFO", Command::Info),
        opcode::PRESS => no_args("PRESS", Command::Press),
        opcode::DISPLAY => no_args("DISPLAY", Command::Display),
        opcode::HELP => no_args("HELP", Command::Help),
        opcode::CLOCK => no_args("CLOCK", Command::Clock),
        opcode::RTC_RESET => no_args("RTC RESET", Command::RtcReset),
        opcode::PING if args.is_empty() => Ok(Command::Ping(None)),
        opcode::PING if is_token(args) => Ok(Command::Ping(Some(
            args.iter().map(|&b| char::from(b)).collect(),
        ))),
        opcode::PING => Err(bad("usage: PING [token of 1-32 letters, digits, - or _]")),
        opcode::BATTERY => match args {
            [0] => Ok(Command::Battery(BatteryOp::Get)),
            [1] => Ok(Command::Battery(BatteryOp::Drain)),
            [2] => Ok(Command::Battery(BatteryOp::Swap)),
            _ => Err(bad("usage: BATTERY op (0 read, 1 drain, 2 swap)")),
        },
        opcode::DRIFT => parse_drift(args).map(Command::Drift),
        _ => Err(ProtocolError::new(
            ErrorCode::UnknownCommand,
            format!("unknown opcode 0x{op:02x}"),
        )),
    }
}

fn parse_drift(args: &[u8]) -> Result<DriftChange, ProtocolError> {
    let bad = |m: &str| ProtocolError::new(ErrorCode::BadArgument, m);
    let usage = "usage: DRIFT flags [offset i64] [ppm f64] [jitter u32]";
    let Some((&flags, mut rest)) = args.split_first() else {
        return Err(bad(usage));
    };
    if flags & !0b111 != 0 {
        return Err(bad("unknown DRIFT flags"));
    }
    let mut take = |n: usize| -> Result<&[u8], ProtocolError> {
        if rest.len() < n {
            return Err(bad(usage));
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a)
    };
    let mut d = DriftChange::default();
    if flags & 1 != 0 {
        let b: [u8; 8] = take(8)?.try_into().map_err(|_| bad(usage))?;
        d.offset_ms = Some(i64::from_be_bytes(b));
    }
    if flags & 2 != 0 {
        let b: [u8; 8] = take(8)?.try_into().map_err(|_| bad(usage))?;
        let ppm = f64::from_be_bytes(b);
        if !ppm.is_finite() {
            return Err(bad("bad ppm"));
        }
        d.ppm = Some(ppm);
    }
    if flags & 4 != 0 {
        let b: [u8; 4] = take(4)?.try_into().map_err(|_| bad(usage))?;
        d.jitter_ms = Some(u32::from_be_bytes(b));
    }
    if !rest.is_empty() {
        return Err(bad(usage));
    }
    Ok(d)
}

/// Parse an output report holding a command. Returns the sequence number
/// (0 if the report is too short to hold one) with the command or the
/// error to answer.
///
/// # Errors
/// [`ErrorCode::BadLine`] (400) for a malformed frame,
/// [`ErrorCode::LineTooLong`] (413) for a multi-fragment command, and the
/// errors of [`parse_command_payload`].
pub fn parse_command(report: &[u8]) -> (u8, Result<Command, ProtocolError>) {
    let seq = report.first().copied().unwrap_or(0);
    let result = match parse_report(report) {
        Err(e) => Err(ProtocolError::new(
            ErrorCode::BadLine,
            format!("bad frame: {e}"),
        )),
        Ok((h, _)) if h.count != 1 => Err(ProtocolError::new(
            ErrorCode::LineTooLong,
            "a command must fit one report",
        )),
        Ok((_, p)) => parse_command_payload(p),
    };
    (seq, result)
}

/// The answer message of `reply`: status and text.
#[must_use]
pub fn reply_message(reply: &Reply) -> (u16, String) {
    match reply {
        Reply::Err(e) => (e.code.as_u16(), e.message.clone()),
        ok => {
            let mut line = Vec::new();
            ok.emit(&mut line);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let text = text.strip_prefix("OK").unwrap_or(text);
            (
                STATUS_OK,
                text.strip_prefix(' ').unwrap_or(text).to_string(),
            )
        }
    }
}

/// The input reports answering command `seq` with `reply`.
#[must_use]
pub fn encode_reply(seq: u8, reply: &Reply) -> Vec<[u8; REPORT_LEN]> {
    let (status, text) = reply_message(reply);
    encode_message(seq, status, text.as_bytes())
}

/// The input reports of an answer message (text cut to fit
/// [`MAX_MESSAGE`]).
#[must_use]
pub fn encode_message(seq: u8, status: u16, text: &[u8]) -> Vec<[u8; REPORT_LEN]> {
    let mut msg = Vec::with_capacity(2 + text.len());
    msg.extend(status.to_be_bytes());
    msg.extend(&text[..text.len().min(MAX_MESSAGE - 2)]);
    let chunks: Vec<&[u8]> = msg.chunks(PAYLOAD_MAX).collect();
    // At most MAX_FRAGMENTS (18) chunks of at most 60 bytes.
    let count = u8::try_from(chunks.len()).unwrap_or(u8::MAX);
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            report(
                Header {
                    seq,
                    fragment: u8::try_from(i).unwrap_or(u8::MAX),
                    count,
                    len: u8::try_from(c.len()).unwrap_or(0),
                },
                c,
            )
        })
        .collect()
}

/// An answer as the host reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 0 for OK, else the error code.
    pub status: u16,
    /// The text.
    pub text: String,
}

/// Why input reports do not make an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// A report is not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A fragment came out of order or with another count.
    #[error("fragment {fragment} of {count} out of order")]
    Order {
        /// Fragment number.
        fragment: u8,
        /// Fragment count.
        count: u8,
    },
    /// The message is shorter than its status.
    #[error("answer without status")]
    Short,
}

/// Collects the fragments of one answer (host side).
#[derive(Debug, Clone)]
pub struct AnswerAssembler {
    seq: u8,
    count: u8,
    next: u8,
    buf: Vec<u8>,
}

impl AnswerAssembler {
    /// Wait for the answer to command `seq`.
    #[must_use]
    pub fn new(seq: u8) -> Self {
        AnswerAssembler {
            seq,
            count: 0,
            next: 0,
            buf: Vec::new(),
        }
    }

    /// Feed one input report. Reports of another sequence number are
    /// ignored (`Ok(None)`); `Ok(Some(answer))` once complete.
    ///
    /// # Errors
    /// [`AnswerError`] for broken frames or fragments out of order.
    pub fn feed(&mut self, report: &[u8]) -> Result<Option<Answer>, AnswerError> {
        let (h, p) = parse_report(report)?;
        if h.seq != self.seq {
            return Ok(None);
        }
        if h.fragment != self.next || (self.next > 0 && h.count != self.count) {
            return Err(AnswerError::Order {
                fragment: h.fragment,
                count: h.count,
            });
        }
        self.count = h.count;
        self.next += 1;
        self.buf.extend_from_slice(p);
        if self.next < self.count {
            return Ok(None);
        }
        if self.buf.len() < 2 {
            return Err(AnswerError::Short);
        }
        Ok(Some(Answer {
            status: u16::from_be_bytes([self.buf[0], self.buf[1]]),
            text: String::from_utf8_lossy(&self.buf[2..]).into_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use fobsim_core::Code;
    use fobsim_firmware::{Battery, Display, Drift};

    use super::*;

    fn hex(r: &[u8]) -> String {
        let end = r.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let body: Vec<String> = r[..end].iter().map(|b| format!("{b:02x}")).collect();
        format!("{} (+{} zero)", body.join(" "), r.len() - end)
    }

    fn all_commands() -> Vec<Command> {
        vec![
            Command::Info,
            Command::Press,
            Command::Display,
            Command::Ping(None),
            Command::Ping(Some("tok-1_A".into())),
            Command::Help,
            Command::Clock,
            Command::Drift(DriftChange::default()),
            Command::Drift(DriftChange {
                offset_ms: Some(-47_000),
                ppm: Some(20.5),
                jitter_ms: Some(1000),
            }),
            Command::Drift(DriftChange {
                offset_ms: None,
                ppm: Some(-4.75),
                jitter_ms: None,
            }),
            Command::Battery(BatteryOp::Get),
            Command::Battery(BatteryOp::Drain),
            Command::Battery(BatteryOp::Swap),
            Command::RtcReset,
        ]
    }

    #[test]
    fn snapshot_commands() {
        let mut s = String::new();
        for (i, c) in all_commands().iter().enumerate() {
            let r = encode_command(u8::try_from(i).unwrap() + 1, c);
            s.push_str(&format!("{}\n  {}\n", c.to_line(), hex(&r)));
        }
        insta::assert_snapshot!(s);
    }

    #[test]
    fn commands_round_trip() {
        for (i, c) in all_commands().into_iter().enumerate() {
            let seq = u8::try_from(i).unwrap();
            let r = encode_command(seq, &c);
            assert_eq!(parse_command(&r), (seq, Ok(c.clone())));
            // Unpadded writes work too.
            let len = HEADER_LEN + usize::from(r[3]);
            assert_eq!(parse_command(&r[..len]), (seq, Ok(c)));
        }
    }

    #[test]
    fn bad_commands_get_serial_error_codes() {
        let frame = |payload: &[u8]| {
            let mut r = vec![9, 0, 1, u8::try_from(payload.len()).unwrap()];
            r.extend(payload);
            r
        };
        let code = |r: &[u8]| parse_command(r).1.unwrap_err().code.as_u16();
        assert_eq!(code(&frame(&[])), 404);
        assert_eq!(code(&frame(&[0x7f])), 404);
        assert_eq!(code(&frame(&[opcode::PRESS, 1])), 422);
        assert_eq!(code(&frame(&[opcode::PING, b'a', b'.'])), 422);
        assert_eq!(code(&frame(&[opcode::PING; 34])), 422);
        assert_eq!(code(&frame(&[opcode::BATTERY, 3])), 422);
        assert_eq!(code(&frame(&[opcode::BATTERY])), 422);
        assert_eq!(code(&frame(&[opcode::DRIFT])), 422);
        assert_eq!(code(&frame(&[opcode::DRIFT, 8])), 422);
        assert_eq!(code(&frame(&[opcode::DRIFT, 4, 0, 0, 0])), 422);
        assert_eq!(code(&frame(&[opcode::DRIFT, 0, 0])), 422);
        let mut nan = vec![opcode::DRIFT, 2];
        nan.extend(f64::NAN.to_be_bytes());
        assert_eq!(code(&frame(&nan)), 422);
        assert_eq!(code(&[9, 0, 1, 61]), 400);
        assert_eq!(code(&[9, 0, 1, 5, 1]), 400);
        assert_eq!(code(&[9, 0, 0, 0]), 400);
        assert_eq!(code(&[9, 2, 2, 0]), 400);
        assert_eq!(code(&[9, 0, 2, 1, 1]), 413);
        assert_eq!(code(&[]), 400);
        assert_eq!(code(&[0; 65]), 400);
        assert_eq!(parse_command(&[7]).0, 7);
    }

    #[test]
    fn snapshot_replies() {
        let code = Code::parse("287082", 6).unwrap();
        let replies = [
            Reply::Display(Display::Code(code)),
            Reply::Display(Display::Blank),
            Reply::Pong(Some("tok".into())),
            Reply::Battery(Battery::Dead),
            Reply::Drift(Drift {
                offset_ms: 47_000,
                ppm: 20.0,
                jitter_ms: 0,
            }),
            Reply::Err(ProtocolError::new(ErrorCode::TestModeOnly, "x".repeat(70))),
            Reply::Help { test_mode: true },
        ];
        let mut s = String::new();
        for (i, r) in replies.iter().enumerate() {
            let seq = u8::try_from(i).unwrap() + 0x40;
            let reports = encode_reply(seq, r);
            let (status, text) = reply_message(r);
            s.push_str(&format!("{status} {text:?}\n"));
            let mut asm = AnswerAssembler::new(seq);
            let mut got = None;
            for rep in &reports {
                s.push_str(&format!("  {}\n", hex(rep)));
                assert_eq!(AnswerAssembler::new(seq ^ 1).feed(rep), Ok(None));
                got = asm.feed(rep).unwrap();
            }
            assert_eq!(got, Some(Answer { status, text }));
        }
        insta::assert_snapshot!(s);
    }

    #[test]
    fn long_answers_are_bounded_and_fragments_checked() {
        let reports = encode_message(1, 0, &[b'a'; 5000]);
        assert_eq!(reports.len(), MAX_FRAGMENTS);
        let mut asm = AnswerAssembler::new(1);
        assert!(matches!(
            asm.feed(&reports[1]),
            Err(AnswerError::Order { fragment: 1, .. })
        ));
        let mut asm = AnswerAssembler::new(1);
        let mut last = None;
        for r in &reports {
            last = asm.feed(r).unwrap();
        }
        assert_eq!(last.unwrap().text.len(), MAX_MESSAGE - 2);
        assert_eq!(
            AnswerAssembler::new(3).feed(&[3, 0, 1, 1, 0]),
            Err(AnswerError::Short)
        );
    }
}
