//! `verify`: sign-in verification, ops/s and p50/p99 — our engine
//! in-process (memory, SQLite), our AWS Query server over loopback HTTP and
//! privacyIDEA's `/validate/check`, all at the same client concurrency.
//!
//! The load generators: `http` (our server; hyper's HTTP/1.1 client, one
//! keep-alive connection per load thread) and `privacyidea` (`ureq`, one
//! agent per load thread).

mod http;
mod privacyidea;

use std::hint::black_box;
use std::time::{Duration, Instant};

use fobsim_core::{Channel, Principal, Timestamp, Totp};
use fobsim_engine::{Engine, Profile, testing};

use crate::measure::median;
use crate::report::Row;
use crate::{BenchError, Group, Options, setup};

/// One enabled device of a benchmark user.
struct Dev {
    who: Principal,
    serial: String,
    totp: Totp,
}

pub(crate) fn totp_of(fob: &testing::TestToken) -> Result<Totp, BenchError> {
    let r = fob.seed_record();
    Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0).map_err(|e| setup("totp", e))
}

/// The step at which the benchmark devices are enabled.
fn enable_step() -> u64 {
    testing::T0.add_millis(10_000).as_secs() / 30
}

/// `n` users `bench0…`, each with an enabled fob (enabled at
/// [`enable_step`]).
fn devices(engine: &Engine, n: usize) -> Result<Vec<Dev>, BenchError> {
    let fobs: Vec<testing::TestToken> = (0..n as u64)
        .map(|i| testing::gaht_fob(100 + i, testing::T0))
        .collect();
    testing::import(engine, &fobs).map_err(|e| setup("import fobs", e))?;
    let now = testing::T0.add_millis(10_000);
    let c = enable_step();
    let mut out = Vec::with_capacity(n);
    for (i, f) in fobs.iter().enumerate() {
        let name = format!("bench{i}");
        engine
            .create_user(&name, testing::USER_PASSWORD)
            .map_err(|e| setup("create user", e))?;
        let who = Principal::user(&name);
        let totp = totp_of(f)?;
        engine
            .enable_mfa_device(
                now,
                Channel::Console,
                &who,
                f.serial().as_str(),
                &totp.code_for_step(c - 1).to_string(),
                &totp.code_for_step(c).to_string(),
            )
            .map_err(|e| setup("enable device", e))?;
        out.push(Dev {
            who,
            serial: f.serial().as_str().to_string(),
            totp,
        });
    }
    Ok(out)
}

/// `threads` threads, thread i verifying device i at `per_thread`
/// consecutive steps from `first`. Codes are computed before the clock
/// starts. Returns (ops/s, failures, latencies if `timed`).
fn verify_pass(
    engine: &Engine,
    devs: &[Dev],
    threads: usize,
    first: u64,
    per_thread: u64,
    timed: bool,
) -> (f64, Fails, Vec<Duration>) {
    let barrier = std::sync::Barrier::new(threads + 1);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = devs
            .iter()
            .take(threads)
            .map(|d| {
                let barrier = &barrier;
                s.spawn(move || {
                    let work: Vec<(Timestamp, String, u64)> = (first..first + per_thread)
                        .map(|st| {
                            (
                                Timestamp::from_secs(st * 30 + 1),
                                d.totp.code_for_step(st).to_string(),
                                st,
                            )
                        })
                        .collect();
                    let mut lat = Vec::with_capacity(if timed { work.len() } else { 0 });
                    let mut fails = 0u64;
                    let mut first_err = None;
                    barrier.wait();
                    let mut twins = 0u64;
                    for (t, code, st) in &work {
                        let t0 = timed.then(Instant::now);
                        if let Err(e) =
                            engine.verify_session_mfa(*t, &d.who, &d.serial, black_box(code))
                        {
                            fails += 1;
                            // A code equal to the previous step's (1 in 10^6)
                            // matches that already-used step first: a replay.
                            if d.totp.code_for_step(st - 1).to_string() == *code {
                                twins += 1;
                            }
                            if first_err.is_none() {
                                first_err = Some(e.to_string());
                            }
                        }
                        if let Some(t0) = t0 {
                            lat.push(t0.elapsed());
                        }
                    }
                    (Fails(fails, twins, first_err), lat)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut fails = Fails::default();
        let mut lat = Vec::new();
        for h in handles {
            if let Ok((f, l)) = h.join() {
                fails.add(f);
                lat.extend(l);
            }
        }
        (start.elapsed(), fails, lat)
    });
    let (wall, fails, lat) = results;
    let ops = threads as u64 * per_thread;
    (ops as f64 / wall.as_secs_f64(), fails, lat)
}

/// Rejected verifications, how many of them had a code equal to the
/// previous step's, and the first rejection's message.
#[derive(Default)]
struct Fails(u64, u64, Option<String>);

impl Fails {
    fn add(&mut self, o: Fails) {
        self.0 += o.0;
        self.1 += o.1;
        if self.2.is_none() {
            self.2 = o.2;
        }
    }
}

impl std::fmt::Display for Fails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rejected", self.0)?;
        if self.0 > 0 {
            write!(
                f,
                ", {} of them a code equal to the previous step's (a replay by design)",
                self.1
            )?;
        }
        if let Some(e) = &self.2 {
            write!(f, " (first: {e})")?;
        }
        Ok(())
    }
}

