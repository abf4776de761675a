//! x86 SHA extensions (SHA-NI) fast path: a whole HMAC-SHA1 or
//! HMAC-SHA256 of an 8-byte counter, computed in registers.
//!
//! The `sha1`/`sha2` crates pick SHA-NI at run time too, but behind a
//! dispatch per block compression that cannot be inlined. Here the decision
//! is taken once per [`Key`](crate::Key) (at construction, by CPU feature
//! detection) and each code is one call that does both compressions. An OTP
//! message block is made of known words (counter, padding, length), so the
//! message vectors are built with `_mm_set_epi32` — no memory loads.
//!
//! The instruction sequences follow Intel's "SHA Extensions" whitepaper
//! (and match the RustCrypto backends); every result is checked against the
//! portable path by the tests in `key.rs` and `tests/`.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// True if this CPU has the SHA extensions and the SSE levels they need.
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

#[inline]
#[target_feature(enable = "sse2")]
fn set(w0: u32, w1: u32, w2: u32, w3: u32) -> __m128i {
    // Lane 3 gets the first argument.
    _mm_set_epi32(w0 as i32, w1 as i32, w2 as i32, w3 as i32)
}

#[inline]
#[target_feature(enable = "sse4.1")]
fn lane<const L: i32>(v: __m128i) -> u32 {
    _mm_extract_epi32::<L>(v) as u32
}

/// One SHA-1 block compression. SHA-1 vectors hold `W[i]` in lane 3 and
/// `W[i+3]` in lane 0; the state as ABCD with A in lane 3, and E in lane 3
/// of its own register.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_block(state: [u32; 5], w: [u32; 16]) -> [u32; 5] {
    macro_rules! rounds4 {
        ($a:expr, $e:expr, $wk:expr, $f:literal) => {
            _mm_sha1rnds4_epu32::<$f>($a, _mm_sha1nexte_epu32($e, $wk))
        };
    }
    macro_rules! schedule {
        ($v0:expr, $v1:expr, $v2:expr, $v3:expr) => {
            _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32($v0, $v1), $v2), $v3)
        };
    }
    let abcd = set(state[0], state[1], state[2], state[3]);
    let e0 = set(state[4], 0, 0, 0);
    let mut w0 = set(w[0], w[1], w[2], w[3]);
    let mut w1 = set(w[4], w[5], w[6], w[7]);
    let mut w2 = set(w[8], w[9], w[10], w[11]);
    let mut w3 = set(w[12], w[13], w[14], w[15]);
    let mut w4;

    // Rounds 0..20.
    let mut h0 = abcd;
    let mut h1 = _mm_sha1rnds4_epu32::<0>(h0, _mm_add_epi32(e0, w0));
    h0 = rounds4!(h1, h0, w1, 0);
    h1 = rounds4!(h0, h1, w2, 0);
    h0 = rounds4!(h1, h0, w3, 0);
    w4 = schedule!(w0, w1, w2, w3);
    h1 = rounds4!(h0, h1, w4, 0);
    // Rounds 20..40.
    w0 = schedule!(w1, w2, w3, w4);
    h0 = rounds4!(h1, h0, w0, 1);
    w1 = schedule!(w2, w3, w4, w0);
    h1 = rounds4!(h0, h1, w1, 1);
    w2 = schedule!(w3, w4, w0, w1);
    h0 = rounds4!(h1, h0, w2, 1);
    w3 = schedule!(w4, w0, w1, w2);
    h1 = rounds4!(h0, h1, w3, 1);
    w4 = schedule!(w0, w1, w2, w3);
    h0 = rounds4!(h1, h0, w4, 1);
    // Rounds 40..60.
    w0 = schedule!(w1, w2, w3, w4);
    h1 = rounds4!(h0, h1, w0, 2);
    w1 = schedule!(w2, w3, w4, w0);
    h0 = rounds4!(h1, h0, w1, 2);
    w2 = schedule!(w3, w4, w0, w1);
    h1 = rounds4!(h0, h1, w2, 2);
    w3 = schedule!(w4, w0, w1, w2);
    h0 = rounds4!(h1, h0, w3, 2);
    w4 = schedule!(w0, w1, w2, w3);
    h1 = rounds4!(h0, h1, w4, 2);
    // Rounds 60..80.
    w0 = schedule!(w1, w2, w3, w4);
    h0 = rounds4!(h1, h0, w0, 3);
    w1 = schedule!(w2, w3, w4, w0);
    h1 = rounds4!(h0, h1, w1, 3);
    w2 = schedule!(w3, w4, w0, w1);
    h0 = rounds4!(h1, h0, w2, 3);
    w3 = schedule!(w4, w0, w1, w2);
    h1 = rounds4!(h0, h1, w3, 3);
    w4 = schedule!(w0, w1, w2, w3);
    h0 = rounds4!(h1, h0, w4, 3);

    let abcd = _mm_add_epi32(abcd, h0);
    let e = _mm_sha1nexte_epu32(h1, e0);
    [
        lane::<3>(abcd),
        lane::<2>(abcd),
        lane::<1>(abcd),
        lane::<0>(abcd),
        lane::<3>(e),
    ]
}

