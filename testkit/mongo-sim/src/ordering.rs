//! BSON comparison order, exactly as mongod sorts and indexes values.
//!
//! Type classes (mongod's "canonical types", `BSONElement::canonicalType` in
//! `src/mongo/bson/bsonelement.h`): MinKey < Undefined < Null < numbers < String/Symbol < Object <
//! Array < BinData < ObjectId < Bool < Date < Timestamp < Regex < DBPointer < Code < CodeWScope <
//! MaxKey. Within a class, values compare as `compareElementValues` does
//! (`src/mongo/bson/bsonelement.cpp`): numbers by exact value across int32/int64/double/decimal128
//! (NaN lowest, equal to NaN), strings by bytes then length, objects field by field (canonical type,
//! then name, then value), BinData by length, subtype, bytes, and so on.

use std::cmp::Ordering;

use bson::{RawArray, RawBsonRef, RawDocument};

/// The canonical type class rank (smaller sorts first).
pub fn type_class(v: &RawBsonRef<'_>) -> u8 {
    match v {
        RawBsonRef::MinKey => 0,
        RawBsonRef::Undefined => 1,
        RawBsonRef::Null => 2,
        RawBsonRef::Double(_)
        | RawBsonRef::Int32(_)
        | RawBsonRef::Int64(_)
        | RawBsonRef::Decimal128(_) => 3,
        RawBsonRef::String(_) | RawBsonRef::Symbol(_) => 4,
        RawBsonRef::Document(_) => 5,
        RawBsonRef::Array(_) => 6,
        RawBsonRef::Binary(_) => 7,
        RawBsonRef::ObjectId(_) => 8,
        RawBsonRef::Boolean(_) => 9,
        RawBsonRef::DateTime(_) => 10,
        RawBsonRef::Timestamp(_) => 11,
        RawBsonRef::RegularExpression(_) => 12,
        RawBsonRef::DbPointer(_) => 13,
        RawBsonRef::JavaScriptCode(_) => 14,
        RawBsonRef::JavaScriptCodeWithScope(_) => 15,
        RawBsonRef::MaxKey => 16,
    }
}

/// Whether the value is a number (int32, int64, double, decimal128).
pub fn is_number(v: &RawBsonRef<'_>) -> bool {
    type_class(v) == 3
}

/// Compares two values in BSON order.
pub fn compare(a: &RawBsonRef<'_>, b: &RawBsonRef<'_>) -> Ordering {
    let (ta, tb) = (type_class(a), type_class(b));
    if ta != tb {
        return ta.cmp(&tb);
    }
    compare_same_class(a, b)
}

