//! `otp`: TOTP generation, codes/s — our core (one code per call, and the
//! 64-code batch API) against totp-rs in-process, pyotp and oathtool.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use fobsim_core::{Algorithm, Code, Totp};

use crate::measure::{Opts, median, percentile, rate, run_bounded};
use crate::report::Row;
use crate::{BenchError, Group, Options, peer, setup};

/// The benchmark key for `alg` (its natural length).
pub(crate) fn secret(alg: Algorithm) -> Vec<u8> {
    let n = match alg {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    };
    (0..n).map(|i| i as u8 ^ 0x5a).collect()
}

pub(crate) fn run(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    // Runs of ours and totp-rs are interleaved (one run of each in turn), so
    // a change in the machine's load hits both sides of the ratio alike.
    let one = Opts {
        runs: 1,
        min_time: opts.min_time(),
    };
    for alg in Algorithm::ALL {
        let a = alg.as_str();
        let ours = Totp::new(alg, &secret(alg), 6, 30, 0).map_err(|e| setup("totp", e))?;
        let their_alg = match alg {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        };
        let theirs = totp_rs::Builder::new()
            .with_algorithm(their_alg)
            .with_secret(secret(alg))
            .build_noncompliant();
        let mut step = 56_666_666u64;
        let mut t = 1_700_000_000u64;
        let mut buf = [Code::default(); 64];
        let (mut single, mut batch, mut tr, mut ratio) = (vec![], vec![], vec![], vec![]);
        for _ in 0..opts.runs() {
            let s1 = rate(&one, || {
                for _ in 0..1024 {
                    step += 1;
                    black_box(ours.code_for_step(black_box(step)));
                }
                1024
            });
            batch.push(rate(&one, || {
                for _ in 0..16 {
                    ours.codes_for_steps(black_box(step), &mut buf);
                    step += 64;
                    black_box(&buf);
                }
                1024
            }));
            let t1 = rate(&one, || {
                for _ in 0..1024 {
                    t += 30;
                    black_box(theirs.generate(black_box(t)));
                }
                1024
            });
            single.push(s1);
            tr.push(t1);
            ratio.push(s1 / t1);
        }
        let runs = opts.runs();
        rows.push(
            Row::new(
                &format!("otp.{a}.fobsim"),
                Group::Otp,
                &format!("fobsim Totp::code_for_step {alg}"),
                median(single),
                "codes/s",
            )
            .note(format!(
                "one code per call, 1 thread; median of {runs} runs interleaved with totp-rs; median of the per-run ratios to totp-rs {:.2}×",
                median(ratio)
            )),
        );
        rows.push(
            Row::new(
                &format!("otp.{a}.fobsim-batch"),
                Group::Otp,
                &format!("fobsim Totp::codes_for_steps {alg} (64 per call)"),
                median(batch),
                "codes/s",
            )
            .note("consecutive steps, 1 thread"),
        );
        rows.push(
            Row::new(
                &format!("otp.{a}.totp-rs"),
                Group::Otp,
                &format!("totp-rs TOTP::generate {alg}"),
                median(tr),
                "codes/s",
            )
            .note("in-process, same keys, 1 thread"),
        );
    }
    if opts.peers {
        opts.say("otp: pyotp");
        for alg in Algorithm::ALL {
            let a = alg.as_str();
            let id = format!("otp.{a}.pyotp");
            let name = format!("pyotp TOTP.at {alg}");
            rows.push(match pyotp_rate(opts, a) {
                Ok(r) => Row::new(&id, Group::Otp, &name, r, "codes/s")
                    .note("in one python process, 1 thread"),
                Err(e) => Row::missing(&id, Group::Otp, &name, "codes/s", e.to_string()),
            });
        }
        opts.say("otp: oathtool");
        oathtool_rows(opts, rows);
    }
    Ok(())
}
const PYOTP_SCRIPT: &str = r#"
import base64, hashlib, json, sys, time
import pyotp
alg, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n_bytes = {"sha1": 20, "sha256": 32, "sha512": 64}[alg]
secret = base64.b32encode(bytes(i ^ 0x5a for i in range(n_bytes))).decode()
totp = pyotp.TOTP(secret, digest=getattr(hashlib, alg))
rates = []
for _ in range(runs):
    t = 1700000000
    start = time.perf_counter()
    for i in range(n):
        totp.at(t + 30 * i)
    rates.append(n / (time.perf_counter() - start))