fn engine_rows(
    opts: &Options,
    rows: &mut Vec<Row>,
    label: &str,
    engine: &Engine,
    per_run: u64,
) -> Result<(), BenchError> {
    let c = opts.concurrency.max(1);
    let devs = devices(engine, c)?;
    let mut step = enable_step() + 1;
    for threads in [1, c] {
        let mut rates = Vec::new();
        let mut fails = Fails::default();
        for _ in 0..opts.runs() {
            let per = per_run / threads as u64;
            let (r, f, _) = verify_pass(engine, &devs, threads, step, per, false);
            step += per;
            rates.push(r);
            fails.add(f);
        }
        let per = (per_run / threads as u64).min(20_000);
        let (_, f, mut lat) = verify_pass(engine, &devs, threads, step, per, true);
        step += per;
        fails.add(f);
        let id = format!("verify.{label}.t{threads}");
        rows.push(
            Row::new(
                &id,
                Group::Verify,
                &format!("fobsim engine in-process, {label}, {threads} thread(s)"),
                median(rates),
                "verifications/s",
            )
            .lat(&mut lat)
            .note(format!(
                "verify_session_mfa, correct code at a new step each call (±1 window, replay record written); {fails}"
            )),
        );
    }
    Ok(())
}

pub(crate) fn run(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    opts.say("verify: engine in memory");
    let (engine, _) = testing::in_memory_with_fobs(0, testing::T0);
    engine_rows(
        opts,
        rows,
        "memory",
        &engine,
        if opts.quick { 40_000 } else { 400_000 },
    )?;
    drop(engine);
    opts.say("verify: engine on SQLite");
    let dir = tempfile::tempdir()?;
    let (engine, _) = testing::sqlite_with_fobs(
        &dir.path().join("bench.db"),
        0,
        testing::T0,
        Profile::for_tests(),
    )
    .map_err(|e| setup("sqlite engine", e))?;
    engine_rows(
        opts,
        rows,
        "sqlite",
        &engine,
        if opts.quick { 2_000 } else { 20_000 },
    )?;
    drop(engine);
    let mut cpu_rows = Vec::new();
    let wide = wide(opts);
    for (store, o, suffix) in [
        ("sqlite", opts, ""),
        ("memory", opts, ""),
        ("sqlite", &wide, ".wide"),
    ] {
        opts.say(&format!(
            "verify: HTTP GetSessionToken ({store}, {} connections)",
            o.concurrency
        ));
        let id = format!("verify.http.{store}{suffix}");
        // The default rows keep their names; the others say their connections.
        let conns = if suffix.is_empty() {
            String::new()
        } else {
            format!(", {} connections", o.concurrency)
        };
        let name = format!("fobsim serve: STS GetSessionToken+MFA over HTTP, {store}{conns}");
        let r = (|| {
            let engine = if store == "memory" {
                Engine::in_memory(Profile::for_tests())
            } else {
                Engine::sqlite(
                    dir.path().join(format!("http-{store}{suffix}.db")),
                    &fobsim_engine::KeySource::Bytes(testing::TEST_KEY),
                    Profile::for_tests(),
                )
                .map_err(|e| setup("sqlite engine", e))?
            };
            http::bench(o, engine)
        })();
        if let Ok(h) = &r
            && let Some(c) = h.cpu_ms
        {
            cpu_rows.push(Row::new(
                &format!("verify.cpu.http.{store}{suffix}"),
                Group::Verify,
                &format!("CPU per GetSessionToken, {store}{conns} (server + load generator)"),
                c,
                "CPU ms/request",
            ));
        }
        rows.push(match r {
            Ok(h) => Row::new(&id, Group::Verify, &name, h.rate, "requests/s")
                .lat(&mut h.lat.clone())
                .note(format!(
                    "{} requests ({} users × {} steps), {} keep-alive connections, 2 server threads, client on the same cores; {} non-200; CPU {} per request (server + load generator)",
                    h.lat.len(),
                    h.users,
                    h.rounds,
                    o.concurrency,
                    h.errors,
                    cpu_note(h.cpu_ms)
                )),
            Err(e) => Row::missing(&id, Group::Verify, &name, "requests/s", e.to_string()),
        });
    }
    postgres_rows(opts, rows, &mut cpu_rows);
    if opts.peers {
        opts.say("verify: privacyIDEA /validate/check");
        let id = "verify.privacyidea";
        let name = "privacyIDEA /validate/check (SQLite)";
        let r = privacyidea::bench(opts);
        if let Ok(h) = &r
            && let Some(c) = h.cpu_ms
        {
            cpu_rows.push(Row::new(
                "verify.cpu.privacyidea",
                Group::Verify,
                "CPU per /validate/check (privacyIDEA processes)",
                c,
                "CPU ms/request",
            ));
        }
        rows.push(match r {
            Ok(h) => Row::new(id, Group::Verify, name, h.rate, "requests/s")
                .lat(&mut h.lat.clone())
                .note(format!(
                    "{} timed requests after {} untimed warm-up, one fresh token and code each, {} connections (new TCP connection per request), {}; {} not accepted; CPU {} per request (server processes)",
                    h.lat.len(),
                    2 * opts.concurrency.max(1),
                    opts.concurrency,
                    h.server,
                    h.errors,
                    cpu_note(h.cpu_ms)
                )),
            Err(e) => Row::missing(id, Group::Verify, name, "requests/s", e.to_string()),
        });
    }
    rows.extend(cpu_rows.into_iter().map(|r| {
        r.note("load-independent: CPU time (user + system) over the timed requests ÷ requests; 10 ms clock ticks")
    }));
    Ok(())
}

