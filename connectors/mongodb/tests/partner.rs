//! The landing zone says where its data comes from: `_partnerEvents.json` carries the MongoDB
//! server's own version (its `buildInfo`) and deployment, as the source found them when it
//! connected, and no secret.

#[path = "common/harness.rs"]
mod harness;

use std::time::Duration;

use bson::doc;
use harness::*;

#[tokio::test]
async fn partner_events_name_the_server_version_and_deployment() {
    let mut h = Harness::new().await;
    h.seed("items", 0..20);
    h.run("");
    h.wait_equal("items", Duration::from_secs(30)).await;
    h.stop().await;

    // What the server says of itself, asked through the driver, not assumed.
    let client = mongodb::Client::with_uri_str(h.sim.uri()).await.unwrap();
    let admin = client.database("admin");
    let info = admin.run_command(doc! {"buildInfo": 1}).await.unwrap();
    let hello = admin.run_command(doc! {"hello": 1}).await.unwrap();
    let version = info.get_str("version").unwrap();
    let set = hello.get_str("setName").unwrap();

    let text = std::fs::read_to_string(h.lz.path().join("_partnerEvents.json")).unwrap();
    let partner: serde_json::Value = serde_json::from_str(&text).unwrap();
    let source_info = &partner["sourceInfo"];
    assert_eq!(source_info["sourceType"], "mongodb", "{text}");
    assert_eq!(source_info["sourceVersion"], version, "{text}");
    let source = &source_info["additionalInformation"]["sources"][0];
    assert_eq!(source["name"], SOURCE, "{text}");
    assert_eq!(source["version"], version, "{text}");
    assert_eq!(source["deployment"], format!("replica set {set}"), "{text}");
    assert_eq!(source["databases"], DB, "{text}");
    assert!(!text.contains("mongodb://"), "no URI in {text}");
}
