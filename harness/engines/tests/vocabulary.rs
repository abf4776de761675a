//! The scenario language knows every outcome fobsim's engine answers: each
//! `ErrorKind`'s AWS code, and its name where the kind is finer than the
//! code. A new kind fails to compile here until the language learns it
//! (`fobsim_harness::scenario::vocabulary`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_engine::ErrorKind;
use fobsim_harness::scenario::vocabulary::{ERROR_CODES, kind_code};

/// Every kind, by an exhaustive match: a new variant is a compile error.
fn every_kind() -> Vec<ErrorKind> {
    let all = [
        ErrorKind::InvalidAuthenticationCode,
        ErrorKind::EntityAlreadyExists,
        ErrorKind::LimitExceeded,
        ErrorKind::NoSuchEntity,
        ErrorKind::AccessDenied,
        ErrorKind::DeviceLocked,
        ErrorKind::RootConsoleOnly,
        ErrorKind::RecoveryFailed,
        ErrorKind::ValidationError,
        ErrorKind::ServiceFailure,
        ErrorKind::ServiceUnavailable,
    ];
    for k in all {
        match k {
            ErrorKind::InvalidAuthenticationCode
            | ErrorKind::EntityAlreadyExists
            | ErrorKind::LimitExceeded
            | ErrorKind::NoSuchEntity
            | ErrorKind::AccessDenied
            | ErrorKind::DeviceLocked
            | ErrorKind::RootConsoleOnly
            | ErrorKind::RecoveryFailed
            | ErrorKind::ValidationError
            | ErrorKind::ServiceFailure
            | ErrorKind::ServiceUnavailable => {}
        }
    }
    all.to_vec()
}

#[test]
fn every_engine_outcome_is_a_known_name() {
    for k in every_kind() {
        let code = k.aws_code();
        assert!(
            ERROR_CODES.contains(&code),
            "{code} is not a known AWS code"
        );
        let name = format!("{k:?}");
        if name != code {
            assert_eq!(
                kind_code(&name),
                Some(code),
                "{name} is not a known finer kind answered as {code}"
            );
        }
    }
}
