//! The exec adapter protocol, version [`VERSION`]: JSON lines between
//! fobsim and an adapter program (`docs/adapter-protocol.md`). Sans-IO:
//! building the messages fobsim sends, reading the answers it gets, and the
//! reverse for the adapter side ([`super::serve`]).
//!
//! fobsim → adapter, one JSON object per line, each with a fresh `id` and
//! an `op`: `hello`, `set_time`, `reset`, then the operations of the
//! harness's [`Request`] (`enable`, `resync`, `deactivate`, `list_devices`,
//! `sign_in`, `session`, `start_recovery`, `outbox`, `complete_recovery`,
//! `device_state`). Adapter → fobsim, one line per message:
//! `{"id": ID, "outcome": "ok" | "rejected" | "error", "detail": ...}`.

use std::collections::HashMap;

use fobsim_core::{Algorithm, Channel, Kind, Principal, Secret, SeedRecord, Serial, Timestamp};
use fobsim_harness::adapter::{
    Account, AdapterError, Answer, Capability, Message, Reply, Request, Setup,
};
use serde_json::{Map, Value, json};

/// The protocol version this fobsim speaks.
pub const VERSION: u64 = 1;

/// The longest line either side accepts (1 MiB).
pub const MAX_LINE: usize = 1 << 20;

/// How an answer turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (data in `detail` for `list_devices`, `outbox`, `device_state`).
    Ok,
    /// The engine refused (`detail`: code, status, kind, message).
    Rejected,
    /// The adapter or its engine broke (`detail`: why, a string).
    Error,
}

impl Outcome {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
        }
    }
}

/// One answer line, checked for shape only.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The id of the message it answers.
    pub id: u64,
    /// How it turned out.
    pub outcome: Outcome,
    /// `null` when absent.
    pub detail: Value,
}

/// Read one answer line.
///
/// # Errors
/// What is wrong with the line (not JSON, not an object, no numeric `id`,
/// an unknown `outcome`).
pub fn parse_answer(line: &str) -> Result<Incoming, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(mut o) = v else {
        return Err("not a JSON object".into());
    };
    let id = o
        .get("id")
        .and_then(Value::as_u64)
        .ok_or("no numeric \"id\"")?;
    let outcome = match o.get("outcome").and_then(Value::as_str) {
        Some("ok") => Outcome::Ok,
        Some("rejected") => Outcome::Rejected,
        Some("error") => Outcome::Error,
        Some(other) => {
            return Err(format!(
                "unknown outcome {other:?} (expected \"ok\", \"rejected\" or \"error\")"
            ));
        }
        None => return Err("no \"outcome\"".into()),
    };
    let detail = o.remove("detail").unwrap_or(Value::Null);
    Ok(Incoming {
        id,
        outcome,
        detail,
    })
}

/// `detail` as text, for `error` answers (a string, or any JSON shown as is).
#[must_use]
pub fn detail_text(detail: &Value) -> String {
    match detail {
        Value::String(s) => s.clone(),
        Value::Null => "(no detail)".into(),
        other => other.to_string(),
    }
}

/// The capability names fobsim knows, in [`Capability::ALL`] order.
#[must_use]
pub fn capability_names() -> Vec<&'static str> {
    Capability::ALL.iter().map(|c| c.as_str()).collect()
}

/// A capability by its wire name.
#[must_use]
pub fn capability(name: &str) -> Option<Capability> {
    Capability::ALL.into_iter().find(|c| c.as_str() == name)
}

/// `hello`: the protocol version and the capabilities fobsim knows.
#[must_use]
pub fn hello(id: u64) -> Value {
    json!({
        "id": id,
        "op": "hello",
        "protocol": VERSION,
        "fobsim": env!("CARGO_PKG_VERSION"),
        "capabilities": capability_names(),
    })
}

/// What an adapter said in its `hello` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The engine's name (for messages).
    pub engine: String,
    /// What it can express.
    pub capabilities: Vec<Capability>,
    /// Its per-request timeout, if it asked for one.
    pub timeout_ms: Option<u64>,
}

