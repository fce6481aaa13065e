//! Authentication and authorization as `mongod --auth` does them, through the real driver:
//! SCRAM-SHA-256 (speculative in `hello`, or `saslStart`/`saslContinue`), `AuthenticationFailed`
//! for a wrong password, `Unauthorized` before login and without a privilege,
//! `connectionStatus` with `showPrivileges`; and a standalone server's refusals.

use bson::{doc, Document};
use futures::TryStreamExt;
use mongo_sim::auth::{Resource, SimUser};
use mongo_sim::{MongoSim, SimOptions};
use mongodb::Client;

use super::code;

async fn with_users(users: Vec<SimUser>) -> MongoSim {
    MongoSim::start(SimOptions {
        noop_interval: None,
        users,
        ..Default::default()
    })
    .await
    .expect("start simulator")
}

async fn client(uri: &str) -> Client {
    let mut options = mongodb::options::ClientOptions::parse(uri).await.unwrap();
    options.server_selection_timeout = Some(std::time::Duration::from_secs(5));
    Client::with_options(options).unwrap()
}

#[tokio::test]
async fn scram_sha_256_logs_in_and_a_wrong_password_is_refused() {
    let sim = with_users(vec![
        SimUser::new("admin", "mirror", "pa ss@:/w%rd").role("read", "shop")
    ])
    .await;
    sim.insert("shop", "orders", doc! {"_id": 1}).unwrap();

    let ok = client(&sim.uri_as("mirror", "pa ss@:/w%rd", "admin")).await;
    let found: Vec<Document> = ok
        .database("shop")
        .collection::<Document>("orders")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let status = ok
        .database("admin")
        .run_command(doc! {"connectionStatus": 1, "showPrivileges": true})
        .await
        .unwrap();
    let info = status.get_document("authInfo").unwrap();
    assert_eq!(
        info.get_array("authenticatedUsers").unwrap()[0],
        bson::Bson::Document(doc! {"user": "mirror", "db": "admin"})
    );
    let privileges = info.get_array("authenticatedUserPrivileges").unwrap();
    let read = privileges[0].as_document().unwrap();
    assert_eq!(
        read.get_document("resource").unwrap(),
        &doc! {"db": "shop", "collection": ""}
    );
    let actions = read.get_array("actions").unwrap();
    assert!(actions.contains(&"changeStream".into()) && actions.contains(&"find".into()));

    let wrong = client(&sim.uri_as("mirror", "nope", "admin")).await;
    let err = wrong
        .database("shop")
        .collection::<Document>("orders")
        .find_one(doc! {})
        .await
        .unwrap_err();
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Authentication { message, .. } => {
            assert!(message.contains("Authentication failed."), "{message}")
        }
        other => panic!("not an authentication error: {other:?}"),
    }
    // An unknown user, or another authentication database, fails alike.
    let unknown = client(&sim.uri_as("mirror", "pa ss@:/w%rd", "shop")).await;
    assert!(unknown.list_database_names().await.is_err());
}

#[tokio::test]
async fn commands_need_a_login_and_their_privileges() {
    let sim = with_users(vec![
        SimUser::new("admin", "root", "r").role("root", "admin"),
        SimUser::new("admin", "narrow", "n").privilege(
            Resource::Namespace {
                db: "shop".into(),
                collection: String::new(),
            },
            &["find", "listCollections"],
        ),
    ])
    .await;
    sim.insert("shop", "orders", doc! {"_id": 1}).unwrap();
    sim.insert("other", "x", doc! {"_id": 1}).unwrap();

    let anonymous = client(&sim.uri()).await;
    let err = anonymous
        .database("shop")
        .collection::<Document>("orders")
        .find_one(doc! {})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13));
    assert!(
        err.to_string()
            .contains("command find requires authentication"),
        "{err}"
    );
    // hello and buildInfo need no login.
    anonymous
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await
        .unwrap();

    let narrow = client(&sim.uri_as("narrow", "n", "admin")).await;
    let coll = narrow.database("shop").collection::<Document>("orders");
    assert!(coll.find_one(doc! {}).await.unwrap().is_some());
    let err = coll.watch().await.unwrap_err();
    assert_eq!(code(&err), Some(13));
    assert!(
        err.to_string()
            .contains("not authorized on shop to execute command"),
        "{err}"
    );
    let err = narrow
        .database("other")
        .collection::<Document>("x")
        .find_one(doc! {})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13));
    // Without listDatabases, only the databases it has privileges on are listed.
    assert_eq!(narrow.list_database_names().await.unwrap(), vec!["shop"]);
    let err = narrow
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13));

    let root = client(&sim.uri_as("root", "r", "admin")).await;
    let status = root
        .database("admin")
        .run_command(doc! {"serverStatus": 1, "oplog": 1})
        .await
        .unwrap();
    let oplog = status.get_document("oplog").unwrap();
    let earliest = oplog.get_timestamp("earliestOptime").unwrap();
    let latest = oplog.get_timestamp("latestOptime").unwrap();
    assert!(earliest <= latest);
    let names = root.list_database_names().await.unwrap();
    assert!(names.contains(&"other".to_string()) && names.contains(&"shop".to_string()));
}

#[tokio::test]
async fn a_standalone_server_refuses_change_streams_and_replica_set_commands() {
    let sim = MongoSim::start(SimOptions {
        set_name: String::new(),
        noop_interval: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = client(&sim.uri()).await;
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .unwrap();
    assert!(hello.get("setName").is_none(), "{hello}");
    assert!(hello.get("$clusterTime").is_none(), "{hello}");
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(true));
    let err = client
        .database("admin")
        .run_command(doc! {"replSetGetStatus": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(76));
    sim.insert("shop", "orders", doc! {"_id": 1}).unwrap();
    let err = client
        .database("shop")
        .collection::<Document>("orders")
        .watch()
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(40573));
}
