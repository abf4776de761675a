//! The scenario parser: line-oriented, whitespace-separated words, `#`
//! comments, `"quoted text"`. Every error carries `file:line:col` and says
//! what was expected. Parsing also checks the timeline statically (names
//! declared, codes captured before use, lost devices not pressed, time never
//! set backwards), so a malformed file never starts running.

use fobsim_core::Channel;
use std::collections::{HashMap, HashSet};

use fobsim_core::time::parse_duration_ms;
use fobsim_core::{Algorithm, Serial, Timestamp};
use fobsim_firmware::{Drift, preset};

use super::ast::{
    Action, Base, BatteryAction, CodeRef, DEFAULT_START, DeviceDecl, DeviceRef, DisplayExpect,
    Outcome, Refine, Scenario, SecretBytes, ServerClock, Source, SourceKind, Step,
};
use super::vocabulary;

/// Largest `repeat` count.
pub const MAX_REPEAT: u32 = 100_000;

/// Most access keys a user may have (`user NAME keys=N`): AWS allows two
/// per IAM user.
pub const MAX_ACCESS_KEYS: u32 = 2;

/// The latest time the engine's clock may be moved to (`clock server`):
/// 9999-12-31T23:59:59Z, the last time RFC 3339 can write.
const LATEST_MS: i64 = 253_402_300_799_000;

/// A scenario file could not be read: where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ParseError {
    /// The file (as given).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
    /// What is wrong / what was expected.
    pub message: String,
}

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    col: usize,
    quoted: bool,
    /// `~` or `!~` written right before a quoted text (`~"invalid MFA"`),
    /// else empty.
    prefix: &'static str,
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, line: usize, col: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// Read a quoted text starting at `chars[i] == '"'`: (text, index after it).
fn quoted_text(
    ctx: &Ctx<'_>,
    line_no: usize,
    chars: &[char],
    mut i: usize,
) -> Result<(String, usize), ParseError> {
    let col = i + 1;
    let mut text = String::new();
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '"' => return Ok((text, i + 1)),
            '\\' if i + 1 < chars.len() => {
                text.push(chars[i + 1]);
                i += 2;
            }
            ch => {
                text.push(ch);
                i += 1;
            }
        }
    }
    Err(ctx.err(line_no, col, "expected a closing '\"'"))
}

/// Split a line into words; `#` starts a comment outside quotes.
fn lex(ctx: &Ctx<'_>, line_no: usize, line: &str) -> Result<Vec<Tok>, ParseError> {
    let mut toks = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            break;
        }
        let col = i + 1;
        if c == '"' {
            let (text, next) = quoted_text(ctx, line_no, &chars, i)?;
            i = next;
            toks.push(Tok {
                text,
                col,
                quoted: true,
                prefix: "",
            });
            continue;
        }
        let start = i;
        let mut quoted = None;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '#' {
            if chars[i] == '"' {
                let word: String = chars[start..i].iter().collect();
                let prefix = match word.as_str() {
                    "~" => "~",
                    "!~" => "!~",
                    _ => {
                        return Err(ctx.err(
                            line_no,
                            i + 1,
                            "expected whitespace before a quoted text",
                        ));
                    }
                };
                let (text, next) = quoted_text(ctx, line_no, &chars, i)?;
                i = next;
                quoted = Some((text, prefix));
                break;
            }
            i += 1;
        }
        match quoted {
            Some((text, prefix)) => toks.push(Tok {
                text,
                col,
                quoted: true,
                prefix,
            }),
            None => toks.push(Tok {
                text: chars[start..i].iter().collect(),
                col,
                quoted: false,
                prefix: "",
            }),
        }
    }
    Ok(toks)
}

fn is_ident(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic())
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 64
}

/// Timeline keywords, for "expected one of" messages.
const STEP_WORDS: &str = "press, look, wait, at, align, clock, enable, resync, deactivate, replace, sign-in, session, devices, recover, import, lose, find, battery, drift, expect, repeat, end";
const HEADER_WORDS: &str = "scenario, source, start, setting, device, user";

/// A cursor over one line's words.
struct Line<'a> {
    ctx: &'a Ctx<'a>,
    no: usize,
    toks: Vec<Tok>,
    pos: usize,
    end_col: usize,
}

impl<'a> Line<'a> {
    fn err_here(&self, message: impl Into<String>) -> ParseError {
        let col = self.toks.get(self.pos).map_or(self.end_col, |t| t.col);
        self.ctx.err(self.no, col, message)
    }

