//! The `Engine` adapter trait: how the runner talks to a system under test.
//!
//! One implementation per system under test (the `fobsim-engines` crate
//! has fobsim's own and the third-party ones). The trait is small and
//! object-safe: the runner sends [`Request`]s and records the [`Answer`]s
//! in the transcript. Each adapter declares its [`Capability`]s; a step
//! that needs a missing capability is reported `n/a` and never counted as
//! a pass. An [`Opener`] opens adapters by name: `fobsim run --engine X`,
//! `fobsim matrix --engines X,Y` and `fobsim sweep --engine X` all go
//! through one.

use fobsim_core::{Channel, Principal, SeedRecord, Timestamp};
use serde::Serialize;

/// What an adapter can do. Steps that need a missing capability are `n/a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Enable a device with two consecutive codes.
    EnableTwoCodes,
    /// Enable through the API channel (distinct from the console).
    ApiEnable,
    /// Console sign-in with password + code.
    ConsoleSignIn,
    /// STS GetSessionToken-style MFA check with serial + code.
    SessionMfa,
    /// Resync with two consecutive codes.
    Resync,
    /// Deactivate a device.
    Deactivate,
    /// List a user's devices.
    ListDevices,
    /// A root user distinct from IAM users.
    RootUser,
    /// Root recovery with email + phone verification codes.
    RootRecovery,
    /// Lockout state observable per device.
    ObserveLockout,
    /// Engine settings (`setting KEY=VALUE`) can be applied.
    Settings,
    /// Seed records can be imported during a scenario (`import DEV`), with
    /// the engine's answer.
    Import,
    /// A user can have several access keys, and a session says which one
    /// signs it (`user NAME keys=2`, `session USER key=2 ...`).
    AccessKeys,
    /// Answers carry the engine's finer kind of refusal (`DeviceLocked`,
    /// `RootConsoleOnly`, ...) next to the AWS code, so an expectation can
    /// name it (`-> DeviceLocked`, `!DeviceLocked`).
    ErrorKinds,
}

impl Capability {
    /// The kebab-case name used in reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::EnableTwoCodes => "enable-two-codes",
            Capability::ApiEnable => "api-enable",
            Capability::ConsoleSignIn => "console-sign-in",
            Capability::SessionMfa => "session-mfa",
            Capability::Resync => "resync",
            Capability::Deactivate => "deactivate",
            Capability::ListDevices => "list-devices",
            Capability::RootUser => "root-user",
            Capability::RootRecovery => "root-recovery",
            Capability::ObserveLockout => "observe-lockout",
            Capability::Settings => "settings",
            Capability::Import => "import",
            Capability::AccessKeys => "access-keys",
            Capability::ErrorKinds => "error-kinds",
        }
    }

    /// Every capability, in a stable order.
    pub const ALL: [Capability; 14] = [
        Capability::EnableTwoCodes,
        Capability::ApiEnable,
        Capability::ConsoleSignIn,
        Capability::SessionMfa,
        Capability::Resync,
        Capability::Deactivate,
        Capability::ListDevices,
        Capability::RootUser,
        Capability::RootRecovery,
        Capability::ObserveLockout,
        Capability::Settings,
        Capability::Import,
        Capability::AccessKeys,
        Capability::ErrorKinds,
    ];
}

/// The account every scenario runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// 12-digit account id.
    pub id: String,
    /// Account alias.
    pub alias: String,
    /// Root user's email.
    pub root_email: String,
    /// Root user's phone.
    pub root_phone: String,
    /// Root user's password.
    pub root_password: String,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            id: "123456789012".into(),
            alias: "fobsim-test".into(),
            root_email: "root@example.com".into(),
            root_phone: "+15555550100".into(),
            root_password: "Root-Password-1".into(),
        }
    }
}

/// The password the harness gives an IAM user.
#[must_use]
pub fn user_password(name: &str) -> String {
    format!("Pw-{name}-0123456789")
}

