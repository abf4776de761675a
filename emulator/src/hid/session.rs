//! One HID device's state, sans-IO: output reports (commands) go in,
//! input reports (answers, and key strokes on the optional keyboard) come
//! out. Who runs a command is the caller's business (`exec`), as in
//! [`crate::serial::session`].

use std::collections::VecDeque;

use fobsim_firmware::Display;

use super::frame::{encode_reply, parse_command};
use super::keyboard::{KeyReport, type_code};
use super::{HidOptions, REPORT_LEN};
use crate::command::{Command, Reply};

/// Most input reports held for a host that does not read them (older ones
/// are dropped first).
pub const MAX_PENDING: usize = 256;

/// A vendor input report.
pub type Report = [u8; REPORT_LEN];

/// The state of one HID device: input reports not yet delivered.
#[derive(Debug, Clone, Default)]
pub struct HidSession {
    options: HidOptions,
    pending: VecDeque<Report>,
    keys: VecDeque<KeyReport>,
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() == MAX_PENDING {
        q.pop_front();
    }
    q.push_back(item);
}

impl HidSession {
    /// A fresh device.
    #[must_use]
    pub fn new(options: HidOptions) -> Self {
        HidSession {
            options,
            pending: VecDeque::new(),
            keys: VecDeque::new(),
        }
    }

    /// The options it was made with.
    #[must_use]
    pub fn options(&self) -> HidOptions {
        self.options
    }

    /// An output report from the host: run the command it carries with
    /// `exec` and queue the answer's input reports (and, with the keyboard
    /// on, the key strokes of a pressed code). Malformed reports are
    /// answered with an error, never ignored silently.
    pub fn output(&mut self, report: &[u8], exec: &mut dyn FnMut(&Command) -> Reply) {
        let (seq, parsed) = parse_command(report);
        let reply = match parsed {
            Ok(cmd) => {
                let reply = exec(&cmd);
                if self.options.keyboard
                    && cmd == Command::Press
                    && let Reply::Display(Display::Code(code)) = &reply
                {
                    for k in type_code(&code.to_string()) {
                        push_bounded(&mut self.keys, k);
                    }
                }
                reply
            }
            Err(e) => Reply::Err(e),
        };
        for r in encode_reply(seq, &reply) {
            push_bounded(&mut self.pending, r);
        }
    }

    /// The next vendor input report, if any.
    pub fn next_input(&mut self) -> Option<Report> {
        self.pending.pop_front()
    }

    /// The next keyboard input report, if any.
    pub fn next_key(&mut self) -> Option<KeyReport> {
        self.keys.pop_front()
    }

    /// Vendor input reports waiting.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Answer to a host's GET_REPORT of the input or feature report: the
    /// next pending input report, or an all-zero report when none waits.
    pub fn get_report(&mut self) -> Report {
        self.next_input().unwrap_or([0; REPORT_LEN])
    }
}

#[cfg(test)]
mod tests {
    use fobsim_core::Timestamp;
    use fobsim_firmware::{Fob, FobSpec, preset};

    use super::*;
    use crate::command::execute;
    use crate::hid::frame::{AnswerAssembler, encode_command};

    #[test]
    fn press_answers_the_code_and_types_it_on_the_keyboard() {
        let now = Timestamp::from_secs(1_111_111_109);
        let m = preset("gaht").unwrap();
        let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 1, now).unwrap()).unwrap();
        let expected = fob.clone().press(now).code().unwrap().to_string();
        let mut s = HidSession::new(HidOptions { keyboard: true });
        s.output(&encode_command(5, &Command::Press), &mut |c| {
            execute(c, &mut fob, now, false)
        });
        let mut asm = AnswerAssembler::new(5);
        let answer = asm.feed(&s.next_input().unwrap()).unwrap().unwrap();
        assert_eq!((answer.status, answer.text), (0, expected.clone()));
        assert_eq!(s.next_input(), None);
        let keys: Vec<_> = std::iter::from_fn(|| s.next_key()).collect();
        assert_eq!(keys, type_code(&expected));
        // Without the keyboard, no key strokes.
        let mut s = HidSession::new(HidOptions::default());
        s.output(&encode_command(6, &Command::Press), &mut |c| {
            execute(c, &mut fob, now, false)
        });
        assert_eq!(s.next_key(), None);
        assert_eq!(s.get_report()[0], 6);
        assert_eq!(s.get_report(), [0; REPORT_LEN]);
    }

    #[test]
    fn garbage_is_answered_and_the_queue_is_bounded() {
        let mut s = HidSession::new(HidOptions::default());
        for _ in 0..MAX_PENDING + 10 {
            s.output(&[1, 2, 3], &mut |_| unreachable!("not a command"));
        }
        assert_eq!(s.pending(), MAX_PENDING);
        let r = s.next_input().unwrap();
        assert_eq!(&r[4..6], &[1, 144]); // status 400
    }
}
