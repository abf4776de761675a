//! SigV4 on arbitrary requests: parsing any `Authorization` header and
//! verifying any request never panics; a request we signed verifies, and
//! the same request with its body changed does not.
#![no_main]

use fobsim_aws::sigv4::{Credentials, RequestParts, parse_authorization, sign, verify};
use fobsim_core::Timestamp;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let auth = lines.next().unwrap_or_default();
    let date = lines.next().unwrap_or_default();
    let header = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default();
    let now = Timestamp::from_secs(1_440_938_160);
    // 1. Any header, any request: an answer, never a panic.
    let mut headers = vec![
        ("host".to_string(), "iam.amazonaws.com".to_string()),
        ("x-amz-date".to_string(), date.to_string()),
        ("authorization".to_string(), auth.to_string()),
    ];
    if let Some((n, v)) = header.split_once(':') {
        headers.push((n.to_string(), v.to_string()));
    }
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    if let Ok(a) = parse_authorization(auth) {
        let _ = verify(&parts, &a, SECRET, now, 300_000);
    }
    // 2. What we sign verifies; a changed body does not.
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: SECRET.into(),
        session_token: None,
    };
    let mut headers = vec![
        ("host".to_string(), "iam.amazonaws.com".to_string()),
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
    ];
    if let Some((n, v)) = header.split_once(':') {
        let n = n.trim().to_ascii_lowercase();
        if !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            && !matches!(n.as_str(), "host" | "authorization" | "x-amz-date" | "content-type")
            && v.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            headers.push((n, v.trim().to_string()));
        }
    }
    let unsigned = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let Ok(added) = sign(&unsigned, &creds, "us-east-1", "iam", now) else {
        return;
    };
    let mut signed = headers.clone();
    signed.extend(added);
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &signed,
        body: body.as_bytes(),
    };
    let auth = signed
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .expect("signing adds an Authorization header");
    let a = parse_authorization(&auth).expect("our Authorization parses");
    verify(&parts, &a, SECRET, now, 300_000).expect("what we sign verifies");
    let mut other = body.as_bytes().to_vec();
    other.push(b'!');
    let changed = RequestParts {
        body: &other,
        ..parts
    };
    assert!(verify(&changed, &a, SECRET, now, 300_000).is_err());
});
