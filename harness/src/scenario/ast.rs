//! The parsed form of a scenario file.

use fobsim_core::{Algorithm, Channel, Timestamp};
use fobsim_firmware::Drift;
use serde::Serialize;

/// Default start of a scenario's true clock: 2026-01-01T00:00:00Z (aligned
/// to every step length, so `wait 29s` stays in the first step).
pub const DEFAULT_START: Timestamp = Timestamp::from_secs(1_767_225_600);

/// A whole scenario: header declarations and a timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// The scenario's id (`scenario ID`), unique within a suite.
    pub id: String,
    /// Where the scenario came from (a file path, or `builtin:NAME`).
    pub file: String,
    /// What the scenario encodes: seed sentences, known bugs, RFCs.
    pub sources: Vec<Source>,
    /// True time when the timeline starts.
    #[serde(serialize_with = "ser_ts")]
    pub start: Timestamp,
    /// Engine settings (`setting KEY=VALUE`), passed to the adapter.
    pub settings: Vec<(String, String)>,
    /// Where each setting was written: (line, column) of its `KEY=VALUE`,
    /// parallel to `settings` (for `file:line:col` when an engine refuses it
    /// before the run).
    pub setting_positions: Vec<(usize, usize)>,
    /// Declared devices, in declaration order.
    pub devices: Vec<DeviceDecl>,
    /// Declared IAM users, in declaration order (the root user is implicit).
    pub users: Vec<String>,
    /// Users declared with more than one access key (`user NAME keys=N`),
    /// with their key count; every other user has one key.
    pub access_keys: Vec<(String, u32)>,
    /// The timeline.
    pub steps: Vec<Step>,
}

pub(crate) fn ser_ts<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// What a scenario encodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// `seed`, `bug`, `rfc` or `design`.
    pub kind: SourceKind,
    /// The sentence or the bug, quoted.
    pub text: String,
}

/// Kinds of [`Source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A sentence of the seed page (`reference/SEED.md`).
    Seed,
    /// A known real-world bug or field report.
    Bug,
    /// An RFC requirement or test vector.
    Rfc,
    /// A rule of the design's rules table.
    Design,
}

impl SourceKind {
    /// The keyword used in scenario files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Seed => "seed",
            SourceKind::Bug => "bug",
            SourceKind::Rfc => "rfc",
            SourceKind::Design => "design",
        }
    }
}

/// A secret given explicitly in a scenario (test vectors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretBytes(#[serde(skip)] pub Vec<u8>);

/// `device NAME MODEL key=value...`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceDecl {
    /// Name used in the timeline.
    pub name: String,
    /// Line of the declaration.
    pub line: usize,
    /// Model preset name.
    pub model: String,
    /// Explicit serial, or `None` for the model's `index`-th serial.
    pub serial: Option<String>,
    /// 1-based declaration index (used for the default serial).
    pub index: u64,
    /// Initial clock drift.
    #[serde(skip)]
    pub drift: Drift,
    /// Explicit secret (test vectors); `None` = derived from the seed.
    #[serde(skip)]
    pub secret: Option<SecretBytes>,
    /// Override of the model's digit count.
    pub digits: Option<u8>,
    /// Override of the model's hash.
    #[serde(skip)]
    pub algorithm: Option<Algorithm>,
    /// Override of the model's step length (seconds).
    pub period: Option<u64>,
    /// The step length the vendor's seed file (and so the engine) claims,
    /// if it differs from the device's.
    pub seed_period: Option<u64>,
    /// Whether the engine gets this device's seed at setup (false: an
    /// unknown serial, or one imported later by an `import` step).
    pub registered: bool,
    /// Line of the first `import DEV` step, if the seed is given to the
    /// engine there instead of at setup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_at: Option<usize>,
    /// The battery is already dead at the start (`battery=dead`).
    pub battery_dead: bool,
}

/// What an expectation-carrying step must answer: a base (`ok`, `rejected`
/// or an error name) and refinements a refusal must also meet
/// (`-> AccessDenied !DeviceLocked ~"invalid MFA"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The answer's kind.
    pub base: Base,
    /// Further conditions on a refusal, in the order written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refine: Vec<Refine>,
}

impl Outcome {
    /// `-> ok`.
    #[must_use]
    pub fn ok() -> Self {
        Base::Ok.into()
    }

    /// `-> rejected`.
    #[must_use]
    pub fn rejected() -> Self {
        Base::Rejected.into()
    }

    /// `-> NAME` (an AWS error code or an engine's finer kind).
    #[must_use]
    pub fn error(name: impl Into<String>) -> Self {
        Base::Error(name.into()).into()
    }

