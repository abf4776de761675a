//! Our AWS Query server (`fobsim serve`'s `GetSessionToken` with MFA) over
//! loopback HTTP: the server on 2 tokio threads in this process (each of
//! N replicas on 2 threads of its own, on one PostgreSQL), the load
//! from `concurrency` threads, each with its own keep-alive connection
//! (hyper's HTTP/1.1 client on a current-thread runtime). Requests are
//! signed and built before the clock starts.
//!
//! Why hyper and not `ureq` (which the privacyIDEA load uses, where a
//! request costs the server tens of ms): client and server share the
//! machine's cores, so the client's CPU per request lowers the server's
//! measured rate. Measured on a 2-vCPU machine, `--only verify` (10,000
//! requests per store), µs of CPU per request, median of 3 interleaved
//! runs, client threads / whole process, SQLite and memory store:
//!
//! | client | SQLite | memory |
//! |---|---:|---:|
//! | the former hand-written reader | 14 / 48 | 14 / 36 |
//! | hyper (this module) | 19 / 54 | 16 / 38 |
//! | ureq (an agent per thread, no resolve timeout) | 26 / 64 | 25 / 51 |
//!
//! ureq sends head and body in two writes (the server reads twice) and
//! probes a pooled connection with three syscalls before reusing it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fobsim_aws::Service;
use fobsim_aws::query::encode_form;
use fobsim_aws::sigv4::{Credentials, RequestParts, sign};
use fobsim_core::Timestamp;
use fobsim_engine::api::server;
use fobsim_engine::{Engine, testing};
use http_body_util::{BodyExt as _, Full};

use super::{DbPerRequest, HttpResult};
use crate::keepalive;
use crate::measure::{cpu_seconds, cpu_seconds_of_tree};
use crate::{BenchError, Options, setup};

const SEED_POLICY: &str = include_str!("../../../../fixtures/policies/manage-own-mfa.json");

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// How long one connection's requests may take in all.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(120);

/// A request ready to send.
type Request = hyper::Request<Full<Bytes>>;

/// A signed Query request (`POST /`, form body), signed as the AWS SDKs
/// do: `host` and `content-type` signed, `x-amz-date` and `authorization`
/// added.
fn signed(
    host: &str,
    service: Service,
    params: &[(&str, &str)],
    creds: &Credentials,
    now: Timestamp,
) -> Result<Request, BenchError> {
    let mut all = vec![("Version", service.version())];
    all.extend_from_slice(params);
    let body = encode_form(&all);
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
    ];
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let extra = sign(&parts, creds, "us-east-1", service.signing_name(), now)
        .map_err(|e| setup("sign", e))?;
    headers.extend(extra);
    let mut req = hyper::Request::post("/");
    for (name, value) in &headers {
        req = req.header(name, value);
    }
    req.body(Full::new(Bytes::from(body)))
        .map_err(|e| setup("request", e))
}

/// Send each request on one keep-alive connection; latencies and non-200
/// answers.
fn connection(addr: SocketAddr, reqs: Vec<Request>) -> Result<(Vec<Duration>, u64), BenchError> {
    let client = |e: hyper::Error| setup("HTTP client", e);
    keepalive::on_connection(
        addr,
        CONNECTION_DEADLINE,
        "the requests",
        async move |sender| {
            let mut lat = Vec::with_capacity(reqs.len());
            let mut errors = 0;
            for req in reqs {
                let t = Instant::now();
                let answer = sender.send_request(req).await.map_err(client)?;
                let status = answer.status();
                answer.into_body().collect().await.map_err(client)?;
                lat.push(t.elapsed());
                if status != 200 {
                    errors += 1;
                }
            }
            Ok((lat, errors))
        },
    )
}

pub(super) fn bench(opts: &Options, engine: Engine) -> Result<HttpResult, BenchError> {
    bench_replicas(opts, engine, 1, &unreachable_replica, None)
}

fn unreachable_replica() -> Result<Engine, BenchError> {
    Err(setup("replica", "one server only"))
}

/// The database server of a replicated run: its postmaster's PID (its
/// processes' CPU counts too) and its counters.
pub(super) struct Db<'a> {
    /// The postmaster (its backends are its children).
    pub(super) pid: Option<u32>,
    /// The counters so far (statistics published within a second or two).
    pub(super) counters: &'a dyn Fn() -> Option<DbCounters>,
}

/// What a database server has done so far.
#[derive(Debug, Clone, Copy)]
pub(super) struct DbCounters {
    /// Write transactions (the next transaction ID: exact and current, no
    /// statistics delay; the server runs only this benchmark's database).
    pub(super) xacts: i64,
    /// WAL flushes (`fdatasync` of the WAL), whole server.
    pub(super) wal_syncs: i64,
    /// Time spent in them, ms (`track_wal_io_timing`).
    pub(super) wal_sync_ms: f64,
}

