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

use std::fmt::Write as _;

use bson::raw::RawBsonRef;
use mirror_core::mapping::json::write_iso_millis;
use mirror_core::mapping::JsonFlavor;

use super::json::{with_bv, write_bv};
use super::reader::Bv;
use super::values::{as_uuid, decimal_from_bytes, hex_into, object_id_hex, uuid_text};
use super::ConvertError;

fn is_lower_hex_24(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Writes the key of `_id` value `id` into `out` (cleared first).
pub fn encode_key(out: &mut String, id: RawBsonRef<'_>) -> Result<(), ConvertError> {
    with_bv(id, |bv| encode_key_bv(out, bv))
}

/// [`encode_key`] on the reader's values.
pub(crate) fn encode_key_bv(out: &mut String, id: Bv<'_>) -> Result<(), ConvertError> {
    out.clear();
    let mut buf = [0u8; 36];
    match id {
        Bv::ObjectId(oid) => out.push_str(object_id_hex(oid, &mut buf)),
        Bv::String(s) => {
            if is_lower_hex_24(s) || s.starts_with('~') {
                out.push_str("~s:");
            }
            out.push_str(s);
        }
        Bv::Int32(v) => {
            let _ = write!(out, "~i:{v}");
        }
        Bv::Int64(v) => {
            let _ = write!(out, "~i:{v}");
        }
        Bv::Double(v) => {
            let _ = write!(out, "~f:{v:?}");
        }
        Bv::Decimal(d) => {
            let _ = write!(out, "~m:{}", decimal_from_bytes(d));
        }
        Bv::DateTime(ms) => {
            out.push_str("~d:");
            write_iso_millis(out, ms);
        }
        Bv::Bool(b) => out.push_str(if b { "~b:true" } else { "~b:false" }),
        Bv::Binary(subtype, bytes) => match as_uuid(subtype, bytes) {
            Some(u) => {
                out.push_str("~u:");
                out.push_str(uuid_text(u, &mut buf));
            }
            None => {
                let _ = write!(out, "~x:{subtype:02x}:");
                let mut hex = vec![0u8; bytes.len() * 2];
                out.push_str(hex_into(bytes, &mut hex));
            }
        },
        Bv::Timestamp { time, increment } => {
            let _ = write!(out, "~t:{time}:{increment}");
        }
        Bv::Null => out.push_str("~null"),
        Bv::Undefined => out.push_str("~undefined"),
        Bv::MinKey => out.push_str("~minKey"),
        Bv::MaxKey => out.push_str("~maxKey"),
        Bv::Document(_)
        | Bv::Array(_)
        | Bv::Regex(..)
        | Bv::Code(_)
        | Bv::CodeWithScope(..)
        | Bv::Symbol(_)
        | Bv::DbPointer(..) => {
            out.push_str("~j:");
            write_bv(out, id, JsonFlavor::Canonical)?;
        }
    }
    Ok(())
}
