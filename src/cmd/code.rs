//! `fobsim code`: an oathtool-like one-time code generator.

use std::process::ExitCode;

use anyhow::Context as _;
use fobsim_core::{Algorithm, Hotp, Secret, Timestamp, Totp};

/// Arguments of `fobsim code`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["key_hex", "key_base32"])))]
#[command(group(clap::ArgGroup::new("moment").args(["at", "counter"])))]
pub struct Args {
    /// The secret as hex.
    #[arg(long, value_name = "HEX")]
    key_hex: Option<String>,
    /// The secret as base32 (RFC 4648; case and padding ignored).
    #[arg(long, value_name = "B32")]
    key_base32: Option<String>,
    /// HMAC hash: sha1, sha256 or sha512.
    #[arg(long, default_value = "sha1")]
    algorithm: String,
    /// Digits in the code (6-8).
    #[arg(long, default_value_t = 6)]
    digits: u32,
    /// TOTP step length in seconds.
    #[arg(long, default_value_t = 30)]
    step: u64,
    /// TOTP epoch T0 in Unix seconds.
    #[arg(long, default_value_t = 0)]
    t0: u64,
    /// Unix time for TOTP (seconds, `@SECONDS`, or RFC 3339 UTC). Default: now.
    #[arg(long, value_name = "EPOCH")]
    at: Option<String>,
    /// HOTP counter: generate an event-based code instead of TOTP.
    #[arg(long, value_name = "N")]
    counter: Option<u64>,
}

fn parse_time(s: &str) -> anyhow::Result<Timestamp> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .with_context(|| format!("--at {s:?} is out of range"))?;
        return Ok(Timestamp::from_millis(
            secs.checked_mul(1000)
                .with_context(|| format!("--at {s:?} is out of range"))?,
        ));
    }
    Ok(s.parse::<Timestamp>()?)
}

/// Run `fobsim code`.
///
/// # Errors
/// Malformed keys, a zero step, a digit count outside 6-8, an unknown
/// algorithm or an unreadable time.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let secret = match (&args.key_hex, &args.key_base32) {
        (Some(h), _) => Secret::from_hex(h)?,
        (None, Some(b)) => Secret::from_base32(b)?,
        (None, None) => anyhow::bail!("give --key-hex or --key-base32"),
    };
    let algorithm: Algorithm = args.algorithm.parse()?;
    let code = if let Some(counter) = args.counter {
        Hotp::new(algorithm, secret.expose(), args.digits)?.code(counter)
    } else {
        let totp = Totp::new(algorithm, secret.expose(), args.digits, args.step, args.t0)?;
        let at = match &args.at {
            Some(s) => parse_time(s)?,
            None => fobsim_clock::system_now(),
        };
        totp.code_at(at.as_secs())?
    };
    outln!("{code}");
    Ok(ExitCode::SUCCESS)
}
