//! `fobsim bench`: one benchmark run that measures fobsim and its peers on
//! the same machine, in the same process run, and returns one table.
//!
//! Groups (see [`Group`]):
//! - `otp`: TOTP generation, codes/s: our core (one code per call, and the
//!   64-code batch API) against totp-rs in-process, pyotp (`TOTP.at`, in a
//!   venv) and oathtool (one process per code, and the marginal per-code
//!   cost inside one process with `-w`).
//! - `verify`: sign-in verification, ops/s and p50/p99: our engine
//!   in-process (memory, SQLite; one thread and `concurrency` threads), our
//!   AWS Query server (`GetSessionToken` with MFA over loopback HTTP) and
//!   privacyIDEA's `/validate/check` (gunicorn, 2 sync workers), all at the
//!   same client concurrency.
//! - `search`: the enable/resync search, worst case (no match) per call,
//!   for windows of 10, 100, 1000 and 10000 steps.
//! - `emulator`: in-process fleet memory (VmRSS delta per fob, up to
//!   100,000 fobs), pty `PRESS` round trip, USB/IP round trip.
//! - `harness`: the built-in suite's wall time and the fleet simulation.
//!
//! Nothing here asserts on a number: every result is a row of the table.
//! Peers that are not installed give a row without a value and a note.
//! Every peer process is started in its own process group and stopped by
//! PID (also when a measurement fails); servers listen on loopback only;
//! every loop is bounded by a count and a deadline.

pub mod simulation;

use std::hint::black_box;
use std::io::{BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fobsim_aws::Service;
use fobsim_aws::client::build_request;
use fobsim_core::Timestamp;
use fobsim_core::{Algorithm, Code, Totp};
use fobsim_core::{Channel, Principal};
use fobsim_engine::api::server;
use fobsim_engine::{Engine, Profile, testing};
use serde::Serialize;

use fobsim_engines::cleanup;

const SEED_POLICY: &str = include_str!("../../../fixtures/policies/manage-own-mfa.json");

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setting up one of our own components failed.
    #[error("{what}: {message}")]
    Setup {
        /// What was being set up.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// A peer (pyotp, oathtool, privacyIDEA) misbehaved or is missing.
    #[error("peer {peer}: {message}")]
    Peer {
        /// The peer's name.
        peer: String,
        /// What went wrong.
        message: String,
    },
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn setup(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup {
        what: what.to_string(),
        message: e.to_string(),
    }
}

fn peer(peer: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        peer: peer.to_string(),
        message: e.to_string(),
    }
}

/// A group of measurements (`fobsim bench --only GROUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// TOTP generation.
    Otp,
    /// Verification: engine in-process, HTTP, privacyIDEA.
    Verify,
    /// Enable/resync search cost against the window size.
    Search,
    /// Emulator: fleet memory, pty and USB/IP round trips.
    Emulator,
    /// Harness: built-in suite, fleet simulation.
    Harness,
}

impl Group {
    /// Every group, in table order.
    pub const ALL: [Group; 5] = [
        Group::Otp,
        Group::Verify,
        Group::Search,
        Group::Emulator,
        Group::Harness,
    ];

    /// The name used on the command line and in JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Group::Otp => "otp",
            Group::Verify => "verify",
            Group::Search => "search",
            Group::Emulator => "emulator",
            Group::Harness => "harness",
        }
    }

    /// Parse a group name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == s)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Shorter runs and smaller sizes (the output says so).
    pub quick: bool,
    /// Groups to run; empty = all.
    pub only: Vec<Group>,
    /// Client concurrency for every verification row.
    pub concurrency: usize,
    /// Measure the peers (pyotp, oathtool, privacyIDEA).
    pub peers: bool,
    /// A Python with pyotp.
    pub pyotp_python: PathBuf,
    /// The oathtool binary.
    pub oathtool: PathBuf,
    /// The privacyIDEA virtualenv (with gunicorn, else `pi-manage run`).
    pub privacyidea_venv: PathBuf,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Options {
    /// Defaults: all groups, concurrency 8, peers where
    /// `tests/perf/peers.sh` installs them.
    #[must_use]
    pub fn new(quick: bool) -> Options {
        Options {
            quick,
            only: Vec::new(),
            concurrency: 8,
            peers: true,
            pyotp_python: fobsim_engines::peers::venv("FOBSIM_PYOTP_VENV", "venv-pyotp")
                .join("bin/python"),
            oathtool: PathBuf::from("oathtool"),
            privacyidea_venv: fobsim_engines::privacyidea::venv_dir(),
            progress: false,
        }
    }

    fn wants(&self, g: Group) -> bool {
        self.only.is_empty() || self.only.contains(&g)
    }

    fn runs(&self) -> usize {
        if self.quick { 3 } else { 5 }
    }

    fn min_time(&self) -> Duration {
        Duration::from_millis(if self.quick { 50 } else { 300 })
    }

    fn say(&self, msg: &str) {
        if self.progress {
            eprintln!("bench: {msg}");
        }
    }
}

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable id, e.g. `otp.sha1.fobsim`.
    pub id: String,
    /// Its group.
    pub group: Group,
    /// What was measured, for people.
    pub name: String,
    /// The value (median of the runs); `None` if it could not be measured.
    pub value: Option<f64>,
    /// The unit of `value`.
    pub unit: String,
    /// Median latency, µs, where measured.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs, where measured.
    pub p99_us: Option<f64>,
    /// How it was measured, or why it is missing.
    pub note: String,
}

