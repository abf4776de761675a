//! The runner: owns the true clock, drives fobs and an engine through a
//! scenario's timeline, records a transcript and compares it with the
//! expectations.

use fobsim_core::{Channel, Principal};
use std::collections::HashMap;

use fobsim_core::Secret;
use fobsim_core::derive_secret;
use fobsim_core::{Hotp, Kind, SeedRecord, Serial, SimClock, Timestamp, Totp};
use fobsim_firmware::{Display, FobSpec, preset};
use serde::Serialize;

use crate::adapter::{
    Answer, Capability, EngineAdapter, Reply, Request, Setup, has, user_password,
};
use crate::driver::{FobBackend, FobDriver};
use crate::scenario::{
    Action, Base, BatteryAction, CodeRef, DeviceDecl, DeviceRef, DisplayExpect, Outcome,
    ParseError, Refine, Scenario, ServerClock, Source, WRONG_GUARD_STEPS, align, vocabulary,
};

/// The default `--seed`.
pub const DEFAULT_SEED: u64 = 1;

/// How a scenario ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// An expectation did not hold.
    Fail {
        /// Line of the failing step.
        line: usize,
        /// Expected.
        expected: String,
        /// Got.
        got: String,
    },
    /// The engine cannot express a step (never counted as a pass).
    #[serde(rename = "n/a")]
    NotApplicable {
        /// Line of the step.
        line: usize,
        /// The missing capability.
        capability: Capability,
    },
    /// The harness or adapter broke (engine unreachable, fob refused a spec).
    Error {
        /// Line, 0 for setup.
        line: usize,
        /// What happened.
        message: String,
    },
}

impl Verdict {
    /// `pass`, `fail`, `n/a` or `error`.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "fail",
            Verdict::NotApplicable { .. } => "n/a",
            Verdict::Error { .. } => "error",
        }
    }
}

/// One transcript entry: a step as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Line in the scenario file.
    pub line: usize,
    /// Iteration numbers of enclosing `repeat`s (1-based), outermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub iteration: Vec<u32>,
    /// The step as written.
    pub step: String,
    /// True time (after the step's clock move, if any).
    pub clock: String,
    /// The engine's time, when it differs from true time (`clock server`):
    /// what the requests of this step were judged at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_clock: Option<String>,
    /// The device whose button was pressed or display read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressed: Option<String>,
    /// What the display showed (`blank` or digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    /// Device clock at the time (for presses and drift checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_clock: Option<String>,
    /// Requests sent to the engine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<Request>,
    /// Its answers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answered: Vec<Answer>,
    /// What the adapter did on the engine's face to send them, in words,
    /// when it says ([`EngineAdapter::take_trace`]): say, the console
    /// adapter's pages, what it typed and what each page showed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<String>,
    /// What was expected, if the step has an expectation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What happened, if the step has an expectation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
    /// Why the step could not be judged as written on this engine (say, a
    /// finer kind of refusal that its answers do not carry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Iterations completed (for `repeat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// `pass`, `fail`, `n/a`, `error` or `done` (no expectation).
    pub result: &'static str,
}

/// The result of one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioResult {
    /// Scenario id.
    pub id: String,
    /// File it came from.
    pub file: String,
    /// What it encodes.
    pub sources: Vec<Source>,
    /// Engine adapter name.
    pub engine: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Every step as it happened (passing `repeat` iterations are folded).
    pub transcript: Vec<Entry>,
}

struct Dev {
    driver: Box<dyn FobDriver>,
    serial: String,
    period: Option<u64>,
    /// Digits the fob shows.
    digits: u8,
    /// What its vendor ships (what `import` sends).
    seed: SeedRecord,
    /// The fob's codes for any step or counter (to keep `wrong` wrong).
    codes: Codes,
}

/// Any step's (or counter's) code of a fob.
enum Codes {
    Totp(Totp),
    Hotp(Hotp),
}

enum Stop {
    Fail {
        line: usize,
        expected: String,
        got: String,
    },
    NotApplicable {
        line: usize,
        capability: Capability,
    },
    Error {
        line: usize,
        message: String,
    },
}

