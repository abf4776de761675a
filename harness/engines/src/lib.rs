//! Every engine fobsim can judge, behind the harness's one adapter trait
//! ([`fobsim_harness::adapter::EngineAdapter`]) and opened by name through
//! one registry ([`Registry`]): `fobsim run --engine X`, `fobsim matrix
//! --engines X,Y` and `fobsim sweep --engine X` accept the same names.
//!
//! | name | engine | how |
//! |---|---|---|
//! | `builtin` | fobsim's engine in-process ([`builtin`]) | memory or SQLite store |
//! | `model` | the harness's reference model of the rules | [`fobsim_harness::testing::ModelEngine`] |
//! | `iam-http` | fobsim's engine behind its AWS Query API ([`iam_http`]) | SigV4 over loopback, a server per scenario; with an endpoint, any running IAM-compatible endpoint ([`iam_remote`]) |
//! | `console` | fobsim's engine behind its AWS console pages and its API ([`console`]) | headless Chromium over WebDriver ([`webdriver`]) for the console's pages, SigV4 for the rest; a server per scenario |
//! | `privacyidea` | privacyIDEA 3.x ([`privacyidea`]) | its REST API; the server is started per run under libfaketime (clock file rewritten per step) |
//! | `pam-google` | `pam_google_authenticator` ([`pam`]) | a pam.d service + secret file per user; `pamtester` under `faketime` |
//! | `pam-oath` | `pam_oath` ([`pam`]) | a pam.d service + usersfile; `pamtester` under `faketime` |
//! | `oathtool` | `oathtool --totp -w` ([`oathtool`]) | a stateless validator, one process per code |
//! | `moto` | moto's IAM/STS mock ([`moto`]) | its AWS Query API on loopback |
//! | `django-otp` | django-otp's `TOTPDevice` ([`django_otp`]) | a Django project made by the adapter; a management command answering JSON lines under libfaketime |
//! | `exec:COMMAND` | any engine, behind an adapter program ([`exec`]) | JSON lines over the command's stdin/stdout (`docs/adapter-protocol.md`) |
//!
//! Where the tools are: `chromium` and `chromedriver` on `PATH` (Debian
//! packages `chromium`, `chromium-driver`; `tests/browser/setup.sh`), or
//! `FOBSIM_CHROMIUM` / `FOBSIM_CHROMEDRIVER`.
//! The third-party tools: `oathtool`, `pamtester` and `faketime`
//! on `PATH` (Debian packages); the Python engines in virtualenvs, found
//! through `FOBSIM_PRIVACYIDEA_VENV` / `FOBSIM_MOTO_VENV` /
//! `FOBSIM_DJANGO_VENV`, else `$FOBSIM_PEERS_DIR/venv-pi` / `venv-moto` /
//! `venv-django`, else `<workspace>/target/peers/...` — where
//! `tests/matrix/setup.sh` installs them. `FOBSIM_LIBFAKETIME` overrides
//! the path of `libfaketime.so.1` ([`peers`]).
//!
//! A missing tool is a [`SetupProblem`](fobsim_harness::adapter::SetupProblem) with an install hint: the matrix
//! reports it as a setup error, never as a pass or a fail of the suite.
//!
//! Everything an adapter starts or writes outside its temp folder (server
//! processes, `/etc/pam.d/fobsim-*` files) is registered with [`cleanup`]:
//! removed by the adapter's `Drop`, and by [`cleanup::install_signal_handlers`]
//! when the run is interrupted (SIGINT, SIGTERM, SIGHUP).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

use fobsim_harness::adapter::{EngineAdapter, OpenError, Opener};
use fobsim_harness::testing::ModelEngine;

pub mod builtin;
pub mod cleanup;
pub mod console;
pub mod django_otp;
pub mod exec;
pub mod iam_http;
pub mod iam_remote;
pub mod moto;
pub mod oathtool;
pub mod pam;
pub mod peers;
pub mod privacyidea;
pub mod shim;
pub mod webdriver;

pub use builtin::{StoreKind, UnknownStore};
use iam_remote::ClockControl;