fn compare_same_class(a: &RawBsonRef<'_>, b: &RawBsonRef<'_>) -> Ordering {
    use RawBsonRef as R;
    match (a, b) {
        (R::String(x) | R::Symbol(x), R::String(y) | R::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (R::Document(x), R::Document(y)) => compare_documents(x, y),
        (R::Array(x), R::Array(y)) => compare_arrays(x, y),
        (R::Binary(x), R::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(y.bytes)),
        (R::ObjectId(x), R::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (R::Boolean(x), R::Boolean(y)) => x.cmp(y),
        (R::DateTime(x), R::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (R::Timestamp(x), R::Timestamp(y)) => (x.time, x.increment).cmp(&(y.time, y.increment)),
        (R::RegularExpression(x), R::RegularExpression(y)) => x
            .pattern
            .as_bytes()
            .cmp(y.pattern.as_bytes())
            .then_with(|| x.options.as_bytes().cmp(y.options.as_bytes())),
        (R::DbPointer(_), R::DbPointer(_)) => {
            // mongod: value size first, then memcmp of the value bytes.
            let (va, vb) = (value_bytes(a), value_bytes(b));
            va.len().cmp(&vb.len()).then_with(|| va.cmp(&vb))
        }
        (R::JavaScriptCode(x), R::JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (R::JavaScriptCodeWithScope(x), R::JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents(x.scope, y.scope)),
        _ if is_number(a) && is_number(b) => compare_numbers(a, b),
        // MinKey, MaxKey, Null, Undefined: one value per class.
        _ => Ordering::Equal,
    }
}

/// The encoded value bytes of an element (used where mongod memcmp's a value).
fn value_bytes(v: &RawBsonRef<'_>) -> Vec<u8> {
    let mut doc = bson::RawDocumentBuf::new();
    doc.append_ref("", *v);
    let bytes = doc.as_bytes();
    // 4 length bytes, 1 type byte, the empty key's NUL, the value, the final NUL.
    bytes[6..bytes.len() - 1].to_vec()
}

/// Compares two documents as mongod's `BSONObj::woCompare` with field names considered.
pub fn compare_documents(a: &RawDocument, b: &RawDocument) -> Ordering {
    let mut ia = a.iter();
    let mut ib = b.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(Ok((ka, va))), Some(Ok((kb, vb)))) => {
                let ord = type_class(&va)
                    .cmp(&type_class(&vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare_same_class(&va, &vb));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            // Stored and query documents are validated when they enter the simulator; only a bug
            // can bring a malformed one here.
            _ => return Ordering::Equal,
        }
    }
}

/// Compares two arrays element by element (their field names "0", "1", ... always agree).
pub fn compare_arrays(a: &RawArray, b: &RawArray) -> Ordering {
    let mut ia = a.into_iter();
    let mut ib = b.into_iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(Ok(va)), Some(Ok(vb))) => {
                let ord = compare(&va, &vb);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            _ => return Ordering::Equal,
        }
    }
}

/// An exact representation of a BSON number.
#[derive(Debug, Clone, Copy)]
enum Num {
    NaN,
    Inf(bool), // true = negative
    /// (negative, magnitude, power of two, power of ten): value = ±m · 2^p2 · 10^p10.
    Finite(bool, u128, i32, i32),
}

fn to_num(v: &RawBsonRef<'_>) -> Num {
    match v {
        RawBsonRef::Int32(i) => Num::Finite(*i < 0, i64::from(*i).unsigned_abs() as u128, 0, 0),
        RawBsonRef::Int64(i) => Num::Finite(*i < 0, i.unsigned_abs() as u128, 0, 0),
        RawBsonRef::Double(d) => double_to_num(*d),
        RawBsonRef::Decimal128(d) => decimal_to_num(d.bytes()),
        _ => Num::NaN,
    }
}

fn double_to_num(d: f64) -> Num {
    if d.is_nan() {
        return Num::NaN;
    }
    if d.is_infinite() {
        return Num::Inf(d < 0.0);
    }
    let bits = d.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    Num::Finite(neg, m as u128, e, 0)
}

/// Decodes an IEEE 754-2008 decimal128 (BID encoding, as BSON stores it).
fn decimal_to_num(bytes: [u8; 16]) -> Num {
    let v = u128::from_le_bytes(bytes);
    let neg = v >> 127 == 1;
    let combo = (v >> 122) & 0x1f; // the 5 bits after the sign
    if combo == 0x1f {
        return Num::NaN;
    }
    if combo == 0x1e {
        return Num::Inf(neg);
    }
    let (exp, coeff) = if (v >> 125) & 0x3 == 0x3 {
        // "11" form: the implied coefficient is >= 2^113 > 10^34 - 1, non-canonical, so zero.
        (((v >> 111) & 0x3fff) as i32, 0u128)
    } else {
        (((v >> 113) & 0x3fff) as i32, v & ((1u128 << 113) - 1))
    };
    let coeff = if coeff > 9_999_999_999_999_999_999_999_999_999_999_999u128 {
        0
    } else {
        coeff
    };
    Num::Finite(neg, coeff, 0, exp - 6176)
}

/// Compares two numbers by exact value (mongod's `compareElementValues` for numbers: NaN lowest,
/// NaN == NaN, -0 == 0, int64 vs double and decimal vs double exact).
pub fn compare_numbers(a: &RawBsonRef<'_>, b: &RawBsonRef<'_>) -> Ordering {
    // Fast paths for the common same-kind cases; the general path is exact for all of them.
    match (a, b) {
        (RawBsonRef::Int32(x), RawBsonRef::Int32(y)) => return x.cmp(y),
        (RawBsonRef::Int64(x), RawBsonRef::Int64(y)) => return x.cmp(y),
        (RawBsonRef::Int32(x), RawBsonRef::Int64(y)) => return i64::from(*x).cmp(y),
        (RawBsonRef::Int64(x), RawBsonRef::Int32(y)) => return x.cmp(&i64::from(*y)),
        (RawBsonRef::Double(x), RawBsonRef::Double(y)) if !x.is_nan() && !y.is_nan() => {
            return x.partial_cmp(y).unwrap_or(Ordering::Equal)
        }
        _ => {}
    }
    compare_num(to_num(a), to_num(b))
}

fn sign_rank(n: &Num) -> i8 {
    match n {
        Num::NaN => -3,
        Num::Inf(true) => -2,
        Num::Finite(_, 0, _, _) => 0,
        Num::Finite(true, _, _, _) => -1,
        Num::Finite(false, _, _, _) => 1,
        Num::Inf(false) => 2,
    }
}

fn compare_num(a: Num, b: Num) -> Ordering {
    let (ra, rb) = (sign_rank(&a), sign_rank(&b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Num::Finite(neg, ma, pa2, pa10), Num::Finite(_, mb, pb2, pb10)) if ma != 0 => {
            let mag = compare_magnitude(ma, pa2, pa10, mb, pb2, pb10);
            if neg {
                mag.reverse()
            } else {
                mag
            }
        }
        _ => Ordering::Equal,
    }
}

/// Compares m1·2^a2·10^a10 with m2·2^b2·10^b10 (both nonzero) exactly.
fn compare_magnitude(m1: u128, a2: i32, a10: i32, m2: u128, b2: i32, b10: i32) -> Ordering {
    // A cheap estimate first: log2 of each side.
    const LOG2_10: f64 = std::f64::consts::LOG2_10;
    let l1 = (m1 as f64).log2() + f64::from(a2) + f64::from(a10) * LOG2_10;
    let l2 = (m2 as f64).log2() + f64::from(b2) + f64::from(b10) * LOG2_10;
    if l1 - l2 > 4.0 {
        return Ordering::Greater;
    }
    if l2 - l1 > 4.0 {
        return Ordering::Less;
    }
    // Close: scale both to integers and compare exactly.
    let min2 = a2.min(b2);
    let min10 = a10.min(b10);
    let mut x = BigUint::from_u128(m1);
    x.mul_pow10((a10 - min10) as u32);
    x.shl((a2 - min2) as u32);
    let mut y = BigUint::from_u128(m2);
    y.mul_pow10((b10 - min10) as u32);
    y.shl((b2 - min2) as u32);
    x.cmp(&y)
}

/// Just enough of an unsigned big integer for exact number comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BigUint {
    limbs: Vec<u64>, // little-endian, no trailing zero limbs
}

