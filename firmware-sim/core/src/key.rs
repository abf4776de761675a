//! HMAC with precomputed inner/outer states over the raw SHA block
//! compression functions.
//!
//! HMAC(K, m) = H((K' ^ opad) || H((K' ^ ipad) || m)). The first block of
//! each hash depends only on the key, so we compress it once at
//! construction. An OTP message is 8 bytes, which fits in one block together
//! with its padding, and so does the inner digest: every code is exactly two
//! compressions from copies of the stored states.

use sha1::Digest as _;
use zeroize::Zeroize;

use crate::{Algorithm, OtpError};

const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const SHA512_IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

#[derive(Clone)]
enum States {
    Sha1 { inner: [u32; 5], outer: [u32; 5] },
    Sha256 { inner: [u32; 8], outer: [u32; 8] },
    Sha512 { inner: [u64; 8], outer: [u64; 8] },
}

/// A prepared HMAC key: the hash states after the key block, for one of the
/// three algorithms. Cloning copies at most 128 bytes; no heap.
///
/// The key material itself is not kept. `Debug` shows only the algorithm.
#[derive(Clone)]
pub struct Key {
    states: States,
    backend: Backend,
}

/// How a [`Key`] computes its HMACs. Chosen once, when the key is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The `sha1`/`sha2` crates' block functions (any CPU).
    Portable,
    /// The x86 SHA extensions, whole HMAC in registers (SHA1 and SHA256 on
    /// CPUs that have them).
    ShaNi,
}

impl Backend {
    /// The fastest backend this CPU supports for `algorithm`.
    #[must_use]
    pub fn best(algorithm: Algorithm) -> Backend {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if matches!(algorithm, Algorithm::Sha1 | Algorithm::Sha256) && crate::shani::detected() {
            return Backend::ShaNi;
        }
        let _ = algorithm;
        Backend::Portable
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        match &mut self.states {
            States::Sha1 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
            States::Sha256 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
            States::Sha512 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
        }
    }
}

/// Write 32-bit words big-endian into `out`; returns the byte count.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn words_be(words: &[u32], out: &mut [u8; 32]) -> usize {
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    words.len() * 4
}

/// RFC 4226 §5.3: the 31-bit value at the offset named by the low nibble of
/// the last byte.
#[inline]
fn dynamic_truncation(mac: &[u8]) -> u32 {
    let off = usize::from(mac[mac.len() - 1] & 0x0f);
    u32::from_be_bytes([mac[off] & 0x7f, mac[off + 1], mac[off + 2], mac[off + 3]])
}

/// `K'` padded to the block size, then XORed with `pad`.
fn padded_key<const B: usize>(key: &[u8], hashed: &[u8], pad: u8) -> [u8; B] {
    let src = if key.len() > B { hashed } else { key };
    let mut block = [pad; B];
    for (b, k) in block.iter_mut().zip(src) {
        *b ^= k;
    }
    block
}

impl Key {
    /// Prepare `secret` for HMAC with `algorithm`. Keys longer than the hash
    /// block are hashed first, as RFC 2104 requires.
    ///
    /// # Errors
    /// [`OtpError::EmptySecret`] for an empty secret.
    pub fn new(algorithm: Algorithm, secret: &[u8]) -> Result<Self, OtpError> {
        if secret.is_empty() {
            return Err(OtpError::EmptySecret);
        }
        let states = match algorithm {
            Algorithm::Sha1 => {
                let mut hashed = [0u8; 20];
                if secret.len() > 64 {
                    hashed.copy_from_slice(&sha1::Sha1::digest(secret));
                }
                let mut ib = padded_key::<64>(secret, &hashed, 0x36);
                let mut ob = padded_key::<64>(secret, &hashed, 0x5c);
                let (mut inner, mut outer) = (SHA1_IV, SHA1_IV);
                sha1::block_api::compress(&mut inner, &[ib]);
                sha1::block_api::compress(&mut outer, &[ob]);
                ib.zeroize();
                ob.zeroize();
                hashed.zeroize();
                States::Sha1 { inner, outer }
            }
            Algorithm::Sha256 => {
                let mut hashed = [0u8; 32];
                if secret.len() > 64 {
                    hashed.copy_from_slice(&sha2::Sha256::digest(secret));
                }
                let mut ib = padded_key::<64>(secret, &hashed, 0x36);
                let mut ob = padded_key::<64>(secret, &hashed, 0x5c);
                let (mut inner, mut outer) = (SHA256_IV, SHA256_IV);
                sha2::block_api::compress256(&mut inner, &[ib]);
                sha2::block_api::compress256(&mut outer, &[ob]);
                ib.zeroize();
                ob.zeroize();
                hashed.zeroize();
                States::Sha256 { inner, outer }
            }
            Algorithm::Sha512 => {
                let mut hashed = [0u8; 64];
                if secret.len() > 128 {
                    hashed.copy_from_slice(&sha2::Sha512::digest(secret));
                }
                let mut ib = padded_key::<128>(secret, &hashed, 0x36);
                let mut ob = padded_key::<128>(secret, &hashed, 0x5c);
                let (mut inner, mut outer) = (SHA512_IV, SHA512_IV);
                sha2::block_api::compress512(&mut inner, &[ib]);
                sha2::block_api::compress512(&mut outer, &[ob]);
                ib.zeroize();
                ob.zeroize();
                hashed.zeroize();
                States::Sha512 { inner, outer }
            }
        };
        Ok(Key {
            states,
            backend: Backend::best(algorithm),
        })
    }

