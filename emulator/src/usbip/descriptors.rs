//! The USB descriptors of a fob: device, configuration (interfaces, HID
//! class descriptors, endpoints) and strings. Sans-IO byte builders.

use crate::hid::keyboard::KEYBOARD_REPORT_LEN;
use crate::hid::{
    DEVICE_VERSION, KEYBOARD_REPORT_DESCRIPTOR, MANUFACTURER, PRODUCT_ID, REPORT_LEN, VENDOR_ID,
    VENDOR_REPORT_DESCRIPTOR,
};

/// Descriptor type: device.
pub const DT_DEVICE: u8 = 1;
/// Descriptor type: configuration.
pub const DT_CONFIG: u8 = 2;
/// Descriptor type: string.
pub const DT_STRING: u8 = 3;
/// Descriptor type: interface.
pub const DT_INTERFACE: u8 = 4;
/// Descriptor type: endpoint.
pub const DT_ENDPOINT: u8 = 5;
/// Descriptor type: HID.
pub const DT_HID: u8 = 0x21;
/// Descriptor type: HID report.
pub const DT_REPORT: u8 = 0x22;

/// The vendor interface's interrupt IN endpoint.
pub const EP_VENDOR_IN: u8 = 0x81;
/// The vendor interface's interrupt OUT endpoint.
pub const EP_VENDOR_OUT: u8 = 0x01;
/// The keyboard's interrupt IN endpoint.
pub const EP_KEYBOARD_IN: u8 = 0x82;
/// Interface number of the vendor interface.
pub const IFACE_VENDOR: u8 = 0;
/// Interface number of the keyboard interface.
pub const IFACE_KEYBOARD: u8 = 1;

/// String index of the manufacturer.
pub const STR_MANUFACTURER: u8 = 1;
/// String index of the product.
pub const STR_PRODUCT: u8 = 2;
/// String index of the serial number.
pub const STR_SERIAL: u8 = 3;

/// All descriptors of one fob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptors {
    /// Device descriptor (18 bytes).
    pub device: Vec<u8>,
    /// Configuration descriptor with everything below it.
    pub configuration: Vec<u8>,
    /// Strings 1.. (manufacturer, product, serial).
    strings: Vec<String>,
    /// Whether the keyboard interface is there.
    pub keyboard: bool,
}

fn le16(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}

fn hid_descriptor(report_len: usize) -> [u8; 9] {
    let l = le16(u16::try_from(report_len).unwrap_or(u16::MAX));
    // bcdHID 1.11, no country, one report descriptor.
    [9, DT_HID, 0x11, 0x01, 0, 1, DT_REPORT, l[0], l[1]]
}

fn endpoint(address: u8, max_packet: usize, interval: u8) -> [u8; 7] {
    let m = le16(u16::try_from(max_packet).unwrap_or(u16::MAX));
    // bmAttributes 3: interrupt.
    [7, DT_ENDPOINT, address, 3, m[0], m[1], interval]
}

