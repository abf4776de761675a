//! One fob's uhid devices, sans-IO: events from the kernel in, events to
//! write out. Every `UHID_GET_REPORT` / `UHID_SET_REPORT` is answered with
//! a reply echoing its `id` (a reply with another id is dropped by the
//! kernel, which then times out after 5 s).

use crate::command::{Command, Reply};
use crate::hid::keyboard::KEYBOARD_REPORT_LEN;
use crate::hid::session::HidSession;
use crate::hid::{
    DEVICE_VERSION, HidOptions, KEYBOARD_REPORT_DESCRIPTOR, PRODUCT_ID, VENDOR_ID,
    VENDOR_REPORT_DESCRIPTOR, product_name,
};

use super::event::{BUS_USB, Create2, Event, ReportType};

/// `EIO`, the error of a GET/SET_REPORT on a report type we do not have.
pub const EIO: u16 = 5;

/// The `UHID_CREATE2` of a fob's vendor device: `uniq` = serial.
#[must_use]
pub fn create_vendor(serial: &str, model: &str, index: usize) -> Event {
    create(
        format!("{} {serial}", product_name(model)),
        format!("fobsim/uhid/{index}"),
        serial,
        VENDOR_REPORT_DESCRIPTOR,
    )
}

/// The `UHID_CREATE2` of a fob's boot keyboard (a second HID device: a uhid
/// device has one report descriptor).
#[must_use]
pub fn create_keyboard(serial: &str, model: &str, index: usize) -> Event {
    create(
        format!("{} {serial} keyboard", product_name(model)),
        format!("fobsim/uhid/{index}/kbd"),
        serial,
        KEYBOARD_REPORT_DESCRIPTOR,
    )
}

/// A `UHID_CREATE2` with fobsim's USB ids, `uniq` = serial.
fn create(name: String, phys: String, serial: &str, descriptor: &[u8]) -> Event {
    Event::Create2(Box::new(Create2 {
        name,
        phys,
        uniq: serial.to_string(),
        bus: BUS_USB,
        vendor: u32::from(VENDOR_ID),
        product: u32::from(PRODUCT_ID),
        version: u32::from(DEVICE_VERSION),
        country: 0,
        descriptor: descriptor.to_vec(),
    }))
}

/// The report of an `UHID_OUTPUT` or `UHID_SET_REPORT`. hidraw passes the
/// writer's buffer through uhid unchanged, and a hidraw writer puts the
/// report number first (0 for a device without numbered reports, as ours):
/// that byte is dropped.
#[must_use]
pub fn strip_report_number(data: &[u8]) -> &[u8] {
    data.get(1..).unwrap_or(&[])
}

/// The data of a `UHID_GET_REPORT_REPLY`: hidraw hands it to the reader as
/// is, and a hidraw reader expects the report number (0) first.
#[must_use]
pub fn with_report_number(report: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(report.len() + 1);
    v.push(0);
    v.extend_from_slice(report);
    v
}

/// What the kernel told us about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceState {
    /// Between `UHID_START` and `UHID_STOP`.
    pub started: bool,
    /// Between `UHID_OPEN` and `UHID_CLOSE`.
    pub opened: bool,
}

impl DeviceState {
    fn track(&mut self, ev: &Event) {
        match ev {
            Event::Start { .. } => self.started = true,
            Event::Stop => {
                self.started = false;
                self.opened = false;
            }
            Event::Open => self.opened = true,
            Event::Close => self.opened = false,
            _ => {}
        }
    }
}

/// A fob as uhid devices: the vendor device and, optionally, the keyboard.
#[derive(Debug, Clone)]
pub struct UhidFob {
    session: HidSession,
    /// The vendor device's state.
    pub vendor: DeviceState,
    /// The keyboard device's state.
    pub keyboard: DeviceState,
}

/// Events to write after handling one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    /// To the vendor device.
    pub vendor: Vec<Event>,
    /// To the keyboard device.
    pub keyboard: Vec<Event>,
}

impl UhidFob {
    /// A fresh fob.
    #[must_use]
    pub fn new(options: HidOptions) -> Self {
        UhidFob {
            session: HidSession::new(options),
            vendor: DeviceState::default(),
            keyboard: DeviceState::default(),
        }
    }

    /// Handle an event read from the vendor device; commands are run by
    /// `exec`.
    pub fn vendor_event(&mut self, ev: Event, exec: &mut dyn FnMut(&Command) -> Reply) -> Writes {
        self.vendor.track(&ev);
        let mut w = Writes::default();
        match ev {
            Event::Output { data, .. } => self.session.output(strip_report_number(&data), exec),
            Event::GetReport { id, rtype, .. } => {
                w.vendor.push(match rtype {
                    ReportType::Input | ReportType::Feature => Event::GetReportReply {
                        id,
                        err: 0,
                        data: with_report_number(&self.session.get_report()),
                    },
                    _ => Event::GetReportReply {
                        id,
                        err: EIO,
                        data: Vec::new(),
                    },
                });
            }
            Event::SetReport {
                id, rtype, data, ..
            } => {
                let err = match rtype {
                    ReportType::Output | ReportType::Feature => {
                        self.session.output(strip_report_number(&data), exec);
                        0
                    }
                    _ => EIO,
                };
                w.vendor.push(Event::SetReportReply { id, err });
            }
            _ => {}
        }
        while let Some(r) = self.session.next_input() {
            w.vendor.push(Event::Input2 { data: r.to_vec() });
        }
        while let Some(k) = self.session.next_key() {
            if self.session.options().keyboard {
                w.keyboard.push(Event::Input2 { data: k.to_vec() });
            }
        }
        w
    }

