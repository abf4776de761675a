//! `struct uhid_event` (`<linux/uhid.h>`), sans-IO: encode and decode the
//! events fobsim writes to and reads from `/dev/uhid`.
//!
//! Layout: a `u32` type, then a packed union; integers in the host's byte
//! order (the kernel's). Every event is written as a whole
//! [`EVENT_SIZE`]-byte struct; reads may be shorter (the kernel copies at
//! most what was asked) and are decoded without trusting any size field.

/// `UHID_DATA_MAX`: largest report.
pub const DATA_MAX: usize = 4096;
/// `HID_MAX_DESCRIPTOR_SIZE`: largest report descriptor.
pub const DESCRIPTOR_MAX: usize = 4096;
/// `sizeof(struct uhid_event)`: type + the largest member (`create2`).
pub const EVENT_SIZE: usize = 4 + 128 + 64 + 64 + 2 + 2 + 4 + 4 + 4 + 4 + DESCRIPTOR_MAX;

/// `BUS_USB` from `<linux/input.h>`.
pub const BUS_USB: u16 = 0x03;

/// Event type numbers (`enum uhid_event_type`).
pub mod kind {
    /// `UHID_DESTROY`
    pub const DESTROY: u32 = 1;
    /// `UHID_START`
    pub const START: u32 = 2;
    /// `UHID_STOP`
    pub const STOP: u32 = 3;
    /// `UHID_OPEN`
    pub const OPEN: u32 = 4;
    /// `UHID_CLOSE`
    pub const CLOSE: u32 = 5;
    /// `UHID_OUTPUT`
    pub const OUTPUT: u32 = 6;
    /// `UHID_GET_REPORT`
    pub const GET_REPORT: u32 = 9;
    /// `UHID_GET_REPORT_REPLY`
    pub const GET_REPORT_REPLY: u32 = 10;
    /// `UHID_CREATE2`
    pub const CREATE2: u32 = 11;
    /// `UHID_INPUT2`
    pub const INPUT2: u32 = 12;
    /// `UHID_SET_REPORT`
    pub const SET_REPORT: u32 = 13;
    /// `UHID_SET_REPORT_REPLY`
    pub const SET_REPORT_REPLY: u32 = 14;
}

/// `enum uhid_report_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportType {
    /// `UHID_FEATURE_REPORT` (0)
    Feature,
    /// `UHID_OUTPUT_REPORT` (1)
    Output,
    /// `UHID_INPUT_REPORT` (2)
    Input,
    /// Any other number.
    Other(u8),
}

impl ReportType {
    fn from_u8(n: u8) -> Self {
        match n {
            0 => ReportType::Feature,
            1 => ReportType::Output,
            2 => ReportType::Input,
            n => ReportType::Other(n),
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ReportType::Feature => 0,
            ReportType::Output => 1,
            ReportType::Input => 2,
            ReportType::Other(n) => n,
        }
    }
}

/// The `create2` request: a new HID device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create2 {
    /// Device name (at most 127 bytes are sent).
    pub name: String,
    /// Physical path (at most 63 bytes).
    pub phys: String,
    /// Unique id: the fob's serial (at most 63 bytes).
    pub uniq: String,
    /// Bus (`BUS_USB`).
    pub bus: u16,
    /// Vendor id.
    pub vendor: u32,
    /// Product id.
    pub product: u32,
    /// Version.
    pub version: u32,
    /// Country code.
    pub country: u32,
    /// Report descriptor (at most [`DESCRIPTOR_MAX`] bytes).
    pub descriptor: Vec<u8>,
}