    /// Every error name the outcome mentions (base and `!NAME`s).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let base = match &self.base {
            Base::Error(e) => Some(e.as_str()),
            _ => None,
        };
        base.into_iter()
            .chain(self.refine.iter().filter_map(|r| match r {
                Refine::Not(n) => Some(n.as_str()),
                _ => None,
            }))
    }
}

impl From<Base> for Outcome {
    fn from(base: Base) -> Self {
        Outcome {
            base,
            refine: Vec::new(),
        }
    }
}

/// The base of an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// Success.
    Ok,
    /// Any error.
    Rejected,
    /// This error: an AWS code (`InvalidAuthenticationCode`) or an engine's
    /// finer kind (`DeviceLocked`), see [`super::vocabulary`].
    Error(String),
}

/// A condition a refusal must also meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refine {
    /// `!NAME`: neither the answer's code nor its kind is `NAME`.
    Not(String),
    /// `~"TEXT"`: the answer's message contains `TEXT` (ASCII case ignored).
    Contains(String),
    /// `!~"TEXT"`: the answer's message does not contain `TEXT`.
    Lacks(String),
}

fn quoted(f: &mut std::fmt::Formatter<'_>, text: &str) -> std::fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.base {
            Base::Ok => f.write_str("ok")?,
            Base::Rejected => f.write_str("rejected")?,
            Base::Error(e) => f.write_str(e)?,
        }
        for r in &self.refine {
            match r {
                Refine::Not(n) => write!(f, " !{n}")?,
                Refine::Contains(t) => {
                    f.write_str(" ~")?;
                    quoted(f, t)?;
                }
                Refine::Lacks(t) => {
                    f.write_str(" !~")?;
                    quoted(f, t)?;
                }
            }
        }
        Ok(())
    }
}

/// A code typed by the user: a captured name, part of one, literal digits,
/// or a seeded guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeRef {
    /// A code captured earlier with `press DEV as NAME`.
    Var(String),
    /// Literal digits.
    Literal(String),
    /// `NAME[A..B]`: the characters `A..B` (0-based, `B` excluded) of a
    /// captured code, e.g. `c3[0..6]`, the first six digits.
    Part {
        /// The captured code.
        var: String,
        /// First character (0-based).
        from: usize,
        /// One past the last character.
        to: usize,
    },
    /// `random` / `random:N`: N seeded random digits (default: as many as
    /// the step's device shows, 6 without a device); may happen to be right.
    Random {
        /// Explicit length.
        digits: Option<u8>,
    },
    /// `wrong` / `wrong:N`: seeded random digits that are none of the codes
    /// the device (for a sign-in: any declared device) shows within
    /// [`WRONG_GUARD_STEPS`] steps of now — a guess that is wrong for sure.
    Wrong {
        /// Explicit length.
        digits: Option<u8>,
    },
}

/// How many steps on either side of now (true time, the engine's time and
/// the device's own clock) a `wrong` code stays clear of.
pub const WRONG_GUARD_STEPS: u64 = 30;

impl std::fmt::Display for CodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodeRef::Var(v) | CodeRef::Literal(v) => f.write_str(v),
            CodeRef::Part { var, from, to } => write!(f, "{var}[{from}..{to}]"),
            CodeRef::Random { digits: None } => f.write_str("random"),
            CodeRef::Random { digits: Some(n) } => write!(f, "random:{n}"),
            CodeRef::Wrong { digits: None } => f.write_str("wrong"),
            CodeRef::Wrong { digits: Some(n) } => write!(f, "wrong:{n}"),
        }
    }
}

/// A device as named in a step: a declared device or a typed serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRef {
    /// A declared device (its serial is sent).
    Named(String),
    /// A serial typed by the user (`serial:GAHT99999999`).
    Serial(String),
}

impl std::fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceRef::Named(n) => f.write_str(n),
            DeviceRef::Serial(s) => write!(f, "serial:{s}"),
        }
    }
}

/// What the display should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayExpect {
    /// A code.
    Code,
    /// Nothing.
    Blank,
}

/// Battery actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatteryAction {
    /// The battery dies.
    Dead,
    /// A fresh battery (the RTC resets).
    New,
}

/// How `clock server` moves the engine's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerClock {
    /// `clock server +D` / `-D`: the engine's clock moves by this many ms
    /// relative to true time (cumulative).
    Step(i64),
    /// `clock server reset`: the engine's clock is true time again.
    Reset,
}

/// One timeline step, with the line it came from and its source text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// 1-based line number.
    pub line: usize,
    /// The step as written (trimmed, without comments).
    pub text: String,
    /// What to do.
    pub action: Action,
}

