//! The conformance matrix: the suite run against several engines, a
//! scenario × engine table (pass / FAIL / n/a / error / setup-error) and a
//! drift acceptance map per engine ([`crate::sweep`]) side by side.
//!
//! An engine that cannot be set up (a program not installed) gets a
//! `setup-error` column with the install hint: never counted as a pass or
//! a fail of the suite. The JSON form ([`Matrix::json`]) holds no wall
//! times, so it is byte-identical run to run and snapshot-tested; timings
//! and throughput are separate ([`Timings`], [`verify_throughput`]).

use fobsim_core::{Channel, Principal};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use fobsim_core::Totp;
use fobsim_core::{Algorithm, Kind, Secret, SeedRecord, Serial, Timestamp};
use serde::Serialize;

use crate::adapter::{
    Account, AdapterError, Capability, EngineAdapter, OpenError, Opener, Request, Setup,
    SetupProblem, has, user_password,
};
use crate::driver::InProcess;
use crate::junit;
use crate::report::Summary;
use crate::runner::{Runner, ScenarioResult, Verdict};
use crate::scenario::Scenario;
use crate::sweep::{self, SweepSpec, YAxis};

/// The matrix's drift map grid: device clock offset −3 min … +3 min in
/// 30 s columns × delay between press and submit 0 … 2 min in 30 s rows
/// (65 cells, one fresh enable + sign-in each).
#[must_use]
pub fn default_sweep() -> SweepSpec {
    SweepSpec {
        offsets_ms: (-6..=6).map(|i| i * 30_000).collect(),
        delays_ms: (0..=4).map(|i| i * 30_000).collect(),
        y_axis: YAxis::SubmitDelay,
        model: "gaht".into(),
        attempts: 1,
        seed: 1,
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Engine names, in column order (opened by the [`Opener`] given to
    /// [`run`]).
    pub engines: Vec<String>,
    /// Run seed (fob secrets, jitter, the built-in engine's RNG).
    pub seed: u64,
    /// The drift map grid, or `None` for no maps.
    pub sweep: Option<SweepSpec>,
    /// Verifications per engine for [`verify_throughput`] on the engine
    /// the scenarios ran on (0: not measured). Not in the matrix itself
    /// (wall times are not deterministic): in [`Timings::throughput`].
    pub throughput: u32,
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Engine name.
    pub engine: String,
    /// `pass`, `FAIL`, `n/a`, `error` or `setup-error`.
    pub result: &'static str,
    /// Where and why (not for passes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One scenario across the engines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Scenario id.
    pub id: String,
    /// Its file.
    pub file: String,
    /// One cell per engine, in column order.
    pub cells: Vec<Cell>,
}

/// An engine's drift map, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SweepResult {
    /// Maps were not asked for.
    NotRun,
    /// The map: its text summary (`#` accepted, `.` rejected, `L` locked).
    Map {
        /// Accepted cells.
        accepted: usize,
        /// Rejected cells.
        rejected: usize,
        /// Locked cells.
        locked: usize,
        /// One line per delay row.
        rows: Vec<String>,
    },
    /// The engine cannot be swept (a missing capability, a broken adapter).
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// One engine's column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Engine name.
    pub name: String,
    /// `ran` or `setup-error`.
    pub status: &'static str,
    /// The setup problem, with its install hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupProblem>,
    /// What the adapter declares.
    pub capabilities: Vec<&'static str>,
    /// Verdict counts (none when the engine could not be set up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// The drift acceptance map.
    pub sweep: SweepResult,
}

/// The whole matrix (what the JSON report holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// Format version.
    pub format: u32,
    /// Run seed.
    pub seed: u64,
    /// The drift map grid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep_grid: Option<String>,
    /// One column per engine.
    pub engines: Vec<Column>,
    /// One row per scenario.
    pub scenarios: Vec<Row>,
}

