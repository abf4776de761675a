//! Test doubles shipped with the library (DESIGN principle 3).
//!
//! [`ModelEngine`] is a small, independent model of the DESIGN.md rules
//! table, written from the table and not from the engine's code: the suite
//! runs against it in the harness's own tests, and it stands in for any
//! adapter when testing the runner and the reports. `with_capabilities`
//! makes a weaker engine, to exercise `n/a` reporting.

use fobsim_core::{Channel, Principal};
use std::collections::HashMap;

use fobsim_core::{Hotp, Totp};
use fobsim_core::{Kind, Timestamp};

use crate::adapter::{
    AdapterError, Answer, Capability, EngineAdapter, Message, Reply, Request, Setup,
};

/// The numbers of the rules table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// ± steps around current + learned offset.
    pub auth_window: i64,
    /// ± steps searched at enable/resync.
    pub sync_window: i64,
    /// Devices per principal.
    pub max_devices: usize,
    /// Consecutive failures that lock (0 = never).
    pub lockout_threshold: u32,
    /// Lock period in ms.
    pub lockout_period_ms: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            auth_window: 1,
            sync_window: 1000,
            max_devices: 1,
            lockout_threshold: 5,
            lockout_period_ms: 15 * 60 * 1000,
        }
    }
}

enum Gen {
    Totp(Totp),
    Hotp(Hotp),
}

struct Token {
    generator: Gen,
    digits: u8,
    owner: Option<Principal>,
    offset: i64,
    last: Option<u64>,
    failures: u32,
    locked_until: Option<Timestamp>,
}

/// An in-memory model of the rules table, usable as an [`EngineAdapter`].
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

    fn code_at(t: &Token, step: i64) -> Option<String> {
        let s = u64::try_from(step).ok()?;
        Some(match &t.generator {
            Gen::Totp(g) => g.code_for_step(s).to_string(),
            Gen::Hotp(h) => h.code(s).to_string(),
        })
    }

    fn current(t: &Token, now: Timestamp) -> i64 {
        match &t.generator {
            Gen::Totp(g) => g
                .step_at(now.as_secs())
                .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX)),
            Gen::Hotp(_) => 0,
        }
    }

    fn exists(&self, who: &Principal) -> bool {
        match who {
            Principal::Root => true,
            Principal::User(u) => self.users.contains_key(u),
        }
    }

    fn sync(&self, serial: &str, now: Timestamp, c1: &str, c2: &str) -> Option<i64> {
        let t = self.tokens.get(serial)?;
        let cur = Self::current(t, now);
        let w = self.rules.sync_window;
        // Codes at or below the last accepted step were used: a replay,
        // also when a deactivated device is enabled again.
        let used = |s: i64| {
            t.last
                .is_some_and(|l| s <= i64::try_from(l).unwrap_or(i64::MAX))
        };
        // Nearest first, so ties resolve towards the current step.
        (0..=w).flat_map(|d| [cur - d, cur + d]).find(|&s| {
            !used(s)
                && Self::code_at(t, s).as_deref() == Some(c1)
                && Self::code_at(t, s + 1).as_deref() == Some(c2)
        })
    }

    fn well_formed(&self, serial: &str, codes: &[&str]) -> Option<Answer> {
        let digits = self.tokens.get(serial).map_or(6, |t| t.digits);
        for c in codes {
            if c.len() != usize::from(digits) || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Some(err(
                    "ValidationError",
                    400,
                    None,
                    format!("code must be {digits} digits"),
                ));
            }
        }
        None
    }

    fn verify(&mut self, serial: &str, now: Timestamp, code: &str) -> Answer {
        // A code that is not the token's digit count of digits is malformed
        // input (as the engine answers it), not a wrong code.
        if let Some(malformed) = self.well_formed(serial, &[code]) {
            return malformed;
        }
        let rules = self.rules;
        let Some(t) = self.tokens.get_mut(serial) else {
            return denied(None);
        };
        if t.locked_until.is_some_and(|u| now < u) {
            return denied(Some("DeviceLocked"));
        }
        let cur = Self::current(t, now);
        let centre = cur + t.offset;
        // The highest matching step: if two steps in the window share the
        // code, taking the lower one would let the same code be accepted
        // again (RFC 6238 section 5.2) and teach a wrong offset.
        let hit = (-rules.auth_window..=rules.auth_window)
            .rev()
            .map(|d| centre + d)
            .filter(|&s| {
                s >= 0
                    && t.last
                        .is_none_or(|l| s > i64::try_from(l).unwrap_or(i64::MAX))
            })
            .find(|&s| Self::code_at(t, s).as_deref() == Some(code));
        match hit {
            Some(s) => {
                t.last = u64::try_from(s).ok();
                t.offset = s - cur;
                t.failures = 0;
                t.locked_until = None;
                Answer::ok()
            }
            None => {
                t.failures += 1;
                if rules.lockout_threshold > 0 && t.failures >= rules.lockout_threshold {
                    t.failures = 0;
                    t.locked_until = Some(
                        now.add_millis(i64::try_from(rules.lockout_period_ms).unwrap_or(i64::MAX)),
                    );
                }
                denied(None)
            }
        }
    }

    fn device_of(&self, who: &Principal) -> Option<String> {
        let mut v: Vec<&String> = self
            .tokens
            .iter()
            .filter(|(_, t)| t.owner.as_ref() == Some(who))
            .map(|(s, _)| s)
            .collect();
        v.sort();
        v.first().map(|s| (*s).clone())
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
        if !self.exists(who) {
            return err(
                "NoSuchEntity",
                404,
                None,
                format!("The user with name {who} cannot be found."),
            );
        }
        let Some(t) = self.tokens.get(serial) else {
            return err(
                "NoSuchEntity",
                404,
                None,
                format!("MFA Device with serial number {serial} does not exist."),
            );
        };
        if t.owner.is_some() {
            return err(
                "EntityAlreadyExists",
                409,
                None,
                "MFA Device is already in use.",
            );
        }
        let count = self
            .tokens
            .values()
            .filter(|t| t.owner.as_ref() == Some(who))
            .count();
        if count >= self.rules.max_devices {
            return err(
                "LimitExceeded",
                409,
                None,
                "Cannot exceed quota for MfaDevicesPerUser",
            );
        }
        if let Some(a) = self.well_formed(serial, &[c1, c2]) {
            return a;
        }
        let Some(s) = self.sync(serial, now, c1, c2) else {
            return err(
                "InvalidAuthenticationCode",
                403,
                None,
                "Authentication code for the MFA device is not valid.",
            );
        };
        if let Some(t) = self.tokens.get_mut(serial) {
            let cur = Self::current(t, now);
            t.owner = Some(who.clone());
            t.offset = s + 1 - cur;
            t.last = u64::try_from(s + 1).ok();
            t.failures = 0;
            t.locked_until = None;
        }
        Answer::ok()
    }

    fn owned(&self, who: &Principal, serial: &str) -> Option<Answer> {
        match self.tokens.get(serial) {
            Some(t) if t.owner.as_ref() == Some(who) => None,
            _ => Some(err(
                "NoSuchEntity",
                404,
                None,
                format!("MFA Device with serial number {serial} does not exist."),
            )),
        }
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
        _ => return Err(bad("not a setting of the model engine")),
    }
    Ok(())
}

