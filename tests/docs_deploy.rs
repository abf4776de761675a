//! Every command of `docs/deploy.md`, run as written (bash, in a fresh
//! directory holding the checkout's `fixtures/`, this build's `fobsim`
//! first on `PATH`, `DATABASE_URL` naming a database of a PostgreSQL
//! server this test starts): three replicas on one database, the
//! health check, the backup and its check. A block whose command is marked
//! `# runs until Ctrl-C` runs in the background until its first line of
//! output (the replica is ready), and is stopped at the end. Then the
//! replicas are checked to be one service: a code one accepted is refused
//! by the others.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/background.rs"]
mod background;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use background::Background;

use fobsim_aws::Service;
use fobsim_aws::client::Client;
use fobsim_aws::sigv4::Credentials;
use fobsim_core::{Algorithm, Timestamp, Totp};
use fobsim_engine::testing::postgres as pg;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
const DOC: &str = include_str!("../docs/deploy.md");

/// The ```sh blocks of a Markdown page.
fn sh_blocks(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match &mut block {
            Some(b) if line.trim_end() == "```" => {
                out.push(std::mem::take(b));
                block = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None if line.trim_end() == "```sh" => block = Some(String::new()),
            None => {}
        }
    }
    assert!(block.is_none(), "an unclosed ```sh block");
    out
}

fn bash(dir: &Path, url: &str, script: &str) -> Command {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    c.arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env("DATABASE_URL", url)
        .env_remove("FOBSIM_DB_KEY")
        .process_group(0);
    c
}

#[test]
fn every_command_of_the_deploy_page_works_as_written() {
    let server = pg::shared().unwrap_or_else(|e| panic!("{e}"));
    let url = server.database("docs_deploy").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        dir.path().join("fixtures"),
    )
    .unwrap();
    let mut background = Background::new();
    let mut first_lines = Vec::new();
    let mut outputs = Vec::new();
    for script in sh_blocks(DOC) {
        if script.contains("# runs until Ctrl-C") {
            let line = background.start(
                bash(dir.path(), &url, &script),
                &script,
                Duration::from_secs(120),
            );
            assert!(!line.is_empty(), "ended without output:\n{script}");
            first_lines.push(line);
        } else {
            let out = bash(dir.path(), &url, &script).output().unwrap();
            assert!(
                out.status.success(),
                "{script}\nfailed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    // Three replicas, each printing where it listens.
    let endpoints: Vec<String> = first_lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["endpoint"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        endpoints,
        [
            "http://127.0.0.1:8101",
            "http://127.0.0.1:8102",
            "http://127.0.0.1:8103"
        ]
    );
    // The health check: every replica answers (an unsigned request: 403).
    assert_eq!(outputs[0], "403\n403\n403\n", "{outputs:?}");
    // The connection budget: max_connections, and the replicas' share.
    let (max, used) = outputs[1].trim().split_once('|').unwrap();
    assert_eq!(max, "200", "the test server's setting");
    let used: u32 = used.parse().unwrap();
    assert!((3..=48).contains(&used), "{used} connections");
    // The backup holds the tables; its check lists them.
    assert!(outputs[2].contains("fobsim_tokens"), "{outputs:?}");
    assert!(dir.path().join("fobsim.dump").is_file());
    assert!(dir.path().join("db.key").is_file());

    // One service: alice enables her fob through replica 1, a code replica
    // 2 accepts is refused by replica 3.
    let seeds = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bootstrap/seeds.csv"),
    )
    .unwrap();
    let row: Vec<&str> = seeds
        .lines()
        .skip(1)
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .split(',')
        .collect();
    let (serial, secret) = (row[0].to_string(), hex::decode(row[1]).unwrap());
    let totp = Totp::new(Algorithm::Sha1, &secret, 6, 30, 0).unwrap();
    let alice = Credentials {
        access_key_id: "AKIAALICEEXAMPLE0001".into(),
        secret_access_key: "alice+Secret/Example/Key/000000000000001".into(),
        session_token: None,
    };
    let wall = || {
        Timestamp::from_secs(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
    };
    let now = wall();
    let step = now.as_secs() / 30;
    let clients: Vec<Client> = endpoints.iter().map(|e| Client::new(e).unwrap()).collect();
    let (c1, c2) = (
        totp.code_for_step(step - 1).to_string(),
        totp.code_for_step(step).to_string(),
    );
    let r = clients[0]
        .call(
            Service::Iam,
            &[
                ("Action", "EnableMFADevice"),
                ("Version", "2010-05-08"),
                ("UserName", "alice"),
                ("SerialNumber", serial.as_str()),
                ("AuthenticationCode1", c1.as_str()),
                ("AuthenticationCode2", c2.as_str()),
            ],
            &alice,
            now,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let c3 = totp.code_for_step(step + 1).to_string();
    let session = |k: usize| {
        clients[k]
            .call(
                Service::Sts,
                &[
                    ("Action", "GetSessionToken"),
                    ("Version", "2011-06-15"),
                    ("SerialNumber", serial.as_str()),
                    ("TokenCode", c3.as_str()),
                ],
                &alice,
                wall(),
            )
            .unwrap()
            .status
    };
    assert_eq!(session(1), 200);
    assert_eq!(session(2), 403, "a code used on replica 2, replayed on 3");
    drop(background);
}
