//! Test doubles shipped with the library (DESIGN principle 3).
//!
//! [`ModelEngine`] is a small, independent model of the rules
//! (`docs/engine-rules.md`: the interval of learned offsets, the replay
//! barrier, the heal of a barrier left ahead by a server clock that stepped
//! back, lockout), written from the rules and not from the engine's code:
//! it searches by brute force where the engine computes ranges. The suite
//! runs against it in the harness's own tests, `fobsim-engines` checks it
//! against the engine on every built-in scenario and on random timelines,
//! and it stands in for any adapter when testing the runner and the
//! reports. `with_capabilities` makes a weaker engine, to exercise `n/a`
//! reporting.

use fobsim_core::{Channel, Principal};
use std::collections::HashMap;

use fobsim_core::Totp;
use fobsim_core::{Kind, Timestamp};

use crate::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Message, Reply, Request, Setup,
};

/// The numbers of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How far (steps) the learned offsets widen at most without evidence.
    pub auth_window: i64,
    /// ± steps searched at enable/resync.
    pub sync_window: i64,
    /// Devices per principal.
    pub max_devices: usize,
    /// Consecutive failures that lock (0 = never).
    pub lockout_threshold: u32,
    /// Lock period in ms.
    pub lockout_period_ms: u64,
    /// Longest time between pressing and submitting, ms.
    pub max_submit_delay_ms: i64,
    /// Drift bound of the fobs' clocks, ppm.
    pub drift_ppm: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            auth_window: 1,
            sync_window: 1000,
            max_devices: 1,
            lockout_threshold: 5,
            lockout_period_ms: 15 * 60 * 1000,
            max_submit_delay_ms: 60_000,
            drift_ppm: 20,
        }
    }
}

struct Token {
    totp: Totp,
    digits: u8,
    owner: Option<Principal>,
    /// Offsets (fob − engine, ms) consistent with the evidence: [lo, hi).
    lo: i128,
    hi: i128,
    /// Engine time of the last evidence, ms.
    at: i128,
    /// The replay barrier.
    last: Option<i64>,
    /// First step of the current run of acceptances; the barrier before it.
    run_start: Option<i64>,
    run_base: Option<i64>,
    /// Used steps left ahead by a server clock that stepped back.
    quarantine: Option<(i64, i64)>,
    failures: u32,
    locked_until: Option<Timestamp>,
}

/// An in-memory model of the rules, usable as an [`EngineAdapter`].
pub struct ModelEngine {
    caps: Vec<Capability>,
    rules: Rules,
    users: HashMap<String, String>,
    root_password: String,
    root_email: String,
    root_phone: String,
    tokens: HashMap<String, Token>,
    outbox: Vec<Message>,
    pending: Option<(String, String, Timestamp)>,
    grant_until: Option<Timestamp>,
    counter: u64,
}

impl Default for ModelEngine {
    fn default() -> Self {
        Self::new()
    }
}

fn err(code: &str, status: u16, kind: Option<&str>, message: impl Into<String>) -> Answer {
    Answer::Error {
        code: code.into(),
        status,
        kind: kind.map(str::to_string),
        message: message.into(),
    }
}

fn denied(kind: Option<&str>) -> Answer {
    err(
        "AccessDenied",
        403,
        kind,
        "MultiFactorAuthentication failed with invalid MFA one time pass code.",
    )
}

fn invalid(what: &str) -> Answer {
    err("ValidationError", 400, None, what.to_string())
}

fn no_such_device(serial: &str) -> Answer {
    err(
        "NoSuchEntity",
        404,
        None,
        format!("MFA Device with serial number {serial} does not exist."),
    )
}

fn invalid_code() -> Answer {
    err(
        "InvalidAuthenticationCode",
        403,
        None,
        "Authentication code for the MFA device is not valid.",
    )
}

