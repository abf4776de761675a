//! In the VM: the emulator creates fobs through /dev/uhid; hidapi finds
//! each by serial, presses, and reads the code TOTP gives at the fob's
//! device time; GET/SET_REPORT through hidraw ioctls are answered (their id
//! echoed, or the kernel would time out); the devices vanish on shutdown.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::hid::client::{HidFob, list};
use fobsim_emulator::uhid::UhidFleet;
use fobsim_vmtests::{check, check_keyboard_typing, expected_code, fleet, percentiles, wait_for};

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
    let uhid = rt
        .block_on(async { UhidFleet::start(fleet.clone(), HidOptions::default()) })
        .context("starting the uhid fleet")?;
    wait_for("both fobs on hidraw", Duration::from_secs(10), || {
        let found = list().ok()?;
        serials
            .iter()
            .all(|s| found.iter().any(|f| &f.serial == s))
            .then_some(())
    })?;
    println!("VMTEST hidraw: {:?}", list()?);

    for (index, serial) in serials.iter().enumerate() {
        let mut fob = HidFob::open(serial)?;
        let want = expected_code(&fleet, index)?;
        let got = fob
            .press()?
            .code()
            .context("blank after press")?
            .to_string();
        ensure!(
            got == want,
            "{serial}: pressed {got}, TOTP at device time says {want}"
        );
        let shown = fob.display()?.code().context("blank display")?.to_string();
        ensure!(shown == want, "{serial}: display {shown}, want {want}");
        let info = fob.info()?;
        ensure!(
            info.serial == *serial,
            "INFO serial {} != {serial}",
            info.serial
        );
        match fob.command(&fobsim_emulator::serial::Command::Clock)? {
            a if a.status == 403 => {}
            a => bail!("CLOCK outside test mode answered {a:?}, want 403"),
        }
        println!("VMTEST uhid {serial}: code {got} (TOTP at device time), INFO {info:?}");
    }

    // GET_REPORT / SET_REPORT over hidraw ioctls: answered, id echoed.
    {
        let api = hidapi::HidApi::new()?;
        let path = list()?
            .into_iter()
            .find(|f| f.serial == serials[0])
            .context("fob gone")?
            .path;
        let dev = api.open_path(&std::ffi::CString::new(path)?)?;
        let mut report = [0u8; 65];
        report[1..].copy_from_slice(&fobsim_emulator::hid::frame::encode_command(
            0x77,
            &fobsim_emulator::serial::Command::Ping(Some("feat".into())),
        ));
        let t = Instant::now();
        dev.send_feature_report(&report)
            .context("SET_REPORT (feature)")?;
        let mut buf = [0u8; 65];
        let n = dev
            .get_feature_report(&mut buf)
            .context("GET_REPORT (feature)")?;
        ensure!(
            t.elapsed() < Duration::from_secs(4),
            "GET/SET_REPORT took {:?}: id not echoed?",
            t.elapsed()
        );
        println!("VMTEST feature report: {n} bytes");
        let mut r = [0u8; 64];
        let n = dev.read_timeout(&mut r, 2000)?;
        let a = fobsim_emulator::hid::frame::AnswerAssembler::new(0x77)
            .feed(&r[..n])?
            .context("answer incomplete")?;
        ensure!(a.text == "PONG feat", "feature command answered {a:?}");
    }

    // Round-trip latency (informational: software emulation).
    let mut fob = HidFob::open(&serials[0])?;
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        fob.press()?;
        lat.push(t.elapsed());
    }
    let (p50, p99) = percentiles(lat);
    println!("VMTEST uhid press round trip: p50 {p50} us, p99 {p99} us (200 presses, qemu TCG)");
    drop(fob);

    rt.block_on(uhid.shutdown());
    wait_for(
        "the hidraw devices to go away (UHID_DESTROY)",
        Duration::from_secs(10),
        || {
            let found = list().ok()?;
            (!found.iter().any(|f| serials.contains(&f.serial))).then_some(())
        },
    )?;
    keyboard(&rt)
}

/// With the boot keyboard on, a press types the code + Enter on a second
/// HID device (key down, key up for each key).
fn keyboard(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let fleet = fleet()?;
    let serial = fleet.devices()[0].serial().to_string();
    let uhid = rt
        .block_on(async { UhidFleet::start(fleet.clone(), HidOptions { keyboard: true }) })
        .context("starting the uhid fleet with keyboards")?;
    check_keyboard_typing(&serial, "uhid")?;
    rt.block_on(uhid.shutdown());
    Ok(())
}

fn main() -> ExitCode {
    if check(
        "uhid: hidapi finds fobs by serial, press reads the right code",
        run(),
    ) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
