//! Line framing: bytes in, bounded lines out. Sans-IO.
//!
//! A line ends at CR, LF or CRLF (any of CR or LF ends a line; the empty line
//! between CR and LF is dropped, so CRLF counts once). A line may hold only
//! printable ASCII and tabs; anything else (NUL, other control bytes,
//! non-ASCII) turns the whole line into [`Frame::BadByte`]. A line longer
//! than [`MAX_LINE`] bytes yields [`Frame::TooLong`] as soon as it
//! overflows, and everything up to the next terminator is discarded: memory
//! stays bounded whatever arrives.

/// Longest line accepted, terminator excluded.
pub const MAX_LINE: usize = 256;

/// What the decoder found in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete, non-empty line without its terminator: printable ASCII
    /// and tabs only.
    Line(&'a str),
    /// A line held a byte outside printable ASCII; the first such byte.
    BadByte(u8),
    /// The line grew past [`MAX_LINE`] bytes; the rest of it is dropped.
    TooLong,
}

/// Splits a byte stream into [`Frame`]s. Holds at most [`MAX_LINE`] bytes.
#[derive(Debug, Clone, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
    bad: Option<u8>,
    discarding: bool,
}

fn allowed(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b)
}

impl LineDecoder {
    /// An empty decoder.
    #[must_use]
    pub fn new() -> Self {
        LineDecoder {
            buf: Vec::with_capacity(MAX_LINE),
            bad: None,
            discarding: false,
        }
    }

    /// Feed bytes; `on_frame` is called for every frame they complete, in
    /// order. Incomplete input is kept for the next call.
    pub fn decode(&mut self, input: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        for &b in input {
            if b == b'\r' || b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                } else if let Some(bad) = self.bad {
                    on_frame(Frame::BadByte(bad));
                } else if !self.buf.is_empty() {
                    // Only allowed (ASCII) bytes are in `buf` when `bad` is None.
                    match std::str::from_utf8(&self.buf) {
                        Ok(line) => on_frame(Frame::Line(line)),
                        Err(_) => on_frame(Frame::BadByte(self.buf[0])),
                    }
                }
                self.buf.clear();
                self.bad = None;
            } else if self.discarding {
                // Dropping the rest of an overlong line.
            } else if self.buf.len() >= MAX_LINE {
                self.buf.clear();
                self.bad = None;
                self.discarding = true;
                on_frame(Frame::TooLong);
            } else {
                if self.bad.is_none() && !allowed(b) {
                    self.bad = Some(b);
                }
                self.buf.push(b);
            }
        }
    }

    /// Bytes of an unfinished line held (0 while discarding).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forget any unfinished line (the client went away).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.bad = None;
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.decode(c, |f| out.push(format!("{f:?}")));
        }
        out
    }

    #[test]
    fn terminators_cr_lf_crlf_count_once() {
        assert_eq!(
            frames(&[b"A\rB\nC\r\nD\n\r"]),
            ["Line(\"A\")", "Line(\"B\")", "Line(\"C\")", "Line(\"D\")"]
        );
        // Split anywhere, even between CR and LF.
        assert_eq!(
            frames(&[b"PR", b"ESS\r", b"\nINFO", b"\n"]),
            ["Line(\"PRESS\")", "Line(\"INFO\")"]
        );
    }

    #[test]
    fn bad_bytes_spoil_the_line_only() {
        assert_eq!(
            frames(&[b"PR\0ESS\nINFO\n\xff\xfe\nA\x1bB\n"]),
            [
                "BadByte(0)",
                "Line(\"INFO\")",
                "BadByte(255)",
                "BadByte(27)"
            ]
        );
    }

    #[test]
    fn overlong_line_is_reported_once_and_dropped() {
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        let junk = vec![b'A'; 1 << 20];
        for chunk in junk.chunks(4096) {
            d.decode(chunk, |f| out.push(format!("{f:?}")));
            assert!(d.pending() <= MAX_LINE);
        }
        d.decode(b"\nINFO\n", |f| out.push(format!("{f:?}")));
        assert_eq!(out, ["TooLong", "Line(\"INFO\")"]);
        // Exactly MAX_LINE bytes is still a line.
        let exact = vec![b'B'; MAX_LINE];
        let mut got = Vec::new();
        d.decode(&exact, |_| got.push(()));
        d.decode(b"\n", |f| {
            assert!(matches!(f, Frame::Line(l) if l.len() == MAX_LINE))
        });
        assert!(got.is_empty());
    }

    #[test]
    fn reset_forgets_a_partial_line() {
        let mut d = LineDecoder::new();
        d.decode(b"PRE", |_| panic!("no frame yet"));
        assert_eq!(d.pending(), 3);
        d.reset();
        let mut out = Vec::new();
        d.decode(b"INFO\n", |f| out.push(format!("{f:?}")));
        assert_eq!(out, ["Line(\"INFO\")"]);
    }
}
