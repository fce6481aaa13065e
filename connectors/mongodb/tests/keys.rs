//! Mixed `_id` types in one collection give distinct keys, with the documented encoding.

mod common;

use std::collections::HashSet;
use std::str::FromStr;

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Decimal128, Timestamp};
use common::*;
use mirror_core::mapping::{TableMapping, TableSchemaState};
use mirror_mongodb::bson_arrow::{encode_key, BsonConverter};
use proptest::prelude::*;

const OID: &str = "507f1f77bcf86cd799439011";

fn key_of(id: Bson) -> String {
    let raw = bson::RawBson::try_from(id).unwrap();
    let mut out = String::new();
    encode_key(&mut out, raw.as_raw_bson_ref()).unwrap();
    out
}

#[test]
fn mixed_id_types_in_one_collection_give_distinct_documented_keys() {
    let ids: Vec<(Bson, &str)> = vec![
        (Bson::Int32(1), "~i:1"),
        (Bson::Int64(2), "~i:2"),
        (Bson::Double(1.5), "~f:1.5"),
        (Bson::Double(3.0), "~f:3.0"),
        (Bson::String("1".into()), "1"),
        (Bson::String("~i:1".into()), "~s:~i:1"),
        (Bson::String(OID.into()), "~s:507f1f77bcf86cd799439011"),
        (Bson::String(OID.to_uppercase()), "507F1F77BCF86CD799439011"),
        (Bson::String("".into()), ""),
        (Bson::ObjectId(ObjectId::parse_str(OID).unwrap()), OID),
        (
            Bson::Document(doc! { "a": 1 }),
            r#"~j:{"a":{"$numberInt":"1"}}"#,
        ),
        (Bson::Document(doc! { "a": "1" }), r#"~j:{"a":"1"}"#),
        (
            Bson::Array(vec![Bson::Int32(1)]),
            r#"~j:[{"$numberInt":"1"}]"#,
        ),
        (Bson::Decimal128(Decimal128::from_str("1").unwrap()), "~m:1"),
        (Bson::Boolean(true), "~b:true"),
        (
            Bson::DateTime(DateTime::from_millis(0)),
            "~d:1970-01-01T00:00:00.000Z",
        ),
        (Bson::Null, "~null"),
        (Bson::MinKey, "~minKey"),
        (Bson::MaxKey, "~maxKey"),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: vec![0xab; 16],
            }),
            "~u:abababab-abab-abab-abab-abababababab",
        ),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![1, 2],
            }),
            "~x:00:0102",
        ),
        (
            Bson::Timestamp(Timestamp {
                time: 7,
                increment: 8,
            }),
            "~t:7:8",
        ),
    ];
    // Through the converter, as a collection holding all of them.
    let docs: Vec<_> = ids
        .iter()
        .map(|(id, _)| raw(&doc! { "_id": id.clone(), "v": 1 }))
        .collect();
    let refs: Vec<&bson::RawDocument> = docs.iter().map(|d| d.as_ref()).collect();
    let mut conv =
        BsonConverter::new("db.c", TableMapping::default(), TableSchemaState::new()).unwrap();
    let batch = conv.convert_documents(&refs).unwrap();
    let mut seen = HashSet::new();
    for (row, (id, expected)) in ids.iter().enumerate() {
        assert_eq!(cell(&batch, "_id", row), s(expected), "{id:?}");
        assert!(
            seen.insert(expected.to_string()),
            "duplicate key {expected}"
        );
    }
}

fn id_strategy() -> impl Strategy<Value = Bson> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<f64>().prop_map(Bson::Double),
        "[0-9a-f~:ijs]{0,26}".prop_map(Bson::String),
        any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(ObjectId::from_bytes(b))),
        any::<bool>().prop_map(Bson::Boolean),
        any::<i64>().prop_map(|ms| Bson::DateTime(DateTime::from_millis(ms))),
        Just(Bson::Null),
        Just(Bson::MinKey),
        Just(Bson::MaxKey),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        (any::<u32>(), any::<u32>())
            .prop_map(|(time, increment)| Bson::Timestamp(Timestamp { time, increment })),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Bson::Array),
            proptest::collection::vec(("[ab]", inner), 0..3)
                .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
        ]
    })
}

/// Whether MongoDB would consider the two `_id`s the same (one unique index entry): the same type
/// class and value, ints of either width being equal.
fn same_id(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Int32(x), Bson::Int64(y)) | (Bson::Int64(y), Bson::Int32(x)) => *x as i64 == *y,
        (Bson::Double(x), Bson::Double(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_id(a, b))
        }
        (Bson::Document(x), Bson::Document(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && same_id(a, b))
        }
        _ => a == b,
    }
}

proptest! {
    #[test]
    fn distinct_ids_give_distinct_keys(a in id_strategy(), b in id_strategy()) {
        let (ka, kb) = (key_of(a.clone()), key_of(b.clone()));
        if same_id(&a, &b) {
            prop_assert_eq!(ka, kb);
        } else {
            prop_assert_ne!(ka, kb, "{:?} vs {:?}", a, b);
        }
    }
}