fn cpu_note(ms: Option<f64>) -> String {
    ms.map_or_else(
        || "unknown".into(),
        |m| {
            if m >= 1.0 {
                format!("{m:.1} ms")
            } else {
                format!("{:.0} µs", m * 1e3)
            }
        },
    )
}

/// What a load generator measured.
struct HttpResult {
    rate: f64,
    lat: Vec<Duration>,
    errors: u64,
    users: usize,
    rounds: usize,
    server: String,
    /// CPU time (user + system) per request, ms, of the measured processes.
    cpu_ms: Option<f64>,
    /// The database server's share of `cpu_ms`.
    db_cpu_ms: Option<f64>,
    /// The database's work per request (replicated runs).
    db: Option<DbPerRequest>,
}

/// A database server's work per request.
#[derive(Debug, Clone, Copy)]
struct DbPerRequest {
    /// Transactions (each a round trip or more).
    xacts: f64,
    /// WAL flushes.
    wal_syncs: f64,
    /// How long one WAL flush took on average, µs (none if none ran).
    wal_sync_us: Option<f64>,
}

/// GetSessionToken over HTTP on PostgreSQL with 1, 2 and 3 replicas (the
/// load generator of the SQLite row; a server this run starts from the
/// Debian package's binaries, default settings: every commit flushed).
fn postgres_rows(opts: &Options, rows: &mut Vec<Row>, cpu_rows: &mut Vec<Row>) {
    use fobsim_engine::testing::postgres::PgServer;
    opts.say("verify: HTTP GetSessionToken (PostgreSQL, 1-3 replicas)");
    // Default settings, plus the timing of WAL flushes (a clock read
    // around each: what the row's note reports a flush to cost).
    let timing = ("track_wal_io_timing", "on");
    let durable = PgServer::start_with(&[timing]);
    for n in 1..=3usize {
        postgres_row(opts, rows, cpu_rows, &durable, n, "");
    }
    // The same with twice the connections: each group commit then holds
    // more requests (see docs/PERFORMANCE.md).
    let wide = wide(opts);
    opts.say(&format!(
        "verify: HTTP GetSessionToken (PostgreSQL, 1 replica, {} connections)",
        wide.concurrency
    ));
    postgres_row(&wide, rows, cpu_rows, &durable, 1, ".wide");
    // What the flush of every commit costs: the same with commits
    // acknowledged before their WAL reaches the disk.
    opts.say("verify: HTTP GetSessionToken (PostgreSQL, synchronous_commit=off)");
    let lazy = PgServer::start_with(&[timing, ("synchronous_commit", "off")]);
    postgres_row(opts, rows, cpu_rows, &lazy, 1, ".async");
}

