//! Group commit: the sign-in path's writes of concurrent requests
//! ([`Store::commit_success`](super::Store::commit_success) and
//! [`Store::record_failure`](super::Store::record_failure)) sent to the
//! database together, as **one statement**: one round trip, one
//! transaction and one WAL flush for the whole group instead of one each.
//!
//! # How a group forms (leader and followers)
//!
//! A caller queues its operation. If no group is in flight it becomes the
//! **leader**: it takes the queue (its own operation included), runs the
//! statement on one pooled connection and hands each caller its row's
//! result. Callers that arrive while a group is in flight wait (each on its
//! own slot); when the leader is done it makes the first of them the next
//! leader, which takes everything queued meanwhile. No thread of its own:
//! a lone request is its own group (one round trip, as before), and the
//! busier the store, the larger the groups.
//!
//! A new leader first **gathers**: when fewer operations are queued than
//! callers were recently in the store at once (those of the group just
//! answered are on their way back with their next request), it waits for
//! them, at most half of what a group's statement takes. Each group costs
//! one WAL flush whatever its size, and where a flush is slow (a few
//! hundred µs on the benchmark's virtual disk) a group of 8 every cycle
//! does more than two alternating groups of 4: with 8 clients this halved
//! the flushes per request (0.26 to 0.13) and cut CPU per request by a
//! tenth or more (docs/PERFORMANCE.md). A lone caller never waits.
//!
//! # Why each row keeps the atomicity of its single statement
//!
//! The group statement is an `UPDATE fobsim_tokens ... FROM unnest(...)`
//! (one for the accepted codes, one for the failures; a group holding
//! both kinds runs them as two data-modifying parts of one statement)
//! whose `WHERE` clause, per row of
//! the unnested arrays, is exactly the condition of the single statement it
//! replaces (`SQL_COMMIT_SUCCESS`, `SQL_RECORD_FAILURE` in the parent
//! module), and whose `SET` is exactly its effect:
//!
//! - **Distinct rows.** A group never holds two operations on the same
//!   serial (a second one waits for the next group), so each row of the
//!   group statement changes a different table row and the rows cannot see
//!   or overwrite each other. Operations on one serial therefore still run
//!   one after the other, as separate statements did.
//! - **Each row is a compare-and-swap under its row lock.** `UPDATE`
//!   locks each table row it changes; if another replica changed the row
//!   since the statement's snapshot, PostgreSQL (READ COMMITTED) waits for
//!   that transaction to end and re-evaluates this row's join and `WHERE`
//!   clause against the new row version (with the same unnested values),
//!   exactly as it does for a single-row `UPDATE`. So the replay barrier
//!   and learned offsets move only from the state the caller read
//!   (`IS NOT DISTINCT FROM` every sync column): the barrier only moves
//!   forward, and of two replicas accepting the same code exactly one row
//!   update applies. The failure counter is `failures + 1` of the locked
//!   row version: no increment is lost.
//! - **Per-row answers.** `RETURNING` names the ordinal of every row that
//!   applied (and the counter it left, for failures); a row that is not
//!   returned did not apply, which its caller learns exactly as it learned
//!   "0 rows" from the single statement (a concurrent write won: read
//!   again; or the token is not assigned to that owner).
//! - **All or nothing, then acknowledged.** The statement is one implicit
//!   transaction: no caller hears "applied" before the commit (with
//!   `synchronous_commit` on, before its WAL is flushed), and if the
//!   statement fails, none of its rows is in the database. A statement the
//!   server refused (an error it sent: a bad row, a deadlock with another
//!   replica's group, a serialisation failure; all rolled back) is then
//!   run again one operation at a time, so nobody else fails for one
//!   caller's row; the rows are sent in the order of their serials, so
//!   groups of several replicas lock shared rows in the same order and
//!   rarely deadlock. An unreachable server fails every caller of the
//!   group with [`StoreError::Busy`] (503: whether it committed is
//!   unknown, as for a single statement, and a retried sign-in code that
//!   did commit is refused as a replay, never accepted twice). An answer
//!   that cannot be read after the statement ran is an error for every
//!   caller of the group (the statement is never run twice).

