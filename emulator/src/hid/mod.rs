//! The USB HID face of a fob, sans-IO: report descriptors, the binary
//! framing of the serial protocol's commands in 64-byte reports
//! (`docs/hid-protocol.md`), the optional boot keyboard, and a per-device
//! [`session::HidSession`] that turns output reports into input reports.
//!
//! Two backends carry these reports to a host kernel: [`crate::uhid`]
//! (Linux `/dev/uhid`) and [`crate::usbip`] (a USB/IP server). The host
//! side is [`client`] (hidapi over hidraw).
//!
//! Layers, bottom up:
//! - [`frame`]: commands and responses in reports (parse/emit);
//! - [`keyboard`]: the boot-keyboard reports that type a code + Enter;
//! - [`session`]: one device's state (pending input reports);
//! - [`client`]: find a fob by serial with hidapi, press, read.

pub mod client;
pub mod frame;
pub mod keyboard;
pub mod session;

/// pid.codes' vendor id for open-source and test devices.
pub const VENDOR_ID: u16 = 0x1209;
/// pid.codes' test product id (`1209:0001`, "pid.codes Test PID").
pub const PRODUCT_ID: u16 = 0x0001;
/// Device release number (`bcdDevice` and the uhid `version`): 0.1.0.
pub const DEVICE_VERSION: u16 = 0x0010;
/// Size of every vendor report (input, output and feature), in bytes.
pub const REPORT_LEN: usize = 64;
/// The vendor usage page (not 0xF1D0, which FIDO stacks claim).
pub const USAGE_PAGE: u16 = 0xFF00;
/// Manufacturer string.
pub const MANUFACTURER: &str = "fobsim";

/// The vendor interface's report descriptor: usage page 0xFF00, usage 1,
/// one application collection holding a 64-byte input, output and feature
/// report, no report ids.
pub const VENDOR_REPORT_DESCRIPTOR: &[u8] = &[
    0x06, 0x00, 0xFF, // Usage Page (Vendor 0xFF00)
    0x09, 0x01, // Usage (1)
    0xA1, 0x01, // Collection (Application)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x09, 0x02, //   Usage (2)
    0x81, 0x02, //   Input (Data, Var, Abs)
    0x09, 0x03, //   Usage (3)
    0x91, 0x02, //   Output (Data, Var, Abs)
    0x09, 0x04, //   Usage (4)
    0xB1, 0x02, //   Feature (Data, Var, Abs)
    0xC0, // End Collection
];

/// The boot keyboard's report descriptor (HID 1.11 appendix B.1): 8-byte
/// input reports (modifiers, reserved, six key codes), a 1-byte LED output.
pub const KEYBOARD_REPORT_DESCRIPTOR: &[u8] = &[
    0x05, 0x01, // Usage Page (Generic Desktop)
    0x09, 0x06, // Usage (Keyboard)
    0xA1, 0x01, // Collection (Application)
    0x05, 0x07, //   Usage Page (Key Codes)
    0x19, 0xE0, //   Usage Minimum (224)
    0x29, 0xE7, //   Usage Maximum (231)
    0x15, 0x00, //   Logical Minimum (0)
    0x25, 0x01, //   Logical Maximum (1)
    0x75, 0x01, //   Report Size (1)
    0x95, 0x08, //   Report Count (8)
    0x81, 0x02, //   Input (Data, Var, Abs): modifiers
    0x95, 0x01, //   Report Count (1)
    0x75, 0x08, //   Report Size (8)
    0x81, 0x01, //   Input (Const): reserved
    0x95, 0x05, //   Report Count (5)
    0x75, 0x01, //   Report Size (1)
    0x05, 0x08, //   Usage Page (LEDs)
    0x19, 0x01, //   Usage Minimum (1)
    0x29, 0x05, //   Usage Maximum (5)
    0x91, 0x02, //   Output (Data, Var, Abs): LEDs
    0x95, 0x01, //   Report Count (1)
    0x75, 0x03, //   Report Size (3)
    0x91, 0x01, //   Output (Const): padding
    0x95, 0x06, //   Report Count (6)
    0x75, 0x08, //   Report Size (8)
    0x15, 0x00, //   Logical Minimum (0)
    0x25, 0x65, //   Logical Maximum (101)
    0x05, 0x07, //   Usage Page (Key Codes)
    0x19, 0x00, //   Usage Minimum (0)
    0x29, 0x65, //   Usage Maximum (101)
    0x81, 0x00, //   Input (Data, Array): keys
    0xC0, // End Collection
];

/// How a fob presents itself over HID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HidOptions {
    /// Add a boot-keyboard interface that types the code + Enter on each
    /// press (off by default).
    pub keyboard: bool,
}

/// The product string of a fob of `model`.
#[must_use]
pub fn product_name(model: &str) -> String {
    format!("fobsim {model} token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.chunks(16)
            .map(|c| {
                c.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn snapshot_report_descriptors() {
        insta::assert_snapshot!(format!(
            "vendor ({} bytes)\n{}\nkeyboard ({} bytes)\n{}",
            VENDOR_REPORT_DESCRIPTOR.len(),
            hex(VENDOR_REPORT_DESCRIPTOR),
            KEYBOARD_REPORT_DESCRIPTOR.len(),
            hex(KEYBOARD_REPORT_DESCRIPTOR)
        ));
    }
}
