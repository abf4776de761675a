//! AWS Signature Version 4, sans-IO: parse the `Authorization` header,
//! rebuild the canonical request from the request's parts, and check the
//! signature and the request time (against the caller-supplied `now`, the
//! engine's clock). [`sign`] produces the headers a client adds.
//!
//! Errors carry AWS's codes: `MissingAuthenticationToken`,
//! `IncompleteSignature`, `InvalidClientTokenId` (decided by the caller's
//! key lookup), `SignatureDoesNotMatch` (also for expired or not-yet-valid
//! request times, with AWS's "Signature expired" wording).

use std::fmt::Write as _;

use fobsim_core::Timestamp;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::query::encode_into;
use crate::{AwsError, amz_date, parse_amz_date};

/// Constant-time equality of two byte strings (signatures).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS's default tolerance between the request time and the server's clock.
pub const DEFAULT_MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// Scope date `YYYYMMDD`.
    pub date: &'a str,
    /// Scope region.
    pub region: &'a str,
    /// Scope service (`iam`, `sts`).
    pub service: &'a str,
    /// Signed header names, lowercase, in header order (`host;x-amz-date`).
    pub signed_headers: &'a str,
    /// The hex signature.
    pub signature: &'a str,
}

fn incomplete(what: &str) -> AwsError {
    AwsError::sender(
        400,
        "IncompleteSignature",
        format!(
            "Authorization header requires '{what}' parameter. Authorization={ALGORITHM} Credential=..., SignedHeaders=..., Signature=..."
        ),
    )
}

/// `SignatureDoesNotMatch` with AWS's wording.
#[must_use]
pub fn signature_mismatch() -> AwsError {
    AwsError::sender(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )
}

/// `MissingAuthenticationToken`.
#[must_use]
pub fn missing_token() -> AwsError {
    AwsError::sender(
        403,
        "MissingAuthenticationToken",
        "Request is missing Authentication Token",
    )
}

/// Parse an `Authorization` header value.
///
/// # Errors
/// `IncompleteSignature` (400) for another algorithm or missing or
/// malformed parts.
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, AwsError> {
    let Some(rest) = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
    else {
        let alg: String = value
            .split(' ')
            .next()
            .unwrap_or("")
            .chars()
            .take(32)
            .collect();
        return Err(AwsError::sender(
            400,
            "IncompleteSignature",
            format!("Unsupported AWS 'algorithm': '{alg}'. Only {ALGORITHM} is supported."),
        ));
    };
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        }
    }
    let cred = cred.ok_or_else(|| incomplete("Credential"))?;
    let signed_headers = signed
        .filter(|s| !s.is_empty())
        .ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = sig
        .filter(|s| !s.is_empty())
        .ok_or_else(|| incomplete("Signature"))?;
    let mut it = cred.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(AwsError::sender(
            400,
            "IncompleteSignature",
            "Credential should be scoped to a valid region, service and request type: KEY/YYYYMMDD/REGION/SERVICE/aws4_request.",
        ));
    };
    if akid.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || region.is_empty()
    {
        return Err(AwsError::sender(
            400,
            "IncompleteSignature",
            "Credential should be scoped to a valid region, service and request type: KEY/YYYYMMDD/REGION/SERVICE/aws4_request.",
        ));
    }
    Ok(Authorization {
        access_key_id: akid,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The parts of an HTTP request SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// `POST`, `GET`.
    pub method: &'a str,
    /// The raw (still percent-encoded) path.
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// Headers; names may be in any case; repeated names allowed.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Lowercase hex SHA-256.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: this cannot fail.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The signing key of a secret for a scope.
#[must_use]
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k = String::with_capacity(secret.len() + 4);
    k.push_str("AWS4");
    k.push_str(secret);
    let k = hmac(k.as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1), b.get(i + 2))
            && let (Some(h), Some(l)) = ((*h as char).to_digit(16), (*l as char).to_digit(16))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut ek = String::new();
            encode_into(&mut ek, &percent_decode_lossy(k));
            let mut ev = String::new();
            encode_into(&mut ev, &percent_decode_lossy(v));
            (ek, ev)
        })
        .collect();
    pairs.sort();
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut s = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            s.push('/');
        }
        encode_into(&mut s, seg);
    }
    s
}

fn trim_all(v: &str) -> String {
    v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request (SigV4 task 1) for `signed_headers`
/// (`;`-separated lowercase names) and the payload hash.
#[must_use]
pub fn canonical_request(
    parts: &RequestParts<'_>,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(parts.method);
    s.push('\n');
    s.push_str(&canonical_path(parts.path));
    s.push('\n');
    s.push_str(&canonical_query(parts.query));
    s.push('\n');
    for name in signed_headers.split(';') {
        let values: Vec<String> = parts
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| trim_all(v))
            .collect();
        s.push_str(name);
        s.push(':');
        s.push_str(&values.join(","));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(signed_headers);
    s.push('\n');
    s.push_str(payload_hash);
    s
}

/// The string to sign (SigV4 task 2).
#[must_use]
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// What a verified request told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The request time (`X-Amz-Date`).
    pub time: Timestamp,
}

