//! IAM identity-policy evaluation, sans-IO.
//!
//! Supported: `Version` (`2012-10-17` enables policy variables),
//! `Statement` (one object or a list), `Sid`, `Effect`, `Action` /
//! `NotAction` and `Resource` / `NotResource` (strings or lists, `*` and
//! `?` wildcards; actions case-insensitive), policy variables
//! `${aws:username}`, `${*}`, `${?}`, `${$}`, and the condition operators
//! `Bool` and `BoolIfExists` (any key; values `true`/`false`, several
//! values are ORed, several keys and operators ANDed). Anything else
//! (`Principal`, other operators) is refused when the policy is loaded,
//! never silently ignored.
//!
//! Evaluation: an explicit `Deny` wins over any `Allow`; without an
//! `Allow` the request is denied by default.

use serde_json::Value;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON.
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    /// A structural problem, with the statement index (1-based) when known.
    #[error("policy statement {statement}: {message}")]
    Invalid {
        /// 1-based statement index (0: the document itself).
        statement: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    In(Vec<String>),
    NotIn(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BoolCondition {
    if_exists: bool,
    /// Lowercased key.
    key: String,
    values: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    actions: Match,
    resources: Match,
    conditions: Vec<BoolCondition>,
}

/// A parsed identity policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    variables: bool,
    statements: Vec<Statement>,
}

/// What a request is, for evaluation.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// `service:Action`, e.g. `iam:EnableMFADevice`.
    pub action: &'a str,
    /// The resource ARN.
    pub resource: &'a str,
    /// `aws:username` (absent for the root user).
    pub username: Option<&'a str>,
    /// `aws:MultiFactorAuthPresent` (absent for long-term keys).
    pub mfa_present: Option<bool>,
}

impl RequestContext<'_> {
    fn bool_key(&self, key: &str) -> Option<bool> {
        match key {
            "aws:multifactorauthpresent" => self.mfa_present,
            _ => None,
        }
    }
}

/// The outcome of evaluating policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` statement matched and no `Deny` did.
    Allow,
    /// A `Deny` statement matched (its `Sid`, if any).
    ExplicitDeny(Option<String>),
    /// No statement allowed the request.
    ImplicitDeny,
}

