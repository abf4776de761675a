//! The sync rule: which steps a code may belong to, and what an accepted
//! code teaches about the fob's clock. The reasoning is in
//! `docs/engine-rules.md`; in short:
//!
//! - A code of step `s` that reaches the engine at `t` was pressed at some
//!   `t_p` in `[t − D, t]` (`D` = max submit delay) and the fob's clock
//!   then read a time in step `s`. So the fob's offset (fob time − engine
//!   time) lies in the evidence `E(s, t) = [start(s) − t, start(s) + P − t + D)`.
//! - Per token the engine keeps `O = [lo, hi)`: the offsets consistent with
//!   every code accepted since the last enable or resync, anchored at the
//!   time of the last evidence. It widens by `g = min(ppm · elapsed, W · P)`
//!   on both sides (the crystal's drift, capped by the auth window).
//! - A code is accepted if some step `s` above the replay barrier (and not
//!   quarantined) shows it and `E(s, t)` meets the widened `O`; the new
//!   `O` is the widened `O` intersected with the evidence (the hull of the
//!   evidence of every step that shows the code). Enable and resync pin
//!   `O` to the evidence of the second code.
//!
//! Everything here is pure arithmetic on integers (ms, in `i128` so that
//! nothing overflows); the store writes the result with a compare-and-swap.

use fobsim_core::{Code, Timestamp, Totp};

use crate::profile::Profile;
use crate::store::{OffsetWindow, StepRange, SyncState};

/// A half-open interval of offsets in ms: `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub lo: i128,
    pub hi: i128,
}

impl Span {
    #[cfg(test)]
    fn meets(self, other: Span) -> bool {
        self.lo < other.hi && other.lo < self.hi && self.lo < self.hi && other.lo < other.hi
    }

    fn intersect(self, other: Span) -> Span {
        Span {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        }
    }

    fn hull(self, other: Span) -> Span {
        Span {
            lo: self.lo.min(other.lo),
            hi: self.hi.max(other.hi),
        }
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// The numbers of the rule for one token under one profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// Step length, ms.
    period_ms: i128,
    /// TOTP epoch, ms.
    t0_ms: i128,
    /// Max submit delay `D`, ms.
    delay_ms: i128,
    /// Drift bound, ppm.
    drift_ppm: i128,
    /// Widening cap `W · P`, ms.
    cap_ms: i128,
    /// Enable/resync search, ± steps.
    sync_window: u64,
}

impl Rule {
    pub(crate) fn new(profile: &Profile, totp: &Totp) -> Rule {
        let period_ms = i128::from(totp.period()) * 1000;
        Rule {
            period_ms,
            t0_ms: i128::from(totp.t0()) * 1000,
            delay_ms: i128::from(profile.max_submit_delay_ms),
            drift_ppm: i128::from(profile.drift_ppm),
            cap_ms: i128::from(profile.auth_window_steps) * period_ms,
            sync_window: profile.sync_window_steps,
        }
    }

    /// More candidate steps than any state the rule writes can yield: the
    /// learned offsets are at most two evidences wide (P + D each), widen
    /// by at most W·P a side, and meet one more evidence.
    fn max_candidates(&self) -> u64 {
        let steps = (4 * (self.period_ms + self.delay_ms) + 2 * self.cap_ms) / self.period_ms;
        u64::try_from(steps).unwrap_or(u64::MAX).saturating_add(8)
    }

    fn start_ms(&self, step: u64) -> i128 {
        self.t0_ms + i128::from(step) * self.period_ms
    }

    /// `E(s, t)`: the offsets consistent with a code of `step` reaching
    /// the engine at `now`.
    pub(crate) fn evidence(&self, step: u64, now: Timestamp) -> Span {
        let rel = self.start_ms(step) - i128::from(now.as_millis());
        Span {
            lo: rel,
            hi: rel + self.period_ms + self.delay_ms,
        }
    }

    /// How far `O` has widened on each side by `now`: the drift bound
    /// times the time since the last evidence (whole ms, rounded down),
    /// at most the cap; nothing if the clock went back.
    pub(crate) fn widening(&self, o: &OffsetWindow, now: Timestamp) -> i128 {
        let elapsed = i128::from(now.millis_since(o.anchored_at)).max(0);
        (elapsed * self.drift_ppm / 1_000_000).min(self.cap_ms)
    }

    /// `O` widened to `now`.
    pub(crate) fn widened(&self, o: &OffsetWindow, now: Timestamp) -> Span {
        let g = self.widening(o, now);
        Span {
            lo: i128::from(o.lo_ms) - g,
            hi: i128::from(o.hi_ms) + g,
        }
    }

