//! The first-party transforms in a real pipeline (generator -> transforms -> recording sink): rows,
//! operations and checkpoints stay aligned, and the output is what the configuration asks for.

mod support;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use hmac::{Hmac, KeyInit, Mac};
use mirror_core::config::ConfigLoader;
use mirror_core::engine::Engine;
use mirror_core::RowOp;
use sha2::Sha256;
use support::{probe, RecordingStore};

const SOURCE: &str = r#"
[sources.gen]
type = "generator"
count = 600
batch_size = 50
tables = ["orders", "people"]
schema = "shop"
update_ratio = 0.3
delete_ratio = 0.1
seed = 7
"#;

async fn run(transforms: &str, last: &str, probe_name: &str) -> Vec<mirror_core::ChangeBatch> {
    let text = format!(
        "{SOURCE}\n{transforms}\n[sinks.out]\ntype = \"recording\"\ninputs = [\"{last}\"]\nprobe = \"{probe_name}\"\nbuffer = 3\n"
    );
    let config = ConfigLoader::default()
        .with_env(|name| (name == "MASK_KEY").then(|| "k3y".to_owned()))
        .parse(&text, "transforms.toml")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::new(dir.path());
    let report = Engine::new(config)
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(
        report.sources["gen"].committed_items, 12,
        "every batch committed"
    );
    probe(probe_name).batches("out")
}