fn digits_only(code: &str, n: std::ops::RangeInclusive<usize>) -> bool {
    n.contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

fn ms(t: Timestamp) -> i128 {
    i128::from(t.as_millis())
}

/// What a pair of codes teaches: the first step and the new run, base and
/// quarantine.
struct PairFound {
    first: i64,
    run_start: Option<i64>,
    run_base: Option<i64>,
    quarantine: Option<(i64, i64)>,
}

impl ModelEngine {
    /// A model engine with every capability.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capabilities(&Capability::ALL)
    }

    /// A model engine that declares only `caps`.
    #[must_use]
    pub fn with_capabilities(caps: &[Capability]) -> Self {
        ModelEngine {
            caps: caps.to_vec(),
            rules: Rules::default(),
            users: HashMap::new(),
            root_password: String::new(),
            root_email: String::new(),
            root_phone: String::new(),
            tokens: HashMap::new(),
            outbox: Vec::new(),
            pending: None,
            grant_until: None,
            counter: 0,
        }
    }

    /// Whether the token shows `code` (as typed) at `step`.
    fn shows(t: &Token, step: i64, code: &str) -> bool {
        let (Ok(s), Ok(c)) = (
            u64::try_from(step),
            fobsim_core::Code::parse(code, t.digits),
        ) else {
            return false;
        };
        t.totp.code_for_step(s) == c
    }

    fn period_ms(t: &Token) -> i128 {
        i128::from(t.totp.period()) * 1000
    }

    fn start_ms(t: &Token, step: i64) -> i128 {
        (i128::from(t.totp.t0()) + i128::from(step) * i128::from(t.totp.period())) * 1000
    }

    fn current(t: &Token, now: Timestamp) -> i64 {
        t.totp
            .step_at(now.as_secs())
            .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX))
    }

    fn exists(&self, who: &Principal) -> bool {
        match who {
            Principal::Root => true,
            Principal::User(u) => self.users.contains_key(u),
        }
    }

    fn used(t: &Token, s: i64) -> bool {
        t.quarantine.is_some_and(|(a, b)| (a..=b).contains(&s))
    }

    /// Two consecutive codes nearest the current step (ties: the lower),
    /// outside the quarantine; above the barrier — or, with the barrier
    /// ahead by more than the sync window (a server clock that stepped
    /// back), above the run's base and below the run, which is then
    /// quarantined.
    fn sync(&self, serial: &str, now: Timestamp, c1: &str, c2: &str) -> Option<PairFound> {
        let t = self.tokens.get(serial)?;
        let cur = Self::current(t, now);
        let w = self.rules.sync_window;
        let pair = |s: i64| {
            !Self::used(t, s)
                && !Self::used(t, s + 1)
                && Self::shows(t, s, c1)
                && Self::shows(t, s + 1, c2)
        };
        let nearest = |ok: &dyn Fn(i64) -> bool| {
            (0..=w)
                .flat_map(|d| [cur - d, cur + d])
                .find(|&s| s >= 0 && ok(s) && pair(s))
        };
        match t.last {
            Some(last) if last > cur + w => {
                let run = t.run_start?;
                let base = t.run_base.map_or(-1, |b| b);
                let s = nearest(&|s| s > base && s + 1 < run)?;
                let q = t
                    .quarantine
                    .map_or((run, last), |(a, b)| (a.min(run), b.max(last)));
                Some(PairFound {
                    first: s,
                    run_start: Some(s),
                    run_base: t.run_base,
                    quarantine: Some(q),
                })
            }
            last => {
                let s = nearest(&|s| last.is_none_or(|l| s > l))?;
                let fresh_run = t.run_start.is_none() || last.is_none_or(|l| s > l + w);
                Some(PairFound {
                    first: s,
                    run_start: if fresh_run { Some(s) } else { t.run_start },
                    run_base: if fresh_run { last } else { t.run_base },
                    quarantine: t.quarantine,
                })
            }
        }
    }

    /// Pin the token's learned offsets to the second code's evidence.
    fn pin(&mut self, serial: &str, now: Timestamp, found: &PairFound) {
        let d = i128::from(self.rules.max_submit_delay_ms);
        if let Some(t) = self.tokens.get_mut(serial) {
            let second = found.first + 1;
            let rel = Self::start_ms(t, second) - ms(now);
            t.lo = rel;
            t.hi = rel + Self::period_ms(t) + d;
            t.at = ms(now);
            t.last = Some(second);
            t.run_start = found.run_start;
            t.run_base = found.run_base;
            t.quarantine = found.quarantine.filter(|(_, b)| *b > second);
            t.failures = 0;
            t.locked_until = None;
        }
    }

    /// The checks of a code typed for `serial`: 6–8 digits first, then the
    /// token's own digit count.
    fn code_shape(&self, serial: &str, code: &str) -> Option<Answer> {
        let digits = self.tokens.get(serial).map_or(6, |t| t.digits);
        (!digits_only(code, 6..=8) || code.len() != usize::from(digits))
            .then(|| invalid(&format!("code must be {digits} digits")))
    }

    fn verify(&mut self, serial: &str, now: Timestamp, code: &str) -> Answer {
        let rules = self.rules;
        let Some(t) = self.tokens.get_mut(serial) else {
            return denied(None);
        };
        if t.locked_until.is_some_and(|u| now < u) {
            return denied(Some("DeviceLocked"));
        }
        let p = Self::period_ms(t);
        let d = i128::from(rules.max_submit_delay_ms);
        let elapsed = (ms(now) - t.at).max(0);
        let g = (elapsed * i128::from(rules.drift_ppm) / 1_000_000)
            .min(i128::from(rules.auth_window) * p);
        let (wlo, whi) = (t.lo - g, t.hi + g);
        // By the definition: every step whose evidence [start − now,
        // start + P + D − now) meets [wlo, whi), scanning generously.
        let first = ((ms(now) + wlo - p - d).div_euclid(p) - 1).max(0);
        let last = (ms(now) + whi).div_euclid(p) + 1;
        let mut shows = Vec::new();
        let mut s = first;
        while s <= last {
            let step = i64::try_from(s).unwrap_or(i64::MAX);
            let e_lo = Self::start_ms(t, step) - ms(now);
            let e_hi = e_lo + p + d;
            if e_lo < whi
                && wlo < e_hi
                && t.last.is_none_or(|l| step > l)
                && Self::shows(t, step, code)
            {
                shows.push(step);
            }
            s += 1;
        }
        let fresh: Vec<i64> = shows
            .iter()
            .copied()
            .filter(|s| !Self::used(t, *s))
            .collect();
        if let (Some(&lowest), Some(&highest), Some(&barrier)) =
            (fresh.first(), fresh.last(), shows.last())
        {
            let lo = Self::start_ms(t, lowest) - ms(now);
            let hi = Self::start_ms(t, highest) - ms(now) + p + d;
            t.lo = lo.max(wlo);
            t.hi = hi.min(whi);
            t.at = ms(now);
            if t.last.is_none_or(|l| lowest > l + rules.sync_window) {
                t.run_start = Some(lowest);
                t.run_base = t.last;
            }
            t.last = Some(barrier);
            t.quarantine = t.quarantine.filter(|(_, b)| *b > barrier);
            t.failures = 0;
            return Answer::ok();
        }
        // The code most recently accepted (its barrier step shows it): a
        // replay proves possession, not guessing; refused, not counted.
        if t.last.is_some_and(|l| Self::shows(t, l, code)) {
            return denied(None);
        }
        t.failures += 1;
        if rules.lockout_threshold > 0 && t.failures >= rules.lockout_threshold {
            t.failures = 0;
            t.locked_until =
                Some(now.add_millis(i64::try_from(rules.lockout_period_ms).unwrap_or(i64::MAX)));
        }
        denied(None)
    }

    fn devices_of(&self, who: &Principal) -> Vec<String> {
        let mut v: Vec<String> = self
            .tokens
            .iter()
            .filter(|(_, t)| t.owner.as_ref() == Some(who))
            .map(|(s, _)| s.clone())
            .collect();
        v.sort();
        v
    }

    fn no_such_user(who: &Principal) -> Answer {
        err(
            "NoSuchEntity",
            404,
            None,
            format!("The user with name {who} cannot be found."),
        )
    }

    /// The checks enable and resync share, in AWS's order: the serial, the
    /// codes' shape, the principal, the token, the codes' digit count.
    fn pair_input(&self, who: &Principal, serial: &str, c1: &str, c2: &str) -> Option<Answer> {
        if fobsim_core::Serial::new(serial).is_err() {
            return Some(invalid("malformed serial number"));
        }
        if !digits_only(c1, 6..=8) || !digits_only(c2, 6..=8) {
            return self
                .code_shape(serial, c1)
                .or_else(|| self.code_shape(serial, c2));
        }
        if !self.exists(who) {
            return Some(Self::no_such_user(who));
        }
        if !self.tokens.contains_key(serial) {
            return Some(no_such_device(serial));
        }
        self.code_shape(serial, c1)
            .or_else(|| self.code_shape(serial, c2))
    }

    fn enable(
        &mut self,
        now: Timestamp,
        who: &Principal,
        serial: &str,
        c1: &str,
        c2: &str,
        ch: Channel,
    ) -> Answer {
        if *who == Principal::Root && ch == Channel::Api {
            return err(
                "AccessDenied",
                403,
                Some("RootConsoleOnly"),
                "root MFA can be enabled from the console only",
            );
        }
        if let Some(a) = self.pair_input(who, serial, c1, c2) {
            return a;
        }
        if self.tokens.get(serial).is_some_and(|t| t.owner.is_some()) {
            return err(
                "EntityAlreadyExists",
                409,
                None,
                "MFA Device is already in use.",
            );
        }
        if self.devices_of(who).len() >= self.rules.max_devices {
            return err(
                "LimitExceeded",
                409,
                None,
                "Cannot exceed quota for MfaDevicesPerUser",
            );
        }
        let Some(found) = self.sync(serial, now, c1, c2) else {
            return invalid_code();
        };
        self.pin(serial, now, &found);
        if let Some(t) = self.tokens.get_mut(serial) {
            t.owner = Some(who.clone());
        }
        Answer::ok()
    }

    fn owned(&self, who: &Principal, serial: &str) -> bool {
        self.tokens
            .get(serial)
            .is_some_and(|t| t.owner.as_ref() == Some(who))
    }

    fn session(&mut self, now: Timestamp, who: &Principal, serial: &str, code: &str) -> Answer {
        if fobsim_core::Serial::new(serial).is_err() {
            return invalid("malformed serial number");
        }
        if !digits_only(code, 6..=8) {
            return self
                .code_shape(serial, code)
                .unwrap_or_else(|| denied(None));
        }
        if !self.tokens.contains_key(serial) {
            return denied(None);
        }
        if let Some(a) = self.code_shape(serial, code) {
            return a;
        }
        if !self.owned(who, serial) {
            return denied(None);
        }
        self.verify(serial, now, code)
    }
}