/// Every engine name the [`Registry`] knows, in a stable order.
pub const ENGINES: [&str; 10] = [
    "builtin",
    "model",
    "iam-http",
    "console",
    "privacyidea",
    "pam-google",
    "pam-oath",
    "oathtool",
    "moto",
    "django-otp",
];

/// The engines of `fobsim matrix` by default, in column order.
pub const MATRIX_DEFAULT: [&str; 7] = [
    "builtin",
    "privacyidea",
    "pam-google",
    "pam-oath",
    "oathtool",
    "moto",
    "django-otp",
];

/// A running IAM-compatible endpoint to judge instead of a server per
/// scenario (`--endpoint URL --bootstrap FILE` and a clock mover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://HOST:PORT`.
    pub url: String,
    /// The bootstrap file it was provisioned with.
    pub bootstrap: PathBuf,
    /// How its clock is moved.
    pub clock: ClockControl,
}

/// fobsim's registry of engines, with the options they are opened with.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Seed of the engines' RNGs (recovery codes, salts, keys).
    pub seed: u64,
    /// Where the built-in engine keeps its state.
    pub store: StoreKind,
    /// With `iam-http`: a running endpoint instead of a server per scenario.
    pub endpoint: Option<Endpoint>,
    /// Timeouts of `exec:COMMAND` adapters.
    pub exec: exec::Options,
}

impl Registry {
    /// The registry with the built-in engine in memory and no endpoint.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Registry {
            seed,
            store: StoreKind::Memory,
            endpoint: None,
            exec: exec::Options::default(),
        }
    }
}

impl Opener for Registry {
    fn names(&self) -> Vec<String> {
        ENGINES
            .iter()
            .map(|s| (*s).to_string())
            .chain([format!("{}COMMAND", exec::PREFIX)])
            .collect()
    }

    /// The fixed names, and every `exec:COMMAND` (a family).
    fn knows(&self, name: &str) -> bool {
        ENGINES.contains(&name) || name.starts_with(exec::PREFIX)
    }

    fn open(&self, name: &str) -> Result<Box<dyn EngineAdapter>, OpenError> {
        let options = |message: &str| OpenError::Options {
            engine: name.to_string(),
            message: message.to_string(),
        };
        if self.endpoint.is_some() && name != "iam-http" {
            return Err(options(
                "--endpoint judges an IAM-compatible endpoint: use it with --engine iam-http",
            ));
        }
        if self.store != StoreKind::Memory && !matches!(name, "builtin" | "iam-http" | "console") {
            return Err(options(
                "--store chooses the built-in engine's store: use it with --engine builtin, iam-http or console",
            ));
        }
        Ok(match name {
            "builtin" => Box::new(builtin::Builtin::new(self.store.clone(), self.seed)),
            "model" => Box::new(ModelEngine::new()),
            "iam-http" => match &self.endpoint {
                None => Box::new(iam_http::IamHttp::with_store(self.store.clone(), self.seed)),
                Some(e) => Box::new(iam_remote::IamRemote::connect(
                    &e.url,
                    &e.bootstrap,
                    e.clock.clone(),
                )?),
            },
            "console" => Box::new(console::ConsoleAdapter::new(self.store.clone(), self.seed)?),
            "privacyidea" => Box::new(privacyidea::PrivacyIdea::new()?),
            "pam-google" => Box::new(pam::open(pam::Module::Google)?),
            "pam-oath" => Box::new(pam::open(pam::Module::Oath)?),
            "oathtool" => Box::new(oathtool::open()?),
            "moto" => Box::new(moto::Moto::new()?),
            "django-otp" => Box::new(django_otp::DjangoOtp::new()?),
            other => match other.strip_prefix(exec::PREFIX) {
                Some(command) if !command.trim().is_empty() => {
                    Box::new(exec::open(command, self.exec)?)
                }
                Some(_) => {
                    return Err(options(
                        "exec: needs the command that starts the adapter: exec:COMMAND",
                    ));
                }
                None => return Err(self.unknown(other)),
            },
        })
    }
}

/// Open `name` with the default options (in-memory built-in engine) and
/// run `seed`.
///
/// # Errors
/// As [`Registry::open`](Opener::open).
pub fn open(name: &str, seed: u64) -> Result<Box<dyn EngineAdapter>, OpenError> {
    Registry::new(seed).open(name)
}
