//! The account layer for engines that only check codes (`oathtool`,
//! `pam_oath`, `pam_google_authenticator`): they have no IAM users, no
//! device registry and no two-code enable, so the adapter maps the
//! scenario's operations onto what the engine does, and nothing more:
//!
//! - **enable** (console): provision the user with the serial's vendor
//!   seed (the engine's own provisioning: a secret file, a usersfile line),
//!   then ask the engine to verify code 1, then code 2, at the enable time.
//!   Both accepted → `ok` (the provisioning stays); otherwise
//!   `InvalidAuthenticationCode` and the user's previous provisioning is
//!   restored. A serial with no seed record is `NoSuchEntity` (nothing to
//!   provision). No search window, no consecutiveness check, no uniqueness
//!   check beyond what the engine does itself.
//! - **sign-in**: the engine checks password + code for the user
//!   (`AccessDenied` when it refuses).
//! - **session** (serial + code): the engine checks the code for the
//!   user (stateful engines) or for the serial's key (stateless ones).
//!
//! - **import** (a seed record during the scenario): the token check the
//!   engine's provisioning would make (an algorithm or length it cannot
//!   take is `ValidationError`, kind `UnsupportedToken`); otherwise the
//!   record is kept for a later enable. No registry: a second import of
//!   the same serial replaces the first.
//!
//! Error kinds are declared: these engines have no lockout, and the shim
//! reports the kinds it tells apart (`WrongPassword`, `UnsupportedToken`).
//! Not declared (so `n/a`): API enable, resync, deactivate, list devices,
//! root user, root recovery, lockout state, settings, access keys.

use fobsim_core::Principal;
use std::collections::HashMap;

use fobsim_core::{SeedRecord, Timestamp};

use crate::peers::{Seeds, refuse};
use fobsim_harness::adapter::{AdapterError, Answer, Capability, EngineAdapter, Request, Setup};

/// The capabilities of a [`Shim`].
pub const CAPS: [Capability; 5] = [
    Capability::EnableTwoCodes,
    Capability::ConsoleSignIn,
    Capability::SessionMfa,
    Capability::Import,
    Capability::ErrorKinds,
];

/// A code-checking engine (one implementation per tool).
pub trait Checker {
    /// Adapter name.
    fn name(&self) -> &'static str;
    /// A fresh engine for a scenario.
    ///
    /// # Errors
    /// [`AdapterError`] if its state cannot be reset.
    fn reset(&mut self, setup: &Setup) -> Result<(), AdapterError>;
    /// Provision `user` with `seed` (replacing any earlier provisioning).
    /// `Ok(Some(answer))`: the engine cannot take this token (an
    /// unsupported algorithm or length), with the refusal to report.
    ///
    /// # Errors
    /// [`AdapterError`] if the engine's files cannot be written.
    fn provision(&mut self, user: &str, seed: &SeedRecord) -> Result<Option<Answer>, AdapterError>;
    /// Whether the engine can take this token at all: `Some(refusal)` when
    /// it cannot (an algorithm, kind or length it does not verify). What
    /// `provision` refuses and an `import` answers.
    fn refuse_token(&self, seed: &SeedRecord) -> Option<Answer> {
        let _ = seed;
        None
    }
    /// Remove `user`'s provisioning.
    ///
    /// # Errors
    /// [`AdapterError`] if the engine's files cannot be written.
    fn unprovision(&mut self, user: &str) -> Result<(), AdapterError>;
    /// Whether the engine accepts `code` for `user` (with `password`
    /// typed first, where the engine's stack checks one) at `now`.
    /// `seed` is the user's provisioned token (stateless engines use it).
    ///
    /// # Errors
    /// [`AdapterError`] if the engine cannot be run.
    fn check(
        &mut self,
        now: Timestamp,
        user: &str,
        password: &str,
        code: &str,
        seed: &SeedRecord,
    ) -> Result<bool, AdapterError>;
    /// Whether the engine checks the password itself (else the shim does).
    fn checks_password(&self) -> bool;
}

/// A [`Checker`] as an [`EngineAdapter`].
pub struct Shim<C: Checker> {
    checker: C,
    seeds: Seeds,
    passwords: HashMap<String, String>,
    enabled: HashMap<String, SeedRecord>,
    calls: u64,
}

impl<C: Checker> std::fmt::Debug for Shim<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shim")
            .field("engine", &self.checker.name())
            .field("users", &self.passwords.len())
            .field("engine_calls", &self.calls)
            .finish_non_exhaustive()
    }
}

fn user_name(who: &Principal) -> String {
    who.to_string()
}

fn denied() -> Answer {
    refuse(
        "AccessDenied",
        403,
        None,
        "MultiFactorAuthentication failed with invalid MFA one time pass code.",
    )
}