/// One uhid event, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `UHID_CREATE2` (written).
    Create2(Box<Create2>),
    /// `UHID_DESTROY` (written).
    Destroy,
    /// `UHID_START` (read): a driver bound; `dev_flags`.
    Start {
        /// `UHID_DEV_NUMBERED_*_REPORTS` flags.
        dev_flags: u64,
    },
    /// `UHID_STOP` (read).
    Stop,
    /// `UHID_OPEN` (read): a host opened the device.
    Open,
    /// `UHID_CLOSE` (read): the last host closed it.
    Close,
    /// `UHID_OUTPUT` (read): an output report.
    Output {
        /// The report (with its id byte if the device numbers reports).
        data: Vec<u8>,
        /// Report type.
        rtype: ReportType,
    },
    /// `UHID_GET_REPORT` (read): must be answered with
    /// [`Event::GetReportReply`] echoing `id`.
    GetReport {
        /// Request id to echo.
        id: u32,
        /// Report number.
        rnum: u8,
        /// Report type.
        rtype: ReportType,
    },
    /// `UHID_GET_REPORT_REPLY` (written).
    GetReportReply {
        /// The request's id.
        id: u32,
        /// 0 or an errno.
        err: u16,
        /// The report.
        data: Vec<u8>,
    },
    /// `UHID_INPUT2` (written): an input report.
    Input2 {
        /// The report.
        data: Vec<u8>,
    },
    /// `UHID_SET_REPORT` (read): must be answered with
    /// [`Event::SetReportReply`] echoing `id`.
    SetReport {
        /// Request id to echo.
        id: u32,
        /// Report number.
        rnum: u8,
        /// Report type.
        rtype: ReportType,
        /// The report.
        data: Vec<u8>,
    },
    /// `UHID_SET_REPORT_REPLY` (written).
    SetReportReply {
        /// The request's id.
        id: u32,
        /// 0 or an errno.
        err: u16,
    },
    /// An event type fobsim does not handle (legacy ones).
    Unknown(u32),
}

