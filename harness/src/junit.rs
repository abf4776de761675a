//! JUnit XML, the one writer behind `fobsim run --format junit`
//! ([`crate::report::Report::junit`]) and `fobsim matrix --format junit`
//! ([`crate::matrix::Matrix::junit_timed`]), on `quick-junit`: escaping,
//! the counts of every `<testsuite>` and `<testsuites>`, and `time`
//! attributes in seconds of wall time.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

/// How one test case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every expectation held.
    Pass,
    /// An expectation failed (`<failure type=… message=…>text</failure>`).
    Failure {
        /// `type` attribute.
        kind: String,
        /// `message` attribute.
        message: String,
        /// Element text (may be empty).
        text: String,
    },
    /// Not run or not applicable (`<skipped message=…/>`).
    Skipped {
        /// `message` attribute.
        message: String,
    },
    /// The harness or the engine's setup broke (`<error type=… message=…>`).
    Error {
        /// `type` attribute.
        kind: String,
        /// `message` attribute.
        message: String,
        /// Element text (may be empty).
        text: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// `classname` attribute.
    pub classname: String,
    /// `name` attribute (the scenario id).
    pub name: String,
    /// `file` attribute (the scenario file).
    pub file: String,
    /// Wall time (`time` attribute), when measured.
    pub time: Option<Duration>,
    /// How it ended.
    pub outcome: Outcome,
}

/// One `<testsuite>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suite {
    /// `name` attribute.
    pub name: String,
    /// `<properties>`, in order.
    pub properties: Vec<(String, String)>,
    /// Wall time of the whole suite (`time` attribute), when measured.
    pub time: Option<Duration>,
    /// The cases, in order.
    pub cases: Vec<Case>,
}

/// The JUnit XML document of `suites` under `<testsuites name=…>`, with
/// the counts of each level and, when measured, `time` attributes (the
/// root's: the suites' sum).
#[must_use]
pub fn write(name: &str, suites: Vec<Suite>) -> String {
    let mut report = quick_junit::Report::new(name);
    let mut total: Option<Duration> = None;
    for s in suites {
        let mut suite = TestSuite::new(s.name);
        for (k, v) in s.properties {
            suite.add_property(Property::new(k, v));
        }
        if let Some(t) = s.time {
            suite.set_time(t);
            total = Some(total.unwrap_or_default() + t);
        }
        for c in s.cases {
            let status = match c.outcome {
                Outcome::Pass => TestCaseStatus::success(),
                Outcome::Failure {
                    kind,
                    message,
                    text,
                } => non_success(NonSuccessKind::Failure, kind, message, text),
                Outcome::Error {
                    kind,
                    message,
                    text,
                } => non_success(NonSuccessKind::Error, kind, message, text),
                Outcome::Skipped { message } => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(message);
                    st
                }
            };
            let mut case = TestCase::new(c.name, status);
            case.set_classname(c.classname);
            case.extra.insert("file".into(), c.file.into());
            if let Some(t) = c.time {
                case.set_time(t);
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    if let Some(t) = total {
        report.set_time(t);
    }
    report.to_string().unwrap_or_else(|e| {
        // Serializing to a String fails only on a writer error: none here.
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- {e} -->\n")
    })
}

fn non_success(kind: NonSuccessKind, ty: String, message: String, text: String) -> TestCaseStatus {
    let mut st = TestCaseStatus::non_success(kind);
    st.set_type(ty).set_message(message);
    if !text.is_empty() {
        st.set_description(text);
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_escaping_and_times() {
        let xml = write(
            "fobsim",
            vec![Suite {
                name: "s <1>".into(),
                properties: vec![("engine".into(), "a&b".into())],
                time: Some(Duration::from_millis(1500)),
                cases: vec![
                    Case {
                        classname: "c".into(),
                        name: "ok".into(),
                        file: "f.scenario".into(),
                        time: Some(Duration::from_millis(250)),
                        outcome: Outcome::Pass,
                    },
                    Case {
                        classname: "c".into(),
                        name: "bad".into(),
                        file: "f.scenario".into(),
                        time: None,
                        outcome: Outcome::Failure {
                            kind: "expectation".into(),
                            message: "expected \"ok\"".into(),
                            text: "- a\n+ b".into(),
                        },
                    },
                    Case {
                        classname: "c".into(),
                        name: "na".into(),
                        file: "f.scenario".into(),
                        time: None,
                        outcome: Outcome::Skipped {
                            message: "n/a".into(),
                        },
                    },
                ],
            }],
        );
        assert!(xml.starts_with("<?xml"), "{xml}");
        assert!(
            xml.contains("tests=\"3\" skipped=\"1\" failures=\"1\" errors=\"0\""),
            "{xml}"
        );
        assert!(xml.contains("skipped=\"1\""), "{xml}");
        assert!(xml.contains("name=\"s &lt;1&gt;\""), "{xml}");
        assert!(xml.contains("value=\"a&amp;b\""), "{xml}");
        assert!(xml.contains("time=\"1.500\""), "{xml}");
        assert!(xml.contains("time=\"0.250\""), "{xml}");
        assert!(xml.contains("file=\"f.scenario\""), "{xml}");
        assert!(xml.contains("message=\"expected &quot;ok&quot;\""), "{xml}");
    }
}
