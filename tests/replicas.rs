//! `fobsim serve` replicas on one PostgreSQL database (issue 19), as a
//! deployment runs them: three `fobsim serve --db postgres://…` processes
//! with one database key and one session key, clients spread over them,
//! the checks made on the database itself.
//!
//! - 32 concurrent clients send the same valid code (STS
//!   `GetSessionToken`) → exactly one success per round, 200 rounds; the
//!   session one replica issued is accepted by the others.
//! - 500 concurrent wrong codes for one user → the fail counter is 500
//!   (no lost update); 100 more reach the threshold (600) → locked, and
//!   every replica refuses the valid code.
//! - kill -9 of one replica, then a fast restart of PostgreSQL, both in
//!   the middle of load: every code answered 200 is in the database, no
//!   code is accepted twice, the other replicas answer at most 503 while
//!   the database restarts, and all serve again afterwards.
//! - `serve` refuses to start on a malformed URL, an unreachable server, a
//!   schema newer than it knows, or without the shared keys.
//!
//! Each replica runs a manual clock moved through its control socket; the
//! test owns true time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::collections::{HashMap, HashSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use fobsim_aws::Service;
use fobsim_aws::client::{Client, HttpResponse};
use fobsim_aws::sigv4::Credentials;
use fobsim_clock::control::Request as ControlRequest;
use fobsim_clock::control::client::ControlClient;
use fobsim_core::{Algorithm, Timestamp, Totp};
use fobsim_engine::testing::postgres::{self as pg, PgServer};

/// Mid-2026, 5 s into a step.
const T0: u64 = 1_782_864_005;
const STEP: u64 = 30;
const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;

fn serial(i: usize) -> String {
    format!("GAHT95{i:06}")
}

fn secret(i: usize) -> Vec<u8> {
    (0..20u8)
        .map(|b| {
            b.wrapping_mul(31)
                .wrapping_add(u8::try_from(i % 251).unwrap())
        })
        .collect()
}

fn user(i: usize) -> String {
    format!("user{i}")
}

fn creds(i: usize) -> Credentials {
    Credentials {
        access_key_id: format!("AKIAREPLICA{i:09}"),
        secret_access_key: format!("replica-secret-{i:06}"),
        session_token: None,
    }
}

fn code(i: usize, step: u64) -> String {
    Totp::new(Algorithm::Sha1, &secret(i), 6, 30, 0)
        .unwrap()
        .code_for_step(step)
        .to_string()
}

/// The bootstrap of `users` users, user `i` owning fob `i`.
fn write_bootstrap(dir: &Path, users: usize, profile: &str) -> PathBuf {
    let mut seeds = String::from("serial,seed,type,digits,step\n");
    for i in 0..users {
        seeds.push_str(&format!(
            "{},{},TOTP,6,30\n",
            serial(i),
            hex::encode(secret(i))
        ));
    }
    std::fs::write(dir.join("seeds.csv"), seeds).unwrap();
    std::fs::write(dir.join("admin.json"), ADMIN_POLICY).unwrap();
    let mut boot = String::from(
        r#"seeds = ["seeds.csv"]
[account]
id = "210987654321"
alias = "fobsim-replicas"
root_email = "root@example.com"
root_phone = "+1 555 0100"
root_password = "root-Password-1"
access_keys = []
"#,
    );
    for i in 0..users {
        let c = creds(i);
        boot.push_str(&format!(
            "[[users]]\nname = \"{}\"\npassword = \"user-Password-1\"\npolicies = [\"admin.json\"]\naccess_keys = [{{ id = \"{}\", secret = \"{}\" }}]\n",
            user(i),
            c.access_key_id,
            c.secret_access_key
        ));
    }
    boot.push_str(&format!(
        "[profile]\n{profile}\n[profile.password_cost]\nm_cost_kib = 8\nt_cost = 1\np_cost = 1\n"
    ));
    let path = dir.join("bootstrap.toml");
    std::fs::write(&path, boot).unwrap();
    path
}

/// One `fobsim serve` replica, killed on drop.
struct Replica {
    child: Child,
    endpoint: String,
    control: ControlClient,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static SPAWNS: AtomicU64 = AtomicU64::new(0);

fn serve_command(dir: &Path, url: &str, boot: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fobsim"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--db",
        url,
    ])
    .arg("--bootstrap")
    .arg(boot)
    .arg("--key-file")
    .arg(dir.join("db.key"))
    .arg("--session-key-file")
    .arg(dir.join("session.key"))
    .env_remove("FOBSIM_DB_KEY");
    cmd
}