impl Row {
    fn new(id: &str, group: Group, name: &str, value: f64, unit: &str) -> Row {
        Row {
            id: id.to_string(),
            group,
            name: name.to_string(),
            value: Some(value),
            unit: unit.to_string(),
            p50_us: None,
            p99_us: None,
            note: String::new(),
        }
    }

    fn missing(id: &str, group: Group, name: &str, unit: &str, why: String) -> Row {
        Row {
            id: id.to_string(),
            group,
            name: name.to_string(),
            value: None,
            unit: unit.to_string(),
            p50_us: None,
            p99_us: None,
            note: why,
        }
    }

    fn lat(mut self, lat: &mut [Duration]) -> Row {
        if !lat.is_empty() {
            lat.sort_unstable();
            self.p50_us = Some(percentile(lat, 0.50).as_secs_f64() * 1e6);
            self.p99_us = Some(percentile(lat, 0.99).as_secs_f64() * 1e6);
        }
        self
    }

    fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub logical_cpus: usize,
    /// `sha_ni` in the CPU flags.
    pub sha_ni: bool,
    /// `avx512f` in the CPU flags.
    pub avx512f: bool,
    /// `/proc/loadavg` (1, 5, 15 min) before the run.
    pub load_before: String,
    /// `/proc/loadavg` after the run.
    pub load_after: String,
}

impl Machine {
    fn probe() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let flags = field("flags");
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        Machine {
            cpu_model: field("model name"),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sha_ni: has("sha_ni"),
            avx512f: has("avx512f"),
            load_before: loadavg(),
            load_after: String::new(),
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A target from issue 9, checked against the measured numbers. Shown in
/// the table; never a pass/fail of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target, in words.
    pub what: String,
    /// The measured quantity (a ratio or a value in the target's unit).
    pub measured: Option<f64>,
    /// The goal in the same unit.
    pub goal: f64,
    /// `true` if the goal is a maximum (lower is better).
    pub at_most: bool,
    /// Whether the measured value meets the goal (`None` if not measured).
    pub met: Option<bool>,
}

/// A ratio of ours to a peer's number (higher = fobsim is faster).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Our row id.
    pub ours: String,
    /// The peer's row id.
    pub peer: String,
    /// ours ÷ peer for rates, peer ÷ ours for costs (CPU per request):
    /// always "how many times better fobsim is".
    pub ratio: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// `--quick`: smaller sizes (see the notes).
    pub quick: bool,
    /// Client concurrency used for every verification row.
    pub concurrency: usize,
    /// Groups that ran.
    pub groups: Vec<Group>,
    /// The numbers.
    pub rows: Vec<Row>,
    /// Ratios to the peers.
    pub ratios: Vec<Ratio>,
    /// The issue's targets.
    pub targets: Vec<Target>,
    /// Wall time of the whole run, s.
    pub wall_s: f64,
}

