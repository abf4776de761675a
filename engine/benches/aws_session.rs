//! STS `GetSessionToken` with MFA over loopback HTTP: requests/s and
//! p50/p99 latency under a concurrent load generator.
//!
//! Setup: N users, each with an access key, the seed's policy and an
//! enabled `gaht` fob, on SQLite (what `fobsim serve` uses) and in memory.
//! Each round moves the engine's clock one step (a code is accepted once
//! per step and device) and fires one signed `GetSessionToken
//! SerialNumber+TokenCode` per user over C keep-alive connections; every
//! answer must be 200. Requests are signed before a round starts (the
//! client's signing cost is not the server's); the server and the load
//! generator share this machine's cores.
//!
//! `cargo bench -p fobsim-engine --bench aws_session`
//! Environment: `AWS_BENCH_USERS` (default 2000), `AWS_BENCH_ROUNDS` (10),
//! `AWS_BENCH_CONNS` (64), `AWS_BENCH_WORKERS` (server threads, 2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fobsim_aws::Service;
use fobsim_aws::client::build_request;
use fobsim_engine::api::server;
use fobsim_engine::{Engine, KeySource, Profile, SqliteOptions, SqliteStore, testing};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

const SEED_POLICY: &str = include_str!("../../fixtures/policies/manage-own-mfa.json");

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Send each request on one connection in turn; return the latencies.
async fn connection(addr: SocketAddr, reqs: Vec<Vec<u8>>) -> Vec<Duration> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut lat = Vec::with_capacity(reqs.len());
    let mut line = String::new();
    let mut body = Vec::new();
    for req in reqs {
        let start = Instant::now();
        w.write_all(&req).await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut len = 0;
        loop {
            line.clear();
            r.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        body.resize(len, 0);
        r.read_exact(&mut body).await.unwrap();
        lat.push(start.elapsed());
    }
    lat
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run(label: &str, engine: Engine) {
    let users = env("AWS_BENCH_USERS", 2000);
    let rounds = env("AWS_BENCH_ROUNDS", 10);
    let conns = env("AWS_BENCH_CONNS", 64).max(1);
    let workers = env("AWS_BENCH_WORKERS", 2).max(1);
    let mut s = testing::enrolled_service(engine, users, SEED_POLICY).unwrap();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    server_rt.spawn(server::serve(listener, Arc::clone(&s.service), async {
        let _ = stop_rx.await;
    }));
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = addr.to_string();
    let mut all = Vec::with_capacity(users * rounds);
    let mut busy = Duration::ZERO;
    for round in 0..rounds {
        let now = s.after_enable.add_millis(30_000 * (round as i64 + 1));
        s.clock.set(now);
        let mut per_conn: Vec<Vec<Vec<u8>>> = vec![Vec::new(); conns];
        for (i, fob) in s.fobs.iter_mut().enumerate() {
            let code = testing::press(fob, now);
            let serial = fob.serial().to_string();
            let req = build_request(
                &host,
                Service::Sts,
                &[
                    ("Action", "GetSessionToken"),
                    ("SerialNumber", &serial),
                    ("TokenCode", &code),
                ],
                &testing::enrolled_credentials(i),
                "us-east-1",
                now,
            )
            .unwrap();
            per_conn[i % conns].push(req);
        }
        let start = Instant::now();
        let lats: Vec<Vec<Duration>> = client_rt.block_on(async {
            let tasks: Vec<_> = per_conn
                .into_iter()
                .map(|reqs| tokio::spawn(connection(addr, reqs)))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        busy += start.elapsed();
        all.extend(lats.into_iter().flatten());
    }
    let _ = stop_tx.send(());
    all.sort_unstable();
    let n = all.len();
    println!(
        "aws GetSessionToken+MFA [{label}]: {n} requests ({users} devices x {rounds} steps), {conns} connections, {workers} server threads: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        n as f64 / busy.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e6,
        percentile(&all, 0.99).as_secs_f64() * 1e6,
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path().join("bench.db"),
        &KeySource::Bytes(testing::TEST_KEY),
        SqliteOptions::default(),
    )
    .unwrap();
    run("sqlite", Engine::new(Profile::for_tests(), store));
    run("memory", Engine::in_memory(Profile::for_tests()));
}
