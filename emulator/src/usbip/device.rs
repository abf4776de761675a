//! A fob as a USB device, sans-IO: URBs in, completions out.
//!
//! - Control transfers on endpoint 0: standard GET_DESCRIPTOR (device,
//!   configuration, string; report and HID descriptors per interface),
//!   SET/GET_CONFIGURATION, GET_STATUS, SET/GET_INTERFACE, CLEAR_FEATURE,
//!   SET_ADDRESS, and the HID class requests SET_IDLE/GET_IDLE,
//!   SET_PROTOCOL/GET_PROTOCOL, GET_REPORT/SET_REPORT. Anything else
//!   STALLs (`-EPIPE`).
//! - Interrupt OUT (endpoint 1) carries commands; interrupt IN (endpoint 1,
//!   and 2 for the keyboard) URBs without data stay pending until data
//!   arrives or they are unlinked (`RET_UNLINK` with `-ECONNRESET`, and no
//!   `RET_SUBMIT` for that URB).

use std::collections::VecDeque;

use crate::command::{Command, Reply};
use crate::hid::session::HidSession;
use crate::hid::{HidOptions, REPORT_LEN};

use super::descriptors::{
    DT_CONFIG, DT_DEVICE, DT_HID, DT_REPORT, DT_STRING, Descriptors, EP_KEYBOARD_IN, EP_VENDOR_IN,
    EP_VENDOR_OUT,
};
use super::pdu::{Direction, Ret, RetSubmit, RetUnlink, Submit, Unlink};

/// `-EPIPE`: the endpoint stalled.
pub const EPIPE: i32 = -32;
/// `-ECONNRESET`: the URB was unlinked.
pub const ECONNRESET: i32 = -104;
/// Most IN URBs held pending per device; more are refused with `-EPIPE`.
pub const MAX_PENDING_URBS: usize = 64;

const KEYBOARD_EP: u32 = (EP_KEYBOARD_IN & 0x0f) as u32;
const VENDOR_EP: u32 = (EP_VENDOR_IN & 0x0f) as u32;
const VENDOR_OUT_EP: u32 = EP_VENDOR_OUT as u32;

/// A pending IN URB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingIn {
    seqnum: u32,
    ep: u32,
    length: u32,
}

/// The device state behind one import.
#[derive(Debug, Clone)]
pub struct UsbFob {
    desc: Descriptors,
    session: HidSession,
    configuration: u8,
    idle: [u8; 2],
    protocol: [u8; 2],
    pending: VecDeque<PendingIn>,
}

/// A parsed setup packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// `bmRequestType`
    pub request_type: u8,
    /// `bRequest`
    pub request: u8,
    /// `wValue`
    pub value: u16,
    /// `wIndex`
    pub index: u16,
    /// `wLength`
    pub length: u16,
}

impl Setup {
    /// Read the 8 setup bytes (little-endian words).
    #[must_use]
    pub fn parse(b: [u8; 8]) -> Setup {
        Setup {
            request_type: b[0],
            request: b[1],
            value: u16::from_le_bytes([b[2], b[3]]),
            index: u16::from_le_bytes([b[4], b[5]]),
            length: u16::from_le_bytes([b[6], b[7]]),
        }
    }

    /// The 8 setup bytes.
    #[must_use]
    pub fn emit(&self) -> [u8; 8] {
        let v = self.value.to_le_bytes();
        let i = self.index.to_le_bytes();
        let l = self.length.to_le_bytes();
        [
            self.request_type,
            self.request,
            v[0],
            v[1],
            i[0],
            i[1],
            l[0],
            l[1],
        ]
    }
}

/// What a control request does.
enum Control {
    /// Data to send (IN), cut to `wLength`.
    In(Vec<u8>),
    /// Done, no data.
    Ok,
    /// STALL.
    Stall,
}

fn done(seqnum: u32, status: i32, data: Vec<u8>, actual_out: u32) -> Ret {
    let actual_length = if data.is_empty() {
        actual_out
    } else {
        u32::try_from(data.len()).unwrap_or(0)
    };
    Ret::Submit(RetSubmit {
        seqnum,
        status,
        actual_length,
        data,
    })
}

impl UsbFob {
    /// A freshly plugged device (unconfigured).
    #[must_use]
    pub fn new(desc: Descriptors, options: HidOptions) -> Self {
        UsbFob {
            desc,
            session: HidSession::new(options),
            configuration: 0,
            idle: [0; 2],
            protocol: [1; 2],
            pending: VecDeque::new(),
        }
    }

