//! Certificate validity windows.
//!
//! Atlas backdates `notBefore` by one hour and sets `notAfter` to the creation time plus N
//! calendar months. Adding months to a day that does not exist in the target month (Jan 31 + 1
//! month) clamps to the last day of that month (Feb 28, or Feb 29 in a leap year), as
//! `java.time` — which Atlas runs on — does.

use chrono::{DateTime, Duration, Months, SubsecRound, Utc};

use crate::CaError;

/// Adds `months` calendar months to `at`, clamping to the end of the target month.
pub fn add_months(at: DateTime<Utc>, months: u32) -> Result<DateTime<Utc>, CaError> {
    at.checked_add_months(Months::new(months))
        .ok_or(CaError::Validity)
}

/// The validity window of a leaf certificate created at `now`: `(notBefore, notAfter)`, both
/// truncated to whole seconds because X.509 times and Atlas's JSON carry no fractions.
pub fn leaf_validity(
    now: DateTime<Utc>,
    months: u32,
) -> Result<(DateTime<Utc>, DateTime<Utc>), CaError> {
    let now = now.trunc_subsecs(0);
    Ok((now - Duration::hours(1), add_months(now, months)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 3, 6, 35).unwrap()
    }

    #[test]
    fn same_day_and_time_n_months_later() {
        let (nb, na) = leaf_validity(at(2026, 8, 10), 3).unwrap();
        assert_eq!(nb, Utc.with_ymd_and_hms(2026, 8, 10, 2, 6, 35).unwrap());
        assert_eq!(na, at(2026, 11, 10));
    }

    #[test]
    fn month_ends_clamp() {
        assert_eq!(add_months(at(2026, 1, 31), 1).unwrap(), at(2026, 2, 28));
        assert_eq!(add_months(at(2028, 1, 31), 1).unwrap(), at(2028, 2, 29));
        assert_eq!(add_months(at(2028, 2, 29), 12).unwrap(), at(2029, 2, 28));
        assert_eq!(add_months(at(2026, 12, 31), 2).unwrap(), at(2027, 2, 28));
        assert_eq!(add_months(at(2026, 8, 31), 1).unwrap(), at(2026, 9, 30));
        assert_eq!(add_months(at(2026, 4, 30), 1).unwrap(), at(2026, 5, 30));
        assert_eq!(add_months(at(2026, 12, 31), 24).unwrap(), at(2028, 12, 31));
    }

    #[test]
    fn fractions_are_dropped() {
        let now = at(2026, 3, 1) + Duration::milliseconds(750);
        let (nb, na) = leaf_validity(now, 1).unwrap();
        assert_eq!(nb.timestamp_subsec_nanos(), 0);
        assert_eq!(na.timestamp_subsec_nanos(), 0);
    }
}
