//! The outcome names a scenario may expect (`-> NAME`, `!NAME`): the AWS
//! error codes the IAM/STS actions answer, and the finer kinds an engine
//! may tell apart behind one AWS code. A name outside this list is a
//! mistake in the file (`-> Denied`), refused before anything runs.

/// AWS error codes of the IAM and STS actions the scenarios use.
pub const ERROR_CODES: &[&str] = &[
    "AccessDenied",
    "EntityAlreadyExists",
    "InvalidAuthenticationCode",
    "InvalidClientTokenId",
    "InvalidInput",
    "LimitExceeded",
    "NoSuchEntity",
    "ServiceFailure",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "ValidationError",
];

/// Finer kinds of refusal, each with the AWS code it is answered with: an
/// adapter that declares the `error-kinds` capability reports them (the
/// built-in engine's `DeviceLocked`, `RootConsoleOnly`, `RecoveryFailed`;
/// the adapters' `WrongPassword` and `UnsupportedToken`), one that speaks
/// only the AWS error shape (code and message) cannot.
pub const ERROR_KINDS: &[(&str, &str)] = &[
    ("DeviceLocked", "AccessDenied"),
    ("RecoveryFailed", "AccessDenied"),
    ("RootConsoleOnly", "AccessDenied"),
    ("UnsupportedToken", "ValidationError"),
    ("WrongPassword", "AccessDenied"),
];

/// Whether `name` is an AWS code or a finer kind the language knows.
#[must_use]
pub fn is_known(name: &str) -> bool {
    ERROR_CODES.contains(&name) || kind_code(name).is_some()
}

/// The AWS code a finer kind is answered with; `None` for anything that is
/// not a finer kind (AWS codes included).
#[must_use]
pub fn kind_code(name: &str) -> Option<&'static str> {
    ERROR_KINDS
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, code)| *code)
}

/// Every known name, comma-separated (AWS codes, then kinds).
#[must_use]
pub fn known_list() -> String {
    ERROR_CODES
        .iter()
        .copied()
        .chain(ERROR_KINDS.iter().map(|(k, _)| *k))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The known name closest to a mistyped one, if one is close: same letters
/// ignoring case, one containing the other, or at most a third of the
/// letters different.
#[must_use]
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let all = ERROR_CODES
        .iter()
        .copied()
        .chain(ERROR_KINDS.iter().map(|(k, _)| *k));
    let mut best: Option<(usize, &'static str)> = None;
    for known in all {
        let k = known.to_ascii_lowercase();
        let d = if k == lower {
            0
        } else if lower.len() >= 4 && (k.contains(&lower) || lower.contains(&k)) {
            1
        } else {
            let d = edit_distance(&k, &lower);
            if d * 3 > k.len().max(lower.len()) {
                continue;
            }
            d
        };
        if best.is_none_or(|(b, _)| d < b) {
            best = Some((d, known));
        }
    }
    best.map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistyped_names_get_a_suggestion() {
        assert_eq!(suggest("Denied"), Some("AccessDenied"));
        assert_eq!(suggest("accessdenied"), Some("AccessDenied"));
        assert_eq!(suggest("DeviceLock"), Some("DeviceLocked"));
        assert_eq!(suggest("InvalidAuthCode"), None);
        assert_eq!(suggest("NoSuchEntiy"), Some("NoSuchEntity"));
        assert_eq!(suggest("Xyzzy"), None);
        assert!(is_known("DeviceLocked") && is_known("ValidationError"));
        assert!(!is_known("Denied"));
        assert_eq!(kind_code("DeviceLocked"), Some("AccessDenied"));
        assert_eq!(kind_code("AccessDenied"), None);
    }
}