impl<C: Checker> Shim<C> {
    /// Wrap a checker.
    pub fn new(checker: C) -> Self {
        Shim {
            checker,
            seeds: Seeds::default(),
            passwords: HashMap::new(),
            enabled: HashMap::new(),
            calls: 0,
        }
    }

    /// The checker.
    pub fn checker(&self) -> &C {
        &self.checker
    }

    /// How many times the engine was asked to check a code.
    #[must_use]
    pub fn engine_calls(&self) -> u64 {
        self.calls
    }

    fn password(&self, user: &str, ok: bool) -> String {
        let right = self.passwords.get(user).cloned().unwrap_or_default();
        if ok { right } else { format!("{right}-wrong") }
    }

    fn check(
        &mut self,
        now: Timestamp,
        user: &str,
        password: &str,
        code: &str,
        seed: &SeedRecord,
    ) -> Result<bool, AdapterError> {
        self.calls += 1;
        self.checker.check(now, user, password, code, seed)
    }

    fn enable(
        &mut self,
        now: Timestamp,
        user: &str,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Answer, AdapterError> {
        let Some(seed) = self.seeds.get(serial).cloned() else {
            return Ok(refuse(
                "NoSuchEntity",
                404,
                None,
                format!("MFA Device with serial number {serial} does not exist."),
            ));
        };
        if let Some(refusal) = self.checker.provision(user, &seed)? {
            self.restore(user)?;
            return Ok(refusal);
        }
        let pw = self.password(user, true);
        let ok = self.check(now, user, &pw, code1, &seed)?
            && self.check(now, user, &pw, code2, &seed)?;
        if ok {
            self.enabled.insert(user.to_string(), seed);
            Ok(Answer::ok())
        } else {
            self.restore(user)?;
            Ok(refuse(
                "InvalidAuthenticationCode",
                403,
                None,
                "Authentication code for device is not valid.",
            ))
        }
    }

    fn restore(&mut self, user: &str) -> Result<(), AdapterError> {
        match self.enabled.get(user).cloned() {
            Some(prev) => self.checker.provision(user, &prev).map(|_| ()),
            None => self.checker.unprovision(user),
        }
    }

    fn sign_in(
        &mut self,
        now: Timestamp,
        user: &str,
        password_ok: bool,
        code: Option<&str>,
    ) -> Result<Answer, AdapterError> {
        if !self.checker.checks_password() && !password_ok {
            return Ok(refuse(
                "AccessDenied",
                403,
                Some("WrongPassword"),
                "password refused (checked by the adapter: the engine has no passwords)",
            ));
        }
        let Some(seed) = self.enabled.get(user).cloned() else {
            // No device: the engine has nothing to check; a password-only
            // sign-in is the account layer's business.
            return Ok(if password_ok {
                Answer::ok()
            } else {
                refuse("AccessDenied", 403, Some("WrongPassword"), "wrong password")
            });
        };
        let pw = self.password(user, password_ok);
        if self.check(now, user, &pw, code.unwrap_or(""), &seed)? {
            Ok(Answer::ok())
        } else {
            Ok(denied())
        }
    }
}

impl<C: Checker> EngineAdapter for Shim<C> {
    fn name(&self) -> &str {
        self.checker.name()
    }

    fn capabilities(&self) -> &[Capability] {
        &CAPS
    }

    fn begin(&mut self, setup: &Setup) -> Result<(), AdapterError> {
        self.seeds = Seeds::new(&setup.seeds);
        self.passwords = setup.users.iter().cloned().collect();
        self.passwords
            .insert("root".into(), setup.account.root_password.clone());
        self.enabled.clear();
        self.checker.reset(setup)
    }

    fn call(&mut self, now: Timestamp, request: &Request) -> Result<Answer, AdapterError> {
        match request {
            Request::Enable {
                who,
                serial,
                code1,
                code2,
                ..
            } => self.enable(now, &user_name(who), serial, code1, code2),
            Request::SignIn {
                who,
                password_ok,
                code,
            } => self.sign_in(now, &user_name(who), *password_ok, code.as_deref()),
            Request::Session {
                who, serial, code, ..
            } => {
                let user = user_name(who);
                // Stateless engines check the serial's key; stateful ones
                // the user's provisioned token (the serial is not theirs to know).
                let seed = if self.checker.checks_password() {
                    self.enabled.get(&user).cloned()
                } else {
                    self.seeds.get(serial).cloned()
                };
                let Some(seed) = seed else {
                    return Ok(denied());
                };
                let pw = self.password(&user, true);
                Ok(if self.check(now, &user, &pw, code, &seed)? {
                    Answer::ok()
                } else {
                    denied()
                })
            }
            Request::Import { seed } => Ok(match self.checker.refuse_token(seed) {
                Some(refusal) => refusal,
                None => {
                    self.seeds.insert(seed.clone());
                    Answer::ok()
                }
            }),
            other => Err(crate::peers::transport(
                self.checker.name(),
                format!("capability {} not declared", other.capability().as_str()),
            )),
        }
    }
}
