//! The rules as numbers: every value of the DESIGN.md rules table is a
//! field here, loadable from TOML.

use serde::Deserialize;

use crate::error::ProfileError;

/// Argon2id cost parameters for password hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl PasswordCost {
    /// OWASP's Argon2id recommendation (19 MiB, 2 iterations, 1 lane).
    pub const OWASP: PasswordCost = PasswordCost {
        m_cost_kib: 19_456,
        t_cost: 2,
        p_cost: 1,
    };
    /// The cheapest valid parameters: for tests and simulations only.
    pub const TESTING: PasswordCost = PasswordCost {
        m_cost_kib: 8,
        t_cost: 1,
        p_cost: 1,
    };
}

/// The largest [`Profile::max_submit_delay_ms`]: one hour.
pub const MAX_SUBMIT_DELAY_MS: u64 = 3_600_000;

/// The largest [`Profile::drift_ppm`]: 1 %, far beyond any clock crystal.
pub const MAX_DRIFT_PPM: u32 = 10_000;

/// The engine's rules. [`Profile::default`] is the DESIGN.md table (the
/// seed page's behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// How far, in steps, the interval of fob-clock offsets learned from
    /// the evidence may widen without new evidence (the cap of the drift
    /// allowance; see `docs/engine-rules.md`). Default 1: a token unused
    /// for a year at 20 ppm (about 21 steps off) is out of sync and needs a
    /// resync, as the seed says.
    pub auth_window_steps: u64,
    /// The longest time a user may take between pressing the button and
    /// the code reaching the engine, in ms. A code is accepted when some
    /// press time within this delay and some offset in the learned
    /// interval explain it. Default 60 s.
    pub max_submit_delay_ms: u64,
    /// The drift bound of the fobs' clocks in parts per million: the
    /// learned interval widens at this rate (capped by
    /// `auth_window_steps`) while no new evidence comes. Default 20 (a
    /// 32.768 kHz watch crystal).
    pub drift_ppm: u32,
    /// Enable/resync search: the first of two consecutive codes is searched
    /// within ±this many steps around the current step. Default 1000.
    pub sync_window_steps: u64,
    /// MFA devices one principal may have. Default 1 (the seed); AWS today
    /// allows 8.
    pub max_devices_per_user: u32,
    /// Consecutive sign-in failures that lock a device; 0 disables lockout.
    /// Default 5.
    pub lockout_threshold: u32,
    /// How long a locked device stays locked, in ms. Default 15 minutes.
    pub lockout_period_ms: u64,
    /// Whether the root user may enable hardware MFA through the API
    /// channel. Default false: console only, as the seed says.
    pub root_api_enable: bool,
    /// Lifetime of the email/phone verification codes of root recovery, in
    /// ms. Default 10 minutes.
    pub recovery_code_ttl_ms: u64,
    /// After a completed recovery, how long the one sign-in without MFA
    /// stays available, in ms. Default 15 minutes.
    pub recovery_grant_ttl_ms: u64,
    /// Digits of recovery verification codes. Default 6.
    pub recovery_code_digits: u8,
    /// Argon2id cost of password hashes.
    pub password_cost: PasswordCost,
    /// Seed of the engine's RNG (password salts, recovery codes). `None`
    /// draws from the operating system. A fixed seed makes transcripts
    /// deterministic (DESIGN principle 4); never use one in production.
    pub rng_seed: Option<u64>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            auth_window_steps: 1,
            max_submit_delay_ms: 60 * 1000,
            drift_ppm: 20,
            sync_window_steps: 1000,
            max_devices_per_user: 1,
            lockout_threshold: 5,
            lockout_period_ms: 15 * 60 * 1000,
            root_api_enable: false,
            recovery_code_ttl_ms: 10 * 60 * 1000,
            recovery_grant_ttl_ms: 15 * 60 * 1000,
            recovery_code_digits: 6,
            password_cost: PasswordCost::OWASP,
            rng_seed: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPasswordCost {
    m_cost_kib: Option<u32>,
    t_cost: Option<u32>,
    p_cost: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    auth_window_steps: Option<u64>,
    max_submit_delay: Option<String>,
    drift_ppm: Option<u32>,
    sync_window_steps: Option<u64>,
    max_devices_per_user: Option<u32>,
    lockout_threshold: Option<u32>,
    lockout_period: Option<String>,
    root_api_enable: Option<bool>,
    recovery_code_ttl: Option<String>,
    recovery_grant_ttl: Option<String>,
    recovery_code_digits: Option<u8>,
    password_cost: Option<RawPasswordCost>,
    rng_seed: Option<u64>,
}

