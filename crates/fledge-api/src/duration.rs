//! Go-style durations (`500ms`, `30s`, `1m`, `1h30m`), as every Flagger interval and timeout is written.

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way Go's `time.ParseDuration` reads it.
///
/// The text the user wrote is kept, so a manifest read and written back is unchanged
/// (`1m` stays `1m`, not `1m0s`); equality compares the length of time, not the text.
#[derive(Clone, Debug)]
pub struct GoDuration {
    text: String,
    value: Duration,
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason} (write it like 500ms, 30s, 1m or 1h30m)")]
pub struct DurationError {
    text: String,
    reason: &'static str,
}

impl GoDuration {
    /// A duration of whole seconds, written the shortest way (`90` → `1m30s`).
    pub fn from_secs(secs: u64) -> Self {
        Self::from_duration(Duration::from_secs(secs))
    }

    /// A duration from a `std::time::Duration`, written the shortest way.
    pub fn from_duration(value: Duration) -> Self {
        Self {
            text: format_go(value),
            value,
        }
    }

    /// The length of time.
    pub fn as_duration(&self) -> Duration {
        self.value
    }

    /// The text as written by the user.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for GoDuration {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for GoDuration {}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Duration> for GoDuration {
    fn from(value: Duration) -> Self {
        Self::from_duration(value)
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value = parse_go(text).map_err(|reason| DurationError {
            text: text.to_owned(),
            reason,
        })?;
        Ok(Self {
            text: text.to_owned(),
            value,
        })
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GoDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as 500ms, 30s, 1m or 1h30m."
        })
    }
}

/// Nanoseconds per unit, longest unit name first so `ms` is not read as `m`.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

fn parse_go(text: &str) -> Result<Duration, &'static str> {
    let mut rest = text;
    if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    } else if rest.starts_with('-') {
        return Err("negative durations are not allowed");
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("it is empty");
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("a number needs a unit (ns, us, ms, s, m, h)")?;
        if number_len == 0 {
            return Err("expected a number");
        }
        let (number, after) = rest.split_at(number_len);
        let (unit, unit_nanos) = UNITS
            .iter()
            .filter(|(name, _)| after.starts_with(name))
            .max_by_key(|(name, _)| name.len())
            .ok_or("unknown unit (use ns, us, ms, s, m or h)")?;
        total = total
            .checked_add(scale(number, *unit_nanos)?)
            .ok_or("it is too long")?;
        rest = &after[unit.len()..];
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "it is too long")?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

fn scale(number: &str, unit_nanos: u128) -> Result<u128, &'static str> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err("expected a number");
    }
    if fraction.contains('.') {
        return Err("a number has at most one decimal point");
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "the number is too large")?
    };
    let mut nanos = whole.checked_mul(unit_nanos).ok_or("it is too long")?;
    let mut place = unit_nanos;
    for digit in fraction.chars().take(18) {
        place /= 10;
        nanos = nanos
            .checked_add(u128::from(digit.to_digit(10).unwrap_or(0)) * place)
            .ok_or("it is too long")?;
    }
    Ok(nanos)
}

/// Writes a duration the way Go's `Duration.String` does, without the zero parts (`1m30s`, `500ms`).
fn format_go(value: Duration) -> String {
    if value.is_zero() {
        return "0s".to_owned();
    }
    let nanos = value.as_nanos();
    if !nanos.is_multiple_of(1_000_000_000) {
        if nanos.is_multiple_of(1_000_000) {
            return format!("{}ms", nanos / 1_000_000);
        }
        if nanos.is_multiple_of(1_000) {
            return format!("{}us", nanos / 1_000);
        }
        return format!("{nanos}ns");
    }
    let secs = value.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    for (amount, unit) in [(hours, 'h'), (minutes, 'm'), (seconds, 's')] {
        if amount > 0 {
            let _ = write!(out, "{amount}{unit}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Duration, DurationError> {
        text.parse::<GoDuration>().map(|d| d.as_duration())
    }

    #[test]
    fn reads_the_forms_flagger_manifests_use() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("2m30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("+5s"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn refuses_what_go_refuses_with_a_hint() {
        for bad in ["", "1", "10x", "-1s", "s", "1..5s", "1m30"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains("like 500ms"), "{err}");
        }
    }

    #[test]
    fn refuses_lengths_beyond_what_a_duration_holds_instead_of_overflowing() {
        let largest_u128 = u128::MAX.to_string();
        for too_long in [
            format!("{largest_u128}h"),
            format!("{}.999999999h", u128::MAX / 3_600_000_000_000),
            "5124095576030432h".to_owned(),
            "2562047788015216h".repeat(3),
            "99999999999999999999999999999999999999999h".to_owned(),
        ] {
            let err = parse(&too_long).expect_err(&too_long);
            assert!(err.to_string().contains("too"), "{too_long}: {err}");
        }
        for refused in ["1e99h", "-1s", "", "1h-1s", "１s", "1 s", "∞s", "NaNs"] {
            assert!(parse(refused).is_err(), "{refused:?} is refused");
        }
        assert_eq!(
            parse("2562047788015216h"),
            Ok(Duration::from_secs(2_562_047_788_015_216 * 3600)),
            "huge but representable: validation, not parsing, bounds it"
        );
    }

    #[test]
    fn keeps_the_text_as_written() {
        let d: GoDuration = "60s".parse().expect("valid");
        assert_eq!(d.as_str(), "60s");
        assert_eq!(d, GoDuration::from_secs(60));
        assert_eq!(GoDuration::from_secs(90).as_str(), "1m30s");
        assert_eq!(
            GoDuration::from_duration(Duration::from_millis(1515)).as_str(),
            "1515ms"
        );
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_gives_the_same_length(nanos in 0u64..=u64::MAX / 4) {
            let value = Duration::from_nanos(nanos);
            let text = GoDuration::from_duration(value).as_str().to_owned();
            prop_assert_eq!(parse(&text).expect("formatted durations parse"), value);
        }

        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,12}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_hostile_numbers(
            digits in "[0-9]{1,60}",
            fraction in "[0-9]{0,40}",
            units in prop::collection::vec(prop_oneof![Just("h"), Just("m"), Just("s"), Just("ms"), Just("ns"), Just("µs")], 1..40),
        ) {
            let number = format!("{digits}.{fraction}");
            let text: String = units.iter().flat_map(|unit| [number.as_str(), unit]).collect();
            if let Ok(duration) = parse(&text) {
                prop_assert!(duration.as_secs() < u64::MAX);
            }
        }
    }
}
