//! Property test: our TOTP agrees with totp-rs for random keys, times,
//! algorithms, digits and step lengths.

use fobsim_otp::{Algorithm, Totp};
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
}
