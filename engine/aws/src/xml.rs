//! AWS Query responses, sans-IO: `<XResponse xmlns=...>` with a
//! `<XResult>` and `<ResponseMetadata><RequestId>`, and `<ErrorResponse>`
//! with `<Error><Type><Code><Message>` and `<RequestId>`. Every text is
//! escaped; characters XML 1.0 cannot carry become U+FFFD.
//!
//! A minimal reader ([`text_of`], [`texts_of`]) is here too, for clients of
//! these documents (tests, benches, the harness adapter).

use fobsim_core::Timestamp;

use crate::{AwsError, Fault, Service, iso8601};

/// Append `s` with `&<>"'` escaped and XML-illegal characters replaced.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{fffe}' | '\u{ffff}') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// A small append-only XML writer.
struct Writer {
    s: String,
}

impl Writer {
    fn new(root: &str, service: Service) -> Self {
        let mut s = String::with_capacity(512);
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        s.push_str(root);
        s.push_str(" xmlns=\"");
        s.push_str(service.namespace());
        s.push_str("\">");
        Writer { s }
    }
    fn open(&mut self, tag: &str) {
        self.s.push('<');
        self.s.push_str(tag);
        self.s.push('>');
    }
    fn close(&mut self, tag: &str) {
        self.s.push_str("</");
        self.s.push_str(tag);
        self.s.push('>');
    }
    fn leaf(&mut self, tag: &str, text: &str) {
        self.open(tag);
        escape_into(&mut self.s, text);
        self.close(tag);
    }
    fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.s.push('\n');
        self.s
    }
}

/// `<ErrorResponse>` for `err`.
#[must_use]
pub fn error_response(service: Service, err: &AwsError, request_id: &str) -> String {
    let mut w = Writer::new("ErrorResponse", service);
    w.open("Error");
    w.leaf(
        "Type",
        match err.fault {
            Fault::Sender => "Sender",
            Fault::Receiver => "Receiver",
        },
    );
    w.leaf("Code", err.code);
    w.leaf("Message", &err.message);
    w.close("Error");
    w.leaf("RequestId", request_id);
    w.finish("ErrorResponse")
}

/// A success response: `<{action}Response>`, the result element's inner
/// XML (if any) inside `<{action}Result>`, then the request id.
fn response(service: Service, action: &str, result: Option<&str>, request_id: &str) -> String {
    let root = format!("{action}Response");
    let mut w = Writer::new(&root, service);
    if let Some(inner) = result {
        let tag = format!("{action}Result");
        w.open(&tag);
        w.s.push_str(inner);
        w.close(&tag);
    }
    w.open("ResponseMetadata");
    w.leaf("RequestId", request_id);
    w.close("ResponseMetadata");
    w.finish(&root)
}

fn inner() -> Writer {
    Writer { s: String::new() }
}

/// An action without a result (`EnableMFADevice`, `ResyncMFADevice`,
/// `DeactivateMFADevice`).
#[must_use]
pub fn empty_response(service: Service, action: &str, request_id: &str) -> String {
    response(service, action, None, request_id)
}

/// The `<User>` of a `GetUser` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User<'a> {
    /// `UserName`: `None` for the account root user (AWS omits it, and
    /// `Path`, for the root user).
    pub user_name: Option<&'a str>,
    /// `UserId`.
    pub user_id: &'a str,
    /// `Arn`.
    pub arn: &'a str,
}

/// One `<member>` of a `ListMFADevices` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDevice<'a> {
    /// `SerialNumber`.
    pub serial: &'a str,
    /// `EnableDate`.
    pub enable_date: Timestamp,
}

/// `GetUser`. The root user has no `UserName`, as in AWS.
#[must_use]
pub fn get_user(user: &User<'_>, request_id: &str) -> String {
    let mut w = inner();
    w.open("User");
    if let Some(name) = user.user_name {
        w.leaf("Path", "/");
        w.leaf("UserName", name);
    }
    w.leaf("UserId", user.user_id);
    w.leaf("Arn", user.arn);
    w.close("User");
    response(Service::Iam, "GetUser", Some(&w.s), request_id)
}

