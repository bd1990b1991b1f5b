//! The one date format people see, in notifications, replies, errors and reports:
//! `2026-12-06 02:13:09 UTC` (on jiff; mail headers keep RFC 5322 dates).

/// A Unix time as a UTC date and time: `2026-12-06 02:13:09 UTC`.
pub fn utc_date(unix: u64) -> String {
    match timestamp(unix) {
        Some(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("Unix time {unix}"),
    }
}

/// A Unix time as a UTC calendar day: `2026-12-06`.
pub fn utc_day(unix: u64) -> String {
    match timestamp(unix) {
        Some(ts) => ts.strftime("%Y-%m-%d").to_string(),
        None => format!("Unix time {unix}"),
    }
}

fn timestamp(unix: u64) -> Option<jiff::Timestamp> {
    i64::try_from(unix)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_readable_and_leap_days_right() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(1_767_225_600), "2026-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400 + 3_661), "2000-02-29 01:01:01 UTC");
        assert_eq!(utc_day(951_782_400 + 86_399), "2000-02-29");
    }

    #[test]
    fn out_of_range_says_so() {
        assert_eq!(utc_date(u64::MAX), format!("Unix time {}", u64::MAX));
    }
}