impl Replica {
    fn start(dir: &Path, url: &str, boot: &Path, now: u64) -> Replica {
        let n = SPAWNS.fetch_add(1, Ordering::Relaxed);
        let socket = dir.join(format!("clock-{n}.sock"));
        let log = std::fs::File::create(dir.join(format!("replica-{n}.log"))).unwrap();
        let mut child = serve_command(dir, url, boot)
            .args([
                "--clock",
                "manual",
                "--start",
                &format!("@{now}"),
                "--control",
            ])
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("fobsim serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "{e}: {line:?}; log: {}",
                std::fs::read_to_string(dir.join(format!("replica-{n}.log"))).unwrap_or_default()
            )
        });
        let control = ControlClient::connect(&socket, Duration::from_secs(10)).unwrap();
        Replica {
            child,
            endpoint: v["endpoint"].as_str().unwrap().to_string(),
            control,
        }
    }

    fn set_time(&mut self, t: u64) {
        self.control
            .request(&ControlRequest::Set {
                time: format!("@{t}"),
            })
            .unwrap();
    }

    fn client(&self) -> Client {
        Client::new(&self.endpoint).unwrap()
    }
}

fn session(client: &Client, i: usize, code: &str, now: u64) -> HttpResponse {
    let serial = serial(i);
    client
        .call(
            Service::Sts,
            &[
                ("Action", "GetSessionToken"),
                ("Version", "2011-06-15"),
                ("SerialNumber", serial.as_str()),
                ("TokenCode", code),
            ],
            &creds(i),
            Timestamp::from_secs(now),
        )
        .unwrap()
}

/// Enable fob `i` for user `i` with the codes of the steps before and at
/// `now`.
fn enable(client: &Client, i: usize, now: u64) {
    let s = now / STEP;
    let (serial, name, c1, c2) = (serial(i), user(i), code(i, s - 1), code(i, s));
    let r = client
        .call(
            Service::Iam,
            &[
                ("Action", "EnableMFADevice"),
                ("Version", "2010-05-08"),
                ("UserName", name.as_str()),
                ("SerialNumber", serial.as_str()),
                ("AuthenticationCode1", c1.as_str()),
                ("AuthenticationCode2", c2.as_str()),
            ],
            &creds(i),
            Timestamp::from_secs(now),
        )
        .unwrap();
    assert_eq!(r.status, 200, "enable {i}: {}", r.body);
}

/// The token row's (last_step, failures, locked_until) in the database.
fn db_state(url: &str, i: usize) -> (Option<i64>, i64, Option<i64>) {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let r = c
            .query_one(
                "SELECT last_step, failures, locked_until FROM fobsim_tokens WHERE serial = $1",
                &[&serial(i)],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    })
    .join()
    .unwrap()
}

/// Three replicas on database `name` of `server`, `users` users enabled.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    boot: PathBuf,
    replicas: Vec<Replica>,
    now: u64,
}

impl Cluster {
    fn start(server: &PgServer, name: &str, users: usize, profile: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let url = server.database(name).unwrap();
        let boot = write_bootstrap(dir.path(), users, profile);
        // The first replica creates the schema, the account and the keys;
        // the others start on them.
        let mut replicas = vec![Replica::start(dir.path(), &url, &boot, T0)];
        for _ in 1..3 {
            replicas.push(Replica::start(dir.path(), &url, &boot, T0));
        }
        for i in 0..users {
            enable(&replicas[i % 3].client(), i, T0);
        }
        Cluster {
            dir,
            url,
            boot,
            replicas,
            now: T0,
        }
    }

    fn set_time(&mut self, t: u64) {
        self.now = t;
        for r in &mut self.replicas {
            r.set_time(t);
        }
    }
}