/// A fresh, unassigned token for a seed record.
fn new_token(s: &fobsim_core::SeedRecord) -> Result<Token, fobsim_core::OtpError> {
    let generator = match s.kind {
        Kind::Totp { period } => Gen::Totp(Totp::new(
            s.algorithm,
            s.secret.expose(),
            u32::from(s.digits),
            period,
            0,
        )?),
        Kind::Hotp => Gen::Hotp(Hotp::new(
            s.algorithm,
            s.secret.expose(),
            u32::from(s.digits),
        )?),
    };
    Ok(Token {
        generator,
        digits: s.digits,
        owner: None,
        offset: 0,
        last: None,
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
        if s.kind == Kind::Hotp {
            return err(
                "ValidationError",
                400,
                None,
                format!("token {serial} is event-based (HOTP); time-based (TOTP) tokens only"),
            );
        }
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
            Err(e) => err("ValidationError", 400, None, format!("token {serial}: {e}")),
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
            let token = new_token(s).map_err(|e| AdapterError::Setup {
                adapter: "model".into(),
                message: e.to_string(),
            })?;
            self.tokens.insert(s.serial.to_string(), token);
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
                if let Some(a) = self.owned(who, serial) {
                    return Ok(a);
                }
                if let Some(a) = self.well_formed(serial, &[code1, code2]) {
                    return Ok(a);
                }
                match self.sync(serial, now, code1, code2) {
                    Some(s) => {
                        if let Some(t) = self.tokens.get_mut(serial) {
                            let cur = Self::current(t, now);
                            t.offset = s + 1 - cur;
                            t.last = u64::try_from(s + 1).ok();
                            t.failures = 0;
                            t.locked_until = None;
                        }
                        Answer::ok()
                    }
                    None => err(
                        "InvalidAuthenticationCode",
                        403,
                        None,
                        "Authentication code for the MFA device is not valid.",
                    ),
                }
            }
            Request::Deactivate { who, serial } => {
                if let Some(a) = self.owned(who, serial) {
                    return Ok(a);
                }
                if let Some(t) = self.tokens.get_mut(serial) {
                    t.owner = None;
                    t.failures = 0;
                    t.locked_until = None;
                }
                Answer::ok()
            }
            Request::ListDevices { who } => {
                if !self.exists(who) {
                    return Ok(err(
                        "NoSuchEntity",
                        404,
                        None,
                        format!("The user with name {who} cannot be found."),
                    ));
                }
                let mut devices: Vec<String> = self
                    .tokens
                    .iter()
                    .filter(|(_, t)| t.owner.as_ref() == Some(who))
                    .map(|(s, _)| s.clone())
                    .collect();
                devices.sort();
                Answer::Ok {
                    data: Reply::Devices { devices },
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
                match (self.device_of(who), code) {
                    (None, _) => Answer::ok(),
                    (Some(_), None) => {
                        if *who == Principal::Root && self.grant_until.is_some_and(|g| now < g) {
                            self.grant_until = None;
                            Answer::ok()
                        } else {
                            denied(None)
                        }
                    }
                    (Some(serial), Some(c)) => self.verify(&serial, now, c),
                }
            }
            Request::Session {
                who, serial, code, ..
            } => {
                if self.owned(who, serial).is_some() {
                    return Ok(denied(None));
                }
                self.verify(serial, now, code)
            }
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