fn parse_setting(adapter: &str, k: &str, v: &str, rules: &mut Rules) -> Result<(), AdapterError> {
    let bad = |m: &str| AdapterError::Setting {
        adapter: adapter.into(),
        key: k.into(),
        message: m.into(),
    };
    let num = || v.parse::<u64>().map_err(|_| bad("expected a number"));
    match k {
        "auth_window_steps" => {
            rules.auth_window = i64::try_from(num()?).map_err(|_| bad("too large"))?
        }
        "sync_window_steps" => {
            rules.sync_window = i64::try_from(num()?).map_err(|_| bad("too large"))?
        }
        "max_devices_per_user" => {
            rules.max_devices = usize::try_from(num()?).map_err(|_| bad("too large"))?
        }
        "lockout_threshold" => {
            rules.lockout_threshold = u32::try_from(num()?).map_err(|_| bad("too large"))?
        }
        "lockout_period" => {
            let ms = fobsim_core::time::parse_duration_ms(v).map_err(|e| bad(&e.to_string()))?;
            rules.lockout_period_ms = u64::try_from(ms).map_err(|_| bad("negative"))?;
        }
        "max_submit_delay" => {
            let ms = fobsim_core::time::parse_duration_ms(v).map_err(|e| bad(&e.to_string()))?;
            if !(0..=3_600_000).contains(&ms) {
                return Err(bad("must be 0 to 1h"));
            }
            rules.max_submit_delay_ms = ms;
        }
        "drift_ppm" => {
            let ppm = num()?;
            if ppm > 10_000 {
                return Err(bad("must be at most 10000"));
            }
            rules.drift_ppm = i64::try_from(ppm).map_err(|_| bad("too large"))?;
        }
        _ => return Err(bad("not a setting of the model engine")),
    }
    Ok(())
}

