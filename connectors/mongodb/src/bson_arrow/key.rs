//! The key column: an injective text encoding of MongoDB `_id`s of any type.
//!
//! Fabric needs one key column type per table, while a collection may mix `_id` types. Every `_id`
//! becomes a string, and two different `_id`s always give two different strings:
//!
//! | `_id` | key |
//! |---|---|
//! | ObjectId | 24 lowercase hex digits: `507f1f77bcf86cd799439011` |
//! | string | the string itself, e.g. `user-42` ... |
//! | ... unless it is 24 lowercase hex digits or starts with `~` | `~s:` + the string |
//! | int32, int64 | `~i:` + decimal digits: `~i:1` |
//! | double | `~f:` + shortest round-trip text: `~f:1.5`, `~f:1.0`, `~f:NaN`, `~f:inf` |
//! | Decimal128 | `~m:` + its text: `~m:1.50` |
//! | date | `~d:` + ISO-8601 UTC: `~d:2024-01-31T12:00:00.000Z` |
//! | bool | `~b:true` / `~b:false` |
//! | UUID (binary subtype 4) | `~u:` + canonical UUID |
//! | other binary | `~x:` + subtype (2 hex digits) + `:` + bytes in hex |
//! | Timestamp | `~t:` + seconds + `:` + increment |
//! | null, MinKey, MaxKey, undefined | `~null`, `~minKey`, `~maxKey`, `~undefined` |
//! | sub-document, array, regex, code, symbol, DBPointer | `~j:` + canonical Extended JSON |
//!
//! Why it is injective: object ids are the only keys that are exactly 24 lowercase hex digits
//! without a tag; every other non-string key starts with `~` and a tag of its own; strings that
//! could be mistaken for either are tagged `~s:`; within a tag the text identifies the value
//! (integers 1 and strings "1" differ: `~i:1` vs `1`). int32 and int64 share a tag because MongoDB
//! treats `1` and `NumberLong(1)` as the same `_id` (a unique index does not allow both).

use bson::raw::RawBsonRef;
use mirror_core::mapping::json::write_iso_millis;
use mirror_core::mapping::JsonFlavor;
use std::fmt::Write as _;

use super::json::write_value;
use super::values::{as_uuid, decimal_parts, hex_into, object_id_hex, uuid_text};
use super::ConvertError;

fn is_lower_hex_24(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Writes the key of `_id` value `id` into `out` (cleared first).
pub fn encode_key(out: &mut String, id: RawBsonRef<'_>) -> Result<(), ConvertError> {
    out.clear();
    let mut buf = [0u8; 36];
    match id {
        RawBsonRef::ObjectId(oid) => out.push_str(object_id_hex(&oid, &mut buf)),
        RawBsonRef::String(s) => {
            if is_lower_hex_24(s) || s.starts_with('~') {
                out.push_str("~s:");
            }
            out.push_str(s);
        }
        RawBsonRef::Int32(v) => {
            let _ = write!(out, "~i:{v}");
        }
        RawBsonRef::Int64(v) => {
            let _ = write!(out, "~i:{v}");
        }
        RawBsonRef::Double(v) => {
            let _ = write!(out, "~f:{v:?}");
        }
        RawBsonRef::Decimal128(d) => {
            let _ = write!(out, "~m:{}", decimal_parts(&d));
        }
        RawBsonRef::DateTime(d) => {
            out.push_str("~d:");
            write_iso_millis(out, d.timestamp_millis());
        }
        RawBsonRef::Boolean(b) => out.push_str(if b { "~b:true" } else { "~b:false" }),
        RawBsonRef::Binary(b) => match as_uuid(b.subtype, b.bytes) {
            Some(u) => {
                out.push_str("~u:");
                out.push_str(uuid_text(u, &mut buf));
            }
            None => {
                let subtype: u8 = b.subtype.into();
                let _ = write!(out, "~x:{subtype:02x}:");
                let mut hex = vec![0u8; b.bytes.len() * 2];
                out.push_str(hex_into(b.bytes, &mut hex));
            }
        },
        RawBsonRef::Timestamp(ts) => {
            let _ = write!(out, "~t:{}:{}", ts.time, ts.increment);
        }
        RawBsonRef::Null => out.push_str("~null"),
        RawBsonRef::Undefined => out.push_str("~undefined"),
        RawBsonRef::MinKey => out.push_str("~minKey"),
        RawBsonRef::MaxKey => out.push_str("~maxKey"),
        RawBsonRef::Document(_)
        | RawBsonRef::Array(_)
        | RawBsonRef::RegularExpression(_)
        | RawBsonRef::JavaScriptCode(_)
        | RawBsonRef::JavaScriptCodeWithScope(_)
        | RawBsonRef::Symbol(_)
        | RawBsonRef::DbPointer(_) => {
            out.push_str("~j:");
            write_value(out, id, JsonFlavor::Canonical)?;
        }
    }
    Ok(())
}
