//! The report: rows, the machine they were measured on, ratios to the
//! peers, the targets, and the Markdown table.

use std::time::Duration;

use serde::Serialize;

use crate::Group;
use crate::measure::percentile;

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable id, e.g. `otp.sha1.fobsim`.
    pub id: String,
    /// Its group.
    pub group: Group,
    /// What was measured, for people.
    pub name: String,
    /// The value (median of the runs); `None` if it could not be measured.
    pub value: Option<f64>,
    /// The unit of `value`.
    pub unit: String,
    /// Median latency, µs, where measured.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs, where measured.
    pub p99_us: Option<f64>,
    /// How it was measured, or why it is missing.
    pub note: String,
}

impl Row {
    pub(crate) fn new(id: &str, group: Group, name: &str, value: f64, unit: &str) -> Row {
        Row {
            id: id.to_string(),
            group,
            name: name.to_string(),
            value: Some(value),
            unit: unit.to_string(),
            p50_us: None,
            p99_us: None,
            note: String::new(),
        }
    }

    pub(crate) fn missing(id: &str, group: Group, name: &str, unit: &str, why: String) -> Row {
        Row {
            id: id.to_string(),
            group,
            name: name.to_string(),
            value: None,
            unit: unit.to_string(),
            p50_us: None,
            p99_us: None,
            note: why,
        }
    }

    pub(crate) fn lat(mut self, lat: &mut [Duration]) -> Row {
        if !lat.is_empty() {
            lat.sort_unstable();
            self.p50_us = Some(percentile(lat, 0.50).as_secs_f64() * 1e6);
            self.p99_us = Some(percentile(lat, 0.99).as_secs_f64() * 1e6);
        }
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub logical_cpus: usize,
    /// `sha_ni` in the CPU flags.
    pub sha_ni: bool,
    /// `avx512f` in the CPU flags.
    pub avx512f: bool,
    /// `/proc/loadavg` (1, 5, 15 min) before the run.
    pub load_before: String,
    /// `/proc/loadavg` after the run.
    pub load_after: String,
}

impl Machine {
    pub(crate) fn probe() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let flags = field("flags");
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        Machine {
            cpu_model: field("model name"),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sha_ni: has("sha_ni"),
            avx512f: has("avx512f"),
            load_before: loadavg(),
            load_after: String::new(),
        }
    }
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A target from issue 9, checked against the measured numbers. Shown in
/// the table; never a pass/fail of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target, in words.
    pub what: String,
    /// The measured quantity (a ratio or a value in the target's unit).
    pub measured: Option<f64>,
    /// The goal in the same unit.
    pub goal: f64,
    /// `true` if the goal is a maximum (lower is better).
    pub at_most: bool,
    /// Whether the measured value meets the goal (`None` if not measured).
    pub met: Option<bool>,
}

/// A ratio of ours to a peer's number (higher = fobsim is faster).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Our row id.
    pub ours: String,
    /// The peer's row id.
    pub peer: String,
    /// ours ÷ peer for rates, peer ÷ ours for costs (CPU per request):
    /// always "how many times better fobsim is".
    pub ratio: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// `--quick`: smaller sizes (see the notes).
    pub quick: bool,
    /// Client concurrency used for every verification row.
    pub concurrency: usize,
    /// Groups that ran.
    pub groups: Vec<Group>,
    /// The numbers.
    pub rows: Vec<Row>,
    /// Ratios to the peers.
    pub ratios: Vec<Ratio>,
    /// The targets.
    pub targets: Vec<Target>,
    /// Wall time of the whole run, s.
    pub wall_s: f64,
}
fn value(rows: &[Row], id: &str) -> Option<f64> {
    rows.iter().find(|r| r.id == id).and_then(|r| r.value)
}