impl BigUint {
    fn from_u128(v: u128) -> Self {
        let mut b = BigUint {
            limbs: vec![v as u64, (v >> 64) as u64],
        };
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn mul_small(&mut self, f: u64) {
        let mut carry: u128 = 0;
        for limb in &mut self.limbs {
            let v = u128::from(*limb) * u128::from(f) + carry;
            *limb = v as u64;
            carry = v >> 64;
        }
        if carry > 0 {
            self.limbs.push(carry as u64);
        }
    }

    fn mul_pow10(&mut self, mut n: u32) {
        while n >= 19 {
            self.mul_small(10u64.pow(19));
            n -= 19;
        }
        if n > 0 {
            self.mul_small(10u64.pow(n));
        }
    }

    fn shl(&mut self, n: u32) {
        let words = (n / 64) as usize;
        let bits = n % 64;
        if bits > 0 {
            let mut carry = 0u64;
            for limb in &mut self.limbs {
                let v = (*limb << bits) | carry;
                carry = *limb >> (64 - bits);
                *limb = v;
            }
            if carry > 0 {
                self.limbs.push(carry);
            }
        }
        if words > 0 && !self.limbs.is_empty() {
            let mut v = vec![0u64; words];
            v.append(&mut self.limbs);
            self.limbs = v;
        }
    }
}

impl PartialOrd for BigUint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BigUint {
    fn cmp(&self, other: &Self) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }
}

