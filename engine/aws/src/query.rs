//! The AWS Query protocol, sans-IO: `application/x-www-form-urlencoded`
//! bodies into a [`Form`], and a [`Form`] into a validated [`Action`] with
//! AWS's error codes and wording (`MissingAction`, `InvalidAction`,
//! `ValidationError` "1 validation error detected: ...").

use std::borrow::Cow;

use crate::{AwsError, Service};

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 64;

/// Longest value echoed back in an error message (longer ones are cut).
const ECHO_MAX: usize = 64;

/// Why a form body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding at byte {offset}")]
    BadEscape {
        /// Byte offset of the `%` in the body.
        offset: usize,
    },
    /// A decoded name or value is not UTF-8.
    #[error("parameter {index} is not valid UTF-8")]
    NotUtf8 {
        /// 1-based parameter index.
        index: usize,
    },
    /// A parameter name appears twice.
    #[error("parameter {name} appears more than once")]
    Duplicate {
        /// The name (cut to a few characters).
        name: String,
    },
    /// An empty parameter name (`=x`).
    #[error("parameter {index} has an empty name")]
    EmptyName {
        /// 1-based parameter index.
        index: usize,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {max} parameters")]
    TooMany {
        /// The limit.
        max: usize,
    },
}

impl From<FormError> for AwsError {
    /// `MalformedQueryString` with HTTP 404, as AWS's Common Errors page
    /// documents it for every Query-protocol service.
    fn from(e: FormError) -> Self {
        AwsError::sender(404, "MalformedQueryString", e.to_string())
    }
}

/// Decoded form parameters, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode one form component (`+` is a space), `base` is its
/// offset in the body (for error messages).
fn decode(part: &[u8], base: usize, index: usize) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let v = part
                    .get(i + 1)
                    .and_then(|h| hex_val(*h))
                    .zip(part.get(i + 2).and_then(|l| hex_val(*l)))
                    .ok_or(FormError::BadEscape { offset: base + i })?;
                out.push(v.0 << 4 | v.1);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8 { index })
}

impl Form {
    /// Parse a form body (or a query string). Empty components (`a=1&&b=2`)
    /// are skipped; a name without `=` has an empty value.
    ///
    /// # Errors
    /// [`FormError`] for bad escapes, non-UTF-8, duplicates, empty names or
    /// too many parameters.
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut offset = 0;
        for part in body.split(|b| *b == b'&') {
            let base = offset;
            offset += part.len() + 1;
            if part.is_empty() {
                continue;
            }
            let index = pairs.len() + 1;
            if index > MAX_PARAMS {
                return Err(FormError::TooMany { max: MAX_PARAMS });
            }
            let (k, v) = match part.iter().position(|b| *b == b'=') {
                Some(p) => (&part[..p], &part[p + 1..]),
                None => (part, &[][..]),
            };
            let name = decode(k, base, index)?;
            if name.is_empty() {
                return Err(FormError::EmptyName { index });
            }
            let value = decode(v, base + k.len() + 1, index)?;
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(FormError::Duplicate {
                    name: name.chars().take(ECHO_MAX).collect(),
                });
            }
            pairs.push((name, value));
        }
        Ok(Form { pairs })
    }

    /// The value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All parameters, in request order.
    #[must_use]
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Append `s` form-encoded (RFC 3986 unreserved kept, everything else
/// `%XX`; this is also SigV4's URI encoding).
pub fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// Encode parameters as a form body.
#[must_use]
pub fn encode_form(params: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        encode_into(&mut s, k);
        s.push('=');
        encode_into(&mut s, v);
    }
    s
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// IAM `GetUser` (the caller when `user_name` is absent).
    GetUser {
        /// `UserName`.
        user_name: Option<String>,
    },
    /// IAM `ListMFADevices`.
    ListMfaDevices {
        /// `UserName` (the caller when absent).
        user_name: Option<String>,
        /// `Marker` from a previous truncated answer.
        marker: Option<String>,
        /// `MaxItems` (1–1000, default 100).
        max_items: u32,
    },
    /// IAM `EnableMFADevice`.
    EnableMfaDevice {
        /// `UserName`. Required by AWS's API model (the SDKs enforce it);
        /// absent here means the caller, so root credentials can be
        /// refused by the seed's rule rather than by a missing parameter.
        user_name: Option<String>,
        /// `SerialNumber`.
        serial: String,
        /// `AuthenticationCode1`.
        code1: String,
        /// `AuthenticationCode2`.
        code2: String,
    },
    /// IAM `ResyncMFADevice`.
    ResyncMfaDevice {
        /// `UserName` (absent: the caller).
        user_name: Option<String>,
        /// `SerialNumber`.
        serial: String,
        /// `AuthenticationCode1`.
        code1: String,
        /// `AuthenticationCode2`.
        code2: String,
    },
    /// IAM `DeactivateMFADevice`.
    DeactivateMfaDevice {
        /// `UserName` (the caller when absent).
        user_name: Option<String>,
        /// `SerialNumber`.
        serial: String,
    },
    /// STS `GetSessionToken`.
    GetSessionToken {
        /// `DurationSeconds` (validated against the caller's kind later).
        duration_seconds: Option<u32>,
        /// `SerialNumber`.
        serial: Option<String>,
        /// `TokenCode`.
        token_code: Option<String>,
    },
    /// STS `GetCallerIdentity`.
    GetCallerIdentity,
}