/// HMAC-SHA1(counter) from the precomputed inner/outer states.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn hmac_sha1(inner: &[u32; 5], outer: &[u32; 5], counter: u64) -> [u32; 5] {
    let mut w = [0u32; 16];
    w[0] = (counter >> 32) as u32;
    w[1] = counter as u32;
    w[2] = 0x8000_0000;
    w[15] = (64 + 8) * 8;
    let ih = sha1_block(*inner, w);
    let mut w = [0u32; 16];
    w[..5].copy_from_slice(&ih);
    w[5] = 0x8000_0000;
    w[15] = (64 + 20) * 8;
    sha1_block(*outer, w)
}

/// HMAC-SHA1 of four independent counters. The four dependency chains are
/// independent, so the CPU overlaps them: throughput, not latency.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn hmac_sha1_x4(inner: &[u32; 5], outer: &[u32; 5], c: [u64; 4]) -> [[u32; 5]; 4] {
    #[inline(always)]
    fn msg(c: u64) -> [u32; 16] {
        let mut w = [0u32; 16];
        w[0] = (c >> 32) as u32;
        w[1] = c as u32;
        w[2] = 0x8000_0000;
        w[15] = (64 + 8) * 8;
        w
    }
    #[inline(always)]
    fn msg2(h: [u32; 5]) -> [u32; 16] {
        let mut w = [0u32; 16];
        w[..5].copy_from_slice(&h);
        w[5] = 0x8000_0000;
        w[15] = (64 + 20) * 8;
        w
    }
    let i0 = sha1_block(*inner, msg(c[0]));
    let i1 = sha1_block(*inner, msg(c[1]));
    let i2 = sha1_block(*inner, msg(c[2]));
    let i3 = sha1_block(*inner, msg(c[3]));
    [
        sha1_block(*outer, msg2(i0)),
        sha1_block(*outer, msg2(i1)),
        sha1_block(*outer, msg2(i2)),
        sha1_block(*outer, msg2(i3)),
    ]
}

/// HMAC-SHA256 of four independent counters (see [`hmac_sha1_x4`]). The
/// four inner and then the four outer compressions run in lock-step
/// ([`sha256_block_x4`]): a single chain of `sha256rnds2` is latency-bound,
/// four independent chains keep the SHA unit busy.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn hmac_sha256_x4(
    inner: &[u32; 8],
    outer: &[u32; 8],
    counters: [u64; 4],
) -> [[u32; 8]; 4] {
    let ih = sha256_block_x4(*inner, counters.map(sha256_inner_msg));
    sha256_block_x4(*outer, ih.map(sha256_outer_msg))
}

/// Four SHA-256 compressions of the same state over four messages, round
/// by round in lock-step (the same result as four [`sha256_block`] calls).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_block_x4(s: [u32; 8], m: [[u32; 16]; 4]) -> [[u32; 8]; 4] {
    let abef0 = set(s[0], s[1], s[4], s[5]);
    let cdgh0 = set(s[2], s[3], s[6], s[7]);
    let mut abef = [abef0; 4];
    let mut cdgh = [cdgh0; 4];
    let mut w = m.map(|m| {
        [
            set(m[3], m[2], m[1], m[0]),
            set(m[7], m[6], m[5], m[4]),
            set(m[11], m[10], m[9], m[8]),
            set(m[15], m[14], m[13], m[12]),
        ]
    });
    for r in 0..16 {
        let i = r % 4;
        for j in 0..4 {
            if r >= 4 {
                sha256_schedule(&mut w[j], i);
            }
            sha256_rounds4(r, &mut abef[j], &mut cdgh[j], w[j][i]);
        }
    }
    std::array::from_fn(|j| {
        sha256_state(_mm_add_epi32(abef[j], abef0), _mm_add_epi32(cdgh[j], cdgh0))
    })
}