use std::sync::{Arc, LazyLock};

use parking_lot::{Condvar, Mutex};
use postgres::types::ToSql;

use super::{
    PgConn, SQL_RECORD_FAILURE, SYNC_COLS, StoreError, col, sql_commit_success, store_err,
    sync_match_on, unavailable,
};

/// Most operations in one group (a few hundred bytes of parameters each).
const MAX_GROUP: usize = 64;

/// What runs one group: the queued operations with their callers' slots
/// in, one answer per operation out (in order).
pub(super) type RunGroup<'a> = dyn Fn(&[(Op, Arc<Slot>)]) -> Vec<Result<Done, StoreError>> + 'a;

/// One queued write of the sign-in path, its values as the single
/// statements bind them.
// A success carries two sync states inline: boxing them would allocate
// once more per request for an entry that lives a few microseconds.
#[allow(clippy::large_enum_variant)]
pub(super) enum Op {
    /// `SQL_COMMIT_SUCCESS`: set the sync state if it is still `seen`.
    Success {
        serial: String,
        owner: String,
        now: i64,
        seen: [Option<i64>; 8],
        new: [Option<i64>; 8],
    },
    /// `SQL_RECORD_FAILURE`: count a failure, lock at the threshold.
    Failure {
        serial: String,
        owner: String,
        threshold: i64,
        until: i64,
    },
}

impl Op {
    fn serial(&self) -> &str {
        match self {
            Op::Success { serial, .. } | Op::Failure { serial, .. } => serial,
        }
    }

    /// This operation alone, as the single statement (used when a group
    /// statement was refused).
    pub(super) fn run_alone(&self, c: &mut PgConn) -> Result<Done, StoreError> {
        match self {
            Op::Success {
                serial,
                owner,
                now,
                seen,
                new,
            } => {
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![serial, owner, now];
                params.extend(seen.iter().map(|v| v as &(dyn ToSql + Sync)));
                params.extend(new.iter().map(|v| v as &(dyn ToSql + Sync)));
                Ok(Done::Success(
                    c.execute(sql_commit_success(), &params)? == 1,
                ))
            }
            Op::Failure {
                serial,
                owner,
                threshold,
                until,
            } => Ok(Done::Failure(
                c.query_opt(SQL_RECORD_FAILURE, &[serial, owner, threshold, until])?
                    .map(|r| Ok::<_, StoreError>((col::<i64>(&r, 0)?, col::<Option<i64>>(&r, 1)?)))
                    .transpose()?,
            )),
        }
    }
}

/// What an operation's row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Done {
    /// The accepted code was recorded (`false`: the condition did not
    /// hold, nothing written).
    Success(bool),
    /// The failure was counted: the counter and lock it left; `None` when
    /// the token is not assigned to that owner (nothing written).
    Failure(Option<(i64, Option<i64>)>),
}

enum SlotState {
    Waiting,
    /// Lead the next group.
    Lead,
    Done(Result<Done, StoreError>),
}

/// Where one caller waits for its row's result.
pub(super) struct Slot {
    state: Mutex<SlotState>,
    cv: Condvar,
}

impl Slot {
    fn set(&self, s: SlotState) {
        *self.state.lock() = s;
        self.cv.notify_one();
    }
}

struct Queue {
    pending: Vec<(Op, Arc<Slot>)>,
    /// A leader is running a group (or about to: a follower was told to
    /// lead). While false, `pending` is empty.
    leading: bool,
    /// Callers inside [`Group::submit`]: queued or in the group in flight.
    inside: usize,
    /// The most callers inside at once while each of the last
    /// [`PEAKS`] groups ran (a ring), and during the current one.
    peaks: [usize; PEAKS],
    next_peak: usize,
    peak: usize,
    /// A gathering leader waits until this many operations are queued.
    gathering: Option<usize>,
    /// How long a group's statement took, µs (a moving average; 0 until
    /// one ran).
    run_us: u64,
}

/// How many recent groups the expected group size is taken from.
const PEAKS: usize = 8;

/// The longest a leader waits for its group to fill, µs.
const MAX_GATHER_US: u64 = 1_000;

