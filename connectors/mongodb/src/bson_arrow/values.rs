//! BSON values to the mapping's vocabulary: [`Value`]s for typed columns, [`ValueKind`]s for type
//! inference, and the small text forms (object id hex, UUID, Decimal128 parts).

use bson::Decimal128;
use mirror_core::mapping::{Decimal, JsonFlavor, Value, ValueKind};

use super::json::write_bv;
use super::reader::Bv;
use super::ConvertError;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// BSON binary subtypes this module cares about.
pub(crate) const SUBTYPE_GENERIC: u8 = 0x00;
pub(crate) const SUBTYPE_UUID: u8 = 0x04;

/// Writes `bytes` as lowercase hex into `out` (which must be twice as long).
pub(crate) fn hex_into<'b>(bytes: &[u8], out: &'b mut [u8]) -> &'b str {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(&out[..2 * bytes.len()]).unwrap_or_default()
}

/// An object id as 24 lowercase hex digits.
pub(crate) fn object_id_hex<'b>(id: &[u8; 12], buf: &'b mut [u8; 36]) -> &'b str {
    hex_into(id, &mut buf[..24])
}

/// 16 bytes as a canonical UUID, `8-4-4-4-12` lowercase hex.
pub(crate) fn uuid_text<'b>(bytes: &[u8; 16], buf: &'b mut [u8; 36]) -> &'b str {
    let mut j = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            buf[j] = b'-';
            j += 1;
        }
        buf[j] = HEX[(b >> 4) as usize];
        buf[j + 1] = HEX[(b & 0xf) as usize];
        j += 2;
    }
    std::str::from_utf8(&buf[..36]).unwrap_or_default()
}

/// The 16 bytes of a binary value that is a UUID (subtype 4, 16 bytes long).
pub(crate) fn as_uuid(subtype: u8, bytes: &[u8]) -> Option<&[u8; 16]> {
    if subtype == SUBTYPE_UUID {
        bytes.try_into().ok()
    } else {
        None
    }
}

/// The sign, coefficient and exponent of a Decimal128.
pub fn decimal_parts(d: &Decimal128) -> Decimal {
    decimal_from_bytes(&d.bytes())
}

/// The sign, coefficient and exponent of Decimal128 bytes (IEEE 754-2008 BID encoding).
pub(crate) fn decimal_from_bytes(bytes: &[u8; 16]) -> Decimal {
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    low.copy_from_slice(&bytes[..8]);
    high.copy_from_slice(&bytes[8..]);
    let (low, high) = (u64::from_le_bytes(low), u64::from_le_bytes(high));
    let negative = high >> 63 == 1;
    let (exponent, coefficient) = if (high >> 61) & 0b11 == 0b11 {
        match (high >> 58) & 0b11111 {
            0b11111 => return Decimal::NaN,
            0b11110 => return Decimal::Infinity { negative },
            // A coefficient of 2^113 or more is not canonical and reads as zero.
            _ => ((high >> 47) & 0x3fff, 0u128),
        }
    } else {
        let c = ((high & 0x1_ffff_ffff_ffff) as u128) << 64 | low as u128;
        let c = if c >= 10u128.pow(34) { 0 } else { c };
        ((high >> 49) & 0x3fff, c)
    };
    Decimal::Finite {
        negative,
        coefficient,
        exponent: exponent as i32 - 6176,
    }
}

