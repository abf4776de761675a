//! Property tests of the fob model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_core::{Hotp, Totp};
use fobsim_core::{Kind, Timestamp};
use fobsim_firmware::{
    Battery, DEFAULT_RTC_RESET, Display, Drift, Fob, FobSpec, PRESETS, YEAR_MS, preset,
};
use proptest::prelude::*;

const START: u64 = 1_700_000_000_000;

fn totp_models() -> Vec<&'static fobsim_firmware::Model> {
    PRESETS
        .iter()
        .filter(|m| matches!(m.kind, Kind::Totp { .. }))
        .collect()
}

fn fob(model: &fobsim_firmware::Model, seed: u64, drift: Drift) -> Fob {
    let now = Timestamp::from_millis(START);
    let mut spec = FobSpec::seeded(model, model.serial(seed % 1000).unwrap(), seed, now).unwrap();
    spec.drift = drift;
    Fob::new(spec).unwrap()
}

fn reference_totp(f: &Fob) -> Totp {
    let rec = f.seed_record();
    let Kind::Totp { period } = rec.kind else {
        panic!("not totp")
    };
    Totp::new(
        rec.algorithm,
        rec.secret.expose(),
        u32::from(rec.digits),
        period,
        0,
    )
    .unwrap()
}

fn drift_strategy() -> impl Strategy<Value = Drift> {
    (-86_400_000i64..86_400_000, -100.0f64..100.0, 0u32..5_000).prop_map(
        |(offset_ms, ppm, jitter_ms)| Drift {
            offset_ms,
            ppm,
            jitter_ms,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The displayed code is TOTP at the device's own time.
    #[test]
    fn display_is_totp_of_device_time(
        m in prop::sample::select(totp_models()),
        seed in any::<u64>(),
        drift in drift_strategy(),
        press_after in 0u64..(10 * YEAR_MS as u64),
        look_after in 0u64..15_000,
    ) {
        let mut f = fob(m, seed, drift);
        let t = Timestamp::from_millis(START + press_after);
        let shown = f.press(t);
        let reference = reference_totp(&f);
        let dev = f.device_ms(t).unwrap();
        prop_assert_eq!(shown, Display::Code(reference.code_at(dev as u64 / 1000).unwrap()));
        let later = t.add_millis(look_after as i64);
        let dev = f.device_ms(later).unwrap();
        prop_assert_eq!(f.display(later), Display::Code(reference.code_at(dev as u64 / 1000).unwrap()));
    }

    /// Without jitter, device time never runs backwards for non-negative skew.
    #[test]
    fn device_time_is_monotonic_for_nonnegative_skew(
        seed in any::<u64>(),
        offset_ms in -86_400_000i64..86_400_000,
        ppm in 0.0f64..500.0,
        a in 0u64..(20 * YEAR_MS as u64),
        b in 0u64..(20 * YEAR_MS as u64),
    ) {
        let f = fob(preset("gaht").unwrap(), seed, Drift { offset_ms, ppm, jitter_ms: 0 });
        let (lo, hi) = (a.min(b), a.max(b));
        let d_lo = f.device_ms(Timestamp::from_millis(START + lo)).unwrap();
        let d_hi = f.device_ms(Timestamp::from_millis(START + hi)).unwrap();
        prop_assert!(d_lo <= d_hi, "{} > {}", d_lo, d_hi);
    }

    /// The display does not change before `next_deadline`, and after the
    /// deadline the fob has blanked or moved to another step.
    #[test]
    fn display_is_stable_until_the_deadline(
        m in prop::sample::select(totp_models()),
        seed in any::<u64>(),
        drift in drift_strategy(),
        press_after in 0u64..(YEAR_MS as u64),
        frac in 0.0f64..1.0,
    ) {
        let mut f = fob(m, seed, drift);
        let t = Timestamp::from_millis(START + press_after);
        let shown = f.press(t);
        let deadline = f.next_deadline(t).unwrap();
        prop_assert!(deadline > t);
        let span = deadline.millis_since(t);
        let probe = t.add_millis(((span - 1) as f64 * frac) as i64);
        prop_assert_eq!(f.display(probe), shown);
    }

    /// Same spec, seed and calls → same outputs.
    #[test]
    fn deterministic(
        seed in any::<u64>(),
        drift in drift_strategy(),
        steps in proptest::collection::vec((0u64..120_000, 0u8..6), 1..40),
    ) {
        let model = preset("gaht").unwrap();
        let mut a = fob(model, seed, drift);
        let mut b = fob(model, seed, drift);
        let mut now = Timestamp::from_millis(START);
        for (dt, op) in steps {
            now = now.add_millis(dt as i64);
            let (x, y) = match op {
                0 | 1 => (a.press(now), b.press(now)),
                2 => { a.drain_battery(now); b.drain_battery(now); (a.display(now), b.display(now)) }
                3 => { a.swap_battery(now); b.swap_battery(now); (a.display(now), b.display(now)) }
                _ => (a.display(now), b.display(now)),
            };
            prop_assert_eq!(x, y);
            prop_assert_eq!(a.device_ms(now), b.device_ms(now));
            prop_assert_eq!(a.next_deadline(now), b.next_deadline(now));
        }
    }
}

#[test]
fn plus_twenty_ppm_is_about_631_s_ahead_after_a_year() {
    let f = fob(
        preset("gaht").unwrap(),
        1,
        Drift {
            ppm: 20.0,
            ..Drift::NONE
        },
    );
    let later = Timestamp::from_millis(START).add_millis(YEAR_MS);
    let ahead_ms = f.device_ms(later).unwrap() - later.as_millis() as i64;
    assert!((630_000..=632_000).contains(&ahead_ms), "{ahead_ms} ms");
}

#[test]
fn display_blanks_after_the_display_period() {
    let model = preset("gaht").unwrap();
    let mut f = fob(model, 3, Drift::NONE);
    let t = Timestamp::from_millis(START);
    assert_eq!(f.display(t), Display::Blank, "nothing shown before a press");
    assert!(f.press(t).code().is_some());
    let off = t.add_millis(model.display_ms as i64);
    assert!(f.display(off.add_millis(-1)).code().is_some());
    assert_eq!(f.display(off), Display::Blank);
    assert_eq!(f.next_deadline(off), None);
}

#[test]
fn event_fob_advances_its_counter_per_press() {
    let model = preset("c100").unwrap();
    let mut f = fob(model, 9, Drift::NONE);
    let rec = f.seed_record();
    let hotp = Hotp::new(rec.algorithm, rec.secret.expose(), u32::from(rec.digits)).unwrap();
    let t = Timestamp::from_millis(START);
    for counter in 0..5 {
        assert_eq!(
            f.press(t.add_millis(counter as i64 * 1000)),
            Display::Code(hotp.code(counter))
        );
    }
    assert_eq!(f.counter(), 5);
    assert_eq!(f.device_step(t), None);
}

#[test]
fn dead_battery_blanks_and_swap_resets_the_rtc() {
    let mut f = fob(
        preset("gaht").unwrap(),
        5,
        Drift {
            offset_ms: 47_000,
            ppm: 20.0,
            jitter_ms: 0,
        },
    );
    let t = Timestamp::from_millis(START);
    f.press(t);
    f.drain_battery(t);
    assert_eq!(f.battery(), Battery::Dead);
    assert_eq!(f.display(t), Display::Blank);
    assert_eq!(f.press(t), Display::Blank);
    assert_eq!(f.device_ms(t), None);
    let swap = t.add_millis(86_400_000);
    f.swap_battery(swap);
    assert_eq!(f.battery(), Battery::Good);
    assert_eq!(
        f.device_ms(swap),
        Some(DEFAULT_RTC_RESET.as_millis() as i64)
    );
    let shown = f.press(swap);
    let reference = reference_totp(&f);
    assert_eq!(
        shown,
        Display::Code(reference.code_at(DEFAULT_RTC_RESET.as_secs()).unwrap())
    );
}

#[test]
fn secret_never_in_debug_output() {
    let f = fob(preset("gaht").unwrap(), 5, Drift::NONE);
    let hex = f.seed_record().secret.to_hex();
    let dbg = format!("{f:?}");
    assert!(!dbg.contains(&hex[..16]), "{dbg}");
    assert!(dbg.contains("Secret(20 bytes)"));
}

#[test]
fn invalid_drift_is_refused_and_leaves_the_fob_unchanged() {
    let mut f = fob(preset("gaht").unwrap(), 5, Drift::NONE);
    let t = Timestamp::from_millis(START);
    let before = f.device_ms(t);
    assert!(
        f.set_drift(
            t,
            Drift {
                ppm: f64::NAN,
                ..Drift::NONE
            }
        )
        .is_err()
    );
    assert!(f.set_ppm(t, 1e9).is_err());
    assert_eq!(f.device_ms(t), before);
}
