//! `search`: the enable/resync search, worst case (no match) per call, for
//! windows of 10, 100, 1000 and 10000 steps, against the same search
//! written with totp-rs.

use std::hint::black_box;

use fobsim_core::{Channel, Principal};
use fobsim_engine::{Engine, Profile, testing};

use crate::measure::{opts_of, rate};
use crate::report::Row;
use crate::verify::totp_of;
use crate::{BenchError, Group, Options, setup};

pub(crate) fn run(opts: &Options, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let o = opts_of(opts);
    for window in [10u64, 100, 1000, 10_000] {
        let profile = Profile {
            sync_window_steps: window,
            ..Profile::for_tests()
        };
        let engine = Engine::in_memory(profile);
        testing::create_account(&engine).map_err(|e| setup("account", e))?;
        let fob = testing::gaht_fob(7, testing::T0);
        testing::import(&engine, std::slice::from_ref(&fob)).map_err(|e| setup("import", e))?;
        let totp = totp_of(&fob)?;
        let now = testing::T0.add_millis(10_000);
        // Two consecutive codes far outside every window: a full miss.
        let far = now.as_secs() / 30 + 50_000;
        let (w1, w2) = (
            totp.code_for_step(far).to_string(),
            totp.code_for_step(far + 1).to_string(),
        );
        let bob = Principal::user(testing::USERS[1]);
        let serial = fob.serial().as_str().to_string();
        let mut hits = 0u64;
        let calls = rate(&o, || {
            if engine
                .enable_mfa_device(now, Channel::Console, &bob, &serial, &w1, &w2)
                .is_ok()
            {
                hits += 1;
            }
            1
        });
        rows.push(
            Row::new(
                &format!("search.enable-miss.w{window}"),
                Group::Search,
                &format!(
                    "enable search, no match, window ±{window} ({} steps)",
                    2 * window + 1
                ),
                1e6 / calls,
                "µs/call",
            )
            .note(format!(
                "{:.1} ns per step searched{}",
                1e9 / calls / (2 * window + 1) as f64,
                if hits > 0 { "; unexpected match!" } else { "" }
            )),
        );
        // totp-rs has no search API: the same search with `generate` per
        // step and its (constant-time) token compare, as an application
        // would write it.
        let r = fob.seed_record();
        let theirs = totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_secret(r.secret.expose().to_vec())
            .build_noncompliant();
        let center = now.as_secs() / 30;
        let (x1, x2) = (theirs.generate(far * 30), theirs.generate((far + 1) * 30));
        let calls = rate(&o, || {
            let mut hit = false;
            let mut prev = theirs.generate((center - window) * 30);
            for st in center - window + 1..=center + window + 1 {
                let cur = theirs.generate(st * 30);
                if prev == x1 && cur == x2 {
                    hit = true;
                }
                prev = cur;
            }
            black_box(hit);
            1
        });
        rows.push(
            Row::new(
                &format!("search.totp-rs.w{window}"),
                Group::Search,
                &format!("totp-rs, same search (generate + compare per step), window ±{window}"),
                1e6 / calls,
                "µs/call",
            )
            .note("emulated: totp-rs has no resync search; 1 thread"),
        );
    }
    Ok(())
}
