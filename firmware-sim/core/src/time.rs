//! True time as a value. Nothing in fobsim's cores reads the system clock:
//! every call takes a [`Timestamp`]. The harness owns a [`SimClock`]; only
//! the CLI's real-time mode reads the system clock, at the edge.

use std::fmt;
use std::str::FromStr;

/// Milliseconds since the Unix epoch (UTC). 64-bit: good past year 2603.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

/// Errors from parsing times and durations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// A duration such as `30s`, `-4m`, `2y` could not be read.
    #[error(
        "bad duration {0:?}: expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or -4m"
    )]
    Duration(String),
    /// A timestamp such as `2026-01-01T00:00:00Z` or `@1111111109` could not be read.
    #[error("bad time {0:?}: expected RFC 3339 UTC (2026-01-01T00:00:00Z) or @UNIX_SECONDS")]
    Timestamp(String),
    /// Arithmetic left the representable range.
    #[error("time out of range")]
    Range,
}

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From whole seconds since the epoch.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// From milliseconds since the epoch.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Whole seconds since the epoch (floor).
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Add a signed number of milliseconds, saturating at the ends of the range.
    #[must_use]
    pub fn add_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add_signed(ms))
    }

    /// Add a signed number of milliseconds.
    ///
    /// # Errors
    /// [`TimeError::Range`] if the result is before the epoch or past `u64::MAX` ms.
    pub fn checked_add_millis(self, ms: i64) -> Result<Self, TimeError> {
        self.0
            .checked_add_signed(ms)
            .map(Timestamp)
            .ok_or(TimeError::Range)
    }

    /// `self - earlier` in milliseconds (negative if `earlier` is later).
    #[must_use]
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        (i128::from(self.0) - i128::from(earlier.0))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01 (`days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Timestamp {
    /// RFC 3339 UTC with milliseconds: `2005-03-18T01:58:29.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = (self.0 / 1000) as i64;
        let ms = self.0 % 1000;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    /// `@SECONDS` (as faketime and oathtool write it), or RFC 3339 UTC
    /// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (a space may replace the `T`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimeError::Timestamp(s.chars().take(64).collect());
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('@') {
            let secs: u64 = rest.parse().map_err(|_| bad())?;
            return secs.checked_mul(1000).map(Timestamp).ok_or_else(bad);
        }
        let b = s.as_bytes();
        if b.len() < 20
            || !s.ends_with('Z')
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, TimeError> {
            let t = s.get(r).ok_or_else(bad)?;
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let (y, mo, d, h, mi, se) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        let ms = match &s[19..s.len() - 1] {
            "" => 0,
            frac if frac.starts_with('.') && (2..=4).contains(&frac.len()) => {
                let digits = &frac[1..];
                if !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                let v: u64 = digits.parse().map_err(|_| bad())?;
                v * 10u64.pow(3 - digits.len() as u32)
            }
            _ => return Err(bad()),
        };
        if !(1..=12).contains(&mo) || d == 0 || d > 31 || h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        let days = days_from_civil(i64::from(y), mo, d);
        if civil_from_days(days) != (i64::from(y), mo, d) || days < 0 {
            return Err(bad());
        }
        let secs = days as u64 * 86_400 + u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(se);
        Ok(Timestamp(secs * 1000 + ms))
    }
}

/// Milliseconds in one unit of a duration literal. A year is 365.25 days.
fn unit_millis(unit: &str) -> Option<f64> {
    Some(match unit {
        "ms" => 1.0,
        "s" | "sec" | "secs" => 1_000.0,
        "m" | "min" | "mins" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        "w" | "week" | "weeks" => 604_800_000.0,
        "y" | "year" | "years" => 31_557_600_000.0,
        _ => return None,
    })
}

/// Parse a signed duration into milliseconds: `30s`, `-4m`, `1.5h`, `2y`,
/// `1m30s`. A bare number is seconds.
///
/// # Errors
/// [`TimeError::Duration`] for anything else.
pub fn parse_duration_ms(s: &str) -> Result<i64, TimeError> {
    let bad = || TimeError::Duration(s.chars().take(64).collect());
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if body.is_empty() {
        return Err(bad());
    }
    if body.bytes().all(|c| c.is_ascii_digit()) {
        let v: i64 = body.parse().map_err(|_| bad())?;
        let ms = v.checked_mul(1000).ok_or_else(bad)?;
        return Ok(if neg { -ms } else { ms });
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        let after = &rest[n_end..];
        let u_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let unit = unit_millis(&after[..u_end]).ok_or_else(bad)?;
        total += n * unit;
        rest = &after[u_end..];
    }
    if !total.is_finite() || total > 9.0e18 {
        return Err(bad());
    }
    let ms = total.round() as i64;
    Ok(if neg { -ms } else { ms })
}

