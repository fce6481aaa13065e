//! The demo's sample database `shop` and the live changes made to it while mirroring.
//!
//! The collections are chosen to show what mirroring has to get right: nested documents, arrays,
//! dates, decimals, UUIDs, nulls, missing fields, and `_id`s of several types in one collection.

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Decimal128, Document, RawDocumentBuf};
use mongo_sim::SimHandle;

/// The demo database.
pub const DB: &str = "shop";

const CITIES: &[&str] = &["Lisbon", "Oslo", "Austin", "Nairobi", "Osaka", "Lyon"];
const STATUSES: &[&str] = &["placed", "paid", "shipped", "delivered", "returned"];

/// A small deterministic generator (SplitMix64), so every demo run starts from the same data.
pub struct Dice(u64);

impl Dice {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn decimal(cents: i64) -> Bson {
    let text = format!("{}.{:02}", cents / 100, (cents % 100).abs());
    text.parse::<Decimal128>()
        .map(Bson::Decimal128)
        .unwrap_or(Bson::Null)
}

fn oid(n: u64) -> bson::oid::ObjectId {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&0x6553_f100u32.to_be_bytes());
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    bson::oid::ObjectId::from_bytes(bytes)
}

/// A customer.
pub fn customer(n: u64, dice: &mut Dice) -> Document {
    let mut d = doc! {
        "_id": oid(n),
        "name": format!("Customer {n}"),
        "email": format!("customer{n}@example.com"),
        "address": { "city": dice.pick(CITIES), "zip": format!("{:05}", dice.below(99_999)) },
        "tags": (0..dice.below(3)).map(|i| Bson::String(format!("tag{i}"))).collect::<Vec<_>>(),
        "since": DateTime::from_millis(1_600_000_000_000 + (n as i64) * 86_400_000),
        "vip": dice.below(5) == 0,
        "balance": decimal(dice.below(1_000_000) as i64 - 10_000),
    };
    if n.is_multiple_of(7) {
        d.insert("phone", Bson::Null);
    }
    d
}

/// An order; `_id`s are integers, with some strings (legacy order numbers) mixed in.
pub fn order(n: u64, customers: u64, dice: &mut Dice) -> Document {
    let id = if n.is_multiple_of(10) {
        Bson::String(format!("LEGACY-{n:06}"))
    } else {
        Bson::Int64(n as i64)
    };
    let items: Vec<Bson> = (0..1 + dice.below(4))
        .map(|_| Bson::Document(doc! {"sku": format!("SKU-{:04}", dice.below(300)), "qty": 1 + dice.below(5) as i32}))
        .collect();
    doc! {
        "_id": id,
        "customer": oid(dice.below(customers.max(1))),
        "items": items,
        "total": (dice.below(100_000) as f64) / 100.0,
        "status": dice.pick(STATUSES),
        "placed_at": DateTime::from_millis(1_700_000_000_000 + (n as i64) * 60_000),
    }
}

/// A product, keyed by SKU, with a UUID.
pub fn product(n: u64, dice: &mut Dice) -> Document {
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&dice.next().to_be_bytes());
    uuid[8..].copy_from_slice(&n.to_be_bytes());
    doc! {
        "_id": format!("SKU-{n:04}"),
        "title": format!("Product {n}"),
        "price": decimal(100 + dice.below(50_000) as i64),
        "stock": dice.below(1000) as i64,
        "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: uuid.to_vec() },
        "size": { "w": dice.below(100) as i32, "h": dice.below(100) as i32 },
    }
}

/// How many documents each collection starts with.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// customers
    pub customers: u64,
    /// orders
    pub orders: u64,
    /// products
    pub products: u64,
}

impl Sizes {
    /// Sizes for about `docs` documents in all.
    pub fn for_total(docs: u64) -> Self {
        Self {
            customers: docs / 5,
            orders: docs * 7 / 10,
            products: (docs / 10).max(1),
        }
    }
}

/// Loads the sample database.
pub fn seed(sim: &SimHandle, sizes: Sizes) -> Result<(), mongo_sim::SimError> {
    let mut dice = Dice::new(7);
    let raw =
        |d: Document| RawDocumentBuf::from_document(&d).expect("sample documents are valid BSON");
    sim.seed_raw(
        DB,
        "customers",
        (0..sizes.customers)
            .map(|n| raw(customer(n, &mut dice)))
            .collect::<Vec<_>>(),
    )?;
    sim.seed_raw(
        DB,
        "orders",
        (0..sizes.orders)
            .map(|n| raw(order(n, sizes.customers, &mut dice)))
            .collect::<Vec<_>>(),
    )?;
    sim.seed_raw(
        DB,
        "products",
        (0..sizes.products)
            .map(|n| raw(product(n, &mut dice)))
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// One live change: a new order, an order moving on, a deleted order, a replaced product, or a new
/// customer. Returns a short description.
pub fn change(
    sim: &SimHandle,
    sizes: &mut Sizes,
    dice: &mut Dice,
) -> Result<String, mongo_sim::SimError> {
    Ok(match dice.below(10) {
        0..=3 => {
            let n = sizes.orders;
            sizes.orders += 1;
            sim.insert(DB, "orders", order(n, sizes.customers, dice))?;
            format!("insert order {n}")
        }
        4..=6 => {
            let n = dice.below(sizes.orders) as i64;
            let status = dice.pick(STATUSES);
            sim.update_one(
                DB,
                "orders",
                doc! {"_id": n},
                doc! {"$set": {"status": status}, "$inc": {"revision": 1}},
            )?;
            format!("update order {n} -> {status}")
        }
        7 => {
            let n = dice.below(sizes.orders) as i64;
            sim.delete_one(DB, "orders", doc! {"_id": n})?;
            format!("delete order {n}")
        }
        8 => {
            let n = dice.below(sizes.products);
            sim.replace_one(
                DB,
                "products",
                doc! {"_id": format!("SKU-{n:04}")},
                product(n, dice),
            )?;
            format!("replace product SKU-{n:04}")
        }
        _ => {
            let n = sizes.customers;
            sizes.customers += 1;
            sim.insert(DB, "customers", customer(n, dice))?;
            format!("insert customer {n}")
        }
    })
}
