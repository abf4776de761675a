//! Running a shell script as written, in namespaces of its own
//! (`unshare -mn`: a private /tmp and loopback, a HOME without AWS
//! configuration), with the fobsim under test and the AWS CLI's venv first
//! on `PATH`: how README sections with fixed ports and /tmp paths run
//! without touching the machine's. Needs root (for unshare).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// What the script did.
pub struct Isolated {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// The AWS CLI's venv: `$FOBSIM_AWS_VENV`, else target/aws-venv (`bash
/// tests/aws/venv.sh` makes it); fails loudly when it has no `aws`.
pub fn aws_venv() -> PathBuf {
    let venv = std::env::var_os("FOBSIM_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/aws-venv"));
    assert!(
        venv.join("bin/aws").is_file(),
        "no AWS CLI at {}: run `bash tests/aws/venv.sh`",
        venv.join("bin/aws").display()
    );
    venv
}

/// Runs `script` with bash in fresh mount and network namespaces, /tmp a
/// private tmpfs, loopback up, HOME=/tmp/home, from the repository's root.
pub fn run_isolated(venv: &Path, script: &str) -> Isolated {
    let script = format!(
        "ip link set lo up && mount -t tmpfs tmpfs /tmp || exit 97\n\
         mkdir -p /tmp/home && export HOME=/tmp/home\n\
         cd {}\n{script}",
        env!("CARGO_MANIFEST_DIR")
    );
    let path = format!(
        "{}:{}:{}",
        Path::new(env!("CARGO_BIN_EXE_fobsim"))
            .parent()
            .unwrap()
            .display(),
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("unshare")
        .args(["-mn", "bash", "-c", &script])
        .env("PATH", path)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("TMPDIR")
        .env("RUST_LOG", "warn")
        .output()
        .expect("unshare (util-linux) runs");
    let r = Isolated {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(
        r.status.code(),
        Some(97),
        "unshare -mn needs root: {}",
        r.stderr
    );
    r
}
