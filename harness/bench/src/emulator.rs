//! `emulator`: in-process fleet memory (VmRSS delta per fob, up to 100,000
//! fobs), pty `PRESS` round trip, USB/IP round trip.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fobsim_core::Timestamp;

use crate::measure::rss_kib;
use crate::report::Row;
use crate::{BenchError, Group, Options, setup};

pub(crate) fn fleet_memory() -> Vec<Row> {
    let mut rows = Vec::new();
    for n in [1_000usize, 10_000, 100_000] {
        let id = format!("emulator.fleet-memory.{n}");
        let name = format!("in-process fleet of {n} fobs (gaht): memory per fob");
        let r = (|| -> Result<(f64, f64, Duration), BenchError> {
            let spec = fobsim_emulator::FleetSpec::uniform("gaht", n, 1)
                .map_err(|e| setup("fleet spec", e))?;
            let before = rss_kib();
            let t = Instant::now();
            let fleet = fobsim_emulator::Fleet::new(
                &spec,
                fobsim_clock::TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
                false,
            )
            .map_err(|e| setup("fleet", e))?;
            let took = t.elapsed();
            let after = rss_kib();
            black_box(&fleet);
            drop(fleet);
            drop(spec);
            let delta = after.saturating_sub(before) as f64 * 1024.0;
            Ok((delta / n as f64, delta / (1024.0 * 1024.0), took))
        })();
        rows.push(match r {
            Ok((per, total, took)) => {
                Row::new(&id, Group::Emulator, &name, per, "bytes/fob").note(format!(
                    "VmRSS delta {total:.1} MiB for {n} fobs (Fleet::new, built in {:.0} ms)",
                    took.as_secs_f64() * 1e3
                ))
            }
            Err(e) => Row::missing(&id, Group::Emulator, &name, "bytes/fob", e.to_string()),
        });
    }
    rows
}

pub(crate) fn run(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    opts.say("emulator: pty PRESS");
    let id = "emulator.pty-press";
    let name = "pty PRESS round trip (SerialClient, 1 client, sequential)";
    rows.push(match pty_press(opts, &rt) {
        Ok((rate, mut lat, fobs)) => Row::new(id, Group::Emulator, name, rate, "round trips/s")
            .lat(&mut lat)
            .note(format!("{fobs} fobs on ptys, round-robin")),
        Err(e) => Row::missing(id, Group::Emulator, name, "round trips/s", e.to_string()),
    });
    opts.say("emulator: USB/IP PRESS");
    let id = "emulator.usbip-press";
    let name = "USB/IP loopback PRESS round trip (HID report, 1 client)";
    rows.push(match usbip_press(opts, &rt) {
        Ok((rate, mut lat)) => Row::new(id, Group::Emulator, name, rate, "round trips/s")
            .lat(&mut lat)
            .note("user-space USB/IP client over TCP loopback"),
        Err(e) => Row::missing(id, Group::Emulator, name, "round trips/s", e.to_string()),
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn pty_press(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
) -> Result<(f64, Vec<Duration>, usize), BenchError> {
    let fobs = if opts.quick { 10 } else { 100 };
    let rounds = if opts.quick { 20 } else { 50 };
    let spec =
        fobsim_emulator::FleetSpec::uniform("gaht", fobs, 1).map_err(|e| setup("fleet", e))?;
    let fleet = Arc::new(
        fobsim_emulator::Fleet::new(
            &spec,
            fobsim_clock::TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
            false,
        )
        .map_err(|e| setup("fleet", e))?,
    );
    let serial = {
        let _g = rt.enter();
        fobsim_emulator::SerialFleet::start(Arc::clone(&fleet), None)
            .map_err(|e| setup("ptys", e))?
    };
    let result = (|| {
        let mut clients = Vec::with_capacity(fobs);
        for p in serial.ports() {
            let mut c = fobsim_emulator::serial::client::SerialClient::open(
                &p.path,
                Duration::from_secs(5),
            )
            .map_err(|e| setup("pty client", e))?;
            c.press().map_err(|e| setup("pty press", e))?;
            clients.push(c);
        }
        let mut lat = Vec::with_capacity(fobs * rounds);
        let start = Instant::now();
        for _ in 0..rounds {
            for c in &mut clients {
                let t = Instant::now();
                c.press().map_err(|e| setup("pty press", e))?;
                lat.push(t.elapsed());
            }
        }
        let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
        Ok((rate, lat, fobs))
    })();
    rt.block_on(serial.shutdown());
    result
}

fn usbip_press(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
) -> Result<(f64, Vec<Duration>), BenchError> {
    use fobsim_emulator::command::Command as FobCommand;
    use fobsim_emulator::usbip::client::Imported;
    use fobsim_emulator::usbip::{UsbipServer, bus_id};
    let rounds = if opts.quick { 2_000 } else { 20_000 };
    let spec = fobsim_emulator::FleetSpec::uniform("gaht", 1, 1).map_err(|e| setup("fleet", e))?;
    let fleet = Arc::new(
        fobsim_emulator::Fleet::new(
            &spec,
            fobsim_clock::TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
            false,
        )
        .map_err(|e| setup("fleet", e))?,
    );
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(
            Arc::new(UsbipServer::new(
                fleet,
                fobsim_emulator::hid::HidOptions::default(),
            ))
            .run(listener),
        );
        let r = async {
            let io = tokio::net::TcpStream::connect(addr).await?;
            io.set_nodelay(true)?;
            let mut dev = Imported::import(io, &bus_id(0))
                .await
                .map_err(|e| setup("usbip import", e))?;
            dev.set_configuration(1)
                .await
                .map_err(|e| setup("usbip configure", e))?;
            for _ in 0..100 {
                dev.command(&FobCommand::Press)
                    .await
                    .map_err(|e| setup("usbip press", e))?;
            }
            let mut lat = Vec::with_capacity(rounds);
            let start = Instant::now();
            for _ in 0..rounds {
                let t = Instant::now();
                dev.command(&FobCommand::Press)
                    .await
                    .map_err(|e| setup("usbip press", e))?;
                lat.push(t.elapsed());
            }
            Ok::<_, BenchError>((rounds as f64 / start.elapsed().as_secs_f64(), lat))
        }
        .await;
        server.abort();
        r
    })
}
