//! The console's sign-in over loopback HTTP (`fobsim bench --only
//! console`): what `fobsim serve` pays for a person signing in with a
//! password and an MFA code.
//!
//! The server is `fobsim serve`'s: the console and the AWS API side by
//! side (`console::Routes`) on 2 tokio threads (the console's work runs on
//! the blocking pool, as in `fobsim serve`), over SQLite, in this process.
//! Users `u00000`… each have a password and an enabled fob
//! (`testing::enrolled_service`). One sign-in is what a browser does, on a
//! keep-alive connection with a fresh cookie jar:
//!
//! 1. `GET /console/signin` → the page, a session cookie, the CSRF token;
//! 2. `POST /console/signin` (account, user, password, token) → 303 to
//!    the MFA page — **Argon2id verifies the password**;
//! 3. `GET /console/signin/mfa` → the code form;
//! 4. `POST /console/signin/mfa` (code, token) → 303 to the home page with
//!    a new session id — **the password is verified again** (the engine
//!    checks password and code together), then the code;
//! 5. `GET /console/home` → the signed-in page, which must name the user.
//!
//! Each sign-in needs a code the engine has not accepted before (the
//! replay barrier): every user signs in once per 30-s step, and the
//! bench's clock moves one step between rounds. Codes are computed before
//! the clock starts. The password hashes run at two costs: the engine's
//! default (OWASP's Argon2id, 19 MiB, 2 passes: what `fobsim serve` uses
//! when the bootstrap file says nothing) and the example bootstrap's cheap
//! one (8 KiB, 1 pass): the difference is the hashing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fobsim_engine::api::policy::Policy;
use fobsim_engine::api::server;
use fobsim_engine::console::{Console, ConsoleConfig, Routes};
use fobsim_engine::{Engine, PasswordCost, Profile, testing};
use http_body_util::{BodyExt as _, Full};

use crate::keepalive;
use crate::measure::cpu_seconds;
use crate::report::Row;
use crate::{BenchError, Group, Options, setup};

const SEED_POLICY: &str = include_str!("../../../fixtures/policies/manage-own-mfa.json");
const FORM: &str = "application/x-www-form-urlencoded";
/// How long one connection's sign-ins may take in all.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(300);

/// One sign-in's timings.
struct SignIn {
    total: Duration,
    password: Duration,
    code: Duration,
}

/// What one load run measured.
struct Run {
    sign_ins: Vec<SignIn>,
    failed: u64,
    first_failure: Option<String>,
    wall: Duration,
    cpu_s: Option<f64>,
}

/// A user's sign-in of one round: name and the code to type.
struct Job {
    user: String,
    code: String,
}

struct Answer {
    status: u16,
    location: String,
    cookie: Option<String>,
    body: String,
}

