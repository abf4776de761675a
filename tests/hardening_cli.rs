//! `fobsim serve` and `fobsim emulate` against what issue 17 found, as
//! real processes on loopback (SQLite, the example bootstrap): 10,000
//! body-slowloris sockets, a database locked by another process, a second
//! server or emulator given the same control socket, link directory or
//! pid file, key and seed files others may read or that are symlinks.
//! Whatever happens, signed requests and the control plane keep being
//! answered, memory stays bounded and comes back, and secrets stay private.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fobsim_aws::Service;
use fobsim_aws::client::Client;
use fobsim_aws::sigv4::Credentials;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/bootstrap/example.toml"
);

fn alice() -> Credentials {
    Credentials {
        access_key_id: "AKIAALICEEXAMPLE0001".into(),
        secret_access_key: "alice+Secret/Example/Key/000000000000001".into(),
        session_token: None,
    }
}

/// A `fobsim serve` child, killed on drop.
struct Serve {
    child: Child,
    endpoint: String,
    control: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_cmd(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("iam.db"))
        .args(["--bootstrap", EXAMPLE, "--control"])
        .arg(dir.join("clock.sock"))
        .args(extra);
    cmd
}

/// Start `fobsim serve` in `dir` and wait for its endpoint line.
fn serve(dir: &Path, extra: &[&str]) -> Serve {
    let mut child = serve_cmd(dir, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("fobsim serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("fobsim serve prints its endpoint");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Serve {
        child,
        endpoint: v["endpoint"].as_str().expect("endpoint").to_string(),
        control: dir.join("clock.sock"),
    }
}

impl Serve {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory, KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Open descriptors of the server.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// A signed GetUser as alice, and how long it took.
    fn signed(&self) -> (u16, Duration) {
        let started = Instant::now();
        let r = Client::new(&self.endpoint)
            .unwrap()
            .call(
                Service::Iam,
                &[("Action", "GetUser")],
                &alice(),
                fobsim_clock::system_now(),
            )
            .expect("an answer");
        (r.status, started.elapsed())
    }

    /// An unsigned request (refused before the engine), and how long it took.
    fn unsigned(&self) -> (u16, Duration) {
        let started = Instant::now();
        let r = Client::new(&self.endpoint)
            .unwrap()
            .send("POST", "/", &[("Host", "x")], b"Action=GetUser")
            .expect("an answer");
        (r.status, started.elapsed())
    }

    /// `{"op":"get"}` on the control socket, and how long it took.
    fn control_get(&self) -> (String, Duration) {
        control_get(&self.control)
    }
}

fn control_get(path: &Path) -> (String, Duration) {
    let started = Instant::now();
    let mut s = UnixStream::connect(path).expect("the control socket answers");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"op\":\"get\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    (line, started.elapsed())
}

/// Wait for `child` to end; its stderr.
fn refused(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ten_thousand_body_slowloris_sockets_stop_nothing_and_memory_comes_back() {
    const SOCKETS: usize = 10_000;
    fobsim_emulator::raise_fd_limit().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--workers", "2"]);
    for _ in 0..20 {
        assert_eq!(s.signed().0, 200);
    }
    let before = s.rss_kib();

    // Complete heads announcing 64 KiB (the body limit), 65,535 bytes of
    // it, then silence.
    let mut attack = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n".to_vec();
    attack.extend(std::iter::repeat_n(b'a', 65_535));
    // While the sockets are being opened, a client keeps asking.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let done = std::sync::Arc::clone(&done);
        let endpoint = s.endpoint.clone();
        let control = s.control.clone();
        std::thread::spawn(move || {
            let mut worst = (Duration::ZERO, Duration::ZERO);
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let r = Client::new(&endpoint)
                    .unwrap()
                    .call(
                        Service::Iam,
                        &[("Action", "GetUser")],
                        &alice(),
                        fobsim_clock::system_now(),
                    )
                    .expect("an answer during the attack");
                assert_eq!(r.status, 200, "{}", r.body);
                worst.0 = worst.0.max(started.elapsed());
                let (line, took) = control_get(&control);
                assert!(line.contains("\"ok\":true"), "{line}");
                worst.1 = worst.1.max(took);
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            (worst, n)
        })
    };
    let started = Instant::now();
    let mut held = Vec::with_capacity(SOCKETS);
    let mut peak = before;
    for i in 0..SOCKETS {
        let mut c = TcpStream::connect(s.endpoint.trim_start_matches("http://")).unwrap();
        c.set_nonblocking(true).unwrap();
        // The server may already have shed it: what is written is written.
        let _ = c.write(&attack);
        held.push(c);
        if i % 1000 == 999 {
            peak = peak.max(s.rss_kib());
        }
    }
    let opened = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let ((during_signed, during_control), probes) = prober.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    peak = peak.max(s.rss_kib());
    let fds = s.fds();

    // Under it: signed requests and the control plane are answered.
    let mut worst_signed = Duration::ZERO;
    let mut worst_control = Duration::ZERO;
    for _ in 0..10 {
        let (status, took) = s.signed();
        assert_eq!(status, 200);
        worst_signed = worst_signed.max(took);
        let (line, took) = s.control_get();
        assert!(line.contains("\"ok\":true"), "{line}");
        worst_control = worst_control.max(took);
    }
    peak = peak.max(s.rss_kib());
    drop(held);
    // Memory comes back once the load ends (the server trims every 2 s).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(s.signed().0, 200);
    let after = s.rss_kib();
    eprintln!(
        "{SOCKETS} body-slowloris sockets opened in {opened:?}; server fds {fds}; RSS before {before} KiB, peak {peak} KiB, after {after} KiB; worst signed request {worst_signed:?}, worst control get {worst_control:?}; while opening: {probes} probes, worst signed {during_signed:?}, worst control {during_control:?}"
    );
    // At most --max-connections (1024) connections are held: the others
    // were shed, the oldest first.
    assert!(fds < 1024 + 64, "{fds} descriptors");
    // Bound: 1,024 connections × (64 KiB body + 64 KiB head buffer) above
    // the start, with room for the allocator: 200 MiB.
    assert!(peak < before + 200 * 1024, "peak RSS {peak} KiB");
    assert!(after < before + 48 * 1024, "RSS after the load {after} KiB");
    assert!(worst_signed < Duration::from_secs(2), "{worst_signed:?}");
    assert!(worst_control < Duration::from_secs(1), "{worst_control:?}");
    assert!(during_signed < Duration::from_secs(2), "{during_signed:?}");
    assert!(
        during_control < Duration::from_secs(1),
        "{during_control:?}"
    );
}

/// Two consecutive codes of the example bootstrap's GAHT90000001 now.
fn example_codes() -> (String, String) {
    let totp = fobsim_core::Totp::new(
        fobsim_core::Algorithm::Sha1,
        b"12345678901234567890",
        6,
        30,
        0,
    )
    .unwrap();
    let step = fobsim_clock::system_now().as_secs() / 30;
    (
        totp.code_for_step(step - 1).to_string(),
        totp.code_for_step(step).to_string(),
    )
}

fn enable(s: &Serve, c1: &str, c2: &str) -> (fobsim_aws::client::HttpResponse, Duration) {
    let started = Instant::now();
    let r = Client::new(&s.endpoint)
        .unwrap()
        .call(
            Service::Iam,
            &[
                ("Action", "EnableMFADevice"),
                ("UserName", "alice"),
                ("SerialNumber", "GAHT90000001"),
                ("AuthenticationCode1", c1),
                ("AuthenticationCode2", c2),
            ],
            &alice(),
            fobsim_clock::system_now(),
        )
        .unwrap();
    (r, started.elapsed())
}

#[test]
fn a_database_locked_by_another_process_gives_503_and_stalls_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &["--workers", "1", "--busy-timeout", "500ms"]);
    assert_eq!(s.signed().0, 200);
    let locker = rusqlite::Connection::open(dir.path().join("iam.db")).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (c1, c2) = example_codes();

    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (endpoint, c1, c2) = (s.endpoint.clone(), c1.clone(), c2.clone());
            std::thread::spawn(move || {
                let s = Serve {
                    child: Command::new("true").spawn().unwrap(),
                    endpoint,
                    control: PathBuf::new(),
                };
                enable(&s, &c1, &c2)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let mut worst = (Duration::ZERO, Duration::ZERO);
    for _ in 0..20 {
        let (status, took) = s.unsigned();
        assert_eq!(status, 403);
        worst.0 = worst.0.max(took);
        let (line, took) = s.control_get();
        assert!(line.contains("\"ok\":true"), "{line}");
        worst.1 = worst.1.max(took);
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "under the lock: worst unsigned request {:?}, worst control get {:?}",
        worst.0, worst.1
    );
    assert!(worst.0 < Duration::from_millis(50), "{:?}", worst.0);
    assert!(worst.1 < Duration::from_millis(50), "{:?}", worst.1);
    for w in writers {
        let (r, took) = w.join().unwrap();
        eprintln!("a write under the lock: {} after {took:?}", r.status);
        assert_eq!(
            (r.status, r.code().as_deref()),
            (503, Some("ServiceUnavailable")),
            "{}",
            r.body
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    drop(locker);
    // Nothing was consumed: the same codes enable the device now.
    let (r, _) = enable(&s, &c1, &c2);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_second_server_is_refused_and_a_stale_socket_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("serve.pid");
    let pid_arg = pid_file.to_str().unwrap();
    let first = serve(dir.path(), &["--pid-file", pid_arg]);
    let pid = first.pid();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{pid}\n")
    );
    // Same control socket.
    let (code, err) = refused(serve_cmd(dir.path(), &[]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "control socket {} is in use by PID {pid}",
            first.control.display()
        )),
        "{err}"
    );
    // Same pid file, another socket.
    let other = tempfile::tempdir().unwrap();
    let (code, err) = refused(serve_cmd(other.path(), &["--pid-file", pid_arg]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("pid file {pid_arg} is in use by PID {pid}")),
        "{err}"
    );
    // The first one still owns its clock.
    assert!(first.control_get().0.contains("\"ok\":true"));

    // Killed: its socket and pid file stay behind, stale; the next server
    // replaces them.
    let control = first.control.clone();
    drop(first);
    assert!(control.exists() && pid_file.exists());
    let second = serve(dir.path(), &["--pid-file", pid_arg]);
    assert!(second.control_get().0.contains("\"ok\":true"));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", second.pid())
    );
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_files_others_may_read_are_refused_and_the_database_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    assert_eq!(s.signed().0, 200);
    for f in [
        "iam.db",
        "iam.db-wal",
        "iam.db-shm",
        "iam.db.key",
        "iam.db.session-key",
    ] {
        assert_eq!(mode(&dir.path().join(f)), 0o600, "{f}");
    }
    drop(s);
    for f in ["iam.db.key", "iam.db.session-key"] {
        let key = dir.path().join(f);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, err) = refused(serve_cmd(dir.path(), &[]));
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("permissions 0644 are too open")
                && err.contains(&format!("chmod 600 {}", key.display())),
            "{f}: {err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    drop(serve(dir.path(), &[]));
}

