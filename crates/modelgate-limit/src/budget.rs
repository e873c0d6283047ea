//! Spend windows (no I/O): the calendar month in UTC that a monthly budget
//! counts in, and the lifetime of a total budget's counter. Money is
//! integer micro-USD throughout (`modelgate_config::cost`).

/// Seconds a total budget's counter is kept after its last change (about a
/// century: in effect, never reset).
pub const TOTAL_TTL: u64 = 100 * 365 * 86_400;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian, UTC).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month) of a day count since 1970-01-01.
fn year_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// Start and end (unix seconds) of the UTC calendar month holding `now`.
pub fn month_bounds(now: u64) -> (u64, u64) {
    let days = i64::try_from(now / 86_400).unwrap_or(i64::MAX / 2);
    let (y, m) = year_month(days);
    let start = days_from_civil(y, m, 1);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = days_from_civil(ny, nm, 1);
    let secs = |d: i64| u64::try_from(d).unwrap_or(0) * 86_400;
    (secs(start), secs(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months_in_utc() {
        // 2026-12-01T05:49:04Z
        assert_eq!(month_bounds(1_796_104_144), (1_796_083_200, 1_798_761_600));
        // 2024-02-29T23:59:59Z: a leap February
        let (s, e) = month_bounds(1_709_251_199);
        assert_eq!((s, e), (1_706_745_600, 1_709_251_200));
        // the first second of March is March
        assert_eq!(month_bounds(1_709_251_200).0, 1_709_251_200);
        assert_eq!(month_bounds(0), (0, 31 * 86_400));
    }
}