/// `ListMFADevices`: one page, with `Marker` when truncated.
#[must_use]
pub fn list_mfa_devices(
    user_name: &str,
    devices: &[MfaDevice<'_>],
    next_marker: Option<&str>,
    request_id: &str,
) -> String {
    let mut w = inner();
    w.leaf(
        "IsTruncated",
        if next_marker.is_some() {
            "true"
        } else {
            "false"
        },
    );
    w.open("MFADevices");
    for d in devices {
        w.open("member");
        w.leaf("UserName", user_name);
        w.leaf("SerialNumber", d.serial);
        w.leaf("EnableDate", &iso8601(d.enable_date));
        w.close("member");
    }
    w.close("MFADevices");
    if let Some(m) = next_marker {
        w.leaf("Marker", m);
    }
    response(Service::Iam, "ListMFADevices", Some(&w.s), request_id)
}

/// Session credentials as `GetSessionToken` returns them.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    /// `ASIA...` access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The opaque session token.
    pub session_token: String,
    /// When they expire.
    pub expiration: Timestamp,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// `GetSessionToken`.
#[must_use]
pub fn get_session_token(c: &SessionCredentials, request_id: &str) -> String {
    let mut w = inner();
    w.open("Credentials");
    w.leaf("AccessKeyId", &c.access_key_id);
    w.leaf("SecretAccessKey", &c.secret_access_key);
    w.leaf("SessionToken", &c.session_token);
    w.leaf("Expiration", &iso8601(c.expiration));
    w.close("Credentials");
    response(Service::Sts, "GetSessionToken", Some(&w.s), request_id)
}

/// `GetCallerIdentity`.
#[must_use]
pub fn get_caller_identity(arn: &str, user_id: &str, account: &str, request_id: &str) -> String {
    let mut w = inner();
    w.leaf("Arn", arn);
    w.leaf("UserId", user_id);
    w.leaf("Account", account);
    response(Service::Sts, "GetCallerIdentity", Some(&w.s), request_id)
}

/// Undo [`escape_into`] (and numeric character references).
#[must_use]
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The unescaped text of every `<tag>...</tag>` element (no attributes,
/// no nesting of the same tag), in document order.
#[must_use]
pub fn texts_of(doc: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(p) = rest.find(&open) {
        rest = &rest[p + open.len()..];
        let Some(e) = rest.find(&close) else { break };
        out.push(unescape(&rest[..e]));
        rest = &rest[e + close.len()..];
    }
    out
}

/// The unescaped text of the first `<tag>...</tag>`.
#[must_use]
pub fn text_of(doc: &str, tag: &str) -> Option<String> {
    texts_of(doc, tag).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RID: &str = "c1f0a3b2-0000-4000-8000-000000000001";

    #[test]
    fn snapshot_error_response_escapes_everything() {
        let e = AwsError::validation("Value '<a href=\"x\">&'\u{1}' at 'userName' failed");
        insta::assert_snapshot!(error_response(Service::Iam, &e, RID));
        let e = AwsError::internal();
        insta::assert_snapshot!("sts_internal", error_response(Service::Sts, &e, RID));
    }

    #[test]
    fn snapshot_iam_results() {
        let user = User {
            user_name: Some("alice"),
            user_id: "AIDA0123456789ABCDEF0",
            arn: "arn:aws:iam::123456789012:user/alice",
        };
        insta::assert_snapshot!("get_user", get_user(&user, RID));
        let devices = [MfaDevice {
            serial: "GAHT00000001",
            enable_date: Timestamp::from_millis(1_767_225_630_500),
        }];
        insta::assert_snapshot!(
            "list_mfa_devices",
            list_mfa_devices("alice", &devices, Some("R0FIVDAwMDAwMDAy"), RID)
        );
        insta::assert_snapshot!(
            "enable",
            empty_response(Service::Iam, "EnableMFADevice", RID)
        );
    }

    #[test]
    fn snapshot_sts_results() {
        let c = SessionCredentials {
            access_key_id: "ASIAEXAMPLE000000001".into(),
            secret_access_key: "secret/with+chars".into(),
            session_token: "tok&en".into(),
            expiration: Timestamp::from_secs(1_767_268_800),
        };
        insta::assert_snapshot!("get_session_token", get_session_token(&c, RID));
        assert!(!format!("{c:?}").contains("secret/with"));
    }

    #[test]
    fn reader_inverts_writer() {
        let odd = "a<b>&\"c' é";
        let e = AwsError::validation(odd);
        let doc = error_response(Service::Iam, &e, RID);
        assert_eq!(text_of(&doc, "Message").as_deref(), Some(odd));
        assert_eq!(text_of(&doc, "Code").as_deref(), Some("ValidationError"));
        assert_eq!(texts_of("<a>1</a><a>2</a><a>", "a"), vec!["1", "2"]);
        assert_eq!(unescape("&#x41;&#66;&bogus;&"), "AB&bogus;&");
    }
}