/// A child process killed and reaped on drop, also when a test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fobsim emulate --json ARGS` until its ready line: the child and the line.
fn emulate(args: &[&str]) -> (Reaped, serde_json::Value) {
    let mut child = Reaped(
        Command::new(BIN)
            .arg("emulate")
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fobsim emulate"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the ready line");
    let ready = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (child, ready)
}

#[test]
fn a_second_emulator_is_refused_and_a_stale_one_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("fobs");
    let control = dir.path().join("clock.sock");
    let (links_s, control_s) = (links.to_str().unwrap(), control.to_str().unwrap());
    let (mut first, ready) = emulate(&["--link-dir", links_s, "--control", control_s]);
    let pid = first.0.id();
    let link = PathBuf::from(ready["fobs"][0]["link"].as_str().unwrap());
    let pty = std::fs::read_link(&link).unwrap();

    let other = dir.path().join("other");
    for (args, says) in [
        (
            vec!["emulate", "--link-dir", links_s],
            format!("link directory {links_s} is in use by PID {pid}"),
        ),
        (
            vec![
                "emulate",
                "--link-dir",
                other.to_str().unwrap(),
                "--control",
                control_s,
            ],
            format!("control socket {control_s} is in use by PID {pid}"),
        ),
    ] {
        let (code, err) = refused({
            let mut c = Command::new(BIN);
            c.args(&args);
            c
        });
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(&says), "{args:?}: {err}");
    }
    // The first one's links and socket are untouched, and answer.
    assert_eq!(std::fs::read_link(&link).unwrap(), pty);
    assert!(control_get(&control).0.contains("\"ok\":true"));
    assert!(
        !other.join("GAHT00000001").exists(),
        "the refused one left nothing"
    );

    // Killed: links, socket and pid files stay, stale; the next emulator
    // takes them over.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert!(std::fs::symlink_metadata(&link).is_ok() && control.exists());
    let (second, ready) = emulate(&["--link-dir", links_s, "--control", control_s]);
    let path = PathBuf::from(ready["fobs"][0]["path"].as_str().unwrap());
    assert_eq!(std::fs::read_link(&link).unwrap(), path);
    assert!(control_get(&control).0.contains("\"ok\":true"));
    drop(second);
}

