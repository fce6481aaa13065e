//! Golden tests: every BSON type, nesting, arrays, each JSON flavour and each pinned-type rule, with
//! the exact Arrow type and value produced.

mod common;

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow::datatypes::DataType;
use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{
    doc, Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex, Timestamp,
};
use common::*;
use mirror_core::config::TableSettings;
use mirror_core::mapping::{ColumnType, JsonFlavor, TableMapping, TableSchemaState};
use mirror_mongodb::bson_arrow::{BsonConverter, RowInput};

const OID: &str = "507f1f77bcf86cd799439011";
const UUID_BYTES: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];
const UUID_TEXT: &str = "12345678-9abc-def0-0123-456789abcdef";
const DATE_MS: i64 = 1_706_702_400_123;

fn oid() -> ObjectId {
    ObjectId::parse_str(OID).unwrap()
}

fn dec(text: &str) -> Bson {
    Bson::Decimal128(Decimal128::from_str(text).unwrap())
}

fn bin(subtype: BinarySubtype, bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype,
        bytes: bytes.to_vec(),
    })
}

fn mapping(toml_text: &str) -> TableMapping {
    #[derive(serde::Deserialize)]
    struct Root {
        tables: BTreeMap<String, TableSettings>,
    }
    let tables = toml::from_str::<Root>(toml_text).unwrap().tables;
    TableMapping::resolve(&tables, "db.c")
}

fn converter(m: TableMapping) -> BsonConverter {
    BsonConverter::new("db.c", m, TableSchemaState::new()).unwrap()
}

fn convert(m: TableMapping, docs: &[Document]) -> arrow::array::RecordBatch {
    let raws: Vec<_> = docs.iter().map(raw).collect();
    let refs: Vec<&bson::RawDocument> = raws.iter().map(|r| r.as_ref()).collect();
    converter(m).convert_documents(&refs).unwrap()
}

/// A document with a DBPointer field `p`, built by hand (the bson crate cannot construct one).
fn doc_with_dbpointer() -> bson::RawDocumentBuf {
    let mut body = Vec::new();
    // _id: int32 1
    body.push(0x10);
    body.extend_from_slice(b"_id\0");
    body.extend_from_slice(&1i32.to_le_bytes());
    // p: DBPointer("db.other", oid)
    body.push(0x0C);
    body.extend_from_slice(b"p\0");
    body.extend_from_slice(&9i32.to_le_bytes());
    body.extend_from_slice(b"db.other\0");
    body.extend_from_slice(&oid().bytes());
    let mut bytes = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&body);
    bytes.push(0);
    bson::RawDocumentBuf::from_bytes(bytes).unwrap()
}