/// The options of the `.wide` rows: twice the client connections.
fn wide(opts: &Options) -> Options {
    Options {
        concurrency: opts.concurrency.max(1) * 2,
        ..opts.clone()
    }
}

fn postgres_row(
    opts: &Options,
    rows: &mut Vec<Row>,
    cpu_rows: &mut Vec<Row>,
    server: &Result<
        fobsim_engine::testing::postgres::PgServer,
        fobsim_engine::testing::postgres::PgServerError,
    >,
    n: usize,
    suffix: &str,
) {
    use fobsim_engine::{KeySource, PgOptions};
    let sync = if suffix == ".async" { "off" } else { "on" };
    let id = format!("verify.http.postgres.r{n}{suffix}");
    let name = format!(
        "fobsim serve: STS GetSessionToken+MFA over HTTP, PostgreSQL, {n} replica(s), {} connections, synchronous_commit={sync}",
        opts.concurrency
    );
    let db_name = format!("bench_r{n}{}", suffix.replace('.', "_"));
    let r = server
        .as_ref()
        .map_err(|e| setup("PostgreSQL", e))
        .and_then(|server| {
            let url = server
                .database(&db_name)
                .map_err(|e| setup("PostgreSQL", e))?;
            let open = || {
                Engine::postgres(
                    &url,
                    &KeySource::Bytes(testing::TEST_KEY),
                    PgOptions::default(),
                    Profile::for_tests(),
                )
                .map_err(|e| setup("PostgreSQL engine", e))
            };
            let counters = || {
                let mut c = server.admin(&db_name).ok()?;
                let r = c
                    .query_one(
                        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, wal_sync, wal_sync_time \
                         FROM pg_stat_wal",
                        &[],
                    )
                    .ok()?;
                Some(http::DbCounters {
                    xacts: r.try_get(0).ok()?,
                    wal_syncs: r.try_get(1).ok()?,
                    wal_sync_ms: r.try_get(2).ok()?,
                })
            };
            let db = http::Db {
                pid: server.pid(),
                counters: &counters,
            };
            http::bench_replicas(opts, open()?, n, &open, Some(db))
        });
    if let Ok(h) = &r
        && let Some(c) = h.cpu_ms
    {
        cpu_rows.push(Row::new(
            &format!("verify.cpu.http.postgres.r{n}{suffix}"),
            Group::Verify,
            &format!(
                "CPU per GetSessionToken, PostgreSQL, {n} replica(s), {} connections, synchronous_commit={sync} (servers + database + load generator)",
                opts.concurrency
            ),
            c,
            "CPU ms/request",
        ));
    }
    rows.push(match r {
        Ok(h) => Row::new(&id, Group::Verify, &name, h.rate, "requests/s")
            .lat(&mut h.lat.clone())
            .note(format!(
                "{} requests ({} users × {} steps), {} keep-alive connections spread over {n} replica(s) of 2 server threads each, database and client on the same cores; {} non-200; CPU {} per request (servers + PostgreSQL + load generator), of it PostgreSQL {}; {} database transactions and {} WAL flushes per request, {} per flush",
                h.lat.len(),
                h.users,
                h.rounds,
                opts.concurrency,
                h.errors,
                cpu_note(h.cpu_ms),
                cpu_note(h.db_cpu_ms),
                h.db.map_or_else(|| "?".to_string(), |d| format!("{:.2}", d.xacts)),
                h.db.map_or_else(|| "?".to_string(), |d| format!("{:.2}", d.wal_syncs)),
                h.db
                    .and_then(|d| d.wal_sync_us)
                    .map_or_else(|| "?".to_string(), |us| format!("{us:.0} µs")),
            )),
        Err(e) => Row::missing(&id, Group::Verify, &name, "requests/s", e.to_string()),
    });
}