fn rows(batches: &[mirror_core::ChangeBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn without_transforms_everything_arrives() {
    let out = run("", "gen", "t-none").await;
    assert_eq!(rows(&out), 600);
}

#[tokio::test]
async fn filter_keeps_matching_rows_and_turns_leaving_updates_into_deletes() {
    let all = run("", "gen", "t-all").await;
    let out = run(
        "[transforms.f]\ntype = \"filter\"\ninputs = [\"gen\"]\nwhere = \"quantity > 0 and name is not null\"\ntables = [\"shop.schema/orders\"]\n",
        "f",
        "t-filter",
    )
    .await;
    // The same batches, with rows removed or re-marked only in `orders`.
    assert_eq!(out.len(), all.len());
    for (before, after) in all.iter().zip(&out) {
        if before.table().id.name() == "people" {
            assert_eq!(before.rows(), after.rows());
            continue;
        }
        let q = before
            .rows()
            .column_by_name("quantity")
            .unwrap()
            .as_primitive::<Int32Type>();
        let mut expected_rows = 0;
        let mut expected_ops = Vec::new();
        for (i, op) in before.ops().iter().enumerate() {
            let matches = q.is_valid(i) && q.value(i) > 0;
            match (op, matches) {
                (RowOp::Delete, _) => expected_ops.push(RowOp::Delete),
                (_, true) => expected_ops.push(*op),
                (RowOp::Insert, false) => continue,
                (_, false) => expected_ops.push(RowOp::Delete),
            }
            expected_rows += 1;
        }
        assert_eq!(after.num_rows(), expected_rows);
        assert_eq!(after.ops(), expected_ops.as_slice());
        let q = after
            .rows()
            .column_by_name("quantity")
            .unwrap()
            .as_primitive::<Int32Type>();
        for (i, op) in after.ops().iter().enumerate() {
            if *op != RowOp::Delete {
                assert!(q.value(i) > 0);
            }
        }
        assert_eq!(before.checkpoint(), after.checkpoint());
    }
    assert!(rows(&out) < rows(&all));
}

#[tokio::test]
async fn columns_drop_and_rename_including_the_key() {
    let out = run(
        "[transforms.c]\ntype = \"columns\"\ninputs = [\"gen\"]\ndrop = [\"payload\", \"note\"]\nrename = { id = \"order_id\", name = \"title\" }\n",
        "c",
        "t-columns",
    )
    .await;
    assert_eq!(rows(&out), 600);
    for b in &out {
        let schema = b.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert!(
            !names.contains(&"payload") && !names.contains(&"note") && !names.contains(&"name")
        );
        assert!(names.contains(&"title"));
        assert_eq!(b.table().key_columns, vec!["order_id".to_string()]);
    }
}

#[tokio::test]
async fn dropping_a_key_column_is_a_clear_error() {
    let text = format!(
        "{SOURCE}\n[transforms.c]\ntype = \"columns\"\ninputs = [\"gen\"]\ndrop = [\"id\"]\n[sinks.out]\ntype = \"recording\"\ninputs = [\"c\"]\nprobe = \"t-dropkey\"\n"
    );
    let config = mirror_core::config::MirrorConfig::parse(&text, "t.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = Engine::new(config)
        .with_checkpoint_store(RecordingStore::new(dir.path()))
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "transform `c` failed: cannot drop key column `id` of shop.schema/orders: updates and deletes need it"
    );
}

#[tokio::test]
async fn mask_hashes_with_a_secret_key_and_keeps_nulls() {
    let all = run("", "gen", "t-mask-all").await;
    let out = run(
        "[transforms.m]\ntype = \"mask\"\ninputs = [\"gen\"]\ncolumns = [\"name\", \"quantity\"]\nkey = \"${MASK_KEY}\"\n",
        "m",
        "t-mask",
    )
    .await;
    let hmac = |text: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(b"k3y").unwrap();
        m.update(text.as_bytes());
        hex::encode(m.finalize().into_bytes())
    };
    for (before, after) in all.iter().zip(&out) {
        let names = before
            .rows()
            .column_by_name("name")
            .unwrap()
            .as_string::<i32>();
        let q = before
            .rows()
            .column_by_name("quantity")
            .unwrap()
            .as_primitive::<Int32Type>();
        let hashed = after
            .rows()
            .column_by_name("name")
            .unwrap()
            .as_string::<i32>();
        let hashed_q = after.rows().column_by_name("quantity").unwrap();
        assert_eq!(hashed_q.data_type(), &DataType::Utf8);
        let hashed_q = hashed_q.as_string::<i32>();
        for i in 0..before.num_rows() {
            assert_eq!(hashed.is_null(i), names.is_null(i));
            if names.is_valid(i) {
                assert_eq!(hashed.value(i), hmac(names.value(i)));
                assert_eq!(hashed_q.value(i), hmac(&q.value(i).to_string()));
            }
        }
    }
}

#[tokio::test]
async fn mask_without_a_key_is_refused() {
    let text = format!(
        "{SOURCE}\n[transforms.m]\ntype = \"mask\"\ninputs = [\"gen\"]\ncolumns = [\"name\"]\n[sinks.out]\ntype = \"recording\"\ninputs = [\"m\"]\nprobe = \"t-nokey\"\n"
    );
    let config = mirror_core::config::MirrorConfig::parse(&text, "t.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = Engine::new(config)
        .with_checkpoint_store(RecordingStore::new(dir.path()))
        .run()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("m: method `hash` needs a non-empty `key`"),
        "{err}"
    );
}

#[tokio::test]
async fn add_column_constant_and_computed_chain() {
    let out = run(
        "[transforms.a]\ntype = \"add_column\"\ninputs = [\"gen\"]\nname = \"origin\"\nvalue = \"{schema}/{table}\"\n\
         [transforms.b]\ntype = \"add_column\"\ninputs = [\"a\"]\nname = \"version\"\nvalue = 3\n\
         [transforms.c]\ntype = \"add_column\"\ninputs = [\"b\"]\nname = \"ingested_at\"\ncomputed = \"ingest_time\"\n",
        "c",
        "t-add",
    )
    .await;
    assert_eq!(rows(&out), 600);
    for b in &out {
        let r: &RecordBatch = b.rows();
        let origin = r.column_by_name("origin").unwrap().as_string::<i32>();
        assert!(origin
            .iter()
            .all(|v| v == Some(format!("shop/{}", b.table().id.name()).as_str())));
        let version = r
            .column_by_name("version")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(version.iter().all(|v| v == Some(3)));
        assert!(
            matches!(r.column_by_name("ingested_at").unwrap().data_type(), DataType::Timestamp(_, Some(tz)) if tz.as_ref() == "UTC")
        );
    }
}