/// Timeline actions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `press DEV [as NAME] [-> code|blank]`.
    Press {
        /// Device.
        device: String,
        /// Name to capture the shown code under.
        capture: Option<String>,
        /// Expected display (default: a code when capturing).
        expect: Option<DisplayExpect>,
    },
    /// `look DEV [as NAME] [-> code|blank]`: read the display without pressing.
    Look {
        /// Device.
        device: String,
        /// Name to capture the shown code under.
        capture: Option<String>,
        /// Expected display.
        expect: Option<DisplayExpect>,
    },
    /// `wait DURATION`.
    Wait {
        /// Milliseconds (≥ 0).
        ms: i64,
    },
    /// `at TIME`: jump forward to an absolute true time.
    At {
        /// The time.
        #[serde(serialize_with = "ser_ts")]
        time: Timestamp,
    },
    /// `align DURATION`: advance to the next multiple of the duration since the epoch.
    Align {
        /// Milliseconds (> 0).
        ms: i64,
    },
    /// `enable USER DEV CODE CODE [via console|api] -> OUTCOME`.
    Enable {
        /// User (`root` for the root user).
        user: String,
        /// Device.
        device: DeviceRef,
        /// First code.
        code1: CodeRef,
        /// Second code.
        code2: CodeRef,
        /// Channel.
        via: Channel,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `resync USER DEV CODE CODE -> OUTCOME`.
    Resync {
        /// User.
        user: String,
        /// Device.
        device: DeviceRef,
        /// First code.
        code1: CodeRef,
        /// Second code.
        code2: CodeRef,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `deactivate USER DEV -> OUTCOME`.
    Deactivate {
        /// User.
        user: String,
        /// Device.
        device: DeviceRef,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `replace USER OLD NEW CODE CODE -> OUTCOME`: deactivate then enable.
    Replace {
        /// User.
        user: String,
        /// Old device.
        old: DeviceRef,
        /// New device.
        new: DeviceRef,
        /// First code of the new device.
        code1: CodeRef,
        /// Second code of the new device.
        code2: CodeRef,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `sign-in USER [CODE] [password=wrong] -> OUTCOME`: console sign-in.
    SignIn {
        /// User.
        user: String,
        /// MFA code, if typed.
        code: Option<CodeRef>,
        /// Type a wrong password.
        wrong_password: bool,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `session USER [key=K] DEV CODE -> OUTCOME`: STS GetSessionToken with MFA.
    Session {
        /// User.
        user: String,
        /// Which of the user's access keys signs the request (1-based).
        key: u32,
        /// Device.
        device: DeviceRef,
        /// Code.
        code: CodeRef,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `devices USER -> none | DEV[,DEV...]`: ListMFADevices.
    Devices {
        /// User.
        user: String,
        /// Expected devices.
        expect: Vec<DeviceRef>,
    },
    /// `recover root [email=CODE] [phone=CODE] -> OUTCOME`.
    Recover {
        /// Override of the email code (default: the one in the outbox).
        email: Option<String>,
        /// Override of the phone code.
        phone: Option<String>,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `lose DEV`.
    Lose {
        /// Device.
        device: String,
    },
    /// `find DEV`.
    Find {
        /// Device.
        device: String,
    },
    /// `battery DEV dead|new`.
    Battery {
        /// Device.
        device: String,
        /// What happens.
        action: BatteryAction,
    },
    /// `drift DEV offset=.. ppm=.. jitter=..`: reset the device clock's drift now.
    Drift {
        /// Device.
        device: String,
        /// New drift.
        #[serde(skip)]
        drift: Drift,
    },
    /// `expect DEV steps A..B`: device step minus true step lies in A..=B.
    ExpectSteps {
        /// Device.
        device: String,
        /// Lower bound.
        min: i64,
        /// Upper bound.
        max: i64,
    },
    /// `expect DEV locked|unlocked`: the engine's lockout state of a device.
    ExpectLocked {
        /// Device.
        device: String,
        /// Locked or not.
        locked: bool,
    },
    /// `clock server +D|-D|reset`: move the engine's clock apart from
    /// true time (fobs keep true time).
    ClockServer {
        /// The move.
        change: ServerClock,
    },
    /// `import DEV -> OUTCOME`: give the engine the device's seed record now.
    Import {
        /// Device.
        device: String,
        /// Expected outcome.
        expect: Outcome,
    },
    /// `expect CODE == CODE` / `expect CODE != CODE`: compare two codes.
    ExpectCodes {
        /// Left code.
        left: CodeRef,
        /// `==` (true) or `!=` (false).
        equal: bool,
        /// Right code.
        right: CodeRef,
    },
    /// `repeat N` ... `end`.
    Repeat {
        /// Iterations.
        times: u32,
        /// The body.
        body: Vec<Step>,
    },
}