/// Why bytes are not a uhid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Fewer bytes than the event's fixed fields.
    #[error("uhid event type {kind}: {len} bytes, need {need}")]
    Short {
        /// Event type (0 if not even that was there).
        kind: u32,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A size field over the maximum.
    #[error("uhid event type {kind}: size {size} over {max}")]
    Size {
        /// Event type.
        kind: u32,
        /// The size field.
        size: usize,
        /// The maximum.
        max: usize,
    },
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn put_str(buf: &mut [u8], at: usize, cap: usize, s: &str) {
    let b = s.as_bytes();
    // Keep a NUL terminator.
    let n = b.len().min(cap - 1);
    put(buf, at, &b[..n]);
}

fn u16_of(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl Event {
    /// The event as the kernel reads it: a whole [`EVENT_SIZE`]-byte
    /// struct. Data longer than the field is cut.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; EVENT_SIZE];
        let u = 4; // start of the union
        let t = match self {
            Event::Create2(c) => {
                put_str(&mut b, u, 128, &c.name);
                put_str(&mut b, u + 128, 64, &c.phys);
                put_str(&mut b, u + 192, 64, &c.uniq);
                let rd = &c.descriptor[..c.descriptor.len().min(DESCRIPTOR_MAX)];
                put(&mut b, u + 256, &u16_of(rd.len()).to_ne_bytes());
                put(&mut b, u + 258, &c.bus.to_ne_bytes());
                put(&mut b, u + 260, &c.vendor.to_ne_bytes());
                put(&mut b, u + 264, &c.product.to_ne_bytes());
                put(&mut b, u + 268, &c.version.to_ne_bytes());
                put(&mut b, u + 272, &c.country.to_ne_bytes());
                put(&mut b, u + 276, rd);
                kind::CREATE2
            }
            Event::Destroy => kind::DESTROY,
            Event::Start { dev_flags } => {
                put(&mut b, u, &dev_flags.to_ne_bytes());
                kind::START
            }
            Event::Stop => kind::STOP,
            Event::Open => kind::OPEN,
            Event::Close => kind::CLOSE,
            Event::Output { data, rtype } => {
                let d = &data[..data.len().min(DATA_MAX)];
                put(&mut b, u, d);
                put(&mut b, u + DATA_MAX, &u16_of(d.len()).to_ne_bytes());
                b[u + DATA_MAX + 2] = rtype.as_u8();
                kind::OUTPUT
            }
            Event::GetReport { id, rnum, rtype } => {
                put(&mut b, u, &id.to_ne_bytes());
                b[u + 4] = *rnum;
                b[u + 5] = rtype.as_u8();
                kind::GET_REPORT
            }
            Event::GetReportReply { id, err, data } => {
                let d = &data[..data.len().min(DATA_MAX)];
                put(&mut b, u, &id.to_ne_bytes());
                put(&mut b, u + 4, &err.to_ne_bytes());
                put(&mut b, u + 6, &u16_of(d.len()).to_ne_bytes());
                put(&mut b, u + 8, d);
                kind::GET_REPORT_REPLY
            }
            Event::Input2 { data } => {
                let d = &data[..data.len().min(DATA_MAX)];
                put(&mut b, u, &u16_of(d.len()).to_ne_bytes());
                put(&mut b, u + 2, d);
                kind::INPUT2
            }
            Event::SetReport {
                id,
                rnum,
                rtype,
                data,
            } => {
                let d = &data[..data.len().min(DATA_MAX)];
                put(&mut b, u, &id.to_ne_bytes());
                b[u + 4] = *rnum;
                b[u + 5] = rtype.as_u8();
                put(&mut b, u + 6, &u16_of(d.len()).to_ne_bytes());
                put(&mut b, u + 8, d);
                kind::SET_REPORT
            }
            Event::SetReportReply { id, err } => {
                put(&mut b, u, &id.to_ne_bytes());
                put(&mut b, u + 4, &err.to_ne_bytes());
                kind::SET_REPORT_REPLY
            }
            Event::Unknown(t) => *t,
        };
        put(&mut b, 0, &t.to_ne_bytes());
        b
    }

    /// Decode an event read from `/dev/uhid` (or written to it: every
    /// variant decodes).
    ///
    /// # Errors
    /// [`EventError`] for short events and oversized size fields.
    pub fn decode(b: &[u8]) -> Result<Event, EventError> {
        let t = read_u32(b, 0).ok_or(EventError::Short {
            kind: 0,
            len: b.len(),
            need: 4,
        })?;
        let need = |n: usize| -> Result<(), EventError> {
            if b.len() < 4 + n {
                Err(EventError::Short {
                    kind: t,
                    len: b.len(),
                    need: 4 + n,
                })
            } else {
                Ok(())
            }
        };
        let size = |s: usize, max: usize| -> Result<usize, EventError> {
            if s > max {
                Err(EventError::Size {
                    kind: t,
                    size: s,
                    max,
                })
            } else {
                Ok(s)
            }
        };
        let u = 4;
        Ok(match t {
            kind::DESTROY => Event::Destroy,
            kind::STOP => Event::Stop,
            kind::OPEN => Event::Open,
            kind::CLOSE => Event::Close,
            kind::START => {
                need(8)?;
                Event::Start {
                    dev_flags: read_u64(b, u).unwrap_or(0),
                }
            }
            kind::OUTPUT => {
                need(DATA_MAX + 3)?;
                let n = size(
                    usize::from(read_u16(b, u + DATA_MAX).unwrap_or(0)),
                    DATA_MAX,
                )?;
                Event::Output {
                    data: b[u..u + n].to_vec(),
                    rtype: ReportType::from_u8(b[u + DATA_MAX + 2]),
                }
            }
            kind::GET_REPORT => {
                need(6)?;
                Event::GetReport {
                    id: read_u32(b, u).unwrap_or(0),
                    rnum: b[u + 4],
                    rtype: ReportType::from_u8(b[u + 5]),
                }
            }
            kind::GET_REPORT_REPLY => {
                need(8)?;
                let n = size(usize::from(read_u16(b, u + 6).unwrap_or(0)), DATA_MAX)?;
                need(8 + n)?;
                Event::GetReportReply {
                    id: read_u32(b, u).unwrap_or(0),
                    err: read_u16(b, u + 4).unwrap_or(0),
                    data: b[u + 8..u + 8 + n].to_vec(),
                }
            }
            kind::INPUT2 => {
                need(2)?;
                let n = size(usize::from(read_u16(b, u).unwrap_or(0)), DATA_MAX)?;
                need(2 + n)?;
                Event::Input2 {
                    data: b[u + 2..u + 2 + n].to_vec(),
                }
            }
            kind::SET_REPORT => {
                need(8)?;
                let n = size(usize::from(read_u16(b, u + 6).unwrap_or(0)), DATA_MAX)?;
                need(8 + n)?;
                Event::SetReport {
                    id: read_u32(b, u).unwrap_or(0),
                    rnum: b[u + 4],
                    rtype: ReportType::from_u8(b[u + 5]),
                    data: b[u + 8..u + 8 + n].to_vec(),
                }
            }
            kind::SET_REPORT_REPLY => {
                need(6)?;
                Event::SetReportReply {
                    id: read_u32(b, u).unwrap_or(0),
                    err: read_u16(b, u + 4).unwrap_or(0),
                }
            }
            kind::CREATE2 => {
                need(276)?;
                let n = size(
                    usize::from(read_u16(b, u + 256).unwrap_or(0)),
                    DESCRIPTOR_MAX,
                )?;
                need(276 + n)?;
                let s = |at: usize, cap: usize| {
                    let f = &b[at..at + cap];
                    let end = f.iter().position(|&c| c == 0).unwrap_or(cap);
                    String::from_utf8_lossy(&f[..end]).into_owned()
                };
                Event::Create2(Box::new(Create2 {
                    name: s(u, 128),
                    phys: s(u + 128, 64),
                    uniq: s(u + 192, 64),
                    bus: read_u16(b, u + 258).unwrap_or(0),
                    vendor: read_u32(b, u + 260).unwrap_or(0),
                    product: read_u32(b, u + 264).unwrap_or(0),
                    version: read_u32(b, u + 268).unwrap_or(0),
                    country: read_u32(b, u + 272).unwrap_or(0),
                    descriptor: b[u + 276..u + 276 + n].to_vec(),
                }))
            }
            other => Event::Unknown(other),
        })
    }
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-exact dump: 32 bytes a line, runs of 32 or more zero bytes
    /// written as their count.
    fn dump(b: &[u8]) -> String {
        let mut lines = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let zeros = b[i..].iter().take_while(|&&x| x == 0).count();
            if zeros >= 32 {
                lines.push(format!("  {i:04x}: <{zeros} zero bytes>"));
                i += zeros;
                continue;
            }
            let end = (i + 32).min(b.len());
            let h: String = b[i..end].iter().map(|x| format!("{x:02x}")).collect();
            lines.push(format!("  {i:04x}: {h}"));
            i = end;
        }
        lines.join("\n")
    }

    fn all_events() -> Vec<(&'static str, Event)> {
        vec![
            (
                "create2",
                Event::Create2(Box::new(Create2 {
                    name: "fobsim gaht token GAHT00000001".into(),
                    phys: "fobsim/uhid/0".into(),
                    uniq: "GAHT00000001".into(),
                    bus: BUS_USB,
                    vendor: 0x1209,
                    product: 0x0001,
                    version: 0x0010,
                    country: 0,
                    descriptor: crate::hid::VENDOR_REPORT_DESCRIPTOR.to_vec(),
                })),
            ),
            ("destroy", Event::Destroy),
            ("start", Event::Start { dev_flags: 0 }),
            ("stop", Event::Stop),
            ("open", Event::Open),
            ("close", Event::Close),
            (
                "output",
                Event::Output {
                    data: vec![7, 0, 1, 1, 2],
                    rtype: ReportType::Output,
                },
            ),
            (
                "get_report",
                Event::GetReport {
                    id: 0x0102_0304,
                    rnum: 0,
                    rtype: ReportType::Feature,
                },
            ),
            (
                "get_report_reply",
                Event::GetReportReply {
                    id: 0x0102_0304,
                    err: 0,
                    data: vec![7, 0, 1, 2, 0, 0],
                },
            ),
            (
                "input2",
                Event::Input2 {
                    data: vec![7, 0, 1, 8, 0, 0, b'2', b'8', b'7', b'0', b'8', b'2'],
                },
            ),
            (
                "set_report",
                Event::SetReport {
                    id: 0xAABB_CCDD,
                    rnum: 0,
                    rtype: ReportType::Feature,
                    data: vec![8, 0, 1, 1, 3],
                },
            ),
            (
                "set_report_reply",
                Event::SetReportReply {
                    id: 0xAABB_CCDD,
                    err: 0,
                },
            ),
        ]
    }

    #[test]
    fn event_size_matches_the_kernel() {
        // sizeof(struct uhid_event) on Linux: 4 + sizeof(struct uhid_create2_req).
        assert_eq!(EVENT_SIZE, 4376);
    }

    #[test]
    fn snapshot_events() {
        let mut s = String::new();
        for (name, e) in all_events() {
            let b = e.encode();
            assert_eq!(b.len(), EVENT_SIZE);
            assert_eq!(Event::decode(&b).as_ref(), Ok(&e), "{name}");
            s.push_str(&format!("{name} ({} bytes)\n{}\n", b.len(), dump(&b)));
        }
        insta::assert_snapshot!(s);
    }

    #[test]
    fn hostile_events_decode_to_errors() {
        assert!(matches!(Event::decode(&[]), Err(EventError::Short { .. })));
        assert!(matches!(
            Event::decode(&9u32.to_ne_bytes()),
            Err(EventError::Short { kind: 9, .. })
        ));
        let mut b = Event::Output {
            data: vec![],
            rtype: ReportType::Output,
        }
        .encode();
        b[4 + DATA_MAX..4 + DATA_MAX + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert!(matches!(
            Event::decode(&b),
            Err(EventError::Size { kind: 6, .. })
        ));
        let mut b = Event::Input2 { data: vec![] }.encode();
        b[4..6].copy_from_slice(&100u16.to_ne_bytes());
        assert!(matches!(
            Event::decode(&b[..50]),
            Err(EventError::Short { kind: 12, .. })
        ));
        assert_eq!(Event::decode(&99u32.to_ne_bytes()), Ok(Event::Unknown(99)));
    }
}
