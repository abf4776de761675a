//! USB/IP PDUs (Linux `Documentation/usb/usbip_protocol.rst`), sans-IO.
//! Big-endian. Decoders are streaming: they take what has arrived so far
//! and answer `Ok(None)` while a PDU is incomplete, `Ok(Some((pdu, used)))`
//! once it is whole. Lengths are bounded before anything is allocated.

/// USB/IP protocol version (1.1.1), as Linux speaks it.
pub const USBIP_VERSION: u16 = 0x0111;
/// `OP_REQ_DEVLIST`
pub const OP_REQ_DEVLIST: u16 = 0x8005;
/// `OP_REP_DEVLIST`
pub const OP_REP_DEVLIST: u16 = 0x0005;
/// `OP_REQ_IMPORT`
pub const OP_REQ_IMPORT: u16 = 0x8003;
/// `OP_REP_IMPORT`
pub const OP_REP_IMPORT: u16 = 0x0003;
/// `USBIP_CMD_SUBMIT`
pub const CMD_SUBMIT: u32 = 1;
/// `USBIP_CMD_UNLINK`
pub const CMD_UNLINK: u32 = 2;
/// `USBIP_RET_SUBMIT`
pub const RET_SUBMIT: u32 = 3;
/// `USBIP_RET_UNLINK`
pub const RET_UNLINK: u32 = 4;

/// Bytes of an operation header (version, code, status).
pub const OP_HEADER_LEN: usize = 8;
/// Bytes of a bus id field.
pub const BUSID_LEN: usize = 32;
/// Bytes of a sysfs path field.
pub const PATH_LEN: usize = 256;
/// Bytes of a device record (without its interfaces).
pub const DEVICE_LEN: usize = PATH_LEN + BUSID_LEN + 24;
/// Bytes of a URB command/return header.
pub const URB_HEADER_LEN: usize = 48;
/// Bytes of one isochronous packet descriptor.
pub const ISO_DESCRIPTOR_LEN: usize = 16;
/// Largest transfer buffer accepted (either way).
pub const MAX_TRANSFER: usize = 64 * 1024;
/// Most isochronous packets accepted in one URB.
pub const MAX_ISO_PACKETS: usize = 1024;
/// Most devices accepted in a device list (client side).
pub const MAX_DEVICES: usize = 4096;

/// `USB_SPEED_FULL` (`enum usb_device_speed`).
pub const SPEED_FULL: u32 = 2;

/// Why bytes are not a valid PDU. After any of these the stream cannot be
/// resynchronised: the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// An operation with an unknown code.
    #[error("unknown operation 0x{code:04x} (version 0x{version:04x})")]
    UnknownOp {
        /// Protocol version field.
        version: u16,
        /// Operation code.
        code: u16,
    },
    /// A URB PDU with an unknown command.
    #[error("unknown URB command {0}")]
    UnknownCommand(u32),
    /// A length field over its bound.
    #[error("{what} {len} over the limit {max}")]
    TooLong {
        /// Which length.
        what: &'static str,
        /// The length given.
        len: u64,
        /// The bound.
        max: usize,
    },
    /// A field with an impossible value.
    #[error("bad {0}")]
    Bad(&'static str),
}

/// Transfer direction of a URB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host to device (`USBIP_DIR_OUT` = 0).
    Out,
    /// Device to host (`USBIP_DIR_IN` = 1).
    In,
}

impl Direction {
    fn as_u32(self) -> u32 {
        match self {
            Direction::Out => 0,
            Direction::In => 1,
        }
    }
}

/// An interface in a device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// `bInterfaceClass`
    pub class: u8,
    /// `bInterfaceSubClass`
    pub subclass: u8,
    /// `bInterfaceProtocol`
    pub protocol: u8,
}

