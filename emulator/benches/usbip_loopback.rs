//! USB/IP over TCP loopback: PRESS round trips (interrupt OUT + interrupt
//! IN, through the server, the USB device model and the fob) per second,
//! and their latency, from one client and from several at once.
//!
//! `cargo bench -p fobsim-emulator --bench usbip_loopback` (prints
//! numbers; `ROUNDS=N` presses per client, `CLIENTS=N` concurrent clients).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use fobsim_clock::TrueClock;
use fobsim_core::Timestamp;
use fobsim_emulator::command::Command;
use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::usbip::client::Imported;
use fobsim_emulator::usbip::{UsbipServer, bus_id};
use fobsim_emulator::{Fleet, FleetSpec};
use tokio::net::{TcpListener, TcpStream};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [Duration], q: usize) -> Duration {
    v.sort();
    v[(v.len() * q / 100).min(v.len() - 1)]
}

async fn client(addr: std::net::SocketAddr, index: usize, rounds: usize) -> Vec<Duration> {
    let io = TcpStream::connect(addr).await.expect("connect");
    io.set_nodelay(true).expect("nodelay");
    let mut dev = Imported::import(io, &bus_id(index)).await.expect("import");
    dev.set_configuration(1).await.expect("configure");
    for _ in 0..100 {
        dev.command(&Command::Press).await.expect("warm-up press");
    }
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let a = dev.command(&Command::Press).await.expect("press");
        lat.push(t.elapsed());
        assert_eq!(a.status, 0);
    }
    lat
}

fn main() {
    let rounds = env("ROUNDS", 20_000);
    let clients = env("CLIENTS", 8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spec = FleetSpec::uniform("gaht", clients.max(1), 1).expect("spec");
    let fleet = Arc::new(
        Fleet::new(
            &spec,
            TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
            false,
        )
        .expect("fleet"),
    );
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(Arc::new(UsbipServer::new(fleet, HidOptions::default())).run(listener));

        let t = Instant::now();
        let mut lat = client(addr, 0, rounds).await;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "usbip loopback, 1 client: {:.0} press round trips/s, p50 {:?}, p99 {:?} ({rounds} presses)",
            rounds as f64 / secs,
            pct(&mut lat, 50),
            pct(&mut lat, 99)
        );

        let t = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|i| tokio::spawn(client(addr, i, rounds / clients.max(1))))
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client task"));
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "usbip loopback, {clients} clients (one fob each): {:.0} press round trips/s, p50 {:?}, p99 {:?}",
            all.len() as f64 / secs,
            pct(&mut all, 50),
            pct(&mut all, 99)
        );
    });
}
