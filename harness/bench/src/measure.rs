//! What every group shares: medians, percentiles and rates, bounded child
//! processes, CPU time and resident memory from `/proc`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{BenchError, Options, peer};

/// The `p` quantile (0..=1) of `sorted` (nearest rank, rounded); zero for
/// no samples.
#[must_use]
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over `opts.runs()` runs of ops/s, each run calling `batch` (which
/// does some ops and returns how many) until `opts.min_time()` has passed.
pub(crate) fn rate(opts: &Opts, mut batch: impl FnMut() -> u64) -> f64 {
    let mut rates = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        let start = Instant::now();
        let mut n = 0u64;
        // Bounded: each batch is finite, and the loop ends at min_time.
        while start.elapsed() < opts.min_time {
            n += batch();
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

/// The two numbers [`rate`] needs (so closures can borrow `Options`).
pub(crate) struct Opts {
    pub(crate) runs: usize,
    pub(crate) min_time: Duration,
}

pub(crate) fn opts_of(o: &Options) -> Opts {
    Opts {
        runs: o.runs(),
        min_time: o.min_time(),
    }
}

/// A child process with a deadline ([`fobsim_engines::peers::run_bounded`]);
/// its failure is the peer `who`'s.
pub(crate) fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
    who: &str,
) -> Result<String, BenchError> {
    fobsim_engines::peers::run_bounded(cmd, timeout).map_err(|e| peer(who, e))
}

/// CPU time (utime + stime, s) of the processes whose process group is
/// `pgid` (all of them: a server and its workers), or of this process if
/// `pgid` is `None`. `None` if `/proc` cannot be read.
pub(crate) fn cpu_seconds(pgid: Option<u32>) -> Option<f64> {
    // USER_HZ is 100 on Linux for every architecture we run on.
    const HZ: f64 = 100.0;
    let parse = |stat: &str| -> Option<(u32, f64)> {
        // Fields after the command name (which may contain spaces).
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] = state (field 3); pgrp = field 5; utime 14; stime 15.
        let pgrp = f.get(2)?.parse().ok()?;
        let ut: f64 = f.get(11)?.parse().ok()?;
        let st: f64 = f.get(12)?.parse().ok()?;
        Some((pgrp, (ut + st) / HZ))
    };
    match pgid {
        None => parse(&std::fs::read_to_string("/proc/self/stat").ok()?).map(|(_, c)| c),
        Some(g) => {
            let mut total = 0.0;
            for e in std::fs::read_dir("/proc").ok()?.flatten().take(100_000) {
                let name = e.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Ok(stat) = std::fs::read_to_string(e.path().join("stat"))
                    && let Some((pg, c)) = parse(&stat)
                    && pg == g
                {
                    total += c;
                }
            }
            Some(total)
        }
    }
}

/// CPU time (utime + stime, s) of process `root` and its children (a
/// PostgreSQL postmaster and its backends); `None` if `/proc` cannot be
/// read. Children that exited are not counted: measure while they live.
pub(crate) fn cpu_seconds_of_tree(root: u32) -> Option<f64> {
    const HZ: f64 = 100.0;
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").ok()?.flatten().take(100_000) {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|r| r.1) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] = state (field 3); ppid = field 4; utime 14; stime 15.
        let ppid: Option<u32> = f.get(1).and_then(|p| p.parse().ok());
        if pid != root && ppid != Some(root) {
            continue;
        }
        let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += (ut + st) / HZ;
    }
    Some(total)
}

/// This process's resident memory (`VmRSS`), KiB; 0 if unknown.
#[must_use]
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
