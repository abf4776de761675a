//! IAM policy documents on arbitrary input: parsing never panics, and any
//! policy that parses evaluates every request without panicking; an
//! explicit Deny always wins over an Allow of the same request.
#![no_main]

use std::sync::Arc;

use fobsim_engine::api::policy::{Decision, Policy, RequestContext, evaluate};
use libfuzzer_sys::fuzz_target;

const ACTIONS: [&str; 6] = [
    "iam:EnableMFADevice",
    "iam:ResyncMFADevice",
    "iam:DeactivateMFADevice",
    "iam:ListMFADevices",
    "iam:GetUser",
    "sts:GetSessionToken",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(policy) = Policy::parse(&text) else {
        return;
    };
    let policy = Arc::new(policy);
    let allow_all = Arc::new(
        Policy::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
            .expect("allow-all parses"),
    );
    for action in ACTIONS {
        for resource in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:mfa/alice",
            "arn:aws:iam::123456789012:user/*?[a]",
            "*",
        ] {
            for username in [Some("alice"), Some("${aws:username}"), None] {
                for mfa_present in [Some(true), Some(false), None] {
                    let ctx = RequestContext {
                        action,
                        resource,
                        username,
                        mfa_present,
                    };
                    let alone = evaluate(std::slice::from_ref(&policy), &ctx);
                    let with = evaluate(&[Arc::clone(&policy), Arc::clone(&allow_all)], &ctx);
                    if let Decision::ExplicitDeny(_) = alone {
                        assert_eq!(with, alone, "a Deny must win over an Allow");
                    } else {
                        assert_eq!(with, Decision::Allow);
                    }
                }
            }
        }
    }
});