    /// The steps whose evidence at `now` meets `w`, lowest and highest
    /// (`None` if none): `start(s) − t < w.hi` and
    /// `start(s) + P + D − t > w.lo`.
    pub(crate) fn candidates(&self, w: Span, now: Timestamp) -> Option<(u64, u64)> {
        if w.lo >= w.hi {
            return None;
        }
        let t = i128::from(now.as_millis()) - self.t0_ms;
        // s·P < t + w.hi  ⇔  s ≤ floor((t + w.hi − 1) / P)
        let top = (t + w.hi - 1).div_euclid(self.period_ms);
        // s·P > t + w.lo − P − D  ⇔  s ≥ floor((t + w.lo − P − D) / P) + 1
        let bottom = (t + w.lo - self.period_ms - self.delay_ms).div_euclid(self.period_ms) + 1;
        let bottom = bottom.max(0);
        // The pair search needs s + 1: keep one below u64::MAX.
        let top = top.min(i128::from(u64::MAX - 1));
        if top < bottom {
            return None;
        }
        Some((u64::try_from(bottom).ok()?, u64::try_from(top).ok()?))
    }

    /// The sign-in rule: accept `code` at `now` against `st`, returning
    /// the sync state it teaches, or `None` (refused).
    pub(crate) fn sign_in(
        &self,
        totp: &Totp,
        now: Timestamp,
        st: &SyncState,
        code: Code,
    ) -> Option<SyncState> {
        let w = self.widened(&st.offsets, now);
        let (first, last) = self.candidates(w, now)?;
        if last - first > self.max_candidates() {
            // Only a damaged store holds offsets this wide: refuse rather
            // than search without end.
            return None;
        }
        let first = match st.last_step {
            Some(l) if l >= last => return None,
            Some(l) => first.max(l + 1),
            None => first,
        };
        let mut barrier = None;
        let mut used = None;
        let mut taught: Option<Span> = None;
        for s in first..=last {
            if totp.code_for_step(s) != code {
                continue;
            }
            // Every step that shows the code goes under the barrier, so the
            // same code is never accepted twice (6-digit codes collide).
            barrier = Some(s);
            if st.quarantine.is_some_and(|q| q.contains(s)) {
                continue;
            }
            used.get_or_insert(s);
            let e = self.evidence(s, now).intersect(w);
            taught = Some(taught.map_or(e, |t| t.hull(e)));
        }
        let (used, barrier, taught) = (used?, barrier?, taught?);
        let new_run = st
            .last_step
            .is_none_or(|l| used > l.saturating_add(self.sync_window));
        Some(SyncState {
            offsets: OffsetWindow {
                lo_ms: clamp_i64(taught.lo),
                hi_ms: clamp_i64(taught.hi),
                anchored_at: now,
            },
            last_step: Some(barrier),
            run_start: if new_run { Some(used) } else { st.run_start },
            run_base: if new_run { st.last_step } else { st.run_base },
            quarantine: st.quarantine.filter(|q| q.last > barrier),
        })
    }