    /// The current configuration value (0: unconfigured).
    #[must_use]
    pub fn configuration(&self) -> u8 {
        self.configuration
    }

    /// IN URBs waiting for data.
    #[must_use]
    pub fn pending_urbs(&self) -> usize {
        self.pending.len()
    }

    /// Handle a `CMD_SUBMIT`; returns the completions to send now (this
    /// URB's, unless it stays pending, and any pending IN URBs that new
    /// data completes). Commands are run by `exec`.
    pub fn submit(&mut self, s: Submit, exec: &mut dyn FnMut(&Command) -> Reply) -> Vec<Ret> {
        let mut out = Vec::new();
        match (s.ep, s.direction) {
            (0, dir) => {
                let setup = Setup::parse(s.setup);
                match self.control(setup, dir, &s.data, exec) {
                    Control::In(mut data) => {
                        data.truncate(usize::from(setup.length).min(s.length as usize));
                        out.push(done(s.seqnum, 0, data, 0));
                    }
                    Control::Ok => out.push(done(s.seqnum, 0, Vec::new(), s.length)),
                    Control::Stall => out.push(done(s.seqnum, EPIPE, Vec::new(), 0)),
                }
            }
            (VENDOR_OUT_EP, Direction::Out) => {
                self.session.output(&s.data, exec);
                out.push(done(s.seqnum, 0, Vec::new(), s.length));
            }
            (VENDOR_EP, Direction::In) | (KEYBOARD_EP, Direction::In)
                if s.ep == VENDOR_EP || self.desc.keyboard =>
            {
                if self.pending.len() >= MAX_PENDING_URBS {
                    out.push(done(s.seqnum, EPIPE, Vec::new(), 0));
                } else {
                    self.pending.push_back(PendingIn {
                        seqnum: s.seqnum,
                        ep: s.ep,
                        length: s.length,
                    });
                }
            }
            _ => out.push(done(s.seqnum, EPIPE, Vec::new(), 0)),
        }
        self.complete_pending(&mut out);
        out
    }