/// The queue of a store's group commits.
pub(super) struct Group {
    queue: Mutex<Queue>,
    /// Wakes a gathering leader when its group is full.
    full: Condvar,
}

impl Group {
    pub(super) fn new() -> Group {
        Group {
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                leading: false,
                inside: 0,
                peaks: [0; PEAKS],
                next_peak: 0,
                peak: 0,
                gathering: None,
                run_us: 0,
            }),
            full: Condvar::new(),
        }
    }

    /// Run `op` in a group; `run` executes one group's statement on a
    /// connection it obtains (see [`run_group`]). Blocks until the group
    /// holding `op` has committed (or failed).
    pub(super) fn submit(&self, op: Op, run: &RunGroup<'_>) -> Result<Done, StoreError> {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::Waiting),
            cv: Condvar::new(),
        });
        let lead = {
            let mut q = self.queue.lock();
            q.pending.push((op, Arc::clone(&slot)));
            q.inside += 1;
            q.peak = q.peak.max(q.inside);
            if q.gathering.is_some_and(|n| q.pending.len() >= n) {
                self.full.notify_one();
            }
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead {
            let mut st = slot.state.lock();
            loop {
                match std::mem::replace(&mut *st, SlotState::Waiting) {
                    SlotState::Waiting => slot.cv.wait(&mut st),
                    SlotState::Lead => break,
                    SlotState::Done(r) => return r,
                }
            }
        }
        self.lead(&slot, run)
    }

    /// Lead one group (which holds `mine`), hand the lead on, answer
    /// every member; `mine`'s answer is returned.
    fn lead(&self, mine: &Arc<Slot>, run: &RunGroup<'_>) -> Result<Done, StoreError> {
        let group = self.take();
        /// If the group's run panics: its callers hear `Busy`, the lead
        /// passes on (nobody waits forever).
        struct Unwind<'a> {
            owner: &'a Group,
            group: Option<&'a [(Op, Arc<Slot>)]>,
        }
        impl Drop for Unwind<'_> {
            fn drop(&mut self) {
                if let Some(g) = self.group {
                    self.owner.pass_lead(g.len(), None);
                    for (_, s) in g {
                        s.set(SlotState::Done(Err(StoreError::Busy)));
                    }
                }
            }
        }
        let mut guard = Unwind {
            owner: self,
            group: Some(&group),
        };
        let started = std::time::Instant::now();
        let results = run(&group);
        let took = started.elapsed();
        guard.group = None;
        drop(guard);
        self.pass_lead(group.len(), Some(took));
        let mut own = Err(StoreError::Busy);
        let mut results = results.into_iter();
        for (_, slot) in &group {
            let r = results.next().unwrap_or(Err(StoreError::Busy));
            if Arc::ptr_eq(slot, mine) {
                own = r;
            } else {
                slot.set(SlotState::Done(r));
            }
        }
        own
    }

    /// The next group: queued operations in order, at most one per serial
    /// (a second one stays queued for the group after) and at most
    /// [`MAX_GROUP`].
    ///
    /// First the leader **gathers**: if fewer operations are queued than
    /// callers were recently inside at once (the most over the last
    /// [`PEAKS`] groups: those of the group just answered are on their way
    /// back), it waits for them, at most half a group's run time (and
    /// [`MAX_GATHER_US`]). Each group costs one WAL flush whatever its
    /// size, so when a flush is slow a fuller group is worth more than
    /// starting at once; a lone caller (a peak of 1) never waits, and a
    /// wait is never longer than half of what the group itself takes.
    fn take(&self) -> Vec<(Op, Arc<Slot>)> {
        let mut q = self.queue.lock();
        let expected = q.peaks.iter().copied().max().unwrap_or(0).min(MAX_GROUP);
        if q.pending.len() < expected && q.run_us > 0 {
            let wait = std::time::Duration::from_micros((q.run_us / 2).min(MAX_GATHER_US));
            let deadline = std::time::Instant::now() + wait;
            q.gathering = Some(expected);
            while q.pending.len() < expected {
                if self.full.wait_until(&mut q, deadline).timed_out() {
                    break;
                }
            }
            q.gathering = None;
        }
        if q.pending.len() <= 1 {
            return std::mem::take(&mut q.pending);
        }
        let mut group: Vec<(Op, Arc<Slot>)> = Vec::with_capacity(q.pending.len().min(MAX_GROUP));
        let mut rest = Vec::new();
        for (op, slot) in q.pending.drain(..) {
            if group.len() < MAX_GROUP && group.iter().all(|(o, _)| o.serial() != op.serial()) {
                group.push((op, slot));
            } else {
                rest.push((op, slot));
            }
        }
        q.pending = rest;
        group
    }

    /// A group of `members` is done (its statement took `took`; `None` if
    /// it panicked): the first queued caller leads the next one, or nobody
    /// leads while the queue is empty.
    fn pass_lead(&self, members: usize, took: Option<std::time::Duration>) {
        let mut q = self.queue.lock();
        let i = q.next_peak;
        q.peaks[i] = q.peak;
        q.next_peak = (i + 1) % PEAKS;
        q.inside = q.inside.saturating_sub(members);
        q.peak = q.inside;
        if let Some(t) = took {
            let us = u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
            q.run_us = if q.run_us == 0 {
                us
            } else {
                (q.run_us.saturating_mul(3).saturating_add(us)) / 4
            };
        }
        match q.pending.first() {
            Some((_, next)) => next.set(SlotState::Lead),
            None => q.leading = false,
        }
    }
}

