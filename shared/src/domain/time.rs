//! Timestamps as stored: RFC 3339, UTC, millisecond precision, so they sort as text (GSI keys).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// A UTC instant with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        #[cfg(feature = "testing")]
        if let Some(ms) = crate::determinism::now_ms() {
            return Self::from_unix_millis(ms);
        }
        Self::from_unix_millis(unix_millis(OffsetDateTime::now_utc()))
    }

    /// From milliseconds since the Unix epoch (out-of-range values clamp to the epoch).
    pub fn from_unix_millis(ms: i64) -> Self {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Timestamp(t)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        unix_millis(self.0)
    }

    /// Seconds since the Unix epoch (DynamoDB TTL attributes use these).
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// This instant plus `secs` seconds (negative goes back).
    pub fn plus_secs(self, secs: i64) -> Self {
        Self::from_unix_millis(self.unix_millis().saturating_add(secs.saturating_mul(1000)))
    }
}

/// How long until `deadline_ms` (milliseconds since the Unix epoch, as a Lambda context gives an
/// invocation's deadline) by the wall clock; zero once it has passed.
pub fn until_epoch_millis(deadline_ms: u64) -> std::time::Duration {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

fn unix_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fmt = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        match self.0.format(fmt) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl std::str::FromStr for Timestamp {
    type Err = time::error::Parse;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = OffsetDateTime::parse(s, &Rfc3339)?;
        Ok(Self::from_unix_millis(unix_millis(t)))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_fixed_width_so_text_order_is_time_order() {
        let a = Timestamp::from_unix_millis(1_700_000_000_000);
        let b = Timestamp::from_unix_millis(1_700_000_000_120);
        assert_eq!(a.to_string(), "2023-11-14T22:13:20.000Z");
        assert!(a.to_string() < b.to_string());
        assert_eq!(b.to_string().parse::<Timestamp>().unwrap(), b);
        assert_eq!(
            "2023-11-14T23:13:20.5+01:00"
                .parse::<Timestamp>()
                .unwrap()
                .unix_millis(),
            1_700_000_000_500
        );
    }
}
