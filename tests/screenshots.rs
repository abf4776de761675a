//! README's screenshots: the command its sandbox section shows to make them
//! again, run as written in a scratch copy of the repository's layout
//! (`docs/img/screenshots.py` and the client venv at
//! `target/peers/venv-client`), the fobsim under test first on `PATH`; the
//! two pictures it writes must be PNGs of the script's viewport with a real
//! page in them (many colours, not one flat background), and the README
//! must show the committed ones.
//!
//! Needs the client venv with Playwright (`bash tests/matrix/setup.sh`) and
//! Chromium (`bash tests/browser/setup.sh`). Without them the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

#[path = "support/client_venv.rs"]
mod client_venv;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fobsim");
const PICTURES: [&str; 2] = ["console-wizard.png", "fob-panel.png"];
/// The script's viewport (`VIEWPORT` in docs/img/screenshots.py).
const SIZE: (u32, u32) = (1200, 800);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README's sandbox section.
fn sandbox_section() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("\n## The sandbox: fobsim up\n")
        .expect("README has the sandbox section")
        .1;
    section
        .split_once("\n## ")
        .map_or(section, |(s, _)| s)
        .to_string()
}

/// The inline command of `section` that runs the screenshot script.
fn regenerate_command(section: &str) -> String {
    let commands: Vec<&str> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.contains("docs/img/screenshots.py"))
        .collect();
    assert_eq!(
        commands.len(),
        1,
        "one command runs the script: {commands:?}"
    );
    commands[0].to_string()
}

/// Width, height and RGB pixels of a PNG file.
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (info.width, info.height, pixels)
}

/// A picture of a page, not of nothing: the viewport's size, hundreds of
/// colours (text, antialiasing, widgets), and a spread of brightness.
fn assert_a_page(path: &Path) {
    let (w, h, pixels) = decode(path);
    assert_eq!((w, h), SIZE, "{}", path.display());
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(
        colours.len() >= 200,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
    let luma: Vec<f64> = pixels
        .iter()
        .map(|[r, g, b]| 0.299 * f64::from(*r) + 0.587 * f64::from(*g) + 0.114 * f64::from(*b))
        .collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let variance = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / luma.len() as f64;
    assert!(
        variance > 100.0,
        "{}: brightness variance {variance:.1}: a blank page?",
        path.display()
    );
}

#[test]
fn the_readme_shows_the_committed_screenshots() {
    let section = sandbox_section();
    for name in PICTURES {
        assert!(
            section.contains(&format!("](docs/img/{name})")),
            "README's sandbox section shows docs/img/{name}"
        );
        assert_a_page(&root().join("docs/img").join(name));
    }
}

#[test]
fn the_screenshot_command_makes_both_pictures() {
    let python = client_venv::client_python();
    let venv = python.parent().unwrap().parent().unwrap();
    let command = regenerate_command(&sandbox_section());
    assert!(
        command.starts_with("target/peers/venv-client/bin/python "),
        "{command}"
    );

    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("docs/img");
    std::fs::create_dir_all(&img).unwrap();
    std::fs::copy(
        root().join("docs/img/screenshots.py"),
        img.join("screenshots.py"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("target/peers")).unwrap();
    std::os::unix::fs::symlink(venv, dir.path().join("target/peers/venv-client")).unwrap();

    let path = format!(
        "{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &command])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let ctx = format!(
        "{command}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{ctx}");
    for name in PICTURES {
        let made = img.join(name);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&made.display().to_string()),
            "{ctx}"
        );
        assert_a_page(&made);
    }
}
