//! Timestamps as Kubernetes writes them and ages as `kubectl get` prints them.

use std::time::{Duration, SystemTime};

/// RFC 3339 with whole seconds, the format of `metadata.creationTimestamp`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

pub(crate) fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// The `AGE` cell for an object created at `timestamp` (RFC 3339); `<unknown>` if unparsable.
pub(crate) fn age(timestamp: Option<&str>, now: SystemTime) -> String {
    let Some(created) = timestamp.and_then(|t| humantime::parse_rfc3339(t).ok()) else {
        return "<unknown>".to_owned();
    };
    match now.duration_since(created) {
        Ok(elapsed) => human_duration(elapsed),
        // Up to two seconds of clock skew count as "now", like apimachinery's HumanDuration.
        Err(ahead) if ahead.duration() < Duration::from_secs(2) => "0s".to_owned(),
        Err(_) => "<invalid>".to_owned(),
    }
}

/// apimachinery's `duration.HumanDuration`: two significant units, coarser as time goes by.
pub(crate) fn human_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

fn with_remainder(major: u64, major_unit: &str, minor: u64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_apimachinery_examples() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(
                human_duration(Duration::from_secs(seconds)),
                expected,
                "{seconds}"
            );
        }
    }

    #[test]
    fn ages_from_timestamps() {
        let now = SystemTime::now();
        let created = rfc3339(now - Duration::from_secs(600));
        assert_eq!(age(Some(&created), now), "10m");
        assert_eq!(age(Some("garbage"), now), "<unknown>");
        assert_eq!(age(None, now), "<unknown>");
        let future = rfc3339(now + Duration::from_secs(3600));
        assert_eq!(age(Some(&future), now), "<invalid>");
    }
}
