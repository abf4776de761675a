//! Helpers of the real-kernel tests (`tests/vm/run.sh` boots a stock
//! Debian kernel under qemu and runs the binaries of this crate as root).
//! Outside such a VM the binaries fail loudly: they need `/dev/uhid`,
//! vhci-hcd and root.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fobsim_clock::TrueClock;
use fobsim_core::Kind;
use fobsim_core::{Timestamp, Totp};
use fobsim_emulator::{Fleet, FleetSpec};

/// True time of the tests' frozen manual clock (2023-11-14T22:13:20Z).
pub const T0_MS: u64 = 1_700_000_000_000;

/// A fleet of two gaht fobs, the second 47 s fast and 20 ppm, on a frozen
/// manual clock.
///
/// # Errors
/// Fleet errors.
pub fn fleet() -> anyhow::Result<Arc<Fleet>> {
    let spec = FleetSpec::from_toml(
        "seed = 6\n[[fob]]\nmodel = \"gaht\"\n[[fob]]\nmodel = \"gaht\"\noffset = \"+47s\"\nppm = 20.0\n",
    )?;
    Ok(Arc::new(Fleet::new(
        &spec,
        TrueClock::manual(Timestamp::from_millis(T0_MS)),
        false,
    )?))
}

/// The code fob `index` must show now, computed independently of the fob:
/// TOTP (from its seed record) at its device time.
///
/// # Errors
/// If the fob is not time-based or its clock is stopped.
pub fn expected_code(fleet: &Fleet, index: usize) -> anyhow::Result<String> {
    let records = fleet.seed_records();
    let rec = records.get(index).context("no such fob")?;
    let Kind::Totp { period } = rec.kind else {
        bail!("fob {index} is not time-based");
    };
    let totp = Totp::new(
        rec.algorithm,
        rec.secret.expose(),
        u32::from(rec.digits),
        period,
        0,
    )?;
    let device_ms = fleet
        .with_fob(index, |f, now| f.device_ms(now))
        .flatten()
        .context("the fob's RTC is stopped")?;
    let secs = u64::try_from(device_ms).context("device time before 1970")? / 1000;
    Ok(totp.code_at(secs)?.to_string())
}

/// Poll `f` every 50 ms until it gives `Some`, at most `limit`.
///
/// # Errors
/// `what` did not happen in time.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sysfs directory of the USB device with this serial, if attached.
#[must_use]
pub fn usb_device_with_serial(serial: &str) -> Option<PathBuf> {
    let dir = std::fs::read_dir("/sys/bus/usb/devices").ok()?;
    dir.flatten().map(|e| e.path()).find(|p| {
        read_trim(&p.join("serial")).as_deref() == Some(serial)
            && read_trim(&p.join("idVendor")).as_deref() == Some("1209")
    })
}

/// A sysfs attribute, trimmed.
#[must_use]
pub fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// p50 and p99 of latencies, in microseconds.
#[must_use]
pub fn percentiles(mut v: Vec<Duration>) -> (u128, u128) {
    v.sort();
    if v.is_empty() {
        return (0, 0);
    }
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)].as_micros();
    (at(50), at(99))
}

/// Print a check's outcome; fail the binary on error.
pub fn check(name: &str, r: anyhow::Result<()>) -> bool {
    match r {
        Ok(()) => {
            println!("VMTEST ok   {name}");
            true
        }
        Err(e) => {
            println!("VMTEST FAIL {name}: {e:#}");
            false
        }
    }
}

/// Press the fob `serial` through its vendor hidraw and check that its boot
/// keyboard's hidraw types the code + Enter (a key-up report after each
/// key). `label` names the transport in the log line.
///
/// # Errors
/// Devices that do not appear, short reports, or other keystrokes.
pub fn check_keyboard_typing(serial: &str, label: &str) -> anyhow::Result<()> {
    use fobsim_emulator::hid::client::HidFob;
    let kbd_path = wait_for("the keyboard's hidraw", Duration::from_secs(10), || {
        let api = hidapi::HidApi::new().ok()?;
        api.device_list()
            .find(|d| d.serial_number() == Some(serial) && d.usage_page() == 1 && d.usage() == 6)
            .map(|d| d.path().to_owned())
    })?;
    let api = hidapi::HidApi::new()?;
    let kbd = api.open_path(&kbd_path)?;
    let mut fob = wait_for("the vendor hidraw", Duration::from_secs(10), || {
        HidFob::open(serial).ok()
    })?;
    let code = fob.press()?.code().context("blank")?.to_string();
    let mut reports = Vec::new();
    while reports.len() < 2 * (code.len() + 1) {
        let mut r = [0u8; 8];
        let n = kbd.read_timeout(&mut r, 2000)?;
        anyhow::ensure!(
            n == 8,
            "keyboard report of {n} bytes after {} reports",
            reports.len()
        );
        reports.push(r);
    }
    let want = fobsim_emulator::hid::keyboard::type_code(&code);
    anyhow::ensure!(reports == want, "typed {reports:?}, want {want:?}");
    println!(
        "VMTEST {label} keyboard typed {code} + Enter ({} reports)",
        reports.len()
    );
    Ok(())
}
