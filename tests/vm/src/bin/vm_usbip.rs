//! In the VM: the emulator serves USB/IP on 127.0.0.1:3240; the real
//! `usbip attach` makes fobs USB devices through vhci-hcd; rusb (libusb)
//! reads their descriptors with the fob's serial; hidapi (hidraw, usbhid)
//! presses and reads the right code; detach and re-attach work.

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use fobsim_emulator::hid::client::HidFob;
use fobsim_emulator::hid::{HidOptions, PRODUCT_ID, VENDOR_ID};
use fobsim_emulator::usbip::UsbipServer;
use fobsim_vmtests::{
    check, check_keyboard_typing, expected_code, fleet, percentiles, usb_device_with_serial,
    wait_for,
};

fn usbip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("usbip")
        .args(args)
        .output()
        .context("running usbip (is it in the initramfs?)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("usbip {}: {}", args.join(" "), text.trim());
    }
    Ok(text)
}

fn attach(busid: &str) -> anyhow::Result<()> {
    // Right after a detach the server may not have seen the old
    // connection close yet (import refused as busy): retry a little.
    let start = Instant::now();
    loop {
        match usbip(&["attach", "-r", "127.0.0.1", "-b", busid]) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() < Duration::from_secs(5) => {
                println!("VMTEST attach {busid} retry: {e:#}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The vhci ports in use, from `usbip port`.
fn ports_in_use() -> anyhow::Result<Vec<String>> {
    let text = usbip(&["port"])?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("Port ") && l.contains("Port in Use"))
        .filter_map(|l| l.trim_start_matches("Port ").split(':').next())
        .map(|p| p.trim().to_string())
        .collect())
}

/// rusb: find the device with this serial and check its descriptors.
fn check_with_rusb(serial: &str) -> anyhow::Result<()> {
    use rusb::UsbContext as _;
    let ctx = rusb::Context::new().context("libusb init")?;
    let mut seen = Vec::new();
    for dev in ctx.devices()?.iter() {
        let d = dev.device_descriptor()?;
        if d.vendor_id() != VENDOR_ID {
            continue;
        }
        let h = dev.open().context("opening the device with libusb")?;
        let s = h.read_serial_number_string_ascii(&d)?;
        seen.push(s.clone());
        if s != serial {
            continue;
        }
        ensure!(
            d.product_id() == PRODUCT_ID,
            "idProduct {:04x}",
            d.product_id()
        );
        let product = h.read_product_string_ascii(&d)?;
        let maker = h.read_manufacturer_string_ascii(&d)?;
        let cfg = dev.active_config_descriptor()?;
        let iface = cfg.interfaces().next().context("no interface")?;
        let alt = iface.descriptors().next().context("no alt setting")?;
        ensure!(
            alt.class_code() == 3,
            "interface class {}",
            alt.class_code()
        );
        let eps: Vec<(u8, rusb::TransferType, u16)> = alt
            .endpoint_descriptors()
            .map(|e| (e.address(), e.transfer_type(), e.max_packet_size()))
            .collect();
        ensure!(
            eps == [
                (0x81, rusb::TransferType::Interrupt, 64),
                (0x01, rusb::TransferType::Interrupt, 64)
            ],
            "endpoints {eps:?}"
        );
        println!(
            "VMTEST rusb {:03}:{:03} {:04x}:{:04x} {maker:?} {product:?} serial {s:?} config {} endpoints {eps:?}",
            dev.bus_number(),
            dev.address(),
            d.vendor_id(),
            d.product_id(),
            cfg.number()
        );
        return Ok(());
    }
    bail!("rusb found no 1209 device with serial {serial} (saw {seen:?})")
}

fn press_and_check(
    fleet: &fobsim_emulator::Fleet,
    index: usize,
    serial: &str,
) -> anyhow::Result<()> {
    let mut fob = wait_for(
        "hidraw of the attached fob",
        Duration::from_secs(10),
        || HidFob::open(serial).ok(),
    )?;
    let want = expected_code(fleet, index)?;
    let got = fob
        .press()?
        .code()
        .context("blank after press")?
        .to_string();
    ensure!(
        got == want,
        "{serial}: pressed {got}, TOTP at device time says {want}"
    );
    let info = fob.info()?;
    ensure!(info.serial == serial, "INFO serial {}", info.serial);
    println!("VMTEST usbip {serial}: code {got} (TOTP at device time)");
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let fleet = fleet()?;
    let serials: Vec<String> = fleet
        .devices()
        .iter()
        .map(|d| d.serial().to_string())
        .collect();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind((
            "127.0.0.1",
            fobsim_emulator::usbip::DEFAULT_PORT,
        )))
        .context("binding 127.0.0.1:3240")?;
    let server = Arc::new(UsbipServer::new(Arc::clone(&fleet), HidOptions::default()));
    rt.spawn(server.run(listener));

    let listed = usbip(&["list", "-r", "127.0.0.1"])?;
    ensure!(
        listed.matches("(1209:0001)").count() == 2,
        "usbip list:\n{listed}"
    );

    // Attach 1-1, check, detach; then attach both, check, detach all.
    for round in [vec![0usize], vec![0, 1]] {
        for &i in &round {
            attach(&fobsim_emulator::usbip::bus_id(i))?;
        }
        for &i in &round {
            let serial = &serials[i];
            let dir = wait_for(
                "the attached device in sysfs",
                Duration::from_secs(10),
                || usb_device_with_serial(serial),
            )?;
            println!("VMTEST attached {serial} at {}", dir.display());
            check_with_rusb(serial)?;
            press_and_check(&fleet, i, serial)?;
        }
        if round.len() == 1 {
            // Press latency through the whole kernel stack (informational).
            let mut fob = HidFob::open(&serials[0])?;
            let mut lat = Vec::new();
            for _ in 0..100 {
                let t = Instant::now();
                fob.press()?;
                lat.push(t.elapsed());
            }
            let (p50, p99) = percentiles(lat);
            println!(
                "VMTEST usbip-attached press round trip: p50 {p50} us, p99 {p99} us (100 presses, qemu TCG)"
            );
        }
        let ports = ports_in_use()?;
        ensure!(ports.len() == round.len(), "ports in use {ports:?}");
        for p in &ports {
            usbip(&["detach", "-p", p])?;
        }
        for &i in &round {
            wait_for(
                "the detached device to go away",
                Duration::from_secs(10),
                || usb_device_with_serial(&serials[i]).is_none().then_some(()),
            )?;
        }
        println!(
            "VMTEST detached {:?}",
            round.iter().map(|&i| &serials[i]).collect::<Vec<_>>()
        );
    }
    keyboard(&rt, &fleet)
}

/// A second server, with the boot keyboard, on port 3241: after `usbip
/// attach` usbhid binds both interfaces, and a press types the code + Enter
/// on the keyboard's hidraw.
fn keyboard(
    rt: &tokio::runtime::Runtime,
    fleet: &Arc<fobsim_emulator::Fleet>,
) -> anyhow::Result<()> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 3241)))
        .context("binding 127.0.0.1:3241")?;
    let server = Arc::new(UsbipServer::new(
        Arc::clone(fleet),
        HidOptions { keyboard: true },
    ));
    rt.spawn(server.run(listener));
    let serial = fleet.devices()[0].serial().to_string();
    usbip(&[
        "--tcp-port",
        "3241",
        "attach",
        "-r",
        "127.0.0.1",
        "-b",
        "1-1",
    ])?;
    check_keyboard_typing(&serial, "usbip")?;
    for p in ports_in_use()? {
        usbip(&["detach", "-p", &p])?;
    }
    Ok(())
}

fn main() -> ExitCode {
    if check(
        "usbip: attach, rusb descriptors, hidapi press, detach, re-attach",
        run(),
    ) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