    /// The same key computed with `backend`, if this CPU supports it for
    /// the key's algorithm (else `None`). For tests and benchmarks.
    #[must_use]
    pub fn with_backend(&self, backend: Backend) -> Option<Key> {
        let ok = backend == Backend::Portable || Backend::best(self.algorithm()) == backend;
        ok.then(|| Key {
            states: self.states.clone(),
            backend,
        })
    }

    /// The backend this key uses.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The hash algorithm this key was prepared for.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self.states {
            States::Sha1 { .. } => Algorithm::Sha1,
            States::Sha256 { .. } => Algorithm::Sha256,
            States::Sha512 { .. } => Algorithm::Sha512,
        }
    }

    /// HMAC of the 8-byte big-endian `counter`, written into `out` (20, 32
    /// or 64 bytes are used); returns the number of bytes written.
    pub fn mac(&self, counter: u64, out: &mut [u8; 64]) -> usize {
        match &self.states {
            States::Sha1 { inner, outer } => {
                let mut s = *inner;
                let mut block = [0u8; 64];
                block[..8].copy_from_slice(&counter.to_be_bytes());
                block[8] = 0x80;
                block[56..].copy_from_slice(&((64u64 + 8) * 8).to_be_bytes());
                sha1::block_api::compress(&mut s, &[block]);
                let mut block = [0u8; 64];
                for (chunk, w) in block[..20].chunks_exact_mut(4).zip(s) {
                    chunk.copy_from_slice(&w.to_be_bytes());
                }
                block[20] = 0x80;
                block[56..].copy_from_slice(&((64u64 + 20) * 8).to_be_bytes());
                let mut s = *outer;
                sha1::block_api::compress(&mut s, &[block]);
                for (chunk, w) in out[..20].chunks_exact_mut(4).zip(s) {
                    chunk.copy_from_slice(&w.to_be_bytes());
                }
                20
            }
            States::Sha256 { inner, outer } => {
                let mut s = *inner;
                let mut block = [0u8; 64];
                block[..8].copy_from_slice(&counter.to_be_bytes());
                block[8] = 0x80;
                block[56..].copy_from_slice(&((64u64 + 8) * 8).to_be_bytes());
                sha2::block_api::compress256(&mut s, &[block]);
                let mut block = [0u8; 64];
                for (chunk, w) in block[..32].chunks_exact_mut(4).zip(s) {
                    chunk.copy_from_slice(&w.to_be_bytes());
                }
                block[32] = 0x80;
                block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
                let mut s = *outer;
                sha2::block_api::compress256(&mut s, &[block]);
                for (chunk, w) in out[..32].chunks_exact_mut(4).zip(s) {
                    chunk.copy_from_slice(&w.to_be_bytes());
                }
                32
            }
            States::Sha512 { inner, outer } => {
                let mut s = *inner;
                let mut block = [0u8; 128];
                block[..8].copy_from_slice(&counter.to_be_bytes());
                block[8] = 0x80;
                block[112..].copy_from_slice(&((128u128 + 8) * 8).to_be_bytes());
                sha2::block_api::compress512(&mut s, &[block]);
                let mut block = [0u8; 128];
                for (chunk, w) in block[..64].chunks_exact_mut(8).zip(s) {
                    chunk.copy_from_slice(&w.to_be_bytes());
                }
                block[64] = 0x80;
                block[112..].copy_from_slice(&((128u128 + 64) * 8).to_be_bytes());
                let mut s = *outer;
                sha2::block_api::compress512(&mut s, &[block]);
                for (chunk, w) in out.chunks_exact_mut(8).zip(s) {
                    chunk.copy_from_slice(&w.to_be_bytes());
                }
                64
            }
        }
    }

    /// Truncated values of the consecutive counters `first, first+1, …`,
    /// one per slot of `out` (counters wrap at `u64::MAX`). With SHA-NI,
    /// four independent HMACs are computed at once; allocation-free.
    pub fn truncated_batch(&self, first: u64, out: &mut [u32]) {
        let mut counter = first;
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if self.backend == Backend::ShaNi {
            let mut chunks = out.chunks_exact_mut(4);
            for chunk in &mut chunks {
                let cs = [0u64, 1, 2, 3].map(|i| counter.wrapping_add(i));
                let mut mac = [0u8; 32];
                match &self.states {
                    States::Sha1 { inner, outer } => {
                        // SAFETY: Backend::ShaNi is only set after feature detection.
                        #[allow(unsafe_code)]
                        let hs = unsafe { crate::shani::hmac_sha1_x4(inner, outer, cs) };
                        for (slot, h) in chunk.iter_mut().zip(&hs) {
                            let n = words_be(h, &mut mac);
                            *slot = dynamic_truncation(&mac[..n]);
                        }
                    }
                    States::Sha256 { inner, outer } => {
                        // SAFETY: as above.
                        #[allow(unsafe_code)]
                        let hs = unsafe { crate::shani::hmac_sha256_x4(inner, outer, cs) };
                        for (slot, h) in chunk.iter_mut().zip(&hs) {
                            let n = words_be(h, &mut mac);
                            *slot = dynamic_truncation(&mac[..n]);
                        }
                    }
                    States::Sha512 { .. } => {
                        for (slot, c) in chunk.iter_mut().zip(cs) {
                            *slot = self.truncated(c);
                        }
                    }
                }
                counter = counter.wrapping_add(4);
            }
            for slot in chunks.into_remainder() {
                *slot = self.truncated(counter);
                counter = counter.wrapping_add(1);
            }
            return;
        }
        for slot in out {
            *slot = self.truncated(counter);
            counter = counter.wrapping_add(1);
        }
    }

    /// RFC 4226 dynamic truncation of HMAC(counter): a 31-bit value.
    #[inline]
    #[must_use]
    pub fn truncated(&self, counter: u64) -> u32 {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if self.backend == Backend::ShaNi {
            let mut mac = [0u8; 32];
            let n = match &self.states {
                States::Sha1 { inner, outer } => {
                    // SAFETY: Backend::ShaNi is only set after feature detection
                    // found sha, sse2, ssse3 and sse4.1 on this CPU.
                    #[allow(unsafe_code)]
                    let h = unsafe { crate::shani::hmac_sha1(inner, outer, counter) };
                    words_be(&h, &mut mac)
                }
                States::Sha256 { inner, outer } => {
                    // SAFETY: as above.
                    #[allow(unsafe_code)]
                    let h = unsafe { crate::shani::hmac_sha256(inner, outer, counter) };
                    words_be(&h, &mut mac)
                }
                States::Sha512 { .. } => 0,
            };
            if n > 0 {
                return dynamic_truncation(&mac[..n]);
            }
        }
        let mut mac = [0u8; 64];
        let n = self.mac(counter, &mut mac);
        dynamic_truncation(&mac[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every backend this CPU has gives the same truncated values as the
    /// portable path, for random-ish keys and counters.
    #[test]
    fn backends_agree() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for alg in Algorithm::ALL {
            for len in [1usize, 16, 20, 32, 63, 64, 65, 100, 128, 129] {
                let secret: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let key = Key::new(alg, &secret).unwrap();
                let portable = key.with_backend(Backend::Portable).unwrap();
                for counter in [0u64, 1, 59 / 30, 0x23523EC, u64::MAX, x] {
                    assert_eq!(
                        key.truncated(counter),
                        portable.truncated(counter),
                        "{alg} len {len} counter {counter}"
                    );
                }
            }
        }
    }

    #[test]
    fn batches_match_single_codes() {
        for alg in Algorithm::ALL {
            for secret in [&b"12345678901234567890"[..], &[0xa5; 32], &[7; 100]] {
                let key = Key::new(alg, secret).unwrap();
                // The batch path (4 interleaved HMACs on SHA-NI) against the
                // single-code path and the independent portable backend.
                let portable = key.with_backend(Backend::Portable).unwrap();
                for (first, len) in [
                    (0u64, 0usize),
                    (5, 1),
                    (7, 4),
                    (1000, 13),
                    (0x0123_4567_89ab_cdef, 64),
                    (u64::MAX - 2, 6),
                ] {
                    let mut out = vec![0u32; len];
                    key.truncated_batch(first, &mut out);
                    for (i, v) in out.iter().enumerate() {
                        let c = first.wrapping_add(i as u64);
                        assert_eq!(*v, key.truncated(c), "{alg} {first}+{i}");
                        assert_eq!(*v, portable.truncated(c), "{alg} {first}+{i} portable");
                    }
                }
            }
        }
    }

    #[test]
    fn sha_ni_is_used_where_the_cpu_has_it() {
        let key = Key::new(Algorithm::Sha1, b"k").unwrap();
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if std::is_x86_feature_detected!("sha") && std::is_x86_feature_detected!("sse4.1") {
            assert_eq!(key.backend(), Backend::ShaNi);
        }
        assert_eq!(
            Key::new(Algorithm::Sha512, b"k").unwrap().backend(),
            Backend::Portable
        );
        assert!(key.with_backend(Backend::Portable).is_some());
    }
}
