//! BSON to JSON text straight from raw bytes, in three flavours:
//!
//! - [`JsonFlavor::Plain`]: ordinary JSON for SQL users. Object ids are 24-hex strings, dates ISO-8601
//!   UTC strings (`2024-01-31T12:00:00.000Z`), Decimal128 decimal strings, UUIDs canonical strings,
//!   other binary base64 strings, NaN/±Infinity the strings `"NaN"`, `"Infinity"`, `"-Infinity"`,
//!   Timestamps `{"t":..,"i":..}`, regexes `"/pattern/options"`, code and symbols their text,
//!   DBPointers `{"$ref":..,"$id":"<hex>"}`, MinKey/MaxKey `{"$minKey":1}`/`{"$maxKey":1}`,
//!   undefined `null`.
//! - [`JsonFlavor::Relaxed`] and [`JsonFlavor::Canonical`]: MongoDB Extended JSON v2, as in the
//!   specification (canonical keeps every type; relaxed writes numbers and recent dates natively).
//!
//! No `bson::Document` or `serde_json::Value` is built.

use std::fmt::Write as _;

use bson::raw::{RawBsonRef, RawDocument};
use bson::RawDocumentBuf;
use mirror_core::mapping::json::{
    write_i64, write_iso_millis, write_json_f64, write_json_string, write_u64, year_of_millis,
};
use mirror_core::mapping::{JsonFlavor, DECIMAL_TEXT_MAX};

use super::reader::{key_str, Bv, Elements};
use super::values::{as_uuid, decimal_from_bytes, object_id_hex, uuid_text};
use super::ConvertError;

/// Appends `doc` as a JSON object.
pub fn write_document(
    out: &mut String,
    doc: &RawDocument,
    flavor: JsonFlavor,
) -> Result<(), ConvertError> {
    write_bv(out, Bv::Document(doc.as_bytes()), flavor)
}

/// Appends one value as JSON in `flavor`.
pub fn write_value(
    out: &mut String,
    value: RawBsonRef<'_>,
    flavor: JsonFlavor,
) -> Result<(), ConvertError> {
    with_bv(value, |bv| write_bv(out, bv, flavor))
}

