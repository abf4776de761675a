//! The fob panel's HTTP control API on loopback: `POST
//! /api/fobs/{serial}/press` round trips (hyper server, control-plane
//! `apply`, the fob) — latency p50/p99 and rate, from one keep-alive
//! client and from several at once; and the panel's own requests (`GET /`,
//! the `GET /api/fobs` it polls).
//!
//! `cargo bench -p fobsim-emulator --bench http_press` (prints numbers;
//! `ROUNDS=N` presses per client, `CLIENTS=N` concurrent clients, `FOBS=N`
//! fobs in the fleet).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use fobsim_clock::TrueClock;
use fobsim_clock::control::Fobs;
use fobsim_core::Timestamp;
use fobsim_emulator::http::ControlApi;
use fobsim_emulator::http::client::PanelClient;
use fobsim_emulator::http::server::Loopback;
use fobsim_emulator::{Fleet, FleetSpec};

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

/// `rounds` requests from one connection; their latencies.
fn run(
    addr: std::net::SocketAddr,
    rounds: usize,
    method: &str,
    paths: &[String],
    body: Option<&str>,
) -> Vec<Duration> {
    let mut c = PanelClient::connect(addr).expect("connect");
    for p in paths.iter().cycle().take(100) {
        let a = c.request(method, p, body).expect("warm-up");
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    let mut lat = Vec::with_capacity(rounds);
    for p in paths.iter().cycle().take(rounds) {
        let t = Instant::now();
        let a = c.request(method, p, body).expect("request");
        lat.push(t.elapsed());
        assert_eq!(a.status, 200);
    }
    lat
}

fn report(what: &str, mut lat: Vec<Duration>, wall: Duration) {
    let n = lat.len();
    let p50 = pct(&mut lat, 50);
    let p99 = pct(&mut lat, 99);
    println!(
        "{what}: {n} requests, {:.0} req/s, p50 {:.1} µs, p99 {:.1} µs",
        n as f64 / wall.as_secs_f64(),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
    );
}

fn main() {
    let rounds = env("ROUNDS", 20_000);
    let clients = env("CLIENTS", 4);
    let fobs = env("FOBS", 100);
    let fleet = Arc::new(
        Fleet::new(
            &FleetSpec::uniform("gaht", fobs, 0).expect("spec"),
            TrueClock::manual(Timestamp::from_secs(1_767_225_600)),
            false,
        )
        .expect("fleet"),
    );
    let f2 = Arc::clone(&fleet);
    let server = Loopback::start(move |addr| {
        ControlApi::new(Arc::clone(f2.clock()), f2 as Arc<dyn Fobs>).bound_to(addr)
    })
    .expect("server");
    let addr = server.addr();
    let presses: Vec<String> = fleet
        .devices()
        .iter()
        .map(|d| format!("/api/fobs/{}/press", d.serial()))
        .collect();

    let t = Instant::now();
    let lat = run(addr, rounds, "POST", &presses, Some(""));
    report(
        &format!("press over HTTP, 1 keep-alive client, {fobs} fobs round-robin"),
        lat,
        t.elapsed(),
    );

    let t = Instant::now();
    let all: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| s.spawn(|| run(addr, rounds / clients, "POST", &presses, Some(""))))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect()
    });
    report(
        &format!("press over HTTP, {clients} keep-alive clients at once"),
        all,
        t.elapsed(),
    );

    let page = vec!["/".to_string()];
    let t = Instant::now();
    let lat = run(addr, rounds / 4, "GET", &page, None);
    report("GET / (the panel page), 1 client", lat, t.elapsed());

    let list = vec!["/api/fobs".to_string()];
    let t = Instant::now();
    let lat = run(addr, rounds / 10, "GET", &list, None);
    report(
        &format!("GET /api/fobs (what the panel polls), {fobs} fobs, 1 client"),
        lat,
        t.elapsed(),
    );
}