/// The group statements: the accepted codes (parameters 1–19: serials,
/// owners, `now`, the 8 sync columns read, the 8 to write) and the
/// failures (serials, owners, thresholds, lock expiries), each an `UPDATE
/// ... FROM unnest(...) WITH ORDINALITY` whose per-row condition and effect
/// are those of the single statement (see the module documentation). Rows
/// come back as `(0, ordinal)` for each accepted code recorded and `(1,
/// ordinal, failures, locked_until)` for each failure counted.
///
/// A group holding one kind only runs the statement of that kind (a
/// group of accepted codes, the common case, does not plan, open and
/// run an empty failure update); a mixed group runs both as two
/// data-modifying parts of one statement (failures are then parameters
/// 20–23).
struct GroupSql {
    successes: String,
    failures: String,
    both: String,
}

static SQL_GROUP: LazyLock<GroupSql> = LazyLock::new(|| {
    let seen_cols: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let new_cols: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let arrays = |from: usize, n: usize| -> String {
        (from..from + n)
            .map(|i| format!("${i}::BIGINT[]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let set = SYNC_COLS
        .iter()
        .zip(&new_cols)
        .map(|(c, n)| format!("{c} = v.{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let success = |returning: &str| {
        format!(
            "UPDATE fobsim_tokens t SET {set}, failures = 0 \
             FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], {seen}, {new}) \
             WITH ORDINALITY AS v(serial, owner, now, {seen_cols}, {new_cols}, i) \
             WHERE t.serial = v.serial AND t.owner = v.owner AND {matches} \
             AND (t.locked_until IS NULL OR t.locked_until <= v.now) RETURNING {returning}",
            seen = arrays(4, 8),
            new = arrays(12, 8),
            seen_cols = seen_cols.join(", "),
            new_cols = new_cols.join(", "),
            matches = sync_match_on("t", "v.s"),
        )
    };
    let failure = |first: usize, returning: &str| {
        format!(
            "UPDATE fobsim_tokens t SET \
             failures = CASE WHEN v.threshold > 0 AND t.failures + 1 >= v.threshold THEN 0 \
             ELSE t.failures + 1 END, \
             locked_until = CASE WHEN v.threshold > 0 AND t.failures + 1 >= v.threshold \
             THEN v.until ELSE t.locked_until END \
             FROM unnest(${}::TEXT[], ${}::TEXT[], ${}::BIGINT[], ${}::BIGINT[]) \
             WITH ORDINALITY AS v(serial, owner, threshold, until, i) \
             WHERE t.serial = v.serial AND t.owner = v.owner RETURNING {returning}",
            first,
            first + 1,
            first + 2,
            first + 3,
        )
    };
    GroupSql {
        successes: success("0::INTEGER, v.i, NULL::BIGINT, NULL::BIGINT"),
        failures: failure(1, "1::INTEGER, v.i, t.failures, t.locked_until"),
        both: format!(
            "WITH s AS ({}), f AS ({}) \
             SELECT 0::INTEGER, i, NULL::BIGINT, NULL::BIGINT FROM s \
             UNION ALL SELECT 1::INTEGER, i, failures, locked_until FROM f",
            success("v.i"),
            failure(20, "v.i, t.failures, t.locked_until"),
        ),
    }
});

/// Run one group on `c`: one statement. If the server refused it (the
/// statement rolled back: nothing of it is in the database), each
/// operation alone, so one caller's bad row or a deadlock with another
/// replica's group fails nobody else. If the server could not be reached
/// (whether it committed is unknown), every caller hears
/// [`StoreError::Busy`]; an answer that cannot be read after the statement
/// ran is an error for every caller too, never a second run. One result
/// per operation, in order.
pub(super) fn run_group(
    c: &mut PgConn,
    group: &[(Op, Arc<Slot>)],
) -> Vec<Result<Done, StoreError>> {
    match run_statement(c, group) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => group.iter().map(|_| Err(e.again())).collect(),
        Err(e) if refused(&e) => group.iter().map(|(op, _)| op.run_alone(c)).collect(),
        Err(e) => {
            let e = store_err(e);
            group.iter().map(|_| Err(e.again())).collect()
        }
    }
}

/// Whether the server refused a statement (and rolled it back) rather
/// than failing to answer: an error it sent (a SQLSTATE) other than those
/// of a connection that ends, shuts down or runs out of resources.
/// Deadlocks and serialisation failures (class 40) are refusals: the
/// statement was rolled back, and its operations are run again alone.
fn refused(e: &postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("40") || !unavailable(e))
}

impl StoreError {
    /// The same error for another caller of a group (the source of a
    /// server's refusal is not `Clone`: its message).
    fn again(&self) -> StoreError {
        match self {
            StoreError::Busy => StoreError::Busy,
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            other => StoreError::Corrupt(format!("group commit: {other}")),
        }
    }
}

/// The group statement's answer (outer error: the statement's own; inner:
/// its answer could not be read).
type Answer = Result<Result<Vec<Result<Done, StoreError>>, StoreError>, postgres::Error>;

fn run_statement(c: &mut PgConn, group: &[(Op, Arc<Slot>)]) -> Answer {
    if group.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    // Rows in the order of their serials: concurrent groups of other
    // replicas lock the rows they share in the same order (fewer
    // deadlocks; one that happens anyway is a refusal, see `run_group`).
    let mut order: Vec<usize> = (0..group.len()).collect();
    order.sort_unstable_by(|&a, &b| group[a].0.serial().cmp(group[b].0.serial()));
    // Where each operation sits in its kind's arrays (ordinals from 1).
    let mut at = vec![(0u8, 0usize); group.len()];
    let (mut s_serial, mut s_owner, mut s_now) = (Vec::new(), Vec::new(), Vec::new());
    let mut s_seen: [Vec<Option<i64>>; 8] = Default::default();
    let mut s_new: [Vec<Option<i64>>; 8] = Default::default();
    let (mut f_serial, mut f_owner, mut f_threshold, mut f_until) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for idx in order {
        match &group[idx].0 {
            Op::Success {
                serial,
                owner,
                now,
                seen,
                new,
            } => {
                s_serial.push(serial.as_str());
                s_owner.push(owner.as_str());
                s_now.push(*now);
                for (a, v) in s_seen.iter_mut().zip(seen) {
                    a.push(*v);
                }
                for (a, v) in s_new.iter_mut().zip(new) {
                    a.push(*v);
                }
                at[idx] = (0, s_serial.len());
            }
            Op::Failure {
                serial,
                owner,
                threshold,
                until,
            } => {
                f_serial.push(serial.as_str());
                f_owner.push(owner.as_str());
                f_threshold.push(*threshold);
                f_until.push(*until);
                at[idx] = (1, f_serial.len());
            }
        }
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(23);
    if !s_serial.is_empty() {
        params.extend([&s_serial as &(dyn ToSql + Sync), &s_owner, &s_now]);
        params.extend(s_seen.iter().map(|v| v as &(dyn ToSql + Sync)));
        params.extend(s_new.iter().map(|v| v as &(dyn ToSql + Sync)));
    }
    if !f_serial.is_empty() {
        params.extend([
            &f_serial as &(dyn ToSql + Sync),
            &f_owner,
            &f_threshold,
            &f_until,
        ]);
    }
    let sql = match (s_serial.is_empty(), f_serial.is_empty()) {
        (false, true) => &SQL_GROUP.successes,
        (true, false) => &SQL_GROUP.failures,
        _ => &SQL_GROUP.both,
    };
    let stmt = match c.stmt(sql.as_str()) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let rows = c.client.query(&stmt, &params)?;
    Ok(answers(&rows, &at, s_serial.len(), f_serial.len()))
}

/// Each operation's result from the group statement's rows.
fn answers(
    rows: &[postgres::Row],
    at: &[(u8, usize)],
    successes: usize,
    failures: usize,
) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
    // Rows not returned did not apply.
    let mut success = vec![false; successes];
    let mut failure: Vec<Option<(i64, Option<i64>)>> = vec![None; failures];
    for r in rows {
        let kind: i32 = col(r, 0)?;
        let i = usize::try_from(col::<i64>(r, 1)? - 1)
            .map_err(|_| StoreError::Corrupt("group ordinal out of range".into()))?;
        let bad = || StoreError::Corrupt(format!("group ordinal {i} of kind {kind}"));
        match kind {
            0 => *success.get_mut(i).ok_or_else(bad)? = true,
            _ => *failure.get_mut(i).ok_or_else(bad)? = Some((col(r, 2)?, col(r, 3)?)),
        }
    }
    Ok(at
        .iter()
        .map(|&(kind, i)| {
            let j = i.checked_sub(1);
            let done = if kind == 0 {
                j.and_then(|j| success.get(j)).copied().map(Done::Success)
            } else {
                j.and_then(|j| failure.get(j)).copied().map(Done::Failure)
            };
            done.ok_or_else(|| StoreError::Corrupt(format!("group ordinal {i} of kind {kind}")))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::{PgOptions, PgStore};
    use super::*;

    /// A failure on `serial` whose `threshold` names its caller (the fake
    /// run answers it back).
    fn op(serial: &str, caller: i64) -> Op {
        Op::Failure {
            serial: serial.into(),
            owner: "o".into(),
            threshold: caller,
            until: 0,
        }
    }

    fn caller_of(op: &Op) -> i64 {
        match op {
            Op::Failure { threshold, .. } => *threshold,
            Op::Success { .. } => panic!("only failures here"),
        }
    }

    /// Waits until `n` operations are queued behind the running group.
    fn wait_queued(g: &Group, n: usize) {
        while g.queue.lock().pending.len() < n {
            std::thread::yield_now();
        }
    }

    /// The sync columns of `serial`, as a success's `seen` binds them.
    fn sync_of(c: &mut PgConn, serial: &str) -> [Option<i64>; 8] {
        let sql = format!(
            "SELECT {} FROM fobsim_tokens WHERE serial = $1",
            SYNC_COLS.join(", ")
        );
        let row = c.client.query_one(sql.as_str(), &[&serial]).unwrap();
        std::array::from_fn(|i| row.get(i))
    }

    fn success(serial: &str, owner: &str, seen: [Option<i64>; 8], last_step: i64) -> Op {
        let mut new = seen;
        new[3] = Some(last_step);
        Op::Success {
            serial: serial.into(),
            owner: owner.into(),
            now: 1,
            seen,
            new,
        }
    }

    fn failure(serial: &str, owner: &str) -> Op {
        Op::Failure {
            serial: serial.into(),
            owner: owner.into(),
            threshold: 3,
            until: 99,
        }
    }

    fn members(ops: Vec<Op>) -> Vec<(Op, Arc<Slot>)> {
        ops.into_iter()
            .map(|op| {
                let slot = Arc::new(Slot {
                    state: Mutex::new(SlotState::Waiting),
                    cv: Condvar::new(),
                });
                (op, slot)
            })
            .collect()
    }

    /// The three statements (accepted codes only, failures only, both) on
    /// a real server: each row applies exactly when its single statement
    /// would (the state read, the owner), failures count and lock at the
    /// threshold, and every caller hears its own row's answer.
    #[test]
    fn each_kind_of_group_statement_applies_exactly_its_rows() {
        let url = crate::testing::postgres::shared()
            .unwrap_or_else(|e| panic!("{e}"))
            .fresh_schema_url()
            .unwrap_or_else(|e| panic!("{e}"));
        let store = PgStore::open(
            &url,
            &crate::KeySource::Bytes(crate::testing::TEST_KEY),
            PgOptions::default(),
        )
        .unwrap();
        let mut c = store.conn().unwrap();
        for (serial, owner) in [("A", "alice"), ("B", "bob"), ("C", "carol")] {
            c.client
                .execute(
                    "INSERT INTO fobsim_tokens (serial, algorithm, digits, period, t0, secret, owner, enable_date) \
                     VALUES ($1, 'SHA1', 6, 30, 0, '\\x00', $2, 0)",
                    &[&serial, &owner],
                )
                .unwrap();
        }
        let a0 = sync_of(&mut c, "A");

        // Accepted codes only: A applies; A's stale twice can't be in the
        // same group, so B with a state it never had does not, nor C
        // under another owner.
        let b0 = sync_of(&mut c, "B");
        let c0 = sync_of(&mut c, "C");
        let mut stale = b0;
        stale[0] = Some(12_345);
        let r = run_group(
            &mut c,
            &members(vec![
                success("C", "mallory", c0, 7),
                success("A", "alice", a0, 5),
                success("B", "bob", stale, 5),
            ]),
        );
        assert_eq!(
            r.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [
                Done::Success(false),
                Done::Success(true),
                Done::Success(false)
            ]
        );
        assert_eq!(sync_of(&mut c, "A")[3], Some(5));
        assert_eq!(sync_of(&mut c, "B"), b0);

        // Failures only: counted, at the threshold the counter resets and
        // the lock is set; another owner's row is not touched.
        for expect in [(1, None), (2, None), (0, Some(99))] {
            let r = run_group(
                &mut c,
                &members(vec![failure("B", "bob"), failure("C", "mallory")]),
            );
            assert_eq!(
                r.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
                [Done::Failure(Some(expect)), Done::Failure(None)]
            );
        }

        // Both kinds in one statement: A moves on from the state it now
        // has (the one read before is a replay's and does not apply in a
        // later group), C counts a failure.
        let a1 = sync_of(&mut c, "A");
        let r = run_group(
            &mut c,
            &members(vec![failure("C", "carol"), success("A", "alice", a1, 6)]),
        );
        assert_eq!(
            r.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [Done::Failure(Some((1, None))), Done::Success(true)]
        );
        let r = run_group(&mut c, &members(vec![success("A", "alice", a0, 9)]));
        assert_eq!(
            r.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [Done::Success(false)]
        );
        assert_eq!(sync_of(&mut c, "A")[3], Some(6));
        let (failures, locked): (i64, Option<i64>) = {
            let row = c
                .client
                .query_one(
                    "SELECT failures, locked_until FROM fobsim_tokens WHERE serial = 'B'",
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!((failures, locked), (0, Some(99)));
    }

    /// 24 callers on 3 serials: the first runs alone and holds its group
    /// until the 23 others are queued, so they form the next groups. No
    /// group holds a serial twice (same-serial operations run one group
    /// after the other, as if serialised), every caller hears its own
    /// row's answer, and every operation runs exactly once.
    #[test]
    fn groups_hold_each_serial_once_and_answer_each_caller() {
        let g = Group::new();
        let groups: Mutex<Vec<Vec<(String, i64)>>> = Mutex::new(Vec::new());
        let first = AtomicUsize::new(0);
        let run = |members: &[(Op, Arc<Slot>)]| -> Vec<Result<Done, StoreError>> {
            if first.fetch_add(1, Ordering::SeqCst) == 0 {
                wait_queued(&g, 23);
            }
            groups.lock().push(
                members
                    .iter()
                    .map(|(o, _)| (o.serial().to_string(), caller_of(o)))
                    .collect(),
            );
            members
                .iter()
                .map(|(o, _)| Ok(Done::Failure(Some((caller_of(o), None)))))
                .collect()
        };
        std::thread::scope(|s| {
            let lead = s.spawn(|| g.submit(op("s0", 0), &run).unwrap());
            while first.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let hs: Vec<_> = (1..24i64)
                .map(|i| {
                    let (g, run) = (&g, &run);
                    s.spawn(move || (i, g.submit(op(&format!("s{}", i % 3), i), run).unwrap()))
                })
                .collect();
            assert_eq!(lead.join().unwrap(), Done::Failure(Some((0, None))));
            for h in hs {
                let (i, done) = h.join().unwrap();
                assert_eq!(done, Done::Failure(Some((i, None))), "caller {i}");
            }
        });
        let groups = groups.into_inner();
        let mut all: Vec<i64> = groups.iter().flatten().map(|(_, c)| *c).collect();
        all.sort_unstable();
        assert_eq!(all, (0..24).collect::<Vec<_>>());
        for grp in &groups {
            let mut serials: Vec<&str> = grp.iter().map(|(s, _)| s.as_str()).collect();
            serials.sort_unstable();
            serials.dedup();
            assert_eq!(serials.len(), grp.len(), "a serial twice in {grp:?}");
        }
        // The 23 queued behind the first: 3 serials, so groups of 3 (8 of
        // each serial: at least 8 groups after the first).
        assert_eq!(groups[0].len(), 1);
        assert_eq!(groups[1].len(), 3, "{groups:?}");
        assert!(groups.len() >= 9, "{groups:?}");
        assert!(!g.queue.lock().leading);
    }

    /// A group whose run panics: its callers hear `Busy` (503), the lead
    /// passes on, and the next caller is served.
    #[test]
    fn a_panicking_group_answers_busy_and_the_next_is_served() {
        let g = Group::new();
        let boom = |_: &[(Op, Arc<Slot>)]| -> Vec<Result<Done, StoreError>> { panic!("boom") };
        let ok = |m: &[(Op, Arc<Slot>)]| -> Vec<Result<Done, StoreError>> {
            m.iter().map(|_| Ok(Done::Success(true))).collect()
        };
        let r = std::thread::scope(|s| s.spawn(|| g.submit(op("a", 1), &boom)).join());
        assert!(r.is_err(), "the leader's panic goes on up");
        assert!(!g.queue.lock().leading);
        assert!(g.queue.lock().pending.is_empty());
        assert_eq!(g.submit(op("a", 2), &ok).unwrap(), Done::Success(true));
    }

    /// A follower whose group panics in its leader hears `Busy`.
    #[test]
    fn followers_of_a_panicking_group_hear_busy() {
        let g = Group::new();
        let calls = AtomicUsize::new(0);
        let run = |m: &[(Op, Arc<Slot>)]| -> Vec<Result<Done, StoreError>> {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => {
                    wait_queued(&g, 2);
                    m.iter().map(|_| Ok(Done::Success(true))).collect()
                }
                _ => panic!("boom"),
            }
        };
        std::thread::scope(|s| {
            let lead = s.spawn(|| g.submit(op("a", 0), &run));
            while calls.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let b = s.spawn(|| g.submit(op("b", 1), &run));
            let c = s.spawn(|| g.submit(op("c", 2), &run));
            assert_eq!(lead.join().unwrap().unwrap(), Done::Success(true));
            // One of b, c leads the second group and panics; the other
            // hears Busy.
            let (rb, rc) = (b.join(), c.join());
            let (panicked, other) = match (rb, rc) {
                (Err(_), Ok(o)) | (Ok(o), Err(_)) => (1, o),
                _ => panic!("exactly one of the second group leads it"),
            };
            assert_eq!(panicked, 1);
            assert!(matches!(other, Err(StoreError::Busy)), "{other:?}");
        });
        assert!(!g.queue.lock().leading);
    }
}