impl Action {
    /// The AWS operation name (`EnableMFADevice`, ...).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Action::GetUser { .. } => "GetUser",
            Action::ListMfaDevices { .. } => "ListMFADevices",
            Action::EnableMfaDevice { .. } => "EnableMFADevice",
            Action::ResyncMfaDevice { .. } => "ResyncMFADevice",
            Action::DeactivateMfaDevice { .. } => "DeactivateMFADevice",
            Action::GetSessionToken { .. } => "GetSessionToken",
            Action::GetCallerIdentity => "GetCallerIdentity",
        }
    }

    /// The service the action belongs to.
    #[must_use]
    pub fn service(&self) -> Service {
        match self {
            Action::GetSessionToken { .. } | Action::GetCallerIdentity => Service::Sts,
            _ => Service::Iam,
        }
    }

    /// The IAM user the action is about, if named (`UserName`).
    #[must_use]
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Action::GetUser { user_name }
            | Action::ListMfaDevices { user_name, .. }
            | Action::EnableMfaDevice { user_name, .. }
            | Action::ResyncMfaDevice { user_name, .. }
            | Action::DeactivateMfaDevice { user_name, .. } => user_name.as_deref(),
            Action::GetSessionToken { .. } | Action::GetCallerIdentity => None,
        }
    }
}

/// A value for an error message: cut, and shown as AWS does (`'...'`).
fn echo(v: &str) -> String {
    let mut s: String = v.chars().take(ECHO_MAX).collect();
    if v.chars().count() > ECHO_MAX {
        s.push_str("...");
    }
    s
}

/// Collects constraint failures like AWS's "N validation errors detected".
struct Checker<'a> {
    form: &'a Form,
    errors: Vec<String>,
}

/// A character class of AWS parameter patterns.
#[derive(Clone, Copy)]
enum Pattern {
    /// `[\w+=,.@-]+` (user names).
    UserName,
    /// `[\w+=/:,.@-]+` (serial numbers).
    Serial,
    /// `[\d]+` (codes).
    Digits,
    /// `[\u0020-\u00FF]+` (markers).
    Marker,
}

impl Pattern {
    fn text(self) -> &'static str {
        match self {
            Pattern::UserName => "[\\w+=,.@-]+",
            Pattern::Serial => "[\\w+=/:,.@-]+",
            Pattern::Digits => "[\\d]+",
            Pattern::Marker => "[\\u0020-\\u00FF]+",
        }
    }

    fn ok(self, c: char) -> bool {
        match self {
            Pattern::UserName => c.is_ascii_alphanumeric() || "_+=,.@-".contains(c),
            Pattern::Serial => c.is_ascii_alphanumeric() || "_+=/:,.@-".contains(c),
            Pattern::Digits => c.is_ascii_digit(),
            Pattern::Marker => ('\u{20}'..='\u{ff}').contains(&c),
        }
    }
}

