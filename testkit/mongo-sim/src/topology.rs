//! The replica-set member's identity and state: set name, host, primary/secondary, term and
//! election id, `topologyVersion` (bumped on every state change so awaitable hellos return), the
//! hello reply, and the signed `$clusterTime` gossip.

use bson::{doc, oid::ObjectId, Bson, Document, Timestamp};

use crate::oplog::now_millis;
use crate::version::ServerVersion;
use crate::wire::{MAX_BSON_OBJECT_SIZE, MAX_MESSAGE_SIZE};

#[derive(Debug, Clone)]
pub struct Topology {
    pub set_name: String,
    pub host: String,
    pub primary: bool,
    pub process_id: ObjectId,
    pub counter: i64,
    pub term: i64,
    /// The mongod version played.
    pub version: ServerVersion,
}

impl Topology {
    pub fn new(set_name: &str, host: &str, version: ServerVersion) -> Self {
        Topology {
            version,
            set_name: set_name.to_string(),
            host: host.to_string(),
            primary: true,
            process_id: ObjectId::new(),
            counter: 0,
            term: 1,
        }
    }

    /// A standalone server (an empty set name: mongod started without `--replSet`). It has no
    /// replica-set fields in `hello`, no logical clock, no `replSetGetStatus` and no change
    /// streams.
    pub fn standalone(&self) -> bool {
        self.set_name.is_empty()
    }

    pub fn topology_version(&self) -> Document {
        doc! {"processId": self.process_id, "counter": self.counter}
    }

    /// Steps down (becomes secondary). Returns whether the state changed.
    pub fn step_down(&mut self) -> bool {
        if !self.primary {
            return false;
        }
        self.primary = false;
        self.counter += 1;
        true
    }

    /// Wins an election (a single member always does). Returns whether the state changed.
    pub fn step_up(&mut self) -> bool {
        if self.primary {
            return false;
        }
        self.primary = true;
        self.term += 1;
        self.counter += 1;
        true
    }

    fn election_id(&self) -> ObjectId {
        // mongod: 0x7fffffff followed by the term as 8 bytes.
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        b[4..12].copy_from_slice(&self.term.to_be_bytes());
        ObjectId::from_bytes(b)
    }

    /// The hello / isMaster reply (without `ok`, `$clusterTime`, `operationTime`).
    pub fn hello(
        &self,
        legacy: bool,
        hello_ok: bool,
        connection_id: i64,
        last_write: Timestamp,
    ) -> Document {
        let mut d = Document::new();
        d.insert("topologyVersion", self.topology_version());
        if self.standalone() {
            d.insert(
                if legacy {
                    "ismaster"
                } else {
                    "isWritablePrimary"
                },
                true,
            );
            self.append_limits(&mut d, connection_id);
            if hello_ok {
                d.insert("helloOk", true);
            }
            return d;
        }
        d.insert("hosts", vec![Bson::String(self.host.clone())]);
        d.insert("setName", self.set_name.clone());
        d.insert("setVersion", 1);
        if legacy {
            d.insert("ismaster", self.primary);
        } else {
            d.insert("isWritablePrimary", self.primary);
        }
        d.insert("secondary", !self.primary);
        if self.primary {
            d.insert("primary", self.host.clone());
        }
        d.insert("me", self.host.clone());
        if self.primary {
            d.insert("electionId", self.election_id());
        }
        let optime = doc! {"ts": last_write, "t": self.term};
        let date = bson::DateTime::from_millis(i64::from(last_write.time) * 1000);
        d.insert(
            "lastWrite",
            doc! {
                "opTime": optime.clone(),
                "lastWriteDate": date,
                "majorityOpTime": optime,
                "majorityWriteDate": date,
            },
        );
        self.append_limits(&mut d, connection_id);
        if hello_ok {
            d.insert("helloOk", true);
        }
        d
    }

    /// The fields every server's hello has.
    fn append_limits(&self, d: &mut Document, connection_id: i64) {
        d.insert("maxBsonObjectSize", MAX_BSON_OBJECT_SIZE as i32);
        d.insert("maxMessageSizeBytes", MAX_MESSAGE_SIZE as i32);
        d.insert("maxWriteBatchSize", 100_000);
        d.insert("localTime", bson::DateTime::from_millis(now_millis()));
        d.insert("logicalSessionTimeoutMinutes", 30);
        d.insert("connectionId", connection_id);
        d.insert("minWireVersion", 0);
        d.insert("maxWireVersion", self.version.wire_version());
        d.insert("readOnly", false);
    }
}

/// `$clusterTime` as mongod gossips it without keys (auth disabled): a zero signature.
pub fn cluster_time_doc(ts: Timestamp) -> Document {
    doc! {
        "clusterTime": ts,
        "signature": {
            "hash": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0u8; 20] },
            "keyId": 0i64,
        }
    }
}
