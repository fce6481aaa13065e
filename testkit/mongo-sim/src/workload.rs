//! Seeded workloads for benchmarks and demos: a small deterministic random generator and ~1 KB
//! "order" documents of varied shapes (1 to 5 nested items, optional sub-documents, a field that
//! is sometimes absent, decimals, dates, UUIDs, arrays), the same in every run.
//!
//! ```
//! use mongo_sim::workload::{order, Rng};
//! let mut rng = Rng::new(7);
//! let doc = order(&mut rng, 0);
//! assert!(doc.contains_key("customer"));
//! ```

use std::str::FromStr;

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Decimal128, Document};

/// A deterministic pseudo-random generator (xorshift), so runs compare.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (not zero).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// `len` random lowercase letters.
    pub fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

/// The `ObjectId` of document `i`.
pub fn oid(i: u64) -> ObjectId {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&0x6500_0000u32.to_be_bytes());
    b[4..].copy_from_slice(&i.to_be_bytes());
    ObjectId::from_bytes(b)
}

/// An order of ~1 KB. Shapes vary: 1 to 5 items, optional sub-documents (`gift`, `coupon`,
/// `customer.address.geo`), a field that is sometimes an int and sometimes absent, and a notes
/// string whose length varies so that the document stays near 1 KB.
pub fn order(rng: &mut Rng, i: u64) -> Document {
    let created = 1_700_000_000_000 + rng.below(100_000_000_000) as i64;
    let n_items = 1 + rng.below(5);
    let items: Vec<Bson> = (0..n_items)
        .map(|k| {
            let mut item = doc! {
                "sku": format!("SKU-{:06}", rng.below(1_000_000)),
                "qty": (1 + rng.below(5)) as i32,
                "price": rng.below(100_000) as f64 / 100.0,
                "line": k as i32,
            };
            if rng.below(3) == 0 {
                item.insert("options", vec![rng.word(4), rng.word(5)]);
            }
            Bson::Document(item)
        })
        .collect();
    let mut address = doc! {
        "street": format!("{} {} street", rng.below(200), rng.word(9)),
        "city": rng.word(8),
        "zip": format!("{:05}", rng.below(100_000)),
        "country": (["FR", "DE", "US", "JP"][rng.below(4) as usize]),
    };
    if rng.below(2) == 0 {
        address.insert(
            "geo",
            doc! {"lat": rng.below(18_000) as f64 / 100.0 - 90.0, "lon": rng.below(36_000) as f64 / 100.0 - 180.0},
        );
    }
    let mut d = doc! {
        "_id": oid(i),
        "orderNo": format!("ORD-{i:010}"),
        "customerId": oid(rng.below(100_000) + (1 << 40)),
        "status": (["new", "paid", "shipped", "delivered"][rng.below(4) as usize]),
        "createdAt": DateTime::from_millis(created),
        "updatedAt": DateTime::from_millis(created + 3_600_000),
        "total": rng.below(1_000_000) as f64 / 100.0,
        "subtotal": rng.below(1_000_000) as f64 / 100.0,
        "tax": rng.below(10_000) as f64 / 100.0,
        "currency": "EUR",
        "itemsCount": n_items as i32,
        "paid": rng.below(2) == 0,
        "version": rng.below(1 << 40) as i64,
        "discount": Decimal128::from_str(&format!("{}.{:02}", rng.below(100), rng.below(100))).expect("a decimal literal parses"),
        "email": format!("{}@example.com", rng.word(10)),
        "phone": format!("+33 6 {:08}", rng.below(100_000_000)),
        "channel": (["web", "app", "store"][rng.below(3) as usize]),
        "tags": (0..1 + rng.below(4)).map(|_| rng.word(6)).collect::<Vec<_>>(),
        "customer": {
            "name": rng.word(12),
            "email": format!("{}@example.org", rng.word(8)),
            "tier": rng.below(4) as i32,
            "address": address,
        },
        "items": items,
        "shipping": { "method": "express", "cost": 4.99, "eta": DateTime::from_millis(created + 172_800_000) },
        "metrics": { "views": rng.below(1000) as i64, "clicks": rng.below(100) as i32 },
        "session": Bson::Binary(Binary { subtype: BinarySubtype::Uuid, bytes: rng.next().to_le_bytes().repeat(2) }),
    };
    if rng.below(4) == 0 {
        d.insert("priority", rng.below(10) as i32);
    }
    if rng.below(5) == 0 {
        d.insert(
            "gift",
            doc! {"wrap": true, "message": rng.word(40), "from": rng.word(8)},
        );
    }
    if rng.below(7) == 0 {
        d.insert(
            "coupon",
            doc! {"code": rng.word(8).to_uppercase(), "pct": rng.below(50) as i32},
        );
    }
    // Pad to ~1 KB with a text field.
    let size = bson::to_vec(&d).map(|v| v.len()).unwrap_or(0);
    let notes = 1000usize.saturating_sub(size + 10).max(16);
    d.insert("notes", rng.word(notes));
    d
}