/// [`bench`] over `replicas` servers, each on its own 2-thread runtime
/// (as separate `fobsim serve` processes would be): the first over
/// `engine`, the others over `open_replica()` (the same database). The
/// connections are spread over the servers (connection `k` to server
/// `k % replicas`). `db`: the database server whose processes' CPU counts
/// too, and whose transactions per request are counted.
pub(super) fn bench_replicas(
    opts: &Options,
    engine: Engine,
    replicas: usize,
    open_replica: &dyn Fn() -> Result<Engine, BenchError>,
    db: Option<Db<'_>>,
) -> Result<HttpResult, BenchError> {
    let users = if opts.quick { 200 } else { 2000 };
    let rounds = if opts.quick { 2 } else { 5 };
    let conns = opts.concurrency.max(1);
    let testing::EnrolledService {
        service,
        clock,
        mut fobs,
        after_enable: t2,
    } = testing::enrolled_service(engine, users, SEED_POLICY).map_err(|e| setup("users", e))?;
    let mut services = vec![service];
    for _ in 1..replicas.max(1) {
        services.push(
            testing::enrolled_replica(open_replica()?, users, SEED_POLICY, &clock)
                .map_err(|e| setup("replica", e))?,
        );
    }
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for service in services {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        addrs.push(listener.local_addr()?);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(server::serve(listener, service, async {
            let _ = stop_rx.await;
        }));
        servers.push((rt, stop_tx));
    }
    let conn_addr = |k: usize| addrs[k % addrs.len()];
    let db_pid = db.as_ref().and_then(|d| d.pid);
    let db_cpu_now = || db_pid.and_then(cpu_seconds_of_tree);
    let cpu_now = || match (cpu_seconds(None), db_pid) {
        (Some(c), None) => Some(c),
        (Some(c), Some(_)) => db_cpu_now().map(|d| c + d),
        (None, _) => None,
    };
    // The statistics PostgreSQL publishes (WAL flushes) lag: a backend
    // publishes its own at most once a second, and when it exits.
    let counters = || {
        db.as_ref().and_then(|d| {
            std::thread::sleep(Duration::from_millis(1_200));
            (d.counters)()
        })
    };
    let counters0 = counters();
    let mut lat = Vec::with_capacity(users * rounds);
    let mut errors = 0;
    let mut busy = Duration::ZERO;
    let mut cpu = Some(0.0);
    let mut db_cpu = db_pid.map(|_| 0.0);
    let result = (|| {
        for round in 0..rounds {
            let now = t2.add_millis(30_000 * (round as i64 + 1));
            clock.set(now);
            let mut per_conn: Vec<Vec<Request>> = (0..conns).map(|_| Vec::new()).collect();
            for (i, fob) in fobs.iter_mut().enumerate() {
                let code = testing::press(fob, now);
                let serial = fob.serial().to_string();
                per_conn[i % conns].push(signed(
                    &conn_addr(i % conns).to_string(),
                    Service::Sts,
                    &[
                        ("Action", "GetSessionToken"),
                        ("SerialNumber", &serial),
                        ("TokenCode", &code),
                    ],
                    &testing::enrolled_credentials(i),
                    now,
                )?);
            }
            let start = Instant::now();
            let cpu0 = cpu_now();
            let db_cpu0 = db_cpu_now();
            let out: Vec<Result<(Vec<Duration>, u64), BenchError>> = std::thread::scope(|s| {
                let hs: Vec<_> = per_conn
                    .into_iter()
                    .enumerate()
                    .map(|(k, reqs)| {
                        let addr = conn_addr(k);
                        s.spawn(move || connection(addr, reqs))
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(setup("client", "thread panicked")))
                    })
                    .collect()
            });
            busy += start.elapsed();
            db_cpu = match (db_cpu, db_cpu0, db_cpu_now()) {
                (Some(c), Some(a), Some(b)) => Some(c + (b - a)),
                _ => None,
            };
            cpu = match (cpu, cpu0, cpu_now()) {
                (Some(c), Some(a), Some(b)) => Some(c + (b - a)),
                _ => None,
            };
            for o in out {
                let (l, e) = o?;
                lat.extend(l);
                errors += e;
            }
        }
        Ok::<(), BenchError>(())
    })();
    for (rt, stop_tx) in servers {
        let _ = stop_tx.send(());
        rt.shutdown_timeout(Duration::from_secs(2));
    }
    // After the servers (and their engines and connection pools) are gone:
    // a backend publishes its statistics when it exits.
    let counters1 = if result.is_ok() { counters() } else { None };
    result?;
    Ok(HttpResult {
        rate: lat.len() as f64 / busy.as_secs_f64(),
        lat,
        errors,
        users,
        rounds,
        server: "fobsim".into(),
        cpu_ms: cpu.map(|c| c * 1e3 / (users * rounds).max(1) as f64),
        db_cpu_ms: db_cpu.map(|c| c * 1e3 / (users * rounds).max(1) as f64),
        db: match (counters0, counters1) {
            (Some(a), Some(b)) => {
                let requests = (users * rounds).max(1) as f64;
                let syncs = b.wal_syncs - a.wal_syncs;
                Some(DbPerRequest {
                    xacts: (b.xacts - a.xacts) as f64 / requests,
                    wal_syncs: syncs as f64 / requests,
                    wal_sync_us: (syncs > 0)
                        .then(|| (b.wal_sync_ms - a.wal_sync_ms) * 1e3 / syncs as f64),
                })
            }
            _ => None,
        },
    })
}