/// The kind of a value, for type inference; `flatten` says whether a sub-document at this place is
/// flattened (then it is no value of the field itself: `None`).
pub(crate) fn kind_of(value: &Bv<'_>, flatten: bool) -> Option<ValueKind> {
    Some(match value {
        Bv::Null | Bv::Undefined => ValueKind::Null,
        Bv::Bool(_) => ValueKind::Bool,
        Bv::Int32(_) | Bv::Int64(_) => ValueKind::Int,
        Bv::Double(_) => ValueKind::Double,
        Bv::Decimal(_) => ValueKind::Decimal,
        Bv::DateTime(_) => ValueKind::Timestamp,
        Bv::String(_) => ValueKind::String,
        Bv::ObjectId(_) => ValueKind::ObjectId,
        Bv::Binary(SUBTYPE_GENERIC, _) => ValueKind::Binary,
        Bv::Binary(t, b) if as_uuid(*t, b).is_some() => ValueKind::Uuid,
        Bv::Document(_) if flatten => return None,
        Bv::Document(_) | Bv::Array(_) => ValueKind::Json,
        Bv::Binary(..)
        | Bv::Regex(..)
        | Bv::Code(_)
        | Bv::CodeWithScope(..)
        | Bv::Symbol(_)
        | Bv::Timestamp { .. }
        | Bv::MinKey
        | Bv::MaxKey
        | Bv::DbPointer(..) => ValueKind::ExtJson,
    })
}

/// Classifies a BSON value for a typed (non-JSON) column. Text forms are written into `buf` (ids)
/// or `scratch` (documents and arrays as JSON in `flavor`, other types as relaxed Extended JSON).
#[inline]
pub(crate) fn classify<'a>(
    value: Bv<'a>,
    flavor: JsonFlavor,
    buf: &'a mut [u8; 36],
    scratch: &'a mut String,
) -> Result<Value<'a>, ConvertError> {
    Ok(match value {
        Bv::Null | Bv::Undefined => Value::Null,
        Bv::Bool(b) => Value::Bool(b),
        Bv::Int32(v) => Value::Int(v as i64),
        Bv::Int64(v) => Value::Int(v),
        Bv::Double(v) => Value::Double(v),
        Bv::Decimal(d) => Value::Decimal(decimal_from_bytes(d)),
        Bv::DateTime(ms) => Value::Timestamp(ms),
        Bv::String(s) => Value::String(s),
        Bv::ObjectId(id) => Value::ObjectId(object_id_hex(id, buf)),
        Bv::Binary(SUBTYPE_GENERIC, bytes) => Value::Binary(bytes),
        Bv::Binary(t, bytes) if as_uuid(t, bytes).is_some() => match as_uuid(t, bytes) {
            Some(u) => Value::Uuid(uuid_text(u, buf)),
            None => Value::Null,
        },
        Bv::Document(_) | Bv::Array(_) => {
            scratch.clear();
            write_bv(scratch, value, flavor)?;
            Value::Json(scratch)
        }
        _ => {
            scratch.clear();
            write_bv(scratch, value, JsonFlavor::Relaxed)?;
            Value::ExtJson(scratch)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimal_parts_agree_with_the_bson_crate() {
        for text in [
            "0",
            "-0",
            "1",
            "-1.5",
            "0.001",
            "1E+3",
            "1.05E+3",
            "1E-7",
            "123456789.123456789",
            "9999999999999999999999999999999999",
            "-9.999999999999999999999999999999999E+6144",
            "1E-6176",
            "0E+6111",
            "0.00",
            "NaN",
            "Infinity",
            "-Infinity",
            "12345678901234567890",
        ] {
            let d = Decimal128::from_str(text).unwrap();
            assert_eq!(decimal_parts(&d).to_string(), d.to_string(), "{text}");
        }
        let d = Decimal128::from_str("-12.50").unwrap();
        assert_eq!(
            decimal_parts(&d),
            Decimal::Finite {
                negative: true,
                coefficient: 1250,
                exponent: -2
            }
        );
    }

    #[test]
    fn ids_and_uuids_are_lowercase_hex() {
        let mut buf = [0u8; 36];
        let id = bson::oid::ObjectId::parse_str("507F1F77BCF86CD799439011").unwrap();
        assert_eq!(
            object_id_hex(&id.bytes(), &mut buf),
            "507f1f77bcf86cd799439011"
        );
        let bytes: [u8; 16] = *b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67\x89\xab\xcd\xef";
        assert_eq!(
            uuid_text(&bytes, &mut buf),
            "12345678-9abc-def0-0123-456789abcdef"
        );
    }
}