/// An owned BSON value ordered by BSON comparison order: the key of the `_id` index.
#[derive(Debug, Clone)]
pub struct OrderedBson(pub bson::RawBson);

impl PartialEq for OrderedBson {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for OrderedBson {}
impl PartialOrd for OrderedBson {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedBson {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0.as_raw_bson_ref(), &other.0.as_raw_bson_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Decimal128, RawBson};

    fn dec(s: &str) -> RawBson {
        RawBson::Decimal128(s.parse::<Decimal128>().expect("decimal"))
    }

    fn cmp(a: RawBson, b: RawBson) -> Ordering {
        compare(&a.as_raw_bson_ref(), &b.as_raw_bson_ref())
    }

    #[test]
    fn numbers_compare_exactly_across_types() {
        assert_eq!(
            cmp(RawBson::Int32(2), RawBson::Double(2.0)),
            Ordering::Equal
        );
        assert_eq!(cmp(RawBson::Int64(2), dec("2.000")), Ordering::Equal);
        // 2^53 + 1 is not representable as a double: the int64 is strictly greater.
        let big = (1i64 << 53) + 1;
        assert_eq!(
            cmp(RawBson::Int64(big), RawBson::Double((1i64 << 53) as f64)),
            Ordering::Greater
        );
        assert_eq!(
            cmp(RawBson::Double(f64::NAN), RawBson::Int32(i32::MIN)),
            Ordering::Less
        );
        assert_eq!(cmp(RawBson::Double(f64::NAN), dec("NaN")), Ordering::Equal);
        assert_eq!(cmp(dec("0.1"), RawBson::Double(0.1)), Ordering::Less);
        assert_eq!(cmp(dec("-0"), RawBson::Double(0.0)), Ordering::Equal);
        assert_eq!(
            cmp(dec("1E+6000"), RawBson::Double(f64::MAX)),
            Ordering::Greater
        );
        assert_eq!(
            cmp(dec("-Infinity"), RawBson::Double(f64::MIN)),
            Ordering::Less
        );
        assert_eq!(
            cmp(
                dec("9007199254740993"),
                RawBson::Int64(9_007_199_254_740_993)
            ),
            Ordering::Equal
        );
    }