impl<'a> Checker<'a> {
    fn string(
        &mut self,
        param: &str,
        member: &str,
        required: bool,
        len: (usize, usize),
        pattern: Pattern,
    ) -> Option<String> {
        let Some(v) = self.form.get(param) else {
            if required {
                self.errors.push(format!(
                    "Value null at '{member}' failed to satisfy constraint: Member must not be null"
                ));
            }
            return None;
        };
        let n = v.chars().count();
        let mut good = true;
        if n < len.0 {
            good = false;
            self.errors.push(format!(
                "Value '{}' at '{member}' failed to satisfy constraint: Member must have length greater than or equal to {}",
                echo(v),
                len.0
            ));
        } else if n > len.1 {
            good = false;
            self.errors.push(format!(
                "Value '{}' at '{member}' failed to satisfy constraint: Member must have length less than or equal to {}",
                echo(v),
                len.1
            ));
        }
        if n > 0 && !v.chars().all(|c| pattern.ok(c)) {
            good = false;
            self.errors.push(format!(
                "Value '{}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: {}",
                echo(v),
                pattern.text()
            ));
        }
        good.then(|| v.to_string())
    }

    fn integer(&mut self, param: &str, member: &str, range: (u32, u32)) -> Option<u32> {
        let v = self.form.get(param)?;
        let Ok(n) = v.parse::<i64>() else {
            self.errors.push(format!(
                "Value '{}' at '{member}' failed to satisfy constraint: Member must be an integer",
                echo(v)
            ));
            return None;
        };
        if n < i64::from(range.0) {
            self.errors.push(format!(
                "Value '{n}' at '{member}' failed to satisfy constraint: Member must have value greater than or equal to {}",
                range.0
            ));
            return None;
        }
        if n > i64::from(range.1) {
            self.errors.push(format!(
                "Value '{n}' at '{member}' failed to satisfy constraint: Member must have value less than or equal to {}",
                range.1
            ));
            return None;
        }
        u32::try_from(n).ok()
    }

    fn finish(self) -> Result<(), AwsError> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(AwsError::validation(format!(
                "1 validation error detected: {}",
                self.errors[0]
            ))),
            n => Err(AwsError::validation(format!(
                "{n} validation errors detected: {}",
                self.errors.join("; ")
            ))),
        }
    }
}

const USER: (usize, usize) = (1, 64);
const SERIAL: (usize, usize) = (9, 256);
const CODE: (usize, usize) = (6, 8);

