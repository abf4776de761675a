//! The matrix's adapters clean up everything they start or write outside
//! their temp folders — servers (stopped by PID) and `/etc/pam.d` services —
//! when dropped, and also when the run is interrupted (SIGINT → the
//! handlers of `adapters::cleanup` → exit 130).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fobsim_engines::cleanup::{self, alive};
use fobsim_engines::django_otp::DjangoOtp;
use fobsim_engines::moto::Moto;
use fobsim_engines::pam::{self, Module};
use fobsim_engines::privacyidea::PrivacyIdea;
use fobsim_harness::adapter::SetupProblem;
use fobsim_harness::driver::InProcess;
use fobsim_harness::runner::Runner;
use fobsim_harness::suite;

const CHILD_ENV: &str = "FOBSIM_MATRIX_CLEANUP_CHILD";

fn need<T>(r: Result<T, SetupProblem>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Start every adapter that leaves something outside its temp folder and
/// run one scenario on each (so their files and servers are in use).
/// Returns (pam.d files, server PIDs) and the adapters.
fn start_all() -> (Vec<PathBuf>, Vec<u32>, Vec<Box<dyn std::any::Any>>) {
    let sc = suite::builtin()
        .unwrap()
        .into_iter()
        .find(|s| s.id == "prompt-enable-stays-in-sync")
        .unwrap();
    let mut g = need(pam::open(Module::Google));
    let mut o = need(pam::open(Module::Oath));
    let mut p = need(PrivacyIdea::new());
    let mut m = need(Moto::new());
    let mut d = need(DjangoOtp::new());
    let files = vec![
        g.checker().pamd_path().to_path_buf(),
        o.checker().pamd_path().to_path_buf(),
    ];
    let pids = vec![p.pid(), m.pid(), d.pid()];
    for f in &files {
        assert!(f.is_file(), "{} was not written", f.display());
    }
    for pid in &pids {
        assert!(alive(*pid), "server {pid} is not running");
    }
    Runner::new(&mut g, &mut InProcess, 1).run(&sc);
    Runner::new(&mut o, &mut InProcess, 1).run(&sc);
    Runner::new(&mut p, &mut InProcess, 1).run(&sc);
    Runner::new(&mut m, &mut InProcess, 1).run(&sc);
    Runner::new(&mut d, &mut InProcess, 1).run(&sc);
    let keep: Vec<Box<dyn std::any::Any>> = vec![
        Box::new(g),
        Box::new(o),
        Box::new(p),
        Box::new(m),
        Box::new(d),
    ];
    (files, pids, keep)
}

fn assert_clean(files: &[PathBuf], pids: &[u32]) {
    for f in files {
        assert!(!f.exists(), "{} was left behind", f.display());
    }
    for pid in pids {
        assert!(!alive(*pid), "server {pid} is still running");
    }
}

#[test]
fn dropping_the_adapters_removes_pamd_files_and_stops_servers() {
    let (files, pids, adapters) = start_all();
    drop(adapters);
    assert_clean(&files, &pids);
    let (f, _, p) = cleanup::registered();
    for x in &files {
        assert!(!f.contains(x), "{} still registered", x.display());
    }
    for x in &pids {
        assert!(!p.contains(x), "{x} still registered");
    }
}

/// The child side of the interrupt test: start everything, say READY with
/// what was started, then wait to be interrupted.
#[test]
#[ignore = "helper: run by interrupted_run_cleans_up in a child process"]
fn child_starts_everything_then_waits() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "run by interrupted_run_cleans_up only"
    );
    cleanup::install_signal_handlers().unwrap();
    let (files, pids, _adapters) = start_all();
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let pids: Vec<String> = pids.iter().map(ToString::to_string).collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "READY files={} pids={}",
        files.join(","),
        pids.join(",")
    )
    .unwrap();
    out.flush().unwrap();
    drop(out);
    // Wait for the signal (bounded: the parent interrupts within seconds).
    std::thread::sleep(std::time::Duration::from_secs(300));
    panic!("never interrupted");
}

#[test]
fn interrupted_run_cleans_up() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_starts_everything_then_waits",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest prints "test NAME ... " before the child's own output.
        if let Some((_, rest)) = line.split_once("READY ") {
            ready = Some(rest.trim().to_string());
            break;
        }
    }
    let Some(ready) = ready else {
        let status = child.wait().unwrap();
        panic!("the child never got ready ({status}); see its stderr above");
    };
    let mut files = Vec::new();
    let mut pids = Vec::new();
    for part in ready.split_whitespace() {
        if let Some(f) = part.strip_prefix("files=") {
            files = f.split(',').map(PathBuf::from).collect();
        } else if let Some(p) = part.strip_prefix("pids=") {
            pids = p.split(',').map(|x| x.parse::<u32>().unwrap()).collect();
        }
    }
    assert_eq!(files.len(), 2, "{ready}");
    assert_eq!(pids.len(), 3, "{ready}");
    for f in &files {
        assert!(
            Path::new(f).is_file(),
            "{} missing before the interrupt",
            f.display()
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "the child did not exit through the handler"
    );
    assert_clean(&files, &pids);
}