    /// Handle an event read from the keyboard device (LED output reports
    /// are accepted and ignored; GET_REPORT answers "no key down").
    pub fn keyboard_event(&mut self, ev: Event) -> Writes {
        self.keyboard.track(&ev);
        let mut w = Writes::default();
        match ev {
            Event::GetReport { id, rtype, .. } => w.keyboard.push(match rtype {
                ReportType::Input => Event::GetReportReply {
                    id,
                    err: 0,
                    data: with_report_number(&[0; KEYBOARD_REPORT_LEN]),
                },
                _ => Event::GetReportReply {
                    id,
                    err: EIO,
                    data: Vec::new(),
                },
            }),
            Event::SetReport { id, rtype, .. } => w.keyboard.push(Event::SetReportReply {
                id,
                err: if rtype == ReportType::Output { 0 } else { EIO },
            }),
            _ => {}
        }
        w
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
    fn every_get_and_set_report_is_answered_with_its_id() {
        let now = Timestamp::from_secs(1_111_111_109);
        let m = preset("gaht").unwrap();
        let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 1, now).unwrap()).unwrap();
        let mut exec = |c: &Command| execute(c, &mut fob, now, false);
        let mut u = UhidFob::new(HidOptions { keyboard: true });
        assert_eq!(
            u.vendor_event(Event::Start { dev_flags: 0 }, &mut exec),
            Writes::default()
        );
        u.vendor_event(Event::Open, &mut exec);
        assert_eq!(
            u.vendor,
            DeviceState {
                started: true,
                opened: true
            }
        );
        for (id, rtype) in [
            (1, ReportType::Feature),
            (2, ReportType::Input),
            (3, ReportType::Output),
            (4, ReportType::Other(9)),
        ] {
            let w = u.vendor_event(Event::GetReport { id, rnum: 0, rtype }, &mut exec);
            assert!(
                matches!(&w.vendor[..], [Event::GetReportReply { id: got, .. }] if *got == id),
                "{w:?}"
            );
            let w = u.vendor_event(
                Event::SetReport {
                    id: id + 100,
                    rnum: 0,
                    rtype,
                    data: vec![],
                },
                &mut exec,
            );
            assert!(
                matches!(&w.vendor[0], Event::SetReportReply { id: got, .. } if *got == id + 100),
                "{w:?}"
            );
            let w = u.keyboard_event(Event::GetReport { id, rnum: 0, rtype });
            assert!(
                matches!(&w.keyboard[..], [Event::GetReportReply { id: got, .. }] if *got == id)
            );
            let w = u.keyboard_event(Event::SetReport {
                id,
                rnum: 0,
                rtype,
                data: vec![1],
            });
            assert!(
                matches!(&w.keyboard[..], [Event::SetReportReply { id: got, .. }] if *got == id)
            );
        }
        // A press over OUTPUT: the answer as INPUT2, the code typed on the keyboard.
        let w = u.vendor_event(
            Event::Output {
                data: with_report_number(&encode_command(9, &Command::Press)),
                rtype: ReportType::Output,
            },
            &mut exec,
        );
        let Event::Input2 { data } = &w.vendor[0] else {
            panic!("{w:?}")
        };
        let a = AnswerAssembler::new(9).feed(data).unwrap().unwrap();
        assert_eq!(a.status, 0);
        assert_eq!(w.keyboard.len(), 2 * (a.text.len() + 1));
        // A press over SET_REPORT(feature) works too; GET_REPORT reads the answer.
        let w = u.vendor_event(
            Event::SetReport {
                id: 77,
                rnum: 0,
                rtype: ReportType::Feature,
                data: with_report_number(&encode_command(10, &Command::Display)),
            },
            &mut exec,
        );
        assert_eq!(w.vendor[0], Event::SetReportReply { id: 77, err: 0 });
        let Event::Input2 { data } = &w.vendor[1] else {
            panic!("{w:?}")
        };
        assert_eq!(
            AnswerAssembler::new(10).feed(data).unwrap().unwrap().text,
            a.text
        );
    }

    #[test]
    fn create_events_carry_the_serial() {
        let Event::Create2(c) = create_vendor("GAHT00000007", "gaht", 6) else {
            panic!()
        };
        assert_eq!(
            (c.uniq.as_str(), c.vendor, c.bus),
            ("GAHT00000007", 0x1209, 3)
        );
        let Event::Create2(k) = create_keyboard("GAHT00000007", "gaht", 6) else {
            panic!()
        };
        assert_eq!(k.descriptor, KEYBOARD_REPORT_DESCRIPTOR);
    }
}