async fn request(
    sender: &mut keepalive::Sender,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> Result<Answer, BenchError> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let body = match form {
        Some(f) => {
            req = req.header("content-type", FORM);
            Bytes::from(f)
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(body)).map_err(|e| setup("request", e))?;
    let client = |e: hyper::Error| setup("HTTP client", e);
    let answer = sender.send_request(req).await.map_err(client)?;
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = answer.status().as_u16();
    let location = header("location").unwrap_or_default();
    // `fobsim_console=ID; Path=…` → `fobsim_console=ID`.
    let cookie = header("set-cookie").and_then(|c| c.split(';').next().map(str::to_string));
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(client)?
        .to_bytes();
    Ok(Answer {
        status,
        location,
        cookie,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The CSRF token of a console form.
fn csrf(page: &str) -> Option<&str> {
    let at = page.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    page[at..].split('"').next()
}

fn enc(s: &str) -> String {
    fobsim_aws::query::encode_form(&[("v", s)])
        .trim_start_matches("v=")
        .to_string()
}

/// One whole sign-in; `Err` says which step went wrong.
async fn sign_in(
    sender: &mut keepalive::Sender,
    account: &str,
    job: &Job,
) -> Result<Result<SignIn, String>, BenchError> {
    let t0 = Instant::now();
    let page = request(sender, "GET", "/console/signin", None, None).await?;
    let (Some(cookie), Some(token)) = (page.cookie.clone(), csrf(&page.body)) else {
        return Ok(Err(format!(
            "GET /console/signin: {} without a session or token",
            page.status
        )));
    };
    let token = enc(token);
    let t1 = Instant::now();
    let form = format!(
        "csrf_token={token}&account={}&username={}&password={}",
        enc(account),
        enc(&job.user),
        enc(testing::USER_PASSWORD)
    );
    let a = request(sender, "POST", "/console/signin", Some(&cookie), Some(form)).await?;
    let password = t1.elapsed();
    if a.status != 303 || a.location != "/console/signin/mfa" {
        return Ok(Err(format!(
            "POST /console/signin: {} {}",
            a.status, a.location
        )));
    }
    let a = request(sender, "GET", "/console/signin/mfa", Some(&cookie), None).await?;
    if a.status != 200 {
        return Ok(Err(format!("GET /console/signin/mfa: {}", a.status)));
    }
    let t3 = Instant::now();
    let form = format!("csrf_token={token}&code={}", job.code);
    let a = request(
        sender,
        "POST",
        "/console/signin/mfa",
        Some(&cookie),
        Some(form),
    )
    .await?;
    let code = t3.elapsed();
    let Some(signed_in) = a.cookie.filter(|_| a.status == 303) else {
        return Ok(Err(format!(
            "POST /console/signin/mfa: {} {} (code {})",
            a.status, a.location, job.code
        )));
    };
    let home = request(sender, "GET", &a.location, Some(&signed_in), None).await?;
    if home.status != 200 || !home.body.contains(&format!("{} @ ", job.user)) {
        return Ok(Err(format!(
            "GET {}: {}, not signed in as {}",
            a.location, home.status, job.user
        )));
    }
    Ok(Ok(SignIn {
        total: t0.elapsed(),
        password,
        code,
    }))
}

type ConnResult = (Vec<SignIn>, u64, Option<String>);

/// One keep-alive connection's sign-ins, one after the other.
fn connection(addr: SocketAddr, account: &str, jobs: &[Job]) -> Result<ConnResult, BenchError> {
    keepalive::on_connection(addr, CONNECTION_DEADLINE, "the sign-ins", async |sender| {
        let mut done = Vec::with_capacity(jobs.len());
        let (mut failed, mut first) = (0, None);
        for job in jobs {
            match sign_in(sender, account, job).await? {
                Ok(s) => done.push(s),
                Err(why) => {
                    failed += 1;
                    first.get_or_insert(why);
                }
            }
        }
        Ok((done, failed, first))
    })
}

/// A server over a fresh SQLite engine with `users` enrolled users and
/// this password cost; the load `run`s against it.
struct Bench {
    fixture: testing::EnrolledService,
    account: String,
    addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The next 30-s step to sign in at.
    round: i64,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new(users: usize, cost: PasswordCost) -> Result<Bench, BenchError> {
        let dir = tempfile::tempdir()?;
        let profile = Profile {
            password_cost: cost,
            ..Profile::default()
        };
        let engine = Engine::sqlite(
            dir.path().join("console.db"),
            &fobsim_engine::KeySource::Bytes(testing::TEST_KEY),
            profile,
        )
        .map_err(|e| setup("sqlite engine", e))?;
        let fixture =
            testing::enrolled_service(engine, users, SEED_POLICY).map_err(|e| setup("users", e))?;
        let policy = Arc::new(Policy::parse(SEED_POLICY).map_err(|e| setup("policy", e))?);
        let names: Vec<String> = (0..users).map(testing::enrolled_user).collect();
        let policies: HashMap<String, Vec<Arc<Policy>>> = names
            .iter()
            .map(|n| (n.clone(), vec![Arc::clone(&policy)]))
            .collect();
        let console = Console::new(
            Arc::clone(fixture.service.engine()),
            policies,
            names,
            Arc::clone(&fixture.clock) as Arc<dyn fobsim_core::Clock>,
            ConsoleConfig::default(),
        )
        .map_err(|e| setup("console", e))?;
        let routes = Arc::new(Routes::new(Arc::clone(&fixture.service), Arc::new(console)));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(server::serve_with(
            listener,
            routes,
            server::Limits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Bench {
            fixture,
            account: testing::ACCOUNT_ID.to_string(),
            addr,
            rt: Some(rt),
            stop: Some(stop),
            round: 1,
            _dir: dir,
        })
    }

    /// `rounds` rounds in which every user signs in once, the users
    /// spread over `clients` connections.
    fn run(&mut self, clients: usize, rounds: usize) -> Result<Run, BenchError> {
        let clients = clients.max(1);
        let mut out = Run {
            sign_ins: Vec::new(),
            failed: 0,
            first_failure: None,
            wall: Duration::ZERO,
            cpu_s: Some(0.0),
        };
        for _ in 0..rounds {
            let now = self.fixture.after_enable.add_millis(30_000 * self.round);
            self.round += 1;
            self.fixture.clock.set(now);
            let mut per_conn: Vec<Vec<Job>> = (0..clients).map(|_| Vec::new()).collect();
            for (i, fob) in self.fixture.fobs.iter_mut().enumerate() {
                per_conn[i % clients].push(Job {
                    user: testing::enrolled_user(i),
                    code: testing::press(fob, now),
                });
            }
            let (addr, account) = (self.addr, self.account.as_str());
            let cpu0 = cpu_seconds(None);
            let start = Instant::now();
            let results: Vec<Result<ConnResult, BenchError>> = std::thread::scope(|s| {
                let hs: Vec<_> = per_conn
                    .iter()
                    .map(|jobs| s.spawn(move || connection(addr, account, jobs)))
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(setup("client", "thread panicked")))
                    })
                    .collect()
            });
            out.wall += start.elapsed();
            out.cpu_s = match (out.cpu_s, cpu0, cpu_seconds(None)) {
                (Some(c), Some(a), Some(b)) => Some(c + (b - a)),
                _ => None,
            };
            for r in results {
                let (done, failed, first) = r?;
                out.sign_ins.extend(done);
                out.failed += failed;
                if out.first_failure.is_none() {
                    out.first_failure = first;
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    crate::measure::percentile(&v, 0.5)
}

/// The rows of one load run.
fn rows_of(
    rows: &mut Vec<Row>,
    id: &str,
    name: &str,
    clients: usize,
    users: usize,
    r: Result<Run, BenchError>,
) {
    let r = match r {
        Ok(r) if !r.sign_ins.is_empty() => r,
        Ok(r) => {
            rows.push(Row::missing(
                id,
                Group::Console,
                name,
                "sign-ins/s",
                format!(
                    "every sign-in failed ({}): {}",
                    r.failed,
                    r.first_failure.unwrap_or_default()
                ),
            ));
            return;
        }
        Err(e) => {
            rows.push(Row::missing(
                id,
                Group::Console,
                name,
                "sign-ins/s",
                e.to_string(),
            ));
            return;
        }
    };
    let n = r.sign_ins.len();
    let rate = n as f64 / r.wall.as_secs_f64();
    let cpu = r.cpu_s.map_or_else(
        || "unknown".into(),
        |c| format!("{:.1} ms", c * 1e3 / n as f64),
    );
    let note = format!(
        "{n} sign-ins ({users} users × {} steps), {clients} keep-alive connection(s), 2 server threads, client on the same cores; {} failed{}; = {:.0} HTTP requests/s (5 per sign-in); p50 of the password POST {}, of the code POST {}; CPU {cpu} per sign-in (server + load generator)",
        n / users.max(1),
        r.failed,
        r.first_failure
            .map_or_else(String::new, |f| format!(" (first: {f})")),
        rate * 5.0,
        ms(p50(r.sign_ins.iter().map(|s| s.password).collect())),
        ms(p50(r.sign_ins.iter().map(|s| s.code).collect())),
    );
    let mut lat: Vec<Duration> = r.sign_ins.iter().map(|s| s.total).collect();
    rows.push(
        Row::new(id, Group::Console, name, rate, "sign-ins/s")
            .lat(&mut lat)
            .note(note),
    );
}

pub(crate) fn run(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let conc = opts.concurrency.max(1);
    let q = opts.quick;
    // (cost, id, words, users, rounds): fewer sign-ins where each costs
    // two 19-MiB hashes; enough at the cheap cost for a p99.
    for (cost, label, what, users, rounds) in [
        (
            PasswordCost::OWASP,
            "owasp",
            "Argon2id 19 MiB × 2 passes, the engine's default",
            if q { 2 } else { 32 },
            if q { 1 } else { 3 },
        ),
        (
            PasswordCost::TESTING,
            "cheap",
            "Argon2id 8 KiB × 1 pass, the example bootstrap's",
            if q { 16 } else { 500 },
            if q { 1 } else { 4 },
        ),
    ] {
        opts.say(&format!("console: sign-ins ({label} password hashes)"));
        let mut bench = match Bench::new(users, cost) {
            Ok(b) => b,
            Err(e) => {
                rows.push(Row::missing(
                    &format!("console.signin.{label}.error"),
                    Group::Console,
                    &format!("console sign-in ({what})"),
                    "sign-ins/s",
                    e.to_string(),
                ));
                continue;
            }
        };
        // More connections than users would sit idle.
        let mut client_counts = vec![1];
        if conc.min(users) > 1 {
            client_counts.push(conc.min(users));
        }
        for clients in client_counts {
            let r = bench.run(clients, rounds);
            rows_of(
                rows,
                &format!("console.signin.{label}.c{clients}"),
                &format!(
                    "fobsim serve console sign-in (password + MFA code, 5 requests), {what}, {clients} client(s)"
                ),
                clients,
                users,
                r,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_read_from_the_form() {
        let page = r#"<form><input type="hidden" name="csrf_token" value="abc-123"><input name="x" value="y"></form>"#;
        assert_eq!(csrf(page), Some("abc-123"));
        assert_eq!(csrf("<p>no form</p>"), None);
        assert_eq!(enc("a b/+"), "a%20b%2F%2B");
    }
}