/// Read the `detail` of an `ok` answer to `hello`.
///
/// # Errors
/// A wrong protocol version, an unknown capability name, a malformed field.
pub fn parse_hello(detail: &Value) -> Result<Hello, String> {
    let o = detail.as_object().ok_or(
        "the hello answer's detail must be an object with \"protocol\" and \"capabilities\"",
    )?;
    match o.get("protocol").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "the adapter speaks protocol {v}; this fobsim speaks protocol {VERSION}"
            ));
        }
        None => return Err("the hello answer has no numeric detail.protocol".into()),
    }
    let list = o
        .get("capabilities")
        .and_then(Value::as_array)
        .ok_or("the hello answer has no detail.capabilities list")?;
    let mut capabilities = Vec::new();
    for c in list {
        let name = c.as_str().ok_or("detail.capabilities must be strings")?;
        let cap = capability(name).ok_or_else(|| {
            format!(
                "unknown capability {name:?} (this fobsim knows: {})",
                capability_names().join(", ")
            )
        })?;
        if !capabilities.contains(&cap) {
            capabilities.push(cap);
        }
    }
    let engine = match o.get("engine") {
        None | Some(Value::Null) => "unnamed".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("detail.engine must be a string".into()),
    };
    let timeout_ms = match o.get("timeout_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|t| *t > 0)
                .ok_or("detail.timeout_ms must be a positive integer")?,
        ),
    };
    Ok(Hello {
        engine,
        capabilities,
        timeout_ms,
    })
}

/// `set_time`: the scenario's true time, RFC 3339 and Unix milliseconds.
#[must_use]
pub fn set_time(id: u64, now: Timestamp) -> Value {
    json!({"id": id, "op": "set_time", "now": now.to_string(), "unix_ms": now.as_millis()})
}

fn seed_json(s: &SeedRecord) -> Value {
    let mut o = Map::new();
    o.insert("serial".into(), s.serial.as_str().into());
    match s.kind {
        Kind::Totp { period } => {
            o.insert("type".into(), "totp".into());
            o.insert("period".into(), period.into());
        }
        Kind::Hotp => {
            o.insert("type".into(), "hotp".into());
        }
    }
    o.insert("algorithm".into(), s.algorithm.as_str().into());
    o.insert("digits".into(), s.digits.into());
    o.insert("secret_hex".into(), s.secret.to_hex().into());
    o.insert("secret_base32".into(), s.secret.to_base32().into());
    o.insert("counter".into(), s.counter.into());
    Value::Object(o)
}

/// `reset`: a fresh engine with the account, users, seed records and
/// settings of a scenario.
#[must_use]
pub fn reset(id: u64, setup: &Setup) -> Value {
    let a = &setup.account;
    let settings: Map<String, Value> = setup
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": id,
        "op": "reset",
        "scenario": setup.scenario,
        "account": {
            "id": a.id,
            "alias": a.alias,
            "root_email": a.root_email,
            "root_phone": a.root_phone,
            "root_password": a.root_password,
        },
        "users": setup.users.iter().map(|(n, p)| json!({"name": n, "password": p})).collect::<Vec<_>>(),
        "access_keys": setup
            .access_keys
            .iter()
            .map(|(n, k)| (n.clone(), Value::from(*k)))
            .collect::<Map<String, Value>>(),
        "seeds": setup.seeds.iter().map(seed_json).collect::<Vec<_>>(),
        "settings": settings,
    })
}

/// The passwords of a scenario, to type at `sign_in`.
#[derive(Debug, Clone, Default)]
pub struct Passwords {
    root: String,
    users: HashMap<String, String>,
}

impl Passwords {
    /// The passwords of `setup`.
    #[must_use]
    pub fn of(setup: &Setup) -> Self {
        Passwords {
            root: setup.account.root_password.clone(),
            users: setup.users.iter().cloned().collect(),
        }
    }

    /// What is typed: the right password, or a wrong one (the right one
    /// with `-wrong` appended, as the built-in adapter types it).
    #[must_use]
    pub fn typed(&self, who: &Principal, ok: bool) -> String {
        let right = match who {
            Principal::Root => self.root.clone(),
            Principal::User(u) => self.users.get(u).cloned().unwrap_or_default(),
        };
        if ok { right } else { format!("{right}-wrong") }
    }
}