pub(crate) fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut push = |ours: &str, peer: &str| {
        if let (Some(a), Some(b)) = (value(rows, ours), value(rows, peer))
            && b > 0.0
        {
            out.push(Ratio {
                ours: ours.into(),
                peer: peer.into(),
                ratio: a / b,
            });
        }
    };
    for a in ["sha1", "sha256", "sha512"] {
        for ours in ["fobsim", "fobsim-batch"] {
            push(&format!("otp.{a}.{ours}"), &format!("otp.{a}.totp-rs"));
        }
        push(&format!("otp.{a}.fobsim"), &format!("otp.{a}.pyotp"));
    }
    push("otp.sha1.fobsim", "otp.sha1.oathtool-process");
    push("otp.sha1.fobsim", "otp.sha1.oathtool-code");
    push("verify.http.sqlite", "verify.privacyidea");
    push("verify.http.memory", "verify.privacyidea");
    // Costs (µs per call, CPU per request): lower is better, so peer ÷ ours.
    for w in [10, 100, 1000, 10_000] {
        let (ours, peer) = (
            format!("search.enable-miss.w{w}"),
            format!("search.totp-rs.w{w}"),
        );
        if let (Some(a), Some(b)) = (value(rows, &ours), value(rows, &peer))
            && a > 0.0
        {
            out.push(Ratio {
                ours,
                peer,
                ratio: b / a,
            });
        }
    }
    for ours in ["verify.cpu.http.sqlite", "verify.cpu.http.memory"] {
        if let (Some(a), Some(b)) = (value(rows, ours), value(rows, "verify.cpu.privacyidea"))
            && a > 0.0
        {
            out.push(Ratio {
                ours: ours.into(),
                peer: "verify.cpu.privacyidea".into(),
                ratio: b / a,
            });
        }
    }
    out
}

pub(crate) fn targets(rows: &[Row], ratios: &[Ratio]) -> Vec<Target> {
    let ratio = |ours: &str, peer: &str| {
        ratios
            .iter()
            .find(|r| r.ours == ours && r.peer == peer)
            .map(|r| r.ratio)
    };
    let t = |what: &str, measured: Option<f64>, goal: f64, at_most: bool| Target {
        what: what.into(),
        measured,
        goal,
        at_most,
        met: measured.map(|m| if at_most { m < goal } else { m >= goal }),
    };
    let mem = value(rows, "emulator.fleet-memory.100000").map(|b| b * 100_000.0 / (1 << 20) as f64);
    vec![
        t(
            "OTP core SHA1 ≥ 3× totp-rs (ratio)",
            ratio("otp.sha1.fobsim", "otp.sha1.totp-rs"),
            3.0,
            false,
        ),
        t(
            "in-memory verification ≥ 1,000,000/s per core (verifications/s, 1 thread)",
            value(rows, "verify.memory.t1"),
            1_000_000.0,
            false,
        ),
        t(
            "HTTP GetSessionToken (SQLite) ≥ 10,000 req/s",
            value(rows, "verify.http.sqlite"),
            10_000.0,
            false,
        ),
        t(
            "HTTP GetSessionToken (SQLite) ≥ 20× privacyIDEA /validate/check (ratio)",
            ratio("verify.http.sqlite", "verify.privacyidea"),
            20.0,
            false,
        ),
        t("100,000 in-process fobs < 200 MiB (MiB)", mem, 200.0, true),
        t(
            "built-in suite < 1 s (ms)",
            value(rows, "harness.suite"),
            1000.0,
            true,
        ),
    ]
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_opt_us(v: Option<f64>) -> String {
    v.map_or_else(
        || "—".into(),
        |u| {
            if u >= 1000.0 {
                format!("{:.2} ms", u / 1e3)
            } else {
                format!("{u:.1} µs")
            }
        },
    )
}

impl Report {
    /// The table as Markdown (what `docs/PERFORMANCE.md` shows).
    #[must_use]
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} — {} logical CPUs, sha_ni: {}, avx512f: {}. Load average before/after: {} / {}. Concurrency: {}.{}",
            m.cpu_model,
            m.logical_cpus,
            if m.sha_ni { "yes" } else { "no" },
            if m.avx512f { "yes" } else { "no" },
            m.load_before,
            m.load_after,
            self.concurrency,
            if self.quick {
                " **--quick: shorter runs, smaller sizes.**"
            } else {
                ""
            }
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "| group | what | value | unit | p50 | p99 | notes |");
        let _ = writeln!(s, "|---|---|---:|---|---:|---:|---|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.group.name(),
                r.name,
                r.value.map_or_else(|| "not measured".into(), fmt_num),
                r.unit,
                fmt_opt_us(r.p50_us),
                fmt_opt_us(r.p99_us),
                r.note.replace('|', "/")
            );
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "| ours | peer | fobsim ahead by (rates: ours ÷ peer; CPU cost: peer ÷ ours) |"
            );
            let _ = writeln!(s, "|---|---|---:|");
            for r in &self.ratios {
                let _ = writeln!(s, "| {} | {} | {:.2}× |", r.ours, r.peer, r.ratio);
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "| target | measured | goal | met |");
        let _ = writeln!(s, "|---|---:|---:|---|");
        for t in &self.targets {
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} |",
                t.what,
                t.measured.map_or_else(|| "not measured".into(), fmt_num),
                if t.at_most { "< " } else { "≥ " },
                fmt_num(t.goal),
                match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "—",
                }
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "Whole run: {:.1} s.", self.wall_s);
        s
    }
}