/// Builds a fob spec for a declared device under a run seed.
///
/// # Errors
/// A message if the declaration does not make a valid fob.
pub fn device_spec(d: &DeviceDecl, seed: u64, start: Timestamp) -> Result<FobSpec, String> {
    let base = preset(&d.model).ok_or_else(|| format!("unknown model {:?}", d.model))?;
    let mut model = base.clone();
    if let Some(digits) = d.digits {
        model.digits = digits;
    }
    if let Some(a) = d.algorithm {
        model.algorithm = a;
    }
    if let Some(p) = d.period {
        model.kind = Kind::Totp { period: p };
    }
    let serial = match &d.serial {
        Some(s) => Serial::new(s).map_err(|e| e.to_string())?,
        None => model.serial(d.index).map_err(|e| e.to_string())?,
    };
    let mut spec = FobSpec::seeded(&model, serial, seed, start).map_err(|e| e.to_string())?;
    spec.jitter_seed = spec.jitter_seed.wrapping_add(d.index);
    if let Some(s) = &d.secret {
        spec.secret = Secret::new(s.0.clone()).map_err(|e| e.to_string())?;
    } else if d.digits.is_some() || d.algorithm.is_some() {
        spec.secret =
            derive_secret(seed, &spec.serial, spec.model.secret_len).map_err(|e| e.to_string())?;
    }
    spec.drift = d.drift;
    Ok(spec)
}

/// The seed record a vendor would ship for a spec (with the claimed step
/// length, which may be wrong: `seed-period`).
#[must_use]
pub fn seed_record(spec: &FobSpec, seed_period: Option<u64>) -> SeedRecord {
    SeedRecord {
        serial: spec.serial.clone(),
        kind: match (spec.model.kind, seed_period) {
            (Kind::Totp { .. }, Some(p)) => Kind::Totp { period: p },
            (k, _) => k,
        },
        algorithm: spec.model.algorithm,
        digits: spec.model.digits,
        secret: spec.secret.clone(),
        counter: spec.counter,
    }
}

/// Runs scenarios against one engine adapter with one fob backend.
pub struct Runner<'a> {
    engine: &'a mut dyn EngineAdapter,
    backend: &'a mut dyn FobBackend,
    seed: u64,
}

struct State {
    clock: SimClock,
    /// The engine's clock minus true time (`clock server`), ms.
    server_ms: i64,
    /// The seeded generator of `random` and `wrong` codes.
    rng: u64,
    devices: HashMap<String, Dev>,
    vars: HashMap<String, String>,
    lost: std::collections::HashSet<String>,
    transcript: Vec<Entry>,
}

impl State {
    /// The engine's time: true time plus the server-clock offset.
    fn engine_now(&self) -> Timestamp {
        self.clock.now().add_millis(self.server_ms)
    }

    /// splitmix64: the next seeded 64-bit number.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `digits` seeded random decimal digits.
    fn random_digits(&mut self, digits: u8) -> String {
        (0..digits)
            .map(|_| char::from(b'0' + (self.next_random() % 10) as u8))
            .collect()
    }
}

/// The run seed mixed with the scenario id (FNV-1a), so each scenario has
/// its own sequence of guesses.
fn rng_seed(seed: u64, id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn fmt_display(d: Display) -> String {
    d.to_string()
}

/// How an answer measures up to an expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Judgement {
    /// It holds.
    Held,
    /// It does not.
    Failed,
    /// Whatever can be checked holds, but the expectation names finer
    /// kinds of refusal these answers do not carry.
    Unjudged(Vec<String>),
}

/// Judge `answer` against `expect`; `kinds`: the adapter's answers carry
/// finer kinds ([`Capability::ErrorKinds`]).
fn judge(expect: &Outcome, answer: &Answer, kinds: bool) -> Judgement {
    let unseen = |name: &str| !kinds && vocabulary::kind_code(name).is_some();
    let mut unjudged = Vec::new();
    let (code, kind, message) = match answer {
        Answer::Ok { .. } => {
            return if expect.base == Base::Ok {
                Judgement::Held
            } else {
                Judgement::Failed
            };
        }
        Answer::Error {
            code,
            kind,
            message,
            ..
        } => (code.as_str(), kind.as_deref(), message.to_ascii_lowercase()),
    };
    match &expect.base {
        Base::Ok => return Judgement::Failed,
        Base::Rejected => {}
        Base::Error(e) if unseen(e) => {
            // Only its AWS code can be seen.
            if vocabulary::kind_code(e) != Some(code) && kind != Some(e.as_str()) {
                return Judgement::Failed;
            }
            if kind != Some(e.as_str()) {
                unjudged.push(e.clone());
            }
        }
        Base::Error(e) => {
            if code != e && kind != Some(e.as_str()) {
                return Judgement::Failed;
            }
        }
    }
    for r in &expect.refine {
        match r {
            Refine::Not(n) => {
                if code == n || kind == Some(n.as_str()) {
                    return Judgement::Failed;
                }
                if unseen(n) {
                    unjudged.push(n.clone());
                }
            }
            Refine::Contains(t) => {
                if !message.contains(&t.to_ascii_lowercase()) {
                    return Judgement::Failed;
                }
            }
            Refine::Lacks(t) => {
                if message.contains(&t.to_ascii_lowercase()) {
                    return Judgement::Failed;
                }
            }
        }
    }
    if unjudged.is_empty() {
        Judgement::Held
    } else {
        Judgement::Unjudged(unjudged)
    }
}