fn channel_str(c: Channel) -> &'static str {
    match c {
        Channel::Console => "console",
        Channel::Api => "api",
    }
}

/// The operation message for `request`.
#[must_use]
pub fn operation(id: u64, request: &Request, passwords: &Passwords) -> Value {
    let mut v = match request {
        Request::Enable {
            who,
            serial,
            code1,
            code2,
            channel,
        } => json!({"op": "enable", "who": who.to_string(), "serial": serial,
                    "code1": code1, "code2": code2, "channel": channel_str(*channel)}),
        Request::Resync {
            who,
            serial,
            code1,
            code2,
        } => json!({"op": "resync", "who": who.to_string(), "serial": serial,
                    "code1": code1, "code2": code2}),
        Request::Deactivate { who, serial } => {
            json!({"op": "deactivate", "who": who.to_string(), "serial": serial})
        }
        Request::ListDevices { who } => json!({"op": "list_devices", "who": who.to_string()}),
        Request::SignIn {
            who,
            password_ok,
            code,
        } => json!({"op": "sign_in", "who": who.to_string(),
                    "password": passwords.typed(who, *password_ok),
                    "password_ok": password_ok, "code": code}),
        Request::Session {
            who,
            key,
            serial,
            code,
        } => {
            json!({"op": "session", "who": who.to_string(), "key": key, "serial": serial, "code": code})
        }
        Request::Import { seed } => json!({"op": "import", "seed": seed_json(seed)}),
        Request::StartRecovery => json!({"op": "start_recovery"}),
        Request::Outbox => json!({"op": "outbox"}),
        Request::CompleteRecovery {
            email_code,
            phone_code,
        } => json!({"op": "complete_recovery", "email_code": email_code,
                    "phone_code": phone_code}),
        Request::DeviceState { serial } => json!({"op": "device_state", "serial": serial}),
    };
    if let Value::Object(o) = &mut v {
        o.insert("id".into(), id.into());
    }
    v
}

/// The wire name of a request's operation.
#[must_use]
pub fn op_name(request: &Request) -> &'static str {
    match request {
        Request::Enable { .. } => "enable",
        Request::Resync { .. } => "resync",
        Request::Deactivate { .. } => "deactivate",
        Request::ListDevices { .. } => "list_devices",
        Request::SignIn { .. } => "sign_in",
        Request::Session { .. } => "session",
        Request::StartRecovery => "start_recovery",
        Request::Outbox => "outbox",
        Request::CompleteRecovery { .. } => "complete_recovery",
        Request::DeviceState { .. } => "device_state",
        Request::Import { .. } => "import",
    }
}

fn field<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    o.get(key).ok_or_else(|| format!("no detail.{key}"))
}

fn string(o: &Map<String, Value>, key: &str) -> Result<String, String> {
    field(o, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("detail.{key} must be a string"))
}

fn strings(o: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    field(o, key)?
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
        .ok_or_else(|| format!("detail.{key} must be a list of strings"))
}

/// The [`Answer`] to `request` from an `ok` or `rejected` answer.
///
/// # Errors
/// A `detail` of the wrong shape (what is wrong with it).
pub fn to_answer(request: &Request, outcome: Outcome, detail: &Value) -> Result<Answer, String> {
    if outcome == Outcome::Error {
        return Err(detail_text(detail));
    }
    let empty = Map::new();
    let o = match detail {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => return Err("detail must be an object".into()),
    };
    match outcome {
        Outcome::Error => Err(detail_text(detail)),
        Outcome::Rejected => {
            let status = field(o, "status")?
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("detail.status must be an HTTP status number")?;
            let kind = match o.get("kind") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err("detail.kind must be a string or null".into()),
            };
            Ok(Answer::Error {
                code: string(o, "code")?,
                status,
                kind,
                message: string(o, "message")?,
            })
        }
        Outcome::Ok => {
            let data = match request {
                Request::ListDevices { .. } => Reply::Devices {
                    devices: strings(o, "devices")?,
                },
                Request::Outbox => {
                    let list = field(o, "messages")?
                        .as_array()
                        .ok_or("detail.messages must be a list")?;
                    let mut messages = Vec::with_capacity(list.len());
                    for m in list {
                        let m = m.as_object().ok_or("detail.messages[] must be objects")?;
                        messages.push(Message {
                            channel: string(m, "channel")?,
                            to: string(m, "to")?,
                            code: string(m, "code")?,
                        });
                    }
                    Reply::Messages { messages }
                }
                Request::DeviceState { .. } => Reply::State {
                    locked: field(o, "locked")?
                        .as_bool()
                        .ok_or("detail.locked must be true or false")?,
                    assigned_to: match o.get("assigned_to") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(_) => return Err("detail.assigned_to must be a string or null".into()),
                    },
                },
                _ => Reply::None,
            };
            Ok(Answer::Ok { data })
        }
    }
}

