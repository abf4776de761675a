//! `verify`: sign-in verification, ops/s and p50/p99 — our engine
//! in-process (memory, SQLite), our AWS Query server over loopback HTTP and
//! privacyIDEA's `/validate/check`, all at the same client concurrency.

use std::hint::black_box;
use std::io::{BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fobsim_aws::Service;
use fobsim_aws::client::build_request;
use fobsim_core::{Algorithm, Channel, Principal, Timestamp, Totp};
use fobsim_engine::api::server;
use fobsim_engine::{Engine, Profile, testing};

use crate::measure::{cpu_seconds, median};
use crate::otp::secret;
use crate::report::Row;
use crate::{BenchError, Group, Options, peer, setup};

const SEED_POLICY: &str = include_str!("../../../fixtures/policies/manage-own-mfa.json");

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
    for store in ["sqlite", "memory"] {
        opts.say(&format!("verify: HTTP GetSessionToken ({store})"));
        let id = format!("verify.http.{store}");
        let name = format!("fobsim serve: STS GetSessionToken+MFA over HTTP, {store}");
        let r = (|| {
            let engine = if store == "memory" {
                Engine::in_memory(Profile::for_tests())
            } else {
                Engine::sqlite(
                    dir.path().join(format!("http-{store}.db")),
                    &fobsim_engine::KeySource::Bytes(testing::TEST_KEY),
                    Profile::for_tests(),
                )
                .map_err(|e| setup("sqlite engine", e))?
            };
            http_bench(opts, engine)
        })();
        if let Ok(h) = &r
            && let Some(c) = h.cpu_ms
        {
            cpu_rows.push(Row::new(
                &format!("verify.cpu.http.{store}"),
                Group::Verify,
                &format!("CPU per GetSessionToken, {store} (server + load generator)"),
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
                    opts.concurrency,
                    h.errors,
                    cpu_note(h.cpu_ms)
                )),
            Err(e) => Row::missing(&id, Group::Verify, &name, "requests/s", e.to_string()),
        });
    }
    if opts.peers {
        opts.say("verify: privacyIDEA /validate/check");
        let id = "verify.privacyidea";
        let name = "privacyIDEA /validate/check (SQLite)";
        let r = privacyidea_bench(opts);
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

struct HttpResult {
    rate: f64,
    lat: Vec<Duration>,
    errors: u64,
    users: usize,
    rounds: usize,
    server: String,
    /// CPU time (user + system) per request, ms, of the measured processes.
    cpu_ms: Option<f64>,
}

/// Read one HTTP/1.1 response (status line, headers, Content-Length body or
/// until EOF). Returns (status, body).
///
/// # Errors
/// On I/O errors or a malformed reply (never panics on the peer's bytes).
fn read_http<R: std::io::BufRead>(r: &mut R) -> Result<(u16, Vec<u8>), BenchError> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| peer("http", format!("bad status line {line:?}")))?;
    let mut len: Option<usize> = None;
    for _ in 0..200 {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok();
        }
    }
    let mut body = Vec::new();
    match len {
        Some(n) if n <= 16 << 20 => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        Some(n) => return Err(peer("http", format!("body of {n} bytes"))),
        None => {
            r.take(16 << 20).read_to_end(&mut body)?;
        }
    }
    Ok((status, body))
}

