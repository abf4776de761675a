//! The fleet simulation on PostgreSQL (a server this test starts): the
//! same fleet, the same sign-ins and resyncs as in memory, one
//! transaction per day or one per operation. The full-size run's time is
//! the `harness.fleet.postgres` row of `fobsim bench --only harness`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_bench::simulation::{SimulationSpec, postgres_engine, simulate};
use fobsim_engine::testing::postgres::PgServer;
use fobsim_engine::{Engine, Profile};

#[test]
fn a_fleet_on_postgres_lives_as_it_does_in_memory() {
    let server = PgServer::start().unwrap_or_else(|e| panic!("{e}"));
    for (i, spec) in [
        SimulationSpec {
            fobs: 20,
            days: 40,
            ..SimulationSpec::default()
        },
        // ±2000 ppm: resyncs, one operation per transaction.
        SimulationSpec {
            fobs: 10,
            days: 5,
            max_ppm: 2000.0,
            seed: 3,
            batch: false,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let url = server.database(&format!("fleet_{i}")).unwrap();
        let on_pg = simulate(
            &postgres_engine(&url, spec.seed).unwrap(),
            &spec,
            &mut |_| {},
        )
        .unwrap();
        let profile = Profile {
            rng_seed: Some(spec.seed),
            ..Profile::for_tests()
        };
        let in_memory = simulate(&Engine::in_memory(profile), &spec, &mut |_| {}).unwrap();
        assert_eq!(on_pg, in_memory, "{spec:?}");
        assert_eq!(on_pg.sign_ins, u64::from(spec.fobs * spec.days));
        if i == 1 {
            assert!(on_pg.resyncs > 0, "{on_pg:?}");
        }
    }
}