/// A 6-digit code that no step near `step` shows for fob `i`.
fn wrong_code(i: usize, step: u64) -> String {
    let near: HashSet<String> = (step - 5..=step + 5).map(|s| code(i, s)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[test]
fn three_replicas_accept_a_code_once_and_count_every_failure() {
    let server = pg::shared().unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = Cluster::start(
        server,
        "replicas_rules",
        2,
        "lockout_threshold = 600\nlockout_period = \"15m\"",
    );
    let clients: Vec<Client> = (0..32).map(|k| cluster.replicas[k % 3].client()).collect();

    // 200 rounds: 32 clients over 3 replicas, the same valid code.
    let mut first_session = None;
    for round in 1..=200u64 {
        let t = T0 + round * STEP;
        cluster.set_time(t);
        let c = code(0, t / STEP);
        let barrier = Barrier::new(clients.len());
        let answers: Vec<HttpResponse> = std::thread::scope(|s| {
            let hs: Vec<_> = clients
                .iter()
                .map(|client| {
                    let (barrier, c) = (&barrier, &c);
                    s.spawn(move || {
                        barrier.wait();
                        session(client, 0, c, t)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok: Vec<&HttpResponse> = answers.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), 1, "round {round}: {} successes", ok.len());
        for r in answers.iter().filter(|r| r.status != 200) {
            assert_eq!(
                (r.status, r.code().as_deref()),
                (403, Some("AccessDenied")),
                "round {round}: {}",
                r.body
            );
        }
        if first_session.is_none() {
            first_session = Some(ok[0].clone());
        }
        assert_eq!(
            db_state(&cluster.url, 0).0,
            Some(i64::try_from(t / STEP).unwrap())
        );
    }
    // No replay counted toward lockout.
    assert_eq!(db_state(&cluster.url, 0).1, 0);

    // The session one replica issued works on every replica (one session
    // key): ListMFADevices signed with it.
    let s = first_session.unwrap();
    let session_creds = Credentials {
        access_key_id: s.text("AccessKeyId").unwrap(),
        secret_access_key: s.text("SecretAccessKey").unwrap(),
        session_token: Some(s.text("SessionToken").unwrap()),
    };
    for r in &cluster.replicas {
        let a = r
            .client()
            .call(
                Service::Iam,
                &[("Action", "ListMFADevices"), ("Version", "2010-05-08")],
                &session_creds,
                Timestamp::from_secs(cluster.now),
            )
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body.contains(&serial(0)), "{}", a.body);
    }

    // 500 concurrent wrong codes for user 1, spread over the replicas:
    // every one refused and counted.
    let t = cluster.now + STEP;
    cluster.set_time(t);
    let wrong = wrong_code(1, t / STEP);
    let burst = |n: usize| {
        let barrier = Barrier::new(n);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..n)
                .map(|k| {
                    let (barrier, wrong, client) = (&barrier, &wrong, &clients[k % clients.len()]);
                    s.spawn(move || {
                        barrier.wait();
                        session(client, 1, wrong, t).status
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        statuses
    };
    let statuses = burst(500);
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    let (_, failures, locked) = db_state(&cluster.url, 1);
    assert_eq!((failures, locked), (500, None), "no lost update");

    // 100 more reach the threshold: locked (the counter restarts at 0).
    let statuses = burst(100);
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    let (_, failures, locked) = db_state(&cluster.url, 1);
    assert_eq!(failures, 0);
    assert_eq!(
        locked,
        Some(i64::try_from((t + 15 * 60) * 1000).unwrap()),
        "locked for the lockout period"
    );
    // Every replica refuses the valid code while locked.
    for r in &cluster.replicas {
        let a = session(&r.client(), 1, &code(1, t / STEP), t);
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(a.body.contains("locked"), "{}", a.body);
    }
    drop(cluster.dir);
}

/// What one client saw for one code.
#[derive(Default)]
struct Tally {
    /// (user, step) → number of 200 answers.
    accepted: HashMap<(usize, u64), u32>,
    /// (user, step) whose last attempt had no certain answer (503 or no
    /// answer): a 403 on retry is then a replay of a committed code.
    uncertain: HashSet<(usize, u64)>,
    /// Statuses other than 200 by replica slot, and transport errors.
    other: Vec<(usize, String)>,
}

#[test]
fn kill_9_a_replica_and_restart_postgres_in_the_middle_of_load() {
    const USERS: usize = 24;
    const CLIENTS: usize = 6;
    let mut server = PgServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = Cluster::start(&server, "replicas_crash", USERS, "");
    // Enabling used the codes of T0's step: the load starts a step later.
    cluster.set_time(T0 + STEP);
    let endpoints: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
        cluster
            .replicas
            .iter()
            .map(|r| r.endpoint.clone())
            .collect(),
    ));
    let now = Arc::new(AtomicU64::new(cluster.now));
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU64::new(0)); // 0 normal, 1 replica 2 down, 2 database restarting
    let dir = cluster.dir.path().to_path_buf();
    let url = cluster.url.clone();
    let boot = cluster.boot.clone();
    let replicas = Arc::new(Mutex::new(cluster.replicas));

    // The clock: one step every 150 ms on every replica.
    let ticker = {
        let (now, stop, replicas) = (Arc::clone(&now), Arc::clone(&stop), Arc::clone(&replicas));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(150));
                let t = now.load(Ordering::SeqCst) + STEP;
                for r in replicas.lock().unwrap().iter_mut() {
                    // A replica killed a moment ago does not answer.
                    let _ = r.control.request(&ControlRequest::Set {
                        time: format!("@{t}"),
                    });
                }
                now.store(t, Ordering::SeqCst);
            }
        })
    };
    // Clients: client k owns users k, k+CLIENTS, ... and talks to replica
    // k % 3; it sends each of its users the code of the current step until
    // one is certainly accepted, retrying after an uncertain answer.
    let workers: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (now, stop, endpoints, phase) = (
                Arc::clone(&now),
                Arc::clone(&stop),
                Arc::clone(&endpoints),
                Arc::clone(&phase),
            );
            std::thread::spawn(move || {
                let slot = k % 3;
                let mut tally = Tally::default();
                let mut endpoint = String::new();
                let mut client = None;
                let mine: Vec<usize> = (k..USERS).step_by(CLIENTS).collect();
                let mut next = 0;
                while !stop.load(Ordering::SeqCst) {
                    let e = endpoints.lock().unwrap()[slot].clone();
                    if e != endpoint {
                        client = Some(Client::new(&e).unwrap());
                        endpoint = e;
                    }
                    let client = client.as_ref().unwrap();
                    let u = mine[next % mine.len()];
                    next += 1;
                    let t = now.load(Ordering::SeqCst);
                    let step = t / STEP;
                    if tally.accepted.contains_key(&(u, step)) {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let serial = serial(u);
                    let c = code(u, step);
                    let r = client.call(
                        Service::Sts,
                        &[
                            ("Action", "GetSessionToken"),
                            ("Version", "2011-06-15"),
                            ("SerialNumber", serial.as_str()),
                            ("TokenCode", c.as_str()),
                        ],
                        &creds(u),
                        Timestamp::from_secs(t),
                    );
                    let p = phase.load(Ordering::SeqCst);
                    // The clock moved past the window while the request
                    // waited (for a connection during the restart): a
                    // refusal is then the code's age, not a replay.
                    let expired = now.load(Ordering::SeqCst) / STEP > step + 1;
                    match r {
                        Ok(a) if a.status == 200 => {
                            *tally.accepted.entry((u, step)).or_default() += 1;
                            tally.uncertain.remove(&(u, step));
                        }
                        Ok(a) if a.status == 503 => {
                            tally.uncertain.insert((u, step));
                            if p != 2 && !(p == 1 && slot == 2) {
                                tally.other.push((slot, format!("503 in phase {p}")));
                            }
                        }
                        Ok(a) if a.status == 403 && tally.uncertain.contains(&(u, step)) => {
                            // The uncertain attempt had committed: a replay now.
                            tally.uncertain.remove(&(u, step));
                            tally.accepted.entry((u, step)).or_default();
                        }
                        Ok(a) if a.status == 403 && expired => {}
                        Ok(a) => tally.other.push((
                            slot,
                            format!("{} in phase {p}, step {step}: {}", a.status, a.body),
                        )),
                        Err(e) => {
                            tally.uncertain.insert((u, step));
                            if !(p == 1 && slot == 2) {
                                tally
                                    .other
                                    .push((slot, format!("no answer in phase {p}: {e}")));
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                tally
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1_000));
    // kill -9 replica 2 mid-load, then start a new one on the database.
    phase.store(1, Ordering::SeqCst);
    {
        let mut rs = replicas.lock().unwrap();
        let _ = rs[2].child.kill();
        let _ = rs[2].child.wait();
    }
    std::thread::sleep(Duration::from_millis(500));
    let fresh = Replica::start(&dir, &url, &boot, now.load(Ordering::SeqCst));
    endpoints.lock().unwrap()[2] = fresh.endpoint.clone();
    replicas.lock().unwrap()[2] = fresh;
    std::thread::sleep(Duration::from_millis(1_000));
    phase.store(0, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));

    // Restart PostgreSQL (fast shutdown) mid-load.
    phase.store(2, Ordering::SeqCst);
    server.restart_fast().unwrap();
    std::thread::sleep(Duration::from_millis(3_000));
    phase.store(3, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1_000));
    stop.store(true, Ordering::SeqCst);
    ticker.join().unwrap();
    let tallies: Vec<Tally> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    let mut accepted: HashMap<(usize, u64), u32> = HashMap::new();
    let mut total = 0;
    for t in &tallies {
        assert!(t.other.is_empty(), "unexpected answers: {:?}", t.other);
        for (k, n) in &t.accepted {
            *accepted.entry(*k).or_default() += n;
        }
        total += t.accepted.len();
    }
    // No code was accepted twice.
    assert!(accepted.values().all(|n| *n <= 1), "{accepted:?}");
    // Every code answered 200 is in the database: each user's replay
    // barrier is at or above the highest step accepted for it.
    for u in 0..USERS {
        let highest = accepted
            .keys()
            .filter(|(v, _)| *v == u)
            .map(|(_, s)| *s)
            .max();
        let Some(highest) = highest else { continue };
        let (last, _, _) = db_state(&url, u);
        assert!(
            last.is_some_and(|l| l >= i64::try_from(highest).unwrap()),
            "user {u}: accepted step {highest}, barrier {last:?}"
        );
    }
    assert!(total > USERS, "load ran: {total} codes accepted");
    // Every accepted code is refused now, by every replica (a replay).
    let t = now.load(Ordering::SeqCst);
    let rs = replicas.lock().unwrap();
    for (n, ((u, step), _)) in accepted
        .iter()
        .filter(|(_, n)| **n == 1)
        .enumerate()
        .take(60)
    {
        if step + 1 < t / STEP {
            continue; // outside the window now: refused for that reason
        }
        let a = session(&rs[n % 3].client(), *u, &code(*u, *step), t);
        assert_eq!(a.status, 403, "replay of user {u} step {step}: {}", a.body);
    }
    // And all three serve fresh codes after the restart.
    for (slot, r) in rs.iter().enumerate() {
        let u = slot;
        let step = t / STEP + 1;
        let a = session(&r.client(), u, &code(u, step), t);
        assert_eq!(
            a.status, 200,
            "replica {slot} after the restart: {}",
            a.body
        );
    }
    // No replica panicked, killed and restarted database or not.
    drop(rs);
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("replica-") && name.ends_with(".log") {
            let log = std::fs::read_to_string(e.path()).unwrap();
            assert!(!log.contains("panicked"), "{name}: {log}");
        }
    }
}

#[test]
fn serve_refuses_a_wrong_url_an_unreachable_server_and_a_newer_schema() {
    let server = pg::shared().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let boot = write_bootstrap(dir.path(), 1, "");
    let refuse = |url: &str, extra: &[&str]| -> String {
        let out = serve_command(dir.path(), url, &boot)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "serve started on {url}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = refuse("postgres://fob:s3cret@127.0.0.1:notaport/x", &[]);
    assert!(
        e.contains("opening postgres://fob:***@127.0.0.1:notaport/x"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = refuse(&format!("postgres://fobsim@127.0.0.1:{port}/x"), &[]);
    assert!(e.contains("error connecting to server"), "{e}");

    let url = server.database("replicas_refuse").unwrap();
    for (args, want) in [
        (vec!["--key-file", "k"], "--session-key-file FILE"),
        (
            vec!["--session-key-file", "s"],
            "--key-file FILE or FOBSIM_DB_KEY",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_fobsim"))
            .args(["serve", "--db", &url, "--bootstrap"])
            .arg(&boot)
            .args(args)
            .current_dir(dir.path())
            .env_remove("FOBSIM_DB_KEY")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(want), "{e}");
    }

    // A schema newer than this build: refused with both versions named.
    {
        let mut r = Replica::start(dir.path(), &url, &boot, T0);
        r.set_time(T0);
    }
    let u = url.clone();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
        c.execute("UPDATE fobsim_schema SET version = version + 1", &[])
            .unwrap();
    })
    .join()
    .unwrap();
    let e = refuse(&url, &[]);
    assert!(
        e.contains("database schema version 2 is newer than this build supports (1)"),
        "{e}"
    );
}