#[test]
fn every_bson_type_gets_its_default_column() {
    let d = doc! {
        "_id": 1,
        "oid": oid(),
        "s": "héllo",
        "i32": 7i32,
        "i64": 1i64 << 40,
        "d": 2.5,
        "dec": dec("12.50"),
        "b": true,
        "date": DateTime::from_millis(DATE_MS),
        "nul": Bson::Null,
        "bin": bin(BinarySubtype::Generic, &[1, 2, 3]),
        "uuid": bin(BinarySubtype::Uuid, &UUID_BYTES),
        "bin80": bin(BinarySubtype::UserDefined(0x80), &[1, 2, 3]),
        "sub": { "x": 1, "y": "z" },
        "arr": [1, "a", { "b": true }],
        "ts": Timestamp { time: 1_700_000_000, increment: 5 },
        "re": Regex { pattern: "^a.c$".into(), options: "i".into() },
        "code": Bson::JavaScriptCode("function () {}".into()),
        "cws": Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code: "f".into(), scope: doc! { "x": 1 } }),
        "min": Bson::MinKey,
        "max": Bson::MaxKey,
        "sym": Bson::Symbol("abc".into()),
        "undef": Bson::Undefined,
    };
    let batch = convert(TableMapping::default(), &[d]);
    let expected: Vec<(&str, DataType, Cell)> = vec![
        ("_id", DataType::Utf8, s("~i:1")),
        ("oid", DataType::Utf8, s(OID)),
        ("s", DataType::Utf8, s("héllo")),
        ("i32", DataType::Int64, Cell::I64(7)),
        ("i64", DataType::Int64, Cell::I64(1 << 40)),
        ("d", DataType::Float64, Cell::F64(2.5)),
        ("dec", DataType::Utf8, s("12.50")),
        ("b", DataType::Boolean, Cell::Bool(true)),
        ("date", ts_utc(), Cell::TsMs(DATE_MS)),
        ("bin", DataType::Binary, Cell::Bin(vec![1, 2, 3])),
        ("uuid", DataType::Utf8, s(UUID_TEXT)),
        (
            "bin80",
            DataType::Utf8,
            s(r#"{"$binary":{"base64":"AQID","subType":"80"}}"#),
        ),
        ("sub", DataType::Utf8, s(r#"{"x":1,"y":"z"}"#)),
        ("arr", DataType::Utf8, s(r#"[1,"a",{"b":true}]"#)),
        (
            "ts",
            DataType::Utf8,
            s(r#"{"$timestamp":{"t":1700000000,"i":5}}"#),
        ),
        (
            "re",
            DataType::Utf8,
            s(r#"{"$regularExpression":{"pattern":"^a.c$","options":"i"}}"#),
        ),
        ("code", DataType::Utf8, s(r#"{"$code":"function () {}"}"#)),
        (
            "cws",
            DataType::Utf8,
            s(r#"{"$code":"f","$scope":{"x":1}}"#),
        ),
        ("min", DataType::Utf8, s(r#"{"$minKey":1}"#)),
        ("max", DataType::Utf8, s(r#"{"$maxKey":1}"#)),
        ("sym", DataType::Utf8, s(r#"{"$symbol":"abc"}"#)),
        ("_mirror_overflow", DataType::Utf8, Cell::Null),
    ];
    // Null and undefined give no column; everything else in document order.
    assert_eq!(
        column_names(&batch),
        expected.iter().map(|e| e.0.to_owned()).collect::<Vec<_>>()
    );
    for (name, ty, value) in expected {
        assert_eq!(data_type(&batch, name), ty, "{name}");
        assert_eq!(cell(&batch, name, 0), value, "{name}");
    }
    let schema = batch.schema();
    assert!(!schema.field(0).is_nullable(), "the key is not nullable");
    assert!(schema.fields().iter().skip(1).all(|f| f.is_nullable()));
}

#[test]
fn a_dbpointer_is_written_as_extended_json() {
    let raw = doc_with_dbpointer();
    let batch = converter(TableMapping::default())
        .convert_documents(&[&raw])
        .unwrap();
    assert_eq!(data_type(&batch, "p"), DataType::Utf8);
    assert_eq!(
        cell(&batch, "p", 0),
        s(&format!(
            r#"{{"$dbPointer":{{"$ref":"db.other","$id":{{"$oid":"{OID}"}}}}}}"#
        ))
    );
    let m = mapping("[tables.\"db.c\"]\ntypes = { p = \"json\" }");
    let batch = converter(m).convert_documents(&[&raw]).unwrap();
    assert_eq!(
        cell(&batch, "p", 0),
        s(&format!(r#"{{"$ref":"db.other","$id":"{OID}"}}"#))
    );
}

fn flavour_doc() -> Document {
    doc! {
        "_id": 1,
        "sub": {
            "i": 5i32, "l": 5i64, "d": 1.0, "nan": f64::NAN, "inf": f64::NEG_INFINITY,
            "oid": oid(),
            "date": DateTime::from_millis(DATE_MS),
            "old": DateTime::from_millis(-1),
            "dec": dec("12.50"),
            "bin": bin(BinarySubtype::Generic, &[1, 2, 3]),
            "uuid": bin(BinarySubtype::Uuid, &UUID_BYTES),
            "ts": Timestamp { time: 1_700_000_000, increment: 5 },
            "re": Regex { pattern: "^a".into(), options: "im".into() },
            "code": Bson::JavaScriptCode("f()".into()),
            "sym": Bson::Symbol("s".into()),
            "min": Bson::MinKey, "max": Bson::MaxKey,
            "undef": Bson::Undefined, "n": Bson::Null,
            "s": "q\"x\n",
            "arr": [1, "a"],
            "nested": { "k": true },
        }
    }
}

#[test]
fn each_json_flavour_writes_every_type_exactly() {
    let plain = concat!(
        r#"{"i":5,"l":5,"d":1.0,"nan":"NaN","inf":"-Infinity","oid":"507f1f77bcf86cd799439011","#,
        r#""date":"2024-01-31T12:00:00.123Z","old":"1969-12-31T23:59:59.999Z","dec":"12.50","#,
        r#""bin":"AQID","uuid":"12345678-9abc-def0-0123-456789abcdef","ts":{"t":1700000000,"i":5},"#,
        r#""re":"/^a/im","code":"f()","sym":"s","min":{"$minKey":1},"max":{"$maxKey":1},"#,
        r#""undef":null,"n":null,"s":"q\"x\n","arr":[1,"a"],"nested":{"k":true}}"#
    );
    let relaxed = concat!(
        r#"{"i":5,"l":5,"d":1.0,"nan":{"$numberDouble":"NaN"},"inf":{"$numberDouble":"-Infinity"},"#,
        r#""oid":{"$oid":"507f1f77bcf86cd799439011"},"date":{"$date":"2024-01-31T12:00:00.123Z"},"#,
        r#""old":{"$date":{"$numberLong":"-1"}},"dec":{"$numberDecimal":"12.50"},"#,
        r#""bin":{"$binary":{"base64":"AQID","subType":"00"}},"#,
        r#""uuid":{"$binary":{"base64":"EjRWeJq83vABI0VniavN7w==","subType":"04"}},"#,
        r#""ts":{"$timestamp":{"t":1700000000,"i":5}},"#,
        r#""re":{"$regularExpression":{"pattern":"^a","options":"im"}},"code":{"$code":"f()"},"#,
        r#""sym":{"$symbol":"s"},"min":{"$minKey":1},"max":{"$maxKey":1},"#,
        r#""undef":{"$undefined":true},"n":null,"s":"q\"x\n","arr":[1,"a"],"nested":{"k":true}}"#
    );
    let canonical = concat!(
        r#"{"i":{"$numberInt":"5"},"l":{"$numberLong":"5"},"d":{"$numberDouble":"1.0"},"#,
        r#""nan":{"$numberDouble":"NaN"},"inf":{"$numberDouble":"-Infinity"},"#,
        r#""oid":{"$oid":"507f1f77bcf86cd799439011"},"date":{"$date":{"$numberLong":"1706702400123"}},"#,
        r#""old":{"$date":{"$numberLong":"-1"}},"dec":{"$numberDecimal":"12.50"},"#,
        r#""bin":{"$binary":{"base64":"AQID","subType":"00"}},"#,
        r#""uuid":{"$binary":{"base64":"EjRWeJq83vABI0VniavN7w==","subType":"04"}},"#,
        r#""ts":{"$timestamp":{"t":1700000000,"i":5}},"#,
        r#""re":{"$regularExpression":{"pattern":"^a","options":"im"}},"code":{"$code":"f()"},"#,
        r#""sym":{"$symbol":"s"},"min":{"$minKey":1},"max":{"$maxKey":1},"#,
        r#""undef":{"$undefined":true},"n":null,"s":"q\"x\n","arr":[{"$numberInt":"1"},"a"],"#,
        r#""nested":{"k":true}}"#
    );
    for (flavour, expected) in [
        ("plain", plain),
        ("relaxed", relaxed),
        ("canonical", canonical),
    ] {
        let m = mapping(&format!("[tables.\"db.c\"]\njson = \"{flavour}\""));
        assert_eq!(
            m.json,
            serde_json::from_value::<JsonFlavor>(flavour.into()).unwrap()
        );
        let batch = convert(m, &[flavour_doc()]);
        assert_eq!(data_type(&batch, "sub"), DataType::Utf8);
        assert_eq!(cell(&batch, "sub", 0), s(expected), "{flavour}");
        // Every flavour is valid JSON.
        serde_json::from_str::<serde_json::Value>(expected).unwrap();
    }
}

#[test]
fn extended_json_parses_back_to_the_same_document() {
    let mut original = flavour_doc().get_document("sub").unwrap().clone();
    // NaN never equals itself; leave it out of the comparison.
    original.remove("nan");
    let d = doc! { "_id": 1, "sub": original.clone() };
    for flavour in ["relaxed", "canonical"] {
        let m = mapping(&format!("[tables.\"db.c\"]\njson = \"{flavour}\""));
        let batch = convert(m, std::slice::from_ref(&d));
        let Cell::Str(text) = cell(&batch, "sub", 0) else {
            panic!()
        };
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let back = Bson::try_from(value).unwrap();
        let mut expected = original.clone();
        if flavour == "relaxed" {
            // Relaxed JSON does not tell int32 from int64.
            expected.insert("l", 5i32);
        }
        assert_eq!(back, Bson::Document(expected), "{flavour}");
    }
}

#[test]
fn flattening_follows_the_depth_and_keeps_the_rest_as_json() {
    let d = doc! {
        "_id": 1,
        "addr": { "city": "X", "geo": { "lat": 1.5 }, "zip code": 123, "tags": ["a"] },
    };
    let batch = convert(
        mapping("[tables.\"db.c\"]\nflatten_depth = 1"),
        std::slice::from_ref(&d),
    );
    assert_eq!(
        column_names(&batch),
        [
            "_id",
            "addr_city",
            "addr_geo",
            "addr_zip_code",
            "addr_tags",
            "_mirror_overflow"
        ]
    );
    assert_eq!(cell(&batch, "addr_city", 0), s("X"));
    assert_eq!(cell(&batch, "addr_geo", 0), s(r#"{"lat":1.5}"#));
    assert_eq!(cell(&batch, "addr_zip_code", 0), Cell::I64(123));
    assert_eq!(cell(&batch, "addr_tags", 0), s(r#"["a"]"#));

    let batch = convert(
        mapping("[tables.\"db.c\"]\nflatten_depth = 2"),
        std::slice::from_ref(&d),
    );
    assert_eq!(data_type(&batch, "addr_geo_lat"), DataType::Float64);
    assert_eq!(cell(&batch, "addr_geo_lat", 0), Cell::F64(1.5));

    // A pinned path is not flattened.
    let batch = convert(
        mapping("[tables.\"db.c\"]\nflatten_depth = 2\njson_fields = [\"addr.geo\"]"),
        &[d],
    );
    assert_eq!(cell(&batch, "addr_geo", 0), s(r#"{"lat":1.5}"#));

    // An empty sub-document being flattened leaves a trace in overflow; a scalar at the same path
    // gets a column of its own.
    let batch = convert(
        mapping("[tables.\"db.c\"]\nflatten_depth = 1"),
        &[
            doc! { "_id": 1, "addr": {} },
            doc! { "_id": 2, "addr": "unknown" },
            doc! { "_id": 3, "addr": { "city": "Y" } },
        ],
    );
    assert_eq!(
        column_names(&batch),
        ["_id", "addr", "addr_city", "_mirror_overflow"]
    );
    assert_eq!(cell(&batch, "_mirror_overflow", 0), s(r#"{"addr":{}}"#));
    assert_eq!(cell(&batch, "addr", 1), s("unknown"));
    assert_eq!(cell(&batch, "addr", 2), Cell::Null);
    assert_eq!(cell(&batch, "addr_city", 2), s("Y"));
    assert_eq!(cell(&batch, "_mirror_overflow", 2), Cell::Null);
}

#[test]
fn arrays_of_documents_and_nested_arrays_are_json() {
    let d = doc! { "_id": 1, "items": [ { "sku": "a", "qty": 2 }, [1.5, null], [] ] };
    let batch = convert(mapping("[tables.\"db.c\"]\nflatten_depth = 3"), &[d]);
    assert_eq!(data_type(&batch, "items"), DataType::Utf8);
    assert_eq!(
        cell(&batch, "items", 0),
        s(r#"[{"sku":"a","qty":2},[1.5,null],[]]"#)
    );
}

#[test]
fn pinned_types_take_what_fits_and_overflow_the_rest() {
    let big = (1i64 << 53) + 1;
    let dec18 = DataType::Decimal128(18, 2);
    let cases: Vec<(&str, Bson, DataType, Cell, Option<String>)> = vec![
        (
            "decimal(18,2)",
            dec("12.5"),
            dec18.clone(),
            Cell::Dec(1250),
            None,
        ),
        (
            "decimal(18,2)",
            dec("-0.01"),
            dec18.clone(),
            Cell::Dec(-1),
            None,
        ),
        (
            "decimal(18,2)",
            Bson::Int32(3),
            dec18.clone(),
            Cell::Dec(300),
            None,
        ),
        (
            "decimal(18,2)",
            Bson::Double(19.99),
            dec18.clone(),
            Cell::Dec(1999),
            None,
        ),
        (
            "decimal(18,2)",
            dec("1.234"),
            dec18.clone(),
            Cell::Null,
            Some(r#"{"v":{"$numberDecimal":"1.234"}}"#.into()),
        ),
        (
            "decimal(4,2)",
            dec("123.4"),
            DataType::Decimal128(4, 2),
            Cell::Null,
            Some(r#"{"v":{"$numberDecimal":"123.4"}}"#.into()),
        ),
        (
            "decimal(38,0)",
            dec("1E+40"),
            DataType::Decimal128(38, 0),
            Cell::Null,
            Some(r#"{"v":{"$numberDecimal":"1E+40"}}"#.into()),
        ),
        (
            "decimal(38,0)",
            dec("NaN"),
            DataType::Decimal128(38, 0),
            Cell::Null,
            Some(r#"{"v":{"$numberDecimal":"NaN"}}"#.into()),
        ),
        (
            "decimal(18,2)",
            Bson::String("12.5".into()),
            dec18,
            Cell::Null,
            Some(r#"{"v":"12.5"}"#.into()),
        ),
        ("int64", Bson::Int32(7), DataType::Int64, Cell::I64(7), None),
        (
            "int64",
            Bson::Double(2.5),
            DataType::Int64,
            Cell::Null,
            Some(r#"{"v":2.5}"#.into()),
        ),
        (
            "double",
            Bson::Int64(3),
            DataType::Float64,
            Cell::F64(3.0),
            None,
        ),
        (
            "double",
            Bson::Int64(big),
            DataType::Float64,
            Cell::Null,
            Some(format!(r#"{{"v":{big}}}"#)),
        ),
        (
            "double",
            Bson::String("n/a".into()),
            DataType::Float64,
            Cell::Null,
            Some(r#"{"v":"n/a"}"#.into()),
        ),
        (
            "string",
            Bson::String("x".into()),
            DataType::Utf8,
            s("x"),
            None,
        ),
        (
            "string",
            Bson::ObjectId(oid()),
            DataType::Utf8,
            Cell::Null,
            Some(format!(r#"{{"v":{{"$oid":"{OID}"}}}}"#)),
        ),
        (
            "string",
            Bson::Int32(5),
            DataType::Utf8,
            Cell::Null,
            Some(r#"{"v":5}"#.into()),
        ),
        (
            "objectid",
            Bson::ObjectId(oid()),
            DataType::Utf8,
            s(OID),
            None,
        ),
        ("json", Bson::Int32(5), DataType::Utf8, s("5"), None),
        (
            "json",
            Bson::String("x".into()),
            DataType::Utf8,
            s("\"x\""),
            None,
        ),
        (
            "json",
            Bson::Document(doc! { "a": 1 }),
            DataType::Utf8,
            s(r#"{"a":1}"#),
            None,
        ),
        (
            "timestamp",
            Bson::DateTime(DateTime::from_millis(DATE_MS)),
            ts_utc(),
            Cell::TsMs(DATE_MS),
            None,
        ),
        (
            "timestamp",
            Bson::String("2024-01-01".into()),
            ts_utc(),
            Cell::Null,
            Some(r#"{"v":"2024-01-01"}"#.into()),
        ),
        (
            "bool",
            Bson::Boolean(false),
            DataType::Boolean,
            Cell::Bool(false),
            None,
        ),
        (
            "bool",
            Bson::Int32(1),
            DataType::Boolean,
            Cell::Null,
            Some(r#"{"v":1}"#.into()),
        ),
        (
            "binary",
            bin(BinarySubtype::Generic, &[9]),
            DataType::Binary,
            Cell::Bin(vec![9]),
            None,
        ),
        (
            "binary",
            bin(BinarySubtype::Uuid, &UUID_BYTES),
            DataType::Binary,
            Cell::Null,
            Some(
                r#"{"v":{"$binary":{"base64":"EjRWeJq83vABI0VniavN7w==","subType":"04"}}}"#.into(),
            ),
        ),
        (
            "uuid",
            bin(BinarySubtype::Uuid, &UUID_BYTES),
            DataType::Utf8,
            s(UUID_TEXT),
            None,
        ),
        (
            "decimal",
            dec("1.05E+3"),
            DataType::Utf8,
            s("1.05E+3"),
            None,
        ),
        (
            "extjson",
            Bson::MinKey,
            DataType::Utf8,
            s(r#"{"$minKey":1}"#),
            None,
        ),
        ("int64", Bson::Null, DataType::Int64, Cell::Null, None),
    ];
    for (pin, value, ty, expected, overflow) in cases {
        let m = mapping(&format!("[tables.\"db.c\"]\ntypes = {{ v = \"{pin}\" }}"));
        assert_eq!(
            m.types.get("v").map(ColumnType::to_string).as_deref(),
            Some(pin)
        );
        let mut conv = converter(m);
        let raw_doc = raw(&doc! { "_id": 1, "v": value.clone() });
        let batch = conv.convert_documents(&[&raw_doc]).unwrap();
        let case = format!("{pin} <- {value:?}");
        assert_eq!(data_type(&batch, "v"), ty, "{case}");
        assert_eq!(cell(&batch, "v", 0), expected, "{case}");
        let got = match cell(&batch, "_mirror_overflow", 0) {
            Cell::Null => None,
            Cell::Str(text) => Some(text),
            other => panic!("{other:?}"),
        };
        assert_eq!(got, overflow, "{case}");
        assert_eq!(
            conv.overflow_stats().total(),
            u64::from(overflow.is_some()),
            "{case}"
        );
    }
}

#[test]
fn inference_widens_ints_to_double_and_keeps_types_across_batches_and_restarts() {
    let mut conv = converter(TableMapping::default());
    let docs = [
        doc! { "_id": 1, "n": 1, "s": "a" },
        doc! { "_id": 2, "n": 2.5, "s": 5 },
        doc! { "_id": 3, "n": Bson::Null, "z": Bson::Null },
    ];
    let raws: Vec<_> = docs.iter().map(raw).collect();
    let refs: Vec<&bson::RawDocument> = raws.iter().map(|r| r.as_ref()).collect();
    let batch = conv.convert_documents(&refs).unwrap();
    assert_eq!(column_names(&batch), ["_id", "n", "s", "_mirror_overflow"]);
    assert_eq!(data_type(&batch, "n"), DataType::Float64);
    assert_eq!(
        (0..3).map(|r| cell(&batch, "n", r)).collect::<Vec<_>>(),
        [Cell::F64(1.0), Cell::F64(2.5), Cell::Null]
    );
    // One string and one int: a tie, the first seen wins; the int is kept in overflow.
    assert_eq!(data_type(&batch, "s"), DataType::Utf8);
    assert_eq!(cell(&batch, "s", 1), Cell::Null);
    assert_eq!(cell(&batch, "_mirror_overflow", 1), s(r#"{"s":5}"#));

    // A later batch never changes a type: the string goes to overflow.
    let d = raw(&doc! { "_id": 4, "n": "x", "new": true });
    let batch = conv.convert_documents(&[&d]).unwrap();
    assert_eq!(data_type(&batch, "n"), DataType::Float64);
    assert_eq!(cell(&batch, "_mirror_overflow", 0), s(r#"{"n":"x"}"#));
    assert_eq!(
        column_names(&batch),
        ["_id", "n", "s", "new", "_mirror_overflow"]
    );

    // After a restart from the saved state: same columns, same types, new ones at the end.
    let saved = serde_json::to_string(&conv.state().to_json()).unwrap();
    let state = TableSchemaState::from_json(serde_json::from_str(&saved).unwrap()).unwrap();
    let mut conv = BsonConverter::new("db.c", TableMapping::default(), state).unwrap();
    let d = raw(&doc! { "_id": 5, "later": 1, "n": 7 });
    let batch = conv.convert_documents(&[&d]).unwrap();
    assert_eq!(
        column_names(&batch),
        ["_id", "n", "s", "new", "later", "_mirror_overflow"]
    );
    assert_eq!(cell(&batch, "n", 0), Cell::F64(7.0));
    assert_eq!(cell(&batch, "new", 0), Cell::Null);
}

#[test]
fn a_sample_fixes_types_before_the_first_batch() {
    let mut conv = converter(TableMapping::default());
    let sample: Vec<_> = [
        doc! { "_id": 1, "a": 1 },
        doc! { "_id": 2, "a": 2.5, "b": "x" },
        doc! { "_id": 3, "b": "y", "c": Bson::Null },
    ]
    .iter()
    .map(raw)
    .collect();
    conv.observe_sample(sample.iter().map(|r| r.as_ref()))
        .unwrap();
    let cols: Vec<(String, ColumnType)> = conv
        .state()
        .columns()
        .iter()
        .map(|c| (c.name.clone(), c.ty))
        .collect();
    assert_eq!(
        cols,
        [
            ("a".to_owned(), ColumnType::Double),
            ("b".to_owned(), ColumnType::String)
        ]
    );
    let d = raw(&doc! { "_id": 4, "b": 1, "a": 3 });
    let batch = conv.convert_documents(&[&d]).unwrap();
    assert_eq!(cell(&batch, "a", 0), Cell::F64(3.0));
    assert_eq!(cell(&batch, "_mirror_overflow", 0), s(r#"{"b":1}"#));
}

#[test]
fn renames_excludes_includes_and_name_rules_shape_the_columns() {
    let m = mapping(
        r#"
        [tables."db.c"]
        flatten_depth = 1
        rename = { "customer.name" = "customer" }
        exclude = ["secret", "customer.password"]
        "#,
    );
    let d = doc! {
        "_id": 1,
        "secret": "s",
        "customer": { "name": "Ann", "password": "p", "e.mail": "a@b" },
        "a_b": 1, "a b": 2, "A$B": 3, "": 4,
        "x".repeat(130): 5,
    };
    let mut conv = converter(m);
    let batch = conv.convert_documents(&[&raw(&d)]).unwrap();
    // The collisions are recorded for `mirror check` (and logged).
    let collisions: Vec<(String, String)> = conv
        .state()
        .collisions()
        .iter()
        .map(|c| (c.path.join("."), c.got.clone()))
        .collect();
    assert_eq!(
        collisions,
        [
            ("a b".to_owned(), "a_b__2".to_owned()),
            ("A$B".to_owned(), "A_B__3".to_owned())
        ]
    );
    let long = format!("{}_", "x".repeat(119));
    let names = column_names(&batch);
    assert_eq!(
        &names[..7],
        [
            "_id",
            "customer",
            "customer_e_mail",
            "a_b",
            "a_b__2",
            "A_B__3",
            "_"
        ]
    );
    assert!(
        names[7].starts_with(&long) && names[7].chars().count() == 128,
        "{}",
        names[7]
    );
    assert_eq!(names[8], "_mirror_overflow");
    assert_eq!(cell(&batch, "customer", 0), s("Ann"));
    assert_eq!(cell(&batch, "A_B__3", 0), Cell::I64(3));

    let m = mapping(
        r#"
        [tables."db.c"]
        include = ["customer.name", "total"]
        column_names = "strict"
        "#,
    );
    let d = doc! { "_id": 1, "total": 5, "customer": { "name": "Ann", "é": 1 }, "other": 1 };
    let batch = convert(m, &[d]);
    assert_eq!(
        column_names(&batch),
        ["_id", "total", "customer_name", "_mirror_overflow"]
    );
}

#[test]
fn deletes_carry_the_key_and_nulls_and_repeated_fields_overflow() {
    let mut conv = converter(TableMapping::default());
    let d = raw(&doc! { "_id": oid(), "n": 1 });
    // A document repeating a field name (legal in BSON) keeps the second value in overflow.
    let mut repeated = raw(&doc! { "_id": 2, "n": 2 });
    repeated.append("n", "two");
    let id = Bson::ObjectId(oid());
    let id_raw = bson::RawBson::try_from(id).unwrap();
    let rows = [
        RowInput::Document(&d),
        RowInput::Delete(id_raw.as_raw_bson_ref()),
        RowInput::Document(&repeated),
    ];
    let batch = conv.convert(&rows).unwrap();
    assert_eq!(cell(&batch, "_id", 0), s(OID));
    assert_eq!(cell(&batch, "_id", 1), s(OID));
    assert_eq!(cell(&batch, "n", 1), Cell::Null);
    assert_eq!(cell(&batch, "_mirror_overflow", 1), Cell::Null);
    assert_eq!(cell(&batch, "n", 2), Cell::I64(2));
    assert_eq!(cell(&batch, "_mirror_overflow", 2), s(r#"{"n":"two"}"#));

    let no_id = raw(&doc! { "n": 1 });
    let err = conv.convert_documents(&[&no_id]).unwrap_err();
    assert_eq!(err.to_string(), "document has no `_id` field");
    // The converter is usable after an error.
    assert_eq!(conv.convert_documents(&[&d]).unwrap().num_rows(), 1);
}

#[test]
fn documents_that_keep_bringing_new_fields_are_typed_from_one_walk_of_the_batch() {
    // Map-like documents: every document has fields no other has. Typing them must not walk the
    // rest of the batch once per new field (that would take minutes here).
    let docs: Vec<Document> = (0..1000)
        .map(|i| {
            let mut d = doc! { "_id": i };
            for k in 0..3 {
                d.insert(
                    format!("f{i}_{k}"),
                    if k == 0 {
                        Bson::Int32(k)
                    } else {
                        Bson::Double(0.5)
                    },
                );
            }
            d
        })
        .collect();
    let started = std::time::Instant::now();
    let batch = convert(TableMapping::default(), &docs);
    assert_eq!(batch.num_columns(), 3000 + 2);
    assert_eq!(data_type(&batch, "f999_0"), DataType::Int64);
    assert_eq!(cell(&batch, "f999_0", 999), Cell::I64(0));
    assert_eq!(cell(&batch, "f999_1", 998), Cell::Null);
    assert_eq!(data_type(&batch, "f7_2"), DataType::Float64);
    assert_eq!(cell(&batch, "f7_2", 7), Cell::F64(0.5));
    eprintln!("3000 new fields in 1000 documents: {:?}", started.elapsed());
}