fn strings(v: &Value, what: &str, statement: usize) -> Result<Vec<String>, PolicyError> {
    let bad = || PolicyError::Invalid {
        statement,
        message: format!("{what} must be a string or a list of strings"),
    };
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

fn one_of(
    obj: &serde_json::Map<String, Value>,
    yes: &str,
    no: &str,
    statement: usize,
) -> Result<Match, PolicyError> {
    match (obj.get(yes), obj.get(no)) {
        (Some(v), None) => Ok(Match::In(strings(v, yes, statement)?)),
        (None, Some(v)) => Ok(Match::NotIn(strings(v, no, statement)?)),
        _ => Err(PolicyError::Invalid {
            statement,
            message: format!("exactly one of {yes} and {no} is required"),
        }),
    }
}

fn conditions(v: &Value, statement: usize) -> Result<Vec<BoolCondition>, PolicyError> {
    let bad = |message: String| PolicyError::Invalid { statement, message };
    let ops = v
        .as_object()
        .ok_or_else(|| bad("Condition must be an object".into()))?;
    let mut out = Vec::new();
    for (op, block) in ops {
        let if_exists = match op.as_str() {
            "Bool" => false,
            "BoolIfExists" => true,
            other => {
                return Err(bad(format!(
                    "unsupported condition operator {other:?} (supported: Bool, BoolIfExists)"
                )));
            }
        };
        let keys = block
            .as_object()
            .ok_or_else(|| bad(format!("{op} must map condition keys to values")))?;
        for (key, vals) in keys {
            let vals = match vals {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            let mut values = Vec::new();
            for v in vals {
                let b = match &v {
                    Value::Bool(b) => *b,
                    Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                    Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                    _ => {
                        return Err(bad(format!(
                            "{op} {key}: values must be \"true\" or \"false\""
                        )));
                    }
                };
                values.push(b);
            }
            if values.is_empty() {
                return Err(bad(format!("{op} {key}: no values")));
            }
            out.push(BoolCondition {
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

impl Policy {
    /// Parse a policy document.
    ///
    /// # Errors
    /// [`PolicyError`] for malformed JSON, a missing or unknown `Effect`,
    /// both or neither of `Action`/`NotAction` (or `Resource`/
    /// `NotResource`), a `Principal` element, or an unsupported condition.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        let top = doc.as_object().ok_or(PolicyError::Invalid {
            statement: 0,
            message: "the document must be a JSON object".into(),
        })?;
        let variables = match top.get("Version").map(|v| v.as_str()) {
            None | Some(Some("2008-10-17")) => false,
            Some(Some("2012-10-17")) => true,
            _ => {
                return Err(PolicyError::Invalid {
                    statement: 0,
                    message: "Version must be \"2012-10-17\" or \"2008-10-17\"".into(),
                });
            }
        };
        let stmts = match top.get("Statement") {
            Some(Value::Array(a)) => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => {
                return Err(PolicyError::Invalid {
                    statement: 0,
                    message: "Statement must be an object or a list of objects".into(),
                });
            }
        };
        let mut statements = Vec::with_capacity(stmts.len());
        for (i, s) in stmts.iter().enumerate() {
            let n = i + 1;
            let bad = |message: &str| PolicyError::Invalid {
                statement: n,
                message: message.to_string(),
            };
            let obj = s
                .as_object()
                .ok_or_else(|| bad("a statement must be an object"))?;
            for k in obj.keys() {
                if !matches!(
                    k.as_str(),
                    "Sid"
                        | "Effect"
                        | "Action"
                        | "NotAction"
                        | "Resource"
                        | "NotResource"
                        | "Condition"
                ) {
                    return Err(bad(&format!(
                        "unsupported element {k:?} (identity policies have no Principal)"
                    )));
                }
            }
            let effect = match obj.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return Err(bad("Effect must be \"Allow\" or \"Deny\"")),
            };
            statements.push(Statement {
                sid: obj.get("Sid").and_then(Value::as_str).map(str::to_string),
                effect,
                actions: one_of(obj, "Action", "NotAction", n)?,
                resources: one_of(obj, "Resource", "NotResource", n)?,
                conditions: match obj.get("Condition") {
                    Some(c) => conditions(c, n)?,
                    None => Vec::new(),
                },
            });
        }
        Ok(Policy {
            variables,
            statements,
        })
    }
}

/// `*` matches any run, `?` one character.
fn wildcard(pattern: &[char], text: &[char], fold: bool) -> bool {
    let eq = |a: char, b: char| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Iterative matcher with backtracking to the last `*`.
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len()
            && (pattern[p] == '?' || (pattern[p] != '*' && eq(pattern[p], text[t])))
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A pattern with variables substituted into literal / wildcard tokens.
/// `None` when a variable has no value (the pattern matches nothing).
fn expand(pattern: &str, ctx: &RequestContext<'_>) -> Option<Vec<(char, bool)>> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(p) = rest.find("${") {
        out.extend(rest[..p].chars().map(|c| (c, c == '*' || c == '?')));
        let after = &rest[p + 2..];
        let end = after.find('}')?;
        let var = &after[..end];
        match var.to_ascii_lowercase().as_str() {
            "*" => out.push(('*', false)),
            "?" => out.push(('?', false)),
            "$" => out.push(('$', false)),
            "aws:username" => out.extend(ctx.username?.chars().map(|c| (c, false))),
            _ => return None,
        }
        rest = &after[end + 1..];
    }
    out.extend(rest.chars().map(|c| (c, c == '*' || c == '?')));
    Some(out)
}

/// A literal `*` / `?` as a private-use stand-in, so that after variable
/// substitution it matches only itself (applied to both sides).
fn lit(c: char) -> char {
    match c {
        '*' => '\u{e000}',
        '?' => '\u{e001}',
        c => c,
    }
}

/// Match an expanded pattern (literal `*`/`?` from variables are literal)
/// against `text` already mapped through [`lit`].
fn matches_tokens(tokens: &[(char, bool)], text: &[char], fold: bool) -> bool {
    let pattern: Vec<char> = tokens
        .iter()
        .map(|(c, wild)| if *wild { *c } else { lit(*c) })
        .collect();
    wildcard(&pattern, text, fold)
}

/// The request's action and resource as characters, split once per
/// evaluation rather than once per pattern.
struct Chars {
    action: Vec<char>,
    resource: Vec<char>,
    /// The resource through [`lit`] (only when a policy uses variables).
    resource_lit: Vec<char>,
}

impl Statement {
    fn applies(&self, ctx: &RequestContext<'_>, chars: &Chars, variables: bool) -> bool {
        let action_hit = |list: &[String]| {
            list.iter().any(|p| {
                let pc: Vec<char> = p.chars().collect();
                wildcard(&pc, &chars.action, true)
            })
        };
        let action_ok = match &self.actions {
            Match::In(l) => action_hit(l),
            Match::NotIn(l) => !action_hit(l),
        };
        if !action_ok {
            return false;
        }
        let resource_hit = |list: &[String]| {
            list.iter().any(|p| {
                if variables {
                    expand(p, ctx).is_some_and(|t| matches_tokens(&t, &chars.resource_lit, false))
                } else {
                    let pc: Vec<char> = p.chars().collect();
                    wildcard(&pc, &chars.resource, false)
                }
            })
        };
        let resource_ok = match &self.resources {
            Match::In(l) => resource_hit(l),
            Match::NotIn(l) => !resource_hit(l),
        };
        resource_ok
            && self.conditions.iter().all(|c| match ctx.bool_key(&c.key) {
                None => c.if_exists,
                Some(v) => c.values.contains(&v),
            })
    }
}

/// Evaluate identity policies: explicit deny, then allow, else default deny.
#[must_use]
pub fn evaluate(policies: &[std::sync::Arc<Policy>], ctx: &RequestContext<'_>) -> Decision {
    let chars = Chars {
        action: ctx.action.chars().collect(),
        resource: ctx.resource.chars().collect(),
        resource_lit: if policies.iter().any(|p| p.variables) {
            ctx.resource.chars().map(lit).collect()
        } else {
            Vec::new()
        },
    };
    let mut allowed = false;
    for p in policies {
        for s in &p.statements {
            if s.applies(ctx, &chars, p.variables) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny(s.sid.clone()),
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const SEED_POLICY: &str = include_str!("../../../fixtures/policies/manage-own-mfa.json");
    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const BOB: &str = "arn:aws:iam::123456789012:user/bob";

    fn ctx<'a>(action: &'a str, resource: &'a str, mfa: Option<bool>) -> RequestContext<'a> {
        RequestContext {
            action,
            resource,
            username: Some("alice"),
            mfa_present: mfa,
        }
    }

    #[test]
    fn the_seed_policy() {
        let p = vec![Arc::new(Policy::parse(SEED_POLICY).unwrap())];
        for mfa in [None, Some(false), Some(true)] {
            for a in [
                "iam:EnableMFADevice",
                "iam:GetUser",
                "iam:ListMFADevices",
                "iam:ResyncMFADevice",
            ] {
                assert_eq!(
                    evaluate(&p, &ctx(a, ALICE, mfa)),
                    Decision::Allow,
                    "{a} {mfa:?}"
                );
                assert_eq!(
                    evaluate(&p, &ctx(a, BOB, mfa)),
                    Decision::ImplicitDeny,
                    "{a} on bob"
                );
            }
        }
        // Deactivate needs an MFA session.
        let d = "iam:DeactivateMFADevice";
        let deny = Decision::ExplicitDeny(Some("DenyAllExceptListedIfNoMFA".into()));
        assert_eq!(evaluate(&p, &ctx(d, ALICE, None)), deny);
        assert_eq!(evaluate(&p, &ctx(d, ALICE, Some(false))), deny);
        assert_eq!(evaluate(&p, &ctx(d, ALICE, Some(true))), Decision::Allow);
        // Anything else: denied without MFA, not allowed with it.
        assert_eq!(evaluate(&p, &ctx("iam:CreateUser", ALICE, None)), deny);
        assert_eq!(
            evaluate(&p, &ctx("iam:CreateUser", ALICE, Some(true))),
            Decision::ImplicitDeny
        );
        // Action names are case-insensitive.
        assert_eq!(
            evaluate(&p, &ctx("IAM:getuser", ALICE, None)),
            Decision::Allow
        );
        // The root user has no aws:username: the variable matches nothing.
        let root = RequestContext {
            username: None,
            ..ctx("iam:GetUser", "arn:aws:iam::123456789012:root", None)
        };
        assert_eq!(evaluate(&p, &root), Decision::ImplicitDeny);
        assert_eq!(
            evaluate(&[], &ctx("iam:GetUser", ALICE, None)),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn wildcards_variables_and_versions() {
        let w = |p: &str, t: &str| {
            wildcard(
                &p.chars().collect::<Vec<_>>(),
                &t.chars().collect::<Vec<_>>(),
                false,
            )
        };
        assert!(w("*", ""));
        assert!(w("a*c", "abbbc"));
        assert!(w("a?c", "abc"));
        assert!(!w("a?c", "ac"));
        assert!(w("*:user/*", "arn:aws:iam::1:user/x"));
        assert!(!w("arn:*:b", "arn:x:c"));
        assert!(w("a*b*c", "aXbYbZc"));
        let doc = |version: &str, resource: &str| {
            format!(
                r#"{{"Version":"{version}","Statement":{{"Effect":"Allow","Action":"iam:*","Resource":"{resource}"}}}}"#
            )
        };
        let p = vec![Arc::new(
            Policy::parse(&doc("2012-10-17", "arn:aws:iam::*:user/${aws:username}")).unwrap(),
        )];
        assert_eq!(
            evaluate(&p, &ctx("iam:GetUser", ALICE, None)),
            Decision::Allow
        );
        // A `*` inside a user name is not a wildcard.
        let star = RequestContext {
            username: Some("a*"),
            ..ctx("iam:GetUser", "arn:aws:iam::1:user/abc", None)
        };
        assert_eq!(evaluate(&p, &star), Decision::ImplicitDeny);
        // 2008-10-17: variables are literal text.
        let p = vec![Arc::new(
            Policy::parse(&doc("2008-10-17", "arn:aws:iam::*:user/${aws:username}")).unwrap(),
        )];
        assert_eq!(
            evaluate(&p, &ctx("iam:GetUser", ALICE, None)),
            Decision::ImplicitDeny
        );
        let p = vec![Arc::new(
            Policy::parse(&doc("2012-10-17", "arn:aws:iam::*:user/a${?}${*}")).unwrap(),
        )];
        assert_eq!(
            evaluate(&p, &ctx("iam:GetUser", "arn:aws:iam::1:user/a?*", None)),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &ctx("iam:GetUser", "arn:aws:iam::1:user/ab", None)),
            Decision::ImplicitDeny
        );
        let p = vec![Arc::new(
            Policy::parse(&doc("2012-10-17", "${aws:unknown}")).unwrap(),
        )];
        assert_eq!(
            evaluate(&p, &ctx("iam:GetUser", ALICE, None)),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn deny_beats_allow_and_conditions() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"*","Resource":"*"},
                {"Sid":"NoMfaNoDeactivate","Effect":"Deny","Action":"iam:Deactivate*","NotResource":"arn:aws:iam::*:user/bob","Condition":{"Bool":{"aws:MultiFactorAuthPresent":["false"]}}}
            ]}"#,
        )
        .unwrap();
        let p = vec![Arc::new(p)];
        let d = "iam:DeactivateMFADevice";
        // Bool without the key: the condition does not hold (no deny).
        assert_eq!(evaluate(&p, &ctx(d, ALICE, None)), Decision::Allow);
        assert_eq!(
            evaluate(&p, &ctx(d, ALICE, Some(false))),
            Decision::ExplicitDeny(Some("NoMfaNoDeactivate".into()))
        );
        assert_eq!(evaluate(&p, &ctx(d, BOB, Some(false))), Decision::Allow);
        assert_eq!(evaluate(&p, &ctx(d, ALICE, Some(true))), Decision::Allow);
    }

    #[test]
    fn unsupported_documents_are_refused() {
        for (doc, want) in [
            ("nope", "JSON"),
            ("[]", "JSON object"),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (r#"{"Version":"2013","Statement":[]}"#, "Version"),
            (
                r#"{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}"#,
                "Effect",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"x","Resource":"*"}}"#,
                "exactly one",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#,
                "exactly one of Resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
                "Principal",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"a":"b"}}}}"#,
                "StringEquals",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"a":"maybe"}}}}"#,
                "true",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
                "list of strings",
            ),
        ] {
            let e = Policy::parse(doc).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }
}
