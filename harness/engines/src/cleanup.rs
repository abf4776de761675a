//! What adapters leave outside their temp folders, registered so that it is
//! removed even when the run is interrupted: server processes (stopped by
//! PID: SIGTERM, then SIGKILL) and files (`/etc/pam.d/fobsim-*`).
//!
//! Each adapter registers what it creates and unregisters it when its
//! `Drop` has removed it. [`install_signal_handlers`] makes SIGINT,
//! SIGTERM and SIGHUP remove everything still registered, then exit with
//! status 130.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    File(PathBuf),
    Process(u32),
    Dir(PathBuf),
}

static REGISTRY: Mutex<Vec<Item>> = Mutex::new(Vec::new());

fn with<R>(f: impl FnOnce(&mut Vec<Item>) -> R) -> R {
    let mut g = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut g)
}

/// Register a file to remove on interrupt.
pub fn register_file(path: &Path) {
    with(|r| r.push(Item::File(path.to_path_buf())));
}

/// Register a directory (a temp folder) to remove on interrupt.
pub fn register_dir(path: &Path) {
    with(|r| r.push(Item::Dir(path.to_path_buf())));
}

/// Register a process to stop on interrupt.
pub fn register_process(pid: u32) {
    with(|r| r.push(Item::Process(pid)));
}

/// Remove the file now and forget it.
pub fn remove_file(path: &Path) {
    let _ = std::fs::remove_file(path);
    with(|r| r.retain(|i| *i != Item::File(path.to_path_buf())));
}

/// Forget a directory (its owner removed it).
pub fn forget_dir(path: &Path) {
    with(|r| r.retain(|i| *i != Item::Dir(path.to_path_buf())));
}

/// Forget a process (its owner stopped and reaped it).
pub fn forget_process(pid: u32) {
    with(|r| r.retain(|i| *i != Item::Process(pid)));
}

/// Whether a process is still running (a zombie counts as gone).
#[must_use]
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ..." — the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

/// Stop a process by PID: SIGTERM, up to `grace`, then SIGKILL.
pub fn stop_pid(pid: u32, grace: Duration) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    let p = Pid::from_raw(raw);
    // Servers are started as process-group leaders: stop the whole group
    // (a launcher's children too), then the process itself.
    let group = Pid::from_raw(-raw);
    let _ = kill(group, Signal::SIGTERM);
    if kill(p, Signal::SIGTERM).is_err() {
        return;
    }
    let until = Instant::now() + grace;
    while alive(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        let _ = kill(group, Signal::SIGKILL);
        let _ = kill(p, Signal::SIGKILL);
    }
}

/// Remove everything registered (processes first, then files and folders).
/// Returns how many items were cleaned.
pub fn run_all() -> usize {
    let items = with(std::mem::take);
    for i in &items {
        if let Item::Process(pid) = i {
            stop_pid(*pid, Duration::from_secs(3));
        }
    }
    for i in &items {
        match i {
            Item::File(p) => {
                let _ = std::fs::remove_file(p);
            }
            Item::Dir(p) => {
                let _ = std::fs::remove_dir_all(p);
            }
            Item::Process(_) => {}
        }
    }
    items.len()
}

/// What is registered now (for tests and diagnostics): files, dirs, PIDs.
#[must_use]
pub fn registered() -> (Vec<PathBuf>, Vec<PathBuf>, Vec<u32>) {
    with(|r| {
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for i in r.iter() {
            match i {
                Item::File(p) => out.0.push(p.clone()),
                Item::Dir(p) => out.1.push(p.clone()),
                Item::Process(p) => out.2.push(*p),
            }
        }
        out
    })
}

/// On SIGINT, SIGTERM or SIGHUP: clean everything registered, then exit
/// with status 130. Call once per process (a second call is a no-op).
///
/// # Errors
/// A message if the handler cannot be installed (another handler owns the
/// signals).
pub fn install_signal_handlers() -> Result<(), String> {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut done = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *done {
        return Ok(());
    }
    ctrlc::set_handler(|| {
        let n = run_all();
        eprintln!("fobsim: interrupted; cleaned up {n} server(s)/file(s)");
        std::process::exit(130);
    })
    .map_err(|e| e.to_string())?;
    *done = true;
    Ok(())
}

/// Stop a server this run started — its process group by PID (SIGTERM, then
/// SIGKILL after 5 s), then its `Child` handle — and drop it and its temp
/// folder from the cleanup list. What every server adapter's `Drop` does.
pub fn stop_server(pid: u32, child: Option<std::process::Child>, dir: &Path) {
    stop_pid(pid, Duration::from_secs(5));
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    forget_process(pid);
    forget_dir(dir);
}

/// A free TCP port on 127.0.0.1 (for a server started next).
///
/// # Errors
/// No socket could be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start `cmd` as a peer server: its own process group (so stopping it
/// stops its workers), stdin closed, stdout and stderr appended to the
/// created file `log`, its PID registered here until it is stopped.
///
/// # Errors
/// The log cannot be created or the program cannot start.
pub fn spawn_server(
    cmd: &mut std::process::Command,
    log: &Path,
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt as _;
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    register_process(child.id());
    Ok(child)
}

/// Stop the process group `pgid` whose leader is `leader` (started by this
/// process, so it is reaped here): SIGTERM to the group, up to `grace` for
/// it to empty, then SIGKILL; the leader is reaped either way. Unlike
/// [`stop_pid`] this also stops what the leader left running in its group
/// after it exited.
pub fn stop_group(pgid: u32, leader: &mut std::process::Child, grace: Duration) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    let group = Pid::from_raw(-raw);
    let _ = kill(group, Signal::SIGTERM);
    let until = Instant::now() + grace;
    loop {
        // Reap the leader as soon as it exits (a zombie is gone).
        let _ = leader.try_wait();
        if !group_alive(pgid) || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if group_alive(pgid) {
        let _ = kill(group, Signal::SIGKILL);
    }
    let _ = leader.kill();
    let _ = leader.wait();
}

/// Whether any process of the process group `pgid` is still running
/// (zombies, waiting for whoever inherited them to reap them, are gone).
#[must_use]
pub fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            // "pid (comm) S ppid pgrp ..." — fields after the last ')'.
            let mut f = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest)
                .unwrap_or_default()
                .split_whitespace();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && !matches!(state, Some("Z" | "X") | None)
        })
}