fn duration(key: &'static str, v: Option<String>, default: u64) -> Result<u64, ProfileError> {
    match v {
        None => Ok(default),
        Some(s) => {
            let ms =
                fobsim_core::time::parse_duration_ms(&s).map_err(|e| ProfileError::Duration {
                    key,
                    message: e.to_string(),
                })?;
            u64::try_from(ms).map_err(|_| ProfileError::Duration {
                key,
                message: format!("{s:?} is negative"),
            })
        }
    }
}

impl Profile {
    /// Load a profile from TOML. Missing keys keep their defaults; unknown
    /// keys are errors. Durations are strings such as `"15m"`, `"90s"`.
    ///
    /// ```toml
    /// auth_window_steps = 1
    /// max_submit_delay = "60s"
    /// drift_ppm = 20
    /// sync_window_steps = 1000
    /// max_devices_per_user = 8
    /// lockout_threshold = 5
    /// lockout_period = "15m"
    /// root_api_enable = false
    /// recovery_code_ttl = "10m"
    /// recovery_grant_ttl = "15m"
    /// recovery_code_digits = 6
    /// rng_seed = 42
    /// [password_cost]
    /// m_cost_kib = 19456
    /// t_cost = 2
    /// p_cost = 1
    /// ```
    ///
    /// # Errors
    /// [`ProfileError`] for malformed TOML, unknown keys, bad durations or
    /// out-of-range values.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile =
            toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        let d = Profile::default();
        let cost = match raw.password_cost {
            None => d.password_cost,
            Some(c) => PasswordCost {
                m_cost_kib: c.m_cost_kib.unwrap_or(d.password_cost.m_cost_kib),
                t_cost: c.t_cost.unwrap_or(d.password_cost.t_cost),
                p_cost: c.p_cost.unwrap_or(d.password_cost.p_cost),
            },
        };
        let p = Profile {
            auth_window_steps: raw.auth_window_steps.unwrap_or(d.auth_window_steps),
            max_submit_delay_ms: duration(
                "max_submit_delay",
                raw.max_submit_delay,
                d.max_submit_delay_ms,
            )?,
            drift_ppm: raw.drift_ppm.unwrap_or(d.drift_ppm),
            sync_window_steps: raw.sync_window_steps.unwrap_or(d.sync_window_steps),
            max_devices_per_user: raw.max_devices_per_user.unwrap_or(d.max_devices_per_user),
            lockout_threshold: raw.lockout_threshold.unwrap_or(d.lockout_threshold),
            lockout_period_ms: duration("lockout_period", raw.lockout_period, d.lockout_period_ms)?,
            root_api_enable: raw.root_api_enable.unwrap_or(d.root_api_enable),
            recovery_code_ttl_ms: duration(
                "recovery_code_ttl",
                raw.recovery_code_ttl,
                d.recovery_code_ttl_ms,
            )?,
            recovery_grant_ttl_ms: duration(
                "recovery_grant_ttl",
                raw.recovery_grant_ttl,
                d.recovery_grant_ttl_ms,
            )?,
            recovery_code_digits: raw.recovery_code_digits.unwrap_or(d.recovery_code_digits),
            password_cost: cost,
            rng_seed: raw.rng_seed.or(d.rng_seed),
        };
        p.validate()?;
        Ok(p)
    }

    /// Check the ranges: windows at most 100,000 steps, a submit delay of
    /// at most one hour, a drift bound of at most 10,000 ppm (1 %), at
    /// least one device per user, recovery digits 6–8, valid Argon2 costs.
    ///
    /// # Errors
    /// [`ProfileError::Range`] naming the key.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let range = |key: &'static str, message: String| Err(ProfileError::Range { key, message });
        if self.auth_window_steps > 100_000 {
            return range("auth_window_steps", "must be at most 100000".into());
        }
        if self.sync_window_steps > 100_000 {
            return range("sync_window_steps", "must be at most 100000".into());
        }
        if self.max_submit_delay_ms > MAX_SUBMIT_DELAY_MS {
            return range("max_submit_delay", "must be at most 1h".into());
        }
        if self.drift_ppm > MAX_DRIFT_PPM {
            return range("drift_ppm", format!("must be at most {MAX_DRIFT_PPM}"));
        }
        if self.max_devices_per_user == 0 {
            return range("max_devices_per_user", "must be at least 1".into());
        }
        if !(6..=8).contains(&self.recovery_code_digits) {
            return range("recovery_code_digits", "must be 6, 7 or 8".into());
        }
        let c = self.password_cost;
        if argon2::Params::new(c.m_cost_kib, c.t_cost, c.p_cost, None).is_err() {
            return range(
                "password_cost",
                format!(
                    "invalid Argon2 parameters m={} t={} p={}",
                    c.m_cost_kib, c.t_cost, c.p_cost
                ),
            );
        }
        Ok(())
    }

    /// The default rules with cheap password hashing and a fixed RNG seed:
    /// for tests and simulations (fast, deterministic). Never in production.
    #[must_use]
    pub fn for_tests() -> Profile {
        Profile {
            password_cost: PasswordCost::TESTING,
            rng_seed: Some(0x5eed),
            ..Profile::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_design_table() {
        let p = Profile::default();
        assert_eq!(p.auth_window_steps, 1);
        assert_eq!(p.max_submit_delay_ms, 60_000);
        assert_eq!(p.drift_ppm, 20);
        assert_eq!(p.sync_window_steps, 1000);
        assert_eq!(p.max_devices_per_user, 1);
        assert!(!p.root_api_enable);
        assert!(p.lockout_threshold > 0);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn toml_overrides_and_keeps_defaults() {
        let p = Profile::from_toml(
            "max_devices_per_user = 8\nlockout_period = \"2m\"\n[password_cost]\nt_cost = 3\n",
        )
        .unwrap();
        assert_eq!(p.max_devices_per_user, 8);
        assert_eq!(p.lockout_period_ms, 120_000);
        assert_eq!(p.password_cost.t_cost, 3);
        assert_eq!(p.password_cost.m_cost_kib, PasswordCost::OWASP.m_cost_kib);
        assert_eq!(p.auth_window_steps, 1);
        assert_eq!(Profile::from_toml("").unwrap(), Profile::default());
    }

    #[test]
    fn toml_errors_are_clear() {
        assert!(matches!(
            Profile::from_toml("auth_window = 1"),
            Err(ProfileError::Toml(m)) if m.contains("auth_window")
        ));
        assert!(matches!(
            Profile::from_toml("lockout_period = \"soon\""),
            Err(ProfileError::Duration {
                key: "lockout_period",
                ..
            })
        ));
        assert!(matches!(
            Profile::from_toml("max_devices_per_user = 0"),
            Err(ProfileError::Range {
                key: "max_devices_per_user",
                ..
            })
        ));
        assert!(matches!(
            Profile::from_toml("recovery_code_digits = 9"),
            Err(ProfileError::Range { .. })
        ));
        assert!(Profile::from_toml("auth_window_steps = -1").is_err());
        assert!(matches!(
            Profile::from_toml("max_submit_delay = \"61m\""),
            Err(ProfileError::Range {
                key: "max_submit_delay",
                ..
            })
        ));
        assert!(matches!(
            Profile::from_toml("max_submit_delay = \"-1s\""),
            Err(ProfileError::Duration {
                key: "max_submit_delay",
                ..
            })
        ));
        assert!(matches!(
            Profile::from_toml("drift_ppm = 10001"),
            Err(ProfileError::Range {
                key: "drift_ppm",
                ..
            })
        ));
        assert!(Profile::from_toml("drift_ppm = -1").is_err());
    }

    #[test]
    fn the_sync_rule_numbers_are_settings() {
        let p =
            Profile::from_toml("max_submit_delay = \"2m\"\ndrift_ppm = 0\nauth_window_steps = 3\n")
                .unwrap();
        assert_eq!(
            (p.max_submit_delay_ms, p.drift_ppm, p.auth_window_steps),
            (120_000, 0, 3)
        );
        assert_eq!(
            Profile::from_toml("max_submit_delay = \"1h\"")
                .unwrap()
                .max_submit_delay_ms,
            MAX_SUBMIT_DELAY_MS
        );
    }
}