/// A fresh, unassigned token for a seed record: time-based tokens only, as
/// the seed's hardware MFA is (TOTP); the message says why one is refused.
fn new_token(s: &fobsim_core::SeedRecord) -> Result<Token, String> {
    let serial = &s.serial;
    let Kind::Totp { period } = s.kind else {
        return Err(format!(
            "token {serial} is event-based (HOTP); time-based (TOTP) tokens only"
        ));
    };
    let totp = Totp::new(
        s.algorithm,
        s.secret.expose(),
        u32::from(s.digits),
        period,
        0,
    )
    .map_err(|e| format!("token {serial}: {e}"))?;
    Ok(Token {
        totp,
        digits: s.digits,
        owner: None,
        lo: 0,
        hi: 0,
        at: 0,
        last: None,
        run_start: None,
        run_base: None,
        quarantine: None,
        failures: 0,
        locked_until: None,
    })
}

impl ModelEngine {
    /// `import`: the rules table verifies time-based tokens only (as the
    /// engine: a vendor's HOTP record is refused); a serial is registered
    /// once.
    fn import(&mut self, s: &fobsim_core::SeedRecord) -> Answer {
        let serial = s.serial.to_string();
        if self.tokens.contains_key(&serial) {
            return err(
                "EntityAlreadyExists",
                409,
                None,
                format!("A hardware MFA token with serial number {serial} is already registered."),
            );
        }
        match new_token(s) {
            Ok(t) => {
                self.tokens.insert(serial, t);
                Answer::ok()
            }
            Err(message) => err("ValidationError", 400, None, message),
        }
    }
}