    fn err_at(&self, t: &Tok, message: impl Into<String>) -> ParseError {
        self.ctx.err(self.no, t.col, message)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self, what: &str) -> Result<Tok, ParseError> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => Err(self.err_here(format!("expected {what}, found the end of the line"))),
        }
    }

    fn word(&mut self, what: &str) -> Result<Tok, ParseError> {
        let t = self.next(what)?;
        if t.quoted {
            return Err(self.err_at(&t, format!("expected {what}, found a quoted text")));
        }
        Ok(t)
    }

    fn ident(&mut self, what: &str) -> Result<Tok, ParseError> {
        let t = self.word(what)?;
        if !is_ident(&t.text) || t.text == "->" {
            return Err(self.err_at(
                &t,
                format!(
                    "expected {what} (a name: a letter, then letters, digits, '-' or '_'), found {:?}",
                    t.text
                ),
            ));
        }
        Ok(t)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    fn finish(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.err_at(
                t,
                format!("expected the end of the line, found {:?}", t.text),
            )),
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.peek().is_some_and(|t| !t.quoted && t.text == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_arrow(&mut self) -> Result<(), ParseError> {
        let t = self.next("'->' and the expected outcome")?;
        if t.text != "->" || t.quoted {
            return Err(self.err_at(
                &t,
                format!(
                    "expected '->' and the expected outcome (ok, rejected or an error code), found {:?}",
                    t.text
                ),
            ));
        }
        Ok(())
    }

    fn outcome(&mut self) -> Result<Outcome, ParseError> {
        self.expect_arrow()?;
        let what = "an outcome: ok, rejected or an error code such as InvalidAuthenticationCode";
        let t = self.word(what)?;
        let base = match t.text.as_str() {
            "ok" => Base::Ok,
            "rejected" => Base::Rejected,
            s => Base::Error(self.error_name(&t, s, what)?),
        };
        let mut refine = Vec::new();
        while let Some(r) = self.peek().cloned() {
            self.pos += 1;
            let cond = match (r.prefix, r.quoted) {
                ("~", true) => Refine::Contains(r.text.clone()),
                ("!~", true) => Refine::Lacks(r.text.clone()),
                (_, true) => {
                    return Err(self.err_at(
                        &r,
                        "expected !NAME, ~\"TEXT\" or !~\"TEXT\" after the outcome, found a quoted text (write ~\"TEXT\" for a message that must contain it)",
                    ));
                }
                _ => {
                    if let Some(text) = r.text.strip_prefix("!~") {
                        Refine::Lacks(self.nonempty(&r, text)?)
                    } else if let Some(text) = r.text.strip_prefix('~') {
                        Refine::Contains(self.nonempty(&r, text)?)
                    } else if let Some(name) = r.text.strip_prefix('!') {
                        let name = self.error_name(
                            &r,
                            name,
                            "!NAME with an error code or kind such as !DeviceLocked",
                        )?;
                        if base == Base::Error(name.clone()) {
                            return Err(self.err_at(
                                &r,
                                format!("expected a condition that can hold: the outcome is {name} and !{name} refuses it"),
                            ));
                        }
                        Refine::Not(name)
                    } else {
                        return Err(self.err_at(
                            &r,
                            format!(
                                "expected the end of the line or a condition on the refusal (!NAME, ~\"TEXT\", !~\"TEXT\"), found {:?}",
                                r.text
                            ),
                        ));
                    }
                }
            };
            if base == Base::Ok {
                return Err(self.err_at(
                    &r,
                    "expected the end of the line: conditions (!NAME, ~\"TEXT\") refine a refusal, and 'ok' is none",
                ));
            }
            refine.push(cond);
        }
        Ok(Outcome { base, refine })
    }

    /// A known error name (AWS code or finer kind), or an error pointing at
    /// `t` with a suggestion.
    fn error_name(&self, t: &Tok, name: &str, what: &str) -> Result<String, ParseError> {
        if vocabulary::is_known(name) {
            return Ok(name.to_string());
        }
        let hint = match vocabulary::suggest(name) {
            Some(k) => format!(" (did you mean {k}?)"),
            None => String::new(),
        };
        let looks_like_a_name = name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric());
        Err(self.err_at(
            t,
            if looks_like_a_name {
                format!(
                    "expected {what}, found {name:?}, which no engine answers{hint}; known: ok, rejected, {}",
                    vocabulary::known_list()
                )
            } else {
                format!("expected {what}, found {name:?}{hint}")
            },
        ))
    }

    fn nonempty(&self, t: &Tok, text: &str) -> Result<String, ParseError> {
        if text.is_empty() {
            return Err(self.err_at(t, "expected a text after '~' (~WORD or ~\"some words\")"));
        }
        Ok(text.to_string())
    }

    fn duration(&mut self, what: &str) -> Result<i64, ParseError> {
        let t = self.word(what)?;
        parse_duration_ms(&t.text).map_err(|_| {
            self.err_at(
                &t,
                format!(
                    "expected {what} such as 30s, 4m, 1.5h or 3y, found {:?}",
                    t.text
                ),
            )
        })
    }
}

/// Names known while parsing, for static checks.
#[derive(Default)]
struct Names {
    devices: HashMap<String, usize>,
    /// Digits each declared device shows.
    digits: HashMap<String, u8>,
    /// Devices declared `unregistered` (never imported).
    unregistered: HashSet<String>,
    users: HashSet<String>,
    /// Access keys per user, for users with more than one.
    keys: HashMap<String, u32>,
    /// Captured code names, with the fewest digits any capture of the name
    /// can hold.
    captured: HashMap<String, u8>,
    lost: HashMap<String, usize>,
}