    /// Complete pending IN URBs for which data waits, oldest first.
    fn complete_pending(&mut self, out: &mut Vec<Ret>) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            let data = if p.ep == VENDOR_EP {
                self.session.next_input().map(|r| r.to_vec())
            } else {
                self.session.next_key().map(|k| k.to_vec())
            };
            match data {
                Some(mut d) => {
                    d.truncate(p.length as usize);
                    out.push(done(p.seqnum, 0, d, 0));
                    self.pending.remove(i);
                }
                None => i += 1,
            }
        }
    }

    /// Handle a `CMD_UNLINK`: a pending URB is cancelled (`-ECONNRESET`,
    /// never completed); an unknown or completed one gets status 0.
    pub fn unlink(&mut self, u: Unlink) -> Ret {
        let status = match self
            .pending
            .iter()
            .position(|p| p.seqnum == u.unlink_seqnum)
        {
            Some(i) => {
                self.pending.remove(i);
                ECONNRESET
            }
            None => 0,
        };
        Ret::Unlink(RetUnlink {
            seqnum: u.seqnum,
            status,
        })
    }

    fn control(
        &mut self,
        s: Setup,
        dir: Direction,
        data: &[u8],
        exec: &mut dyn FnMut(&Command) -> Reply,
    ) -> Control {
        let [dtype, dindex] = s.value.to_be_bytes();
        let iface = s.index & 0xff;
        let iface_ok = self.desc.has_interface(iface);
        let slot = usize::from(iface == 1);
        match (s.request_type, s.request, dir) {
            // GET_STATUS (device, interface, endpoint)
            (0x80..=0x82, 0x00, Direction::In) => Control::In(vec![0, 0]),
            // CLEAR_FEATURE / SET_FEATURE
            (0x00..=0x02, 0x01 | 0x03, Direction::Out) => Control::Ok,
            // SET_ADDRESS (vhci handles it; accept if it comes)
            (0x00, 0x05, Direction::Out) => Control::Ok,
            // GET_DESCRIPTOR (device)
            (0x80, 0x06, Direction::In) => match dtype {
                DT_DEVICE => Control::In(self.desc.device.clone()),
                DT_CONFIG if dindex == 0 => Control::In(self.desc.configuration.clone()),
                DT_STRING => self.desc.string(dindex).map_or(Control::Stall, Control::In),
                // Device qualifier and others: a full-speed-only device STALLs.
                _ => Control::Stall,
            },
            // GET_DESCRIPTOR (interface): HID and report descriptors
            (0x81, 0x06, Direction::In) => match dtype {
                DT_HID => self.desc.hid(iface).map_or(Control::Stall, Control::In),
                DT_REPORT => self
                    .desc
                    .report(iface)
                    .map_or(Control::Stall, |r| Control::In(r.to_vec())),
                _ => Control::Stall,
            },
            // GET_CONFIGURATION
            (0x80, 0x08, Direction::In) => Control::In(vec![self.configuration]),
            // SET_CONFIGURATION
            (0x00, 0x09, Direction::Out) => match s.value {
                0 | 1 => {
                    self.configuration = u8::try_from(s.value).unwrap_or(0);
                    Control::Ok
                }
                _ => Control::Stall,
            },
            // GET_INTERFACE / SET_INTERFACE (alternate setting 0 only)
            (0x81, 0x0A, Direction::In) if iface_ok => Control::In(vec![0]),
            (0x01, 0x0B, Direction::Out) if iface_ok && s.value == 0 => Control::Ok,
            // HID class: GET_REPORT
            (0xA1, 0x01, Direction::In) if iface_ok => match (iface, dtype) {
                (0, 1 | 3) => Control::In(self.session.get_report().to_vec()),
                (1, 1) => Control::In(vec![0; 8]),
                _ => Control::Stall,
            },
            // HID class: GET_IDLE
            (0xA1, 0x02, Direction::In) if iface_ok => Control::In(vec![self.idle[slot]]),
            // HID class: GET_PROTOCOL
            (0xA1, 0x03, Direction::In) if iface_ok => Control::In(vec![self.protocol[slot]]),
            // HID class: SET_REPORT (output or feature on the vendor
            // interface carries a command; keyboard LEDs are accepted)
            (0x21, 0x09, Direction::Out) if iface_ok => match (iface, dtype) {
                (0, 2 | 3) if data.len() <= REPORT_LEN => {
                    self.session.output(data, exec);
                    Control::Ok
                }
                (1, 2) => Control::Ok,
                _ => Control::Stall,
            },
            // HID class: SET_IDLE
            (0x21, 0x0A, Direction::Out) if iface_ok => {
                self.idle[slot] = dtype;
                Control::Ok
            }
            // HID class: SET_PROTOCOL (boot or report)
            (0x21, 0x0B, Direction::Out) if iface_ok && s.value <= 1 => {
                self.protocol[slot] = u8::try_from(s.value).unwrap_or(1);
                Control::Ok
            }
            _ => Control::Stall,
        }
    }
}

#[cfg(test)]
mod tests {
    use fobsim_core::Timestamp;
    use fobsim_firmware::{Fob, FobSpec, preset};

    use super::*;
    use crate::command::execute;
    use crate::hid::frame::{AnswerAssembler, encode_command};

    fn control(seqnum: u32, dir: Direction, setup: Setup, data: Vec<u8>) -> Submit {
        Submit {
            seqnum,
            devid: 0x10002,
            direction: dir,
            ep: 0,
            transfer_flags: 0,
            length: if dir == Direction::In {
                u32::from(setup.length)
            } else {
                u32::try_from(data.len()).unwrap()
            },
            start_frame: 0,
            number_of_packets: 0,
            interval: 0,
            setup: setup.emit(),
            data,
        }
    }

    fn interrupt(seqnum: u32, dir: Direction, ep: u32, data: Vec<u8>) -> Submit {
        Submit {
            seqnum,
            devid: 0x10002,
            direction: dir,
            ep,
            transfer_flags: 0,
            length: if dir == Direction::In {
                64
            } else {
                u32::try_from(data.len()).unwrap()
            },
            start_frame: 0,
            number_of_packets: 0,
            interval: 1,
            setup: [0; 8],
            data,
        }
    }

    fn setup(request_type: u8, request: u8, value: u16, index: u16, length: u16) -> Setup {
        Setup {
            request_type,
            request,
            value,
            index,
            length,
        }
    }

    fn status_and_data(r: &Ret) -> (u32, i32, Vec<u8>) {
        match r {
            Ret::Submit(s) => (s.seqnum, s.status, s.data.clone()),
            Ret::Unlink(u) => (u.seqnum, u.status, vec![]),
        }
    }

