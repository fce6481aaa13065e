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

/// `0x01` in every byte of a word.
const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte of a word.
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any of the 8 bytes of `w` must be escaped. Exact as a yes/no (the borrows of the
/// subtractions only ever add false alarms next to a byte that is itself a hit).
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    let control = w.wrapping_sub(LOW * 0x20) & !w;
    let q = w ^ (LOW * b'"' as u64);
    let quote = q.wrapping_sub(LOW) & !q;
    let b = w ^ (LOW * b'\\' as u64);
    let backslash = b.wrapping_sub(LOW) & !b;
    (control | quote | backslash) & HIGH != 0
}

/// Position of the first byte at or after `from` that must be escaped.
#[inline]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    // Text is mostly plain: skip it 8 bytes at a time, then find the byte in the word that hit.
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if word_needs_escape(u64::from_ne_bytes(w)) {
            break;
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| ESCAPE[b as usize])
        .map(|p| i + p)
}

/// Appends `s` as a JSON string literal (with quotes), escaping `"`, `\` and control characters.
#[inline]
pub fn write_json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        out.push_str(&s[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let code = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ];
                out.push_str(ascii_str(&code));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `bytes`, which the caller wrote with ASCII characters only (digits, signs), as text; empty if
/// they are not ASCII (a bug).
#[inline(always)]
pub fn ascii_str(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8. (`from_utf8` is a call and a byte loop: on the short
        // numbers and dates written here it cost more than writing them.)
        unsafe { std::str::from_utf8_unchecked(bytes) }
    } else {
        ""
    }
}

/// Appends a finite double as a JSON number that reads back as the same value (`1.0`, `0.1`,
/// `1e300`); returns false (writing nothing) for NaN and infinities, which JSON cannot hold.
///
/// The text is exactly Rust's `{:?}`: the shortest digits that read back as `v` (closest to `v`
/// when several do), `.0` on integers, exponent form below `1e-4` and from `1e16`. Faster paths
/// write the same text:
/// - Amounts with up to 4 decimals (`19.99`), the most common doubles in documents, are the
///   closest double to `n / 10^4` for an integer `n`: then the digits of `n` are the shortest that
///   read back as `v` (any two different decimals of up to 15 digits read as different doubles).
/// - `ryu` picks the same digits as `{:?}`, but writes `[1e-5, 1e-4)` in decimal notation, and when
///   `v` lies exactly halfway between the two closest shortest candidates it rounds to even where
///   `{:?}` rounds up. Such ties need 16 digits or more (both candidates must be within half an
///   ulp, so the digits count at least 2^52 units of the last place); those values, and
///   `[1e-5, 1e-4)`, are left to `{:?}`.
#[inline]
pub fn write_json_f64(out: &mut String, v: f64) -> bool {
    if !v.is_finite() {
        return false;
    }
    if write_short_decimal(out, v) {
        return true;
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v);
    if significant_digits(text) <= 15 && !(1e-5..1e-4).contains(&v.abs()) {
        out.push_str(text);
    } else {
        let _ = write!(out, "{v:?}");
    }
    true
}

/// Writes `v` as `{:?}` does if it is the closest double to a decimal with at most 4 decimals and
/// 15 digits (see [`write_json_f64`]); returns false (writing nothing) otherwise.
#[inline]
fn write_short_decimal(out: &mut String, v: f64) -> bool {
    const SCALE: f64 = 1e4;
    let abs = v.abs();
    let n = (abs * SCALE).round();
    // Division is correctly rounded: equal means `v` is the closest double to `n / 10^4`.
    if !(n < 1e15 && n / SCALE == abs) {
        return false;
    }
    let n = n as u64;
    let (int, mut frac) = (n / 10_000, (n % 10_000) as u32);
    // `int.frac` with 4 decimals, trailing zeros dropped but one.
    let mut decimals = 4;
    while decimals > 1 && frac % 10 == 0 {
        frac /= 10;
        decimals -= 1;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    write_u64(out, int);
    let mut buf = *b".0000";
    for at in (1..=decimals).rev() {
        buf[at] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    out.push_str(ascii_str(&buf[..=decimals]));
    true
}

/// Significant digits of a number's text (`-0.00120` and `1.2e-3` have 2, `0.0` has 0).
#[inline]
fn significant_digits(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mantissa = match bytes.iter().position(|&b| b == b'e') {
        Some(e) => &bytes[..e],
        None => bytes,
    };
    let nonzero = |b: &u8| matches!(b, b'1'..=b'9');
    match (
        mantissa.iter().position(nonzero),
        mantissa.iter().rposition(nonzero),
    ) {
        (Some(first), Some(last)) => mantissa[first..=last]
            .iter()
            .filter(|b| b.is_ascii_digit())
            .count(),
        _ => 0,
    }
}

/// Appends `v` in decimal.
#[inline]
pub fn write_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Appends `v` in decimal.
#[inline]
pub fn write_u64(out: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    let start = digits_before(v, &mut buf, 20);
    out.push_str(ascii_str(&buf[start..]));
}

/// Writes the decimal digits of `v` into `buf`, ending just before `end`; returns where they
/// start.
#[inline]
pub(crate) fn digits_before(mut v: u64, buf: &mut [u8], mut end: usize) -> usize {
    loop {
        end -= 1;
        buf[end] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return end;
        }
    }
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

/// Writes `v` (below 100) as two digits at `buf[at..at + 2]`.
#[inline(always)]
fn two_digits(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

/// Appends milliseconds since the epoch as ISO-8601 UTC with milliseconds,
/// `2024-01-31T12:00:00.000Z`. Years outside 0000..=9999 are written with a sign and at least
/// four digits (`+10000-01-01T...`, `-0001-...`), as ISO-8601 extended years.
pub fn write_iso_millis(out: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000) as u32;
    let (y, m, d) = civil_from_days(days);
    // A sign, the year (9 digits at most: i64 milliseconds end in year 292,278,994, but room is
    // left for any u64) and 20 more bytes.
    let mut buf = [0u8; 48];
    let mut n = 0;
    if !(0..=9999).contains(&y) {
        buf[0] = if y < 0 { b'-' } else { b'+' };
        n = 1;
    }
    let year = y.unsigned_abs();
    let mut width = 4;
    while width < 20 && year >= 10u64.pow(width as u32) {
        width += 1;
    }
    let mut rest = year;
    for at in (n..n + width).rev() {
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    n += width;
    let tail = &mut buf[n..n + 20];
    tail.copy_from_slice(b"-MM-DDTHH:MM:SS.mmmZ");
    two_digits(tail, 1, m);
    two_digits(tail, 4, d);
    two_digits(tail, 7, rem / 3_600_000);
    two_digits(tail, 10, rem / 60_000 % 60);
    two_digits(tail, 13, rem / 1000 % 60);
    let milli = rem % 1000;
    tail[16] = b'0' + (milli / 100) as u8;
    two_digits(tail, 17, milli % 100);
    out.push_str(ascii_str(&buf[..n + 20]));
}

/// The year of a millisecond timestamp (for readers that switch format outside some range).
pub fn year_of_millis(ms: i64) -> i64 {
    civil_from_days(ms.div_euclid(86_400_000)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The escaping this module wrote before it scanned 8 bytes at a time.
    fn json_string_reference(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// The ISO-8601 text this module wrote with `write!` before it wrote digits itself.
    fn iso_reference(ms: i64) -> String {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, min, s, milli) = (
            rem / 3_600_000,
            rem / 60_000 % 60,
            rem / 1000 % 60,
            rem % 1000,
        );
        let mut out = String::new();
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
        out
    }

    #[test]
    fn strings_are_escaped_like_before_at_every_offset() {
        // Every byte that needs escaping, at every position around the 8-byte steps.
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{0}', '\u{1f}', '\u{7f}', 'é',
        ];
        for len in 0..40 {
            for at in 0..len {
                for &c in &specials {
                    let s: String = (0..len)
                        .map(|i| {
                            if i == at {
                                c
                            } else {
                                (b'a' + (i % 26) as u8) as char
                            }
                        })
                        .collect();
                    let mut out = String::new();
                    write_json_string(&mut out, &s);
                    assert_eq!(out, json_string_reference(&s), "{s:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_escaped_like_before(s in "(?s).{0,80}", plain in "[a-z ]{0,40}") {
            for s in [s.clone(), format!("{plain}{s}{plain}")] {
                let mut out = String::new();
                write_json_string(&mut out, &s);
                proptest::prop_assert_eq!(&out, &json_string_reference(&s));
                proptest::prop_assert_eq!(&out, &serde_json::to_string(&s).unwrap());
            }
        }

        #[test]
        fn any_double_is_written_as_debug(bits in proptest::prelude::any::<u64>()) {
            let v = f64::from_bits(bits);
            let mut out = String::new();
            if write_json_f64(&mut out, v) {
                proptest::prop_assert_eq!(out, format!("{v:?}"));
            }
        }

        #[test]
        fn any_date_is_written_as_before(ms in proptest::prelude::any::<i64>()) {
            let mut out = String::new();
            write_iso_millis(&mut out, ms);
            proptest::prop_assert_eq!(out, iso_reference(ms));
        }

        #[test]
        fn any_integer_is_written_as_display(v in proptest::prelude::any::<i64>()) {
            let mut out = String::new();
            write_i64(&mut out, v);
            proptest::prop_assert_eq!(out, v.to_string());
        }
    }

    #[test]
    fn doubles_are_written_as_debug_on_edges() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            1e-4,
            1e-5,
            1e-7,
            1e15,
            1e16,
            1e17,
            9_007_199_254_740_993.0,
            123_456_789_012_345.67,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            -5e-324,
        ];
        // Both sides of every power of ten (where the notation may switch) and of 1e-5/1e-4.
        for e in -324..=308 {
            let p: f64 = format!("1e{e}").parse().unwrap();
            for v in [
                p,
                f64::from_bits(p.to_bits().wrapping_sub(1)),
                f64::from_bits(p.to_bits() + 1),
            ] {
                values.extend([v, -v, v * 1.5, v * 9.999_999_999_999_999]);
            }
        }
        // Short decimals like prices, and their neighbours.
        for cents in 0..20_000 {
            for v in [cents as f64 / 100.0, cents as f64 / 1e4, cents as f64 / 1e7] {
                values.extend([
                    v,
                    f64::from_bits(v.to_bits() + 1),
                    f64::from_bits(v.to_bits().saturating_sub(1)),
                ]);
            }
        }
        // Up to 4 decimals, at every magnitude up to 15 digits.
        let mut rng: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..300_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let digits = rng % 10u64.pow(1 + (rng >> 59) as u32 % 16);
            let v = digits as f64 / 10f64.powi((rng >> 40) as i32 % 5);
            values.extend([v, -v, f64::from_bits(v.to_bits() + 1)]);
        }
        for v in values {
            let mut out = String::new();
            if write_json_f64(&mut out, v) {
                assert_eq!(out, format!("{v:?}"));
            }
        }
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let v = f64::from_bits(rng);
            let mut out = String::new();
            if write_json_f64(&mut out, v) {
                assert_eq!(out, format!("{v:?}"));
            }
        }
    }

    #[test]
    fn short_doubles_are_written_as_debug() {
        // Up to 15 digits (the texts written without `{:?}`), at every magnitude.
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..300_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let digits = rng % 1_000_000_000_000_000;
            let len = 1 + (rng >> 50) as usize % 15;
            let digits = digits % 10u64.pow(len as u32);
            let exp = ((rng >> 40) % 660) as i32 - 330;
            let v: f64 = format!("{digits}e{exp}").parse().unwrap();
            for v in [v, -v, f64::from_bits(v.to_bits() + 1)] {
                let mut out = String::new();
                if write_json_f64(&mut out, v) {
                    assert_eq!(out, format!("{v:?}"));
                }
            }
        }
        assert_eq!(significant_digits("-0.00120"), 2);
        assert_eq!(significant_digits("1.2e-3"), 2);
        assert_eq!(significant_digits("1500000000000000.0"), 2);
        assert_eq!(significant_digits("-0.0"), 0);
    }

    #[test]
    fn dates_are_written_as_before_on_edges() {
        let mut values = vec![
            0,
            -1,
            1,
            i64::MIN,
            i64::MAX,
            i64::MIN + 1,
            i64::MAX - 1,
            -62_167_219_200_000,
            -62_167_219_200_001,
            253_402_300_799_999,
            253_402_300_800_000,
            -377_705_116_800_000,
            -377_705_116_800_001,
        ];
        for day in -800_000i64..800_000 {
            values.push(day * 86_400_000 - 1);
            values.push(day * 86_400_000 + 45_296_789);
        }
        for ms in values {
            let mut out = String::new();
            write_iso_millis(&mut out, ms);
            assert_eq!(out, iso_reference(ms), "{ms}");
        }
    }

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