    /// The enable/resync rule: two consecutive codes `c1`, `c2` within the
    /// sync window around the current step, above the barrier and outside
    /// the quarantine. If the barrier is ahead of the current step by more
    /// than the sync window (only a server clock that stepped back after
    /// acceptances does that), the pair heals it: it must lie below the
    /// current run and above the run's base, and the run is quarantined.
    /// Returns the sync state the pair teaches, or `None` (not found).
    pub(crate) fn pair(
        &self,
        totp: &Totp,
        now: Timestamp,
        current: u64,
        st: &SyncState,
        c1: Code,
        c2: Code,
    ) -> Option<SyncState> {
        let clear = |s: u64| {
            st.quarantine
                .is_none_or(|q| !q.contains(s) && !q.contains(s + 1))
        };
        let ahead = st
            .last_step
            .is_some_and(|l| l > current.saturating_add(self.sync_window));
        let (s1, run_start, run_base, quarantine) = if ahead {
            let (Some(last), Some(run)) = (st.last_step, st.run_start) else {
                return None;
            };
            let floor = st.run_base.map_or(0, |b| b.saturating_add(1));
            let s1 = search_pair(totp, current, self.sync_window, c1, c2, |s| {
                s >= floor && s.saturating_add(1) < run && clear(s)
            })?;
            let used = StepRange { first: run, last };
            let q = st.quarantine.map_or(used, |q| q.hull(used));
            (s1, Some(s1), st.run_base, Some(q))
        } else {
            let floor = st.last_step.map_or(0, |l| l.saturating_add(1));
            let s1 = search_pair(totp, current, self.sync_window, c1, c2, |s| {
                s >= floor && clear(s)
            })?;
            let new_run = st
                .last_step
                .is_none_or(|l| s1 > l.saturating_add(self.sync_window));
            let (run_start, run_base) = if new_run || st.run_start.is_none() {
                (Some(s1), st.last_step)
            } else {
                (st.run_start, st.run_base)
            };
            (s1, run_start, run_base, st.quarantine)
        };
        let s2 = s1 + 1;
        let e = self.evidence(s2, now);
        Some(SyncState {
            offsets: OffsetWindow {
                lo_ms: clamp_i64(e.lo),
                hi_ms: clamp_i64(e.hi),
                anchored_at: now,
            },
            last_step: Some(s2),
            run_start,
            run_base,
            quarantine: quarantine.filter(|q| q.last > s2),
        })
    }
}

/// Find the step `s` nearest to `center` (ties: the lower) with
/// `|s - center| <= window`, `allowed(s)`, `code(s) == c1` and
/// `code(s + 1) == c2`. At most `2 * window + 1` codes plus one per hit,
/// searched outwards from the center, so a prompt enable or a small drift
/// is found after a handful of codes. (Splitting the two sides over two
/// threads was measured slower on this project's 2-vCPU machines: a
/// thread spawn costs more than half the search.)
pub(crate) fn search_pair(
    totp: &Totp,
    center: u64,
    window: u64,
    c1: Code,
    c2: Code,
    allowed: impl Fn(u64) -> bool,
) -> Option<u64> {
    let hit = |s: u64| {
        s < u64::MAX && allowed(s) && totp.code_for_step(s) == c1 && totp.code_for_step(s + 1) == c2
    };
    for d in 0..=window {
        if let Some(lo) = center.checked_sub(d)
            && hit(lo)
        {
            return Some(lo);
        }
        if d > 0
            && let Some(hi) = center.checked_add(d)
            && hit(hi)
        {
            return Some(hi);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn totp() -> Totp {
        Totp::new(
            fobsim_core::Algorithm::Sha1,
            b"12345678901234567890",
            6,
            30,
            0,
        )
        .unwrap()
    }

    fn rule() -> Rule {
        Rule::new(&Profile::for_tests(), &totp())
    }

    /// The rule written the slow, obvious way.
    fn brute(t: &Totp, center: u64, w: u64, min_first: u64, c1: Code, c2: Code) -> Option<u64> {
        (center.saturating_sub(w)..=center.saturating_add(w))
            .filter(|s| {
                *s >= min_first && t.code_for_step(*s) == c1 && t.code_for_step(s + 1) == c2
            })
            .min_by_key(|s| (s.abs_diff(center), *s))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn search_pair_is_the_nearest_hit(
            center in 1_000u64..10_000_000,
            w in prop_oneof![0u64..60, 0u64..1500],
            planted in -1600i64..1600,
            min_back in prop_oneof![Just(u64::MAX), 0u64..1600],
        ) {
            let t = totp();
            let s = center.saturating_add_signed(planted);
            let (c1, c2) = (t.code_for_step(s), t.code_for_step(s + 1));
            let min_first = center.saturating_sub(min_back.min(center));
            let min_first = if min_back == u64::MAX { 0 } else { min_first };
            prop_assert_eq!(
                search_pair(&t, center, w, c1, c2, |s| s >= min_first),
                brute(&t, center, w, min_first, c1, c2)
            );
        }

        /// The candidate range is exactly the steps whose evidence meets
        /// the widened window (checked against the definition).
        #[test]
        fn candidates_are_the_steps_whose_evidence_meets(
            now_ms in 0u64..10_000_000_000,
            lo in -400_000i64..400_000,
            width in 1i64..300_000,
            period in prop_oneof![Just(30u64), Just(60u64), 1u64..90],
            delay in 0u64..200_000,
        ) {
            let t = Totp::new(fobsim_core::Algorithm::Sha1, b"k", 6, period, 0).unwrap();
            let p = Profile { max_submit_delay_ms: delay, ..Profile::for_tests() };
            let r = Rule::new(&p, &t);
            let now = Timestamp::from_millis(now_ms);
            let w = Span { lo: i128::from(lo), hi: i128::from(lo + width) };
            let got = r.candidates(w, now);
            let centre = now_ms / 1000 / period;
            let span = 2 + (400_000 + 300_000 + delay) / 1000 / period;
            let want: Vec<u64> = (centre.saturating_sub(span)..=centre + span)
                .filter(|s| r.evidence(*s, now).meets(w))
                .collect();
            prop_assert_eq!(got, want.first().copied().zip(want.last().copied()));
            if let Some((a, b)) = got {
                prop_assert_eq!(want.len() as u64, b - a + 1);
            }
        }
    }

    #[test]
    fn evidence_of_a_code_is_one_step_plus_the_submit_delay_wide() {
        let r = rule();
        // Step 100 begins at 3000 s; submitted at 3010 s.
        let e = r.evidence(100, Timestamp::from_secs(3010));
        assert_eq!(
            e,
            Span {
                lo: -10_000,
                hi: 80_000
            }
        );
    }

    #[test]
    fn widening_follows_the_drift_bound_up_to_the_cap() {
        let r = rule();
        let o = OffsetWindow {
            lo_ms: 0,
            hi_ms: 90_000,
            anchored_at: Timestamp::from_secs(1_000),
        };
        let at = |ms: u64| Timestamp::from_millis(1_000_000 + ms);
        assert_eq!(r.widening(&o, at(49_999)), 0);
        assert_eq!(r.widening(&o, at(50_000)), 1);
        assert_eq!(r.widening(&o, at(120_001)), 2);
        assert_eq!(r.widening(&o, at(86_400_000)), 1_728);
        // 20 ppm reach one step (30 s) after 17.4 days; never more.
        assert_eq!(r.widening(&o, at(1_500_000_000)), 30_000);
        assert_eq!(r.widening(&o, at(100 * 365 * 86_400_000)), 30_000);
        // A clock that went back widens nothing.
        assert_eq!(r.widening(&o, Timestamp::from_secs(10)), 0);
    }

    /// Found by the harness's fleet simulation: two steps 60 s apart share
    /// a code. Both are candidates; the barrier goes to the higher one, so
    /// the code is not accepted a second time, and the offsets learned are
    /// the hull of what either step would teach.
    #[test]
    fn code_collision_among_the_candidates() {
        let secret = hex::decode("3985f28a45ef6cd16664d487dc24bf61ceb0afb1").unwrap();
        let t = Totp::new(fobsim_core::Algorithm::Sha1, &secret, 6, 30, 0).unwrap();
        let r = Rule::new(&Profile::for_tests(), &t);
        let start = 1_829_995_200 / 30; // 2027-12-28T12:00:00Z
        let lo = (start..start + 200)
            .find(|s| t.code_for_step(*s) == t.code_for_step(s + 2))
            .expect("the pinned collision");
        let code = t.code_for_step(lo);
        let now = Timestamp::from_secs((lo + 1) * 30);
        let st = SyncState {
            offsets: OffsetWindow {
                lo_ms: 0,
                hi_ms: 90_000,
                anchored_at: now,
            },
            last_step: Some(lo - 5),
            run_start: Some(lo - 6),
            ..SyncState::default()
        };
        let got = r.sign_in(&t, now, &st, code).unwrap();
        assert_eq!(got.last_step, Some(lo + 2));
        // Accepted at the higher step, nothing is left to replay.
        assert_eq!(r.sign_in(&t, now, &got, code), None);
    }

    #[test]
    fn quarantined_steps_are_never_accepted_but_raise_the_barrier() {
        let t = totp();
        let r = rule();
        let now = Timestamp::from_secs(3_000_000);
        let s = 100_000;
        let st = SyncState {
            offsets: OffsetWindow {
                lo_ms: 0,
                hi_ms: 90_000,
                anchored_at: now,
            },
            last_step: Some(s - 10),
            run_start: Some(s - 10),
            run_base: None,
            quarantine: Some(StepRange { first: s, last: s }),
        };
        assert_eq!(r.sign_in(&t, now, &st, t.code_for_step(s)), None);
        let next = r.sign_in(&t, now, &st, t.code_for_step(s + 1)).unwrap();
        assert_eq!(next.last_step, Some(s + 1));
        // Past the barrier the quarantine has done its work.
        assert_eq!(next.quarantine, None);
    }

    #[test]
    fn a_damaged_state_is_refused_not_searched_without_end() {
        let t = totp();
        let r = rule();
        let now = Timestamp::from_secs(3_000_000);
        let st = SyncState {
            offsets: OffsetWindow {
                lo_ms: i64::MIN,
                hi_ms: i64::MAX,
                anchored_at: now,
            },
            ..SyncState::default()
        };
        assert_eq!(r.sign_in(&t, now, &st, t.code_for_step(100_000)), None);
    }

    #[test]
    fn search_pair_edges() {
        let t = totp();
        let center = 5_000_000;
        let c1 = t.code_for_step(center - 1000);
        let c2 = t.code_for_step(center - 999);
        let any = |_| true;
        assert_eq!(
            search_pair(&t, center, 1000, c1, c2, any),
            Some(center - 1000)
        );
        assert_eq!(search_pair(&t, center, 999, c1, c2, any), None);
        assert_eq!(
            search_pair(&t, center, 1000, c1, c2, |s| s >= center - 999),
            None
        );
        // Near the start of time the lower side is clamped, not wrapped.
        let c1 = t.code_for_step(0);
        let c2 = t.code_for_step(1);
        assert_eq!(search_pair(&t, 3, 1000, c1, c2, any), Some(0));
    }
}