/// Parse a scenario file's text. `file` is used in error messages.
///
/// # Errors
/// [`ParseError`] with `file:line:col` and what was expected.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ParseError> {
    let ctx = Ctx { file };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut id: Option<String> = None;
    let mut sources = Vec::new();
    let mut start: Option<Timestamp> = None;
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut setting_positions = Vec::new();
    let mut devices: Vec<DeviceDecl> = Vec::new();
    let mut users: Vec<String> = Vec::new();
    let mut access_keys: Vec<(String, u32)> = Vec::new();
    let mut names = Names::default();
    // Stack of open step lists: the timeline, then each open `repeat`.
    let mut stack: Vec<(Vec<Step>, usize, u32, String)> = vec![(Vec::new(), 0, 1, String::new())];
    let mut in_timeline = false;

    for (idx, raw) in text.lines().enumerate() {
        let no = idx + 1;
        let toks = lex(&ctx, no, raw)?;
        if toks.is_empty() {
            continue;
        }
        let end_col = raw.chars().count() + 1;
        let mut line = Line {
            ctx: &ctx,
            no,
            toks,
            pos: 0,
            end_col,
        };
        let kw = line.word("a keyword")?;
        let trimmed = strip_comment(raw).trim().to_string();
        match kw.text.as_str() {
            "scenario" | "source" | "start" | "setting" | "device" | "user" => {
                if in_timeline {
                    return Err(line.err_at(
                        &kw,
                        format!(
                            "'{}' is a declaration: declarations ({HEADER_WORDS}) come before the first timeline step",
                            kw.text
                        ),
                    ));
                }
                match kw.text.as_str() {
                    "scenario" => {
                        if id.is_some() {
                            return Err(
                                line.err_at(&kw, "expected one 'scenario' line, found a second")
                            );
                        }
                        let t = line.ident("the scenario id")?;
                        line.finish()?;
                        id = Some(t.text);
                    }
                    "source" => {
                        let t = line.word("seed, bug, rfc or design")?;
                        let kind = match t.text.as_str() {
                            "seed" => SourceKind::Seed,
                            "bug" => SourceKind::Bug,
                            "rfc" => SourceKind::Rfc,
                            "design" => SourceKind::Design,
                            other => {
                                return Err(line.err_at(
                                    &t,
                                    format!("expected seed, bug, rfc or design, found {other:?}"),
                                ));
                            }
                        };
                        let q = line.next("a quoted text")?;
                        if !q.quoted || q.text.trim().is_empty() {
                            return Err(line.err_at(&q, "expected a non-empty quoted text, e.g. \"Each MFA device assigned to a user must be unique\""));
                        }
                        line.finish()?;
                        sources.push(Source { kind, text: q.text });
                    }
                    "start" => {
                        let t = line.word("a time")?;
                        let ts: Timestamp = t.text.parse().map_err(|_| {
                            line.err_at(
                                &t,
                                format!(
                                    "expected a time: RFC 3339 UTC (2026-01-01T00:00:00Z) or @UNIX_SECONDS, found {:?}",
                                    t.text
                                ),
                            )
                        })?;
                        line.finish()?;
                        start = Some(ts);
                    }
                    "setting" => {
                        if line.at_end() {
                            return Err(line.err_here("expected KEY=VALUE"));
                        }
                        while !line.at_end() {
                            let t = line.word("KEY=VALUE")?;
                            let Some((k, v)) = t.text.split_once('=') else {
                                return Err(line.err_at(
                                    &t,
                                    format!("expected KEY=VALUE, found {:?}", t.text),
                                ));
                            };
                            if k.is_empty() || v.is_empty() {
                                return Err(line.err_at(
                                    &t,
                                    format!("expected KEY=VALUE, found {:?}", t.text),
                                ));
                            }
                            if let Some(i) = settings.iter().position(|(sk, _)| sk == k) {
                                let (l, c) = setting_positions[i];
                                return Err(line.err_at(
                                    &t,
                                    format!("expected each setting once: {k} is already set at line {l}, column {c}"),
                                ));
                            }
                            settings.push((k.to_string(), v.to_string()));
                            setting_positions.push((no, t.col));
                        }
                    }
                    "device" => {
                        let d = parse_device(&mut line, &names, devices.len() as u64 + 1)?;
                        names.devices.insert(d.name.clone(), no);
                        let digits = d
                            .digits
                            .or_else(|| preset(&d.model).map(|m| m.digits))
                            .unwrap_or(6);
                        names.digits.insert(d.name.clone(), digits);
                        if !d.registered {
                            names.unregistered.insert(d.name.clone());
                        }
                        devices.push(d);
                    }
                    _ => {
                        let t = line.ident("a user name")?;
                        if t.text == "root" {
                            return Err(line.err_at(
                                &t,
                                "the root user is always there: expected another user name",
                            ));
                        }
                        if names.users.contains(&t.text) || names.devices.contains_key(&t.text) {
                            return Err(line
                                .err_at(&t, format!("the name {:?} is already declared", t.text)));
                        }
                        if let Some(k) = line.peek().cloned() {
                            let n = k
                                .text
                                .strip_prefix("keys=")
                                .and_then(|v| v.parse::<u32>().ok())
                                .filter(|n| (1..=MAX_ACCESS_KEYS).contains(n))
                                .ok_or_else(|| {
                                    line.err_at(
                                        &k,
                                        format!(
                                            "expected the end of the line or keys=N (N from 1 to {MAX_ACCESS_KEYS}: AWS allows {MAX_ACCESS_KEYS} access keys per IAM user), found {:?}",
                                            k.text
                                        ),
                                    )
                                })?;
                            line.pos += 1;
                            if n > 1 {
                                names.keys.insert(t.text.clone(), n);
                                access_keys.push((t.text.clone(), n));
                            }
                        }
                        line.finish()?;
                        names.users.insert(t.text.clone());
                        users.push(t.text);
                    }
                }
            }
            "end" => {
                line.finish()?;
                if stack.len() < 2 {
                    return Err(line.err_at(
                        &kw,
                        "expected a step: 'end' closes a 'repeat', and none is open",
                    ));
                }
                let (body, rline, times, rtext) = stack.pop().unwrap_or_default();
                if body.is_empty() {
                    return Err(ctx.err(rline, 1, "expected steps inside 'repeat' ... 'end'"));
                }
                if let Some(at) = body.iter().find(|s| matches!(s.action, Action::At { .. })) {
                    return Err(ctx.err(at.line, 1, "expected 'wait' or 'align' inside 'repeat': 'at' would move the clock back in the next iteration"));
                }
                if u64::from(times).saturating_mul(weight(&body)) > MAX_STEPS {
                    return Err(ctx.err(
                        rline,
                        1,
                        format!(
                            "expected at most {MAX_STEPS} steps to run: this 'repeat' runs more"
                        ),
                    ));
                }
                if let Some(top) = stack.last_mut() {
                    top.0.push(Step {
                        line: rline,
                        text: rtext,
                        action: Action::Repeat { times, body },
                    });
                }
            }
            "repeat" => {
                in_timeline = true;
                let t = line.word("a count")?;
                let times: u32 = t
                    .text
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_REPEAT).contains(n))
                    .ok_or_else(|| {
                        line.err_at(
                            &t,
                            format!(
                                "expected a count from 1 to {MAX_REPEAT}, found {:?}",
                                t.text
                            ),
                        )
                    })?;
                line.eat("times");
                line.finish()?;
                stack.push((Vec::new(), no, times, trimmed));
            }
            _ => {
                in_timeline = true;
                if id.is_none() {
                    return Err(line.err_at(
                        &kw,
                        format!("expected 'scenario ID' first, found {:?}", kw.text),
                    ));
                }
                let action = parse_step(&mut line, &kw, &mut names)?;
                if let Action::Import { device, .. } = &action
                    && let Some(d) = devices.iter_mut().find(|d| &d.name == device)
                {
                    d.registered = false;
                    d.imported_at.get_or_insert(no);
                }
                if let Some(top) = stack.last_mut() {
                    top.0.push(Step {
                        line: no,
                        text: trimmed,
                        action,
                    });
                }
            }
        }
    }
    let last_line = text.lines().count().max(1);
    if stack.len() > 1 {
        let (_, rline, _, _) = &stack[stack.len() - 1];
        return Err(ctx.err(*rline, 1, "expected 'end' to close this 'repeat'"));
    }
    let Some(id) = id else {
        return Err(ctx.err(1, 1, "expected a 'scenario ID' line"));
    };
    if sources.is_empty() {
        return Err(ctx.err(
            last_line,
            1,
            "expected at least one 'source seed|bug|rfc|design \"...\"' line naming what the scenario encodes",
        ));
    }
    let steps = stack.pop().map(|s| s.0).unwrap_or_default();
    if steps.is_empty() {
        return Err(ctx.err(last_line, 1, "expected at least one timeline step"));
    }
    if weight(&steps) > MAX_STEPS {
        return Err(ctx.err(
            last_line,
            1,
            format!("expected at most {MAX_STEPS} steps to run"),
        ));
    }
    let start = start.unwrap_or(DEFAULT_START);
    check_time(&ctx, start, 0, &steps)?;
    Ok(Scenario {
        id,
        file: file.to_string(),
        sources,
        start,
        settings,
        setting_positions,
        devices,
        users,
        access_keys,
        steps,
    })
}

