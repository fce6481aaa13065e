//! Small, allocation-free JSON writing helpers shared by readers: string escaping, numbers and
//! ISO-8601 dates.

use std::fmt::Write as _;

/// Bytes that JSON strings must escape: `"`, `\` and control characters.
const ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends `s` as a JSON string literal (with quotes), escaping `"`, `\` and control characters.
#[inline]
pub fn write_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPE[b as usize] {
            continue;
        }
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a finite double as a JSON number that reads back as the same value (`1.0`, `0.1`,
/// `1e300`); returns false (writing nothing) for NaN and infinities, which JSON cannot hold.
pub fn write_json_f64(out: &mut String, v: f64) -> bool {
    if !v.is_finite() {
        return false;
    }
    // `{:?}` is the shortest text that round-trips and always has a `.` or an exponent.
    let _ = write!(out, "{v:?}");
    true
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Appends milliseconds since the epoch as ISO-8601 UTC with milliseconds,
/// `2024-01-31T12:00:00.000Z`. Years outside 0000..=9999 are written with a sign and at least
/// four digits (`+10000-01-01T...`, `-0001-...`), as ISO-8601 extended years.
pub fn write_iso_millis(out: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    if (0..=9999).contains(&y) {
        let _ = write!(out, "{y:04}");
    } else {
        let _ = write!(
            out,
            "{}{:04}",
            if y < 0 { '-' } else { '+' },
            y.unsigned_abs()
        );
    }
    let _ = write!(out, "-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z");
}

/// The year of a millisecond timestamp (for readers that switch format outside some range).
pub fn year_of_millis(ms: i64) -> i64 {
    civil_from_days(ms.div_euclid(86_400_000)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}\u{1f}\n\t\r\u{8}\u{c}",
            "é中🎉",
            "",
        ] {
            let mut out = String::new();
            write_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn doubles_round_trip() {
        for v in [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e300,
            -2.5e-300,
            123456789.125,
            1.7477339551358984e-186,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let mut out = String::new();
            assert!(write_json_f64(&mut out, v));
            // Rust's parser is exact (serde_json's default one may be off by one ulp).
            let back: f64 = out.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{out}");
        }
        assert!(!write_json_f64(&mut String::new(), f64::NAN));
    }

    proptest::proptest! {
        #[test]
        fn any_double_round_trips_exactly(bits in proptest::prelude::any::<u64>()) {
            let v = f64::from_bits(bits);
            let mut out = String::new();
            if write_json_f64(&mut out, v) {
                let back: f64 = out.parse().unwrap();
                proptest::prop_assert_eq!(back.to_bits(), v.to_bits(), "{}", out);
                // And it is valid JSON.
                serde_json::from_str::<serde_json::Value>(&out).unwrap();
            } else {
                proptest::prop_assert!(!v.is_finite());
            }
        }
    }

    #[test]
    fn dates_are_iso_utc_with_millis() {
        let iso = |ms| {
            let mut out = String::new();
            write_iso_millis(&mut out, ms);
            out
        };
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_706_702_400_123), "2024-01-31T12:00:00.123Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso(253_402_300_800_000), "+10000-01-01T00:00:00.000Z");
        assert_eq!(iso(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        assert_eq!(iso(-62_167_219_200_001), "-0001-12-31T23:59:59.999Z");
        // Agrees with chrono over a wide range.
        for ms in [
            -8_000_000_000_000_000i64,
            -1_234_567_890_123,
            4_102_444_800_000,
            8_000_000_000_000_000,
        ] {
            let c = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            let expected = c.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            let got = iso(ms);
            assert_eq!(
                got.trim_start_matches('+'),
                expected.trim_start_matches('+'),
                "{ms}"
            );
        }
        assert_eq!(year_of_millis(-1), 1969);
    }
}