rates.sort()
print(json.dumps({"rate": rates[len(rates) // 2], "version": getattr(pyotp, "__version__", "?")}))
"#;

fn pyotp_rate(opts: &Options, alg: &str) -> Result<f64, BenchError> {
    if !opts.pyotp_python.is_file() {
        return Err(peer(
            "pyotp",
            format!(
                "{} not found (run tests/perf/peers.sh)",
                opts.pyotp_python.display()
            ),
        ));
    }
    let n = if opts.quick { 5_000 } else { 50_000 };
    let out = run_bounded(
        Command::new(&opts.pyotp_python)
            .arg("-c")
            .arg(PYOTP_SCRIPT)
            .arg(alg)
            .arg(n.to_string())
            .arg(opts.runs().to_string()),
        Duration::from_secs(120),
        "pyotp",
    )?;
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|e| peer("pyotp", format!("output: {e}")))?;
    v.get("rate")
        .and_then(serde_json::Value::as_f64)
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| peer("pyotp", format!("no rate in {out:?}")))
}

fn oathtool_rows(opts: &Options, rows: &mut Vec<Row>) {
    let key = hex::encode(secret(Algorithm::Sha1));
    let oath = |extra: &[&str]| -> Result<(Duration, String), BenchError> {
        let start = Instant::now();
        let out = run_bounded(
            Command::new(&opts.oathtool)
                .args(["--totp", "-N", "@1700000000"])
                .args(extra)
                .arg(&key),
            Duration::from_secs(30),
            "oathtool",
        )?;
        Ok((start.elapsed(), out))
    };
    // One process per code.
    let procs = if opts.quick { 20 } else { 200 };
    let per_process = (|| -> Result<Duration, BenchError> {
        let (_, first) = oath(&[])?;
        let c = first.trim();
        if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()) {
            return Err(peer("oathtool", format!("unexpected output {first:?}")));
        }
        let mut lat = Vec::with_capacity(procs);
        for _ in 0..procs {
            lat.push(oath(&[])?.0);
        }
        lat.sort_unstable();
        Ok(percentile(&lat, 0.5))
    })();
    let name = "oathtool --totp, one process per code (SHA1)";
    rows.push(match per_process {
        Ok(d) => Row::new(
            "otp.sha1.oathtool-process",
            Group::Otp,
            name,
            1.0 / d.as_secs_f64(),
            "codes/s",
        )
        .note(format!(
            "median of {procs} fork+exec+wait: {:.2} ms per code",
            d.as_secs_f64() * 1e3
        )),
        Err(e) => Row::missing(
            "otp.sha1.oathtool-process",
            Group::Otp,
            name,
            "codes/s",
            e.to_string(),
        ),
    });
    // Marginal cost per code inside one process: -w W prints W+1 codes.
    let w = 5000usize;
    let marginal = (|| -> Result<f64, BenchError> {
        let mut base = Vec::new();
        let mut many = Vec::new();
        for _ in 0..opts.runs() {
            base.push(oath(&[])?.0.as_secs_f64());
            let (d, out) = oath(&["-w", &w.to_string()])?;
            if out.lines().count() < w {
                return Err(peer("oathtool", "-w printed fewer codes than asked"));
            }
            many.push(d.as_secs_f64());
        }
        let per = (median(many) - median(base)) / w as f64;
        if per > 0.0 {
            Ok(1.0 / per)
        } else {
            Err(peer("oathtool", "the -w run was not slower than one code"))
        }
    })();
    let name = "oathtool --totp -w 5000, per code inside one process (SHA1)";
    rows.push(match marginal {
        Ok(r) => Row::new("otp.sha1.oathtool-code", Group::Otp, name, r, "codes/s")
            .note("(t(-w 5000) − t(one code)) / 5000, includes printing"),
        Err(e) => Row::missing(
            "otp.sha1.oathtool-code",
            Group::Otp,
            name,
            "codes/s",
            e.to_string(),
        ),
    });
}
