//! `fobsim`: hardware MFA token emulator and conformance harness.
//!
//! The binary is thin: clap parsing and wiring. Each subcommand lives in its
//! own module under `cmd/`; the work happens in the library crates.
//!
//! Exit codes: 0 = success (every expectation held), 1 = a run found
//! failures, 2 = bad input (usage, malformed files, invalid values). A
//! closed standard output (`fobsim run --list | head -5`) ends the command
//! quietly with 0, as ripgrep does: the reader has what it asked for.

/// `println!` that hands a failed write of standard output back to the
/// caller (`?`, as [`StdoutError`]) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err($crate::StdoutError)?;
    }};
}

/// `print!` that hands a failed write of standard output back to the
/// caller (`?`, as [`StdoutError`]) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err($crate::StdoutError)?;
    }};
}

mod cmd;

/// Standard output could not be written (most often: the reader of the
/// pipe is gone).
#[derive(Debug)]
pub struct StdoutError(pub std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// `e` and its causes on one line, `a: b: c`, each cause once: a library
/// error that already shows its source (`{path}: {source}`) does not get
/// it repeated (`No such file or directory: No such file or directory`).
fn render(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Whether `e` is a write to a standard output nobody reads any more.
fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StdoutError>()
            .is_some_and(|s| s.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fobsim",
    version,
    about = "Hardware MFA token emulator and conformance harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a one-time code, like oathtool.
    Code(cmd::code::Args),
    /// List the fob model presets.
    Models(cmd::models::Args),
    /// Show what one simulated fob displays at a given time and drift.
    Fob(cmd::fob::Args),
    /// Run conformance scenarios against an engine (the main job).
    Run(cmd::run::Args),
    /// Draw a drift acceptance map for an engine.
    Sweep(cmd::sweep::Args),
    /// Run the suite against several engines (third-party too) and print the matrix.
    Matrix(cmd::matrix::Args),
    /// Serve the engine over the AWS Query protocol (IAM + STS).
    Serve(cmd::serve::Args),
    /// Serve one of fobsim's engines over the exec adapter protocol (stdin/stdout).
    Adapter(cmd::adapter::Args),
    /// Measure fobsim against its peers (totp-rs, pyotp, oathtool, privacyIDEA); print one table.
    Bench(cmd::bench::Args),
    /// The whole sandbox in one process: AWS endpoint, fobs, panel, users.
    Up(cmd::up::Args),
    /// Start fobs behind transports (serial ptys, ...).
    Emulate(cmd::emulate::Args),
    /// Talk to an emulated fob as a client would.
    Device(cmd::device::Args),
    /// Move the clock of a running emulator.
    Clock(cmd::clock::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell, e.g. `fobsim completions bash > ~/.local/share/bash-completion/completions/fobsim`.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `fobsim man | man -l -`.
    Man {
        /// A subcommand's own page instead of fobsim's (`fobsim man run`).
        subcommand: Option<String>,
    },
}

/// `fobsim completions SHELL`.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "fobsim", &mut buf);
    out!("{}", String::from_utf8_lossy(&buf));
    Ok(ExitCode::SUCCESS)
}

/// `fobsim man [SUBCOMMAND]`: the roff page of fobsim or of a subcommand.
fn man(subcommand: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                let names: Vec<&str> = cmd.get_subcommands().map(clap::Command::get_name).collect();
                anyhow::anyhow!("no subcommand {name:?}; one of: {}", names.join(", "))
            })?;
            sub.display_name(format!("fobsim-{name}"))
        }
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    out!("{}", String::from_utf8_lossy(&buf));
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Code(a) => cmd::code::run(a),
        Command::Models(a) => cmd::models::run(a),
        Command::Fob(a) => cmd::fob::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Sweep(a) => cmd::sweep::run(a),
        Command::Matrix(a) => cmd::matrix::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Adapter(a) => cmd::adapter::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Up(a) => cmd::up::run(a),
        Command::Emulate(a) => cmd::emulate::run(a),
        Command::Device(a) => cmd::device::run(a),
        Command::Clock(a) => cmd::clock::run(a),
        Command::Completions { shell } => completions(shell),
        Command::Man { subcommand } => man(subcommand.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_closed_stdout(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fobsim: error: {}", render(&e));
            ExitCode::from(2)
        }
    }
}
