//! Errors: every failure carries an AWS error code, an HTTP status and a
//! message shaped like the one AWS returns.

use std::fmt;

/// What went wrong, as the AWS API would classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A code did not verify at enable/resync (`InvalidAuthenticationCode`, 403).
    InvalidAuthenticationCode,
    /// The serial is already assigned, or a user/account/token already
    /// exists (`EntityAlreadyExists`, 409).
    EntityAlreadyExists,
    /// The user already has the maximum number of MFA devices
    /// (`LimitExceeded`, 409).
    LimitExceeded,
    /// Unknown user, serial, or a device not assigned to this principal
    /// (`NoSuchEntity`, 404).
    NoSuchEntity,
    /// A sign-in or session MFA check failed: wrong password, missing or
    /// wrong code, replayed code (`AccessDenied`, 403).
    AccessDenied,
    /// The device is locked after too many consecutive failures
    /// (`AccessDenied`, 403; the kind lets callers tell it apart).
    DeviceLocked,
    /// The root user tried to enable hardware MFA through the API
    /// (`AccessDenied`, 403): the seed allows the console path only.
    RootConsoleOnly,
    /// An alternative-factor (email/phone) verification failed or no
    /// recovery is pending (`AccessDenied`, 403).
    RecoveryFailed,
    /// Malformed input: a code that is not exactly `digits` ASCII digits,
    /// a bad serial, user name, account id, seed record or profile
    /// (`ValidationError`, 400).
    ValidationError,
    /// The store failed (IO, SQLite, corrupted row, wrong encryption key)
    /// (`ServiceFailure`, 500).
    ServiceFailure,
    /// The store stayed busy (a database locked by another process) longer
    /// than its busy timeout; nothing was changed: retry
    /// (`ServiceUnavailable`, 503).
    ServiceUnavailable,
}

impl ErrorKind {
    /// The AWS error code string.
    #[must_use]
    pub fn aws_code(self) -> &'static str {
        match self {
            ErrorKind::InvalidAuthenticationCode => "InvalidAuthenticationCode",
            ErrorKind::EntityAlreadyExists => "EntityAlreadyExists",
            ErrorKind::LimitExceeded => "LimitExceeded",
            ErrorKind::NoSuchEntity => "NoSuchEntity",
            ErrorKind::AccessDenied
            | ErrorKind::DeviceLocked
            | ErrorKind::RootConsoleOnly
            | ErrorKind::RecoveryFailed => "AccessDenied",
            ErrorKind::ValidationError => "ValidationError",
            ErrorKind::ServiceFailure => "ServiceFailure",
            ErrorKind::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status AWS answers with.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidAuthenticationCode
            | ErrorKind::AccessDenied
            | ErrorKind::DeviceLocked
            | ErrorKind::RootConsoleOnly
            | ErrorKind::RecoveryFailed => 403,
            ErrorKind::EntityAlreadyExists | ErrorKind::LimitExceeded => 409,
            ErrorKind::NoSuchEntity => 404,
            ErrorKind::ValidationError => 400,
            ErrorKind::ServiceFailure => 500,
            ErrorKind::ServiceUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.aws_code())
    }
}

/// An engine error: a kind (AWS code + status) and an AWS-style message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct EngineError {
    /// The classification.
    pub kind: ErrorKind,
    /// The human message, as AWS would word it. Never contains secrets.
    pub message: String,
}

impl EngineError {
    /// Build an error.
    #[must_use]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EngineError {
            kind,
            message: message.into(),
        }
    }

    /// The AWS error code (`InvalidAuthenticationCode`, `NoSuchEntity`, ...).
    #[must_use]
    pub fn aws_code(&self) -> &'static str {
        self.kind.aws_code()
    }

    /// The HTTP status of the AWS error response.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        EngineError::new(ErrorKind::ValidationError, message)
    }

    pub(crate) fn no_such_user(name: &str) -> Self {
        EngineError::new(
            ErrorKind::NoSuchEntity,
            format!("The user with name {name} cannot be found."),
        )
    }

    pub(crate) fn no_such_device(serial: &str) -> Self {
        EngineError::new(
            ErrorKind::NoSuchEntity,
            format!("MFA Device with serial number {serial} does not exist."),
        )
    }

    pub(crate) fn device_in_use() -> Self {
        EngineError::new(
            ErrorKind::EntityAlreadyExists,
            "MFA Device is already in use.",
        )
    }

    pub(crate) fn invalid_code() -> Self {
        EngineError::new(
            ErrorKind::InvalidAuthenticationCode,
            "Authentication code for device is not valid.",
        )
    }

    pub(crate) fn mfa_failed() -> Self {
        EngineError::new(
            ErrorKind::AccessDenied,
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
        )
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy => EngineError::new(
                ErrorKind::ServiceUnavailable,
                "The service is busy: retry the request.",
            ),
            e => EngineError::new(ErrorKind::ServiceFailure, e.to_string()),
        }
    }
}

/// SQLite's "busy" and "locked" (after the busy timeout) are
/// [`StoreError::Busy`]; every other error is [`StoreError::Sqlite`].
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

/// Failures of a [`crate::Store`] backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    /// The database stayed locked (by another connection or process)
    /// longer than the busy timeout: retry later.
    #[error("the database is busy: it stayed locked longer than the busy timeout")]
    Busy,
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A key file cannot be used: group or others may read it, or it
    /// cannot be read or created.
    #[error("key file {0}")]
    KeyFilePrivacy(#[from] fobsim_core::private_file::PrivateFileError),
    /// The database file cannot be created or made private.
    #[error("database file {path}: {source}")]
    DatabaseFile {
        /// The database file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The encryption key is malformed (wrong length, not hex).
    #[error("encryption key: {0}")]
    Key(String),
    /// A secret could not be decrypted: wrong key or a tampered row.
    #[error("cannot decrypt the secret of {what}: wrong key or tampered data")]
    Decrypt {
        /// Which row (a serial number, or `key check`).
        what: String,
    },
    /// A row holds a value the engine cannot interpret.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database was written by a newer schema version.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
    /// PostgreSQL refused a statement or a connection (an unreachable
    /// server in the middle of operation is [`StoreError::Busy`] instead).
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[source] postgres::Error),
}

/// A PostgreSQL error with what the server said (`postgres::Error`'s own
/// text is only "db error" for those) or the cause of a client-side one.
pub(crate) fn postgres_message(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Errors loading a [`crate::Profile`] from TOML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The TOML text is malformed or has unknown/ill-typed keys.
    #[error("profile: {0}")]
    Toml(String),
    /// A duration such as `"15m"` could not be parsed.
    #[error("profile: {key}: {message}")]
    Duration {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A value is outside its allowed range.
    #[error("profile: {key}: {message}")]
    Range {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl From<ProfileError> for EngineError {
    fn from(e: ProfileError) -> Self {
        EngineError::validation(e.to_string())
    }
}