/// What `got` says of an answer: its short form, and the message when the
/// expectation looks at messages.
fn got_of(expect: &Outcome, answer: &Answer) -> String {
    let looks = expect
        .refine
        .iter()
        .any(|r| matches!(r, Refine::Contains(_) | Refine::Lacks(_)));
    match answer {
        Answer::Error { message, .. } if looks => format!("{} {message:?}", answer.short()),
        _ => answer.short(),
    }
}

/// Check every scenario's settings with the engine before anything runs
/// (for an engine that takes settings): the first one it refuses is a
/// [`ParseError`] at the setting's `file:line:col`.
///
/// # Errors
/// The first refused setting.
pub fn check_settings(
    engine: &dyn EngineAdapter,
    scenarios: &[Scenario],
) -> Result<(), ParseError> {
    if !has(engine, Capability::Settings) {
        return Ok(());
    }
    for sc in scenarios {
        for (i, (k, v)) in sc.settings.iter().enumerate() {
            if let Err(why) = engine.check_setting(k, v) {
                let (line, col) = sc.setting_positions.get(i).copied().unwrap_or((0, 0));
                return Err(ParseError {
                    file: sc.file.clone(),
                    line,
                    col,
                    message: format!("engine {} refuses {k}={v}: {why}", engine.name()),
                });
            }
        }
    }
    Ok(())
}

impl<'a> Runner<'a> {
    /// A runner; `seed` drives secrets and jitter (same seed → same transcript).
    pub fn new(
        engine: &'a mut dyn EngineAdapter,
        backend: &'a mut dyn FobBackend,
        seed: u64,
    ) -> Self {
        Runner {
            engine,
            backend,
            seed,
        }
    }

    /// Run one scenario from a fresh engine.
    pub fn run(&mut self, sc: &Scenario) -> ScenarioResult {
        let mut st = State {
            clock: SimClock::new(sc.start),
            server_ms: 0,
            rng: rng_seed(self.seed, &sc.id),
            devices: HashMap::new(),
            vars: HashMap::new(),
            lost: std::collections::HashSet::new(),
            transcript: Vec::new(),
        };
        let verdict = match self.setup(sc, &mut st) {
            Err(stop) => stop,
            Ok(()) => match self.steps(&sc.steps, &mut st, &[]) {
                Ok(()) => Verdict::Pass,
                Err(s) => s,
            },
        };
        ScenarioResult {
            id: sc.id.clone(),
            file: sc.file.clone(),
            sources: sc.sources.clone(),
            engine: self.engine.name().to_string(),
            verdict,
            transcript: st.transcript,
        }
    }

    fn setup(&mut self, sc: &Scenario, st: &mut State) -> Result<(), Verdict> {
        if !sc.settings.is_empty() && !has(self.engine, Capability::Settings) {
            return Err(Verdict::NotApplicable {
                line: 0,
                capability: Capability::Settings,
            });
        }
        let mut seeds = Vec::new();
        for d in &sc.devices {
            let spec = device_spec(d, self.seed, sc.start).map_err(|message| Verdict::Error {
                line: d.line,
                message,
            })?;
            let seed = seed_record(&spec, d.seed_period);
            if d.registered {
                seeds.push(seed.clone());
            }
            let serial = spec.serial.to_string();
            let period = spec.model.period();
            let digits = spec.model.digits;
            let codes = match spec.model.kind {
                Kind::Totp { period } => Totp::new(
                    spec.model.algorithm,
                    spec.secret.expose(),
                    u32::from(digits),
                    period,
                    0,
                )
                .map(Codes::Totp),
                Kind::Hotp => Hotp::new(
                    spec.model.algorithm,
                    spec.secret.expose(),
                    u32::from(digits),
                )
                .map(Codes::Hotp),
            }
            .map_err(|e| Verdict::Error {
                line: d.line,
                message: e.to_string(),
            })?;
            let mut driver = self.backend.attach(spec).map_err(|e| Verdict::Error {
                line: d.line,
                message: e.to_string(),
            })?;
            if d.battery_dead {
                driver.drain_battery(sc.start).map_err(|e| Verdict::Error {
                    line: d.line,
                    message: e.to_string(),
                })?;
            }
            st.devices.insert(
                d.name.clone(),
                Dev {
                    driver,
                    serial,
                    period,
                    digits,
                    seed,
                    codes,
                },
            );
        }
        let setup = Setup {
            scenario: sc.id.clone(),
            account: crate::adapter::Account::default(),
            users: sc
                .users
                .iter()
                .map(|u| (u.clone(), user_password(u)))
                .collect(),
            access_keys: sc.access_keys.clone(),
            seeds,
            settings: sc.settings.clone(),
            start: sc.start,
        };
        self.engine.begin(&setup).map_err(|e| Verdict::Error {
            line: 0,
            message: e.to_string(),
        })
    }

