//! Every command of `docs/seed-files.md`, run as written (bash, in a fresh
//! directory, the fobsim under test first on `PATH`), and what they made
//! checked: the encrypted exports decrypt to the same seeds, the server
//! imports them, the suite's bootstrap names its key. A block whose command
//! is marked `# runs until Ctrl-C` runs in the background until its first
//! line of output (it is ready), and is stopped at the end. Blocks tagged
//! `<!-- doc-test: privacyidea -->` need a privacyIDEA server: they are run
//! by `harness/engines/tests/matrix_pskc_import.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/background.rs"]
mod background;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use background::Background;

use fobsim_core::seedfile::{self, Protection};

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
const DOC: &str = include_str!("../docs/seed-files.md");

/// The ```sh blocks of a Markdown page, each with the tag of the
/// `<!-- doc-test: TAG -->` line right before it.
fn sh_blocks(doc: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut tag = None;
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match &mut block {
            Some(b) if line.trim_end() == "```" => {
                out.push((tag.take(), std::mem::take(b)));
                block = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None if line.trim_end() == "```sh" => block = Some(String::new()),
            None => {
                if let Some(t) = line
                    .trim()
                    .strip_prefix("<!-- doc-test:")
                    .and_then(|r| r.strip_suffix("-->"))
                {
                    tag = Some(t.trim().to_string());
                } else if !line.trim().is_empty() {
                    tag = None;
                }
            }
        }
    }
    assert!(block.is_none(), "an unclosed ```sh block");
    out
}

fn bash(dir: &Path, script: &str) -> Command {
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
        .process_group(0);
    c
}

#[test]
fn every_command_of_the_seed_files_page_works_as_written() {
    let blocks = sh_blocks(DOC);
    let dir = tempfile::tempdir().unwrap();
    let mut background = Background::new();
    let mut first_lines = Vec::new();
    let mut tagged = 0;
    for (tag, script) in &blocks {
        if tag.as_deref() == Some("privacyidea") {
            tagged += 1;
            continue;
        }
        assert!(tag.is_none(), "unknown doc-test tag {tag:?}");
        if script.contains("# runs until Ctrl-C") {
            let line = background.start(bash(dir.path(), script), script, Duration::from_secs(120));
            assert!(!line.is_empty(), "ended without output:\n{script}");
            let line = line + "\n";
            first_lines.push(line);
        } else {
            let out = bash(dir.path(), script).output().unwrap();
            assert!(
                out.status.success(),
                "{script}\nfailed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!(tagged, 2, "the privacyIDEA blocks");
    // Two emulators and a server ran.
    assert_eq!(first_lines.len(), 3, "{first_lines:?}");
    assert!(
        first_lines[0].starts_with("GAHT00000001\t"),
        "{}",
        first_lines[0]
    );
    let served: serde_json::Value = serde_json::from_str(&first_lines[2]).unwrap();
    assert_eq!(served["tokens_imported"], 3, "{served}");

    // The key was made private; both exports hold the same seeds, each
    // readable only with its key or password.
    use std::os::unix::fs::PermissionsExt as _;
    let key_path = dir.path().join("transport.key");
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = Protection::Key(seedfile::read_key_file(&key_path).unwrap());
    let pass =
        Protection::Password(seedfile::read_password_file(&dir.path().join("pskc.pass")).unwrap());
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let by_key = seedfile::parse_with(&read("seeds.pskc"), Some(&key)).unwrap();
    let by_password = seedfile::parse_with(&read("seeds-pw.pskc"), Some(&pass)).unwrap();
    assert_eq!(by_key.len(), 3);
    assert_eq!(by_key, by_password);
    assert!(seedfile::parse(&read("seeds.pskc")).is_err());
    assert!(seedfile::parse_with(&read("seeds.pskc"), Some(&pass)).is_err());

    // The suite's bootstrap names the key and its seeds decrypt with it.
    let boot =
        fobsim_engine::api::bootstrap::Bootstrap::load(&dir.path().join("suite/bootstrap.toml"))
            .unwrap();
    assert_eq!(boot.seeds.len(), 1);
    assert_eq!(boot.seeds[0].path, dir.path().join("suite/seeds.pskc"));
    assert!(!boot.seeds[0].read().unwrap().is_empty());
}

#[test]
fn the_error_messages_the_page_shows_are_fobsims() {
    use fobsim_core::seedfile::{TransportKey, write_pskc_protected};
    use fobsim_engine::api::bootstrap::Bootstrap;
    use rand_chacha::rand_core::SeedableRng as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = TransportKey::new(vec![7; 16])
        .unwrap()
        .named("transport.key");
    let record = |n: u8| fobsim_core::SeedRecord {
        serial: fobsim_core::Serial::new(&format!("GAHT{n:08}")).unwrap(),
        kind: fobsim_core::Kind::Totp { period: 30 },
        algorithm: fobsim_core::Algorithm::Sha1,
        digits: 6,
        secret: fobsim_core::Secret::new(vec![n; 20]).unwrap(),
        counter: 0,
    };
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let text = write_pskc_protected(
        &[record(1), record(2)],
        &Protection::Key(key.clone()),
        &mut rng,
    );
    let write = |name: &str, text: &str, mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("transport.key", key.to_hex().as_str(), 0o600);
    write("wrong.key", &"00".repeat(16), 0o600);
    let account = "[account]\nid=\"123456789012\"\nalias=\"a\"\nroot_email=\"r@x.io\"\nroot_phone=\"+1 555 0100\"\nroot_password=\"p\"\n";
    // The message for a seeds entry, the directory left out as on the page.
    let message = |seeds: &str| {
        let b = Bootstrap::parse(&format!("seeds = [{seeds}]\n{account}"), dir.path()).unwrap();
        b.seeds[0]
            .read()
            .unwrap_err()
            .to_string()
            .replace(&format!("{}/", dir.path().display()), "")
    };
    let with_key = r#"{ file = "seeds.pskc", key_file = "transport.key" }"#;
    // A tampered MAC (the second token's).
    let mac = text
        .split("<pskc:ValueMAC>")
        .nth(2)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let flipped = format!(
        "{}{}",
        if mac.starts_with('A') { "B" } else { "A" },
        &mac[1..]
    );
    write("seeds.pskc", &text.replace(mac, &flipped), 0o600);
    let tampered = message(with_key);
    // The wrong key, no key, a key file others may read.
    write("seeds.pskc", &text, 0o600);
    let wrong = message(r#"{ file = "seeds.pskc", key_file = "wrong.key" }"#);
    let none = message(r#""seeds.pskc""#);
    write("transport.key", key.to_hex().as_str(), 0o644);
    let open = message(with_key);
    let missing: Vec<_> = [tampered, wrong, none, open]
        .into_iter()
        .filter(|m| !DOC.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the page does not show:\n    {}",
        missing.join("\n    ")
    );
}
