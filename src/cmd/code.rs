//! `fobsim code`: an oathtool-like one-time code generator and checker.
//!
//! It takes oathtool's spelling too (`fobsim code --totp -b -d 8 -s 30s -N
//! @59 -w 2 KEY [OTP]`), so scripts can swap one for the other. Two
//! differences, both said in `--help`: TOTP is the default mode (oathtool's
//! is HOTP), and a verified TOTP code prints its signed offset in steps
//! (`-1`: the code of the step before; oathtool prints `1` either way).

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use fobsim_core::{Algorithm, Code, Hotp, Secret, Timestamp, Totp};

use super::common::parse_time;

/// Arguments of `fobsim code`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["key", "key_hex", "key_base32"])))]
#[command(group(clap::ArgGroup::new("moment").args(["at", "counter"])))]
#[command(after_help = "\
Examples (the RFC 6238 test key):
  fobsim code --key-hex 3132333435363738393031323334353637383930 --at 59
  fobsim code --totp -d 8 -N @59 3132333435363738393031323334353637383930
  fobsim code --totp -N @149 -w 3 3132333435363738393031323334353637383930 287082   # prints -3

Verifying (an OTP after the KEY) prints the offset of the matching code and
exits 0, or exits 1 when no code within --window matches.")]
pub struct Args {
    /// The secret as oathtool takes it: hex, or base32 with `-b`; `-`
    /// reads it from standard input and `@FILE` from a file (either keeps
    /// it off the command line and out of `ps`).
    #[arg(value_name = "KEY")]
    key: Option<String>,
    /// A code to verify instead of generating one: prints the offset of the
    /// matching code within --window (TOTP: steps from the time, negative =
    /// earlier; HOTP: counters after --counter).
    #[arg(value_name = "OTP", requires = "key")]
    otp: Option<String>,
    /// KEY is base32 (RFC 4648; case, spaces and padding ignored), not hex.
    #[arg(short = 'b', long = "base32", requires = "key")]
    base32: bool,
    /// The secret as hex.
    #[arg(long, value_name = "HEX")]
    key_hex: Option<String>,
    /// The secret as base32 (RFC 4648; case and padding ignored).
    #[arg(long, value_name = "B32")]
    key_base32: Option<String>,
    /// Time-based codes (the default), optionally with the hash as oathtool
    /// spells it: `--totp=SHA256`.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, conflicts_with = "hotp")]
    totp: Option<Option<String>>,
    /// Event-based codes from --counter (default 0), oathtool's default mode.
    #[arg(long)]
    hotp: bool,
    /// HMAC hash: sha1, sha256 or sha512.
    #[arg(long, default_value = "sha1")]
    algorithm: String,
    /// Digits in the code (6-8).
    #[arg(short = 'd', long, default_value_t = 6)]
    digits: u32,
    /// TOTP step: seconds or a duration (30, 30s, 1m).
    #[arg(
        short = 's',
        long,
        visible_alias = "time-step-size",
        default_value = "30s",
        value_name = "DURATION"
    )]
    step: String,
    /// TOTP epoch T0 (when step 0 starts), in any form --at takes.
    #[arg(
        short = 'S',
        long = "t0",
        visible_alias = "start-time",
        default_value = "0",
        value_name = "TIME"
    )]
    t0: String,
    /// Time for TOTP: Unix seconds, @SECONDS or RFC 3339 UTC. Default: now.
    #[arg(
        short = 'N',
        long,
        visible_alias = "now",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    at: Option<String>,
    /// HOTP counter: generate an event-based code instead of TOTP.
    #[arg(short = 'c', long, value_name = "N")]
    counter: Option<u64>,
    /// Codes after the first: generating prints 1 + N codes from the time
    /// or counter on; verifying accepts codes up to N steps either way
    /// (TOTP) or N counters ahead (HOTP).
    #[arg(short = 'w', long, value_name = "N", default_value_t = 0)]
    window: u64,
}

/// KEY as oathtool reads it: `-` from stdin, `@FILE` from a file, else the
/// argument itself.
fn read_key(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading KEY from standard input")?;
        return Ok(s.trim().to_string());
    }
    if let Some(path) = arg.strip_prefix('@') {
        let s =
            std::fs::read_to_string(path).with_context(|| format!("reading KEY from {path}"))?;
        return Ok(s.trim().to_string());
    }
    Ok(arg.to_string())
}