    fn steps(
        &mut self,
        steps: &[crate::scenario::Step],
        st: &mut State,
        iter: &[u32],
    ) -> Result<(), Verdict> {
        for s in steps {
            if let Action::Repeat { times, body } = &s.action {
                let mark = st.transcript.len();
                let mut done = 0;
                for i in 1..=*times {
                    let mut it = iter.to_vec();
                    it.push(i);
                    let before = st.transcript.len();
                    match self.steps(body, st, &it) {
                        Ok(()) => {
                            st.transcript.truncate(before);
                            done = i;
                        }
                        Err(v) => {
                            let failed: Vec<Entry> = st.transcript.drain(before..).collect();
                            st.transcript.truncate(mark);
                            st.transcript
                                .push(self.entry(s, st, iter, "fail", Some(done)));
                            st.transcript.extend(failed);
                            return Err(v);
                        }
                    }
                }
                let e = self.entry(s, st, iter, "pass", Some(done));
                st.transcript.push(e);
                continue;
            }
            let mut e = self.entry(s, st, iter, "done", None);
            let r = self.step(s, st, &mut e);
            match r {
                Ok(()) => {
                    if e.expected.is_some() {
                        e.result = "pass";
                    }
                    st.transcript.push(e);
                }
                Err(stop) => {
                    let v = match stop {
                        Stop::Fail {
                            line,
                            expected,
                            got,
                        } => {
                            e.result = "fail";
                            e.expected = Some(expected.clone());
                            e.got = Some(got.clone());
                            Verdict::Fail {
                                line,
                                expected,
                                got,
                            }
                        }
                        Stop::NotApplicable { line, capability } => {
                            e.result = "n/a";
                            Verdict::NotApplicable { line, capability }
                        }
                        Stop::Error { line, message } => {
                            e.result = "error";
                            e.got = Some(message.clone());
                            Verdict::Error { line, message }
                        }
                    };
                    st.transcript.push(e);
                    return Err(v);
                }
            }
        }
        Ok(())
    }

    fn entry(
        &self,
        s: &crate::scenario::Step,
        st: &State,
        iter: &[u32],
        result: &'static str,
        iterations: Option<u32>,
    ) -> Entry {
        Entry {
            line: s.line,
            iteration: iter.to_vec(),
            step: s.text.clone(),
            clock: st.clock.now().to_string(),
            server_clock: None,
            pressed: None,
            shown: None,
            device_clock: None,
            sent: Vec::new(),
            answered: Vec::new(),
            trace: Vec::new(),
            expected: None,
            got: None,
            note: None,
            iterations,
            result,
        }
    }

    fn call(
        &mut self,
        line: usize,
        st: &State,
        e: &mut Entry,
        req: Request,
    ) -> Result<Answer, Stop> {
        let cap = req.capability();
        if !has(self.engine, cap) {
            return Err(Stop::NotApplicable {
                line,
                capability: cap,
            });
        }
        let now = st.engine_now();
        if st.server_ms != 0 {
            e.server_clock = Some(now.to_string());
        }
        let ans = self.engine.call(now, &req);
        e.trace.extend(self.engine.take_trace());
        let ans = ans.map_err(|err| Stop::Error {
            line,
            message: err.to_string(),
        })?;
        e.sent.push(req);
        e.answered.push(ans.clone());
        Ok(ans)
    }