/// An answer line for the adapter side.
#[must_use]
pub fn answer_line(id: &Value, outcome: Outcome, detail: Value) -> String {
    json!({"id": id, "outcome": outcome.as_str(), "detail": detail}).to_string()
}

/// The `detail` of an [`Answer`] (adapter side).
#[must_use]
pub fn answer_detail(answer: &Answer) -> (Outcome, Value) {
    match answer {
        Answer::Ok { data } => (
            Outcome::Ok,
            match data {
                Reply::None => Value::Null,
                Reply::Devices { devices } => json!({"devices": devices}),
                Reply::Messages { messages } => json!({"messages": messages}),
                Reply::State {
                    locked,
                    assigned_to,
                } => json!({"locked": locked, "assigned_to": assigned_to}),
            },
        ),
        Answer::Error {
            code,
            status,
            kind,
            message,
        } => (
            Outcome::Rejected,
            json!({"code": code, "status": status, "kind": kind, "message": message}),
        ),
    }
}

/// A message fobsim sent, as the adapter side reads it.
#[derive(Debug, Clone)]
pub enum Command {
    /// `hello`.
    Hello {
        /// The protocol version fobsim speaks.
        protocol: u64,
    },
    /// `set_time`.
    SetTime(Timestamp),
    /// `reset` (its `start` is the time of the `set_time` before it).
    Reset(Box<Setup>),
    /// An operation.
    Operation(Request),
}

fn req_str(o: &Map<String, Value>, key: &str) -> Result<String, String> {
    o.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("\"{key}\" must be a string"))
}

fn who(o: &Map<String, Value>) -> Result<Principal, String> {
    req_str(o, "who").map(|w| Principal::from_name(&w))
}

fn parse_seed(v: &Value) -> Result<SeedRecord, String> {
    let o = v.as_object().ok_or("seeds[] must be objects")?;
    let serial = Serial::new(&req_str(o, "serial")?).map_err(|e| e.to_string())?;
    let kind = match req_str(o, "type")?.as_str() {
        "totp" => Kind::Totp {
            period: o
                .get("period")
                .and_then(Value::as_u64)
                .ok_or("a totp seed needs a numeric \"period\"")?,
        },
        "hotp" => Kind::Hotp,
        other => return Err(format!("unknown seed type {other:?}")),
    };
    let algorithm: Algorithm = req_str(o, "algorithm")?
        .parse()
        .map_err(|e: fobsim_core::OtpError| e.to_string())?;
    let digits = o
        .get("digits")
        .and_then(Value::as_u64)
        .and_then(|d| u8::try_from(d).ok())
        .ok_or("\"digits\" must be a small number")?;
    let secret = Secret::from_hex(&req_str(o, "secret_hex")?).map_err(|e| e.to_string())?;
    let counter = o.get("counter").and_then(Value::as_u64).unwrap_or(0);
    Ok(SeedRecord {
        serial,
        kind,
        algorithm,
        digits,
        secret,
        counter,
    })
}