/// A TOTP step length: bare seconds (`30`) or a duration (`30s`, `1m`), whole seconds.
fn parse_step(s: &str) -> anyhow::Result<u64> {
    let bad = || {
        anyhow::anyhow!(
            "--step {s:?}: expected a positive whole number of seconds such as 30, 30s or 1m"
        )
    };
    let ms = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok().and_then(|v| v.checked_mul(1000))
    } else {
        fobsim_core::time::parse_duration_ms(s)
            .ok()
            .and_then(|ms| u64::try_from(ms).ok())
    }
    .ok_or_else(bad)?;
    anyhow::ensure!(ms > 0 && ms % 1000 == 0, bad());
    Ok(ms / 1000)
}

fn time_arg(name: &str, s: &str) -> anyhow::Result<Timestamp> {
    parse_time(s).with_context(|| name.to_string())
}

/// Run `fobsim code`.
///
/// # Errors
/// Malformed keys, a zero step, a digit count outside 6-8, an unknown
/// algorithm, an unreadable time or an OTP that is not a code.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let secret = match (&args.key, &args.key_hex, &args.key_base32) {
        (Some(k), _, _) => {
            let k = read_key(k)?;
            if args.base32 {
                Secret::from_base32(&k)?
            } else {
                Secret::from_hex(&k)?
            }
        }
        (None, Some(h), _) => Secret::from_hex(h)?,
        (None, None, Some(b)) => Secret::from_base32(b)?,
        (None, None, None) => anyhow::bail!("give KEY, --key-hex or --key-base32"),
    };
    let algorithm: Algorithm = match &args.totp {
        Some(Some(mode)) => mode.parse()?,
        _ => args.algorithm.parse()?,
    };
    let hotp = args.hotp || args.counter.is_some();
    if hotp {
        let hotp_gen = Hotp::new(algorithm, secret.expose(), args.digits)?;
        let first = args.counter.unwrap_or(0);
        if let Some(otp) = &args.otp {
            let want = Code::parse(otp, hotp_gen.digits()).context("OTP")?;
            let found = (0..=args.window).find(|&i| {
                first
                    .checked_add(i)
                    .is_some_and(|c| hotp_gen.code(c) == want)
            });
            return Ok(verdict(found.map(i128::from), otp, args.window, "counters"));
        }
        for i in 0..=args.window {
            let Some(c) = first.checked_add(i) else { break };
            outln!("{}", hotp_gen.code(c));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let step = parse_step(&args.step)?;
    let t0 = time_arg("--t0", &args.t0)?.as_secs();
    let totp = Totp::new(algorithm, secret.expose(), args.digits, step, t0)?;
    let at = match &args.at {
        Some(s) => time_arg("--at", s)?,
        None => fobsim_clock::system_now(),
    };
    let now = totp.step_at(at.as_secs()).context("--at is before --t0")?;
    if let Some(otp) = &args.otp {
        let want = Code::parse(otp, totp.digits()).context("OTP")?;
        let w = i128::from(args.window);
        // Nearest first: 0, -1, +1, -2, +2, ...
        let found = (0..=w)
            .flat_map(|d| if d == 0 { vec![0] } else { vec![-d, d] })
            .find(|&d| {
                u64::try_from(i128::from(now) + d).is_ok_and(|s| totp.code_for_step(s) == want)
            });
        return Ok(verdict(found, otp, args.window, "steps"));
    }
    for i in 0..=args.window {
        let Some(s) = now.checked_add(i) else { break };
        outln!("{}", totp.code_for_step(s));
    }
    Ok(ExitCode::SUCCESS)
}

/// Print a verification's offset (exit 0) or say none matched (exit 1).
fn verdict(found: Option<i128>, otp: &str, window: u64, unit: &str) -> ExitCode {
    use std::io::Write as _;
    match found {
        Some(d) => {
            // A closed stdout still leaves the exit status as the answer.
            let _ = writeln!(std::io::stdout(), "{d}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("fobsim: code {otp} matches none within a window of {window} {unit}");
            ExitCode::from(1)
        }
    }
}
