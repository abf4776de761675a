//! Reports: human text (one line per scenario, a failure shows the
//! transcript diff), JSON (byte-identical for the same scenarios + seed) and
//! JUnit XML for CI systems.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::junit;
use crate::runner::{Entry, ScenarioResult, Verdict};

/// Counts per verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Scenarios run.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed an expectation.
    pub failed: usize,
    /// Not applicable to the engine (never counted as passed).
    #[serde(rename = "n/a")]
    pub not_applicable: usize,
    /// Harness/adapter errors.
    pub errors: usize,
}

impl Summary {
    /// Count the verdicts.
    #[must_use]
    pub fn of(results: &[ScenarioResult]) -> Summary {
        let mut s = Summary {
            total: results.len(),
            ..Summary::default()
        };
        for r in results {
            match r.verdict {
                Verdict::Pass => s.passed += 1,
                Verdict::Fail { .. } => s.failed += 1,
                Verdict::NotApplicable { .. } => s.not_applicable += 1,
                Verdict::Error { .. } => s.errors += 1,
            }
        }
        s
    }

    /// True if every expectation held (n/a scenarios do not count as held).
    #[must_use]
    pub fn all_passed(&self) -> bool {
        self.passed == self.total
    }
}

/// `value` as pretty JSON, newline-terminated (a serialization failure
/// becomes `{"error": ...}`, never a panic).
pub(crate) fn pretty_json(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
    s.push('\n');
    s
}

/// A whole run: what the JSON report contains.
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    /// Report format version.
    pub format: u32,
    /// Engine adapter.
    pub engine: &'a str,
    /// The run seed.
    pub seed: u64,
    /// Counts.
    pub summary: Summary,
    /// Every scenario.
    pub scenarios: &'a [ScenarioResult],
    /// Wall time per scenario (JUnit only).
    #[serde(skip)]
    pub times: Option<&'a [Duration]>,
}

impl<'a> Report<'a> {
    /// Build a report.
    #[must_use]
    pub fn new(engine: &'a str, seed: u64, scenarios: &'a [ScenarioResult]) -> Self {
        Report {
            format: 1,
            engine,
            seed,
            summary: Summary::of(scenarios),
            scenarios,
            times: None,
        }
    }

    /// Pretty JSON, newline-terminated. Deterministic: no wall times.
    #[must_use]
    pub fn json(&self) -> String {
        pretty_json(self)
    }