/// A device record (`struct usbip_usb_device`) and, in device lists, its
/// interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// sysfs path (informational).
    pub path: String,
    /// Bus id, e.g. `1-1`.
    pub busid: String,
    /// Bus number.
    pub busnum: u32,
    /// Device number.
    pub devnum: u32,
    /// Speed (`enum usb_device_speed`).
    pub speed: u32,
    /// `idVendor`
    pub vendor: u16,
    /// `idProduct`
    pub product: u16,
    /// `bcdDevice`
    pub bcd_device: u16,
    /// `bDeviceClass`
    pub class: u8,
    /// `bDeviceSubClass`
    pub subclass: u8,
    /// `bDeviceProtocol`
    pub protocol: u8,
    /// `bConfigurationValue`
    pub configuration_value: u8,
    /// `bNumConfigurations`
    pub num_configurations: u8,
    /// Interfaces (their count is `bNumInterfaces`).
    pub interfaces: Vec<InterfaceInfo>,
}

impl DeviceInfo {
    /// `devid` of URB PDUs: bus number and device number.
    #[must_use]
    pub fn devid(&self) -> u32 {
        (self.busnum << 16) | (self.devnum & 0xffff)
    }

    fn emit(&self, out: &mut Vec<u8>, with_interfaces: bool) {
        put_str(out, &self.path, PATH_LEN);
        put_str(out, &self.busid, BUSID_LEN);
        out.extend(self.busnum.to_be_bytes());
        out.extend(self.devnum.to_be_bytes());
        out.extend(self.speed.to_be_bytes());
        out.extend(self.vendor.to_be_bytes());
        out.extend(self.product.to_be_bytes());
        out.extend(self.bcd_device.to_be_bytes());
        out.extend([
            self.class,
            self.subclass,
            self.protocol,
            self.configuration_value,
            self.num_configurations,
            u8::try_from(self.interfaces.len()).unwrap_or(u8::MAX),
        ]);
        if with_interfaces {
            for i in &self.interfaces {
                out.extend([i.class, i.subclass, i.protocol, 0]);
            }
        }
    }

    /// Parse a device record (interfaces only if `with_interfaces`);
    /// `Ok(None)` while incomplete.
    fn parse(b: &[u8], with_interfaces: bool) -> Option<(DeviceInfo, usize)> {
        if b.len() < DEVICE_LEN {
            return None;
        }
        let f = &b[PATH_LEN + BUSID_LEN..];
        let n_if = usize::from(f[23]);
        let used = DEVICE_LEN + if with_interfaces { 4 * n_if } else { 0 };
        if b.len() < used {
            return None;
        }
        let interfaces = if with_interfaces {
            b[DEVICE_LEN..used]
                .chunks_exact(4)
                .map(|c| InterfaceInfo {
                    class: c[0],
                    subclass: c[1],
                    protocol: c[2],
                })
                .collect()
        } else {
            vec![
                InterfaceInfo {
                    class: 0,
                    subclass: 0,
                    protocol: 0,
                };
                n_if
            ]
        };
        Some((
            DeviceInfo {
                path: get_str(&b[..PATH_LEN]),
                busid: get_str(&b[PATH_LEN..PATH_LEN + BUSID_LEN]),
                busnum: be32(f, 0),
                devnum: be32(f, 4),
                speed: be32(f, 8),
                vendor: be16(f, 12),
                product: be16(f, 14),
                bcd_device: be16(f, 16),
                class: f[18],
                subclass: f[19],
                protocol: f[20],
                configuration_value: f[21],
                num_configurations: f[22],
                interfaces,
            },
            used,
        ))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, cap: usize) {
    let b = s.as_bytes();
    let n = b.len().min(cap - 1);
    out.extend(&b[..n]);
    out.resize(out.len() + cap - n, 0);
}

fn get_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

// Callers check lengths first; out-of-range reads give 0 rather than panic.
fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_be_bytes)
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn op_header(out: &mut Vec<u8>, code: u16, status: u32) {
    out.extend(USBIP_VERSION.to_be_bytes());
    out.extend(code.to_be_bytes());
    out.extend(status.to_be_bytes());
}

/// A request of the operation phase (before a device is imported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpRequest {
    /// `OP_REQ_DEVLIST`
    DevList,
    /// `OP_REQ_IMPORT` of a bus id.
    Import {
        /// The bus id asked for.
        busid: String,
    },
}

