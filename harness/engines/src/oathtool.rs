//! `oathtool` (OATH Toolkit) as a stateless validator:
//! `oathtool --totp[=SHA256|SHA512] -d DIGITS -s PERIODs -w 1 -N @T KEYHEX CODE`,
//! one process per code. Exit 0 = accepted (it prints the matching step's
//! distance from `T` **without a sign**: `1` may be one step early or
//! late), a miss exits non-zero ("password not found in range").
//!
//! Window `-w 1`: oathtool accepts steps −1…+1 around `T` (the seed's ±1).
//! Stateless: no replay protection, no learned offset, no accounts; the
//! account layer is [`super::shim`] (passwords are checked by the adapter,
//! a session checks the code against the key of the serial it names).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use fobsim_core::{Algorithm, Kind, SeedRecord, Timestamp};

use crate::peers::{require, transport};
use crate::shim::{Checker, Shim};
use fobsim_harness::adapter::SetupProblem;
use fobsim_harness::adapter::{AdapterError, Answer, Setup};

const NAME: &str = "oathtool";

/// The oathtool adapter.
pub type Oathtool = Shim<OathtoolChecker>;

/// The oathtool adapter with window ±1.
///
/// # Errors
/// [`SetupProblem`] if `oathtool` is not installed.
pub fn open() -> Result<Oathtool, SetupProblem> {
    Ok(Shim::new(OathtoolChecker::new(1)?))
}

/// Runs `oathtool` per code.
#[derive(Debug, Clone)]
pub struct OathtoolChecker {
    program: PathBuf,
    window: u32,
}

/// What oathtool said about one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted; the unsigned step distance oathtool printed.
    Accepted(u64),
    /// Not found in the window.
    Rejected,
}

impl OathtoolChecker {
    /// A checker with window `-w window`.
    ///
    /// # Errors
    /// [`SetupProblem`] if `oathtool` is not installed.
    pub fn new(window: u32) -> Result<Self, SetupProblem> {
        Ok(OathtoolChecker {
            program: require(NAME, "oathtool", "oathtool")?,
            window,
        })
    }

    /// Validate `code` for `seed` at `now`.
    ///
    /// # Errors
    /// [`AdapterError::Transport`] if oathtool cannot run or prints garbage
    /// on success; an unsupported token (HOTP) is an error too.
    pub fn verify(
        &self,
        now: Timestamp,
        seed: &SeedRecord,
        code: &str,
    ) -> Result<Verdict, AdapterError> {
        let Kind::Totp { period } = seed.kind else {
            return Err(transport(NAME, "event-based tokens are not validated here"));
        };
        let mode = match seed.algorithm {
            Algorithm::Sha1 => "--totp",
            Algorithm::Sha256 => "--totp=SHA256",
            Algorithm::Sha512 => "--totp=SHA512",
        };
        let out = Command::new(&self.program)
            .arg(mode)
            .arg("-d")
            .arg(seed.digits.to_string())
            .arg("-s")
            .arg(format!("{period}s"))
            .arg("-w")
            .arg(self.window.to_string())
            .arg("-N")
            .arg(format!("@{}", now.as_secs()))
            .arg("--")
            .arg(seed.secret.to_hex())
            .arg(code)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| transport(NAME, format!("cannot run oathtool: {e}")))?;
        if !out.status.success() {
            return Ok(Verdict::Rejected);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse::<u64>()
            .map(Verdict::Accepted)
            .map_err(|_| {
                transport(
                    NAME,
                    format!(
                        "unexpected output on success: {:?}",
                        crate::peers::tail(&out.stdout, 80)
                    ),
                )
            })
    }
}

impl Checker for OathtoolChecker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reset(&mut self, _setup: &Setup) -> Result<(), AdapterError> {
        Ok(())
    }

    fn refuse_token(&self, seed: &SeedRecord) -> Option<Answer> {
        match seed.kind {
            Kind::Totp { .. } => None,
            Kind::Hotp => Some(crate::peers::unsupported_token(
                "the oathtool adapter validates time-based tokens only",
            )),
        }
    }

    fn provision(
        &mut self,
        _user: &str,
        seed: &SeedRecord,
    ) -> Result<Option<Answer>, AdapterError> {
        Ok(self.refuse_token(seed))
    }

    fn unprovision(&mut self, _user: &str) -> Result<(), AdapterError> {
        Ok(())
    }

    fn check(
        &mut self,
        now: Timestamp,
        _user: &str,
        _password: &str,
        code: &str,
        seed: &SeedRecord,
    ) -> Result<bool, AdapterError> {
        Ok(matches!(
            self.verify(now, seed, code)?,
            Verdict::Accepted(_)
        ))
    }

    fn checks_password(&self) -> bool {
        false
    }
}