    fn check(
        &self,
        line: usize,
        e: &mut Entry,
        expect: &Outcome,
        ans: &Answer,
    ) -> Result<(), Stop> {
        let kinds = has(self.engine, Capability::ErrorKinds);
        match judge(expect, ans, kinds) {
            Judgement::Held => Self::expect(line, e, expect.to_string(), got_of(expect, ans), true),
            Judgement::Failed => {
                Self::expect(line, e, expect.to_string(), got_of(expect, ans), false)
            }
            Judgement::Unjudged(names) => {
                e.expected = Some(expect.to_string());
                e.got = Some(got_of(expect, ans));
                e.note = Some(format!(
                    "this engine answers in the AWS error shape (a code and a message): the finer kind {} does not come through, so a lock and a wrong code look alike here; match what it does say instead (its code, or its message with ~\"TEXT\")",
                    names.join(", ")
                ));
                Err(Stop::NotApplicable {
                    line,
                    capability: Capability::ErrorKinds,
                })
            }
        }
    }

    /// Record what was expected and what came on the entry; `held` false
    /// stops the scenario there.
    fn expect(
        line: usize,
        e: &mut Entry,
        expected: String,
        got: String,
        held: bool,
    ) -> Result<(), Stop> {
        e.expected = Some(expected.clone());
        e.got = Some(got.clone());
        if held {
            Ok(())
        } else {
            Err(Stop::Fail {
                line,
                expected,
                got,
            })
        }
    }

    fn serial(st: &State, d: &DeviceRef) -> String {
        match d {
            DeviceRef::Named(n) => st
                .devices
                .get(n)
                .map(|d| d.serial.clone())
                .unwrap_or_default(),
            DeviceRef::Serial(s) => s.clone(),
        }
    }

    /// The code a step types. `device`: the device the step names (for the
    /// length of `random`/`wrong` and the codes `wrong` avoids).
    fn code(
        line: usize,
        st: &mut State,
        c: &CodeRef,
        device: Option<&DeviceRef>,
    ) -> Result<String, Stop> {
        let var = |st: &State, v: &str| {
            st.vars.get(v).cloned().ok_or_else(|| Stop::Error {
                line,
                message: format!("the code {v:?} was never captured"),
            })
        };
        match c {
            CodeRef::Literal(l) => Ok(l.clone()),
            CodeRef::Var(v) => var(st, v),
            CodeRef::Part { var: v, from, to } => {
                let code = var(st, v)?;
                code.get(*from..*to)
                    .map(str::to_string)
                    .ok_or_else(|| Stop::Error {
                        line,
                        message: format!("{v} holds {code:?}: it has no characters {from}..{to}"),
                    })
            }
            CodeRef::Random { digits } => {
                let n = digits.unwrap_or_else(|| Self::digits_of(st, device));
                Ok(st.random_digits(n))
            }
            CodeRef::Wrong { digits } => {
                let n = digits.unwrap_or_else(|| Self::digits_of(st, device));
                let avoid = Self::codes_near(line, st, device, n)?;
                // A million 6-digit codes, a few hundred to avoid: a fresh
                // draw is almost always fine; the bound keeps it finite.
                for _ in 0..10_000 {
                    let guess = st.random_digits(n);
                    if !avoid.contains(&guess) {
                        return Ok(guess);
                    }
                }
                Err(Stop::Error {
                    line,
                    message: format!("no {n}-digit code is wrong for sure here"),
                })
            }
        }
    }

    /// Digits of the step's declared device (6 without one).
    fn digits_of(st: &State, device: Option<&DeviceRef>) -> u8 {
        match device {
            Some(DeviceRef::Named(n)) => st.devices.get(n).map_or(6, |d| d.digits),
            _ => 6,
        }
    }