impl OpRequest {
    /// Emit the request (client side).
    #[must_use]
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(OP_HEADER_LEN + BUSID_LEN);
        match self {
            OpRequest::DevList => op_header(&mut out, OP_REQ_DEVLIST, 0),
            OpRequest::Import { busid } => {
                op_header(&mut out, OP_REQ_IMPORT, 0);
                put_str(&mut out, busid, BUSID_LEN);
            }
        }
        out
    }

    /// Decode a request; `Ok(None)` while incomplete. The version field is
    /// not checked (clients differ), the code is.
    ///
    /// # Errors
    /// [`PduError::UnknownOp`].
    pub fn decode(b: &[u8]) -> Result<Option<(OpRequest, usize)>, PduError> {
        if b.len() < OP_HEADER_LEN {
            return Ok(None);
        }
        match be16(b, 2) {
            OP_REQ_DEVLIST => Ok(Some((OpRequest::DevList, OP_HEADER_LEN))),
            OP_REQ_IMPORT => {
                let used = OP_HEADER_LEN + BUSID_LEN;
                if b.len() < used {
                    return Ok(None);
                }
                Ok(Some((
                    OpRequest::Import {
                        busid: get_str(&b[OP_HEADER_LEN..used]),
                    },
                    used,
                )))
            }
            code => Err(PduError::UnknownOp {
                version: be16(b, 0),
                code,
            }),
        }
    }
}

/// A reply of the operation phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpReply {
    /// `OP_REP_DEVLIST`: the exported devices with their interfaces.
    DevList(Vec<DeviceInfo>),
    /// `OP_REP_IMPORT`: the device (status 0), or `None` (status 1: no
    /// such device, or busy).
    Import(Option<DeviceInfo>),
}

impl OpReply {
    /// Emit the reply.
    #[must_use]
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            OpReply::DevList(devs) => {
                op_header(&mut out, OP_REP_DEVLIST, 0);
                out.extend(u32::try_from(devs.len()).unwrap_or(u32::MAX).to_be_bytes());
                for d in devs {
                    d.emit(&mut out, true);
                }
            }
            OpReply::Import(Some(d)) => {
                op_header(&mut out, OP_REP_IMPORT, 0);
                d.emit(&mut out, false);
            }
            OpReply::Import(None) => op_header(&mut out, OP_REP_IMPORT, 1),
        }
        out
    }

    /// Decode a reply (client side); `Ok(None)` while incomplete.
    ///
    /// # Errors
    /// [`PduError`] for unknown codes or too many devices.
    pub fn decode(b: &[u8]) -> Result<Option<(OpReply, usize)>, PduError> {
        if b.len() < OP_HEADER_LEN {
            return Ok(None);
        }
        let status = be32(b, 4);
        match be16(b, 2) {
            OP_REP_DEVLIST => {
                if b.len() < OP_HEADER_LEN + 4 {
                    return Ok(None);
                }
                let n = be32(b, OP_HEADER_LEN) as usize;
                if n > MAX_DEVICES {
                    return Err(PduError::TooLong {
                        what: "device count",
                        len: n as u64,
                        max: MAX_DEVICES,
                    });
                }
                let mut at = OP_HEADER_LEN + 4;
                let mut devs = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let Some((d, used)) = DeviceInfo::parse(&b[at..], true) else {
                        return Ok(None);
                    };
                    devs.push(d);
                    at += used;
                }
                Ok(Some((OpReply::DevList(devs), at)))
            }
            OP_REP_IMPORT if status != 0 => Ok(Some((OpReply::Import(None), OP_HEADER_LEN))),
            OP_REP_IMPORT => match DeviceInfo::parse(&b[OP_HEADER_LEN..], false) {
                None => Ok(None),
                Some((d, used)) => Ok(Some((OpReply::Import(Some(d)), OP_HEADER_LEN + used))),
            },
            code => Err(PduError::UnknownOp {
                version: be16(b, 0),
                code,
            }),
        }
    }
}

