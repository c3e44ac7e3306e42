//! Calendar dates for the Unix times the protocol carries, without a time-zone database, and spans
//! of seconds in words.

/// A UTC calendar date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–59.
    pub second: u32,
}

/// The UTC date and time of `secs` since the Unix epoch (Howard Hinnant's days-to-civil algorithm).
pub fn civil(secs: i64) -> Civil {
    let (days, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Each value below is range-limited by the algorithm, so the narrowing casts cannot truncate.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let tod = tod as u32;
    Civil {
        year,
        month,
        day,
        hour: tod / 3600,
        minute: tod % 3600 / 60,
        second: tod % 60,
    }
}

/// A span of seconds in words, to the largest whole unit or two: "7 days", "1 day 6 hours",
/// "45 minutes". A span is rounded to the unit it is shown in, so a token that expires in 12
/// hours still reads "12 hours" a second after it was made, not "11 hours 59 minutes".
pub fn duration_words(secs: u64) -> String {
    let secs = match secs {
        s if s >= 86_400 => (s + 1_800) / 3_600 * 3_600,
        s if s >= 60 => (s + 30) / 60 * 60,
        s => s,
    };
    let unit = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => unit(secs, "second", "seconds"),
        (0, 0, m) => unit(m, "minute", "minutes"),
        (0, h, 0) => unit(h, "hour", "hours"),
        (0, h, m) => format!(
            "{} {}",
            unit(h, "hour", "hours"),
            unit(m, "minute", "minutes")
        ),
        (d, 0, _) => unit(d, "day", "days"),
        (d, h, _) => format!("{} {}", unit(d, "day", "days"), unit(h, "hour", "hours")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(duration_words(7 * 86_400), "7 days");
        assert_eq!(duration_words(86_400 + 6 * 3_600 + 59), "1 day 6 hours");
        assert_eq!(duration_words(45 * 60), "45 minutes");
        assert_eq!(duration_words(3_600), "1 hour");
        assert_eq!(duration_words(90 * 60), "1 hour 30 minutes");
        assert_eq!(duration_words(1), "1 second");
        assert_eq!(duration_words(12 * 3_600 - 1), "12 hours");
        assert_eq!(duration_words(7 * 86_400 - 1), "7 days");
        assert_eq!(duration_words(59 * 60 + 29), "59 minutes");
    }

    #[test]
    fn known_dates() {
        let c = civil(0);
        assert_eq!((c.year, c.month, c.day, c.hour), (1970, 1, 1, 0));
        let c = civil(951_782_400);
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
        let c = civil(1_795_541_809);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2026, 11, 24, 17, 36, 49)
        );
        let c = civil(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (1969, 12, 31, 23, 59, 59)
        );
    }
}