/// The request time of a signed request (`X-Amz-Date`).
///
/// # Errors
/// `IncompleteSignature` when it is missing or malformed.
pub fn request_time(parts: &RequestParts<'_>) -> Result<(Timestamp, String), AwsError> {
    let raw = parts.header("x-amz-date").ok_or_else(|| {
        AwsError::sender(
            400,
            "IncompleteSignature",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let t = parse_amz_date(raw.trim()).ok_or_else(|| {
        AwsError::sender(
            400,
            "IncompleteSignature",
            "Date must be in ISO-8601 'basic format'. Got the X-Amz-Date header in another format.",
        )
    })?;
    Ok((t, raw.trim().to_string()))
}

/// Check the request time against `now` (± `max_skew_ms`).
///
/// # Errors
/// `SignatureDoesNotMatch` (403) "Signature expired: ..." or "Signature
/// not yet current: ...".
pub fn check_time(t: Timestamp, now: Timestamp, max_skew_ms: u64) -> Result<(), AwsError> {
    let skew = i64::try_from(max_skew_ms).unwrap_or(i64::MAX);
    let mins = max_skew_ms / 60_000;
    let earliest = now.add_millis(-skew);
    let latest = now.add_millis(skew);
    if t < earliest {
        return Err(AwsError::sender(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Signature expired: {} is now earlier than {} ({} - {mins} min.)",
                amz_date(t),
                amz_date(earliest),
                amz_date(now)
            ),
        ));
    }
    if t > latest {
        return Err(AwsError::sender(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Signature not yet current: {} is still later than {} ({} + {mins} min.)",
                amz_date(t),
                amz_date(latest),
                amz_date(now)
            ),
        ));
    }
    Ok(())
}

/// Verify the signature of `parts` under `auth` with `secret`, and the
/// request time against `now`.
///
/// # Errors
/// `IncompleteSignature`, `SignatureDoesNotMatch` (403), or
/// `XAmzContentSHA256Mismatch` (400) when a declared payload hash is not
/// the body's.
pub fn verify(
    parts: &RequestParts<'_>,
    auth: &Authorization<'_>,
    secret: &str,
    now: Timestamp,
    max_skew_ms: u64,
) -> Result<Verified, AwsError> {
    let (t, raw_date) = request_time(parts)?;
    if !raw_date.starts_with(auth.date) {
        return Err(AwsError::sender(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{raw_date}'.",
                auth.date,
                &raw_date[..8.min(raw_date.len())]
            ),
        ));
    }
    let signed = auth.signed_headers;
    if !signed.split(';').any(|h| h == "host") {
        return Err(AwsError::sender(
            400,
            "IncompleteSignature",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let body_hash = sha256_hex(parts.body);
    if let Some(declared) = parts.header("x-amz-content-sha256")
        && declared != body_hash
        && declared != "UNSIGNED-PAYLOAD"
    {
        return Err(AwsError::sender(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    let creq = canonical_request(parts, signed, &body_hash);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let sts = string_to_sign(&raw_date, &scope, &creq);
    let key = signing_key(secret, auth.date, auth.region, auth.service);
    let expected = hex::encode(hmac(&key, sts.as_bytes()));
    if !ct_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(signature_mismatch());
    }
    check_time(t, now, max_skew_ms)?;
    Ok(Verified { time: t })
}

/// Credentials a client signs with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token (for `ASIA...` session credentials).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Sign a request: returns the headers to add (`X-Amz-Date`,
/// `X-Amz-Security-Token` for sessions, `Authorization`). `request.headers`
/// must already hold `host` (and e.g. `content-type`); all are signed.
#[must_use]
pub fn sign(
    request: &RequestParts<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    now: Timestamp,
) -> Vec<(String, String)> {
    let RequestParts {
        method,
        path,
        query,
        headers,
        body,
    } = *request;
    let date = amz_date(now);
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    all.push(("x-amz-date".into(), date.clone()));
    if let Some(tok) = &creds.session_token {
        all.push(("x-amz-security-token".into(), tok.clone()));
    }
    let mut names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let signed = names.join(";");
    let parts = RequestParts {
        method,
        path,
        query,
        headers: &all,
        body,
    };
    let creq = canonical_request(&parts, &signed, &sha256_hex(body));
    let scope = format!("{}/{region}/{service}/aws4_request", &date[..8]);
    let sts = string_to_sign(&date, &scope, &creq);
    let key = signing_key(&creds.secret_access_key, &date[..8], region, service);
    let sig = hex::encode(hmac(&key, sts.as_bytes()));
    let mut auth = String::with_capacity(200);
    let _ = write!(
        auth,
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
        creds.access_key_id
    );
    let mut out = vec![("X-Amz-Date".to_string(), date)];
    if let Some(tok) = &creds.session_token {
        out.push(("X-Amz-Security-Token".to_string(), tok.clone()));
    }
    out.push(("Authorization".to_string(), auth));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// The worked example of the AWS General Reference ("Examples of the
    /// complete Signature Version 4 signing process", IAM ListUsers).
    #[test]
    fn aws_documentation_vector() {
        let headers = h(&[
            ("Host", "iam.amazonaws.com"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let creq = canonical_request(&parts, "content-type;host;x-amz-date", &sha256_hex(b""));
        assert_eq!(
            sha256_hex(creq.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        )
        .unwrap();
        let now = parse_amz_date("20150830T123600Z").unwrap();
        verify(&parts, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS).unwrap();
        assert_eq!(
            verify(&parts, &auth, "wrong", now, DEFAULT_MAX_SKEW_MS)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
    }

    fn signed(body: &[u8], now: Timestamp) -> Vec<(String, String)> {
        let mut headers = h(&[
            ("Host", "127.0.0.1:9000"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ]);
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SECRET.into(),
            session_token: Some("tok".into()),
        };
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let extra = sign(&parts, &creds, "us-east-1", "sts", now);
        headers.extend(extra);
        headers
    }

    #[test]
    fn sign_then_verify_and_tampering() {
        let now = Timestamp::from_secs(1_767_225_600);
        let body = b"Action=GetSessionToken&Version=2011-06-15";
        let headers = signed(body, now);
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let auth_value = parts.header("authorization").unwrap().to_string();
        let auth = parse_authorization(&auth_value).unwrap();
        assert_eq!(
            (auth.access_key_id, auth.service, auth.region),
            ("AKIDEXAMPLE", "sts", "us-east-1")
        );
        assert_eq!(
            auth.signed_headers,
            "content-type;host;x-amz-date;x-amz-security-token"
        );
        verify(&parts, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS).unwrap();
        // Tampered body.
        let tampered = RequestParts {
            body: b"Action=GetSessionToken&Version=2011-06-16",
            ..parts
        };
        assert_eq!(
            verify(&tampered, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        // Tampered signed header.
        let mut h2 = headers.clone();
        for (n, v) in &mut h2 {
            if n.eq_ignore_ascii_case("x-amz-security-token") {
                *v = "other".into();
            }
        }
        let p2 = RequestParts {
            headers: &h2,
            ..parts
        };
        assert_eq!(
            verify(&p2, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        // Time: 5 minutes each way is fine, beyond is not.
        verify(
            &parts,
            &auth,
            SECRET,
            now.add_millis(300_000),
            DEFAULT_MAX_SKEW_MS,
        )
        .unwrap();
        let e = verify(
            &parts,
            &auth,
            SECRET,
            now.add_millis(300_001),
            DEFAULT_MAX_SKEW_MS,
        )
        .unwrap_err();
        assert_eq!((e.status, e.code), (403, "SignatureDoesNotMatch"));
        assert_eq!(
            e.message,
            "Signature expired: 20260101T000000Z is now earlier than 20260101T000000Z (20260101T000500Z - 5 min.)"
        );
        let e = verify(
            &parts,
            &auth,
            SECRET,
            now.add_millis(-300_001),
            DEFAULT_MAX_SKEW_MS,
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("Signature not yet current"),
            "{}",
            e.message
        );
    }

    #[test]
    fn malformed_authorization_headers() {
        for (v, code) in [
            ("AWS3 foo", "IncompleteSignature"),
            (
                "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab",
                "IncompleteSignature",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AK/2015/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=ab",
                "IncompleteSignature",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/iam, SignedHeaders=host, Signature=ab",
                "IncompleteSignature",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/iam/aws4_request, Signature=ab",
                "IncompleteSignature",
            ),
            ("", "IncompleteSignature"),
        ] {
            assert_eq!(parse_authorization(v).unwrap_err().code, code, "{v}");
        }
        let now = Timestamp::from_secs(1_767_225_600);
        let headers = h(&[("host", "x"), ("x-amz-date", "20260101T000000Z")]);
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let auth = parse_authorization("AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/iam/aws4_request, SignedHeaders=x-amz-date, Signature=ab").unwrap();
        assert_eq!(
            verify(&parts, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS)
                .unwrap_err()
                .code,
            "IncompleteSignature"
        );
        let auth = parse_authorization("AWS4-HMAC-SHA256 Credential=AK/20251231/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab").unwrap();
        assert_eq!(
            verify(&parts, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        let headers = h(&[("host", "x")]);
        let parts = RequestParts {
            headers: &headers,
            ..parts
        };
        assert_eq!(
            verify(&parts, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS)
                .unwrap_err()
                .code,
            "IncompleteSignature"
        );
    }
}
