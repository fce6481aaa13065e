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

use bson::raw::{RawArray, RawBsonRef, RawDocument};
use mirror_core::mapping::json::{
    write_iso_millis, write_json_f64, write_json_string, year_of_millis,
};
use mirror_core::mapping::JsonFlavor;

use super::values::{as_uuid, decimal_parts, object_id_hex, uuid_text};
use super::ConvertError;

/// Appends `doc` as a JSON object.
pub fn write_document(
    out: &mut String,
    doc: &RawDocument,
    flavor: JsonFlavor,
) -> Result<(), ConvertError> {
    out.push('{');
    for (i, elem) in doc.iter().enumerate() {
        let (key, value) = elem?;
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, key);
        out.push(':');
        write_value(out, value, flavor)?;
    }
    out.push('}');
    Ok(())
}

/// Appends `arr` as a JSON array.
pub fn write_array(
    out: &mut String,
    arr: &RawArray,
    flavor: JsonFlavor,
) -> Result<(), ConvertError> {
    out.push('[');
    for (i, value) in arr.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_value(out, value?, flavor)?;
    }
    out.push(']');
    Ok(())
}

fn write_i64(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
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
pub fn write_value(
    out: &mut String,
    value: RawBsonRef<'_>,
    flavor: JsonFlavor,
) -> Result<(), ConvertError> {
    let canonical = flavor == JsonFlavor::Canonical;
    let plain = flavor == JsonFlavor::Plain;
    let mut buf = [0u8; 36];
    match value {
        RawBsonRef::Double(v) => {
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
        RawBsonRef::String(s) => write_json_string(out, s),
        RawBsonRef::Document(d) => write_document(out, d, flavor)?,
        RawBsonRef::Array(a) => write_array(out, a, flavor)?,
        RawBsonRef::Boolean(b) => out.push_str(if b { "true" } else { "false" }),
        RawBsonRef::Null => out.push_str("null"),
        RawBsonRef::Undefined if plain => out.push_str("null"),
        RawBsonRef::Undefined => out.push_str("{\"$undefined\":true}"),
        RawBsonRef::RegularExpression(re) => {
            if plain {
                let text = format!("/{}/{}", re.pattern, re.options);
                write_json_string(out, &text);
            } else {
                let mut options: Vec<char> = re.options.chars().collect();
                options.sort_unstable();
                let options: String = options.into_iter().collect();
                out.push_str("{\"$regularExpression\":{\"pattern\":");
                write_json_string(out, re.pattern);
                out.push_str(",\"options\":");
                write_json_string(out, &options);
                out.push_str("}}");
            }
        }
        RawBsonRef::JavaScriptCode(code) if plain => write_json_string(out, code),
        RawBsonRef::JavaScriptCode(code) => {
            out.push_str("{\"$code\":");
            write_json_string(out, code);
            out.push('}');
        }
        RawBsonRef::JavaScriptCodeWithScope(cws) => {
            out.push_str("{\"$code\":");
            write_json_string(out, cws.code);
            out.push_str(",\"$scope\":");
            write_document(out, cws.scope, flavor)?;
            out.push('}');
        }
        RawBsonRef::Int32(v) if canonical => {
            let _ = write!(out, "{{\"$numberInt\":\"{v}\"}}");
        }
        RawBsonRef::Int64(v) if canonical => {
            let _ = write!(out, "{{\"$numberLong\":\"{v}\"}}");
        }
        RawBsonRef::Int32(v) => write_i64(out, v as i64),
        RawBsonRef::Int64(v) => write_i64(out, v),
        RawBsonRef::Timestamp(ts) if plain => {
            let _ = write!(out, "{{\"t\":{},\"i\":{}}}", ts.time, ts.increment);
        }
        RawBsonRef::Timestamp(ts) => {
            let _ = write!(
                out,
                "{{\"$timestamp\":{{\"t\":{},\"i\":{}}}}}",
                ts.time, ts.increment
            );
        }
        RawBsonRef::Binary(b) => {
            let uuid = as_uuid(b.subtype, b.bytes);
            if plain {
                match uuid {
                    Some(u) => {
                        out.push('"');
                        out.push_str(uuid_text(u, &mut buf));
                        out.push('"');
                    }
                    None => {
                        out.push('"');
                        base64_into(out, b.bytes);
                        out.push('"');
                    }
                }
            } else {
                out.push_str("{\"$binary\":{\"base64\":\"");
                base64_into(out, b.bytes);
                let subtype: u8 = b.subtype.into();
                let _ = write!(out, "\",\"subType\":\"{subtype:02x}\"}}}}");
            }
        }
        RawBsonRef::ObjectId(id) => {
            let hex = object_id_hex(&id, &mut buf);
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
        RawBsonRef::DateTime(d) => {
            let ms = d.timestamp_millis();
            if plain {
                out.push('"');
                write_iso_millis(out, ms);
                out.push('"');
            } else if !canonical && (1970..=9999).contains(&year_of_millis(ms)) {
                out.push_str("{\"$date\":\"");
                write_iso_millis(out, ms);
                out.push_str("\"}");
            } else {
                let _ = write!(out, "{{\"$date\":{{\"$numberLong\":\"{ms}\"}}}}");
            }
        }
        RawBsonRef::Symbol(s) if plain => write_json_string(out, s),
        RawBsonRef::Symbol(s) => {
            out.push_str("{\"$symbol\":");
            write_json_string(out, s);
            out.push('}');
        }
        RawBsonRef::Decimal128(d) => {
            let text = decimal_parts(&d).to_string();
            if plain {
                write_json_string(out, &text);
            } else {
                out.push_str("{\"$numberDecimal\":");
                write_json_string(out, &text);
                out.push('}');
            }
        }
        RawBsonRef::MinKey => out.push_str("{\"$minKey\":1}"),
        RawBsonRef::MaxKey => out.push_str("{\"$maxKey\":1}"),
        RawBsonRef::DbPointer(p) => {
            // The bson crate keeps a DBPointer's parts private; its serde form is
            // `{"$dbPointer":{"$ref":ns,"$id":{"$oid":hex}}}`. DBPointers are deprecated and rare.
            let v = serde_json::to_value(p)
                .map_err(|e| ConvertError::Unreadable(format!("DBPointer: {e}")))?;
            let ns = v["$dbPointer"]["$ref"].as_str().unwrap_or_default();
            let hex = v["$dbPointer"]["$id"]["$oid"].as_str().unwrap_or_default();
            out.push_str(if plain {
                "{\"$ref\":"
            } else {
                "{\"$dbPointer\":{\"$ref\":"
            });
            write_json_string(out, ns);
            if plain {
                out.push_str(",\"$id\":");
                write_json_string(out, hex);
                out.push('}');
            } else {
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