    #[test]
    fn type_classes_order() {
        let ordered = vec![
            RawBson::MinKey,
            RawBson::Undefined,
            RawBson::Null,
            RawBson::Int32(5),
            RawBson::String("a".into()),
            RawBson::Document(bson::rawdoc! {}),
            RawBson::Array(bson::RawArrayBuf::new()),
            RawBson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![],
            }),
            RawBson::ObjectId(bson::oid::ObjectId::from_bytes([0; 12])),
            RawBson::Boolean(false),
            RawBson::DateTime(bson::DateTime::from_millis(0)),
            RawBson::Timestamp(bson::Timestamp {
                time: 0,
                increment: 0,
            }),
            RawBson::MaxKey,
        ];
        for w in ordered.windows(2) {
            assert_eq!(cmp(w[0].clone(), w[1].clone()), Ordering::Less, "{:?}", w);
        }
    }

    mod props {
        use super::super::*;
        use bson::{spec::BinarySubtype, Binary, RawBson};
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = RawBson> {
            let leaf = prop_oneof![
                any::<i32>().prop_map(RawBson::Int32),
                any::<i64>().prop_map(RawBson::Int64),
                any::<f64>().prop_map(RawBson::Double),
                prop_oneof![
                    Just(f64::NAN),
                    Just(f64::INFINITY),
                    Just(-0.0),
                    Just(9007199254740993.0)
                ]
                .prop_map(RawBson::Double),
                (any::<i64>(), -40i32..40).prop_map(|(m, e)| RawBson::Decimal128(
                    format!("{m}E{e}").parse().expect("decimal")
                )),
                "[a-c]{0,3}".prop_map(RawBson::String),
                "[a-c]{0,2}".prop_map(RawBson::Symbol),
                any::<[u8; 12]>()
                    .prop_map(|b| RawBson::ObjectId(bson::oid::ObjectId::from_bytes(b))),
                any::<bool>().prop_map(RawBson::Boolean),
                any::<i64>().prop_map(|m| RawBson::DateTime(bson::DateTime::from_millis(m))),
                (any::<u32>(), any::<u32>()).prop_map(|(t, i)| RawBson::Timestamp(
                    bson::Timestamp {
                        time: t,
                        increment: i
                    }
                )),
                (proptest::collection::vec(any::<u8>(), 0..3), 0u8..3).prop_map(|(bytes, st)| {
                    RawBson::Binary(Binary {
                        subtype: BinarySubtype::from(st),
                        bytes,
                    })
                }),
                Just(RawBson::Null),
                Just(RawBson::Undefined),
                Just(RawBson::MinKey),
                Just(RawBson::MaxKey),
                "[ab]{0,2}".prop_map(RawBson::JavaScriptCode),
            ];
            leaf.prop_recursive(2, 8, 3, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| {
                        let mut a = bson::RawArrayBuf::new();
                        for x in v {
                            a.push(x);
                        }
                        RawBson::Array(a)
                    }),
                    proptest::collection::vec(("[xy]", inner), 0..3).prop_map(|v| {
                        let mut d = bson::RawDocumentBuf::new();
                        for (k, x) in v {
                            d.append(k, x);
                        }
                        RawBson::Document(d)
                    }),
                ]
            })
        }

        fn c(a: &RawBson, b: &RawBson) -> Ordering {
            compare(&a.as_raw_bson_ref(), &b.as_raw_bson_ref())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn total_order(a in value(), b in value(), x in value()) {
                prop_assert_eq!(c(&a, &a), Ordering::Equal);
                prop_assert_eq!(c(&a, &b), c(&b, &a).reverse());
                if c(&a, &b) != Ordering::Greater && c(&b, &x) != Ordering::Greater {
                    prop_assert_ne!(c(&a, &x), Ordering::Greater);
                }
                if c(&a, &b) == Ordering::Equal {
                    prop_assert_eq!(c(&a, &x), c(&b, &x));
                }
                // Classes order first.
                let (ta, tb) = (type_class(&a.as_raw_bson_ref()), type_class(&b.as_raw_bson_ref()));
                if ta != tb {
                    prop_assert_eq!(c(&a, &b), ta.cmp(&tb));
                }
            }

            /// An oracle independent of `compare_magnitude`: floor the double, compare in i128.
            #[test]
            fn int64_vs_any_double_matches_an_exact_oracle(n in any::<i64>(), d in any::<f64>()) {
                let expected = if d.is_nan() {
                    Ordering::Greater
                } else if d == f64::INFINITY {
                    Ordering::Less
                } else if d == f64::NEG_INFINITY {
                    Ordering::Greater
                } else {
                    let f = d.floor();
                    if f >= 2f64.powi(63) {
                        Ordering::Less
                    } else if f < -(2f64.powi(63)) {
                        Ordering::Greater
                    } else {
                        let fi = f as i128;
                        match i128::from(n).cmp(&fi) {
                            Ordering::Equal if d != f => Ordering::Less,
                            o => o,
                        }
                    }
                };
                prop_assert_eq!(c(&RawBson::Int64(n), &RawBson::Double(d)), expected);
                prop_assert_eq!(c(&RawBson::Double(d), &RawBson::Int64(n)), expected.reverse());
            }

            #[test]
            fn int64_vs_double_is_exact(n in any::<i64>()) {
                let d = n as f64;
                // `d` is an integer value; compare it to `n` exactly in i128.
                let expected = i128::from(n).cmp(&(d as i128));
                prop_assert_eq!(c(&RawBson::Int64(n), &RawBson::Double(d)), expected);
                let dec: bson::Decimal128 = n.to_string().parse().expect("decimal");
                prop_assert_eq!(c(&RawBson::Int64(n), &RawBson::Decimal128(dec)), Ordering::Equal);
                let dec_plus: bson::Decimal128 = format!("{n}.5").parse().expect("decimal");
                let want = if n >= 0 { Ordering::Less } else { Ordering::Greater };
                prop_assert_eq!(c(&RawBson::Int64(n), &RawBson::Decimal128(dec_plus)), want);
            }
        }
    }
}