impl EngineAdapter for ModelEngine {
    fn name(&self) -> &str {
        "model"
    }

    fn capabilities(&self) -> &[Capability] {
        &self.caps
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        let caps = std::mem::take(&mut self.caps);
        *self = Self::with_capabilities(&caps);
        for (k, v) in &setup.settings {
            parse_setting("model", k, v, &mut self.rules)?;
        }
        self.root_password = setup.account.root_password.clone();
        self.root_email = setup.account.root_email.clone();
        self.root_phone = setup.account.root_phone.clone();
        for (u, p) in &setup.users {
            self.users.insert(u.clone(), p.clone());
        }
        for s in &setup.seeds {
            let serial = s.serial.to_string();
            if self.tokens.contains_key(&serial) {
                return Err(AdapterError::Setup {
                    adapter: "model".into(),
                    message: format!("import seeds: duplicate serial number {serial}"),
                });
            }
            let token = new_token(s).map_err(|message| AdapterError::Setup {
                adapter: "model".into(),
                message: format!("import seeds: {message}"),
            })?;
            self.tokens.insert(serial, token);
        }
        Ok(())
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        Ok(match request {
            Request::Enable {
                who,
                serial,
                code1,
                code2,
                channel,
            } => self.enable(now, who, serial, code1, code2, *channel),
            Request::Resync {
                who,
                serial,
                code1,
                code2,
            } => {
                if let Some(a) = self.pair_input(who, serial, code1, code2) {
                    return Ok(a);
                }
                if !self.owned(who, serial) {
                    return Ok(no_such_device(serial));
                }
                match self.sync(serial, now, code1, code2) {
                    Some(found) => {
                        self.pin(serial, now, &found);
                        Answer::ok()
                    }
                    None => invalid_code(),
                }
            }
            Request::Deactivate { who, serial } => {
                if fobsim_core::Serial::new(serial).is_err() {
                    return Ok(invalid("malformed serial number"));
                }
                if !self.exists(who) {
                    return Ok(Self::no_such_user(who));
                }
                if !self.owned(who, serial) {
                    return Ok(no_such_device(serial));
                }
                if let Some(t) = self.tokens.get_mut(serial) {
                    // Used codes stay used: the barrier, run and quarantine
                    // survive; what was learned about the clock does not.
                    t.owner = None;
                    t.lo = 0;
                    t.hi = 0;
                    t.at = 0;
                    t.failures = 0;
                    t.locked_until = None;
                }
                Answer::ok()
            }
            Request::ListDevices { who } => {
                if !self.exists(who) {
                    return Ok(Self::no_such_user(who));
                }
                Answer::Ok {
                    data: Reply::Devices {
                        devices: self.devices_of(who),
                    },
                }
            }
            Request::SignIn {
                who,
                password_ok,
                code,
            } => {
                if !self.exists(who) || !password_ok {
                    return Ok(err(
                        "AccessDenied",
                        403,
                        None,
                        "Your authentication information is incorrect.",
                    ));
                }
                let devices = self.devices_of(who);
                if devices.is_empty() {
                    return Ok(Answer::ok());
                }
                let Some(c) = code else {
                    if *who == Principal::Root && self.grant_until.is_some_and(|g| now < g) {
                        self.grant_until = None;
                        return Ok(Answer::ok());
                    }
                    return Ok(denied(None));
                };
                // Each device in turn, as the session check: the first
                // that accepts wins; a malformed code ends the search.
                let mut last = denied(None);
                for serial in devices {
                    let a = self.session(now, who, &serial, c);
                    match &a {
                        Answer::Ok { .. } => return Ok(a),
                        Answer::Error { code, .. } if code == "ValidationError" => return Ok(a),
                        Answer::Error { .. } => last = a,
                    }
                }
                last
            }
            Request::Session {
                who, serial, code, ..
            } => self.session(now, who, serial, code),
            Request::StartRecovery => {
                self.counter += 1;
                let e = format!("{:06}", (self.counter * 7_919) % 1_000_000);
                let p = format!("{:06}", (self.counter * 104_729) % 1_000_000);
                self.outbox.push(Message {
                    channel: "email".into(),
                    to: self.root_email.clone(),
                    code: e.clone(),
                });
                self.outbox.push(Message {
                    channel: "phone".into(),
                    to: self.root_phone.clone(),
                    code: p.clone(),
                });
                self.pending = Some((e, p, now.add_millis(600_000)));
                Answer::ok()
            }
            Request::Outbox => Answer::Ok {
                data: Reply::Messages {
                    messages: self.outbox.clone(),
                },
            },
            Request::CompleteRecovery {
                email_code,
                phone_code,
            } => match self.pending.take() {
                Some((e, p, until)) if now < until && *email_code == e && *phone_code == p => {
                    self.grant_until = Some(now.add_millis(900_000));
                    Answer::ok()
                }
                _ => err(
                    "AccessDenied",
                    403,
                    Some("RecoveryFailed"),
                    "verification failed",
                ),
            },
            Request::DeviceState { serial } => match self.tokens.get(serial) {
                Some(t) => Answer::Ok {
                    data: Reply::State {
                        locked: t.locked_until.is_some_and(|u| now < u),
                        assigned_to: t.owner.as_ref().map(ToString::to_string),
                    },
                },
                None => err(
                    "NoSuchEntity",
                    404,
                    None,
                    format!("MFA Device with serial number {serial} does not exist."),
                ),
            },
            Request::Import { seed } => self.import(seed),
        })
    }

    fn check_setting(&self, key: &str, value: &str) -> Result<(), String> {
        let mut rules = self.rules;
        parse_setting("model", key, value, &mut rules).map_err(|e| match e {
            AdapterError::Setting { message, .. } => message,
            other => other.to_string(),
        })
    }
}