fn strip_comment(raw: &str) -> &str {
    let mut in_q = false;
    let mut esc = false;
    for (i, c) in raw.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            '#' if !in_q => return &raw[..i],
            _ => {}
        }
    }
    raw
}

/// Largest number of steps a scenario may run (counting `repeat` iterations).
pub const MAX_STEPS: u64 = 1_000_000;

/// Steps run by a list, counting `repeat` iterations (saturating).
fn weight(steps: &[Step]) -> u64 {
    steps.iter().fold(0u64, |acc, s| {
        acc.saturating_add(match &s.action {
            Action::Repeat { times, body } => u64::from(*times).saturating_mul(weight(body)),
            _ => 1,
        })
    })
}

/// Times only move forward: `at` must not go back. Through a `repeat` the
/// clock is advanced by its waits only (a lower bound: `align` may add
/// more); the runner refuses an `at` that would still go back. The
/// engine's clock (`clock server`) stays between 1970 and 9999: checked
/// for the first and the last iteration of a `repeat` (it moves linearly
/// in between).
fn check_time(
    ctx: &Ctx<'_>,
    start: Timestamp,
    server_ms: i64,
    steps: &[Step],
) -> Result<(Timestamp, i64), ParseError> {
    let mut now = start;
    let mut server = server_ms;
    for s in steps {
        match &s.action {
            Action::Wait { ms } => now = now.add_millis(*ms),
            Action::Align { ms } => now = align(now, *ms),
            Action::At { time } => {
                if *time < now {
                    return Err(ctx.err(
                        s.line,
                        1,
                        format!(
                            "expected a time at or after {now} ('at' never moves the clock back)"
                        ),
                    ));
                }
                now = *time;
            }
            Action::ClockServer { change } => {
                server = match change {
                    ServerClock::Reset => 0,
                    ServerClock::Step(ms) => server.saturating_add(*ms),
                };
                let t = i64::try_from(now.as_millis())
                    .unwrap_or(i64::MAX)
                    .saturating_add(server);
                if !(0..=LATEST_MS).contains(&t) {
                    let sign = if server < 0 { "-" } else { "+" };
                    return Err(ctx.err(
                        s.line,
                        1,
                        format!(
                            "expected the server's clock to stay between 1970 and 9999: at true time {now}, an offset of {sign}{} puts it {}",
                            fobsim_core::time::format_duration_ms(server.saturating_abs()),
                            if t < 0 { "before 1970" } else { "after 9999" }
                        ),
                    ));
                }
            }
            Action::Repeat { times, body } => {
                let (once, server1) = check_time(ctx, now, server, body)?;
                let step = once.millis_since(now).max(0);
                let drift = server1.saturating_sub(server);
                let n = i64::from(*times);
                let resets = body_resets(body);
                if n > 1 {
                    // The last iteration starts here.
                    let last = now.add_millis(step.saturating_mul(n - 1));
                    let last_server = if resets {
                        server1
                    } else {
                        server.saturating_add(drift.saturating_mul(n - 1))
                    };
                    check_time(ctx, last, last_server, body)?;
                }
                now = now.add_millis(step.saturating_mul(n));
                server = if resets {
                    server1
                } else {
                    server.saturating_add(drift.saturating_mul(n))
                };
            }
            _ => {}
        }
    }
    Ok((now, server))
}

/// Whether a body sets the server clock absolutely (`clock server reset`),
/// so that iterations do not add up.
fn body_resets(steps: &[Step]) -> bool {
    steps.iter().any(|s| match &s.action {
        Action::ClockServer {
            change: ServerClock::Reset,
        } => true,
        Action::Repeat { body, .. } => body_resets(body),
        _ => false,
    })
}