const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The next four message words in place of `w[i]` (the oldest of four).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn sha256_schedule(w: &mut [__m128i; 4], i: usize) {
    let t = _mm_add_epi32(
        _mm_sha256msg1_epu32(w[i], w[(i + 1) % 4]),
        _mm_alignr_epi8::<4>(w[(i + 3) % 4], w[(i + 2) % 4]),
    );
    w[i] = _mm_sha256msg2_epu32(t, w[(i + 3) % 4]);
}

/// The eight state words from the ABEF / CDGH registers.
#[inline]
#[target_feature(enable = "sse4.1")]
fn sha256_state(abef: __m128i, cdgh: __m128i) -> [u32; 8] {
    [
        lane::<3>(abef),
        lane::<2>(abef),
        lane::<3>(cdgh),
        lane::<2>(cdgh),
        lane::<1>(abef),
        lane::<0>(abef),
        lane::<1>(cdgh),
        lane::<0>(cdgh),
    ]
}

/// Four SHA-256 rounds with message words `w` (lane 0 = first word).
#[inline]
#[target_feature(enable = "sha,sse2")]
fn sha256_rounds4(r: usize, abef: &mut __m128i, cdgh: &mut __m128i, w: __m128i) {
    let k = set(
        K256[4 * r + 3],
        K256[4 * r + 2],
        K256[4 * r + 1],
        K256[4 * r],
    );
    let wk = _mm_add_epi32(w, k);
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32::<0x0E>(wk));
}

/// One SHA-256 block compression. The state lives as ABEF / CDGH (A in
/// lane 3); message vectors hold `W[i]` in lane 0.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_block(s: [u32; 8], m: [u32; 16]) -> [u32; 8] {
    let abef0 = set(s[0], s[1], s[4], s[5]);
    let cdgh0 = set(s[2], s[3], s[6], s[7]);
    let (mut abef, mut cdgh) = (abef0, cdgh0);
    let mut w = [
        set(m[3], m[2], m[1], m[0]),
        set(m[7], m[6], m[5], m[4]),
        set(m[11], m[10], m[9], m[8]),
        set(m[15], m[14], m[13], m[12]),
    ];
    for (r, wi) in w.iter().enumerate() {
        sha256_rounds4(r, &mut abef, &mut cdgh, *wi);
    }
    for r in 4..16 {
        let i = r % 4;
        sha256_schedule(&mut w, i);
        sha256_rounds4(r, &mut abef, &mut cdgh, w[i]);
    }
    sha256_state(_mm_add_epi32(abef, abef0), _mm_add_epi32(cdgh, cdgh0))
}

/// The inner block of HMAC-SHA256(counter): the counter, padding, length.
#[inline]
fn sha256_inner_msg(counter: u64) -> [u32; 16] {
    let mut m = [0u32; 16];
    m[0] = (counter >> 32) as u32;
    m[1] = counter as u32;
    m[2] = 0x8000_0000;
    m[15] = (64 + 8) * 8;
    m
}

/// The outer block of HMAC-SHA256: the inner hash, padding, length.
#[inline]
fn sha256_outer_msg(inner_hash: [u32; 8]) -> [u32; 16] {
    let mut m = [0u32; 16];
    m[..8].copy_from_slice(&inner_hash);
    m[8] = 0x8000_0000;
    m[15] = (64 + 32) * 8;
    m
}

/// HMAC-SHA256(counter) from the precomputed inner/outer states. One chain:
/// [`sha256_block`], not a one-lane [`sha256_block_x4`] — the lock-step loop
/// is not unrolled for a single lane and measured 1.5× slower.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn hmac_sha256(inner: &[u32; 8], outer: &[u32; 8], counter: u64) -> [u32; 8] {
    let ih = sha256_block(*inner, sha256_inner_msg(counter));
    sha256_block(*outer, sha256_outer_msg(ih))
}
