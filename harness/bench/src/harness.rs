//! `harness`: the built-in suite's wall time and the fleet simulation.

use std::time::Instant;

use crate::measure::median;
use crate::report::Row;
use crate::{BenchError, Group, Options, setup};

pub(crate) fn run(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    use fobsim_engines::builtin::Builtin;
    use fobsim_harness::driver::InProcess;
    use fobsim_harness::runner::{DEFAULT_SEED, Runner, Verdict};
    opts.say("harness: built-in suite");
    let scenarios = fobsim_harness::suite::builtin().map_err(|e| setup("built-in suite", e))?;
    let mut walls = Vec::new();
    let mut passed = 0;
    for _ in 0..opts.runs() {
        let t = Instant::now();
        let mut engine = Builtin::in_memory(DEFAULT_SEED);
        let mut fobs = InProcess;
        let mut runner = Runner::new(&mut engine, &mut fobs, DEFAULT_SEED);
        passed = scenarios
            .iter()
            .filter(|s| runner.run(s).verdict == Verdict::Pass)
            .count();
        walls.push(t.elapsed().as_secs_f64() * 1e3);
    }
    rows.push(
        Row::new(
            "harness.suite",
            Group::Harness,
            &format!(
                "built-in suite, {} scenarios, in-memory engine",
                scenarios.len()
            ),
            median(walls),
            "ms",
        )
        .note(format!(
            "median of {} runs; {passed}/{} passed",
            opts.runs(),
            scenarios.len()
        )),
    );
    opts.say("harness: fleet simulation");
    let mut spec = crate::simulation::SimulationSpec::default();
    if opts.quick {
        spec.fobs = 1_000;
        spec.days = 365;
    }
    let dir = tempfile::tempdir()?;
    let engine = crate::simulation::sqlite_engine(&dir.path().join("fleet.sqlite"), spec.seed)
        .map_err(|e| setup("fleet engine", e))?;
    let t = Instant::now();
    let stats =
        crate::simulation::simulate(&engine, &spec, &mut |_| {}).map_err(|e| setup("fleet", e))?;
    let wall = t.elapsed().as_secs_f64();
    rows.push(
        Row::new(
            "harness.fleet",
            Group::Harness,
            &format!(
                "fleet simulation: {} fobs × {} days, SQLite{}",
                spec.fobs,
                spec.days,
                if opts.quick {
                    " (--quick: shrunk from 10,000 × 1826)"
                } else {
                    ""
                }
            ),
            wall,
            "s",
        )
        .note(format!(
            "{} sign-ins ({:.0}/s), accept rate {:.3}%, {} resyncs",
            stats.sign_ins,
            stats.sign_ins as f64 / wall,
            stats.accept_rate() * 100.0,
            stats.resyncs
        )),
    );
    // On PostgreSQL at the --quick size whatever the options (a statement
    // is a round trip: the full 18 M sign-ins would take many minutes).
    opts.say("harness: fleet simulation on PostgreSQL");
    let spec = crate::simulation::SimulationSpec {
        fobs: 1_000,
        days: 365,
        ..crate::simulation::SimulationSpec::default()
    };
    let name = format!(
        "fleet simulation: {} fobs × {} days, PostgreSQL (one transaction per day)",
        spec.fobs, spec.days
    );
    let r = (|| {
        let server = fobsim_engine::testing::postgres::PgServer::start()
            .map_err(|e| setup("PostgreSQL", e))?;
        let url = server
            .database("fleet")
            .map_err(|e| setup("PostgreSQL", e))?;
        let engine = crate::simulation::postgres_engine(&url, spec.seed)
            .map_err(|e| setup("fleet engine", e))?;
        let t = Instant::now();
        let stats = crate::simulation::simulate(&engine, &spec, &mut |_| {})
            .map_err(|e| setup("fleet", e))?;
        Ok::<_, BenchError>((t.elapsed().as_secs_f64(), stats))
    })();
    rows.push(match r {
        Ok((wall, stats)) => Row::new("harness.fleet.postgres", Group::Harness, &name, wall, "s")
            .note(format!(
                "{} sign-ins ({:.0}/s), accept rate {:.3}%, {} resyncs",
                stats.sign_ins,
                stats.sign_ins as f64 / wall,
                stats.accept_rate() * 100.0,
                stats.resyncs
            )),
        Err(e) => Row::missing(
            "harness.fleet.postgres",
            Group::Harness,
            &name,
            "s",
            e.to_string(),
        ),
    });
    Ok(())
}