/// Format milliseconds the way [`parse_duration_ms`] reads them, compactly:
/// `30s`, `-4m`, `1h2m3.5s`.
#[must_use]
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    let mut rest = ms.unsigned_abs();
    for (unit, size) in [("d", 86_400_000u64), ("h", 3_600_000), ("m", 60_000)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if rest > 0 {
        if rest.is_multiple_of(1000) {
            out.push_str(&format!("{}s", rest / 1000));
        } else if rest < 1000 {
            out.push_str(&format!("{rest}ms"));
        } else {
            let s = format!("{}.{:03}", rest / 1000, rest % 1000);
            out.push_str(s.trim_end_matches('0'));
            out.push('s');
        }
    }
    out
}

/// Where true time comes from. The one clock trait of the workspace:
/// cores never call it (they take `now`); the shells that own time do — the
/// harness's [`SimClock`], and the system or manual clocks of `fobsim
/// serve`/`emulate` (`fobsim-clock`).
pub trait Clock: Send + Sync {
    /// True time now.
    fn now(&self) -> Timestamp;
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        SimClock::now(self)
    }
}

/// A clock that moves only when told to: the harness's true time, and the
/// clock a test hands to a server it drives (share it in an `Arc`: the
/// server reads it, the test moves it).
#[derive(Debug, Default)]
pub struct SimClock {
    now_ms: std::sync::atomic::AtomicU64,
}

impl Clone for SimClock {
    fn clone(&self) -> Self {
        SimClock::new(self.now())
    }
}

impl SimClock {
    /// A clock reading `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        SimClock {
            now_ms: std::sync::atomic::AtomicU64::new(start.as_millis()),
        }
    }

    /// The current true time.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now_ms.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Move by a signed number of milliseconds (saturating).
    pub fn advance_millis(&self, ms: i64) -> Timestamp {
        let t = self.now().add_millis(ms);
        self.set(t);
        t
    }

    /// Jump to `t` (backwards too: true time may be set, as NTP does).
    pub fn set(&self, t: Timestamp) {
        self.now_ms
            .store(t.as_millis(), std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        for (secs, text) in [
            (59u64, "1970-01-01T00:00:59.000Z"),
            (1_111_111_109, "2005-03-18T01:58:29.000Z"),
            (20_000_000_000, "2603-10-11T11:33:20.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
        ] {
            let t = Timestamp::from_secs(secs);
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<Timestamp>().unwrap(), t);
        }
        assert_eq!(
            "2005-03-18T01:58:29Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_secs(),
            1_111_111_109
        );
        assert_eq!(
            "@59".parse::<Timestamp>().unwrap(),
            Timestamp::from_secs(59)
        );
        assert_eq!(
            "2005-03-18T01:58:29.5Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_millis()
                % 1000,
            500
        );
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            "",
            "2005-02-30T00:00:00Z",
            "2005-03-18T01:58:29",
            "@x",
            "2005-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2005-03-18T01:58:29.1234Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30s").unwrap(), 30_000);
        assert_eq!(parse_duration_ms("-4m").unwrap(), -240_000);
        assert_eq!(parse_duration_ms("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("1.5h").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert_eq!(parse_duration_ms("1y").unwrap(), 31_557_600_000);
        for bad in ["", "-", "s", "3x", "1..2s", "m5", "99999999999999999999y"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        for ms in [0, 1, 999, 1000, 30_000, -240_000, 90_500, 86_400_000 + 1000] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)).unwrap(), ms);
        }
    }

    #[test]
    fn sim_clock_moves_only_when_told() {
        let c = SimClock::new(Timestamp::from_secs(100));
        assert_eq!(c.now(), Timestamp::from_secs(100));
        c.advance_millis(30_000);
        assert_eq!(c.now(), Timestamp::from_secs(130));
        c.advance_millis(-1_000_000);
        assert_eq!(c.now(), Timestamp::EPOCH);
    }
}
