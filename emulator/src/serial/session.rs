//! One client session on a serial port: framing + commands, without IO.
//!
//! Bytes go in with [`Session::feed`]; reply bytes come out in a vector.
//! Who runs a command (and with which fob and time) is the caller's
//! business: the `exec` closure.

use super::line::{Frame, LineDecoder, MAX_LINE};
use crate::command::{Command, ErrorCode, ProtocolError, Reply};

/// The state of one conversation: just the unfinished line.
#[derive(Debug, Clone, Default)]
pub struct Session {
    decoder: LineDecoder,
}

/// Our own replies coming back: a client that left ECHO on its tty bounces
/// every reply back to us, and answering them would ping-pong forever. With
/// ECHOCTL (the default alongside ECHO) the echo's CR LF comes back as the
/// four characters `^M^J`, so the echo and the client's next command arrive
/// as one line: `OK 123456^M^JPRESS`. Echoed replies are skipped up to each
/// `^J`; what follows (a command never holds `^`) is the client's line.
/// Returns the rest to run, `None` if nothing is left.
fn strip_echoed_replies(mut line: &str) -> Option<&str> {
    loop {
        let first = line.split([' ', '\t']).next().unwrap_or("");
        if first != "OK"
            && first != "ERR"
            && !first.starts_with("OK^")
            && !first.starts_with("ERR^")
        {
            return (!line.trim().is_empty()).then_some(line);
        }
        line = &line[line.find("^J")? + 2..];
    }
}

impl Session {
    /// A fresh session.
    #[must_use]
    pub fn new() -> Self {
        Session {
            decoder: LineDecoder::new(),
        }
    }

    /// Feed bytes from the client. Every complete line is answered with
    /// exactly one reply line appended to `out`, except empty lines and
    /// lines starting with `OK`/`ERR` (echoed replies), which are ignored.
    /// Parsed commands are run by `exec`.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        exec: &mut dyn FnMut(&Command) -> Reply,
    ) {
        self.decoder.decode(input, |frame| {
            let reply = match frame {
                Frame::Line(line) => match strip_echoed_replies(line) {
                    None => return,
                    Some(line) => match Command::parse(line) {
                        Ok(cmd) => exec(&cmd),
                        Err(e) => Reply::Err(e),
                    },
                },
                Frame::BadByte(b) => Reply::Err(ProtocolError::new(
                    ErrorCode::BadLine,
                    format!("line holds byte 0x{b:02x}: only printable ASCII is allowed"),
                )),
                Frame::TooLong => Reply::Err(ProtocolError::new(
                    ErrorCode::LineTooLong,
                    format!("line longer than {MAX_LINE} bytes: discarded up to the next newline"),
                )),
            };
            reply.emit(out);
        });
    }

    /// The client went away: forget its unfinished line.
    pub fn reset(&mut self) {
        self.decoder.reset();
    }

    /// Bytes of an unfinished line held.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.decoder.pending()
    }
}

#[cfg(test)]
mod tests {
    use fobsim_core::Timestamp;
    use fobsim_firmware::{Fob, FobSpec, preset};

    use super::*;
    use crate::command::execute;

    /// Feed each chunk, record input and output bytes exactly (escaped).
    fn transcript(test_mode: bool, chunks: &[&[u8]]) -> String {
        let now = Timestamp::from_secs(1_111_111_109);
        let m = preset("gaht").unwrap();
        let mut fob =
            Fob::new(FobSpec::seeded(m, m.serial(12_345_678).unwrap(), 1, now).unwrap()).unwrap();
        let mut session = Session::new();
        let mut text = String::new();
        for chunk in chunks {
            let mut out = Vec::new();
            session.feed(chunk, &mut out, &mut |cmd| {
                execute(cmd, &mut fob, now, test_mode)
            });
            text.push_str(&format!(
                "> {}\n< {}\n",
                chunk.escape_ascii(),
                out.escape_ascii()
            ));
        }
        text
    }

    #[test]
    fn snapshot_normal_mode() {
        insta::assert_snapshot!(transcript(
            false,
            &[
                b"INFO\r\n",
                b"DISPLAY\n",
                b"PRESS\r",
                b"\n",
                b"display\r\n",
                b"PING\r\nPING tok-1\r\nHELP\r\n",
                b"\r\n\r\n\n",
                b"CLOCK\r\nDRIFT offset=1s\r\nBATTERY DRAIN\r\nRTC RESET\r\n",
                b"SECRET\r\nPRESS now\r\nPING a/b\r\n",
                b"PR\x00ESS\r\n\xc3\xa9\r\n",
                b"OK 123456\r\nERR 404 echo\r\n",
                b"OK 266136^M^JOK PONG x^M^JPING y\r\n",
                b"ERR 404 unknown command X^M^J\r\nOK^M^JOK BLANK\r\n",
            ],
        ));
    }

    #[test]
    fn snapshot_test_mode() {
        insta::assert_snapshot!(transcript(
            true,
            &[
                b"INFO\r\nHELP\r\n",
                b"CLOCK\r\n",
                b"DRIFT\r\n",
                b"DRIFT offset=+47s ppm=20 jitter=0\r\n",
                b"DRIFT ppm=-4.75\r\n",
                b"DRIFT ppm=1e9\r\n",
                b"PRESS\r\n",
                b"BATTERY\r\nBATTERY DRAIN\r\nPRESS\r\nCLOCK\r\n",
                b"BATTERY SWAP\r\nCLOCK\r\nPRESS\r\n",
                b"RTC RESET\r\nRTC\r\nBATTERY EAT\r\n",
            ],
        ));
    }

    #[test]
    fn snapshot_overlong_line() {
        let long = [b'Z'; MAX_LINE + 1];
        insta::assert_snapshot!(transcript(
            false,
            &[
                &long[..MAX_LINE],
                &long[MAX_LINE..],
                b"more junk",
                b"\r\nPING\r\n"
            ],
        ));
    }
}