    /// Every `digits`-digit code the step's device (without one: every
    /// declared device) shows within [`WRONG_GUARD_STEPS`] steps of true
    /// time, the engine's time and the device's own clock, for its own step
    /// length and the one its seed record claims (HOTP: the next
    /// counters).
    fn codes_near(
        line: usize,
        st: &mut State,
        device: Option<&DeviceRef>,
        digits: u8,
    ) -> Result<std::collections::HashSet<String>, Stop> {
        let names: Vec<String> = match device {
            Some(DeviceRef::Named(n)) => vec![n.clone()],
            Some(DeviceRef::Serial(_)) => Vec::new(),
            None => st.devices.keys().cloned().collect(),
        };
        let now = st.clock.now();
        let engine = st.engine_now();
        let mut avoid = std::collections::HashSet::new();
        for name in names {
            let Some(d) = st.devices.get_mut(&name) else {
                continue;
            };
            if d.digits != digits {
                continue;
            }
            let off = d.driver.clock_offset_ms(now).map_err(|err| Stop::Error {
                line,
                message: err.to_string(),
            })?;
            let device_now = off.map(|o| now.add_millis(o));
            let counters: Vec<u64> = match &d.codes {
                Codes::Hotp(_) => {
                    let c = d.seed.counter;
                    (c..c.saturating_add(4 * WRONG_GUARD_STEPS)).collect()
                }
                Codes::Totp(_) => {
                    let mut periods = vec![d.period.unwrap_or(30)];
                    if let Kind::Totp { period } = d.seed.kind {
                        periods.push(period);
                    }
                    let mut v = Vec::new();
                    for p in periods {
                        for t in [Some(now), Some(engine), device_now].into_iter().flatten() {
                            let step = t.as_secs() / p.max(1);
                            v.extend(
                                step.saturating_sub(WRONG_GUARD_STEPS)
                                    ..=step.saturating_add(WRONG_GUARD_STEPS),
                            );
                        }
                    }
                    v
                }
            };
            for c in counters {
                avoid.insert(match &d.codes {
                    Codes::Totp(t) => t.code_for_step(c).to_string(),
                    Codes::Hotp(h) => h.code(c).to_string(),
                });
            }
        }
        Ok(avoid)
    }

