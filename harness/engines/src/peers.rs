//! What the bundled third-party engines need from this machine: programs
//! on `PATH`, virtualenvs, libfaketime, and the small helpers their
//! adapters share.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fobsim_core::SeedRecord;
use fobsim_harness::adapter::{AdapterError, Answer, SetupProblem};

/// The directory the Python engines' virtualenvs live in.
#[must_use]
pub fn peers_dir() -> PathBuf {
    match std::env::var_os("FOBSIM_PEERS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers"),
    }
}

/// A virtualenv: `$var` if set, else `peers_dir()/name`.
#[must_use]
pub fn venv(var: &str, name: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => peers_dir().join(name),
    }
}

/// A program on `PATH` (also `/usr/sbin`, `/sbin`).
#[must_use]
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A program on `PATH`, or a [`SetupProblem`] naming the Debian package.
///
/// # Errors
/// [`SetupProblem`] if it is not found.
pub fn require(engine: &str, program: &str, package: &str) -> Result<PathBuf, SetupProblem> {
    which(program).ok_or_else(|| {
        SetupProblem::new(
            engine,
            format!("program `{program}` not found on PATH"),
            &format!("apt-get install {package}"),
        )
    })
}

/// `libfaketime.so.1` (`FOBSIM_LIBFAKETIME`, else the Debian paths).
///
/// # Errors
/// [`SetupProblem`] if it is not there.
pub fn libfaketime(engine: &str) -> Result<PathBuf, SetupProblem> {
    if let Some(p) = std::env::var_os("FOBSIM_LIBFAKETIME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or_else(|| {
        SetupProblem::new(
            engine,
            "libfaketime.so.1 not found",
            "apt-get install faketime",
        )
    })
}

/// Point a libfaketime timestamp file (`FAKETIME_TIMESTAMP_FILE`, read
/// on every call with `FAKETIME_NO_CACHE=1`) at `now`: an offset from real
/// time in seconds with milliseconds (`+0` for real time), so the faked
/// clock runs from `now` (never earlier) at real rate. The file is replaced by a rename, so a reader never
/// sees half a line.
///
/// # Errors
/// Writing or renaming the file failed.
pub fn write_faketime_offset(
    file: &Path,
    now: Option<fobsim_core::Timestamp>,
) -> std::io::Result<()> {
    let text = match now {
        None => "+0\n".to_string(),
        Some(t) => {
            let real_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            // Rounded up to the millisecond: the faked clock must never read
            // before `now`. Rounded to nearest, a request at a step boundary
            // (the suite's codes are typed there) could be judged up to
            // 0.5 ms earlier, in the step before.
            let offset = (t.as_millis() as f64 - real_ms).ceil() as i64;
            let sign = if offset < 0 { '-' } else { '+' };
            let abs = offset.unsigned_abs();
            format!("{sign}{}.{:03}\n", abs / 1000, abs % 1000)
        }
    };
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

/// Why [`run_bounded`] gave no output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Start {
        /// The program, quoted.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It did not exit before the deadline; it was killed.
    #[error("no exit within {0:?}; killed")]
    Timeout(Duration),
    /// It exited unsuccessfully.
    #[error("{status}: {stderr}")]
    Failed {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The start of its stderr (300 characters at most).
        stderr: String,
    },
    /// Waiting for it failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Run a child process to completion with a deadline and return its stdout.
/// stdin is closed; stdout and stderr are read on threads (no pipe
/// deadlock); the child is killed by PID when the deadline passes.
///
/// # Errors
/// [`RunError`]: it cannot start, overruns `timeout`, or exits
/// unsuccessfully (with the start of its stderr).
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<String, RunError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Start {
            program: format!("{:?}", cmd.get_program()),
            source,
        })?;
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
            return Err(RunError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let out = reader.join().unwrap_or_default();
    let err = ereader.join().unwrap_or_default();
    if !status.success() {
        return Err(RunError::Failed {
            status,
            stderr: String::from_utf8_lossy(&err).chars().take(300).collect(),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Seed records by serial (what a vendor shipped for the scenario).
#[derive(Debug, Clone, Default)]
pub(crate) struct Seeds(HashMap<String, SeedRecord>);

impl Seeds {
    pub(crate) fn new(list: &[SeedRecord]) -> Self {
        Seeds(
            list.iter()
                .map(|s| (s.serial.to_string(), s.clone()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, serial: &str) -> Option<&SeedRecord> {
        self.0.get(serial)
    }

    /// Add (or replace) a record.
    pub(crate) fn insert(&mut self, seed: SeedRecord) {
        self.0.insert(seed.serial.to_string(), seed);
    }
}

pub(crate) fn transport(adapter: &str, message: impl Into<String>) -> AdapterError {
    AdapterError::Transport {
        adapter: adapter.to_string(),
        message: message.into(),
    }
}

pub(crate) fn setup_err(adapter: &str, message: impl Into<String>) -> AdapterError {
    AdapterError::Setup {
        adapter: adapter.to_string(),
        message: message.into(),
    }
}

/// An AWS-shaped refusal.
pub(crate) fn refuse(
    code: &str,
    status: u16,
    kind: Option<&str>,
    message: impl Into<String>,
) -> Answer {
    Answer::Error {
        code: code.to_string(),
        status,
        kind: kind.map(str::to_string),
        message: message.into(),
    }
}

/// A token the engine cannot take: `ValidationError` (AWS's answer to a
/// bad input), kind `UnsupportedToken`.
pub(crate) fn unsupported_token(message: impl Into<String>) -> Answer {
    refuse("ValidationError", 400, Some("UnsupportedToken"), message)
}

/// A unique suffix for names outside the temp folder (pam.d services).
pub(crate) fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The last `n` characters of a process's output, for error messages.
pub(crate) fn tail(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    let start = s.char_indices().rev().nth(n).map_or(0, |(i, _)| i);
    s[start..].replace('\n', " | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fobsim_core::Timestamp;

    fn real_ms() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0
    }

    /// The faked clock never reads before the time asked for, and at most
    /// a millisecond (plus the time the write took) after it.
    #[test]
    fn the_faketime_offset_never_lands_before_now() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faketime");
        write_faketime_offset(&file, None).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "+0\n");
        for i in 0..2_000u64 {
            // Step boundaries in the past and the future, as the suite types codes.
            let target = Timestamp::from_millis(1_767_225_600_000 + i * 30_000 + i % 7);
            let before = real_ms();
            write_faketime_offset(&file, Some(target)).unwrap();
            let after = real_ms();
            let text = std::fs::read_to_string(&file).unwrap();
            let (_, frac) = text.trim().split_once('.').unwrap();
            assert_eq!(frac.len(), 3, "{text}");
            assert!(text.starts_with('+') || text.starts_with('-'), "{text}");
            let offset_ms: f64 = text.trim().parse::<f64>().unwrap() * 1000.0;
            let t = target.as_millis() as f64;
            // Read at any moment after the write: real >= the write's real time.
            assert!(
                after + offset_ms >= t - 1e-3,
                "{text}: {} ms early",
                t - after - offset_ms
            );
            assert!(
                before + offset_ms <= t + 1.0 + (after - before) + 1e-3,
                "{text}"
            );
        }
        assert!(!file.with_extension("new").exists());
    }
}