/// Wall times of a run (not part of the JSON: they vary).
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Per engine: (name, scenarios, drift map).
    pub engines: Vec<(String, Duration, Duration)>,
    /// The whole run, throughput measurements excluded.
    pub total: Duration,
    /// Per engine: verification throughput through the adapter, or why it
    /// was not measured (only with [`Options::throughput`] > 0).
    pub throughput: Vec<(String, Result<Throughput, String>)>,
    /// Per engine that ran: the wall time of each scenario, in order.
    pub scenarios: Vec<(String, Vec<Duration>)>,
}

fn cell_of(r: &ScenarioResult) -> Cell {
    let (result, detail) = match &r.verdict {
        Verdict::Pass => ("pass", None),
        Verdict::Fail {
            line,
            expected,
            got,
        } => (
            "FAIL",
            Some(format!("line {line}: expected {expected}, got {got}")),
        ),
        Verdict::NotApplicable { line, capability } => (
            "n/a",
            Some(format!("line {line}: needs {}", capability.as_str())),
        ),
        Verdict::Error { line, message } => ("error", Some(format!("line {line}: {message}"))),
    };
    Cell {
        engine: r.engine.clone(),
        result,
        detail,
    }
}

fn sweep_result(engine: &mut dyn EngineAdapter, spec: &SweepSpec) -> SweepResult {
    match sweep::run(engine, &mut InProcess, spec, &mut |_, _| {}) {
        Ok(map) => {
            let (accepted, rejected, locked) = map.counts();
            SweepResult::Map {
                accepted,
                rejected,
                locked,
                rows: map.summary().lines().skip(2).map(str::to_string).collect(),
            }
        }
        Err(e) => SweepResult::Unavailable {
            reason: e.to_string(),
        },
    }
}

