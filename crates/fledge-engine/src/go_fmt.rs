//! Numbers and durations printed the way Flagger's Go code prints them (`%v`, `%.2f`,
//! `time.Duration.String`), so that messages match Flagger's word for word.

use std::fmt::Write as _;

/// A float as Go's `%v` prints it: the shortest representation, with an exponent below
/// 1e-4 and from 1e21 on (`99`, `99.5`, `1e-05`, `1e+21`).
pub(crate) fn float(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "NaN".to_owned()
        } else if value > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
        // Rust prints `1e-5`; Go prints `1e-05` (sign always, at least two exponent digits).
        let rust = format!("{value:e}");
        let (mantissa, exponent) = rust.split_once('e').unwrap_or((&rust, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{value}")
}

/// A float as Go's `%.2f` prints it.
pub(crate) fn float2(value: f64) -> String {
    format!("{value:.2}")
}

/// Nanoseconds as Go's `time.Duration.String` prints them (`500ms`, `1.515s`, `1m30s`).
pub(crate) fn duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let negative = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: one unit with a fraction.
        let (unit, divisor) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        push_fraction(&mut out, u, divisor);
        out.push_str(unit);
    } else {
        let hours = u / 3_600_000_000_000;
        u %= 3_600_000_000_000;
        let minutes = u / 60_000_000_000;
        u %= 60_000_000_000;
        if hours > 0 {
            let _ = write!(out, "{hours}h");
        }
        if hours > 0 || minutes > 0 {
            let _ = write!(out, "{minutes}m");
        }
        push_fraction(&mut out, u, 1_000_000_000);
        out.push('s');
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// `value / divisor` with the fraction's trailing zeros dropped, as Go does.
fn push_fraction(out: &mut String, value: u64, divisor: u64) {
    let whole = value / divisor;
    let fraction = value % divisor;
    let _ = write!(out, "{whole}");
    if fraction > 0 {
        let width = divisor.ilog10() as usize;
        let digits = format!("{fraction:0width$}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// Milliseconds (a metric value or bound) as the `time.Duration` Flagger builds from them:
/// `time.Duration(int64(ms)) * time.Millisecond`, truncating the fraction as Go does.
pub(crate) fn millis_as_duration(ms: f64) -> i64 {
    // Go's float-to-int conversion truncates toward zero; saturate instead of wrapping.
    (ms.trunc() as i64).saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_percent_v() {
        assert_eq!(float(99.0), "99");
        assert_eq!(float(99.5), "99.5");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(0.00001), "1e-05");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(-3.0), "-3");
        assert_eq!(float2(61.3912), "61.39");
        assert_eq!(float2(31.0), "31.00");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(duration(500 * 1_000_000), "500ms");
        assert_eq!(duration(1_515 * 1_000_000), "1.515s");
        assert_eq!(duration(2_050 * 1_000_000), "2.05s");
        assert_eq!(duration(90 * 1_000_000_000), "1m30s");
        assert_eq!(duration(3_600 * 1_000_000_000), "1h0m0s");
        assert_eq!(duration(1_500), "1.5µs");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn metric_millis_truncate_like_go() {
        assert_eq!(duration(millis_as_duration(1515.9)), "1.515s");
        assert_eq!(duration(millis_as_duration(500.0)), "500ms");
    }
}
