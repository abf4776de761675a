//! What every group shares: medians, percentiles and rates, bounded child
//! processes, CPU time and resident memory from `/proc`.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BenchError, Options, peer};

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
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

/// A child process with a deadline; stdout is read on a thread (no pipe
/// deadlock), the child is killed by PID when the deadline passes.
pub(crate) fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
    who: &str,
) -> Result<String, BenchError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| peer(who, format!("cannot start {:?}: {e}", cmd.get_program())))?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let ereader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = err.as_mut() {
            // Drain all of it (a full pipe would block the child), keep 64 KiB.
            let _ = o.read_to_end(&mut s);
            s.truncate(64 * 1024);
        }
        s
    });
    let until = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(peer(who, format!("no exit within {timeout:?}; killed")));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let out = reader.join().unwrap_or_default();
    let err = ereader.join().unwrap_or_default();
    if !status.success() {
        return Err(peer(
            who,
            format!(
                "{status}: {}",
                String::from_utf8_lossy(&err)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
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
/// This process's resident memory (`VmRSS`), KiB; 0 if unknown.
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