#[test]
fn exported_seeds_never_go_to_a_shared_file_or_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.csv");
    std::fs::write(&shared, "old\n").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    let target = dir.path().join("target.csv");
    std::fs::write(&target, "keep\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for (file, says) in [
        (&shared, "permissions 0644 are too open"),
        (&link, "is a symlink"),
    ] {
        let (code, err) = refused({
            let mut c = Command::new(BIN);
            c.args(["emulate", "--export-seeds"]).arg(file);
            c
        });
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&shared).unwrap(), "old\n");
    assert_eq!(mode(&shared), 0o644);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
    // New, and replacing a private one: 0600.
    let fresh = dir.path().join("fresh.csv");
    for _ in 0..2 {
        let (child, _) = emulate(&["--export-seeds", fresh.to_str().unwrap()]);
        drop(child);
        assert_eq!(mode(&fresh), 0o600);
        assert!(
            std::fs::read_to_string(&fresh)
                .unwrap()
                .contains("GAHT00000001")
        );
    }
}

/// A control-plane request on `path`: its answer line.
fn control(path: &Path, request: &str) -> String {
    let mut s = UnixStream::connect(path).expect("the control socket answers");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    line
}

fn bob() -> Credentials {
    Credentials {
        access_key_id: "AKIABOBEXAMPLE000001".into(),
        secret_access_key: "bob+Secret/Example/Key/00000000000000001".into(),
        session_token: None,
    }
}