/// Everything an engine needs before a scenario's timeline starts.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The scenario's id. Adapters that share one long-running engine
    /// across scenarios keep each scenario's users and devices apart by it.
    pub scenario: String,
    /// The account and root user.
    pub account: Account,
    /// IAM users and their passwords.
    pub users: Vec<(String, String)>,
    /// Users with more than one access key, and how many (every other user
    /// has one). Adapters with [`Capability::AccessKeys`] create them.
    pub access_keys: Vec<(String, u32)>,
    /// The vendor seed records of registered devices (those a scenario
    /// imports with an `import` step come as [`Request::Import`] instead).
    pub seeds: Vec<SeedRecord>,
    /// Engine settings from the scenario.
    pub settings: Vec<(String, String)>,
    /// True time at the start.
    pub start: Timestamp,
}

/// A request to the engine, as recorded in the transcript ("sent").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// EnableMFADevice.
    Enable {
        /// Principal.
        who: Principal,
        /// Serial number.
        serial: String,
        /// First code.
        code1: String,
        /// Second code.
        code2: String,
        /// Channel.
        channel: Channel,
    },
    /// ResyncMFADevice.
    Resync {
        /// Principal.
        who: Principal,
        /// Serial number.
        serial: String,
        /// First code.
        code1: String,
        /// Second code.
        code2: String,
    },
    /// DeactivateMFADevice.
    Deactivate {
        /// Principal.
        who: Principal,
        /// Serial number.
        serial: String,
    },
    /// ListMFADevices.
    ListDevices {
        /// Principal.
        who: Principal,
    },
    /// Console sign-in.
    SignIn {
        /// Principal.
        who: Principal,
        /// Whether the right password is typed (the password itself is not recorded).
        password_ok: bool,
        /// MFA code, if typed.
        code: Option<String>,
    },
    /// STS GetSessionToken with SerialNumber + TokenCode.
    Session {
        /// Principal.
        who: Principal,
        /// Which of the principal's access keys signs it (1-based; shown in
        /// the transcript when not 1).
        #[serde(skip_serializing_if = "is_first_key")]
        key: u32,
        /// Serial number.
        serial: String,
        /// Code.
        code: String,
    },
    /// Root: "sign in using alternative factors" (sends email + phone codes).
    StartRecovery,
    /// Read the messages sent to the root user's email and phone.
    Outbox,
    /// Root: type the email and phone verification codes.
    CompleteRecovery {
        /// Code from the email.
        email_code: String,
        /// Code from the phone.
        phone_code: String,
    },
    /// The engine's view of a device (lockout).
    DeviceState {
        /// Serial number.
        serial: String,
    },
    /// Give the engine a vendor seed record now (`import DEV`). The
    /// transcript shows the record without its secret.
    Import {
        /// The record.
        #[serde(serialize_with = "ser_seed")]
        seed: SeedRecord,
    },
}

fn is_first_key(key: &u32) -> bool {
    *key == 1
}

/// A seed record in a transcript: everything but the secret.
fn ser_seed<S: serde::Serializer>(seed: &SeedRecord, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let mut st = s.serialize_struct("SeedRecord", 4)?;
    st.serialize_field("serial", seed.serial.as_str())?;
    st.serialize_field(
        "kind",
        &match seed.kind {
            fobsim_core::Kind::Totp { period } => format!("totp/{period}s"),
            fobsim_core::Kind::Hotp => "hotp".to_string(),
        },
    )?;
    st.serialize_field("algorithm", seed.algorithm.as_str())?;
    st.serialize_field("digits", &seed.digits)?;
    st.end()
}

