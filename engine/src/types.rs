//! The nouns of the engine: tokens, MFA devices, users, the outbox.

use fobsim_core::Timestamp;

use fobsim_core::Principal;

use crate::store::{OffsetWindow, StepRange};

/// How the stores (and the key ring's sealed session tokens) key a
/// principal: `#root` for the root user (IAM user names cannot contain
/// `#`), the user name otherwise.
pub(crate) trait StorageKey {
    /// The key.
    fn storage_key(&self) -> &str;
}

impl StorageKey for Principal {
    fn storage_key(&self) -> &str {
        match self {
            Principal::Root => ROOT_KEY,
            Principal::User(n) => n,
        }
    }
}

/// The inverse of [`StorageKey::storage_key`].
pub(crate) fn principal_from_key(key: &str) -> Principal {
    if key == ROOT_KEY {
        Principal::Root
    } else {
        Principal::User(key.to_string())
    }
}

pub(crate) const ROOT_KEY: &str = "#root";

/// One assigned MFA device, as `ListMFADevices` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDevice {
    /// Whose device it is (`UserName`; the root user for the account's own).
    pub user: Principal,
    /// The serial number.
    pub serial: String,
    /// When it was enabled.
    pub enable_date: Timestamp,
}

/// What `GetUser` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The principal.
    pub principal: Principal,
    /// `UserName`: the IAM user name, or the account id for the root user.
    pub user_name: String,
    /// `UserId`: a stable id (`AIDA...` for users, the account id for root).
    pub user_id: String,
    /// `Arn`: `arn:aws:iam::ACCOUNT:user/NAME` or `arn:aws:iam::ACCOUNT:root`.
    pub arn: String,
    /// Serial numbers of the assigned MFA devices.
    pub mfa_serials: Vec<String>,
}

/// Observable state of a registered hardware token (what
/// [`Engine::token_state`](crate::Engine::token_state) reports): its
/// [`TokenStateRow`](crate::store::TokenStateRow) and its step and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    /// The serial number.
    pub serial: String,
    /// Who it is assigned to, if anyone.
    pub assigned_to: Option<Principal>,
    /// When it was enabled (while assigned).
    pub enable_date: Option<Timestamp>,
    /// The learned offsets: the fob-clock offsets (ms) consistent with the
    /// evidence since the last enable or resync.
    pub offsets: OffsetWindow,
    /// The last accepted step (replay barrier); kept across deactivation.
    pub last_step: Option<u64>,
    /// The lowest step of the current run of acceptances.
    pub run_start: Option<u64>,
    /// The barrier before the current run began.
    pub run_base: Option<u64>,
    /// Used steps left ahead of the barrier by a server clock that stepped
    /// back: never accepted again.
    pub quarantine: Option<StepRange>,
    /// Consecutive sign-in failures since the last success or lock.
    pub consecutive_failures: u32,
    /// Locked until this time (if it is in the future).
    pub locked_until: Option<Timestamp>,
    /// Step length in seconds.
    pub period: u64,
    /// Digits of the codes.
    pub digits: u8,
}

/// Where a recovery verification code was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxChannel {
    /// The account email address.
    Email,
    /// The account phone number (SMS / voice).
    Phone,
}

/// A message the engine "sent": the harness reads these instead of a
/// mailbox or a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The address or number.
    pub to: String,
    /// Email or phone.
    pub channel: OutboxChannel,
    /// The verification code.
    pub code: String,
    /// When it was sent.
    pub at: Timestamp,
}

/// How a console sign-in went ([`Engine::console_sign_in_step`](crate::Engine::console_sign_in_step)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleSignIn {
    /// Signed in: the principal has no MFA device.
    WithoutMfa,
    /// Signed in with a code from the principal's MFA device.
    WithMfa,
    /// Signed in once without MFA after a completed root recovery.
    Recovered,
    /// The password is right; a code from the MFA device is needed.
    MfaRequired,
}