/// The soak run of issue 17 (about 40 s): against one `fobsim serve` on
/// SQLite with a manual clock (signing judged against the real time),
/// rounds of 4 clients sending the same fresh code at once (one step
/// further each round) run next to a client guessing wrong codes for
/// another user, malformed and unsigned requests, and slow clients that
/// send half a body and hold it. At the end, after `kill -9`: every
/// accepted code was accepted once (exactly one 200 per round, the other
/// three refused and not counted), the database's replay barrier is the
/// last accepted step (every 200 was committed), no refusal but the
/// replays and the wrong guesses, and RSS stayed under 200 MiB.
#[test]
fn soak_mixed_clients_accept_each_code_once_and_lose_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const START: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const RUN: Duration = Duration::from_secs(40);
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(
        dir.path(),
        &[
            "--clock",
            "manual",
            "--start",
            &START.to_string(),
            "--signing-time",
            "system",
        ],
    );
    let alice_totp = fobsim_core::Totp::new(
        fobsim_core::Algorithm::Sha1,
        b"12345678901234567890",
        6,
        30,
        0,
    )
    .unwrap();
    let bob_totp = fobsim_core::Totp::new(
        fobsim_core::Algorithm::Sha1,
        &hex::decode("4a6f686e20446f65206b6579206f6e652031323334").unwrap(),
        6,
        30,
        0,
    )
    .unwrap();
    let client = || Client::new(&s.endpoint).unwrap();
    let step0 = START / 30;
    for (who, user, serial, t) in [
        (alice(), "alice", "GAHT90000001", &alice_totp),
        (bob(), "bob", "GAHT90000002", &bob_totp),
    ] {
        let r = client()
            .call(
                Service::Iam,
                &[
                    ("Action", "EnableMFADevice"),
                    ("UserName", user),
                    ("SerialNumber", serial),
                    (
                        "AuthenticationCode1",
                        &t.code_for_step(step0 - 1).to_string(),
                    ),
                    ("AuthenticationCode2", &t.code_for_step(step0).to_string()),
                ],
                &who,
                fobsim_clock::system_now(),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{user}: {}", r.body);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let noise_sent = Arc::new(AtomicU64::new(0));
    let mut noise = Vec::new();
    // Wrong guesses for bob (he locks; his refusals count, alice's do not).
    {
        let (stop, sent, endpoint) = (
            Arc::clone(&stop),
            Arc::clone(&noise_sent),
            s.endpoint.clone(),
        );
        noise.push(std::thread::spawn(move || {
            let mut guess = 0u32;
            let mut refused = 0u64;
            while !stop.load(Ordering::Relaxed) {
                guess = (guess + 7919) % 1_000_000;
                let code = format!("{guess:06}");
                let r = Client::new(&endpoint)
                    .unwrap()
                    .call(
                        Service::Sts,
                        &[
                            ("Action", "GetSessionToken"),
                            ("Version", "2011-06-15"),
                            ("SerialNumber", "GAHT90000002"),
                            ("TokenCode", &code),
                        ],
                        &bob(),
                        fobsim_clock::system_now(),
                    )
                    .unwrap();
                // A guess may hit (6 digits): then it is a 200, else a 403.
                assert!(matches!(r.status, 200 | 403), "{}", r.body);
                refused += u64::from(r.status == 403);
                sent.fetch_add(1, Ordering::Relaxed);
            }
            refused
        }));
    }
    // Malformed and unsigned requests: every one answered (or closed), none stops the server.
    {
        let (stop, sent, addr) = (
            Arc::clone(&stop),
            Arc::clone(&noise_sent),
            s.endpoint.trim_start_matches("http://").to_string(),
        );
        noise.push(std::thread::spawn(move || {
            let junk: [&[u8]; 6] = [
                b"GARBAGE\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\nAction=GetUser",
                b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x\r\nContent-Length: 14\r\n\r\nAction=GetUser",
                b"\x00\xff\x13\x37 not http at all\r\n\r\n",
            ];
            let mut i = 0usize;
            let mut refused = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut c = TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                c.write_all(junk[i % junk.len()]).unwrap();
                let mut head = [0u8; 12];
                let n = std::io::Read::read(&mut c, &mut head).unwrap_or(0);
                // An HTTP error status, or the HTTP/2 GOAWAY frame.
                let text = String::from_utf8_lossy(&head[..n]).into_owned();
                assert!(
                    text.starts_with("HTTP/1.1 4") || head[..n].starts_with(&[0, 0]),
                    "{:?} -> {text:?}",
                    String::from_utf8_lossy(junk[i % junk.len()])
                );
                refused += 1;
                i += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            refused
        }));
    }
    // Slow clients: half a body, held, 50 at a time.
    {
        let (stop, addr) = (
            Arc::clone(&stop),
            s.endpoint.trim_start_matches("http://").to_string(),
        );
        noise.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut opened = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut c = TcpStream::connect(&addr).unwrap();
                let _ = c.write_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\nAction=Get",
                );
                held.push(c);
                opened += 1;
                if held.len() >= 50 {
                    held.remove(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            opened
        }));
    }

    // Rounds: one step further, then 4 clients send that step's code at once.
    let started = Instant::now();
    let mut peak = s.rss_kib();
    let mut rounds = 0u64;
    let mut accepted: Vec<(u64, String)> = Vec::new();
    let mut step = step0;
    while started.elapsed() < RUN {
        let line = control(&s.control, r#"{"op":"advance","by":"30s"}"#);
        assert!(line.contains("\"ok\":true"), "{line}");
        step += 1;
        let code = alice_totp.code_for_step(step).to_string();
        let answers: Vec<_> = (0..4)
            .map(|_| {
                let (endpoint, code) = (s.endpoint.clone(), code.clone());
                std::thread::spawn(move || {
                    Client::new(&endpoint)
                        .unwrap()
                        .call(
                            Service::Sts,
                            &[
                                ("Action", "GetSessionToken"),
                                ("Version", "2011-06-15"),
                                ("SerialNumber", "GAHT90000001"),
                                ("TokenCode", &code),
                            ],
                            &alice(),
                            fobsim_clock::system_now(),
                        )
                        .unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let ok = answers.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok,
            1,
            "round {rounds}, step {step}: {:?}",
            answers
                .iter()
                .map(|r| (r.status, r.code()))
                .collect::<Vec<_>>()
        );
        for r in answers.iter().filter(|r| r.status != 200) {
            assert_eq!(
                (r.status, r.code().as_deref()),
                (403, Some("AccessDenied")),
                "{}",
                r.body
            );
        }
        accepted.push((step, code));
        rounds += 1;
        if rounds.is_multiple_of(20) {
            peak = peak.max(s.rss_kib());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u64> = noise.into_iter().map(|h| h.join().unwrap()).collect();
    peak = peak.max(s.rss_kib());

    // Replays of anything accepted are refused (and, being replays of
    // the last accepted code or older, the device is not locked by them).
    let last = accepted.last().unwrap().1.clone();
    let r = client()
        .call(
            Service::Sts,
            &[
                ("Action", "GetSessionToken"),
                ("Version", "2011-06-15"),
                ("SerialNumber", "GAHT90000001"),
                ("TokenCode", &last),
            ],
            &alice(),
            fobsim_clock::system_now(),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);

    // kill -9: what was answered 200 is in the file.
    let _ = s.child.kill();
    let _ = s.child.wait();
    let db = rusqlite::Connection::open(dir.path().join("iam.db")).unwrap();
    let (barrier, failures): (i64, i64) = db
        .query_row(
            "SELECT last_step, failures FROM tokens WHERE serial = 'GAHT90000001'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // The barrier is the last accepted step (or a later candidate step
    // that happens to show the same 6-digit code).
    let barrier = u64::try_from(barrier).unwrap();
    assert!(
        (step..=step + 4).contains(&barrier),
        "barrier {barrier}, last accepted step {step}"
    );
    assert_eq!(
        failures, 0,
        "replays of the code just accepted are not counted"
    );
    let distinct: std::collections::HashSet<u64> = accepted.iter().map(|(s, _)| *s).collect();
    assert_eq!(distinct.len(), accepted.len());
    eprintln!(
        "soak: {rounds} rounds in {:?} (one 200 and three refused replays each), {} wrong guesses for bob, {} malformed/unsigned, {} slow sockets; peak RSS {peak} KiB",
        started.elapsed(),
        counts[0],
        counts[1],
        counts[2]
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
}