/// Send each request on one keep-alive connection; latencies and non-2xx.
fn http_connection(addr: SocketAddr, reqs: &[Vec<u8>]) -> Result<(Vec<Duration>, u64), BenchError> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut lat = Vec::with_capacity(reqs.len());
    let mut errors = 0;
    for req in reqs {
        let t = Instant::now();
        w.write_all(req)?;
        let (status, _) = read_http(&mut r)?;
        lat.push(t.elapsed());
        if status != 200 {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

fn http_bench(opts: &Options, engine: Engine) -> Result<HttpResult, BenchError> {
    let users = if opts.quick { 200 } else { 2000 };
    let rounds = if opts.quick { 2 } else { 5 };
    let conns = opts.concurrency.max(1);
    let testing::EnrolledService {
        service,
        clock,
        mut fobs,
        after_enable: t2,
    } = testing::enrolled_service(engine, users, SEED_POLICY).map_err(|e| setup("users", e))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(server::serve(listener, service, async {
        let _ = stop_rx.await;
    }));
    let host = addr.to_string();
    let mut lat = Vec::with_capacity(users * rounds);
    let mut errors = 0;
    let mut busy = Duration::ZERO;
    let mut cpu = Some(0.0);
    let result = (|| {
        for round in 0..rounds {
            let now = t2.add_millis(30_000 * (round as i64 + 1));
            clock.set(now);
            let mut per_conn: Vec<Vec<Vec<u8>>> = vec![Vec::new(); conns];
            for (i, fob) in fobs.iter_mut().enumerate() {
                let code = testing::press(fob, now);
                let serial = fob.serial().to_string();
                per_conn[i % conns].push(build_request(
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
                ));
            }
            let start = Instant::now();
            let cpu0 = cpu_seconds(None);
            let out: Vec<Result<(Vec<Duration>, u64), BenchError>> = std::thread::scope(|s| {
                let hs: Vec<_> = per_conn
                    .iter()
                    .map(|reqs| s.spawn(move || http_connection(addr, reqs)))
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(setup("client", "thread panicked")))
                    })
                    .collect()
            });
            busy += start.elapsed();
            cpu = match (cpu, cpu0, cpu_seconds(None)) {
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
    let _ = stop_tx.send(());
    rt.shutdown_timeout(Duration::from_secs(2));
    result?;
    Ok(HttpResult {
        rate: lat.len() as f64 / busy.as_secs_f64(),
        lat,
        errors,
        users,
        rounds,
        server: "fobsim".into(),
        cpu_ms: cpu.map(|c| c * 1e3 / (users * rounds).max(1) as f64),
    })
}

/// One request on its own connection (`Connection: close`); returns
/// (status, parsed JSON body).
fn pi_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    form: &str,
) -> Result<(u16, serde_json::Value), BenchError> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = s.try_clone()?;
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    w.write_all(req.as_bytes())?;
    let (status, body) = read_http(&mut BufReader::new(s))?;
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((status, v))
}

fn privacyidea_bench(opts: &Options) -> Result<HttpResult, BenchError> {
    use fobsim_engines::privacyidea::{ADMIN, ADMIN_PASSWORD, Http, Server, ServerOptions};
    let pi = Server::start(&ServerOptions::bench(opts.privacyidea_venv.clone(), 2))
        .map_err(|e| peer("privacyIDEA", e))?;
    let server = match pi.http() {
        Http::Gunicorn { .. } => pi.serving(),
        Http::DevServer => "pi-manage run (Flask dev server; gunicorn not in the venv)".to_string(),
    };
    let pid = pi.pid();
    let addr = SocketAddr::from(([127, 0, 0, 1], pi.port()));
    let (_, v) = pi_request(
        addr,
        "POST",
        "/auth",
        None,
        &format!("username={ADMIN}&password={ADMIN_PASSWORD}"),
    )?;
    let jwt = v
        .pointer("/result/value/token")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| peer("privacyIDEA", format!("/auth gave no token: {v}")))?
        .to_string();
    // One token per request: a TOTP code is accepted once per step.
    let conns = opts.concurrency.max(1);
    // The first `warm` tokens warm the workers up (untimed).
    let warm = 2 * conns;
    let n = warm + if opts.quick { 24 } else { 240 };
    let key = secret(Algorithm::Sha1);
    let mut totps = Vec::with_capacity(n);
    for i in 0..n {
        let mut k = key.clone();
        k[0] = (i % 256) as u8;
        k[1] = (i / 256) as u8;
        let form = format!(
            "type=totp&serial=BENCH{i:05}&otpkey={}&genkey=0&otplen=6&hashlib=sha1&timeStep=30",
            hex::encode(&k)
        );
        let (status, v) = pi_request(addr, "POST", "/token/init", Some(&jwt), &form)?;
        if status != 200 || v.pointer("/result/status") != Some(&serde_json::Value::Bool(true)) {
            return Err(peer("privacyIDEA", format!("/token/init: {status} {v}")));
        }
        totps.push(Totp::new(Algorithm::Sha1, &k, 6, 30, 0).map_err(|e| setup("totp", e))?);
    }
    let code_now = |t: &Totp| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        t.code_for_step(now / 30).to_string()
    };
    for (i, t) in totps.iter().enumerate().take(warm) {
        let form = format!("serial=BENCH{i:05}&pass={}", code_now(t));
        pi_request(addr, "POST", "/validate/check", None, &form)?;
    }
    let next = AtomicU64::new(warm as u64);
    let deadline = Instant::now() + Duration::from_secs(if opts.quick { 20 } else { 60 });
    let start = Instant::now();
    let cpu0 = cpu_seconds(Some(pid));
    let out: Vec<(Vec<Duration>, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..conns)
            .map(|_| {
                let (next, totps, code_now) = (&next, &totps, &code_now);
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut errors = 0u64;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= totps.len() || Instant::now() > deadline {
                            break;
                        }
                        let code = code_now(&totps[i]);
                        let form = format!("serial=BENCH{i:05}&pass={code}");
                        let t = Instant::now();
                        let r = pi_request(addr, "POST", "/validate/check", None, &form);
                        lat.push(t.elapsed());
                        match r {
                            Ok((200, v))
                                if v.pointer("/result/value")
                                    == Some(&serde_json::Value::Bool(true)) => {}
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed();
    let cpu = match (cpu0, cpu_seconds(Some(pid))) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    drop(pi);
    let total = out.iter().map(|(l, _)| l.len()).sum::<usize>().max(1);
    let mut lat = Vec::new();
    let mut errors = 0;
    for (l, e) in out {
        lat.extend(l);
        errors += e;
    }
    if lat.is_empty() {
        return Err(peer("privacyIDEA", "no request completed"));
    }
    Ok(HttpResult {
        rate: lat.len() as f64 / wall.as_secs_f64(),
        lat,
        errors,
        users: n - warm,
        rounds: 1,
        server,
        cpu_ms: cpu.map(|c| c * 1e3 / total as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_http_handles_length_and_eof() {
        let mut r =
            std::io::Cursor::new(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA".to_vec());
        let (s, b) = read_http(&mut r).unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"ok"[..]));
        let mut r = std::io::Cursor::new(b"HTTP/1.0 500 X\r\n\r\nbody".to_vec());
        let (s, b) = read_http(&mut r).unwrap();
        assert_eq!((s, b.as_slice()), (500, &b"body"[..]));
        let mut r = std::io::Cursor::new(b"garbage".to_vec());
        assert!(read_http(&mut r).is_err());
    }
}
