//! Seed files come from vendors and users: any bytes must give records or a
//! line-numbered error, never a panic — plain, and encrypted (RFC 6030 §6)
//! under the pre-shared key of RFC 6030 Figure 6 or the password of its
//! Figure 7. Whatever parses must survive a write/parse round trip
//! unchanged: plain PSKC, CSV, and PSKC encrypted under either kind.
#![no_main]

use fobsim_core::SeedRecord;
use fobsim_core::seedfile::{self, Password, Protection, SeedFormat, TransportKey};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng as _;

/// RFC 6030 Figure 6's transport key.
fn key() -> Protection {
    Protection::Key(TransportKey::from_hex("12345678901234567890123456789012").expect("a key"))
}

/// RFC 6030 Figure 7's password. Reading may ask for at most 2000 PBKDF2
/// iterations (the figure asks for 1000): a fuzzed count must not make an
/// input take seconds. Writing uses 1.
fn password() -> Protection {
    Protection::Password(
        Password::new("qwerty")
            .expect("a password")
            .with_iterations(1)
            .expect("iterations")
            .with_max_iterations(2000),
    )
}

fn round_trip(records: &[SeedRecord], seed: u64) {
    for format in [SeedFormat::Pskc, SeedFormat::Csv] {
        let again = seedfile::parse(&seedfile::write(records, format)).expect("round trip parses");
        assert_eq!(again, records, "{format:?} round trip changed the records");
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for p in [key(), password()] {
        let text = seedfile::write_pskc_protected(records, &p, &mut rng);
        let again = seedfile::parse_with(&text, Some(&p)).expect("encrypted round trip parses");
        assert_eq!(again, records, "{} round trip changed the records", p.kind());
        assert!(seedfile::parse(&text).is_err(), "read without its {}", p.kind());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let seed = data.len() as u64;
    for p in [None, Some(key()), Some(password())] {
        match seedfile::parse_with(text, p.as_ref()) {
            Ok(records) => round_trip(&records, seed),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