/// Read the action of a request for `service` from its form: `Action` and
/// `Version` first (`MissingAction`, `InvalidAction`, `MissingParameter`),
/// then every parameter's constraints (one `ValidationError` listing all).
///
/// # Errors
/// The [`AwsError`] AWS would answer with.
pub fn parse_action(service: Service, form: &Form) -> Result<Action, AwsError> {
    let Some(name) = form.get("Action") else {
        return Err(AwsError::sender(400, "MissingAction", "Missing Action"));
    };
    let Some(version) = form.get("Version") else {
        return Err(AwsError::sender(
            400,
            "MissingParameter",
            "The request must contain the parameter Version",
        ));
    };
    let known = matches!(
        (service, name),
        (
            Service::Iam,
            "GetUser"
                | "ListMFADevices"
                | "EnableMFADevice"
                | "ResyncMFADevice"
                | "DeactivateMFADevice",
        ) | (Service::Sts, "GetSessionToken" | "GetCallerIdentity")
    );
    if !known || version != service.version() {
        return Err(AwsError::sender(
            400,
            "InvalidAction",
            format!(
                "Could not find operation {} for version {}",
                echo(name),
                echo(version)
            ),
        ));
    }
    let mut c = Checker {
        form,
        errors: Vec::new(),
    };
    let action = match name {
        "GetUser" => {
            let user_name = c.string("UserName", "userName", false, (1, 128), Pattern::UserName);
            Action::GetUser { user_name }
        }
        "ListMFADevices" => {
            let user_name = c.string("UserName", "userName", false, (1, 128), Pattern::UserName);
            let marker = c.string("Marker", "marker", false, (1, 320), Pattern::Marker);
            let max_items = c.integer("MaxItems", "maxItems", (1, 1000)).unwrap_or(100);
            Action::ListMfaDevices {
                user_name,
                marker,
                max_items,
            }
        }
        "EnableMFADevice" | "ResyncMFADevice" => {
            let user_name = c.string("UserName", "userName", false, USER, Pattern::UserName);
            let serial = c.string(
                "SerialNumber",
                "serialNumber",
                true,
                SERIAL,
                Pattern::Serial,
            );
            let code1 = c.string(
                "AuthenticationCode1",
                "authenticationCode1",
                true,
                CODE,
                Pattern::Digits,
            );
            let code2 = c.string(
                "AuthenticationCode2",
                "authenticationCode2",
                true,
                CODE,
                Pattern::Digits,
            );
            c.finish()?;
            let (Some(serial), Some(code1), Some(code2)) = (serial, code1, code2) else {
                return Err(AwsError::validation("1 validation error detected"));
            };
            return Ok(if name == "EnableMFADevice" {
                Action::EnableMfaDevice {
                    user_name,
                    serial,
                    code1,
                    code2,
                }
            } else {
                Action::ResyncMfaDevice {
                    user_name,
                    serial,
                    code1,
                    code2,
                }
            });
        }
        "DeactivateMFADevice" => {
            let user_name = c.string("UserName", "userName", false, USER, Pattern::UserName);
            let serial = c.string(
                "SerialNumber",
                "serialNumber",
                true,
                SERIAL,
                Pattern::Serial,
            );
            c.finish()?;
            let Some(serial) = serial else {
                return Err(AwsError::validation("1 validation error detected"));
            };
            return Ok(Action::DeactivateMfaDevice { user_name, serial });
        }
        "GetSessionToken" => {
            let duration_seconds = c.integer("DurationSeconds", "durationSeconds", (900, 129_600));
            let serial = c.string(
                "SerialNumber",
                "serialNumber",
                false,
                SERIAL,
                Pattern::Serial,
            );
            let token_code = c.string("TokenCode", "tokenCode", false, CODE, Pattern::Digits);
            Action::GetSessionToken {
                duration_seconds,
                serial,
                token_code,
            }
        }
        _ => Action::GetCallerIdentity,
    };
    c.finish()?;
    Ok(action)
}