/// Run the matrix. `progress(engine, done, total)` is called with `done`
/// = 0 before each engine starts (a third-party engine may take seconds to
/// start), then after each scenario.
///
/// # Errors
/// [`OpenError::Unknown`] for an engine name that does not exist (a
/// missing engine is a `setup-error` column, not an error).
pub fn run(
    opts: &Options,
    opener: &dyn Opener,
    scenarios: &[Scenario],
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(Matrix, Timings), OpenError> {
    for name in &opts.engines {
        if !opener.knows(name) {
            return Err(opener.unknown(name));
        }
    }
    let started = Instant::now();
    let mut measuring = Duration::ZERO;
    let mut columns = Vec::new();
    let mut timings = Timings::default();
    let mut rows: Vec<Row> = scenarios
        .iter()
        .map(|s| Row {
            id: s.id.clone(),
            file: s.file.clone(),
            cells: Vec::new(),
        })
        .collect();
    for name in &opts.engines {
        progress(name, 0, scenarios.len());
        let mut engine = match opener.open(name) {
            Ok(e) => e,
            Err(OpenError::Setup(problem)) => {
                if opts.throughput > 0 {
                    timings
                        .throughput
                        .push((name.clone(), Err(problem.to_string())));
                }
                for row in &mut rows {
                    row.cells.push(Cell {
                        engine: name.clone(),
                        result: "setup-error",
                        detail: Some(problem.missing.clone()),
                    });
                }
                columns.push(Column {
                    name: name.clone(),
                    status: "setup-error",
                    setup: Some(problem),
                    capabilities: Vec::new(),
                    summary: None,
                    sweep: SweepResult::NotRun,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let t0 = Instant::now();
        let mut results = Vec::with_capacity(scenarios.len());
        {
            let mut fobs = InProcess;
            let mut runner = Runner::new(engine.as_mut(), &mut fobs, opts.seed);
            let mut times = Vec::with_capacity(scenarios.len());
            for (i, sc) in scenarios.iter().enumerate() {
                let t = Instant::now();
                results.push(runner.run(sc));
                times.push(t.elapsed());
                progress(name, i + 1, scenarios.len());
            }
            timings.scenarios.push((name.clone(), times));
        }
        let t_scenarios = t0.elapsed();
        for (row, r) in rows.iter_mut().zip(&results) {
            row.cells.push(cell_of(r));
        }
        let t1 = Instant::now();
        let sweep = match &opts.sweep {
            Some(spec) => sweep_result(engine.as_mut(), spec),
            None => SweepResult::NotRun,
        };
        timings
            .engines
            .push((name.clone(), t_scenarios, t1.elapsed()));
        if opts.throughput > 0 {
            // On the engine just used: no second start (privacyIDEA's takes ~10 s).
            let t2 = Instant::now();
            let t = verify_throughput(engine.as_mut(), opts.throughput).map_err(|e| e.to_string());
            timings.throughput.push((name.clone(), t));
            measuring += t2.elapsed();
        }
        let mut caps: Vec<Capability> = engine.capabilities().to_vec();
        caps.sort();
        columns.push(Column {
            name: name.clone(),
            status: "ran",
            setup: None,
            capabilities: caps.into_iter().map(Capability::as_str).collect(),
            summary: Some(Summary::of(&results)),
            sweep,
        });
    }
    timings.total = started.elapsed().saturating_sub(measuring);
    let sweep_grid = opts.sweep.as_ref().map(describe_grid);
    Ok((
        Matrix {
            format: 1,
            seed: opts.seed,
            sweep_grid,
            engines: columns,
            scenarios: rows,
        },
        timings,
    ))
}

fn fmt_ms(ms: i64) -> String {
    let s = fobsim_core::time::format_duration_ms(ms.abs());
    if ms < 0 { format!("-{s}") } else { s }
}

fn describe_grid(s: &SweepSpec) -> String {
    let first = |v: &[i64]| v.first().copied().unwrap_or(0);
    let last = |v: &[i64]| v.last().copied().unwrap_or(0);
    format!(
        "model {}; x = device clock offset {} .. {} ({} columns); y = {} {} .. {} ({} rows); # accepted, . rejected, L locked",
        s.model,
        fmt_ms(first(&s.offsets_ms)),
        fmt_ms(last(&s.offsets_ms)),
        s.offsets_ms.len(),
        match s.y_axis {
            YAxis::SubmitDelay => "delay between press and submit",
            YAxis::SinceLastSignIn => "time since the last sign-in",
        },
        fmt_ms(first(&s.delays_ms)),
        fmt_ms(last(&s.delays_ms)),
        s.delays_ms.len()
    )
}

impl Matrix {
    /// Pretty JSON, newline-terminated; deterministic (no wall times).
    #[must_use]
    pub fn json(&self) -> String {
        crate::report::pretty_json(self)
    }

    /// Whether every engine could be set up and ran without harness errors.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.engines
            .iter()
            .all(|c| c.setup.is_none() && c.summary.is_some_and(|s| s.errors == 0))
    }

    /// Whether the built-in engine (if in the matrix) passed every scenario
    /// it can express.
    #[must_use]
    pub fn builtin_conforms(&self) -> bool {
        self.engines
            .iter()
            .filter(|c| c.name == "builtin")
            .all(|c| c.summary.is_some_and(|s| s.failed == 0 && s.errors == 0))
    }

    fn names(&self) -> Vec<&str> {
        self.engines.iter().map(|c| c.name.as_str()).collect()
    }

    fn totals(&self, c: &Column) -> String {
        match c.summary {
            Some(s) => format!(
                "{} pass, {} FAIL, {} n/a, {} error",
                s.passed, s.failed, s.not_applicable, s.errors
            ),
            None => "setup-error".into(),
        }
    }

    /// Human text: the table, totals, setup problems, every FAIL/error
    /// with its line, and the drift maps side by side.
    #[must_use]
    pub fn text(&self) -> String {
        let names = self.names();
        let idw = self
            .scenarios
            .iter()
            .map(|r| r.id.len())
            .max()
            .unwrap_or(8)
            .max(8);
        let widths: Vec<usize> = names.iter().map(|n| n.len().max(11)).collect();
        let mut out = String::new();
        let _ = write!(out, "{:idw$}", "scenario");
        for (n, w) in names.iter().zip(&widths) {
            let _ = write!(out, "  {n:w$}");
        }
        out.push('\n');
        for row in &self.scenarios {
            let _ = write!(out, "{:idw$}", row.id);
            for (c, w) in row.cells.iter().zip(&widths) {
                let _ = write!(out, "  {:w$}", c.result);
            }
            out.push('\n');
        }
        out.push('\n');
        for c in &self.engines {
            let _ = writeln!(out, "{:12} {}", c.name, self.totals(c));
        }
        for c in &self.engines {
            if let Some(p) = &c.setup {
                let _ = writeln!(
                    out,
                    "\nSETUP PROBLEM {}: {}\n  install: {}",
                    c.name, p.missing, p.hint
                );
            }
        }
        for (i, name) in names.iter().enumerate() {
            let bad: Vec<(&Row, &Cell)> = self
                .scenarios
                .iter()
                .filter_map(|r| r.cells.get(i).map(|c| (r, c)))
                .filter(|(_, c)| matches!(c.result, "FAIL" | "error"))
                .collect();
            if bad.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{name}: {} deviation(s)/error(s)", bad.len());
            for (r, c) in bad {
                let _ = writeln!(
                    out,
                    "  {:5} {}: {}",
                    c.result,
                    r.id,
                    c.detail.as_deref().unwrap_or("")
                );
            }
        }
        out.push_str(&self.maps_text());
        out
    }

    fn maps_text(&self) -> String {
        let mut out = String::new();
        let Some(grid) = &self.sweep_grid else {
            return out;
        };
        let _ = writeln!(out, "\ndrift acceptance maps ({grid})");
        let maps: Vec<(&str, &[String])> = self
            .engines
            .iter()
            .filter_map(|c| match &c.sweep {
                SweepResult::Map { rows, .. } => Some((c.name.as_str(), rows.as_slice())),
                _ => None,
            })
            .collect();
        // Each row reads "DELAY |map| accepted ..": show the maps side by side.
        let split = |line: &str| -> (String, String) {
            let mut parts = line.splitn(3, '|');
            let delay = parts.next().unwrap_or("").trim().to_string();
            let map = parts.next().unwrap_or("").to_string();
            (delay, map)
        };
        if let Some((_, first)) = maps.first() {
            let mw = first
                .first()
                .map_or(0, |l| split(l).1.chars().count())
                .max(12);
            let _ = write!(out, "{:>8}", "delay");
            for (name, _) in &maps {
                let _ = write!(out, "  {name:mw$}");
            }
            out.push('\n');
            for i in 0..first.len() {
                let _ = write!(out, "{:>8}", split(&first[i]).0);
                for (_, rows) in &maps {
                    let m = rows.get(i).map(|l| split(l).1).unwrap_or_default();
                    let _ = write!(out, "  {m:mw$}");
                }
                out.push('\n');
            }
        }
        for c in &self.engines {
            match &c.sweep {
                SweepResult::Map {
                    accepted,
                    rejected,
                    locked,
                    rows,
                } => {
                    let _ = writeln!(
                        out,
                        "  {}: {accepted} accepted, {rejected} rejected, {locked} locked; {}",
                        c.name,
                        rows.first()
                            .and_then(|l| l.rsplit_once('|'))
                            .map_or("", |(_, r)| r.trim())
                    );
                }
                SweepResult::Unavailable { reason } => {
                    let _ = writeln!(out, "  {}: no map: {reason}", c.name);
                }
                SweepResult::NotRun => {}
            }
        }
        out
    }

    /// Markdown: the table (with totals) and the maps in a code block.
    #[must_use]
    pub fn markdown(&self) -> String {
        let names = self.names();
        let mut out = String::from("| scenario |");
        for n in &names {
            let _ = write!(out, " {n} |");
        }
        out.push_str("\n|---|");
        for _ in &names {
            out.push_str(":---:|");
        }
        out.push('\n');
        for row in &self.scenarios {
            let _ = write!(out, "| `{}` |", row.id);
            for c in &row.cells {
                let shown = match c.result {
                    "FAIL" => "**FAIL**",
                    other => other,
                };
                let _ = write!(out, " {shown} |");
            }
            out.push('\n');
        }
        out.push_str("| **totals** |");
        for c in &self.engines {
            let _ = write!(out, " {} |", self.totals(c).replace(", ", "<br>"));
        }
        out.push('\n');
        for c in &self.engines {
            if let Some(p) = &c.setup {
                let _ = writeln!(
                    out,
                    "\n> **setup problem, {}**: {} — install: {}",
                    c.name, p.missing, p.hint
                );
            }
        }
        let maps = self.maps_text();
        if !maps.is_empty() {
            let _ = write!(out, "\n```text{maps}```\n");
        }
        out
    }

    /// JUnit XML without times (see [`Matrix::junit_timed`]).
    #[must_use]
    pub fn junit(&self) -> String {
        self.junit_timed(None)
    }

    /// JUnit XML: one `<testsuite>` per engine, one `<testcase>` per
    /// scenario; FAIL → `<failure>`, n/a → `<skipped>`, a harness error or
    /// a setup problem → `<error>` (with the install hint). With
    /// `timings` (from [`run`]), `time` attributes are the wall times of
    /// each scenario and each engine's scenarios. Written by
    /// [`crate::junit`], as `fobsim run`'s.
    #[must_use]
    pub fn junit_timed(&self, timings: Option<&Timings>) -> String {
        let mut suites = Vec::new();
        for (i, c) in self.engines.iter().enumerate() {
            let times = timings.and_then(|t| {
                t.scenarios
                    .iter()
                    .find(|(n, _)| *n == c.name)
                    .map(|(_, v)| v.as_slice())
            });
            let cases = self
                .scenarios
                .iter()
                .filter_map(|r| r.cells.get(i).map(|x| (r, x)))
                .enumerate()
                .map(|(j, (r, x))| {
                    let d = x.detail.clone().unwrap_or_default();
                    let outcome = match x.result {
                        "pass" => junit::Outcome::Pass,
                        "FAIL" => junit::Outcome::Failure {
                            kind: "deviation".into(),
                            message: d,
                            text: String::new(),
                        },
                        "n/a" => junit::Outcome::Skipped {
                            message: format!("n/a: {d}"),
                        },
                        "setup-error" => junit::Outcome::Error {
                            kind: "setup".into(),
                            message: format!(
                                "{d}; install: {}",
                                c.setup.as_ref().map(|p| p.hint.as_str()).unwrap_or("")
                            ),
                            text: String::new(),
                        },
                        _ => junit::Outcome::Error {
                            kind: "harness".into(),
                            message: d,
                            text: String::new(),
                        },
                    };
                    junit::Case {
                        classname: format!("fobsim.matrix.{}", c.name),
                        name: r.id.clone(),
                        file: r.file.clone(),
                        time: times.and_then(|t| t.get(j).copied()),
                        outcome,
                    }
                })
                .collect();
            suites.push(junit::Suite {
                name: format!("fobsim matrix ({})", c.name),
                properties: Vec::new(),
                time: times.map(|t| t.iter().sum()),
                cases,
            });
        }
        junit::write("fobsim matrix", suites)
    }
}

/// Verification throughput measured through an adapter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Verifications made (all of correct codes, each in a new step).
    pub verifications: u32,
    /// Wall time.
    pub elapsed: Duration,
}

impl Throughput {
    /// Verifications per second.
    #[must_use]
    pub fn per_second(&self) -> f64 {
        f64::from(self.verifications) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Why throughput could not be measured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThroughputError {
    /// The adapter failed.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// The engine has neither console sign-in nor session MFA, or no enable.
    #[error("engine {0} cannot verify a code through a capability the harness has")]
    Capability(String),
    /// The engine refused a correct code.
    #[error("engine {engine} refused a correct code: {answer}")]
    Refused {
        /// Engine.
        engine: String,
        /// Its answer.
        answer: String,
    },
}

/// Enable one SHA1 6-digit token, then verify `n` correct codes (one per
/// 30 s step, so none is a replay) through the adapter — what a user waits
/// for per sign-in, adapter overhead included. Console sign-in where the
/// engine has it, else STS-style session MFA.
///
/// # Errors
/// [`ThroughputError`] if the engine cannot verify or refuses a correct code.
pub fn verify_throughput(
    engine: &mut dyn EngineAdapter,
    n: u32,
) -> Result<Throughput, ThroughputError> {
    let secret: Vec<u8> = (1u8..=20).collect();
    let serial = "GAHT99999999";
    let totp = Totp::new(Algorithm::Sha1, &secret, 6, 30, 0)
        .map_err(|e| ThroughputError::Capability(e.to_string()))?;
    let seed = SeedRecord {
        serial: Serial::new(serial).map_err(|e| ThroughputError::Capability(e.to_string()))?,
        kind: Kind::Totp { period: 30 },
        algorithm: Algorithm::Sha1,
        digits: 6,
        secret: Secret::new(secret.clone())
            .map_err(|e| ThroughputError::Capability(e.to_string()))?,
        counter: 0,
    };
    let start: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    let step0 = start / 30;
    engine.begin(&Setup {
        scenario: "throughput".into(),
        account: Account::default(),
        users: vec![("alice".into(), user_password("alice"))],
        access_keys: Vec::new(),
        seeds: vec![seed],
        settings: Vec::new(),
        start: Timestamp::from_secs(start),
    })?;
    if !has(engine, Capability::EnableTwoCodes) {
        return Err(ThroughputError::Capability(engine.name().to_string()));
    }
    let who = Principal::User("alice".into());
    let at = |k: u64| Timestamp::from_secs((step0 + k) * 30 + 10);
    let ans = engine.call(
        at(1),
        &Request::Enable {
            who: who.clone(),
            serial: serial.into(),
            code1: totp.code_for_step(step0).to_string(),
            code2: totp.code_for_step(step0 + 1).to_string(),
            channel: Channel::Console,
        },
    )?;
    if !ans.is_ok() {
        return Err(ThroughputError::Refused {
            engine: engine.name().to_string(),
            answer: ans.short(),
        });
    }
    let sign_in = has(engine, Capability::ConsoleSignIn);
    if !sign_in && !has(engine, Capability::SessionMfa) {
        return Err(ThroughputError::Capability(engine.name().to_string()));
    }
    let t = Instant::now();
    for k in 0..u64::from(n) {
        // One step left out after the enable: privacyIDEA refuses the step
        // right after a resync (see docs/conformance.md).
        let step = step0 + 3 + k;
        let code = totp.code_for_step(step).to_string();
        let req = if sign_in {
            Request::SignIn {
                who: who.clone(),
                password_ok: true,
                code: Some(code),
            }
        } else {
            Request::Session {
                who: who.clone(),
                key: 1,
                serial: serial.into(),
                code,
            }
        };
        let ans = engine.call(at(3 + k), &req)?;
        if !ans.is_ok() {
            return Err(ThroughputError::Refused {
                engine: engine.name().to_string(),
                answer: ans.short(),
            });
        }
    }
    Ok(Throughput {
        verifications: n,
        elapsed: t.elapsed(),
    })
}