/// `USBIP_CMD_SUBMIT`: a URB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// Sequence number (the URB's name).
    pub seqnum: u32,
    /// Device id.
    pub devid: u32,
    /// Direction.
    pub direction: Direction,
    /// Endpoint number (without the direction bit).
    pub ep: u32,
    /// `URB_*` transfer flags.
    pub transfer_flags: u32,
    /// Transfer buffer length (for IN: most bytes wanted).
    pub length: u32,
    /// Start frame (isochronous).
    pub start_frame: i32,
    /// Isochronous packets (0 or -1 for other transfers).
    pub number_of_packets: i32,
    /// Interval.
    pub interval: i32,
    /// Setup packet (control transfers).
    pub setup: [u8; 8],
    /// OUT data.
    pub data: Vec<u8>,
}

/// `USBIP_CMD_UNLINK`: cancel URB `unlink_seqnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlink {
    /// This request's sequence number.
    pub seqnum: u32,
    /// Device id.
    pub devid: u32,
    /// Direction.
    pub direction: Direction,
    /// Endpoint.
    pub ep: u32,
    /// The URB to cancel.
    pub unlink_seqnum: u32,
}

/// A command of the URB phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// `USBIP_CMD_SUBMIT`
    Submit(Submit),
    /// `USBIP_CMD_UNLINK`
    Unlink(Unlink),
}

fn basic(out: &mut Vec<u8>, command: u32, seqnum: u32, devid: u32, dir: Direction, ep: u32) {
    for v in [command, seqnum, devid, dir.as_u32(), ep] {
        out.extend(v.to_be_bytes());
    }
}

fn packets(n: i32) -> usize {
    // -1 (0xffffffff) and 0 mean "not isochronous".
    usize::try_from(n).unwrap_or(0)
}

impl Cmd {
    /// Emit the command (client side).
    #[must_use]
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(URB_HEADER_LEN);
        match self {
            Cmd::Submit(s) => {
                basic(&mut out, CMD_SUBMIT, s.seqnum, s.devid, s.direction, s.ep);
                out.extend(s.transfer_flags.to_be_bytes());
                out.extend(s.length.to_be_bytes());
                out.extend(s.start_frame.to_be_bytes());
                out.extend(s.number_of_packets.to_be_bytes());
                out.extend(s.interval.to_be_bytes());
                out.extend(s.setup);
                if s.direction == Direction::Out {
                    out.extend(&s.data);
                }
            }
            Cmd::Unlink(u) => {
                basic(&mut out, CMD_UNLINK, u.seqnum, u.devid, u.direction, u.ep);
                out.extend(u.unlink_seqnum.to_be_bytes());
                out.resize(URB_HEADER_LEN, 0);
            }
        }
        out
    }

    /// Decode a command; `Ok(None)` while incomplete. OUT data and
    /// isochronous descriptors are consumed (the latter are dropped).
    ///
    /// # Errors
    /// [`PduError::UnknownCommand`], [`PduError::TooLong`] for a transfer
    /// over [`MAX_TRANSFER`] or too many packets, [`PduError::Bad`] for a
    /// direction other than 0/1.
    pub fn decode(b: &[u8]) -> Result<Option<(Cmd, usize)>, PduError> {
        if b.len() < URB_HEADER_LEN {
            return Ok(None);
        }
        let direction = match be32(b, 12) {
            0 => Direction::Out,
            1 => Direction::In,
            _ => return Err(PduError::Bad("direction")),
        };
        let (seqnum, devid, ep) = (be32(b, 4), be32(b, 8), be32(b, 16));
        match be32(b, 0) {
            CMD_SUBMIT => {
                let length = be32(b, 24);
                if length as usize > MAX_TRANSFER {
                    return Err(PduError::TooLong {
                        what: "transfer_buffer_length",
                        len: u64::from(length),
                        max: MAX_TRANSFER,
                    });
                }
                let number_of_packets = be32(b, 32) as i32;
                let np = packets(number_of_packets);
                if np > MAX_ISO_PACKETS {
                    return Err(PduError::TooLong {
                        what: "number_of_packets",
                        len: np as u64,
                        max: MAX_ISO_PACKETS,
                    });
                }
                let data_len = if direction == Direction::Out {
                    length as usize
                } else {
                    0
                };
                let used = URB_HEADER_LEN + data_len + np * ISO_DESCRIPTOR_LEN;
                if b.len() < used {
                    return Ok(None);
                }
                let mut setup = [0u8; 8];
                setup.copy_from_slice(&b[40..48]);
                Ok(Some((
                    Cmd::Submit(Submit {
                        seqnum,
                        devid,
                        direction,
                        ep,
                        transfer_flags: be32(b, 20),
                        length,
                        start_frame: be32(b, 28) as i32,
                        number_of_packets,
                        interval: be32(b, 36) as i32,
                        setup,
                        data: b[URB_HEADER_LEN..URB_HEADER_LEN + data_len].to_vec(),
                    }),
                    used,
                )))
            }
            CMD_UNLINK => Ok(Some((
                Cmd::Unlink(Unlink {
                    seqnum,
                    devid,
                    direction,
                    ep,
                    unlink_seqnum: be32(b, 20),
                }),
                URB_HEADER_LEN,
            ))),
            other => Err(PduError::UnknownCommand(other)),
        }
    }
}

