//! Fleet simulation: 10,000 fobs with random ±30 ppm skew, daily sign-ins
//! for 5 simulated years against the SQLite engine (target: < 60 s).
//! Prints the wall time, the accept rate and the resync counts.
//!
//! `FOBSIM_FLEET_FOBS`, `FOBSIM_FLEET_DAYS`, `FOBSIM_FLEET_STORE=memory`
//! and `FOBSIM_FLEET_BATCH=0` change the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::time::Instant;

use fobsim_bench::simulation::{self, SimulationSpec};
use fobsim_engine::{Engine, Profile};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run small then.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut spec = SimulationSpec::default();
    spec.fobs = env("FOBSIM_FLEET_FOBS", if benching { spec.fobs } else { 50 });
    spec.days = env("FOBSIM_FLEET_DAYS", if benching { spec.days } else { 30 });
    spec.batch = env("FOBSIM_FLEET_BATCH", 1u8) != 0;
    let store: String = env("FOBSIM_FLEET_STORE", "sqlite".to_string());
    let dir = std::env::temp_dir().join(format!("fobsim-fleet-{}", std::process::id()));
    let engine = if store == "memory" {
        Engine::in_memory(Profile::for_tests())
    } else {
        std::fs::create_dir_all(&dir).expect("temp dir");
        simulation::sqlite_engine(&dir.join("fleet.sqlite"), spec.seed).expect("sqlite engine")
    };
    let started = Instant::now();
    let total = spec.days;
    let stats = simulation::simulate(&engine, &spec, &mut |day| {
        if benching && day % 365 == 0 {
            eprintln!(
                "  day {day}/{total}: {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    })
    .expect("fleet simulation");
    let wall = started.elapsed().as_secs_f64();
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fleet: {} fobs x {} days, ±{} ppm, store {store}, batch {}: {:.1} s wall ({:.0} sign-ins/s)",
        spec.fobs,
        spec.days,
        spec.max_ppm,
        spec.batch,
        wall,
        stats.sign_ins as f64 / wall
    );
    println!(
        "fleet: {} sign-ins, {} accepted first try (accept rate {:.4}%), {} resyncs ({} failed), {} accepted after resync",
        stats.sign_ins,
        stats.accepted,
        stats.accept_rate() * 100.0,
        stats.resyncs,
        stats.resync_failures,
        stats.accepted_after_resync
    );
}
