//! Property tests: our TOTP agrees with totp-rs for random keys, times,
//! algorithms, digits and step lengths — one code at a time and through
//! the batch API (4 interleaved HMACs on SHA-NI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_core::{Algorithm, Totp};
use proptest::prelude::*;

fn their_alg(a: Algorithm) -> totp_rs::Algorithm {
    match a {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn matches_totp_rs(
        key in proptest::collection::vec(any::<u8>(), 16..=200),
        time in 0u64..=40_000_000_000,
        alg in prop::sample::select(Algorithm::ALL.to_vec()),
        digits in 6usize..=8,
        period in 1u64..=600,
    ) {
        let ours = Totp::new(alg, &key, digits as u32, period, 0).unwrap();
        let theirs = totp_rs::Builder::new()
            .with_algorithm(their_alg(alg))
            .with_digits(digits as u8)
            .with_secret(key.clone())
            .with_step_duration(period)
            .build_noncompliant();
        prop_assert_eq!(ours.code_at(time).unwrap().to_string(), theirs.generate(time).to_string());
    }

    #[test]
    fn batches_match_totp_rs(
        key in proptest::collection::vec(any::<u8>(), 16..=200),
        first in 0u64..=1_500_000_000,
        len in 0usize..=23,
        alg in prop::sample::select(Algorithm::ALL.to_vec()),
        digits in 6usize..=8,
    ) {
        let ours = Totp::new(alg, &key, digits as u32, 30, 0).unwrap();
        let theirs = totp_rs::Builder::new()
            .with_algorithm(their_alg(alg))
            .with_digits(digits as u8)
            .with_secret(key.clone())
            .with_step_duration(30)
            .build_noncompliant();
        let mut out = vec![ours.code_for_step(0); len];
        ours.codes_for_steps(first, &mut out);
        for (i, code) in out.iter().enumerate() {
            let step = first + i as u64;
            prop_assert_eq!(code.to_string(), theirs.generate(step * 30).to_string(), "step {}", step);
        }
    }
}