impl Request {
    /// The capability this request needs.
    #[must_use]
    pub fn capability(&self) -> Capability {
        match self {
            Request::Enable {
                channel: Channel::Api,
                ..
            } => Capability::ApiEnable,
            Request::Enable { .. } => Capability::EnableTwoCodes,
            Request::Resync { .. } => Capability::Resync,
            Request::Deactivate { .. } => Capability::Deactivate,
            Request::ListDevices { .. } => Capability::ListDevices,
            Request::SignIn { .. } => Capability::ConsoleSignIn,
            Request::Session { .. } => Capability::SessionMfa,
            Request::StartRecovery | Request::Outbox | Request::CompleteRecovery { .. } => {
                Capability::RootRecovery
            }
            Request::DeviceState { .. } => Capability::ObserveLockout,
            Request::Import { .. } => Capability::Import,
        }
    }
}

/// A message the engine sent to the root user's email or phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `email` or `phone`.
    pub channel: String,
    /// The address or number.
    pub to: String,
    /// The verification code in it.
    pub code: String,
}

/// What the engine answered ("answered" in the transcript).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    /// Success, with data for list/outbox/state requests.
    Ok {
        /// Returned data.
        #[serde(skip_serializing_if = "Reply::is_empty")]
        data: Reply,
    },
    /// An error in AWS terms.
    Error {
        /// AWS error code (`InvalidAuthenticationCode`, `AccessDenied`...).
        code: String,
        /// HTTP status.
        status: u16,
        /// Engine-specific finer kind (`DeviceLocked`...), if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// Message.
        message: String,
    },
}

impl Answer {
    /// Success with no data.
    #[must_use]
    pub fn ok() -> Answer {
        Answer::Ok { data: Reply::None }
    }

    /// Whether this is a success.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        matches!(self, Answer::Ok { .. })
    }

    /// Short form for reports: `ok` or the error code (with the kind).
    #[must_use]
    pub fn short(&self) -> String {
        match self {
            Answer::Ok { .. } => "ok".into(),
            Answer::Error {
                code,
                kind: Some(k),
                ..
            } if k != code => format!("{code} ({k})"),
            Answer::Error { code, .. } => code.clone(),
        }
    }
}

/// Data of a successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(untagged)]
pub enum Reply {
    /// Nothing.
    #[default]
    None,
    /// Serials (ListMFADevices).
    Devices {
        /// Serial numbers.
        devices: Vec<String>,
    },
    /// Outbox messages.
    Messages {
        /// Messages, oldest first.
        messages: Vec<Message>,
    },
    /// Device state.
    State {
        /// Whether the device is locked now.
        locked: bool,
        /// Assigned principal, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        assigned_to: Option<String>,
    },
}

impl Reply {
    /// True for [`Reply::None`].
    #[must_use]
    pub fn is_empty(&self) -> bool {
        matches!(self, Reply::None)
    }
}

/// Adapter-level failures (not engine answers): the scenario cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The engine could not be set up for the scenario.
    #[error("{adapter}: setup failed: {message}")]
    Setup {
        /// Adapter name.
        adapter: String,
        /// What went wrong.
        message: String,
    },
    /// A scenario setting this adapter does not know.
    #[error("{adapter}: unknown setting {key:?}: {message}")]
    Setting {
        /// Adapter name.
        adapter: String,
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// The engine could not be reached or answered garbage.
    #[error("{adapter}: {message}")]
    Transport {
        /// Adapter name.
        adapter: String,
        /// What went wrong.
        message: String,
    },
}

