//! Shared by the end-to-end tests (`tests/api.rs`, `tests/status_page.rs`, `tests/equality.rs`,
//! `tests/container.rs`, ...): `mirror run` as a child process with its API on a free port, a plain
//! HTTP/1.1 client, the simulators, the replicated table as rows keyed by `_id`, and the test tools
//! installed by `.ci/run` (the virtualenv, node_modules).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use onelake_sim::{OneLakeSim, Value};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A test tool `.ci/run` installs; `None` (with a note) outside CI when it is missing, a failure
/// in CI.
pub fn tool(path: PathBuf, check: &[&str], install: &str) -> Option<PathBuf> {
    let ok = Command::new(&path)
        .args(check)
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} cannot run `{}`: install it with `{install}` (.ci/run does)",
            path.display(),
            check.join(" ")
        );
    }
    eprintln!(
        "note: skipping: {} is not set up ({install})",
        path.display()
    );
    None
}

/// The project's virtualenv Python with the Prometheus client's parsers.
pub fn python() -> Option<PathBuf> {
    tool(
        repo().join(".venv/bin/python"),
        &["-c", "import prometheus_client.parser, prometheus_client.openmetrics.parser"],
        "testkit/mongo-sim/python/setup-venv.sh && .venv/bin/python -m pip install -r tests/tools/requirements.txt",
    )
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
    pub took: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` with extra header lines, over a fresh connection.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    // hyper sends fixed-length bodies here (Full), so the body is what follows the head.
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
        took,
    }
}

/// Waits up to `timeout` for `f` to return `Some`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `mirror run` with its API on a free port; killed when dropped.
pub struct Mirror {
    child: Child,
    pub api: SocketAddr,
    pub log: PathBuf,
}

impl Mirror {
    /// Starts `mirror run --config <config>` (API on `127.0.0.1:0` unless the config or `args`
    /// say otherwise) and waits until its API listens.
    pub fn start(config: &Path, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Mirror {
        Self::start_wrapped(&[], config, dir, args, envs)
    }

    /// [`Mirror::start`], run by `wrapper` (e.g. `unshare --pid --fork`): the wrapper's command
    /// line, then mirror's.
    pub fn start_wrapped(
        wrapper: &[&str],
        config: &Path,
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Mirror {
        let log = dir.join("mirror.log");
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut c = Command::new(program);
                c.args(wrapper_args).arg(env!("CARGO_BIN_EXE_mirror"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_mirror")),
        };
        let mut child = command
            .args(["run", "--log-format", "json", "--config"])
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("MIRROR_API_ADDRESS")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mirror starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log_path).expect("log file");
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if !sent {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        let listening = v["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("HTTP API listening"));
                        if let (true, Some(a)) = (listening, v["address"].as_str()) {
                            let _ = tx.send(a.parse::<SocketAddr>().expect("an address"));
                            sent = true;
                        }
                    }
                }
            }
        });
        let api = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "mirror did not start its API:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Mirror { child, api, log }
    }

    pub fn get(&self, path: &str) -> Reply {
        get(self.api, path, &[])
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }

    /// Waits for the process to exit by itself.
    pub fn wait(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("mirror did not exit within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sample, as the Prometheus project's Python parser read it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sample {
    pub family: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: serde_json::Value,
}

/// An exposition parsed by `tests/tools/parse_metrics.py`.
#[derive(Debug, Clone)]
pub struct Metrics(pub Vec<Sample>);

impl Metrics {
    /// Parses `text` (`format`: `text` or `openmetrics`); a parse error fails the test.
    pub fn parse(python: &Path, text: &str, format: &str) -> Metrics {
        let mut child = Command::new(python)
            .arg(repo().join("tests/tools/parse_metrics.py"))
            .arg(format)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the {format} parser refused the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        Metrics(serde_json::from_slice(&out.stdout).expect("the parser's JSON"))
    }

    /// Samples named `name` whose labels include `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the matching samples' values (0 without any).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .map(|s| s.value.as_f64().expect("a finite value"))
            .sum()
    }

    /// The one matching sample's value.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert!(found.len() <= 1, "several {name} {labels:?}: {found:?}");
        found
            .first()
            .map(|s| s.value.as_f64().expect("a finite value"))
    }
}