fn parse_reset(o: &Map<String, Value>, start: Timestamp) -> Result<Setup, String> {
    let a = o
        .get("account")
        .and_then(Value::as_object)
        .ok_or("\"account\" must be an object")?;
    let account = Account {
        id: req_str(a, "id")?,
        alias: req_str(a, "alias")?,
        root_email: req_str(a, "root_email")?,
        root_phone: req_str(a, "root_phone")?,
        root_password: req_str(a, "root_password")?,
    };
    let users = o
        .get("users")
        .and_then(Value::as_array)
        .ok_or("\"users\" must be a list")?
        .iter()
        .map(|u| {
            let u = u.as_object().ok_or("users[] must be objects")?;
            Ok((req_str(u, "name")?, req_str(u, "password")?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let seeds = o
        .get("seeds")
        .and_then(Value::as_array)
        .ok_or("\"seeds\" must be a list")?
        .iter()
        .map(parse_seed)
        .collect::<Result<Vec<_>, String>>()?;
    let settings = match o.get("settings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| format!("setting {k:?} must be a string"))
            })
            .collect::<Result<Vec<_>, String>>()?,
        Some(_) => return Err("\"settings\" must be an object".into()),
    };
    let access_keys = match o.get("access_keys") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n >= 1)
                    .map(|n| (k.clone(), n))
                    .ok_or_else(|| format!("access_keys {k:?} must be a count of 1 or more"))
            })
            .collect::<Result<Vec<_>, String>>()?,
        Some(_) => return Err("\"access_keys\" must be an object".into()),
    };
    Ok(Setup {
        scenario: req_str(o, "scenario")?,
        account,
        users,
        access_keys,
        seeds,
        settings,
        start,
    })
}

/// Read a message fobsim sent (adapter side). `now` is the time of the
/// last `set_time` (`reset` takes it as the scenario's start).
///
/// # Errors
/// What is wrong with the message.
pub fn parse_command(o: &Map<String, Value>, now: Option<Timestamp>) -> Result<Command, String> {
    let op = req_str(o, "op")?;
    let pair = |o: &Map<String, Value>| -> Result<(Principal, String, String, String), String> {
        Ok((
            who(o)?,
            req_str(o, "serial")?,
            req_str(o, "code1")?,
            req_str(o, "code2")?,
        ))
    };
    Ok(Command::Operation(match op.as_str() {
        "hello" => {
            return Ok(Command::Hello {
                protocol: o.get("protocol").and_then(Value::as_u64).unwrap_or(0),
            });
        }
        "set_time" => {
            let ms = o
                .get("unix_ms")
                .and_then(Value::as_u64)
                .ok_or("\"unix_ms\" must be a number")?;
            return Ok(Command::SetTime(Timestamp::from_millis(ms)));
        }
        "reset" => {
            let start = now.ok_or("reset before any set_time")?;
            return parse_reset(o, start).map(|s| Command::Reset(Box::new(s)));
        }
        "enable" => {
            let (who, serial, code1, code2) = pair(o)?;
            let channel = match req_str(o, "channel")?.as_str() {
                "console" => Channel::Console,
                "api" => Channel::Api,
                other => return Err(format!("unknown channel {other:?}")),
            };
            Request::Enable {
                who,
                serial,
                code1,
                code2,
                channel,
            }
        }
        "resync" => {
            let (who, serial, code1, code2) = pair(o)?;
            Request::Resync {
                who,
                serial,
                code1,
                code2,
            }
        }
        "deactivate" => Request::Deactivate {
            who: who(o)?,
            serial: req_str(o, "serial")?,
        },
        "list_devices" => Request::ListDevices { who: who(o)? },
        "sign_in" => Request::SignIn {
            who: who(o)?,
            password_ok: o
                .get("password_ok")
                .and_then(Value::as_bool)
                .ok_or("\"password_ok\" must be true or false")?,
            code: match o.get("code") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err("\"code\" must be a string or null".into()),
            },
        },
        "session" => Request::Session {
            who: who(o)?,
            key: match o.get("key") {
                None | Some(Value::Null) => 1,
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n >= 1)
                    .ok_or("\"key\" must be a number of 1 or more")?,
            },
            serial: req_str(o, "serial")?,
            code: req_str(o, "code")?,
        },
        "start_recovery" => Request::StartRecovery,
        "outbox" => Request::Outbox,
        "complete_recovery" => Request::CompleteRecovery {
            email_code: req_str(o, "email_code")?,
            phone_code: req_str(o, "phone_code")?,
        },
        "import" => Request::Import {
            seed: parse_seed(o.get("seed").ok_or("\"import\" needs a \"seed\"")?)?,
        },
        "device_state" => Request::DeviceState {
            serial: req_str(o, "serial")?,
        },
        other => return Err(format!("unknown op {other:?}")),
    }))
}