/// The `Engine` adapter: one implementation per system under test.
pub trait EngineAdapter {
    /// Short name (`builtin`, `privacyidea`, ...).
    fn name(&self) -> &str;
    /// What this adapter can express.
    fn capabilities(&self) -> &[Capability];
    /// Start from a fresh engine for a scenario: account, users, seeds,
    /// settings.
    ///
    /// # Errors
    /// [`AdapterError`] if the engine cannot be prepared.
    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError>;
    /// Send one request at the engine's time `now`: the scenario's true
    /// time plus its server-clock offset (`clock server`; none by
    /// default), so an adapter sets its engine's clock to `now` and nothing
    /// else. Only called for requests whose [`Request::capability`] the
    /// adapter declared.
    ///
    /// # Errors
    /// [`AdapterError`] when the engine cannot be reached; engine refusals
    /// are [`Answer::Error`], not errors.
    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError>;
    /// Whether the engine takes the scenario setting `key=value` (checked
    /// before anything runs, so a bad one is reported at its
    /// `file:line:col`). Only asked of adapters that declare
    /// [`Capability::Settings`]; the default takes everything (and leaves
    /// the verdict to [`EngineAdapter::begin`]).
    ///
    /// # Errors
    /// What is wrong with the setting, in a sentence.
    fn check_setting(&self, key: &str, value: &str) -> Result<(), String> {
        let _ = (key, value);
        Ok(())
    }
    /// What the adapter did on the engine's face for the calls since the
    /// last time it was asked, one line per action (pages visited, fields
    /// typed, what a page showed), for the transcript's `trace`. Never a
    /// secret (passwords, cookies). The default says nothing.
    fn take_trace(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Whether an adapter has a capability.
#[must_use]
pub fn has(adapter: &dyn EngineAdapter, cap: Capability) -> bool {
    adapter.capabilities().contains(&cap)
}

/// The install hint shown with every setup problem of the bundled engines.
pub const SETUP_HINT: &str = "run `bash tests/matrix/setup.sh` (as root; see docs/conformance.md)";

/// An engine that cannot run on this machine: a missing program, library
/// or virtualenv. Reported as a setup problem, never as a pass or fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{engine}: setup problem: {missing}; install: {hint}")]
pub struct SetupProblem {
    /// Engine name.
    pub engine: String,
    /// What is missing or broken.
    pub missing: String,
    /// How to install it.
    pub hint: String,
}

impl SetupProblem {
    /// A problem with the standard hint plus the specific `install` command.
    #[must_use]
    pub fn new(engine: &str, missing: impl Into<String>, install: &str) -> Self {
        SetupProblem {
            engine: engine.to_string(),
            missing: missing.into(),
            hint: format!("{install}; or {SETUP_HINT}"),
        }
    }
}

/// Why an [`Opener`] gave no adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not an engine name.
    #[error("unknown engine {name:?}: expected one of {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The names the opener knows, comma-separated.
        known: String,
    },
    /// The engine is not installed or does not start.
    #[error(transparent)]
    Setup(#[from] SetupProblem),
    /// The engine could not be reached or prepared.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// The name is known but the options do not fit it (say, an endpoint
    /// for an engine that runs in-process).
    #[error("{engine}: {message}")]
    Options {
        /// Engine name.
        engine: String,
        /// What is wrong.
        message: String,
    },
}

/// Opens engines by name: the one registry the CLI's `run`, `matrix` and
/// `sweep` share (`fobsim_engines::Registry` is fobsim's).
pub trait Opener {
    /// The engine names this opener knows, for messages (a family of names
    /// is shown as a pattern, such as `exec:COMMAND`).
    fn names(&self) -> Vec<String>;

    /// Whether `name` is an engine this opener knows (installed or not).
    fn knows(&self, name: &str) -> bool {
        self.names().iter().any(|n| n == name)
    }

    /// The [`OpenError::Unknown`] for `name`.
    fn unknown(&self, name: &str) -> OpenError {
        OpenError::Unknown {
            name: name.to_string(),
            known: self.names().join(", "),
        }
    }

    /// Open the engine `name`.
    ///
    /// # Errors
    /// [`OpenError::Unknown`] for a name [`Opener::knows`] refuses,
    /// [`OpenError::Setup`] for an engine that is not installed,
    /// [`OpenError::Options`] for options that do not fit the engine.
    fn open(&self, name: &str) -> Result<Box<dyn EngineAdapter>, OpenError>;
}
