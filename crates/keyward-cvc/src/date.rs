use crate::CvcError;

/// A CVC date: six unpacked BCD digits YYMMDD, years 2000–2099.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CvDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl CvDate {
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, CvcError> {
        let valid = (2000..=2099).contains(&year)
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day);
        if valid {
            Ok(Self { year, month, day })
        } else {
            Err(CvcError::InvalidDate)
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, CvcError> {
        let digits: &[u8; 6] = bytes.try_into().map_err(|_| CvcError::InvalidDate)?;
        if digits.iter().any(|d| *d > 9) {
            return Err(CvcError::InvalidDate);
        }
        let pair = |i: usize| digits[i] * 10 + digits[i + 1];
        Self::new(2000 + u16::from(pair(0)), pair(2), pair(4))
    }

    pub fn encode(&self) -> [u8; 6] {
        let yy = (self.year % 100) as u8;
        [
            yy / 10,
            yy % 10,
            self.month / 10,
            self.month % 10,
            self.day / 10,
            self.day % 10,
        ]
    }

    /// The date `days` days later (proleptic Gregorian; saturates at 2099-12-31).
    pub fn add_days(self, days: u32) -> Self {
        let mut d = self;
        for _ in 0..days {
            if d.day < days_in_month(d.year, d.month) {
                d.day += 1;
            } else if d.month < 12 {
                d.month += 1;
                d.day = 1;
            } else if d.year < 2099 {
                d.year += 1;
                d.month = 1;
                d.day = 1;
            } else {
                break;
            }
        }
        d
    }

    /// The date of a Unix timestamp (seconds since 1970-01-01 UTC), clamped to 2000–2099.
    pub fn from_unix(secs: u64) -> Self {
        let days = secs / 86_400;
        // Days from 1970-01-01 to 2000-01-01.
        let since_2000 = days.saturating_sub(10_957);
        Self {
            year: 2000,
            month: 1,
            day: 1,
        }
        .add_days(u32::try_from(since_2000).unwrap_or(u32::MAX))
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

impl std::fmt::Display for CvDate {
    /// ISO 8601 (`YYYY-MM-DD`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_round_trip_and_arithmetic() {
        let d = CvDate::parse(&[1, 2, 1, 1, 0, 9]).unwrap();
        assert_eq!(
            d,
            CvDate {
                year: 2012,
                month: 11,
                day: 9
            }
        );
        assert_eq!(d.encode(), [1, 2, 1, 1, 0, 9]);
        assert_eq!(
            CvDate::new(2024, 2, 28).unwrap().add_days(1),
            CvDate::new(2024, 2, 29).unwrap()
        );
        assert_eq!(
            CvDate::new(2023, 12, 31).unwrap().add_days(1),
            CvDate::new(2024, 1, 1).unwrap()
        );
        assert_eq!(
            CvDate::from_unix(1_764_028_800),
            CvDate::new(2025, 11, 25).unwrap()
        );
        assert!(CvDate::parse(&[1, 2, 1, 3, 0, 1]).is_err());
        assert!(CvDate::parse(&[1, 2, 0, 2, 3, 0]).is_err());
        assert!(CvDate::parse(&[1, 2, 1, 1, 0]).is_err());
    }
}