    /// Human text: one line per scenario; failures and errors followed by
    /// the transcript with the failing step marked `-` expected / `+` got.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = String::new();
        let width = self.scenarios.iter().map(|r| r.id.len()).max().unwrap_or(0);
        for r in self.scenarios {
            let _ = match &r.verdict {
                Verdict::Pass => writeln!(out, "pass   {:width$}  {}", r.id, first_source(r)),
                Verdict::Fail {
                    line,
                    expected,
                    got,
                } => writeln!(
                    out,
                    "FAIL   {:width$}  {}:{line}: expected {expected}, got {got}",
                    r.id, r.file
                ),
                Verdict::NotApplicable { line, capability } => writeln!(
                    out,
                    "n/a    {:width$}  {}:{line}: engine {} lacks {}",
                    r.id,
                    r.file,
                    r.engine,
                    capability.as_str()
                )
                .and_then(|()| {
                    match r.transcript.last().and_then(|e| e.note.as_ref()) {
                        Some(note) => writeln!(out, "       note: {note}"),
                        None => Ok(()),
                    }
                }),
                Verdict::Error { line, message } => {
                    writeln!(out, "ERROR  {:width$}  {}:{line}: {message}", r.id, r.file)
                }
            };
            if matches!(r.verdict, Verdict::Fail { .. } | Verdict::Error { .. }) {
                out.push_str(&transcript_diff(r));
            }
        }
        let s = self.summary;
        let _ = writeln!(
            out,
            "\n{} scenarios against {} (seed {}): {} passed, {} failed, {} n/a, {} errors",
            s.total, self.engine, self.seed, s.passed, s.failed, s.not_applicable, s.errors
        );
        out
    }

    /// Per-scenario wall times, in the order of the scenarios, for the
    /// JUnit `time` attributes (never in the JSON, which stays
    /// byte-identical).
    #[must_use]
    pub fn with_times(mut self, times: &'a [Duration]) -> Self {
        self.times = Some(times);
        self
    }

    /// JUnit XML (one `<testsuite>`, one `<testcase>` per scenario; n/a is
    /// `<skipped>`, never a pass), written by [`crate::junit`]. `time`
    /// attributes are the wall times given with [`Report::with_times`]
    /// (the suite's: their sum); without them there are none.
    #[must_use]
    pub fn junit(&self) -> String {
        let cases = self
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, r)| junit::Case {
                classname: format!("fobsim.{}", r.engine),
                name: r.id.clone(),
                file: r.file.clone(),
                time: self.times.and_then(|t| t.get(i).copied()),
                outcome: match &r.verdict {
                    Verdict::Pass => junit::Outcome::Pass,
                    Verdict::Fail {
                        line,
                        expected,
                        got,
                    } => junit::Outcome::Failure {
                        kind: "expectation".into(),
                        message: format!("{}:{line}: expected {expected}, got {got}", r.file),
                        text: transcript_diff(r),
                    },
                    Verdict::NotApplicable { line, capability } => junit::Outcome::Skipped {
                        message: format!(
                            "n/a: {}:{line} needs {}, which engine {} lacks",
                            r.file,
                            capability.as_str(),
                            r.engine
                        ),
                    },
                    Verdict::Error { line, message } => junit::Outcome::Error {
                        kind: "harness".into(),
                        message: format!("{}:{line}: {message}", r.file),
                        text: transcript_diff(r),
                    },
                },
            })
            .collect();
        junit::write(
            "fobsim",
            vec![junit::Suite {
                name: format!("fobsim conformance ({})", self.engine),
                properties: vec![
                    ("engine".into(), self.engine.to_string()),
                    ("seed".into(), self.seed.to_string()),
                ],
                time: self.times.map(|t| t.iter().sum()),
                cases,
            }],
        )
    }
}

fn first_source(r: &ScenarioResult) -> String {
    r.sources
        .first()
        .map(|s| {
            let t: String = s.text.chars().take(70).collect();
            let more = if s.text.chars().count() > 70 {
                "…"
            } else {
                ""
            };
            format!("[{}] {t}{more}", s.kind.as_str())
        })
        .unwrap_or_default()
}

fn describe(e: &Entry) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &e.server_clock {
        parts.push(format!("server clock {s}"));
    }
    if let Some(s) = &e.shown {
        parts.push(format!("shown {s}"));
    }
    if let Some(d) = &e.device_clock {
        parts.push(format!("device {d}"));
    }
    for a in &e.answered {
        parts.push(format!("answered {}", a.short()));
    }
    if let Some(n) = e.iterations {
        parts.push(format!("{n} iterations ok"));
    }
    parts.join(", ")
}

/// The transcript as text, the failing step split into `-` expected and
/// `+` got lines (a unified-diff-like view of expectation vs transcript).
#[must_use]
pub fn transcript_diff(r: &ScenarioResult) -> String {
    let mut out = String::new();
    for e in &r.transcript {
        let it = if e.iteration.is_empty() {
            String::new()
        } else {
            format!(
                " [iteration {}]",
                e.iteration
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(".")
            )
        };
        let d = describe(e);
        let sep = if d.is_empty() { "" } else { "  | " };
        match e.result {
            "fail" | "error" | "n/a" => {
                let _ = writeln!(out, "  > {:>4} {}  {}{it}{sep}{d}", e.line, e.clock, e.step);
                if let Some(x) = &e.expected {
                    let _ = writeln!(out, "  -        expected: {x}");
                }
                if let Some(g) = &e.got {
                    let _ = writeln!(out, "  +        got:      {g}");
                }
                if let Some(n) = &e.note {
                    let _ = writeln!(out, "  !        note:     {n}");
                }
                for t in &e.trace {
                    let _ = writeln!(out, "  ~        trace:    {t}");
                }
                for a in &e.answered {
                    if let crate::adapter::Answer::Error { message, .. } = a {
                        let _ = writeln!(out, "  +        message:  {message}");
                    }
                }
            }
            _ => {
                let _ = writeln!(out, "    {:>4} {}  {}{it}{sep}{d}", e.line, e.clock, e.step);
            }
        }
    }
    out
}
