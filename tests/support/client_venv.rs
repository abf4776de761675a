//! The Python client venv (requests, pyotp, playwright) of the control-API
//! and screenshot tests:
//! made by `bash tests/matrix/setup.sh`; its absence fails the test with
//! that hint.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The client venv's python, or a failure saying how to make it.
pub fn client_python() -> PathBuf {
    let venv = match std::env::var_os("FOBSIM_CLIENT_VENV") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => match std::env::var_os("FOBSIM_PEERS_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers"),
        }
        .join("venv-client"),
    };
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import requests, pyotp, playwright"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Python with requests, pyotp and playwright at {}: run `bash tests/matrix/setup.sh` \
         (or point FOBSIM_CLIENT_VENV at a venv with `pip install requests pyotp playwright`)",
        py.display()
    );
    py
}