/// The error a [`Command`] could not be carried out with, as an answer
/// (adapter side): a bad setting is `rejected` with `{setting, message}`,
/// anything else `error`.
#[must_use]
pub fn adapter_error_detail(e: &AdapterError) -> (Outcome, Value) {
    match e {
        AdapterError::Setting { key, message, .. } => (
            Outcome::Rejected,
            json!({"setting": key, "message": message}),
        ),
        other => (Outcome::Error, Value::String(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            scenario: "s".into(),
            account: Account::default(),
            users: vec![("alice".into(), "pw-a".into())],
            access_keys: vec![("alice".into(), 2)],
            seeds: vec![SeedRecord {
                serial: Serial::new("GAHT00000001").unwrap(),
                kind: Kind::Totp { period: 30 },
                algorithm: Algorithm::Sha256,
                digits: 8,
                secret: Secret::from_hex("3132333435363738393031323334353637383930").unwrap(),
                counter: 0,
            }],
            settings: vec![("lockout_threshold".into(), "3".into())],
            start: Timestamp::from_secs(1_767_225_600),
        }
    }

    fn requests() -> Vec<Request> {
        let alice = Principal::user("alice");
        vec![
            Request::Enable {
                who: alice.clone(),
                serial: "GAHT00000001".into(),
                code1: "123456".into(),
                code2: "654321".into(),
                channel: Channel::Api,
            },
            Request::Resync {
                who: Principal::Root,
                serial: "S".into(),
                code1: "1".into(),
                code2: "2".into(),
            },
            Request::Deactivate {
                who: alice.clone(),
                serial: "S".into(),
            },
            Request::ListDevices { who: alice.clone() },
            Request::SignIn {
                who: alice.clone(),
                password_ok: false,
                code: None,
            },
            Request::SignIn {
                who: Principal::Root,
                password_ok: true,
                code: Some("123456".into()),
            },
            Request::Session {
                who: alice.clone(),
                key: 2,
                serial: "S".into(),
                code: "000000".into(),
            },
            Request::Import {
                seed: setup().seeds[0].clone(),
            },
            Request::StartRecovery,
            Request::Outbox,
            Request::CompleteRecovery {
                email_code: "1".into(),
                phone_code: "2".into(),
            },
            Request::DeviceState { serial: "S".into() },
        ]
    }

    #[test]
    fn every_request_survives_the_wire() {
        let pw = Passwords::of(&setup());
        for r in requests() {
            let v = operation(7, &r, &pw);
            assert_eq!(v["id"], 7);
            assert_eq!(v["op"], op_name(&r));
            let Command::Operation(back) = parse_command(v.as_object().unwrap(), None).unwrap()
            else {
                panic!("not an operation: {v}");
            };
            assert_eq!(back, r);
        }
    }

    #[test]
    fn sign_in_types_the_password() {
        let pw = Passwords::of(&setup());
        let v = operation(
            1,
            &Request::SignIn {
                who: Principal::user("alice"),
                password_ok: false,
                code: None,
            },
            &pw,
        );
        assert_eq!(v["password"], "pw-a-wrong");
        assert_eq!(v["code"], Value::Null);
        let v = operation(
            1,
            &Request::SignIn {
                who: Principal::Root,
                password_ok: true,
                code: None,
            },
            &pw,
        );
        assert_eq!(v["password"], "Root-Password-1");
    }

    #[test]
    fn reset_survives_the_wire() {
        let s = setup();
        let v = reset(3, &s);
        assert_eq!(
            v["seeds"][0]["secret_base32"],
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(v["seeds"][0]["algorithm"], "sha256");
        assert_eq!(v["settings"]["lockout_threshold"], "3");
        let Command::Reset(back) = parse_command(v.as_object().unwrap(), Some(s.start)).unwrap()
        else {
            panic!("not a reset");
        };
        assert_eq!(back.scenario, s.scenario);
        assert_eq!(back.account, s.account);
        assert_eq!(back.users, s.users);
        assert_eq!(back.seeds, s.seeds);
        assert_eq!(back.settings, s.settings);
        assert_eq!(back.start, s.start);
        assert!(parse_command(v.as_object().unwrap(), None).is_err());
    }

    #[test]
    fn set_time_carries_both_forms() {
        let v = set_time(2, Timestamp::from_millis(1_767_225_630_250));
        assert_eq!(v["now"], "2026-01-01T00:00:30.250Z");
        assert_eq!(v["unix_ms"], 1_767_225_630_250u64);
    }

    #[test]
    fn answers_map_to_the_transcript() {
        let list = Request::ListDevices {
            who: Principal::Root,
        };
        let a = to_answer(&list, Outcome::Ok, &json!({"devices": ["A", "B"]})).unwrap();
        assert_eq!(
            a,
            Answer::Ok {
                data: Reply::Devices {
                    devices: vec!["A".into(), "B".into()]
                }
            }
        );
        assert!(to_answer(&list, Outcome::Ok, &json!({})).is_err());
        let en = &requests()[0];
        assert_eq!(
            to_answer(en, Outcome::Ok, &Value::Null).unwrap(),
            Answer::ok()
        );
        let rej = json!({"code": "InvalidAuthenticationCode", "status": 403, "message": "no"});
        assert_eq!(
            to_answer(en, Outcome::Rejected, &rej).unwrap(),
            Answer::Error {
                code: "InvalidAuthenticationCode".into(),
                status: 403,
                kind: None,
                message: "no".into()
            }
        );
        assert!(to_answer(en, Outcome::Rejected, &json!({"code": "X", "message": "m"})).is_err());
        assert_eq!(
            to_answer(en, Outcome::Error, &json!("engine down")).unwrap_err(),
            "engine down"
        );
        // Both directions agree for every answer shape.
        for (r, a) in [
            (en.clone(), Answer::ok()),
            (
                list.clone(),
                Answer::Ok {
                    data: Reply::Devices { devices: vec![] },
                },
            ),
            (
                Request::Outbox,
                Answer::Ok {
                    data: Reply::Messages {
                        messages: vec![Message {
                            channel: "email".into(),
                            to: "root@example.com".into(),
                            code: "12345678".into(),
                        }],
                    },
                },
            ),
            (
                Request::DeviceState { serial: "S".into() },
                Answer::Ok {
                    data: Reply::State {
                        locked: true,
                        assigned_to: Some("alice".into()),
                    },
                },
            ),
            (
                en.clone(),
                Answer::Error {
                    code: "AccessDenied".into(),
                    status: 403,
                    kind: Some("DeviceLocked".into()),
                    message: "locked".into(),
                },
            ),
        ] {
            let (o, d) = answer_detail(&a);
            assert_eq!(to_answer(&r, o, &d).unwrap(), a);
        }
    }

    #[test]
    fn answer_lines_are_checked() {
        assert_eq!(
            parse_answer(r#"{"id":4,"outcome":"ok"}"#).unwrap(),
            Incoming {
                id: 4,
                outcome: Outcome::Ok,
                detail: Value::Null
            }
        );
        for bad in [
            "hello",
            "[1]",
            r#"{"outcome":"ok"}"#,
            r#"{"id":"4","outcome":"ok"}"#,
            r#"{"id":4}"#,
            r#"{"id":4,"outcome":"fine"}"#,
        ] {
            assert!(parse_answer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hello_answers_are_checked() {
        let ok = parse_hello(&json!({"protocol": 1, "engine": "e",
            "capabilities": ["enable-two-codes", "session-mfa"], "timeout_ms": 500}))
        .unwrap();
        assert_eq!(
            ok.capabilities,
            vec![Capability::EnableTwoCodes, Capability::SessionMfa]
        );
        assert_eq!(ok.timeout_ms, Some(500));
        let e = parse_hello(&json!({"protocol": 2, "capabilities": []})).unwrap_err();
        assert!(e.contains("protocol 2"), "{e}");
        let e = parse_hello(&json!({"protocol": 1, "capabilities": ["sign-in"]})).unwrap_err();
        assert!(e.contains("unknown capability \"sign-in\""), "{e}");
        assert!(parse_hello(&json!({"protocol": 1})).is_err());
        assert!(parse_hello(&json!({"protocol": 1, "capabilities": [], "timeout_ms": 0})).is_err());
    }
}