    /// A declared device, lost or not (importing its seed needs no fob).
    fn dev_any<'s>(line: usize, st: &'s State, name: &str) -> Result<&'s Dev, Stop> {
        st.devices.get(name).ok_or_else(|| Stop::Error {
            line,
            message: format!("no device {name:?}"),
        })
    }

    fn dev<'s>(line: usize, st: &'s mut State, name: &str) -> Result<&'s mut Dev, Stop> {
        if st.lost.contains(name) {
            return Err(Stop::Error {
                line,
                message: format!("{name} is lost (a 'lose' in an earlier 'repeat' iteration?)"),
            });
        }
        st.devices.get_mut(name).ok_or_else(|| Stop::Error {
            line,
            message: format!("no device {name:?}"),
        })
    }

    #[allow(clippy::too_many_lines)]
    fn step(
        &mut self,
        s: &crate::scenario::Step,
        st: &mut State,
        e: &mut Entry,
    ) -> Result<(), Stop> {
        let line = s.line;
        let drv_err = |err: crate::driver::DriverError| Stop::Error {
            line,
            message: err.to_string(),
        };
        match &s.action {
            Action::Press {
                device,
                capture,
                expect,
            }
            | Action::Look {
                device,
                capture,
                expect,
            } => {
                let now = st.clock.now();
                let pressing = matches!(s.action, Action::Press { .. });
                let d = Self::dev(line, st, device)?;
                let shown = if pressing {
                    d.driver.press(now).map_err(drv_err)?
                } else {
                    d.driver.display(now).map_err(drv_err)?
                };
                let off = d.driver.clock_offset_ms(now).map_err(drv_err)?;
                e.pressed = Some(device.clone());
                e.shown = Some(fmt_display(shown));
                e.device_clock = off.map(|o| device_clock(now, o));
                let want = expect.or(capture.as_ref().map(|_| DisplayExpect::Code));
                if let Some(want) = want {
                    let got = if shown.code().is_some() {
                        "code"
                    } else {
                        "blank"
                    };
                    let exp = match want {
                        DisplayExpect::Code => "code",
                        DisplayExpect::Blank => "blank",
                    };
                    Self::expect(line, e, exp.into(), got.into(), exp == got)?;
                }
                if let (Some(name), Some(code)) = (capture, shown.code()) {
                    st.vars.insert(name.clone(), code.to_string());
                }
            }
            Action::Wait { ms } => {
                st.clock.advance_millis(*ms);
                e.clock = st.clock.now().to_string();
            }
            Action::At { time } => {
                if *time < st.clock.now() {
                    return Err(Stop::Error {
                        line,
                        message: format!(
                            "'at {time}' would move the clock back from {}",
                            st.clock.now()
                        ),
                    });
                }
                st.clock.set(*time);
                e.clock = st.clock.now().to_string();
            }
            Action::Align { ms } => {
                st.clock.set(align(st.clock.now(), *ms));
                e.clock = st.clock.now().to_string();
            }
            Action::Enable {
                user,
                device,
                code1,
                code2,
                via,
                expect,
            } => {
                let req = Request::Enable {
                    who: Principal::from_name(user),
                    serial: Self::serial(st, device),
                    code1: Self::code(line, st, code1, Some(device))?,
                    code2: Self::code(line, st, code2, Some(device))?,
                    channel: *via,
                };
                if user == "root" && !has(self.engine, Capability::RootUser) {
                    return Err(Stop::NotApplicable {
                        line,
                        capability: Capability::RootUser,
                    });
                }
                let ans = self.call(line, st, e, req)?;
                self.check(line, e, expect, &ans)?;
            }
            Action::Resync {
                user,
                device,
                code1,
                code2,
                expect,
            } => {
                let req = Request::Resync {
                    who: Principal::from_name(user),
                    serial: Self::serial(st, device),
                    code1: Self::code(line, st, code1, Some(device))?,
                    code2: Self::code(line, st, code2, Some(device))?,
                };
                let ans = self.call(line, st, e, req)?;
                self.check(line, e, expect, &ans)?;
            }
            Action::Deactivate {
                user,
                device,
                expect,
            } => {
                let req = Request::Deactivate {
                    who: Principal::from_name(user),
                    serial: Self::serial(st, device),
                };
                let ans = self.call(line, st, e, req)?;
                self.check(line, e, expect, &ans)?;
            }
            Action::Replace {
                user,
                old,
                new,
                code1,
                code2,
                expect,
            } => {
                let who = Principal::from_name(user);
                let req = Request::Deactivate {
                    who: who.clone(),
                    serial: Self::serial(st, old),
                };
                let ans = self.call(line, st, e, req)?;
                if !ans.is_ok() {
                    return self.check(line, e, expect, &ans);
                }
                let req = Request::Enable {
                    who,
                    serial: Self::serial(st, new),
                    code1: Self::code(line, st, code1, Some(new))?,
                    code2: Self::code(line, st, code2, Some(new))?,
                    channel: Channel::Console,
                };
                let ans = self.call(line, st, e, req)?;
                self.check(line, e, expect, &ans)?;
            }
            Action::SignIn {
                user,
                code,
                wrong_password,
                expect,
            } => {
                let code = match code {
                    Some(c) => Some(Self::code(line, st, c, None)?),
                    None => None,
                };
                let req = Request::SignIn {
                    who: Principal::from_name(user),
                    password_ok: !wrong_password,
                    code,
                };
                let ans = self.call(line, st, e, req)?;
                self.check(line, e, expect, &ans)?;
            }
            Action::Session {
                user,
                key,
                device,
                code,
                expect,
            } => {
                if *key != 1 && !has(self.engine, Capability::AccessKeys) {
                    return Err(Stop::NotApplicable {
                        line,
                        capability: Capability::AccessKeys,
                    });
                }
                let req = Request::Session {
                    who: Principal::from_name(user),
                    key: *key,
                    serial: Self::serial(st, device),
                    code: Self::code(line, st, code, Some(device))?,
                };
                let ans = self.call(line, st, e, req)?;
                self.check(line, e, expect, &ans)?;
            }
            Action::Devices { user, expect } => {
                let req = Request::ListDevices {
                    who: Principal::from_name(user),
                };
                let ans = self.call(line, st, e, req)?;
                let mut want: Vec<String> = expect.iter().map(|d| Self::serial(st, d)).collect();
                want.sort();
                let show = |v: &[String]| {
                    if v.is_empty() {
                        "none".to_string()
                    } else {
                        v.join(",")
                    }
                };
                let got = match &ans {
                    Answer::Ok {
                        data: Reply::Devices { devices },
                    } => {
                        let mut g = devices.clone();
                        g.sort();
                        show(&g)
                    }
                    Answer::Ok { .. } => "none".to_string(),
                    other => other.short(),
                };
                let want = show(&want);
                let held = got == want;
                Self::expect(line, e, want, got, held)?;
            }
            Action::Recover {
                email,
                phone,
                expect,
            } => {
                let ans = self.call(line, st, e, Request::StartRecovery)?;
                if !ans.is_ok() {
                    return self.check(line, e, expect, &ans);
                }
                let ans = self.call(line, st, e, Request::Outbox)?;
                let msgs = match &ans {
                    Answer::Ok {
                        data: Reply::Messages { messages },
                    } => messages.clone(),
                    _ => Vec::new(),
                };
                let latest = |ch: &str| {
                    msgs.iter()
                        .rev()
                        .find(|m| m.channel == ch)
                        .map(|m| m.code.clone())
                };
                let email_code = match email.clone().or_else(|| latest("email")) {
                    Some(c) => c,
                    None => {
                        return Err(Stop::Fail {
                            line,
                            expected: "a verification code sent to the account email".into(),
                            got: "no email in the outbox".into(),
                        });
                    }
                };
                let phone_code = match phone.clone().or_else(|| latest("phone")) {
                    Some(c) => c,
                    None => {
                        return Err(Stop::Fail {
                            line,
                            expected: "a verification code sent to the account phone".into(),
                            got: "no phone message in the outbox".into(),
                        });
                    }
                };
                let ans = self.call(
                    line,
                    st,
                    e,
                    Request::CompleteRecovery {
                        email_code,
                        phone_code,
                    },
                )?;
                self.check(line, e, expect, &ans)?;
            }
            Action::Lose { device } => {
                st.lost.insert(device.clone());
            }
            Action::Find { device } => {
                st.lost.remove(device);
            }
            Action::Battery { device, action } => {
                let now = st.clock.now();
                let d = Self::dev(line, st, device)?;
                match action {
                    BatteryAction::Dead => d.driver.drain_battery(now).map_err(drv_err)?,
                    BatteryAction::New => d.driver.swap_battery(now).map_err(drv_err)?,
                }
                let off = d.driver.clock_offset_ms(now).map_err(drv_err)?;
                e.device_clock = off.map(|o| device_clock(now, o));
            }
            Action::Drift { device, drift } => {
                let now = st.clock.now();
                let d = Self::dev(line, st, device)?;
                d.driver.set_drift(now, *drift).map_err(drv_err)?;
                let off = d.driver.clock_offset_ms(now).map_err(drv_err)?;
                e.device_clock = off.map(|o| device_clock(now, o));
            }
            Action::ExpectSteps { device, min, max } => {
                let now = st.clock.now();
                let d = Self::dev(line, st, device)?;
                let Some(period) = d.period else {
                    return Err(Stop::Error {
                        line,
                        message: format!("{device} is event-based: it has no clock steps"),
                    });
                };
                let off = d.driver.clock_offset_ms(now).map_err(drv_err)?;
                e.device_clock = off.map(|o| device_clock(now, o));
                let expected = format!("{min}..{max} steps");
                let Some(off) = off else {
                    return Self::expect(line, e, expected, "dead battery".into(), false);
                };
                let p = i64::try_from(period.saturating_mul(1000)).unwrap_or(i64::MAX);
                let t = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
                let steps = t.saturating_add(off).div_euclid(p) - t.div_euclid(p);
                let held = (*min..=*max).contains(&steps);
                Self::expect(line, e, expected, format!("{steps} steps"), held)?;
            }
            Action::ExpectLocked { device, locked } => {
                let serial = Self::serial(st, &DeviceRef::Named(device.clone()));
                let ans = self.call(line, st, e, Request::DeviceState { serial })?;
                let expected = if *locked { "locked" } else { "unlocked" }.to_string();
                let got = match &ans {
                    Answer::Ok {
                        data: Reply::State { locked: true, .. },
                    } => "locked".to_string(),
                    Answer::Ok {
                        data: Reply::State { locked: false, .. },
                    } => "unlocked".to_string(),
                    other => other.short(),
                };
                let held = got == expected;
                Self::expect(line, e, expected, got, held)?;
            }
            Action::ClockServer { change } => {
                st.server_ms = match change {
                    ServerClock::Reset => 0,
                    ServerClock::Step(ms) => st.server_ms.saturating_add(*ms),
                };
                e.server_clock = Some(st.engine_now().to_string());
            }
            Action::Import { device, expect } => {
                let seed = Self::dev_any(line, st, device)?.seed.clone();
                let ans = self.call(line, st, e, Request::Import { seed })?;
                self.check(line, e, expect, &ans)?;
            }
            Action::ExpectCodes { left, equal, right } => {
                let l = Self::code(line, st, left, None)?;
                let r = Self::code(line, st, right, None)?;
                let op = if *equal { "==" } else { "!=" };
                let same = l == r;
                let got = format!("{l} {} {r}", if same { "==" } else { "!=" });
                Self::expect(line, e, format!("{left} {op} {right}"), got, same == *equal)?;
            }
            Action::Repeat { .. } => {}
        }
        Ok(())
    }
}

fn device_clock(now: Timestamp, offset_ms: i64) -> String {
    let dev = i64::try_from(now.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_add(offset_ms);
    let sign = if offset_ms < 0 { "-" } else { "+" };
    let off = fobsim_core::time::format_duration_ms(offset_ms.abs());
    match u64::try_from(dev) {
        Ok(ms) => format!("{} ({sign}{off})", Timestamp::from_millis(ms)),
        Err(_) => format!("before 1970 ({sign}{off})"),
    }
}
