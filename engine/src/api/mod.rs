//! The engine's API face: the engine as an AWS-compatible service, IAM (MFA
//! actions) and STS `GetSessionToken` over the AWS Query protocol, so the
//! AWS CLI, boto3 and the AWS SDKs work unchanged with `--endpoint-url`.
//! The wire format itself (Query, XML, SigV4) is the `fobsim-aws` crate;
//! this part knows who may do what:
//!
//! - [`policy`]: IAM identity-policy evaluation;
//! - [`credentials`]: access keys and STS session credentials;
//! - [`bootstrap`]: the account file (`fobsim serve --bootstrap`);
//! - [`service`]: one HTTP request in, one HTTP response out, given `now`;
//! - [`server`]: the hyper/tokio shell (bounded bodies, never panics).
//!
//! Time is a value here too: the service asks a [`fobsim_core::Clock`] for
//! the engine's clock; SigV4 request times are checked against it, not the
//! system clock.

pub mod bootstrap;
pub mod credentials;
pub mod policy;
pub mod server;
pub mod service;

use std::borrow::Cow;

use fobsim_aws::{AwsError, Fault};

use crate::error::{EngineError, ErrorKind};

/// An engine refusal as the API answers it: the engine's AWS code, status
/// and message; store failures become a generic `ServiceFailure` (details
/// go to the log, never to the client).
impl From<EngineError> for AwsError {
    fn from(e: EngineError) -> Self {
        if e.kind == ErrorKind::ServiceFailure {
            return AwsError::internal();
        }
        if e.kind == ErrorKind::ServiceUnavailable {
            return AwsError {
                status: 503,
                code: "ServiceUnavailable",
                message: Cow::Borrowed("The service is busy: retry the request."),
                fault: Fault::Receiver,
            };
        }
        AwsError {
            status: e.http_status(),
            code: e.aws_code(),
            message: Cow::Owned(e.message),
            fault: Fault::Sender,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_keep_code_and_status_but_hide_store_details() {
        let e: AwsError = EngineError::new(
            ErrorKind::EntityAlreadyExists,
            "MFA Device is already in use.",
        )
        .into();
        assert_eq!(
            (e.status, e.code, e.fault),
            (409, "EntityAlreadyExists", Fault::Sender)
        );
        let e: AwsError =
            EngineError::new(ErrorKind::ServiceFailure, "sqlite: /secret/path").into();
        assert_eq!((e.status, e.fault), (500, Fault::Receiver));
        assert!(!e.message.contains("sqlite"));
    }
}
