//! UTC timestamps in gunicorn's two formats, computed from the system clock without a date
//! crate: `2026-11-22 03:07:04 +0000` for the error log and `22/Nov/2026:03:07:04 +0000` for the
//! access log. Logs are always in UTC, as containers usually are; the offset is printed so the
//! lines stay unambiguous.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    /// Full year.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=60.
    pub second: u32,
    /// Milliseconds within the second.
    pub millis: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Utc {
    /// The current time.
    pub fn now() -> Utc {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Utc::from_unix(since.as_secs() as i64, since.subsec_millis())
    }

    /// Converts seconds since the Unix epoch (days-to-civil, after H. Hinnant).
    pub fn from_unix(secs: i64, millis: u32) -> Utc {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            millis,
        }
    }

    /// `2026-11-22 03:07:04 +0000`, the error log's format.
    pub fn write_error_log(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
    }

    /// `22/Nov/2026:03:07:04 +0000`, the access log's (Apache common log) format.
    pub fn write_access_log(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            self.day,
            MONTHS[(self.month - 1) as usize],
            self.year,
            self.hour,
            self.minute,
            self.second
        );
    }

    /// `2026-11-22T03:07:04.123Z`, for JSON lines.
    pub fn write_rfc3339(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_known_instants() {
        let t = Utc::from_unix(0, 0);
        assert_eq!((t.year, t.month, t.day, t.hour), (1970, 1, 1, 0));
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        let t = Utc::from_unix(951_827_696, 5);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2000, 2, 29, 12, 34, 56)
        );
        // 2026-11-22 03:07:04 UTC.
        let t = Utc::from_unix(1_795_316_824, 0);
        let mut s = String::new();
        t.write_error_log(&mut s);
        assert_eq!(s, "2026-11-22 03:07:04 +0000");
        s.clear();
        t.write_access_log(&mut s);
        assert_eq!(s, "22/Nov/2026:03:07:04 +0000");
        s.clear();
        t.write_rfc3339(&mut s);
        assert_eq!(s, "2026-11-22T03:07:04.000Z");
    }
}