    #[test]
    fn snapshot_control_transfers() {
        let now = Timestamp::from_secs(1_111_111_109);
        let m = preset("gaht").unwrap();
        let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 1, now).unwrap()).unwrap();
        let mut exec = |c: &Command| execute(c, &mut fob, now, false);
        let mut dev = UsbFob::new(
            Descriptors::new("GAHT00000001", "fobsim gaht token", true),
            HidOptions { keyboard: true },
        );
        let reqs = [
            (
                "GET_DESCRIPTOR device",
                Direction::In,
                setup(0x80, 6, 0x0100, 0, 64),
            ),
            (
                "GET_DESCRIPTOR device (8)",
                Direction::In,
                setup(0x80, 6, 0x0100, 0, 8),
            ),
            (
                "GET_DESCRIPTOR config (9)",
                Direction::In,
                setup(0x80, 6, 0x0200, 0, 9),
            ),
            (
                "GET_DESCRIPTOR config",
                Direction::In,
                setup(0x80, 6, 0x0200, 0, 255),
            ),
            (
                "GET_DESCRIPTOR string 0",
                Direction::In,
                setup(0x80, 6, 0x0300, 0, 255),
            ),
            (
                "GET_DESCRIPTOR string 3",
                Direction::In,
                setup(0x80, 6, 0x0303, 0x0409, 255),
            ),
            (
                "GET_DESCRIPTOR string 9",
                Direction::In,
                setup(0x80, 6, 0x0309, 0x0409, 255),
            ),
            (
                "GET_DESCRIPTOR qualifier",
                Direction::In,
                setup(0x80, 6, 0x0600, 0, 10),
            ),
            (
                "SET_CONFIGURATION 1",
                Direction::Out,
                setup(0x00, 9, 1, 0, 0),
            ),
            (
                "SET_CONFIGURATION 7",
                Direction::Out,
                setup(0x00, 9, 7, 0, 0),
            ),
            ("GET_CONFIGURATION", Direction::In, setup(0x80, 8, 0, 0, 1)),
            ("GET_STATUS", Direction::In, setup(0x80, 0, 0, 0, 2)),
            ("SET_IDLE 0", Direction::Out, setup(0x21, 0x0A, 0, 0, 0)),
            ("GET_IDLE 0", Direction::In, setup(0xA1, 0x02, 0, 0, 1)),
            (
                "GET_DESCRIPTOR report 0",
                Direction::In,
                setup(0x81, 6, 0x2200, 0, 255),
            ),
            (
                "GET_DESCRIPTOR report 1",
                Direction::In,
                setup(0x81, 6, 0x2200, 1, 255),
            ),
            (
                "GET_DESCRIPTOR report 2",
                Direction::In,
                setup(0x81, 6, 0x2200, 2, 255),
            ),
            (
                "GET_DESCRIPTOR hid 0",
                Direction::In,
                setup(0x81, 6, 0x2100, 0, 9),
            ),
            (
                "SET_PROTOCOL boot 1",
                Direction::Out,
                setup(0x21, 0x0B, 0, 1, 0),
            ),
            ("GET_PROTOCOL 1", Direction::In, setup(0xA1, 0x03, 0, 1, 1)),
            (
                "GET_REPORT input 0 (nothing)",
                Direction::In,
                setup(0xA1, 0x01, 0x0100, 0, 64),
            ),
            (
                "GET_REPORT output 0",
                Direction::In,
                setup(0xA1, 0x01, 0x0200, 0, 64),
            ),
            ("vendor request", Direction::In, setup(0xC0, 0x42, 0, 0, 4)),
            (
                "SET_INTERFACE alt 1",
                Direction::Out,
                setup(0x01, 0x0B, 1, 0, 0),
            ),
        ];
        let mut s = String::new();
        for (i, (name, dir, st)) in reqs.into_iter().enumerate() {
            let rets = dev.submit(
                control(u32::try_from(i).unwrap(), dir, st, vec![]),
                &mut exec,
            );
            assert_eq!(rets.len(), 1);
            let b = rets[0].emit();
            s.push_str(&format!("{name}: {}\n", crate::usbip::pdu::tests::dump(&b)));
        }
        assert_eq!(dev.configuration(), 1);
        insta::assert_snapshot!(s);
    }

    #[test]
    fn interrupt_in_waits_for_data_and_unlink_cancels() {
        let now = Timestamp::from_secs(1_111_111_109);
        let m = preset("gaht").unwrap();
        let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 1, now).unwrap()).unwrap();
        let code = fob.clone().press(now).code().unwrap().to_string();
        let mut exec = |c: &Command| execute(c, &mut fob, now, false);
        let mut dev = UsbFob::new(
            Descriptors::new("GAHT00000001", "p", false),
            HidOptions::default(),
        );
        // Two IN URBs wait.
        assert!(
            dev.submit(interrupt(1, Direction::In, 1, vec![]), &mut exec)
                .is_empty()
        );
        assert!(
            dev.submit(interrupt(2, Direction::In, 1, vec![]), &mut exec)
                .is_empty()
        );
        assert_eq!(dev.pending_urbs(), 2);
        // Unlinking URB 1 cancels it; unlinking it again finds nothing.
        let unlink = |seqnum, unlink_seqnum| Unlink {
            seqnum,
            devid: 0,
            direction: Direction::Out,
            ep: 0,
            unlink_seqnum,
        };
        assert_eq!(
            status_and_data(&dev.unlink(unlink(3, 1))),
            (3, ECONNRESET, vec![])
        );
        assert_eq!(status_and_data(&dev.unlink(unlink(4, 1))), (4, 0, vec![]));
        // A press over interrupt OUT completes the OUT URB and URB 2 with the answer.
        let out = dev.submit(
            interrupt(
                5,
                Direction::Out,
                1,
                encode_command(0x33, &Command::Press).to_vec(),
            ),
            &mut exec,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(status_and_data(&out[0]), (5, 0, vec![]));
        let (seq, status, data) = status_and_data(&out[1]);
        assert_eq!((seq, status, data.len()), (2, 0, 64));
        let answer = AnswerAssembler::new(0x33).feed(&data).unwrap().unwrap();
        assert_eq!((answer.status, answer.text), (0, code));
        // Data waiting completes the next IN URB at once.
        dev.submit(
            interrupt(
                6,
                Direction::Out,
                1,
                encode_command(1, &Command::Info).to_vec(),
            ),
            &mut exec,
        );
        let out = dev.submit(interrupt(7, Direction::In, 1, vec![]), &mut exec);
        assert_eq!(status_and_data(&out[0]).0, 7);
        // Endpoints that do not exist STALL; no keyboard endpoint without the keyboard.
        for (ep, dir) in [(2, Direction::In), (1, Direction::Out), (5, Direction::Out)] {
            let data = if dir == Direction::Out && ep == 1 {
                vec![]
            } else {
                vec![0]
            };
            let out = dev.submit(interrupt(8, dir, ep, data), &mut exec);
            if ep == 1 {
                continue; // an empty OUT report is a (bad) command: answered, not stalled
            }
            assert_eq!(status_and_data(&out[0]).1, EPIPE, "ep {ep}");
        }
        // Pending URBs are bounded.
        let mut dev = UsbFob::new(Descriptors::new("S", "p", false), HidOptions::default());
        for i in 0..MAX_PENDING_URBS {
            assert!(
                dev.submit(
                    interrupt(u32::try_from(i).unwrap(), Direction::In, 1, vec![]),
                    &mut exec
                )
                .is_empty()
            );
        }
        let out = dev.submit(interrupt(999, Direction::In, 1, vec![]), &mut exec);
        assert_eq!(status_and_data(&out[0]), (999, EPIPE, vec![]));
    }

    #[test]
    fn keyboard_types_the_code_on_its_endpoint() {
        let now = Timestamp::from_secs(1_111_111_109);
        let m = preset("gaht").unwrap();
        let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 1, now).unwrap()).unwrap();
        let code = fob.clone().press(now).code().unwrap().to_string();
        let mut exec = |c: &Command| execute(c, &mut fob, now, false);
        let mut dev = UsbFob::new(
            Descriptors::new("S", "p", true),
            HidOptions { keyboard: true },
        );
        dev.submit(
            interrupt(
                1,
                Direction::Out,
                1,
                encode_command(1, &Command::Press).to_vec(),
            ),
            &mut exec,
        );
        let mut keys = Vec::new();
        for i in 0..100 {
            let out = dev.submit(interrupt(10 + i, Direction::In, 2, vec![]), &mut exec);
            match out.first() {
                Some(r) => keys.push(status_and_data(r).2),
                None => break,
            }
        }
        let want: Vec<Vec<u8>> = crate::hid::keyboard::type_code(&code)
            .iter()
            .map(|k| k.to_vec())
            .collect();
        assert_eq!(keys, want);
    }
}
