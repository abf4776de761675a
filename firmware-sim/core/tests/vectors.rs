//! Every row of RFC 4226 Appendix D and RFC 6238 Appendix B, read from
//! `fixtures/vectors/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use fobsim_core::{Algorithm, Hotp, Key, Totp};

fn rows(name: &str) -> Vec<Vec<String>> {
    let path = format!(
        "{}/../../fixtures/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn rfc6238_seed(alg: Algorithm) -> &'static [u8] {
    match alg {
        Algorithm::Sha1 => b"12345678901234567890",
        Algorithm::Sha256 => b"12345678901234567890123456789012",
        Algorithm::Sha512 => b"1234567890123456789012345678901234567890123456789012345678901234",
    }
}

#[test]
fn rfc4226_appendix_d() {
    let rows = rows("rfc4226.csv");
    assert_eq!(rows.len(), 10);
    let hotp = Hotp::new(Algorithm::Sha1, b"12345678901234567890", 6).unwrap();
    let key = Key::new(Algorithm::Sha1, b"12345678901234567890").unwrap();
    for r in rows {
        let counter: u64 = r[0].parse().unwrap();
        assert_eq!(
            key.truncated(counter).to_string(),
            r[1],
            "counter {counter}"
        );
        assert_eq!(hotp.code(counter).to_string(), r[2], "counter {counter}");
    }
}

#[test]
fn rfc6238_appendix_b() {
    let rows = rows("rfc6238.csv");
    assert_eq!(rows.len(), 18);
    for r in rows {
        let time: u64 = r[0].parse().unwrap();
        let alg: Algorithm = r[4].parse().unwrap();
        let totp = Totp::new(alg, rfc6238_seed(alg), 8, 30, 0).unwrap();
        let step = u64::from_str_radix(&r[2], 16).unwrap();
        assert_eq!(totp.step_at(time).unwrap(), step, "{r:?}");
        assert_eq!(totp.code_at(time).unwrap().to_string(), r[3], "{r:?}");
    }
}

#[test]
fn long_keys_are_hashed_first() {
    // RFC 2202 test case 6: 80-byte key of 0xaa, "Test Using Larger Than
    // Block-Size Key - Hash Key First". Our Key only MACs 8-byte counters, so
    // check against HMAC computed the slow way instead.
    use hmac::{KeyInit, Mac};
    let long = [0xaau8; 200];
    for alg in Algorithm::ALL {
        let key = Key::new(alg, &long).unwrap();
        let mut out = [0u8; 64];
        let n = key.mac(7, &mut out);
        let expect: Vec<u8> = match alg {
            Algorithm::Sha1 => {
                let mut m = hmac::Hmac::<sha1::Sha1>::new_from_slice(&long).unwrap();
                m.update(&7u64.to_be_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha256 => {
                let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&long).unwrap();
                m.update(&7u64.to_be_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha512 => {
                let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(&long).unwrap();
                m.update(&7u64.to_be_bytes());
                m.finalize().into_bytes().to_vec()
            }
        };
        assert_eq!(&out[..n], &expect[..], "{alg}");
    }
}