/// Calls `f` with the reader's form of a bson value (copying only arrays and DBPointers, whose
/// bytes or parts the bson crate does not expose).
pub(crate) fn with_bv<R>(
    value: RawBsonRef<'_>,
    f: impl FnOnce(Bv<'_>) -> Result<R, ConvertError>,
) -> Result<R, ConvertError> {
    match value {
        RawBsonRef::Double(v) => f(Bv::Double(v)),
        RawBsonRef::String(s) => f(Bv::String(s)),
        RawBsonRef::Document(d) => f(Bv::Document(d.as_bytes())),
        RawBsonRef::Array(a) => {
            let mut doc = RawDocumentBuf::new();
            for (i, v) in a.into_iter().enumerate() {
                let v = v.map_err(|e| ConvertError::Malformed(e.to_string()))?;
                doc.append_ref(i.to_string(), v);
            }
            f(Bv::Array(doc.as_bytes()))
        }
        RawBsonRef::Boolean(b) => f(Bv::Bool(b)),
        RawBsonRef::Null => f(Bv::Null),
        RawBsonRef::RegularExpression(re) => f(Bv::Regex(re.pattern, re.options)),
        RawBsonRef::JavaScriptCode(c) => f(Bv::Code(c)),
        RawBsonRef::JavaScriptCodeWithScope(c) => f(Bv::CodeWithScope(c.code, c.scope.as_bytes())),
        RawBsonRef::Int32(v) => f(Bv::Int32(v)),
        RawBsonRef::Int64(v) => f(Bv::Int64(v)),
        RawBsonRef::Timestamp(t) => f(Bv::Timestamp {
            time: t.time,
            increment: t.increment,
        }),
        RawBsonRef::Binary(b) => f(Bv::Binary(b.subtype.into(), b.bytes)),
        RawBsonRef::ObjectId(id) => f(Bv::ObjectId(&id.bytes())),
        RawBsonRef::DateTime(d) => f(Bv::DateTime(d.timestamp_millis())),
        RawBsonRef::Symbol(s) => f(Bv::Symbol(s)),
        RawBsonRef::Decimal128(d) => f(Bv::Decimal(&d.bytes())),
        RawBsonRef::Undefined => f(Bv::Undefined),
        RawBsonRef::MaxKey => f(Bv::MaxKey),
        RawBsonRef::MinKey => f(Bv::MinKey),
        RawBsonRef::DbPointer(p) => {
            // The bson crate keeps a DBPointer's parts private; its serde form is
            // `{"$dbPointer":{"$ref":ns,"$id":{"$oid":hex}}}`. DBPointers are deprecated and rare.
            let v = serde_json::to_value(p)
                .map_err(|e| ConvertError::Malformed(format!("DBPointer: {e}")))?;
            let ns = v["$dbPointer"]["$ref"].as_str().unwrap_or_default();
            let hex = v["$dbPointer"]["$id"]["$oid"].as_str().unwrap_or_default();
            let id = bson::oid::ObjectId::parse_str(hex)
                .map_err(|e| ConvertError::Malformed(format!("DBPointer: {e}")))?;
            f(Bv::DbPointer(ns, &id.bytes()))
        }
    }
}

fn write_elements(
    out: &mut String,
    doc: &[u8],
    flavor: JsonFlavor,
    array: bool,
) -> Result<(), ConvertError> {
    out.push(if array { '[' } else { '{' });
    for (i, item) in Elements::new(doc).enumerate() {
        let (key, value) = item?;
        if i > 0 {
            out.push(',');
        }
        if !array {
            write_json_string(out, key_str(key)?);
            out.push(':');
        }
        write_bv(out, value, flavor)?;
    }
    out.push(if array { ']' } else { '}' });
    Ok(())
}

fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Appends one value as JSON in `flavor`.
pub(crate) fn write_bv(
    out: &mut String,
    value: Bv<'_>,
    flavor: JsonFlavor,
) -> Result<(), ConvertError> {
    let canonical = flavor == JsonFlavor::Canonical;
    let plain = flavor == JsonFlavor::Plain;
    let mut buf = [0u8; 36];
    match value {
        Bv::Double(v) => {
            if canonical {
                out.push_str("{\"$numberDouble\":\"");
                if !write_json_f64(out, v) {
                    out.push_str(non_finite(v));
                }
                out.push_str("\"}");
            } else if !write_json_f64(out, v) {
                if plain {
                    let _ = write!(out, "\"{}\"", non_finite(v));
                } else {
                    let _ = write!(out, "{{\"$numberDouble\":\"{}\"}}", non_finite(v));
                }
            }
        }
        Bv::String(s) => write_json_string(out, s),
        Bv::Document(d) => write_elements(out, d, flavor, false)?,
        Bv::Array(d) => write_elements(out, d, flavor, true)?,
        Bv::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Bv::Null => out.push_str("null"),
        Bv::Undefined if plain => out.push_str("null"),
        Bv::Undefined => out.push_str("{\"$undefined\":true}"),
        Bv::Regex(pattern, options) => {
            if plain {
                let text = format!("/{pattern}/{options}");
                write_json_string(out, &text);
            } else {
                let mut sorted: Vec<char> = options.chars().collect();
                sorted.sort_unstable();
                let sorted: String = sorted.into_iter().collect();
                out.push_str("{\"$regularExpression\":{\"pattern\":");
                write_json_string(out, pattern);
                out.push_str(",\"options\":");
                write_json_string(out, &sorted);
                out.push_str("}}");
            }
        }
        Bv::Code(code) if plain => write_json_string(out, code),
        Bv::Code(code) => {
            out.push_str("{\"$code\":");
            write_json_string(out, code);
            out.push('}');
        }
        Bv::CodeWithScope(code, scope) => {
            out.push_str("{\"$code\":");
            write_json_string(out, code);
            out.push_str(",\"$scope\":");
            write_elements(out, scope, flavor, false)?;
            out.push('}');
        }
        Bv::Int32(v) if canonical => {
            out.push_str("{\"$numberInt\":\"");
            write_i64(out, v as i64);
            out.push_str("\"}");
        }
        Bv::Int64(v) if canonical => {
            out.push_str("{\"$numberLong\":\"");
            write_i64(out, v);
            out.push_str("\"}");
        }
        Bv::Int32(v) => write_i64(out, v as i64),
        Bv::Int64(v) => write_i64(out, v),
        Bv::Timestamp { time, increment } => {
            out.push_str(if plain {
                "{\"t\":"
            } else {
                "{\"$timestamp\":{\"t\":"
            });
            write_u64(out, time as u64);
            out.push_str(",\"i\":");
            write_u64(out, increment as u64);
            out.push_str(if plain { "}" } else { "}}" });
        }
        Bv::Binary(subtype, bytes) => {
            if plain {
                out.push('"');
                match as_uuid(subtype, bytes) {
                    Some(u) => out.push_str(uuid_text(u, &mut buf)),
                    None => base64_into(out, bytes),
                }
                out.push('"');
            } else {
                out.push_str("{\"$binary\":{\"base64\":\"");
                base64_into(out, bytes);
                let _ = write!(out, "\",\"subType\":\"{subtype:02x}\"}}}}");
            }
        }
        Bv::ObjectId(id) => {
            let hex = object_id_hex(id, &mut buf);
            if plain {
                out.push('"');
                out.push_str(hex);
                out.push('"');
            } else {
                out.push_str("{\"$oid\":\"");
                out.push_str(hex);
                out.push_str("\"}");
            }
        }
        Bv::DateTime(ms) => {
            if plain {
                out.push('"');
                write_iso_millis(out, ms);
                out.push('"');
            } else if !canonical && (1970..=9999).contains(&year_of_millis(ms)) {
                out.push_str("{\"$date\":\"");
                write_iso_millis(out, ms);
                out.push_str("\"}");
            } else {
                out.push_str("{\"$date\":{\"$numberLong\":\"");
                write_i64(out, ms);
                out.push_str("\"}}");
            }
        }
        Bv::Symbol(s) if plain => write_json_string(out, s),
        Bv::Symbol(s) => {
            out.push_str("{\"$symbol\":");
            write_json_string(out, s);
            out.push('}');
        }
        Bv::Decimal(d) => {
            let mut digits = [0u8; DECIMAL_TEXT_MAX];
            let text = decimal_from_bytes(d).text(&mut digits);
            if plain {
                write_json_string(out, text);
            } else {
                out.push_str("{\"$numberDecimal\":");
                write_json_string(out, text);
                out.push('}');
            }
        }
        Bv::MinKey => out.push_str("{\"$minKey\":1}"),
        Bv::MaxKey => out.push_str("{\"$maxKey\":1}"),
        Bv::DbPointer(ns, id) => {
            let hex = object_id_hex(id, &mut buf);
            if plain {
                out.push_str("{\"$ref\":");
                write_json_string(out, ns);
                out.push_str(",\"$id\":");
                write_json_string(out, hex);
                out.push('}');
            } else {
                out.push_str("{\"$dbPointer\":{\"$ref\":");
                write_json_string(out, ns);
                let _ = write!(out, ",\"$id\":{{\"$oid\":\"{hex}\"}}}}}}");
            }
        }
    }
    Ok(())
}

fn base64_into(out: &mut String, bytes: &[u8]) {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn json(value: Bv<'_>, flavor: JsonFlavor) -> String {
        let mut out = String::new();
        write_bv(&mut out, value, flavor).unwrap();
        out
    }

    /// Numbers, timestamps and old dates are written digit by digit, as `write!` wrote them.
    #[test]
    fn numbers_are_written_as_with_format() {
        use JsonFlavor::{Canonical, Plain, Relaxed};
        for v in [
            0i64,
            1,
            -1,
            42,
            i32::MIN as i64,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let v32 = v as i32;
            assert_eq!(json(Bv::Int32(v32), Plain), format!("{v32}"));
            assert_eq!(
                json(Bv::Int32(v32), Canonical),
                format!("{{\"$numberInt\":\"{v32}\"}}")
            );
            assert_eq!(json(Bv::Int64(v), Relaxed), format!("{v}"));
            assert_eq!(
                json(Bv::Int64(v), Canonical),
                format!("{{\"$numberLong\":\"{v}\"}}")
            );
            assert_eq!(
                json(Bv::DateTime(v), Canonical),
                format!("{{\"$date\":{{\"$numberLong\":\"{v}\"}}}}")
            );
        }
        for (time, increment) in [(0, 0), (1_700_000_000, 5), (u32::MAX, u32::MAX)] {
            let ts = Bv::Timestamp { time, increment };
            assert_eq!(
                json(ts, Plain),
                format!("{{\"t\":{time},\"i\":{increment}}}")
            );
            assert_eq!(
                json(ts, Relaxed),
                format!("{{\"$timestamp\":{{\"t\":{time},\"i\":{increment}}}}}")
            );
        }
        let d = bson::Decimal128::from_str("-12.50").unwrap();
        assert_eq!(json(Bv::Decimal(&d.bytes()), Plain), "\"-12.50\"");
        assert_eq!(
            json(Bv::Decimal(&d.bytes()), Canonical),
            "{\"$numberDecimal\":\"-12.50\"}"
        );
    }
}
