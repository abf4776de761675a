//! The one privacyIDEA start-up ([`Server`]) the matrix adapter and
//! `fobsim bench` share: the benchmark's options start a stock server at
//! real time, dropping it stops its whole process group and removes its
//! folder, and missing pieces are setup problems with an install hint.
//! (The matrix's options are driven by `matrix_privacyidea` and
//! `matrix_cleanup`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::path::Path;
use std::time::Duration;

use fobsim_engines::cleanup::{self, alive};
use fobsim_engines::privacyidea::{self, Config, Http, Server, ServerOptions};

fn healthz(server: &Server) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    agent
        .get(format!("{}/healthz/", server.endpoint()))
        .call()
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("GET /healthz/: {e}"))
}

/// PIDs whose process group is `pgid` (a server and its workers).
fn group(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ..."
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if pgrp == Some(pgid) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

fn assert_stopped(pid: u32, members: &[u32], dir: &Path) {
    for p in members {
        assert!(!alive(*p), "process {p} of the server's group still runs");
    }
    assert!(!dir.exists(), "{} was left behind", dir.display());
    let (_, dirs, pids) = cleanup::registered();
    assert!(!pids.contains(&pid), "{pid} still registered");
    assert!(
        !dirs.iter().any(|d| d == dir),
        "{} still registered",
        dir.display()
    );
}

#[test]
fn the_benchmark_server_is_stock_at_real_time_and_stops_on_drop() {
    let opts = ServerOptions {
        venv: privacyidea::venv_dir(),
        http: Http::DevServer,
        config: Config::Stock,
        faketime: false,
    };
    let server = Server::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    assert!(alive(pid));
    assert_eq!(healthz(&server), 200);
    assert_eq!(
        server.endpoint(),
        format!("http://127.0.0.1:{}", server.port())
    );
    assert_eq!(server.serving(), "pi-manage run (Flask dev server)");
    // Stock: privacyIDEA signs its responses and audit entries.
    let cfg = std::fs::read_to_string(dir.join("pi.cfg")).unwrap();
    assert!(
        cfg.contains("SQLALCHEMY_DATABASE_URI = 'sqlite:///"),
        "{cfg}"
    );
    assert!(!cfg.contains("PI_NO_RESPONSE_SIGN"), "{cfg}");
    assert!(!cfg.contains("PI_HASH_ALGO_LIST"), "{cfg}");
    // Real time: no clock file to move.
    assert!(server.set_clock(None).is_err());
    assert!(!dir.join("faketime").exists());
    let (_, dirs, pids) = cleanup::registered();
    assert!(pids.contains(&pid) && dirs.contains(&dir));
    let members = group(pid);
    assert!(members.contains(&pid), "{members:?}");
    drop(server);
    assert_stopped(pid, &members, &dir);
}

#[test]
fn the_matrix_options_are_the_dev_server_lean_under_faketime() {
    let m = ServerOptions::matrix();
    assert_eq!(
        (m.http, m.config, m.faketime),
        (Http::DevServer, Config::Lean, true)
    );
    assert_eq!(m.venv, privacyidea::venv_dir());
    let dir = tempfile::tempdir().unwrap();
    // No gunicorn in this venv: the benchmark falls back to the dev server.
    let b = ServerOptions::bench(dir.path().to_path_buf(), 2);
    assert_eq!(
        (b.http, b.config, b.faketime),
        (Http::DevServer, Config::Stock, false)
    );
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::write(dir.path().join("bin/gunicorn"), "").unwrap();
    let b = ServerOptions::bench(dir.path().to_path_buf(), 2);
    assert_eq!(b.http, Http::Gunicorn { workers: 2 });
}

#[test]
fn missing_pieces_are_setup_problems_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ServerOptions {
        venv: dir.path().to_path_buf(),
        http: Http::Gunicorn { workers: 2 },
        config: Config::Stock,
        faketime: false,
    };
    let e = Server::start(&opts).unwrap_err();
    assert!(e.missing.contains("bin/pi-manage not found"), "{e}");
    assert!(e.hint.contains("pip install privacyidea"), "{e}");
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::write(dir.path().join("bin/pi-manage"), "").unwrap();
    let e = Server::start(&opts).unwrap_err();
    assert!(e.missing.contains("bin/gunicorn not found"), "{e}");
    assert!(e.hint.contains("tests/perf/peers.sh"), "{e}");
    // A pi-manage that fails: the step and its stderr are in the problem,
    // and nothing stays registered for cleanup.
    let manage = dir.path().join("bin/pi-manage");
    std::fs::write(&manage, "#!/bin/sh\necho broken venv >&2\nexit 3\n").unwrap();
    let mut perms = std::fs::metadata(&manage).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&manage, perms).unwrap();
    opts.http = Http::DevServer;
    let e = Server::start(&opts).unwrap_err();
    assert!(e.missing.contains("pi-manage setup create_enckey"), "{e}");
    assert!(e.missing.contains("broken venv"), "{e}");
    // Its temp folder is gone and no longer registered (a registered
    // folder always exists: owners unregister before removing).
    for d in cleanup::registered().1 {
        assert!(d.exists(), "{} registered but gone", d.display());
    }
}

/// gunicorn's master and its sync workers are one process group: all of
/// them stop with the server. Needs gunicorn in the venv
/// (`bash tests/perf/peers.sh`), which `tests/matrix/setup.sh` does not
/// install: run with `--ignored`.
#[test]
#[ignore = "needs gunicorn in the privacyIDEA venv: bash tests/perf/peers.sh"]
fn gunicorn_workers_stop_with_the_server() {
    let opts = ServerOptions::bench(privacyidea::venv_dir(), 2);
    assert_eq!(
        opts.http,
        Http::Gunicorn { workers: 2 },
        "no gunicorn in {}: bash tests/perf/peers.sh",
        opts.venv.display()
    );
    let server = Server::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(healthz(&server), 200);
    assert_eq!(server.serving(), "gunicorn, 2 sync workers");
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    let members = group(pid);
    assert_eq!(members.len(), 3, "master + 2 workers: {members:?}");
    drop(server);
    assert_stopped(pid, &members, &dir);
}
