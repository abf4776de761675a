//! 1,000 fobs on ptys in one process: PRESS round-trip latency from a
//! client on the same machine, and resident memory per fob.
//!
//! `cargo bench -p fobsim-bench --bench pty_fleet` (prints numbers; set
//! `FOBS=N` and `ROUNDS=N` to change the size). Targets: p50 < 200 µs,
//! p99 < 2 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fobsim_bench::measure::{percentile, rss_kib};
use fobsim_clock::TrueClock;
use fobsim_core::Timestamp;
use fobsim_emulator::{Fleet, FleetSpec, SerialFleet};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A raw client: the slave opened with O_NOCTTY, raw mode, reads time out
/// after 5 s (VMIN 0, VTIME 50).
fn open_client(path: &std::path::Path) -> File {
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_o_noctty())
        .open(path)
        .expect("open pty");
    let mut t = rustix::termios::tcgetattr(f.as_fd()).expect("tcgetattr");
    t.make_raw();
    t.special_codes[rustix::termios::SpecialCodeIndex::VMIN] = 0;
    t.special_codes[rustix::termios::SpecialCodeIndex::VTIME] = 50;
    rustix::termios::tcsetattr(f.as_fd(), rustix::termios::OptionalActions::Now, &t)
        .expect("tcsetattr");
    f
}

fn libc_o_noctty() -> i32 {
    rustix::fs::OFlags::NOCTTY.bits() as i32
}

fn round_trip(f: &mut File, buf: &mut [u8; 64]) -> Duration {
    let t0 = Instant::now();
    f.write_all(b"PRESS\r\n").expect("write");
    let mut got = 0;
    loop {
        let n = f.read(&mut buf[got..]).expect("read");
        assert!(n > 0, "no reply within 5 s");
        got += n;
        if buf[..got].contains(&b'\n') {
            break;
        }
    }
    let dt = t0.elapsed();
    assert!(
        buf.starts_with(b"OK "),
        "{:?}",
        String::from_utf8_lossy(&buf[..got])
    );
    dt
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{name}: n={} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let fobs = env("FOBS", 1000);
    let rounds = env("ROUNDS", 10);
    let limit = fobsim_emulator::raise_fd_limit().expect("raise RLIMIT_NOFILE");
    println!("pty_fleet: {fobs} fobs, {rounds} rounds, RLIMIT_NOFILE {limit}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rss0 = rss_kib();
    let spec = FleetSpec::uniform("gaht", fobs, 1).expect("spec");
    let fleet = Arc::new(
        Fleet::new(
            &spec,
            TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
            false,
        )
        .expect("fleet"),
    );
    let t_start = Instant::now();
    let serial = rt
        .block_on(async { SerialFleet::start(Arc::clone(&fleet), None) })
        .expect("start ptys");
    let started = t_start.elapsed();
    let rss1 = rss_kib();
    println!(
        "started {fobs} ptys in {started:?}; RSS {rss0} KiB -> {rss1} KiB: {:.1} KiB per fob (fob + pty + task)",
        (rss1.saturating_sub(rss0)) as f64 / fobs as f64
    );

    let mut clients: Vec<File> = serial
        .ports()
        .iter()
        .map(|p| open_client(&p.path))
        .collect();
    let mut buf = [0u8; 64];
    // Warm-up: every fob has a connection (server-side session) from here on.
    for c in &mut clients {
        round_trip(c, &mut buf);
    }
    let rss2 = rss_kib();
    println!(
        "with a client on every fob: RSS {rss2} KiB: {:.1} KiB per fob (incl. server sessions and the client fds)",
        (rss2.saturating_sub(rss0)) as f64 / fobs as f64
    );

    // One client at a time, round-robin over the fleet.
    let mut samples = Vec::with_capacity(fobs * rounds);
    for _ in 0..rounds {
        for c in &mut clients {
            samples.push(round_trip(c, &mut buf));
        }
    }
    report("PRESS round trip, sequential", samples);

    // Eight client threads at once, each over its share of the fleet.
    let threads = 8.min(fobs);
    let per = fobs.div_ceil(threads);
    let mut handles = Vec::new();
    let mut rest = clients;
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        let mut mine = std::mem::replace(&mut rest, tail);
        handles.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut s = Vec::with_capacity(mine.len() * rounds);
            for _ in 0..rounds {
                for c in &mut mine {
                    s.push(round_trip(c, &mut buf));
                }
            }
            s
        }));
    }
    let samples: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    report(
        &format!("PRESS round trip, {threads} concurrent clients"),
        samples,
    );

    rt.block_on(serial.shutdown());
}
