//! The sans-IO service: a whole conversation through
//! `AwsService::handle_at`, byte-exact (insta). Fixed seeds make request
//! ids and session credentials deterministic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::fmt::Write as _;
use std::sync::Arc;

use fobsim_aws::Service;
use fobsim_aws::client::build_request;
use fobsim_aws::sigv4::{Credentials, RequestParts};
use fobsim_core::Principal;
use fobsim_core::Timestamp;
use fobsim_engine::api::credentials::KeyRing;
use fobsim_engine::api::policy::Policy;
use fobsim_engine::api::service::{AwsService, ServiceConfig};
use fobsim_engine::testing;

const SEED_POLICY: &str = include_str!("../../fixtures/policies/manage-own-mfa.json");

fn alice() -> Credentials {
    Credentials {
        access_key_id: "AKIAALICE0000000001".into(),
        secret_access_key: "alice-secret-key-0001".into(),
        session_token: None,
    }
}

/// Split raw request bytes back into parts and hand them to the service.
fn exchange(svc: &AwsService, now: Timestamp, raw: &[u8], log: &mut String) -> String {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let r = svc.handle_at(now, &parts);
    writeln!(log, "> {body}\n< {} {}", r.status, r.body.trim_end()).unwrap();
    r.body
}

#[test]
fn snapshot_conversation() {
    let t0 = testing::T0;
    let (engine, mut fobs) = testing::in_memory_with_fobs(1, t0);
    let mut ring = KeyRing::new(&[1; 32], Some(99));
    let a = alice();
    ring.add_access_key(
        &a.access_key_id,
        &a.secret_access_key,
        Principal::user("alice"),
    )
    .unwrap();
    let policies = [(
        "alice".to_string(),
        vec![Arc::new(Policy::parse(SEED_POLICY).unwrap())],
    )]
    .into_iter()
    .collect();
    let config = ServiceConfig {
        request_id_seed: 7,
        ..ServiceConfig::default()
    };
    let svc = AwsService::new(
        Arc::new(engine),
        ring,
        policies,
        Arc::new(fobsim_core::SimClock::new(t0)),
        config,
    )
    .unwrap();
    let serial = fobs[0].serial().to_string();
    let host = "127.0.0.1:8080";
    let mut log = String::new();
    let t1 = t0.add_millis(30_000);
    let c1 = testing::press(&mut fobs[0], t0);
    let c2 = testing::press(&mut fobs[0], t1);
    let iam = |params: &[(&str, &str)], now: Timestamp, who: &Credentials| {
        build_request(host, Service::Iam, params, who, "us-east-1", now).unwrap()
    };
    exchange(
        &svc,
        t1,
        &iam(
            &[
                ("Action", "EnableMFADevice"),
                ("UserName", "alice"),
                ("SerialNumber", &serial),
                ("AuthenticationCode1", &c1),
                ("AuthenticationCode2", &c2),
            ],
            t1,
            &a,
        ),
        &mut log,
    );
    exchange(
        &svc,
        t1,
        &iam(&[("Action", "ListMFADevices")], t1, &a),
        &mut log,
    );
    exchange(
        &svc,
        t1,
        &iam(
            &[
                ("Action", "DeactivateMFADevice"),
                ("UserName", "alice"),
                ("SerialNumber", &serial),
            ],
            t1,
            &a,
        ),
        &mut log,
    );
    let t2 = t1.add_millis(30_000);
    let c3 = testing::press(&mut fobs[0], t2);
    let sts = build_request(
        host,
        Service::Sts,
        &[
            ("Action", "GetSessionToken"),
            ("SerialNumber", &serial),
            ("TokenCode", &c3),
        ],
        &a,
        "us-east-1",
        t2,
    )
    .unwrap();
    let body = exchange(&svc, t2, &sts, &mut log);
    exchange(&svc, t2, &sts, &mut log);
    let session = Credentials {
        access_key_id: fobsim_aws::xml::text_of(&body, "AccessKeyId").unwrap(),
        secret_access_key: fobsim_aws::xml::text_of(&body, "SecretAccessKey").unwrap(),
        session_token: fobsim_aws::xml::text_of(&body, "SessionToken"),
    };
    exchange(
        &svc,
        t2,
        &iam(
            &[
                ("Action", "DeactivateMFADevice"),
                ("UserName", "alice"),
                ("SerialNumber", &serial),
            ],
            t2,
            &session,
        ),
        &mut log,
    );
    exchange(
        &svc,
        t2,
        &iam(&[("Action", "GetUser"), ("UserName", "x<y")], t2, &a),
        &mut log,
    );
    exchange(&svc, t2, &iam(&[("Action", "Nope")], t2, &a), &mut log);
    exchange(
        &svc,
        t2.add_millis(600_000),
        &iam(&[("Action", "GetUser")], t2, &a),
        &mut log,
    );
    insta::assert_snapshot!(log);
}