impl Descriptors {
    /// The descriptors of a fob with `serial`, product string `product`,
    /// and optionally the boot keyboard.
    #[must_use]
    pub fn new(serial: &str, product: &str, keyboard: bool) -> Self {
        let v = le16(VENDOR_ID);
        let p = le16(PRODUCT_ID);
        let d = le16(DEVICE_VERSION);
        let device = vec![
            18,
            DT_DEVICE,
            0x00,
            0x02, // bcdUSB 2.00
            0,
            0,
            0,  // class per interface
            64, // bMaxPacketSize0
            v[0],
            v[1],
            p[0],
            p[1],
            d[0],
            d[1],
            STR_MANUFACTURER,
            STR_PRODUCT,
            STR_SERIAL,
            1, // bNumConfigurations
        ];
        let n_if = if keyboard { 2 } else { 1 };
        let mut c = vec![9, DT_CONFIG, 0, 0, n_if, 1, 0, 0x80, 50];
        // Vendor interface: HID, no subclass/protocol, two endpoints.
        c.extend([9, DT_INTERFACE, IFACE_VENDOR, 0, 2, 3, 0, 0, 0]);
        c.extend(hid_descriptor(VENDOR_REPORT_DESCRIPTOR.len()));
        c.extend(endpoint(EP_VENDOR_IN, REPORT_LEN, 1));
        c.extend(endpoint(EP_VENDOR_OUT, REPORT_LEN, 1));
        if keyboard {
            // Boot keyboard: HID, subclass 1 (boot), protocol 1 (keyboard).
            c.extend([9, DT_INTERFACE, IFACE_KEYBOARD, 0, 1, 3, 1, 1, 0]);
            c.extend(hid_descriptor(KEYBOARD_REPORT_DESCRIPTOR.len()));
            c.extend(endpoint(EP_KEYBOARD_IN, KEYBOARD_REPORT_LEN, 10));
        }
        let total = le16(u16::try_from(c.len()).unwrap_or(u16::MAX));
        c[2] = total[0];
        c[3] = total[1];
        Descriptors {
            device,
            configuration: c,
            strings: vec![
                MANUFACTURER.to_string(),
                product.to_string(),
                serial.to_string(),
            ],
            keyboard,
        }
    }

    /// String descriptor `index` (0: the language list, US English), or
    /// `None` for an index that does not exist.
    #[must_use]
    pub fn string(&self, index: u8) -> Option<Vec<u8>> {
        if index == 0 {
            return Some(vec![4, DT_STRING, 0x09, 0x04]);
        }
        let s = self.strings.get(usize::from(index) - 1)?;
        // At most 126 UTF-16 units fit a descriptor.
        let units: Vec<u16> = s.encode_utf16().take(126).collect();
        let mut out = Vec::with_capacity(2 + 2 * units.len());
        out.push(u8::try_from(2 + 2 * units.len()).unwrap_or(u8::MAX));
        out.push(DT_STRING);
        for u in units {
            out.extend(u.to_le_bytes());
        }
        Some(out)
    }

    /// Interface numbers present.
    #[must_use]
    pub fn has_interface(&self, iface: u16) -> bool {
        iface == u16::from(IFACE_VENDOR) || (self.keyboard && iface == u16::from(IFACE_KEYBOARD))
    }

    /// The report descriptor of interface `iface`.
    #[must_use]
    pub fn report(&self, iface: u16) -> Option<&'static [u8]> {
        match iface {
            0 => Some(VENDOR_REPORT_DESCRIPTOR),
            1 if self.keyboard => Some(KEYBOARD_REPORT_DESCRIPTOR),
            _ => None,
        }
    }

    /// The HID class descriptor of interface `iface`.
    #[must_use]
    pub fn hid(&self, iface: u16) -> Option<Vec<u8>> {
        self.report(iface).map(|r| hid_descriptor(r.len()).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn snapshot_descriptors() {
        let mut s = String::new();
        for kbd in [false, true] {
            let d = Descriptors::new("GAHT00000001", "fobsim gaht token", kbd);
            s.push_str(&format!(
                "keyboard={kbd}\ndevice: {}\nconfiguration: {}\n",
                hex(&d.device),
                hex(&d.configuration)
            ));
            for i in 0..4 {
                s.push_str(&format!("string {i}: {}\n", hex(&d.string(i).unwrap())));
            }
            for i in 0..2 {
                if let Some(h) = d.hid(i) {
                    s.push_str(&format!("hid {i}: {}\n", hex(&h)));
                }
            }
        }
        insta::assert_snapshot!(s);
    }

    #[test]
    fn lengths_are_consistent() {
        let d = Descriptors::new("S", "P", true);
        assert_eq!(
            usize::from(u16::from_le_bytes([d.configuration[2], d.configuration[3]])),
            d.configuration.len()
        );
        assert_eq!(d.string(4), None);
        assert_eq!(d.report(2), None);
        assert!(!Descriptors::new("S", "P", false).has_interface(1));
    }
}
