//! The real `usbip list -r 127.0.0.1` (Debian package `usbip`) against our
//! server: every fob is listed with VID 1209 and its interfaces. Fails
//! (with an install hint) when `usbip` is missing: no silent skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::process::Command;
use std::sync::Arc;

use fobsim_clock::TrueClock;
use fobsim_core::Timestamp;
use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::usbip::UsbipServer;
use fobsim_emulator::{Fleet, FleetSpec};

fn usbip_binary() -> String {
    for p in ["/usr/sbin/usbip", "/usr/bin/usbip", "/sbin/usbip"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!(
        "the `usbip` tool is missing: install it with `apt-get install usbip` (tests/run.sh does)"
    );
}

fn run_list(port: u16, keyboard: bool, fleet: &Arc<Fleet>) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Arc::new(UsbipServer::new(Arc::clone(fleet), HidOptions { keyboard }));
    rt.spawn(server.run(listener));
    let out = Command::new(usbip_binary())
        .args(["--tcp-port", &port.to_string(), "list", "-r", "127.0.0.1"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "usbip list failed: {text}");
    eprintln!("{text}");
    text
}

#[test]
fn usbip_list_shows_every_fob_with_its_interfaces() {
    let spec = FleetSpec::uniform("gaht", 3, 1).unwrap();
    let fleet = Arc::new(
        Fleet::new(
            &spec,
            TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
            false,
        )
        .unwrap(),
    );
    let text = run_list(0, true, &fleet);
    // usbip prints, per device:
    //       1-1: Generic : pid.codes Test PID (1209:0001)
    //          : /sys/devices/platform/fobsim/usb1/1-1
    //          : (Defined at Interface level) (00/00/00)
    //          :  0 - Human Interface Device / No Subclass / None (03/00/00)
    //          :  1 - Human Interface Device / Boot Interface Subclass / Keyboard (03/01/01)
    for i in 1..=3 {
        let head = format!("1-{i}:");
        let at = text
            .find(&head)
            .unwrap_or_else(|| panic!("{head} not listed:\n{text}"));
        let block: String = text[at..].lines().take(5).collect::<Vec<_>>().join("\n");
        assert!(block.contains("(1209:0001)"), "{block}");
        assert!(block.contains(&format!("/usb1/1-{i}")), "{block}");
        assert!(
            block.contains("0 - ") && block.contains("(03/00/00)"),
            "{block}"
        );
        assert!(
            block.contains("1 - ") && block.contains("(03/01/01)"),
            "{block}"
        );
    }
    assert!(!text.contains("1-4:"), "{text}");

    // Without the keyboard, one interface each.
    let text = run_list(0, false, &fleet);
    assert_eq!(text.matches("(1209:0001)").count(), 3, "{text}");
    assert!(!text.contains("(03/01/01)"), "{text}");
}
