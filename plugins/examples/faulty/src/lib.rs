//! Test plugin: a source, a transform and a sink that fail, panic or misbehave on command, so the
//! host's handling of every failure at every call can be tested.
//!
//! ```toml
//! [sources.f]
//! type = "faulty_source"
//! count = 10            # rows, one per batch, column `seq` = 1, 2, ...
//! fail_in = "next"      # create | next | apply | write | flush | close | none
//! how = "panic"         # error | transient | panic | wrong_ops | ack_unknown
//! after = 3             # calls of `fail_in` that succeed first
//! ```

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use mirror_plugin_sdk::{
    export_plugin, op, Batch, PluginError, SinkPlugin, SourcePlugin, TransformPlugin,
};
use serde::Deserialize;

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Faults {
    #[serde(default = "none")]
    fail_in: String,
    #[serde(default = "error")]
    how: String,
    #[serde(default)]
    after: u64,
    #[serde(default = "ten")]
    count: u64,
    /// Transient failures then succeed: how many times to fail.
    #[serde(default = "forever")]
    times: u64,
}

fn none() -> String {
    "none".into()
}
fn error() -> String {
    "error".into()
}
fn ten() -> u64 {
    10
}
fn forever() -> u64 {
    u64::MAX
}

struct Fuse {
    faults: Faults,
    calls: std::collections::HashMap<&'static str, u64>,
    failed: u64,
}

impl Fuse {
    fn new(config: &str, call: &'static str) -> Result<Self, PluginError> {
        let faults: Faults = toml::from_str(config).map_err(PluginError::permanent)?;
        let mut fuse = Self {
            faults,
            calls: Default::default(),
            failed: 0,
        };
        fuse.check(call)?;
        Ok(fuse)
    }

    /// Fails if `call` is the configured one and its turn has come.
    fn check(&mut self, call: &'static str) -> Result<(), PluginError> {
        if self.faults.fail_in != call {
            return Ok(());
        }
        let n = self.calls.entry(call).or_default();
        *n += 1;
        if *n <= self.faults.after || self.failed >= self.faults.times {
            return Ok(());
        }
        self.failed += 1;
        match self.faults.how.as_str() {
            "panic" => panic!("faulty plugin panics in {call}"),
            "transient" => Err(PluginError::transient(format!(
                "faulty plugin: transient failure in {call}"
            ))),
            "error" => Err(PluginError::permanent(format!(
                "faulty plugin: failure in {call}"
            ))),
            _ => Ok(()),
        }
    }

    fn misbehaves(&self, how: &str) -> bool {
        self.faults.how == how
    }
}

struct FaultySource {
    fuse: Fuse,
    next_seq: u64,
}

fn one_row(seq: u64, ops: Vec<u8>) -> Batch {
    let rows =
        RecordBatch::try_from_iter([("seq", Arc::new(Int64Array::from(vec![seq as i64])) as _)])
            .expect("one column");
    Batch {
        table: "numbers".into(),
        key_columns: vec!["seq".into()],
        rows,
        ops,
        checkpoint: Some(seq.to_string().into_bytes()),
    }
}

impl SourcePlugin for FaultySource {
    fn create(config: &str, resume: Option<&[u8]>) -> Result<Self, PluginError> {
        let last: u64 = resume
            .and_then(|r| std::str::from_utf8(r).ok()?.parse().ok())
            .unwrap_or(0);
        Ok(Self {
            fuse: Fuse::new(config, "create")?,
            next_seq: last + 1,
        })
    }

    fn next(&mut self) -> Result<Option<Batch>, PluginError> {
        self.fuse.check("next")?;
        if self.next_seq > self.fuse.faults.count {
            return Ok(None);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let ops = if self.fuse.misbehaves("wrong_ops") {
            vec![op::UPSERT, op::UPSERT]
        } else {
            vec![op::UPSERT]
        };
        Ok(Some(one_row(seq, ops)))
    }

    fn close(&mut self) -> Result<(), PluginError> {
        self.fuse.check("close")
    }
}

struct FaultyTransform(Fuse);

impl TransformPlugin for FaultyTransform {
    fn create(config: &str) -> Result<Self, PluginError> {
        Ok(Self(Fuse::new(config, "create")?))
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, PluginError> {
        self.0.check("apply")?;
        Ok(batch)
    }
}

struct FaultySink {
    fuse: Fuse,
    written: Vec<u64>,
    durable: Vec<u64>,
}

impl SinkPlugin for FaultySink {
    fn create(config: &str) -> Result<Self, PluginError> {
        Ok(Self {
            fuse: Fuse::new(config, "create")?,
            written: Vec::new(),
            durable: Vec::new(),
        })
    }

    fn write(&mut self, _batch: Batch, id: u64) -> Result<(), PluginError> {
        self.written.push(id);
        self.fuse.check("write")
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        self.fuse.check("flush")?;
        self.durable.append(&mut self.written);
        if self.fuse.misbehaves("ack_unknown") {
            self.durable.push(999_999);
        }
        Ok(())
    }

    fn take_acks(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.durable)
    }

    fn close(&mut self) -> Result<(), PluginError> {
        self.fuse.check("close")?;
        self.flush()
    }
}

export_plugin! {
    sources: [("faulty_source", "fails on command (tests)", FaultySource)],
    transforms: [("faulty_transform", "fails on command (tests)", FaultyTransform)],
    sinks: [("faulty_sink", "fails on command (tests)", FaultySink)],
}
