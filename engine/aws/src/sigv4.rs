//! AWS Signature Version 4, sans-IO, on the AWS SDK's own signer
//! (`aws-sigv4`). We parse the `Authorization` header and check what AWS
//! refuses (algorithm, credential scope, `X-Amz-Date`, an unsigned `Host`,
//! a payload hash that is not the body's, the request time against the
//! caller-supplied `now`, the engine's clock); the signature itself is
//! checked by re-signing exactly the headers the request lists in
//! `SignedHeaders`, at its `X-Amz-Date`, in its scope, over its body, with
//! the stored secret, and comparing in constant time. [`sign`] produces the
//! headers a client adds.
//!
//! Errors carry AWS's codes: `MissingAuthenticationToken`,
//! `IncompleteSignature`, `InvalidClientTokenId` (decided by the caller's
//! key lookup), `SignatureDoesNotMatch` (also for expired or not-yet-valid
//! request times, with AWS's "Signature expired" wording).

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign as sdk_sign};
use aws_sigv4::sign::v4::SigningParams;
use fobsim_core::Timestamp;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{AwsError, amz_date, parse_amz_date};

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
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `t` for the signer, which formats years of four digits only.
fn system_time(t: Timestamp) -> Result<SystemTime, SignError> {
    // 9999-12-31T23:59:59Z
    if t.as_secs() > 253_402_300_799 {
        return Err(SignError("a request time after the year 9999".into()));
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(t.as_millis()))
}

/// The request target as the signer reads it (still percent-encoded).
fn target(parts: &RequestParts<'_>) -> String {
    let path = if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    };
    let sep = if parts.query.is_empty() { "" } else { "?" };
    format!("{path}{sep}{}", parts.query)
}

/// Why the SDK's signer refused a request (a header name or value, or the
/// request target, that HTTP does not allow).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request")]
pub struct SignError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// One SigV4 signature with the SDK's signer: the signature and the
/// headers it adds. `headers` are signed as given (plus `x-amz-date`, and
/// `x-amz-security-token` when `token` is set), except `excluded`.
fn sdk_signature(
    parts: &RequestParts<'_>,
    headers: &[(&str, &str)],
    body_hash: String,
    (access_key_id, secret, token): (&str, &str, Option<&str>),
    (region, service, time): (&str, &str, Timestamp),
    excluded: Vec<Cow<'static, str>>,
) -> Result<(String, Vec<(String, String)>), SignError> {
    let identity = aws_credential_types::Credentials::new(
        access_key_id,
        secret,
        token.map(str::to_string),
        None,
        "fobsim",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(excluded);
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(system_time(time)?)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.into()))?
        .into();
    let request = SignableRequest::new(
        parts.method,
        target(parts),
        headers.iter().copied(),
        SignableBody::Precomputed(body_hash),
    )
    .map_err(|e| SignError(e.into()))?;
    let (instructions, signature) = sdk_sign(request, &params)
        .map_err(|e| SignError(e.into()))?
        .into_parts();
    let added = instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Ok((signature, added))
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
    let expected = resign(parts, auth, secret, t, body_hash).map_err(|_| signature_mismatch())?;
    if !bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        return Err(signature_mismatch());
    }
    check_time(t, now, max_skew_ms)?;
    Ok(Verified { time: t })
}

