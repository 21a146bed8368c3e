//! Times and durations as users write and read them: RFC 3339 instants, `1h30m` durations.

use std::time::{Duration, SystemTime};

/// Formats an instant as RFC 3339 in UTC with second precision (`2026-11-28T15:11:18Z`).
pub fn format_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 instant.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// Parses `1h`, `30m`, `90s`, `2h30m` (and humantime's other forms). Zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (use forms like 1h, 30m, 90s, 2h30m)"))?;
    if d.is_zero() {
        return Err(format!("invalid duration {s:?}: must be greater than zero"));
    }
    Ok(d)
}

/// Formats a duration the way users write it (`2h30m`, `90s` → `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Serde adapter: `SystemTime` as an RFC 3339 string.
pub(crate) mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    /// Serializes.
    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*t))
    }

    /// Deserializes.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse_rfc3339(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {raw:?}")))
    }
}

/// Serde adapter: `SystemTime` as an RFC 3339 string with milliseconds (event times, which order
/// requests within a second).
pub(crate) mod rfc3339_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    /// Serializes.
    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    /// Deserializes, to whole milliseconds: the value is then exactly what its serialization
    /// says, so nothing rides along outside what an event's hash covers (found by the spool
    /// property test: `…06.5138` read back as an event its hash vouched for).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse_rfc3339(&raw)
            .and_then(to_millis)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {raw:?}")))
    }

    fn to_millis(t: SystemTime) -> Option<SystemTime> {
        let since = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        let millis = u64::try_from(since.as_millis()).ok()?;
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(millis))
    }
}

/// Serde adapter: `Option<SystemTime>` as an RFC 3339 string or null.
pub(crate) mod rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    /// Serializes.
    pub(crate) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    /// Deserializes.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(raw) => super::parse_rfc3339(&raw)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {raw:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_user_forms() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h30m").unwrap(), Duration::from_secs(9000));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_secs(9000)), "2h30m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let s = format_rfc3339(t);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(with = "rfc3339_millis")]
        time: SystemTime,
    }

    /// Regression (spool property test): a flipped `Z` left `.5138` digits the millisecond
    /// serialization, and so the event hash, did not cover.
    #[test]
    fn event_times_are_read_to_the_millisecond_they_are_written_with() {
        let at = |json: &str| serde_json::from_str::<Event>(json).unwrap().time;
        let written = at(r#"{"time":"2026-11-30T05:43:06.513Z"}"#);
        assert_eq!(at(r#"{"time":"2026-11-30T05:43:06.5138"}"#), written);
        assert_eq!(at(r#"{"time":"2026-11-30T05:43:06.513999999Z"}"#), written);
        assert_eq!(
            humantime::format_rfc3339_millis(written).to_string(),
            "2026-11-30T05:43:06.513Z"
        );
    }
}