/// `USBIP_RET_SUBMIT`: a completed URB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetSubmit {
    /// The URB's sequence number.
    pub seqnum: u32,
    /// 0 or a negative errno (`-EPIPE` = STALL).
    pub status: i32,
    /// Bytes transferred (for IN: `data.len()`).
    pub actual_length: u32,
    /// IN data.
    pub data: Vec<u8>,
}

/// `USBIP_RET_UNLINK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetUnlink {
    /// The UNLINK's sequence number.
    pub seqnum: u32,
    /// `-ECONNRESET` if the URB was cancelled, 0 if it had completed.
    pub status: i32,
}

/// A reply of the URB phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    /// `USBIP_RET_SUBMIT`
    Submit(RetSubmit),
    /// `USBIP_RET_UNLINK`
    Unlink(RetUnlink),
}

impl Ret {
    /// Emit the reply. `devid`, `direction` and `ep` are 0, as Linux's
    /// usbip-host sends them.
    #[must_use]
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(URB_HEADER_LEN);
        match self {
            Ret::Submit(r) => {
                basic(&mut out, RET_SUBMIT, r.seqnum, 0, Direction::Out, 0);
                out.extend(r.status.to_be_bytes());
                out.extend(r.actual_length.to_be_bytes());
                out.extend(0i32.to_be_bytes()); // start_frame
                out.extend(0i32.to_be_bytes()); // number_of_packets
                out.extend(0i32.to_be_bytes()); // error_count
                out.resize(URB_HEADER_LEN, 0);
                out.extend(&r.data);
            }
            Ret::Unlink(r) => {
                basic(&mut out, RET_UNLINK, r.seqnum, 0, Direction::Out, 0);
                out.extend(r.status.to_be_bytes());
                out.resize(URB_HEADER_LEN, 0);
            }
        }
        out
    }

    /// Decode a reply (client side). `direction` tells whether the URB
    /// `seqnum` was IN (its data follows the header), asked through
    /// `is_in(seqnum)`. `Ok(None)` while incomplete.
    ///
    /// # Errors
    /// [`PduError`] for unknown commands or oversized lengths.
    pub fn decode(b: &[u8], is_in: impl Fn(u32) -> bool) -> Result<Option<(Ret, usize)>, PduError> {
        if b.len() < URB_HEADER_LEN {
            return Ok(None);
        }
        let seqnum = be32(b, 4);
        let status = be32(b, 20) as i32;
        match be32(b, 0) {
            RET_SUBMIT => {
                let actual_length = be32(b, 24);
                if actual_length as usize > MAX_TRANSFER {
                    return Err(PduError::TooLong {
                        what: "actual_length",
                        len: u64::from(actual_length),
                        max: MAX_TRANSFER,
                    });
                }
                let data_len = if is_in(seqnum) {
                    actual_length as usize
                } else {
                    0
                };
                let used = URB_HEADER_LEN + data_len;
                if b.len() < used {
                    return Ok(None);
                }
                Ok(Some((
                    Ret::Submit(RetSubmit {
                        seqnum,
                        status,
                        actual_length,
                        data: b[URB_HEADER_LEN..used].to_vec(),
                    }),
                    used,
                )))
            }
            RET_UNLINK => Ok(Some((
                Ret::Unlink(RetUnlink { seqnum, status }),
                URB_HEADER_LEN,
            ))),
            other => Err(PduError::UnknownCommand(other)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn dump(b: &[u8]) -> String {
        let mut lines = Vec::new();
        let mut i = 0;
        while i < b.len() {
            // Runs of 16+ zero bytes are written as a count, to keep the
            // 256-byte path fields readable; the dump stays byte-exact.
            let zeros = b[i..].iter().take_while(|&&x| x == 0).count();
            if zeros >= 16 {
                lines.push(format!("  {i:04x}: <{zeros} zero bytes>"));
                i += zeros;
                continue;
            }
            let end = (i + 16).min(b.len());
            let h: Vec<String> = b[i..end].iter().map(|x| format!("{x:02x}")).collect();
            lines.push(format!("  {i:04x}: {}", h.join(" ")));
            i = end;
        }
        format!("{} bytes\n{}", b.len(), lines.join("\n"))
    }

    fn device() -> DeviceInfo {
        DeviceInfo {
            path: "/sys/devices/platform/fobsim/usb1/1-1".into(),
            busid: "1-1".into(),
            busnum: 1,
            devnum: 2,
            speed: SPEED_FULL,
            vendor: 0x1209,
            product: 0x0001,
            bcd_device: 0x0010,
            class: 0,
            subclass: 0,
            protocol: 0,
            configuration_value: 1,
            num_configurations: 1,
            interfaces: vec![
                InterfaceInfo {
                    class: 3,
                    subclass: 0,
                    protocol: 0,
                },
                InterfaceInfo {
                    class: 3,
                    subclass: 1,
                    protocol: 1,
                },
            ],
        }
    }

    #[test]
    fn snapshot_op_pdus() {
        let mut s = String::new();
        for (name, bytes) in [
            ("OP_REQ_DEVLIST", OpRequest::DevList.emit()),
            (
                "OP_REQ_IMPORT",
                OpRequest::Import {
                    busid: "1-1".into(),
                }
                .emit(),
            ),
            ("OP_REP_DEVLIST", OpReply::DevList(vec![device()]).emit()),
            ("OP_REP_DEVLIST (empty)", OpReply::DevList(vec![]).emit()),
            ("OP_REP_IMPORT", OpReply::Import(Some(device())).emit()),
            ("OP_REP_IMPORT (error)", OpReply::Import(None).emit()),
        ] {
            s.push_str(&format!("{name}: {}\n", dump(&bytes)));
        }
        insta::assert_snapshot!(s);
    }

    #[test]
    fn snapshot_urb_pdus() {
        let submit_in = Cmd::Submit(Submit {
            seqnum: 7,
            devid: 0x0001_0002,
            direction: Direction::In,
            ep: 0,
            transfer_flags: 0x200,
            length: 18,
            start_frame: 0,
            number_of_packets: 0,
            interval: 0,
            setup: [0x80, 6, 0, 1, 0, 0, 18, 0],
            data: vec![],
        });
        let submit_out = Cmd::Submit(Submit {
            seqnum: 8,
            devid: 0x0001_0002,
            direction: Direction::Out,
            ep: 1,
            transfer_flags: 0,
            length: 5,
            start_frame: 0,
            number_of_packets: -1,
            interval: 1,
            setup: [0; 8],
            data: vec![1, 0, 1, 1, 2],
        });
        let unlink = Cmd::Unlink(Unlink {
            seqnum: 9,
            devid: 0x0001_0002,
            direction: Direction::Out,
            ep: 0,
            unlink_seqnum: 7,
        });
        let mut s = String::new();
        for (name, c) in [
            ("CMD_SUBMIT in", &submit_in),
            ("CMD_SUBMIT out", &submit_out),
            ("CMD_UNLINK", &unlink),
        ] {
            let b = c.emit();
            assert_eq!(Cmd::decode(&b), Ok(Some((c.clone(), b.len()))));
            assert_eq!(Cmd::decode(&b[..b.len() - 1]), Ok(None));
            s.push_str(&format!("{name}: {}\n", dump(&b)));
        }
        for (name, r) in [
            (
                "RET_SUBMIT in",
                Ret::Submit(RetSubmit {
                    seqnum: 7,
                    status: 0,
                    actual_length: 4,
                    data: vec![4, 3, 9, 4],
                }),
            ),
            (
                "RET_SUBMIT stall",
                Ret::Submit(RetSubmit {
                    seqnum: 10,
                    status: -32,
                    actual_length: 0,
                    data: vec![],
                }),
            ),
            (
                "RET_UNLINK",
                Ret::Unlink(RetUnlink {
                    seqnum: 9,
                    status: -104,
                }),
            ),
        ] {
            let b = r.emit();
            assert_eq!(Ret::decode(&b, |_| true), Ok(Some((r.clone(), b.len()))));
            s.push_str(&format!("{name}: {}\n", dump(&b)));
        }
        insta::assert_snapshot!(s);
    }

    #[test]
    fn op_pdus_round_trip() {
        let reqs = [
            OpRequest::DevList,
            OpRequest::Import {
                busid: "1-12".into(),
            },
        ];
        for r in reqs {
            let b = r.emit();
            assert_eq!(OpRequest::decode(&b), Ok(Some((r, b.len()))));
            assert_eq!(OpRequest::decode(&b[..b.len() - 1]), Ok(None));
        }
        let mut d = device();
        for rep in [
            OpReply::DevList(vec![d.clone(), d.clone()]),
            OpReply::Import(None),
        ] {
            let b = rep.emit();
            assert_eq!(OpReply::decode(&b), Ok(Some((rep, b.len()))));
        }
        let b = OpReply::Import(Some(d.clone())).emit();
        let Ok(Some((OpReply::Import(Some(got)), n))) = OpReply::decode(&b) else {
            panic!()
        };
        assert_eq!(n, b.len());
        // Import records carry no interface list, only the count.
        d.interfaces.iter_mut().for_each(|i| {
            *i = InterfaceInfo {
                class: 0,
                subclass: 0,
                protocol: 0,
            }
        });
        assert_eq!(got, d);
    }

    #[test]
    fn hostile_pdus_are_errors_not_panics() {
        let mut b = OpRequest::DevList.emit();
        b[2] = 0x12;
        assert!(matches!(
            OpRequest::decode(&b),
            Err(PduError::UnknownOp { .. })
        ));
        let mut hdr = vec![0u8; URB_HEADER_LEN];
        hdr[3] = 1; // CMD_SUBMIT
        hdr[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Cmd::decode(&hdr), Err(PduError::TooLong { .. })));
        hdr[24..28].copy_from_slice(&0u32.to_be_bytes());
        hdr[32..36].copy_from_slice(&100_000i32.to_be_bytes());
        assert!(matches!(Cmd::decode(&hdr), Err(PduError::TooLong { .. })));
        hdr[32..36].copy_from_slice(&2i32.to_be_bytes());
        assert_eq!(Cmd::decode(&hdr), Ok(None)); // waits for 2 iso descriptors
        hdr[15] = 7;
        assert_eq!(Cmd::decode(&hdr), Err(PduError::Bad("direction")));
        hdr[15] = 0;
        hdr[3] = 9;
        assert_eq!(Cmd::decode(&hdr), Err(PduError::UnknownCommand(9)));
        let mut rep = OpReply::DevList(vec![]).emit();
        rep[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            OpReply::decode(&rep),
            Err(PduError::TooLong { .. })
        ));
    }
}