/// The OneLake landing zone path the tests use inside onelake-sim.
pub const LZ_PATH: &str = "ws/lake.MountedRelationalDatabase/Files/LandingZone";

/// onelake-sim on a runtime of its own (kept alive with it).
pub struct Lake {
    pub sim: OneLakeSim,
    _runtime: tokio::runtime::Runtime,
}

impl Lake {
    pub fn start() -> Lake {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime
            .block_on(OneLakeSim::start())
            .expect("onelake-sim starts");
        Lake {
            sim,
            _runtime: runtime,
        }
    }

    /// The `[sinks.lake]` lines for this simulator with a bearer token.
    pub fn sink_toml(&self, token: &str) -> String {
        format!(
            "landing_zone = \"https://onelake.dfs.fabric.microsoft.com/{LZ_PATH}\"\n\
             endpoint = \"{}\"\n\
             auth = {{ method = \"bearer_token\", token = \"{token}\" }}\n",
            self.sim.endpoint()
        )
    }

    /// The data files of a table folder and the rows in each (read from their Parquet footers).
    pub fn data_files(&self, table: &str) -> Vec<(String, i64)> {
        use onelake_sim::LandingFiles;
        use parquet::file::reader::FileReader;
        let files = self.sim.storage().landing_zone(LZ_PATH);
        let mut out = Vec::new();
        for entry in files.list(table).unwrap() {
            let name = entry.name;
            let is_data = name.len() == 28
                && name.ends_with(".parquet")
                && name[..20].bytes().all(|b| b.is_ascii_digit());
            if !is_data {
                continue;
            }
            let bytes = files
                .read(&format!("{table}/{name}"))
                .unwrap()
                .expect("listed file");
            let reader =
                parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes))
                    .expect("a Parquet file");
            out.push((name, reader.metadata().file_metadata().num_rows()));
        }
        out.sort();
        out
    }
}

/// A free local port (bound and released: fine for tests that start a server on it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A table's rows keyed by the `_id` column's text, each row column by column.
pub type Rows = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Value>>;

/// The key column's text for a MongoDB `_id`, as the sink writes it.
pub fn key(id: &bson::Bson) -> String {
    let raw = bson::RawDocumentBuf::from_document(&bson::doc! {"_id": id.clone()}).unwrap();
    let mut out = String::new();
    mirror_mongodb::bson_arrow::encode_key(&mut out, raw.get("_id").unwrap().unwrap()).unwrap();
    out
}

/// The table at `path` as Fabric would have it after applying what the landing zone holds now
/// (`None` before the table exists), without `__rowMarker__`. Fails the test if Fabric would
/// have stopped replicating it or if a key appears twice.
pub fn replicated_rows(replicator: &mut onelake_sim::Replicator, path: &str) -> Option<Rows> {
    use onelake_sim::TableStatus;
    replicator.scan().ok()?;
    let table = replicator.table(path)?;
    assert!(
        matches!(
            table.status,
            TableStatus::Replicating | TableStatus::WaitingForMetadata
        ),
        "the table stopped replicating: {:?}",
        table.status
    );
    assert!(
        table.duplicate_keys().is_empty(),
        "duplicate keys: {:?}",
        table.duplicate_keys()
    );
    Some(
        table
            .rows()
            .into_iter()
            .map(|row| {
                let row: std::collections::BTreeMap<String, Value> = row
                    .into_iter()
                    .filter(|(c, _)| c != "__rowMarker__")
                    .collect();
                let id = match row.get("_id") {
                    Some(Value::Str(s)) => s.clone(),
                    other => panic!("bad key {other:?}"),
                };
                (id, row)
            })
            .collect(),
    )
}