/// The next multiple of `ms` since the epoch at or after `now`.
#[must_use]
pub fn align(now: Timestamp, ms: i64) -> Timestamp {
    let m = u64::try_from(ms).unwrap_or(1).max(1);
    let t = now.as_millis();
    let r = t % m;
    if r == 0 {
        now
    } else {
        Timestamp::from_millis(t.saturating_add(m - r))
    }
}

fn parse_ppm(line: &Line<'_>, t: &Tok, v: &str) -> Result<f64, ParseError> {
    v.parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && p.abs() <= 100_000.0)
        .ok_or_else(|| {
            line.err_at(
                t,
                format!(
                    "expected ppm=NUMBER within ±100000 (e.g. ppm=20 or ppm=-4.75), found {v:?}"
                ),
            )
        })
}

fn parse_drift_kv(
    line: &Line<'_>,
    t: &Tok,
    k: &str,
    v: &str,
    drift: &mut Drift,
) -> Result<bool, ParseError> {
    let dur = |what: &str| {
        parse_duration_ms(v).map_err(|_| {
            line.err_at(
                t,
                format!("expected {what}=DURATION such as +47s or -2m, found {v:?}"),
            )
        })
    };
    match k {
        "offset" => drift.offset_ms = dur("offset")?,
        "ppm" => drift.ppm = parse_ppm(line, t, v)?,
        "jitter" => {
            let j = dur("jitter")?;
            drift.jitter_ms = u32::try_from(j).map_err(|_| {
                line.err_at(
                    t,
                    format!("expected jitter=DURATION from 0 to 49 days, found {v:?}"),
                )
            })?;
        }
        "age" => {
            // A clock set perfectly `age` ago, drifting at the ppm given so far.
            let a = dur("age")?;
            let years = a as f64 / fobsim_firmware::YEAR_MS as f64;
            drift.offset_ms = Drift::aged(years, drift.ppm).offset_ms;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn parse_device(line: &mut Line<'_>, names: &Names, index: u64) -> Result<DeviceDecl, ParseError> {
    let name = line.ident("a device name")?;
    if names.devices.contains_key(&name.text)
        || names.users.contains(&name.text)
        || name.text == "root"
    {
        return Err(line.err_at(
            &name,
            format!("the name {:?} is already declared", name.text),
        ));
    }
    let m = line.word("a model (gaht, c200, d8 or c100)")?;
    let Some(model) = preset(&m.text) else {
        return Err(line.err_at(
            &m,
            format!(
                "expected a model (gaht, c200, d8 or c100), found {:?}",
                m.text
            ),
        ));
    };
    let mut d = DeviceDecl {
        name: name.text,
        line: line.no,
        model: model.name.to_string(),
        serial: None,
        index,
        drift: Drift::NONE,
        secret: None,
        digits: None,
        algorithm: None,
        period: None,
        seed_period: None,
        registered: true,
        imported_at: None,
        battery_dead: false,
    };
    let mut age: Option<(Tok, String)> = None;
    while !line.at_end() {
        let t = line.word("KEY=VALUE")?;
        if t.text == "unregistered" {
            d.registered = false;
            continue;
        }
        let Some((k, v)) = t.text.split_once('=') else {
            return Err(line.err_at(&t, format!(
                "expected KEY=VALUE (serial, offset, ppm, jitter, age, battery, secret, digits, algorithm, period, seed-period) or 'unregistered', found {:?}",
                t.text
            )));
        };
        if k == "age" {
            // Applied after ppm is known, whatever the order.
            age = Some((t.clone(), v.to_string()));
            continue;
        }
        if parse_drift_kv(line, &t, k, v, &mut d.drift)? {
            continue;
        }
        match k {
            "battery" => match v {
                "dead" => d.battery_dead = true,
                "good" => d.battery_dead = false,
                _ => {
                    return Err(line.err_at(
                        &t,
                        format!("expected battery=good or battery=dead, found {v:?}"),
                    ));
                }
            },
            "serial" => {
                Serial::new(v)
                    .map_err(|e| line.err_at(&t, format!("expected serial=SERIAL: {e}")))?;
                d.serial = Some(v.to_string());
            }
            "secret" => {
                let bytes = if let Some(h) = v.strip_prefix("hex:") {
                    hex_decode(h)
                } else {
                    v.strip_prefix("ascii:").map(|a| a.as_bytes().to_vec())
                };
                match bytes {
                    Some(b) if !b.is_empty() => d.secret = Some(SecretBytes(b)),
                    _ => {
                        return Err(line.err_at(
                            &t,
                            format!(
                                "expected secret=hex:HEXBYTES or secret=ascii:TEXT, found {v:?}"
                            ),
                        ));
                    }
                }
            }
            "digits" => {
                d.digits = Some(
                    v.parse::<u8>()
                        .ok()
                        .filter(|n| (6..=8).contains(n))
                        .ok_or_else(|| {
                            line.err_at(&t, format!("expected digits=6, 7 or 8, found {v:?}"))
                        })?,
                );
            }
            "algorithm" => {
                d.algorithm = Some(v.parse::<Algorithm>().map_err(|_| {
                    line.err_at(
                        &t,
                        format!("expected algorithm=sha1, sha256 or sha512, found {v:?}"),
                    )
                })?);
            }
            "period" | "seed-period" => {
                let ms = parse_duration_ms(v)
                    .ok()
                    .filter(|ms| *ms >= 1000 && ms % 1000 == 0)
                    .ok_or_else(|| {
                        line.err_at(
                            &t,
                            format!(
                                "expected {k}=DURATION in whole seconds, e.g. 30s, found {v:?}"
                            ),
                        )
                    })?;
                let secs = (ms / 1000) as u64;
                if model.period().is_none() {
                    return Err(line.err_at(
                        &t,
                        format!(
                            "{k} applies to time-based models only; {} is event-based",
                            model.name
                        ),
                    ));
                }
                if k == "period" {
                    d.period = Some(secs);
                } else {
                    d.seed_period = Some(secs);
                }
            }
            _ => {
                return Err(line.err_at(&t, format!(
                    "expected one of serial, offset, ppm, jitter, age, battery, secret, digits, algorithm, period, seed-period, found {k:?}"
                )));
            }
        }
    }
    if let Some((t, v)) = age {
        let mut dr = d.drift;
        parse_drift_kv(line, &t, "age", &v, &mut dr)?;
        d.drift.offset_ms = d.drift.offset_ms.saturating_add(dr.offset_ms);
    }
    Ok(d)
}

fn hex_decode(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn device_name(line: &mut Line<'_>, names: &Names) -> Result<String, ParseError> {
    let t = line.ident("a device name")?;
    if !names.devices.contains_key(&t.text) {
        return Err(line.err_at(
            &t,
            format!("expected a declared device, found {:?}", t.text),
        ));
    }
    Ok(t.text)
}

fn usable_device(line: &mut Line<'_>, names: &Names) -> Result<String, ParseError> {
    let col = line.peek().map_or(line.end_col, |t| t.col);
    let d = device_name(line, names)?;
    if let Some(l) = names.lost.get(&d) {
        return Err(line.ctx.err(
            line.no,
            col,
            format!("expected a device at hand: {d} was lost at line {l} (use 'find {d}' first)"),
        ));
    }
    Ok(d)
}

fn device_ref(line: &mut Line<'_>, names: &Names) -> Result<DeviceRef, ParseError> {
    let t = line.word("a device name or serial:SERIAL")?;
    if let Some(s) = t.text.strip_prefix("serial:") {
        if s.is_empty() {
            return Err(line.err_at(&t, "expected serial:SERIAL with a serial after the colon"));
        }
        return Ok(DeviceRef::Serial(s.to_string()));
    }
    if !names.devices.contains_key(&t.text) {
        return Err(line.err_at(
            &t,
            format!(
                "expected a declared device or serial:SERIAL, found {:?}",
                t.text
            ),
        ));
    }
    Ok(DeviceRef::Named(t.text))
}

fn user_name(line: &mut Line<'_>, names: &Names) -> Result<String, ParseError> {
    let t = line.ident("a user name")?;
    if t.text != "root" && !names.users.contains(&t.text) {
        return Err(line.err_at(
            &t,
            format!("expected a declared user or root, found {:?}", t.text),
        ));
    }
    Ok(t.text)
}

/// Words that are codes, not names (`random`, `wrong`).
const CODE_WORDS: [&str; 2] = ["random", "wrong"];

fn code_ref(line: &mut Line<'_>, names: &Names) -> Result<CodeRef, ParseError> {
    let what = "a code (a captured name, NAME[A..B], digits, random or wrong)";
    let t = line.word(what)?;
    let text = t.text.as_str();
    if !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(CodeRef::Literal(t.text));
    }
    if text == "->" {
        return Err(line.err_at(&t, format!("expected {what}, found '->'")));
    }
    for (word, random) in [("random", true), ("wrong", false)] {
        let digits = if text == word {
            Some(None)
        } else if let Some(n) = text.strip_prefix(word).and_then(|r| r.strip_prefix(':')) {
            let n = n
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=10).contains(n))
                .ok_or_else(|| {
                    line.err_at(
                        &t,
                        format!("expected {word}:N with N from 1 to 10 digits, found {text:?}"),
                    )
                })?;
            Some(Some(n))
        } else {
            None
        };
        if let Some(digits) = digits {
            return Ok(if random {
                CodeRef::Random { digits }
            } else {
                CodeRef::Wrong { digits }
            });
        }
    }
    if let Some((var, range)) = text.split_once('[') {
        let bad = |why: &str| {
            line.err_at(
                &t,
                format!("expected NAME[A..B], the characters A..B of a captured code (0-based, B excluded, e.g. c3[0..6]), found {text:?}{why}"),
            )
        };
        let range = range.strip_suffix(']').ok_or_else(|| bad(""))?;
        let (a, b) = range.split_once("..").ok_or_else(|| bad(""))?;
        let from: usize = a.parse().map_err(|_| bad(""))?;
        let to: usize = b.parse().map_err(|_| bad(""))?;
        if from >= to {
            return Err(bad(": A must be less than B"));
        }
        let Some(&digits) = names.captured.get(var) else {
            if is_ident(var) {
                return Err(line.err_at(&t, format!(
                    "expected a code captured earlier ('press DEVICE as {var}' before this line), found {var:?}"
                )));
            }
            return Err(bad(""));
        };
        if to > usize::from(digits) {
            return Err(bad(&format!(": {var} holds {digits} digits")));
        }
        return Ok(CodeRef::Part {
            var: var.to_string(),
            from,
            to,
        });
    }
    if !is_ident(text) {
        return Err(line.err_at(
            &t,
            format!(
                "expected a code (a captured name, NAME[A..B], up to 10 digits, random or wrong), found {text:?}"
            ),
        ));
    }
    if !names.captured.contains_key(text) {
        return Err(line.err_at(&t, format!(
            "expected a code captured earlier ('press DEVICE as {0}' before this line), found {0:?}",
            t.text
        )));
    }
    Ok(CodeRef::Var(t.text))
}

fn display_expect(line: &mut Line<'_>) -> Result<Option<DisplayExpect>, ParseError> {
    if line.at_end() {
        return Ok(None);
    }
    line.expect_arrow()?;
    let t = line.word("code or blank")?;
    let e = match t.text.as_str() {
        "code" => DisplayExpect::Code,
        "blank" => DisplayExpect::Blank,
        other => return Err(line.err_at(&t, format!("expected code or blank, found {other:?}"))),
    };
    line.finish()?;
    Ok(Some(e))
}

fn parse_step(line: &mut Line<'_>, kw: &Tok, names: &mut Names) -> Result<Action, ParseError> {
    Ok(match kw.text.as_str() {
        "press" | "look" => {
            let device = usable_device(line, names)?;
            let capture = if line.eat("as") {
                let t = line.ident("a name for the code")?;
                if CODE_WORDS.contains(&t.text.as_str()) {
                    return Err(line.err_at(
                        &t,
                        format!("expected a name for the code: {:?} is a code word (a seeded guess), not a name", t.text),
                    ));
                }
                Some(t.text)
            } else {
                None
            };
            let expect = display_expect(line)?;
            if capture.is_some() && expect == Some(DisplayExpect::Blank) {
                return Err(line.ctx.err(
                    line.no,
                    kw.col,
                    "expected either 'as NAME' (a code is shown) or '-> blank', not both",
                ));
            }
            if let Some(c) = &capture {
                let digits = names.digits.get(&device).copied().unwrap_or(6);
                let held = names.captured.entry(c.clone()).or_insert(digits);
                *held = (*held).min(digits);
            }
            if kw.text == "press" {
                Action::Press {
                    device,
                    capture,
                    expect,
                }
            } else {
                Action::Look {
                    device,
                    capture,
                    expect,
                }
            }
        }
        "wait" => {
            let t = line.peek().cloned();
            let ms = line.duration("a duration")?;
            if ms < 0 {
                let t = t.unwrap_or_else(|| kw.clone());
                return Err(line.err_at(
                    &t,
                    "expected a duration of zero or more (true time never goes back)",
                ));
            }
            line.finish()?;
            Action::Wait { ms }
        }
        "at" => {
            let t = line.word("a time")?;
            let time: Timestamp = t.text.parse().map_err(|_| {
                line.err_at(&t, format!("expected a time: RFC 3339 UTC (2026-01-01T00:00:00Z) or @UNIX_SECONDS, found {:?}", t.text))
            })?;
            line.finish()?;
            Action::At { time }
        }
        "align" => {
            let t = line.peek().cloned();
            let ms = line.duration("a duration")?;
            if ms <= 0 {
                let t = t.unwrap_or_else(|| kw.clone());
                return Err(line.err_at(&t, "expected a positive duration, e.g. 30s"));
            }
            line.finish()?;
            Action::Align { ms }
        }
        "enable" | "resync" => {
            let user = user_name(line, names)?;
            let device = device_ref(line, names)?;
            let code1 = code_ref(line, names)?;
            let code2 = code_ref(line, names)?;
            let mut via = Channel::Console;
            if kw.text == "enable" && line.eat("via") {
                let t = line.word("console or api")?;
                via = match t.text.as_str() {
                    "console" => Channel::Console,
                    "api" => Channel::Api,
                    other => {
                        return Err(
                            line.err_at(&t, format!("expected console or api, found {other:?}"))
                        );
                    }
                };
            }
            let expect = line.outcome()?;
            if kw.text == "enable" {
                Action::Enable {
                    user,
                    device,
                    code1,
                    code2,
                    via,
                    expect,
                }
            } else {
                Action::Resync {
                    user,
                    device,
                    code1,
                    code2,
                    expect,
                }
            }
        }
        "deactivate" => {
            let user = user_name(line, names)?;
            let device = device_ref(line, names)?;
            let expect = line.outcome()?;
            Action::Deactivate {
                user,
                device,
                expect,
            }
        }
        "replace" => {
            let user = user_name(line, names)?;
            let old = device_ref(line, names)?;
            let new = device_ref(line, names)?;
            let code1 = code_ref(line, names)?;
            let code2 = code_ref(line, names)?;
            let expect = line.outcome()?;
            Action::Replace {
                user,
                old,
                new,
                code1,
                code2,
                expect,
            }
        }
        "sign-in" => {
            let user = user_name(line, names)?;
            let mut code = None;
            let mut wrong_password = false;
            while line.peek().is_some_and(|t| t.text != "->") {
                if line.eat("password=wrong") {
                    wrong_password = true;
                } else if code.is_none() {
                    code = Some(code_ref(line, names)?);
                } else {
                    return Err(line.err_here("expected 'password=wrong' or '->'"));
                }
            }
            let expect = line.outcome()?;
            Action::SignIn {
                user,
                code,
                wrong_password,
                expect,
            }
        }
        "session" => {
            let user = user_name(line, names)?;
            let mut key = 1;
            if let Some(t) = line.peek().cloned()
                && let Some(v) = t.text.strip_prefix("key=")
            {
                line.pos += 1;
                let have = names.keys.get(&user).copied().unwrap_or(1);
                key = v.parse::<u32>().ok().filter(|k| *k >= 1).ok_or_else(|| {
                    line.err_at(
                        &t,
                        format!(
                            "expected key=K with K a key number from 1, found {:?}",
                            t.text
                        ),
                    )
                })?;
                if key > have {
                    return Err(line.err_at(
                        &t,
                        format!(
                            "expected key=1..{have}: {user} has {have} access key{} (declare 'user {user} keys={key}')",
                            if have == 1 { "" } else { "s" }
                        ),
                    ));
                }
            }
            let device = device_ref(line, names)?;
            let code = code_ref(line, names)?;
            let expect = line.outcome()?;
            Action::Session {
                user,
                key,
                device,
                code,
                expect,
            }
        }
        "devices" => {
            let user = user_name(line, names)?;
            line.expect_arrow()?;
            let t = line.word("none or DEVICE[,DEVICE...]")?;
            let mut expect = Vec::new();
            if t.text != "none" {
                for part in t.text.split(',') {
                    if let Some(s) = part.strip_prefix("serial:") {
                        expect.push(DeviceRef::Serial(s.to_string()));
                    } else if names.devices.contains_key(part) {
                        expect.push(DeviceRef::Named(part.to_string()));
                    } else {
                        return Err(line.err_at(&t, format!("expected none or declared devices separated by commas, found {part:?}")));
                    }
                }
            }
            line.finish()?;
            Action::Devices { user, expect }
        }
        "recover" => {
            let t = line.word("root")?;
            if t.text != "root" {
                return Err(line.err_at(&t, format!("expected root (only the root user recovers with email + phone), found {:?}", t.text)));
            }
            let mut email = None;
            let mut phone = None;
            while line.peek().is_some_and(|t| t.text != "->") {
                let t = line.word("email=CODE, phone=CODE or '->'")?;
                match t.text.split_once('=') {
                    Some(("email", v)) if !v.is_empty() => email = Some(v.to_string()),
                    Some(("phone", v)) if !v.is_empty() => phone = Some(v.to_string()),
                    _ => {
                        return Err(line.err_at(
                            &t,
                            format!(
                                "expected email=CODE, phone=CODE or '->', found {:?}",
                                t.text
                            ),
                        ));
                    }
                }
            }
            let expect = line.outcome()?;
            Action::Recover {
                email,
                phone,
                expect,
            }
        }
        "clock" => {
            let t = line.word("server")?;
            if t.text != "server" {
                return Err(line.err_at(
                    &t,
                    format!("expected 'clock server +DURATION|-DURATION|reset' (the engine's clock; true time moves with wait, at, align), found {:?}", t.text),
                ));
            }
            let t = line.word("+DURATION, -DURATION or reset")?;
            let change = if t.text == "reset" {
                ServerClock::Reset
            } else {
                let signed = t.text.starts_with('+') || t.text.starts_with('-');
                let ms = parse_duration_ms(&t.text).ok().filter(|_| signed).ok_or_else(|| {
                    line.err_at(
                        &t,
                        format!("expected +DURATION, -DURATION (such as -2m or +10y) or reset, found {:?}", t.text),
                    )
                })?;
                ServerClock::Step(ms)
            };
            line.finish()?;
            Action::ClockServer { change }
        }
        "import" => {
            let t = line.peek().cloned();
            let device = device_name(line, names)?;
            if names.unregistered.contains(&device) {
                let t = t.unwrap_or_else(|| kw.clone());
                return Err(line.err_at(
                    &t,
                    format!("expected a device the engine may receive: {device} is declared 'unregistered' (drop that to import it here)"),
                ));
            }
            let expect = line.outcome()?;
            Action::Import { device, expect }
        }
        "lose" => {
            let device = usable_device(line, names)?;
            line.finish()?;
            names.lost.insert(device.clone(), line.no);
            Action::Lose { device }
        }
        "find" => {
            let t = line.peek().cloned();
            let device = device_name(line, names)?;
            if names.lost.remove(&device).is_none() {
                let t = t.unwrap_or_else(|| kw.clone());
                return Err(
                    line.err_at(&t, format!("expected a lost device: {device} is not lost"))
                );
            }
            line.finish()?;
            Action::Find { device }
        }
        "battery" => {
            let device = usable_device(line, names)?;
            let t = line.word("dead or new")?;
            let action = match t.text.as_str() {
                "dead" => BatteryAction::Dead,
                "new" => BatteryAction::New,
                other => {
                    return Err(line.err_at(&t, format!("expected dead or new, found {other:?}")));
                }
            };
            line.finish()?;
            Action::Battery { device, action }
        }
        "drift" => {
            let device = usable_device(line, names)?;
            let mut drift = Drift::NONE;
            if line.at_end() {
                return Err(line.err_here("expected offset=, ppm= or jitter="));
            }
            while !line.at_end() {
                let t = line.word("offset=, ppm= or jitter=")?;
                let ok = match t.text.split_once('=') {
                    Some((k, v)) if k != "age" => parse_drift_kv(line, &t, k, v, &mut drift)?,
                    _ => false,
                };
                if !ok {
                    return Err(line.err_at(
                        &t,
                        format!("expected offset=, ppm= or jitter=, found {:?}", t.text),
                    ));
                }
            }
            Action::Drift { device, drift }
        }
        "expect" => {
            if line
                .toks
                .get(line.pos + 1)
                .is_some_and(|t| !t.quoted && (t.text == "==" || t.text == "!="))
            {
                let left = code_ref(line, names)?;
                let op = line.word("== or !=")?;
                let right = code_ref(line, names)?;
                line.finish()?;
                return Ok(Action::ExpectCodes {
                    left,
                    equal: op.text == "==",
                    right,
                });
            }
            let at = line.pos;
            let device = device_name(line, names)?;
            let t = line
                .word("steps A..B, locked or unlocked (or '== CODE' / '!= CODE' after a code)")?;
            if t.text == "steps" && names.lost.contains_key(&device) {
                line.pos = at;
                usable_device(line, names)?;
            }
            match t.text.as_str() {
                "locked" | "unlocked" => {
                    line.finish()?;
                    Action::ExpectLocked {
                        device,
                        locked: t.text == "locked",
                    }
                }
                "steps" => {
                    let r = line.word("a range A..B")?;
                    let bad = || {
                        line.err_at(
                            &r,
                            format!(
                                "expected a range of steps A..B such as 7..8 or -1..1, found {:?}",
                                r.text
                            ),
                        )
                    };
                    let (a, b) = r.text.split_once("..").ok_or_else(bad)?;
                    let min: i64 = a.trim_start_matches('+').parse().map_err(|_| bad())?;
                    let max: i64 = b.trim_start_matches('+').parse().map_err(|_| bad())?;
                    if min > max {
                        return Err(bad());
                    }
                    line.finish()?;
                    Action::ExpectSteps { device, min, max }
                }
                other => {
                    return Err(line.err_at(
                        &t,
                        format!("expected steps A..B, locked or unlocked, found {other:?}"),
                    ));
                }
            }
        }
        other => {
            return Err(line.err_at(
                kw,
                format!("expected a step ({STEP_WORDS}) or a declaration ({HEADER_WORDS}), found {other:?}"),
            ));
        }
    })
}
