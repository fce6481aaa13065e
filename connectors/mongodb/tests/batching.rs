//! How change events are gathered into batches: under a steady trickle of writes, each batch
//! waits `batch_linger` for more events instead of going out with one event, and no event is lost
//! or reordered on the way.

#[path = "common/harness.rs"]
mod harness;

use std::time::Duration;

use bson::doc;
use harness::*;
use mirror_core::SourceItem;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_a_millisecond_apart_are_gathered_into_few_batches() {
    let h = Harness::new().await;
    h.seed("orders", 0..10);
    let mut run = h
        .source("batch_linger = \"50ms\"", Default::default())
        .await;
    run.until(
        T,
        |item| matches!(item, SourceItem::Batch(b) if b.num_rows() == 10),
    )
    .await;
    let seen = run.items.len();

    let writes = 300i64;
    let sim = h.sim.clone();
    let writer = std::thread::spawn(move || {
        for n in 0..writes {
            // Every write changes the document (an update that changes nothing has no event).
            sim.update_one(
                DB,
                "orders",
                doc! {"_id": n % 10},
                doc! {"$set": {"v": 1000 + n}},
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let mut rows = 0usize;
    run.until(T, |item| {
        if let SourceItem::Batch(b) = item {
            rows += b.num_rows();
        }
        rows == writes as usize
    })
    .await;
    writer.join().unwrap();

    let batches: Vec<_> = run.items[seen..]
        .iter()
        .filter_map(|item| match item {
            SourceItem::Batch(b) if b.num_rows() > 0 => Some(b),
            _ => None,
        })
        .collect();
    assert!(
        batches.len() <= 30,
        "{} batches for {writes} changes about 1 ms apart with a 50 ms linger",
        batches.len()
    );
    // The last value written to each document is the last row of it, in stream order.
    let mut last = std::collections::BTreeMap::new();
    for b in &batches {
        let ids = b.rows().column_by_name("_id").unwrap();
        let v = b.rows().column_by_name("v").unwrap();
        for r in 0..b.num_rows() {
            let id = arrow::util::display::array_value_to_string(ids, r).unwrap();
            let v = arrow::util::display::array_value_to_string(v, r).unwrap();
            last.insert(id, v);
        }
    }
    for id in 0..10i64 {
        let want = (1000 + writes - 10 + id).to_string();
        // `_id` as the source encodes keys (`~i:` for integers).
        assert_eq!(last.get(&format!("~i:{id}")), Some(&want), "document {id}");
    }
    run.close().await;
}