/// The signature the request would carry if it had been signed with
/// `secret`: the SDK's signer over exactly the headers listed in
/// `SignedHeaders` (every value of each, in request order; a listed header
/// the request lacks is signed empty), at the request time `t`, in the
/// credential scope, over the body's hash.
fn resign(
    parts: &RequestParts<'_>,
    auth: &Authorization<'_>,
    secret: &str,
    t: Timestamp,
    body_hash: String,
) -> Result<String, SignError> {
    let listed: Vec<&str> = auth.signed_headers.split(';').collect();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(listed.len() + 1);
    for name in &listed {
        let before = headers.len();
        headers.extend(
            parts
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| (*name, v.as_str())),
        );
        if headers.len() == before {
            headers.push((name, ""));
        }
    }
    let listed_has = |h: &str| listed.iter().any(|n| n.eq_ignore_ascii_case(h));
    // The signer adds `x-amz-date` (from `t`, which is the header's value)
    // and `x-amz-security-token` (from the identity): only when listed.
    let token = if listed_has("x-amz-security-token") {
        parts.header("x-amz-security-token")
    } else {
        None
    };
    let excluded = if listed_has("x-amz-date") {
        Vec::new()
    } else {
        vec![Cow::Borrowed("x-amz-date")]
    };
    let (signature, _) = sdk_signature(
        parts,
        &headers,
        body_hash,
        (auth.access_key_id, secret, token),
        (auth.region, auth.service, t),
        excluded,
    )?;
    Ok(signature)
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
///
/// # Errors
/// [`SignError`] without a `host` header, when a header or the request
/// target is not valid HTTP, or `now` is after the year 9999.
pub fn sign(
    request: &RequestParts<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    now: Timestamp,
) -> Result<Vec<(String, String)>, SignError> {
    if request.header("host").is_none() {
        return Err(SignError("no host header".into()));
    }
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (_, added) = sdk_signature(
        request,
        &headers,
        sha256_hex(request.body),
        (
            &creds.access_key_id,
            &creds.secret_access_key,
            creds.session_token.as_deref(),
        ),
        (region, service, now),
        Vec::new(),
    )?;
    Ok(added)
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
        // Signing the same request at the same time gives the documented
        // signature (the canonical request hashes to f536975d...a59).
        let unsigned = h(&[
            ("Host", "iam.amazonaws.com"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ]);
        let added = sign(
            &RequestParts {
                headers: &unsigned,
                ..parts
            },
            &Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: SECRET.into(),
                session_token: None,
            },
            "us-east-1",
            "iam",
            now,
        )
        .unwrap();
        assert_eq!(
            added,
            h(&[
                ("x-amz-date", "20150830T123600Z"),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                ),
            ])
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
        let extra = sign(&parts, &creds, "us-east-1", "sts", now).unwrap();
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
    fn what_cannot_be_signed_is_an_error() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SECRET.into(),
            session_token: None,
        };
        let host = h(&[("host", "127.0.0.1:9000")]);
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &host,
            body: b"",
        };
        let now = Timestamp::from_secs(1_767_225_600);
        assert!(sign(&parts, &creds, "us-east-1", "iam", now).is_ok());
        let late = Timestamp::from_secs(253_402_300_800);
        assert!(sign(&parts, &creds, "us-east-1", "iam", late).is_err());
        let no_host = h(&[("content-type", "text/plain")]);
        let parts = RequestParts {
            headers: &no_host,
            ..parts
        };
        assert!(sign(&parts, &creds, "us-east-1", "iam", now).is_err());
        let bad = h(&[("host", "x\ny")]);
        let parts = RequestParts {
            headers: &bad,
            ..parts
        };
        assert!(sign(&parts, &creds, "us-east-1", "iam", now).is_err());
    }

    #[test]
    fn only_the_listed_headers_are_signed() {
        let now = Timestamp::from_secs(1_767_225_600);
        let body = b"Action=GetSessionToken&Version=2011-06-15";
        let mut headers = signed(body, now);
        // What clients and proxies add after signing is not covered...
        headers.extend(h(&[
            ("User-Agent", "Boto3/1.40 md/Botocore#1.40"),
            ("Content-Length", "41"),
            ("X-Amzn-Trace-Id", "Root=1-0"),
            ("Accept-Encoding", "identity"),
        ]));
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let auth_value = parts.header("authorization").unwrap().to_string();
        let auth = parse_authorization(&auth_value).unwrap();
        verify(&parts, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS).unwrap();
        // ...and a header the signature lists must be there as signed.
        let without: Vec<_> = headers
            .iter()
            .filter(|(n, _)| n != "Content-Type")
            .cloned()
            .collect();
        let parts = RequestParts {
            headers: &without,
            ..parts
        };
        assert_eq!(
            verify(&parts, &auth, SECRET, now, DEFAULT_MAX_SKEW_MS)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
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