/// The message of an `AccessDenied` for an IAM action the policies refuse
/// (AWS's wording, explicit or implicit deny).
#[must_use]
pub fn not_authorized(
    caller_arn: &str,
    action: &str,
    resource: &str,
    explicit: bool,
) -> Cow<'static, str> {
    let tail = if explicit {
        " with an explicit deny in an identity-based policy".to_string()
    } else {
        format!(" because no identity-based policy allows the iam:{action} action")
    };
    Cow::Owned(format!(
        "User: {caller_arn} is not authorized to perform: iam:{action} on resource: {resource}{tail}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> Form {
        Form::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn form_decoding() {
        let f = form("Action=GetUser&Version=2010-05-08&UserName=a%2Bb+c&&Flag");
        assert_eq!(f.get("UserName"), Some("a+b c"));
        assert_eq!(f.get("Flag"), Some(""));
        assert_eq!(f.pairs().len(), 4);
        assert_eq!(
            Form::parse(b"a=%zz"),
            Err(FormError::BadEscape { offset: 2 })
        );
        assert_eq!(
            Form::parse(b"a=1&b=%4"),
            Err(FormError::BadEscape { offset: 6 })
        );
        assert_eq!(Form::parse(b"a=%ff"), Err(FormError::NotUtf8 { index: 1 }));
        assert!(matches!(
            Form::parse(b"a=1&a=2"),
            Err(FormError::Duplicate { .. })
        ));
        assert_eq!(Form::parse(b"=1"), Err(FormError::EmptyName { index: 1 }));
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert_eq!(
            Form::parse(many.join("&").as_bytes()),
            Err(FormError::TooMany { max: MAX_PARAMS })
        );
        assert_eq!(Form::parse(b"").unwrap().pairs().len(), 0);
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let odd = "<&>\"' é=+%";
        let body = encode_form(&[("Action", "GetUser"), ("X", odd)]);
        assert_eq!(body, "Action=GetUser&X=%3C%26%3E%22%27%20%C3%A9%3D%2B%25");
        assert_eq!(form(&body).get("X"), Some(odd));
    }

    #[test]
    fn action_and_version_errors() {
        let e = parse_action(Service::Iam, &form("Version=2010-05-08")).unwrap_err();
        assert_eq!((e.status, e.code), (400, "MissingAction"));
        let e = parse_action(Service::Iam, &form("Action=GetUser")).unwrap_err();
        assert_eq!(e.code, "MissingParameter");
        let e =
            parse_action(Service::Iam, &form("Action=CreateUser&Version=2010-05-08")).unwrap_err();
        assert_eq!(e.code, "InvalidAction");
        assert_eq!(
            e.message,
            "Could not find operation CreateUser for version 2010-05-08"
        );
        let e = parse_action(Service::Sts, &form("Action=GetUser&Version=2010-05-08")).unwrap_err();
        assert_eq!(e.code, "InvalidAction");
        let e = parse_action(Service::Iam, &form("Action=GetUser&Version=2011-06-15")).unwrap_err();
        assert_eq!(e.code, "InvalidAction");
    }

    #[test]
    fn parameters_are_validated_like_aws() {
        let e = parse_action(
            Service::Iam,
            &form("Action=EnableMFADevice&Version=2010-05-08&UserName=alice"),
        )
        .unwrap_err();
        let e2 = parse_action(
            Service::Iam,
            &form("Action=ResyncMFADevice&Version=2010-05-08&SerialNumber=GAHT00000001&AuthenticationCode1=123456"),
        )
        .unwrap_err();
        assert_eq!(
            e2.message,
            "1 validation error detected: Value null at 'authenticationCode2' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(e.code, "ValidationError");
        assert!(
            e.message
                .starts_with("3 validation errors detected: Value null at 'serialNumber'"),
            "{}",
            e.message
        );
        let e = parse_action(
            Service::Iam,
            &form("Action=EnableMFADevice&Version=2010-05-08&UserName=%3Cx%3E&SerialNumber=GAHT00000001&AuthenticationCode1=12345a&AuthenticationCode2=123456"),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "2 validation errors detected: Value '<x>' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+; Value '12345a' at 'authenticationCode1' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\d]+"
        );
        let a = parse_action(
            Service::Iam,
            &form("Action=EnableMFADevice&Version=2010-05-08&UserName=alice&SerialNumber=GAHT00000001&AuthenticationCode1=123456&AuthenticationCode2=654321"),
        )
        .unwrap();
        assert_eq!(a.name(), "EnableMFADevice");
        assert_eq!(a.user_name(), Some("alice"));
        let e = parse_action(
            Service::Sts,
            &form("Action=GetSessionToken&Version=2011-06-15&DurationSeconds=10"),
        )
        .unwrap_err();
        assert!(
            e.message.contains("greater than or equal to 900"),
            "{}",
            e.message
        );
        let e = parse_action(
            Service::Sts,
            &form("Action=GetSessionToken&Version=2011-06-15&DurationSeconds=x"),
        )
        .unwrap_err();
        assert!(e.message.contains("Member must be an integer"));
        let a = parse_action(
            Service::Iam,
            &form("Action=ListMFADevices&Version=2010-05-08&MaxItems=2"),
        )
        .unwrap();
        assert_eq!(
            a,
            Action::ListMfaDevices {
                user_name: None,
                marker: None,
                max_items: 2
            }
        );
        let long = "x".repeat(200);
        let e = parse_action(
            Service::Iam,
            &form(&format!(
                "Action=DeactivateMFADevice&Version=2010-05-08&SerialNumber={long}&UserName={long}"
            )),
        )
        .unwrap_err();
        assert!(e.message.len() < 600, "long values are cut: {}", e.message);
    }
}