/// Run the selected groups. A group that fails to set up contributes a row
/// with the error as its note; peers that are missing likewise.
///
/// # Errors
/// Never for a failed measurement (it becomes a note); only for failures
/// to probe the machine (none at present) — kept for forward compatibility.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let started = Instant::now();
    let mut machine = Machine::probe();
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    // Fleet memory first: the VmRSS delta is cleanest before other groups
    // have grown and freed the heap.
    let fleet_mem = if opts.wants(Group::Emulator) {
        opts.say("emulator: in-process fleet memory");
        Some(fleet_memory())
    } else {
        None
    };
    for g in Group::ALL {
        if !opts.wants(g) {
            continue;
        }
        groups.push(g);
        opts.say(&format!("group {}", g.name()));
        let r = match g {
            Group::Otp => otp_group(opts, &mut rows),
            Group::Verify => verify_group(opts, &mut rows),
            Group::Search => search_group(opts, &mut rows),
            Group::Emulator => {
                if let Some(m) = &fleet_mem {
                    rows.extend(m.iter().cloned());
                }
                emulator_group(opts, &mut rows)
            }
            Group::Harness => harness_group(opts, &mut rows),
        };
        if let Err(e) = r {
            rows.push(Row::missing(
                &format!("{}.error", g.name()),
                g,
                "group failed",
                "",
                e.to_string(),
            ));
        }
    }
    machine.load_after = loadavg();
    let ratios = ratios(&rows);
    let targets = targets(&rows, &ratios);
    Ok(Report {
        machine,
        quick: opts.quick,
        concurrency: opts.concurrency,
        groups,
        rows,
        ratios,
        targets,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over `opts.runs()` runs of ops/s, each run calling `batch` (which
/// does some ops and returns how many) until `opts.min_time()` has passed.
fn rate(opts: &Opts, mut batch: impl FnMut() -> u64) -> f64 {
    let mut rates = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        let start = Instant::now();
        let mut n = 0u64;
        // Bounded: each batch is finite, and the loop ends at min_time.
        while start.elapsed() < opts.min_time {
            n += batch();
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

/// The two numbers [`rate`] needs (so closures can borrow `Options`).
struct Opts {
    runs: usize,
    min_time: Duration,
}

fn opts_of(o: &Options) -> Opts {
    Opts {
        runs: o.runs(),
        min_time: o.min_time(),
    }
}

// ---------------------------------------------------------------- OTP ----

fn secret(alg: Algorithm) -> Vec<u8> {
    let n = match alg {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    };
    (0..n).map(|i| i as u8 ^ 0x5a).collect()
}

fn otp_group(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    // Runs of ours and totp-rs are interleaved (one run of each in turn), so
    // a change in the machine's load hits both sides of the ratio alike.
    let one = Opts {
        runs: 1,
        min_time: opts.min_time(),
    };
    for alg in Algorithm::ALL {
        let a = alg.as_str();
        let ours = Totp::new(alg, &secret(alg), 6, 30, 0).map_err(|e| setup("totp", e))?;
        let their_alg = match alg {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        };
        let theirs = totp_rs::Builder::new()
            .with_algorithm(their_alg)
            .with_secret(secret(alg))
            .build_noncompliant();
        let mut step = 56_666_666u64;
        let mut t = 1_700_000_000u64;
        let mut buf = [Code::default(); 64];
        let (mut single, mut batch, mut tr, mut ratio) = (vec![], vec![], vec![], vec![]);
        for _ in 0..opts.runs() {
            let s1 = rate(&one, || {
                for _ in 0..1024 {
                    step += 1;
                    black_box(ours.code_for_step(black_box(step)));
                }
                1024
            });
            batch.push(rate(&one, || {
                for _ in 0..16 {
                    ours.codes_for_steps(black_box(step), &mut buf);
                    step += 64;
                    black_box(&buf);
                }
                1024
            }));
            let t1 = rate(&one, || {
                for _ in 0..1024 {
                    t += 30;
                    black_box(theirs.generate(black_box(t)));
                }
                1024
            });
            single.push(s1);
            tr.push(t1);
            ratio.push(s1 / t1);
        }
        let runs = opts.runs();
        rows.push(
            Row::new(
                &format!("otp.{a}.fobsim"),
                Group::Otp,
                &format!("fobsim Totp::code_for_step {alg}"),
                median(single),
                "codes/s",
            )
            .note(format!(
                "one code per call, 1 thread; median of {runs} runs interleaved with totp-rs; median of the per-run ratios to totp-rs {:.2}×",
                median(ratio)
            )),
        );
        rows.push(
            Row::new(
                &format!("otp.{a}.fobsim-batch"),
                Group::Otp,
                &format!("fobsim Totp::codes_for_steps {alg} (64 per call)"),
                median(batch),
                "codes/s",
            )
            .note("consecutive steps, 1 thread"),
        );
        rows.push(
            Row::new(
                &format!("otp.{a}.totp-rs"),
                Group::Otp,
                &format!("totp-rs TOTP::generate {alg}"),
                median(tr),
                "codes/s",
            )
            .note("in-process, same keys, 1 thread"),
        );
    }
    if opts.peers {
        opts.say("otp: pyotp");
        for alg in Algorithm::ALL {
            let a = alg.as_str();
            let id = format!("otp.{a}.pyotp");
            let name = format!("pyotp TOTP.at {alg}");
            rows.push(match pyotp_rate(opts, a) {
                Ok(r) => Row::new(&id, Group::Otp, &name, r, "codes/s")
                    .note("in one python process, 1 thread"),
                Err(e) => Row::missing(&id, Group::Otp, &name, "codes/s", e.to_string()),
            });
        }
        opts.say("otp: oathtool");
        oathtool_rows(opts, rows);
    }
    Ok(())
}

/// A child process with a deadline; stdout is read on a thread (no pipe
/// deadlock), the child is killed by PID when the deadline passes.
fn run_bounded(cmd: &mut Command, timeout: Duration, who: &str) -> Result<String, BenchError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| peer(who, format!("cannot start {:?}: {e}", cmd.get_program())))?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let ereader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = err.as_mut() {
            // Drain all of it (a full pipe would block the child), keep 64 KiB.
            let _ = o.read_to_end(&mut s);
            s.truncate(64 * 1024);
        }
        s
    });
    let until = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(peer(who, format!("no exit within {timeout:?}; killed")));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let out = reader.join().unwrap_or_default();
    let err = ereader.join().unwrap_or_default();
    if !status.success() {
        return Err(peer(
            who,
            format!(
                "{status}: {}",
                String::from_utf8_lossy(&err)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

const PYOTP_SCRIPT: &str = r#"
import base64, hashlib, json, sys, time
import pyotp
alg, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n_bytes = {"sha1": 20, "sha256": 32, "sha512": 64}[alg]
secret = base64.b32encode(bytes(i ^ 0x5a for i in range(n_bytes))).decode()
totp = pyotp.TOTP(secret, digest=getattr(hashlib, alg))
rates = []
for _ in range(runs):
    t = 1700000000
    start = time.perf_counter()
    for i in range(n):
        totp.at(t + 30 * i)
    rates.append(n / (time.perf_counter() - start))
rates.sort()
print(json.dumps({"rate": rates[len(rates) // 2], "version": getattr(pyotp, "__version__", "?")}))
"#;

fn pyotp_rate(opts: &Options, alg: &str) -> Result<f64, BenchError> {
    if !opts.pyotp_python.is_file() {
        return Err(peer(
            "pyotp",
            format!(
                "{} not found (run tests/perf/peers.sh)",
                opts.pyotp_python.display()
            ),
        ));
    }
    let n = if opts.quick { 5_000 } else { 50_000 };
    let out = run_bounded(
        Command::new(&opts.pyotp_python)
            .arg("-c")
            .arg(PYOTP_SCRIPT)
            .arg(alg)
            .arg(n.to_string())
            .arg(opts.runs().to_string()),
        Duration::from_secs(120),
        "pyotp",
    )?;
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|e| peer("pyotp", format!("output: {e}")))?;
    v.get("rate")
        .and_then(serde_json::Value::as_f64)
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| peer("pyotp", format!("no rate in {out:?}")))
}

fn oathtool_rows(opts: &Options, rows: &mut Vec<Row>) {
    let key = hex::encode(secret(Algorithm::Sha1));
    let oath = |extra: &[&str]| -> Result<(Duration, String), BenchError> {
        let start = Instant::now();
        let out = run_bounded(
            Command::new(&opts.oathtool)
                .args(["--totp", "-N", "@1700000000"])
                .args(extra)
                .arg(&key),
            Duration::from_secs(30),
            "oathtool",
        )?;
        Ok((start.elapsed(), out))
    };
    // One process per code.
    let procs = if opts.quick { 20 } else { 200 };
    let per_process = (|| -> Result<Duration, BenchError> {
        let (_, first) = oath(&[])?;
        let c = first.trim();
        if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()) {
            return Err(peer("oathtool", format!("unexpected output {first:?}")));
        }
        let mut lat = Vec::with_capacity(procs);
        for _ in 0..procs {
            lat.push(oath(&[])?.0);
        }
        lat.sort_unstable();
        Ok(percentile(&lat, 0.5))
    })();
    let name = "oathtool --totp, one process per code (SHA1)";
    rows.push(match per_process {
        Ok(d) => Row::new(
            "otp.sha1.oathtool-process",
            Group::Otp,
            name,
            1.0 / d.as_secs_f64(),
            "codes/s",
        )
        .note(format!(
            "median of {procs} fork+exec+wait: {:.2} ms per code",
            d.as_secs_f64() * 1e3
        )),
        Err(e) => Row::missing(
            "otp.sha1.oathtool-process",
            Group::Otp,
            name,
            "codes/s",
            e.to_string(),
        ),
    });
    // Marginal cost per code inside one process: -w W prints W+1 codes.
    let w = 5000usize;
    let marginal = (|| -> Result<f64, BenchError> {
        let mut base = Vec::new();
        let mut many = Vec::new();
        for _ in 0..opts.runs() {
            base.push(oath(&[])?.0.as_secs_f64());
            let (d, out) = oath(&["-w", &w.to_string()])?;
            if out.lines().count() < w {
                return Err(peer("oathtool", "-w printed fewer codes than asked"));
            }
            many.push(d.as_secs_f64());
        }
        let per = (median(many) - median(base)) / w as f64;
        if per > 0.0 {
            Ok(1.0 / per)
        } else {
            Err(peer("oathtool", "the -w run was not slower than one code"))
        }
    })();
    let name = "oathtool --totp -w 5000, per code inside one process (SHA1)";
    rows.push(match marginal {
        Ok(r) => Row::new("otp.sha1.oathtool-code", Group::Otp, name, r, "codes/s")
            .note("(t(-w 5000) − t(one code)) / 5000, includes printing"),
        Err(e) => Row::missing(
            "otp.sha1.oathtool-code",
            Group::Otp,
            name,
            "codes/s",
            e.to_string(),
        ),
    });
}

// ------------------------------------------------------------- verify ----

/// One enabled device of a benchmark user.
struct Dev {
    who: Principal,
    serial: String,
    totp: Totp,
}

fn totp_of(fob: &testing::TestToken) -> Result<Totp, BenchError> {
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

fn verify_group(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
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

/// CPU time (utime + stime, s) of the processes whose process group is
/// `pgid` (all of them: a server and its workers), or of this process if
/// `pgid` is `None`. `None` if `/proc` cannot be read.
fn cpu_seconds(pgid: Option<u32>) -> Option<f64> {
    // USER_HZ is 100 on Linux for every architecture we run on.
    const HZ: f64 = 100.0;
    let parse = |stat: &str| -> Option<(u32, f64)> {
        // Fields after the command name (which may contain spaces).
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] = state (field 3); pgrp = field 5; utime 14; stime 15.
        let pgrp = f.get(2)?.parse().ok()?;
        let ut: f64 = f.get(11)?.parse().ok()?;
        let st: f64 = f.get(12)?.parse().ok()?;
        Some((pgrp, (ut + st) / HZ))
    };
    match pgid {
        None => parse(&std::fs::read_to_string("/proc/self/stat").ok()?).map(|(_, c)| c),
        Some(g) => {
            let mut total = 0.0;
            for e in std::fs::read_dir("/proc").ok()?.flatten().take(100_000) {
                let name = e.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Ok(stat) = std::fs::read_to_string(e.path().join("stat"))
                    && let Some((pg, c)) = parse(&stat)
                    && pg == g
                {
                    total += c;
                }
            }
            Some(total)
        }
    }
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
                per_conn[i % conns].push(
                    build_request(
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
                    .map_err(|e| setup("sign", e))?,
                );
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

/// A peer server in its own process group, stopped by PID on drop.
struct PeerServer {
    pid: u32,
    child: std::process::Child,
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        cleanup::stop_pid(self.pid, Duration::from_secs(5));
        let _ = self.child.try_wait();
        cleanup::forget_process(self.pid);
    }
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
    let venv = &opts.privacyidea_venv;
    let manage = venv.join("bin/pi-manage");
    if !manage.is_file() {
        return Err(peer(
            "privacyIDEA",
            format!("{} not found (run tests/perf/peers.sh)", manage.display()),
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("fobsim-bench-pi-")
        .tempdir()?;
    let d = dir.path().display().to_string();
    let cfg = dir.path().join("pi.cfg");
    std::fs::write(
        &cfg,
        format!(
            "SQLALCHEMY_DATABASE_URI = 'sqlite:///{d}/data.sqlite'\nSECRET_KEY = 'fobsim-bench-secret-0123456789'\nPI_PEPPER = 'fobsim-bench-pepper'\nPI_ENCFILE = '{d}/enckey'\nPI_AUDIT_KEY_PRIVATE = '{d}/private.pem'\nPI_AUDIT_KEY_PUBLIC = '{d}/public.pem'\nPI_AUDIT_SQL_TRUNCATE = True\nPI_LOGFILE = '{d}/privacyidea.log'\nPI_LOGLEVEL = 30\n"
        ),
    )?;
    for args in [
        &["setup", "create_enckey"][..],
        &["setup", "create_audit_keys"],
        &["setup", "create_tables"],
        &["admin", "add", "admin", "-p", "Admin-Pass-1"],
    ] {
        run_bounded(
            Command::new(&manage)
                .args(args)
                .env("PRIVACYIDEA_CONFIGFILE", &cfg),
            Duration::from_secs(120),
            "privacyIDEA pi-manage",
        )?;
    }
    let port = cleanup::free_port()?;
    let gunicorn = venv.join("bin/gunicorn");
    let (mut cmd, server) = if gunicorn.is_file() {
        let mut c = Command::new(&gunicorn);
        c.args([
            "-w",
            "2",
            "-k",
            "sync",
            "-b",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "120",
        ])
        .arg(format!(
            "privacyidea.app:create_app(config_name='production', config_file='{}', silent=True)",
            cfg.display()
        ));
        (c, "gunicorn, 2 sync workers")
    } else {
        let mut c = Command::new(&manage);
        c.args(["run", "-h", "127.0.0.1", "-p", &port.to_string()]);
        (
            c,
            "pi-manage run (Flask dev server; gunicorn not in the venv)",
        )
    };
    cmd.env("PRIVACYIDEA_CONFIGFILE", &cfg)
        .current_dir(dir.path());
    let child = cleanup::spawn_server(&mut cmd, &dir.path().join("server.log"))
        .map_err(|e| peer("privacyIDEA", format!("cannot start: {e}")))?;
    let pid = child.id();
    let server_guard = PeerServer { pid, child };
    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let log_tail = |dir: &Path| {
        let s = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let n = s.chars().count();
        s.chars().skip(n.saturating_sub(400)).collect::<String>()
    };
    // Ready?
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok((200, _)) = pi_request(addr, "GET", "/healthz/", None, "") {
            break;
        }
        if Instant::now() > until {
            return Err(peer(
                "privacyIDEA",
                format!("no /healthz/ within 90 s; log: {}", log_tail(dir.path())),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, v) = pi_request(
        addr,
        "POST",
        "/auth",
        None,
        "username=admin&password=Admin-Pass-1",
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
    drop(server_guard);
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
        server: server.to_string(),
        cpu_ms: cpu.map(|c| c * 1e3 / total as f64),
    })
}

// ------------------------------------------------------------- search ----

fn search_group(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let o = opts_of(opts);
    for window in [10u64, 100, 1000, 10_000] {
        let profile = Profile {
            sync_window_steps: window,
            ..Profile::for_tests()
        };
        let engine = Engine::in_memory(profile);
        testing::create_account(&engine).map_err(|e| setup("account", e))?;
        let fob = testing::gaht_fob(7, testing::T0);
        testing::import(&engine, std::slice::from_ref(&fob)).map_err(|e| setup("import", e))?;
        let totp = totp_of(&fob)?;
        let now = testing::T0.add_millis(10_000);
        // Two consecutive codes far outside every window: a full miss.
        let far = now.as_secs() / 30 + 50_000;
        let (w1, w2) = (
            totp.code_for_step(far).to_string(),
            totp.code_for_step(far + 1).to_string(),
        );
        let bob = Principal::user(testing::USERS[1]);
        let serial = fob.serial().as_str().to_string();
        let mut hits = 0u64;
        let calls = rate(&o, || {
            if engine
                .enable_mfa_device(now, Channel::Console, &bob, &serial, &w1, &w2)
                .is_ok()
            {
                hits += 1;
            }
            1
        });
        rows.push(
            Row::new(
                &format!("search.enable-miss.w{window}"),
                Group::Search,
                &format!(
                    "enable search, no match, window ±{window} ({} steps)",
                    2 * window + 1
                ),
                1e6 / calls,
                "µs/call",
            )
            .note(format!(
                "{:.1} ns per step searched{}",
                1e9 / calls / (2 * window + 1) as f64,
                if hits > 0 { "; unexpected match!" } else { "" }
            )),
        );
        // totp-rs has no search API: the same search with `generate` per
        // step and its (constant-time) token compare, as an application
        // would write it.
        let r = fob.seed_record();
        let theirs = totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_secret(r.secret.expose().to_vec())
            .build_noncompliant();
        let center = now.as_secs() / 30;
        let (x1, x2) = (theirs.generate(far * 30), theirs.generate((far + 1) * 30));
        let calls = rate(&o, || {
            let mut hit = false;
            let mut prev = theirs.generate((center - window) * 30);
            for st in center - window + 1..=center + window + 1 {
                let cur = theirs.generate(st * 30);
                if prev == x1 && cur == x2 {
                    hit = true;
                }
                prev = cur;
            }
            black_box(hit);
            1
        });
        rows.push(
            Row::new(
                &format!("search.totp-rs.w{window}"),
                Group::Search,
                &format!("totp-rs, same search (generate + compare per step), window ±{window}"),
                1e6 / calls,
                "µs/call",
            )
            .note("emulated: totp-rs has no resync search; 1 thread"),
        );
    }
    Ok(())
}

// ----------------------------------------------------------- emulator ----

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn fleet_memory() -> Vec<Row> {
    let mut rows = Vec::new();
    for n in [1_000usize, 10_000, 100_000] {
        let id = format!("emulator.fleet-memory.{n}");
        let name = format!("in-process fleet of {n} fobs (gaht): memory per fob");
        let r = (|| -> Result<(f64, f64, Duration), BenchError> {
            let spec = fobsim_emulator::FleetSpec::uniform("gaht", n, 1)
                .map_err(|e| setup("fleet spec", e))?;
            let before = rss_kib();
            let t = Instant::now();
            let fleet = fobsim_emulator::Fleet::new(
                &spec,
                fobsim_clock::TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
                false,
            )
            .map_err(|e| setup("fleet", e))?;
            let took = t.elapsed();
            let after = rss_kib();
            black_box(&fleet);
            drop(fleet);
            drop(spec);
            let delta = after.saturating_sub(before) as f64 * 1024.0;
            Ok((delta / n as f64, delta / (1024.0 * 1024.0), took))
        })();
        rows.push(match r {
            Ok((per, total, took)) => {
                Row::new(&id, Group::Emulator, &name, per, "bytes/fob").note(format!(
                    "VmRSS delta {total:.1} MiB for {n} fobs (Fleet::new, built in {:.0} ms)",
                    took.as_secs_f64() * 1e3
                ))
            }
            Err(e) => Row::missing(&id, Group::Emulator, &name, "bytes/fob", e.to_string()),
        });
    }
    rows
}

fn emulator_group(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    opts.say("emulator: pty PRESS");
    let id = "emulator.pty-press";
    let name = "pty PRESS round trip (SerialClient, 1 client, sequential)";
    rows.push(match pty_press(opts, &rt) {
        Ok((rate, mut lat, fobs)) => Row::new(id, Group::Emulator, name, rate, "round trips/s")
            .lat(&mut lat)
            .note(format!("{fobs} fobs on ptys, round-robin")),
        Err(e) => Row::missing(id, Group::Emulator, name, "round trips/s", e.to_string()),
    });
    opts.say("emulator: USB/IP PRESS");
    let id = "emulator.usbip-press";
    let name = "USB/IP loopback PRESS round trip (HID report, 1 client)";
    rows.push(match usbip_press(opts, &rt) {
        Ok((rate, mut lat)) => Row::new(id, Group::Emulator, name, rate, "round trips/s")
            .lat(&mut lat)
            .note("user-space USB/IP client over TCP loopback"),
        Err(e) => Row::missing(id, Group::Emulator, name, "round trips/s", e.to_string()),
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn pty_press(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
) -> Result<(f64, Vec<Duration>, usize), BenchError> {
    let fobs = if opts.quick { 10 } else { 100 };
    let rounds = if opts.quick { 20 } else { 50 };
    let spec =
        fobsim_emulator::FleetSpec::uniform("gaht", fobs, 1).map_err(|e| setup("fleet", e))?;
    let fleet = Arc::new(
        fobsim_emulator::Fleet::new(
            &spec,
            fobsim_clock::TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
            false,
        )
        .map_err(|e| setup("fleet", e))?,
    );
    let serial = {
        let _g = rt.enter();
        fobsim_emulator::SerialFleet::start(Arc::clone(&fleet), None)
            .map_err(|e| setup("ptys", e))?
    };
    let result = (|| {
        let mut clients = Vec::with_capacity(fobs);
        for p in serial.ports() {
            let mut c = fobsim_emulator::serial::client::SerialClient::open(
                &p.path,
                Duration::from_secs(5),
            )
            .map_err(|e| setup("pty client", e))?;
            c.press().map_err(|e| setup("pty press", e))?;
            clients.push(c);
        }
        let mut lat = Vec::with_capacity(fobs * rounds);
        let start = Instant::now();
        for _ in 0..rounds {
            for c in &mut clients {
                let t = Instant::now();
                c.press().map_err(|e| setup("pty press", e))?;
                lat.push(t.elapsed());
            }
        }
        let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
        Ok((rate, lat, fobs))
    })();
    rt.block_on(serial.shutdown());
    result
}

fn usbip_press(
    opts: &Options,
    rt: &tokio::runtime::Runtime,
) -> Result<(f64, Vec<Duration>), BenchError> {
    use fobsim_emulator::command::Command as FobCommand;
    use fobsim_emulator::usbip::client::Imported;
    use fobsim_emulator::usbip::{UsbipServer, bus_id};
    let rounds = if opts.quick { 2_000 } else { 20_000 };
    let spec = fobsim_emulator::FleetSpec::uniform("gaht", 1, 1).map_err(|e| setup("fleet", e))?;
    let fleet = Arc::new(
        fobsim_emulator::Fleet::new(
            &spec,
            fobsim_clock::TrueClock::manual(Timestamp::from_secs(1_700_000_000)),
            false,
        )
        .map_err(|e| setup("fleet", e))?,
    );
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(
            Arc::new(UsbipServer::new(
                fleet,
                fobsim_emulator::hid::HidOptions::default(),
            ))
            .run(listener),
        );
        let r = async {
            let io = tokio::net::TcpStream::connect(addr).await?;
            io.set_nodelay(true)?;
            let mut dev = Imported::import(io, &bus_id(0))
                .await
                .map_err(|e| setup("usbip import", e))?;
            dev.set_configuration(1)
                .await
                .map_err(|e| setup("usbip configure", e))?;
            for _ in 0..100 {
                dev.command(&FobCommand::Press)
                    .await
                    .map_err(|e| setup("usbip press", e))?;
            }
            let mut lat = Vec::with_capacity(rounds);
            let start = Instant::now();
            for _ in 0..rounds {
                let t = Instant::now();
                dev.command(&FobCommand::Press)
                    .await
                    .map_err(|e| setup("usbip press", e))?;
                lat.push(t.elapsed());
            }
            Ok::<_, BenchError>((rounds as f64 / start.elapsed().as_secs_f64(), lat))
        }
        .await;
        server.abort();
        r
    })
}

// ------------------------------------------------------------ harness ----

fn harness_group(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
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
    Ok(())
}

// ------------------------------------------------------ ratios, table ----

fn value(rows: &[Row], id: &str) -> Option<f64> {
    rows.iter().find(|r| r.id == id).and_then(|r| r.value)
}

fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut push = |ours: &str, peer: &str| {
        if let (Some(a), Some(b)) = (value(rows, ours), value(rows, peer))
            && b > 0.0
        {
            out.push(Ratio {
                ours: ours.into(),
                peer: peer.into(),
                ratio: a / b,
            });
        }
    };
    for a in ["sha1", "sha256", "sha512"] {
        for ours in ["fobsim", "fobsim-batch"] {
            push(&format!("otp.{a}.{ours}"), &format!("otp.{a}.totp-rs"));
        }
        push(&format!("otp.{a}.fobsim"), &format!("otp.{a}.pyotp"));
    }
    push("otp.sha1.fobsim", "otp.sha1.oathtool-process");
    push("otp.sha1.fobsim", "otp.sha1.oathtool-code");
    push("verify.http.sqlite", "verify.privacyidea");
    push("verify.http.memory", "verify.privacyidea");
    // Costs (µs per call, CPU per request): lower is better, so peer ÷ ours.
    for w in [10, 100, 1000, 10_000] {
        let (ours, peer) = (
            format!("search.enable-miss.w{w}"),
            format!("search.totp-rs.w{w}"),
        );
        if let (Some(a), Some(b)) = (value(rows, &ours), value(rows, &peer))
            && a > 0.0
        {
            out.push(Ratio {
                ours,
                peer,
                ratio: b / a,
            });
        }
    }
    for ours in ["verify.cpu.http.sqlite", "verify.cpu.http.memory"] {
        if let (Some(a), Some(b)) = (value(rows, ours), value(rows, "verify.cpu.privacyidea"))
            && a > 0.0
        {
            out.push(Ratio {
                ours: ours.into(),
                peer: "verify.cpu.privacyidea".into(),
                ratio: b / a,
            });
        }
    }
    out
}

fn targets(rows: &[Row], ratios: &[Ratio]) -> Vec<Target> {
    let ratio = |ours: &str, peer: &str| {
        ratios
            .iter()
            .find(|r| r.ours == ours && r.peer == peer)
            .map(|r| r.ratio)
    };
    let t = |what: &str, measured: Option<f64>, goal: f64, at_most: bool| Target {
        what: what.into(),
        measured,
        goal,
        at_most,
        met: measured.map(|m| if at_most { m < goal } else { m >= goal }),
    };
    let mem = value(rows, "emulator.fleet-memory.100000").map(|b| b * 100_000.0 / (1 << 20) as f64);
    vec![
        t(
            "OTP core SHA1 ≥ 3× totp-rs (ratio)",
            ratio("otp.sha1.fobsim", "otp.sha1.totp-rs"),
            3.0,
            false,
        ),
        t(
            "in-memory verification ≥ 1,000,000/s per core (verifications/s, 1 thread)",
            value(rows, "verify.memory.t1"),
            1_000_000.0,
            false,
        ),
        t(
            "HTTP GetSessionToken (SQLite) ≥ 10,000 req/s",
            value(rows, "verify.http.sqlite"),
            10_000.0,
            false,
        ),
        t(
            "HTTP GetSessionToken (SQLite) ≥ 20× privacyIDEA /validate/check (ratio)",
            ratio("verify.http.sqlite", "verify.privacyidea"),
            20.0,
            false,
        ),
        t("100,000 in-process fobs < 200 MiB (MiB)", mem, 200.0, true),
        t(
            "built-in suite < 1 s (ms)",
            value(rows, "harness.suite"),
            1000.0,
            true,
        ),
    ]
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_opt_us(v: Option<f64>) -> String {
    v.map_or_else(
        || "—".into(),
        |u| {
            if u >= 1000.0 {
                format!("{:.2} ms", u / 1e3)
            } else {
                format!("{u:.1} µs")
            }
        },
    )
}

impl Report {
    /// The table as Markdown (what `docs/PERFORMANCE.md` shows).
    #[must_use]
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} — {} logical CPUs, sha_ni: {}, avx512f: {}. Load average before/after: {} / {}. Concurrency: {}.{}",
            m.cpu_model,
            m.logical_cpus,
            if m.sha_ni { "yes" } else { "no" },
            if m.avx512f { "yes" } else { "no" },
            m.load_before,
            m.load_after,
            self.concurrency,
            if self.quick {
                " **--quick: shorter runs, smaller sizes.**"
            } else {
                ""
            }
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "| group | what | value | unit | p50 | p99 | notes |");
        let _ = writeln!(s, "|---|---|---:|---|---:|---:|---|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.group.name(),
                r.name,
                r.value.map_or_else(|| "not measured".into(), fmt_num),
                r.unit,
                fmt_opt_us(r.p50_us),
                fmt_opt_us(r.p99_us),
                r.note.replace('|', "/")
            );
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "| ours | peer | fobsim ahead by (rates: ours ÷ peer; CPU cost: peer ÷ ours) |"
            );
            let _ = writeln!(s, "|---|---|---:|");
            for r in &self.ratios {
                let _ = writeln!(s, "| {} | {} | {:.2}× |", r.ours, r.peer, r.ratio);
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "| target | measured | goal | met |");
        let _ = writeln!(s, "|---|---:|---:|---|");
        for t in &self.targets {
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} |",
                t.what,
                t.measured.map_or_else(|| "not measured".into(), fmt_num),
                if t.at_most { "< " } else { "≥ " },
                fmt_num(t.goal),
                match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "—",
                }
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "Whole run: {:.1} s.", self.wall_s);
        s
    }
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

    #[test]
    fn groups_round_trip() {
        for g in Group::ALL {
            assert_eq!(Group::parse(g.name()), Some(g));
        }
        assert_eq!(Group::parse("nope"), None);
    }
}
