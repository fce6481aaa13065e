//! End-to-end benchmark of the MongoDB source: mongo-sim -> mirror (engine + `mongodb` source +
//! `onelake` sink) -> a local landing zone.
//!
//! ```text
//! cargo bench --bench mongodb_source
//! # sizes (the defaults shown):
//! BENCH_DOCS=1000000 BENCH_EVENTS=300000 BENCH_RATE=5000 BENCH_RATE_SECS=20 BENCH_UPDATE_PCT=50
//! ```
//!
//! The simulator runs in this process on its own thread (one runtime worker); mirror is the real
//! `mirror` binary (`mirror run`, stopped with SIGTERM), run as a child process from a
//! `mirror.toml` with every default, so that its memory and CPU are measured alone. Phases:
//!
//! 1. seed `BENCH_DOCS` documents of ~1 KB (varied nested shapes) into `bench.orders`;
//! 2. baseline: a bare `mongodb` driver cursor drains the collection (`RawDocumentBuf`s);
//! 3. initial sync: mirror copies the collection; done when the landing zone's published files hold
//!    every document (read from the Parquet footers by a watcher thread polling every 2 ms);
//! 4. streaming at full speed: a writer thread makes `BENCH_EVENTS` changes (inserts and updates,
//!    `BENCH_UPDATE_PCT` % updates) as fast as it can; events/s until the last one is published;
//! 5. a backlog: mirror is paused (SIGSTOP) while `BENCH_EVENTS` more changes are written, then
//!    resumed; events/s until the last one is published (mirror's own rate, not the writer's);
//! 6. streaming at a fixed rate (`BENCH_RATE`/s for `BENCH_RATE_SECS`): latency from each write to
//!    the moment its file is seen published. Every change writes its wall-clock time (µs) into the
//!    document's `wt` field, which the watcher reads back from the published files.
//!
//! 7. schema drift (e): `BENCH_DRIFT_TABLES` collections (12) receive `BENCH_DRIFT_RATE` inserts/s
//!    in all (120) for `BENCH_DRIFT_SECS` (10), and every insert brings a field its collection has
//!    not had before, so nearly every change-stream batch adds columns to its tables: latency from
//!    each write to its file's publication, against the bound `flush_interval` (1 s) + 0.5 s.
//!    `BENCH_ONLY=drift` runs this phase alone.
//!
//! Peak memory: the child's VmHWM (and VmRSS sampled every 50 ms). Extra settings can be appended
//! to the child's configuration: `BENCH_SOURCE_TOML` (lines of the source's table),
//! `BENCH_SINK_TOML` (the sink's) and `BENCH_EXTRA_TOML` (more tables, e.g. `[tables."*"]`).
//!
//! `BENCH_API=on` serves mirror's HTTP API and scrapes `/metrics` every second for the whole
//! run (what Prometheus does); by default (`off`) the API is disabled. `BENCH_API=compare`
//! measures what observing costs in one run: mirror runs four times (phases b to d), with the
//! API off, on, on and off, each on its own copy of the collection, and the means are compared
//! phase by phase.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bson::{doc, Document, RawDocumentBuf};
use futures::TryStreamExt;
use mongo_sim::workload::{oid, order, Rng};
use mongo_sim::{MongoSim, SimOptions};

const DB: &str = "bench";
const COLL: &str = "orders";
const POLL: Duration = Duration::from_millis(2);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Process measurements

fn status_kb(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of a process (`/proc/<pid>/stat`).
fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    std::fs::read_to_string(path).map_or(0.0, |text| stat_cpu_secs(&text))
}

/// User + system CPU seconds in the text of a `/proc/.../stat` file (of a process or a thread).
fn stat_cpu_secs(stat: &str) -> f64 {
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// User + system CPU seconds of the thread named `name` in process `pid` (0 if there is none).
fn thread_cpu_secs(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|t| std::fs::read_to_string(t.path().join("stat")).map_or(0.0, |s| stat_cpu_secs(&s)))
        .sum()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// Landing-zone watcher

#[derive(Default)]
struct Seen {
    /// Data files seen, by number.
    files: BTreeSet<String>,
    /// Rows in them.
    rows: u64,
    /// When the row count last grew.
    last_growth: Option<Instant>,
    /// Latencies (ms) from `wt` to the moment the file was seen, with the file's sighting time.
    latencies: Vec<(Instant, f64)>,
}

struct Watcher {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(folder: PathBuf) -> Self {
        Self::start_all(vec![folder])
    }

    /// One watcher over several table folders.
    fn start_all(folders: Vec<PathBuf>) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("lz-watcher".into())
                .spawn(move || watch(&folders, &seen, &stop))
                .expect("watcher thread")
        };
        Self {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn rows(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).rows
    }

    fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn is_data_file(name: &str) -> bool {
    name.len() == 28 && name.ends_with(".parquet") && name[..20].bytes().all(|b| b.is_ascii_digit())
}

fn watch(folders: &[PathBuf], seen: &Mutex<Seen>, stop: &AtomicBool) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    while !stop.load(Ordering::SeqCst) {
        let mut new = Vec::new();
        for folder in folders {
            if let Ok(entries) = std::fs::read_dir(folder) {
                let known = seen.lock().unwrap_or_else(|e| e.into_inner());
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let path = folder.join(&name);
                    if is_data_file(&name) && !known.files.contains(&path.display().to_string()) {
                        new.push(path);
                    }
                }
            }
        }
        // Sighting time first: reading the file must not count as latency.
        let (at, at_us) = (Instant::now(), now_micros());
        new.sort();
        for path in new {
            let name = path.display().to_string();
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            let Ok(builder) = ParquetRecordBatchReaderBuilder::try_new(file) else {
                continue;
            };
            let rows = builder.metadata().file_metadata().num_rows() as u64;
            let mut lat = Vec::new();
            let wt = builder
                .parquet_schema()
                .columns()
                .iter()
                .position(|c| c.name() == "wt");
            if let Some(wt) = wt {
                let mask = ProjectionMask::leaves(builder.parquet_schema(), [wt]);
                if let Ok(reader) = builder.with_projection(mask).build() {
                    for batch in reader.flatten() {
                        let col = batch.column(0);
                        if let Some(a) = col.as_any().downcast_ref::<arrow::array::Int64Array>() {
                            for v in a.iter().flatten() {
                                lat.push((at, (at_us - v) as f64 / 1000.0));
                            }
                        }
                    }
                }
            }
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            s.files.insert(name);
            s.rows += rows;
            s.last_growth = Some(at);
            s.latencies.extend(lat);
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// The child: the `mirror` binary itself.

struct Mirror {
    child: Child,
    pid: u32,
    log: PathBuf,
    peak_rss_kb: Arc<AtomicU64>,
    sampler_stop: Arc<AtomicBool>,
}

impl Mirror {
    /// Starts `mirror run --config <config>`, its log going to `log`.
    fn start(config: &Path, log: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let binary = env!("CARGO_BIN_EXE_mirror");
        // `BENCH_CHILD_WRAPPER="heaptrack -o /tmp/ht"` runs mirror under a tool.
        let wrapper = std::env::var("BENCH_CHILD_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log)?)
            .stderr(std::fs::OpenOptions::new().append(true).open(log)?)
            .spawn()?;
        let pid = child.id();
        let peak_rss_kb = Arc::new(AtomicU64::new(0));
        let sampler_stop = Arc::new(AtomicBool::new(false));
        {
            let (peak, stop) = (peak_rss_kb.clone(), sampler_stop.clone());
            // `BENCH_RSS_TRACE=1` prints mirror's RSS (MB) every 100 ms to stderr.
            let trace = std::env::var_os("BENCH_RSS_TRACE").is_some();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let rss = status_kb(Some(pid), "VmRSS:");
                    peak.fetch_max(rss, Ordering::Relaxed);
                    if trace && n.is_multiple_of(2) {
                        eprint!("{} ", rss / 1024);
                    }
                    n += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        Ok(Self {
            child,
            pid,
            log: log.to_path_buf(),
            peak_rss_kb,
            sampler_stop,
        })
    }

    fn hwm_mb(&self) -> f64 {
        status_kb(Some(self.pid), "VmHWM:") as f64 / 1024.0
    }

    fn cpu(&self) -> f64 {
        cpu_secs(Some(self.pid))
    }

    /// Stops mirror with SIGTERM (a clean stop) and waits for it; returns its peak RSS (MB) and
    /// CPU seconds, read just before the signal.
    fn stop(mut self) -> Result<(f64, f64), Box<dyn std::error::Error>> {
        let (hwm, cpu) = (self.hwm_mb(), self.cpu());
        Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        let status = self.child.wait()?;
        self.sampler_stop.store(true, Ordering::SeqCst);
        // `BENCH_LOG=<file>` keeps mirror's log (with `RUST_LOG=...` for more detail).
        if let Ok(keep) = std::env::var("BENCH_LOG") {
            std::fs::copy(&self.log, keep)?;
        }
        if !status.success() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            return Err(format!(
                "mirror exited with {status}; the end of its log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
            .into());
        }
        Ok((hwm, cpu))
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

fn wait_rows(
    watcher: &Watcher,
    target: u64,
    timeout: Duration,
) -> Result<Instant, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + timeout;
    loop {
        let (rows, at) = watcher.with(|s| (s.rows, s.last_growth));
        if rows >= target {
            return Ok(at.unwrap_or_else(Instant::now));
        }
        if Instant::now() > deadline {
            return Err(format!("timed out: {rows} of {target} rows published").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes changes: inserts of new documents (generated ahead, so that writing them is cheap) and
/// updates of seeded ones, each stamping `wt` with the time of the write.
struct Writer {
    coll: String,
    rng: Rng,
    inserts: std::vec::IntoIter<Document>,
    seeded: u64,
    update_pct: u64,
}

impl Writer {
    fn new(coll: &str, seeded: u64, changes: usize, update_pct: u64) -> Self {
        let mut rng = Rng::new(0xC0FF_EE00_1234_5678);
        let n = changes * (100 - update_pct as usize) / 100 + 64;
        let inserts: Vec<Document> = (0..n as u64).map(|i| order(&mut rng, seeded + i)).collect();
        Self {
            coll: coll.to_owned(),
            rng,
            inserts: inserts.into_iter(),
            seeded,
            update_pct,
        }
    }

    fn change(&mut self, sim: &mongo_sim::SimHandle) -> Result<(), Box<dyn std::error::Error>> {
        let insert = if self.rng.below(100) < self.update_pct {
            None
        } else {
            self.inserts.next()
        };
        match insert {
            Some(mut d) => {
                d.insert("wt", now_micros());
                sim.insert(DB, &self.coll, d)?;
            }
            None => {
                let id = self.rng.below(self.seeded);
                sim.update_one(
                    DB,
                    &self.coll,
                    doc! {"_id": oid(id)},
                    doc! {"$set": {"wt": now_micros(), "status": "updated"}},
                )?;
            }
        }
        Ok(())
    }
}

fn lat_summary(lat: &mut [f64]) -> (f64, f64, f64, f64) {
    lat.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len() as f64,
    )
}

/// GETs `/metrics` every second, as Prometheus would, until stopped.
struct Scraper {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64, Duration)>,
}

impl Scraper {
    fn start(port: u16) -> Self {
        use std::io::Read;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut scrapes, mut bytes, mut slowest) = (0u64, 0u64, Duration::ZERO);
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    let request =
                        "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
                    let mut body = Vec::new();
                    if s.write_all(request.as_bytes()).is_ok() && s.read_to_end(&mut body).is_ok() {
                        scrapes += 1;
                        bytes += body.len() as u64;
                        slowest = slowest.max(t.elapsed());
                    }
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
            }
            (scrapes, bytes, slowest)
        });
        Self { stop, thread }
    }

    fn stop(self) -> (u64, u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_docs = env_usize("BENCH_DOCS", 1_000_000);
    let n_events = env_usize("BENCH_EVENTS", 300_000);
    let rate = env_usize("BENCH_RATE", 5_000);
    let rate_secs = env_usize("BENCH_RATE_SECS", 20);
    let update_pct = env_usize("BENCH_UPDATE_PCT", 50) as u64;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "MongoDB source bench: {n_docs} docs, {n_events} events at full speed, {rate}/s for {rate_secs} s, {update_pct}% updates; {cores} cores; load average {}",
        loadavg()
    );

    let sim = MongoSim::start_on_thread(SimOptions {
        oplog_size_bytes: 2 << 30,
        ..Default::default()
    })?;
    if std::env::var("BENCH_ONLY").as_deref() == Ok("drift") {
        schema_drift(&sim)?;
        sim.shutdown();
        return Ok(());
    }
    let t = Instant::now();
    let mut rng = Rng::new(0x5EED_1234_ABCD_0001);
    let mut bytes_total = 0u64;
    let docs = (0..n_docs as u64).map(|i| {
        let raw =
            RawDocumentBuf::from_document(&order(&mut rng, i)).unwrap_or_else(|_| unreachable!());
        bytes_total += raw.as_bytes().len() as u64;
        raw
    });
    // `BENCH_API=compare` runs mirror four times (API off, on, on, off), each on its own copy.
    let compare = std::env::var("BENCH_API").as_deref() == Ok("compare");
    if compare {
        let docs: Vec<RawDocumentBuf> = docs.collect();
        for i in 1..4 {
            sim.seed_raw(DB, &format!("{COLL}_{i}"), docs.iter().cloned())?;
        }
        sim.seed_raw(DB, &format!("{COLL}_0"), docs)?;
    } else {
        sim.seed_raw(DB, COLL, docs)?;
    }
    let avg = bytes_total as f64 / n_docs.max(1) as f64;
    println!(
        "seeded {n_docs} docs ({:.0} MB, {avg:.0} B on average) in {:.1?}",
        bytes_total as f64 / 1e6,
        t.elapsed()
    );

    // (a) Baseline: a bare driver cursor.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sim_cpu0 = cpu_secs(None);
    let (drain_time, drained) = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(sim.uri()).await?;
        let coll = client
            .database(DB)
            .collection::<RawDocumentBuf>(if compare { "orders_0" } else { COLL });
        coll.find_one(doc! {}).await?;
        let t = Instant::now();
        let mut cursor = coll.find(doc! {}).await?;
        let mut n = 0u64;
        while let Some(d) = cursor.try_next().await? {
            n += u64::from(!d.as_bytes().is_empty());
        }
        Ok::<_, mongodb::error::Error>((t.elapsed(), n))
    })?;
    drop(rt);
    assert_eq!(drained, n_docs as u64);
    let base_rate = n_docs as f64 / drain_time.as_secs_f64();
    println!(
        "(a) bare driver drain: {n_docs} docs in {drain_time:.2?}: {base_rate:.0} docs/s, {:.0} MB/s (this process's CPU: {:.1} s)",
        bytes_total as f64 / drain_time.as_secs_f64() / 1e6,
        cpu_secs(None) - sim_cpu0
    );

    let sizes = Sizes {
        n_docs,
        n_events,
        rate,
        rate_secs,
        update_pct,
        bytes_total,
        base_rate,
    };
    if compare {
        // API off and on in one run, in the order off, on, on, off, each on a copy of the
        // collection seeded alike, so that drift in the machine's load falls on both alike.
        let mut off = Vec::new();
        let mut on = Vec::new();
        for (i, api_on) in [false, true, true, false].into_iter().enumerate() {
            let coll = format!("{COLL}_{i}");
            let api = if api_on { Some(free_port()?) } else { None };
            let figures = mirror_phases(&sim, &coll, api, &sizes)?;
            if api_on {
                on.push(figures)
            } else {
                off.push(figures)
            }
        }
        print_comparison(&off, &on);
    } else {
        let api = match std::env::var("BENCH_API").as_deref() {
            Ok("on") => Some(free_port()?),
            _ => None,
        };
        mirror_phases(&sim, COLL, api, &sizes)?;
    }
    schema_drift(&sim)?;
    println!("load average at the end: {}", loadavg());
    let _ = std::io::stdout().flush();
    sim.shutdown();
    Ok(())
}

/// The sizes every run of mirror uses.
#[derive(Clone, Copy)]
struct Sizes {
    n_docs: usize,
    n_events: usize,
    rate: usize,
    rate_secs: usize,
    update_pct: u64,
    bytes_total: u64,
    base_rate: f64,
}

/// What one run of mirror measured.
#[derive(Clone, Copy, Default)]
struct Figures {
    sync_rate: f64,
    sync_cpu_us: f64,
    stream_rate: f64,
    stream_cpu_us: f64,
    backlog_rate: f64,
    backlog_cpu_us: f64,
    paced_p50_ms: f64,
    paced_p99_ms: f64,
    peak_rss_mb: f64,
    /// The API thread's share of mirror's CPU (0 with the API off).
    api_cpu_share: f64,
}

/// A free port for mirror's API.
fn free_port() -> Result<u16, Box<dyn std::error::Error>> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs mirror (phases b to d) on `coll`, with its API on `api` (scraped every second) or off.
fn mirror_phases(
    sim: &mongo_sim::SimThread,
    coll: &str,
    api: Option<u16>,
    z: &Sizes,
) -> Result<Figures, Box<dyn std::error::Error>> {
    println!(
        "--- mirror on {DB}.{coll}, API {}",
        match api {
            Some(port) => format!("on (127.0.0.1:{port}), /metrics scraped every second"),
            None => "off".into(),
        }
    );
    let Sizes {
        n_docs,
        n_events,
        rate,
        rate_secs,
        update_pct,
        bytes_total,
        base_rate,
    } = *z;
    // (b) Mirror's initial sync.
    let dir = tempfile::tempdir()?;
    let lz = dir.path().join("lz");
    std::fs::create_dir_all(&lz)?;
    let config_path = dir.path().join("mirror.toml");
    let config = format!(
        r#"
[sources.mongo]
type = "mongodb"
uri = {uri:?}
databases = ["{DB}"]
collections = ["{coll}"]
progress = false
{source_extra}

[sinks.lake]
type = "onelake"
inputs = ["mongo"]
landing_zone = {lz:?}
{sink_extra}

{api}

{extra}
"#,
        uri = sim.uri(),
        lz = lz.display().to_string(),
        api = match &api {
            Some(port) => format!("[api]\naddress = \"127.0.0.1:{port}\""),
            None => "[api]\nenabled = false".to_owned(),
        },
        source_extra = std::env::var("BENCH_SOURCE_TOML").unwrap_or_default(),
        sink_extra = std::env::var("BENCH_SINK_TOML").unwrap_or_default(),
        extra = std::env::var("BENCH_EXTRA_TOML").unwrap_or_default(),
    );
    std::fs::write(&config_path, &config)?;
    let watcher = Watcher::start(lz.join(format!("{DB}.schema")).join(coll));
    let sim_cpu0 = cpu_secs(None);
    let t0 = Instant::now();
    let mirror = Mirror::start(&config_path, &dir.path().join("mirror.log"))?;
    let scraper = api.map(Scraper::start);
    // `BENCH_PERF=<file>`: profile mirror during the initial sync (and `BENCH_PERF_STREAM=<file>`
    // during the full-speed streaming phase) with `perf record`.
    let perf = |var: &str| -> Option<Child> {
        let out = std::env::var(var).ok()?;
        Command::new("perf")
            .args([
                "record",
                "-F",
                "299",
                "--call-graph",
                "dwarf,16384",
                "-o",
                &out,
                "-p",
            ])
            .arg(mirror.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    };
    let stop_perf = |p: Option<Child>| {
        if let Some(mut p) = p {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let _ = p.wait();
        }
    };
    let profiler = perf("BENCH_PERF");
    let synced_at = wait_rows(&watcher, n_docs as u64, Duration::from_secs(600))?;
    let sync_time = synced_at - t0;
    let sync_rate = n_docs as f64 / sync_time.as_secs_f64();
    let sync_rows = watcher.rows();
    let sync_hwm = mirror.hwm_mb();
    let sync_cpu = mirror.cpu();
    let sim_cpu = cpu_secs(None) - sim_cpu0;
    let files = watcher.with(|s| s.files.len());
    stop_perf(profiler);
    println!(
        "(b) initial sync: {n_docs} docs in {sync_time:.2?}: {sync_rate:.0} docs/s, {:.0} MB/s, {:.0}% of the bare driver; {sync_rows} rows in {files} files; mirror CPU {sync_cpu:.1} s ({:.1} µs/doc), simulator+bench CPU {sim_cpu:.1} s; mirror peak RSS {sync_hwm:.0} MB",
        bytes_total as f64 / sync_time.as_secs_f64() / 1e6,
        sync_rate / base_rate * 100.0,
        sync_cpu * 1e6 / n_docs as f64,
    );

    let mut figures = Figures {
        sync_rate,
        sync_cpu_us: sync_cpu * 1e6 / n_docs as f64,
        ..Figures::default()
    };

    // (c) Streaming at full speed.
    let handle = (*sim).clone();
    let mut writer = Writer::new(
        coll,
        n_docs as u64,
        2 * n_events + rate * rate_secs,
        update_pct,
    );
    let cpu0 = mirror.cpu();
    let sim_cpu0 = cpu_secs(None);
    let base_rows = watcher.rows();
    let profiler = perf("BENCH_PERF_STREAM");
    let t1 = Instant::now();
    for _ in 0..n_events {
        writer.change(&handle)?;
    }
    let write_time = t1.elapsed();
    let done_at = wait_rows(
        &watcher,
        base_rows + n_events as u64,
        Duration::from_secs(600),
    )?;
    let stream_time = done_at - t1;
    let stream_rate = n_events as f64 / stream_time.as_secs_f64();
    let stream_cpu = mirror.cpu() - cpu0;
    let sim_cpu = cpu_secs(None) - sim_cpu0;
    stop_perf(profiler);
    let mut lat: Vec<f64> = watcher.with(|s| s.latencies.drain(..).map(|(_, l)| l).collect());
    let (p50, p99, max, _) = lat_summary(&mut lat);
    println!(
        "(c) streaming, full speed: {n_events} changes written in {write_time:.2?} ({:.0}/s); all published after {stream_time:.2?}: {stream_rate:.0} events/s end to end; latency p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms; mirror CPU {stream_cpu:.1} s ({:.1} µs/event), simulator+writer CPU {sim_cpu:.1} s; peak RSS {:.0} MB",
        n_events as f64 / write_time.as_secs_f64(),
        stream_cpu * 1e6 / n_events as f64,
        mirror.hwm_mb()
    );

    figures.stream_rate = stream_rate;
    figures.stream_cpu_us = stream_cpu * 1e6 / n_events as f64;

    // (c2) A backlog: on two cores the simulator and the writer above use about a core between
    // them, so they cap (c). Here mirror is paused (SIGSTOP) while the changes are written, then
    // resumed: the rate at which it drains the backlog is its own.
    let base_rows = watcher.rows();
    let signal = |sig: &str| {
        Command::new("kill")
            .args([sig, &mirror.pid.to_string()])
            .status()
    };
    signal("-STOP")?;
    for _ in 0..n_events {
        writer.change(&handle)?;
    }
    let cpu0 = mirror.cpu();
    let t3 = Instant::now();
    signal("-CONT")?;
    let done_at = wait_rows(
        &watcher,
        base_rows + n_events as u64,
        Duration::from_secs(600),
    )?;
    let backlog_time = done_at - t3;
    let backlog_cpu = mirror.cpu() - cpu0;
    watcher.with(|s| s.latencies.clear());
    println!(
        "(c2) streaming, a backlog of {n_events} changes: all published after {backlog_time:.2?}: {:.0} events/s; mirror CPU {backlog_cpu:.1} s ({:.1} µs/event)",
        n_events as f64 / backlog_time.as_secs_f64(),
        backlog_cpu * 1e6 / n_events as f64,
    );

    figures.backlog_rate = n_events as f64 / backlog_time.as_secs_f64();
    figures.backlog_cpu_us = backlog_cpu * 1e6 / n_events as f64;

    // (c') Streaming at a fixed rate.
    std::thread::sleep(Duration::from_secs(2));
    watcher.with(|s| s.latencies.clear());
    let base_rows = watcher.rows();
    let total = rate * rate_secs;
    let base_files = watcher.with(|s| s.files.len());
    let t2 = Instant::now();
    for k in 0..total {
        let due = t2 + Duration::from_secs_f64(k as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        writer.change(&handle)?;
    }
    let paced = t2.elapsed();
    wait_rows(&watcher, base_rows + total as u64, Duration::from_secs(120))?;
    let paced_files = watcher.with(|s| s.files.len()) - base_files;
    let mut lat: Vec<f64> = watcher.with(|s| s.latencies.drain(..).map(|(_, l)| l).collect());
    let (p50, p99, max, count) = lat_summary(&mut lat);
    println!(
        "(c') streaming at {rate}/s: {total} changes in {paced:.2?}, published in {paced_files} files; latency write -> published file over {count} rows: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"
    );

    figures.paced_p50_ms = p50;
    figures.paced_p99_ms = p99;

    if let Some(scraper) = scraper {
        let (scrapes, bytes, slowest) = scraper.stop();
        // What serving costs, measured directly: the API's own thread (the telemetry it serves
        // is recorded whether the API is on or not).
        let (api_cpu, all_cpu) = (thread_cpu_secs(mirror.pid, "mirror-api"), mirror.cpu());
        figures.api_cpu_share = api_cpu / all_cpu.max(f64::MIN_POSITIVE);
        println!(
            "API: {scrapes} scrapes of /metrics ({:.0} KB each), slowest {slowest:.1?} (the backlog phase holds mirror stopped); the API thread used {api_cpu:.2} s of mirror's {all_cpu:.1} s of CPU ({:.2}%)",
            bytes as f64 / scrapes.max(1) as f64 / 1e3,
            figures.api_cpu_share * 100.0
        );
    }

    // (d) Memory.
    let peak_sampled = mirror.peak_rss_kb.load(Ordering::Relaxed) as f64 / 1024.0;
    let (hwm, cpu) = mirror.stop()?;
    drop(watcher);
    println!(
        "(d) mirror peak RSS: {hwm:.0} MB over the run (VmHWM; {sync_hwm:.0} MB at the end of the initial sync; sampled VmRSS max {peak_sampled:.0} MB); mirror CPU over the run {cpu:.1} s"
    );
    figures.peak_rss_mb = hwm;
    Ok(figures)
}

/// The mean of the runs with the API off and on, phase by phase, and their ratio.
fn print_comparison(off: &[Figures], on: &[Figures]) {
    let mean = |runs: &[Figures], f: fn(&Figures) -> f64| {
        runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64
    };
    let share = mean(on, |f| f.api_cpu_share) * 100.0;
    println!("--- the API thread used {share:.2}% of mirror's CPU in the runs with the API on");
    type Phase = (&'static str, fn(&Figures) -> f64);
    let rows: [Phase; 9] = [
        ("initial sync, docs/s", |f| f.sync_rate),
        ("initial sync, mirror CPU µs/doc", |f| f.sync_cpu_us),
        ("streaming at full speed, events/s", |f| f.stream_rate),
        ("streaming, mirror CPU µs/event", |f| f.stream_cpu_us),
        ("backlog drain, events/s", |f| f.backlog_rate),
        ("backlog, mirror CPU µs/event", |f| f.backlog_cpu_us),
        ("paced, latency p50 ms", |f| f.paced_p50_ms),
        ("paced, latency p99 ms", |f| f.paced_p99_ms),
        ("peak RSS MB", |f| f.peak_rss_mb),
    ];
    println!("--- API off (runs 1 and 4) vs on and scraped every second (runs 2 and 3), means:");
    println!(
        "{:<36} {:>12} {:>12} {:>8}",
        "phase", "API off", "API on", "on/off"
    );
    for (name, f) in rows {
        let (a, b) = (mean(off, f), mean(on, f));
        let each = |runs: &[Figures]| {
            runs.iter()
                .map(|r| format!("{:.1}", f(r)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{name:<36} {a:>12.1} {b:>12.1} {:>8.3}   (off: {}; on: {})",
            b / a,
            each(off),
            each(on)
        );
    }
}

/// (e) Schema drift: many collections whose every insert adds a column (see the module docs).
fn schema_drift(sim: &mongo_sim::SimThread) -> Result<(), Box<dyn std::error::Error>> {
    let tables = env_usize("BENCH_DRIFT_TABLES", 12);
    let rate = env_usize("BENCH_DRIFT_RATE", 120);
    let secs = env_usize("BENCH_DRIFT_SECS", 10);
    let flush = Duration::from_secs(1);
    println!(
        "--- schema drift: {tables} collections, {rate} inserts/s in all for {secs} s, each adding a column"
    );
    // The collections exist before mirror starts: discovering them is not what is measured.
    let handle = (*sim).clone();
    let names: Vec<String> = (0..tables).map(|t| format!("drift_{t:02}")).collect();
    for name in &names {
        handle.insert(DB, name, doc! {"_id": 0i64, "wt": 0i64})?;
    }
    let dir = tempfile::tempdir()?;
    let lz = dir.path().join("lz");
    let config_path = dir.path().join("mirror.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[sources.mongo]
type = "mongodb"
uri = {uri:?}
databases = ["{DB}"]
collections = ["drift_*"]
progress = false

[sinks.lake]
type = "onelake"
inputs = ["mongo"]
landing_zone = {lz:?}
flush_interval = "{flush}s"

[api]
enabled = false
"#,
            uri = sim.uri(),
            lz = lz.display().to_string(),
            flush = flush.as_secs(),
        ),
    )?;
    let folders = names
        .iter()
        .map(|n| lz.join(format!("{DB}.schema")).join(n))
        .collect();
    let watcher = Watcher::start_all(folders);
    let mirror = Mirror::start(&config_path, &dir.path().join("mirror.log"))?;
    wait_rows(&watcher, tables as u64, Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_secs(1));
    watcher.with(|s| s.latencies.clear());
    let base_rows = watcher.rows();
    let total = rate * secs;
    let t = Instant::now();
    for k in 0..total {
        let due = t + Duration::from_secs_f64(k as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut d = doc! {"_id": k as i64 + 1, "wt": now_micros()};
        d.insert(format!("field_{k}"), k as i64);
        handle.insert(DB, &names[k % tables], d)?;
    }
    wait_rows(&watcher, base_rows + total as u64, Duration::from_secs(300))?;
    let files = watcher.with(|s| s.files.len());
    let mut lat: Vec<f64> = watcher.with(|s| s.latencies.drain(..).map(|(_, l)| l).collect());
    let (p50, p99, max, count) = lat_summary(&mut lat);
    let bound = (flush + Duration::from_millis(500)).as_millis();
    println!(
        "(e) schema drift: {total} inserts into {tables} collections in {:.2?}, every one adding a column; {files} files; latency write -> published file over {count} rows: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms (bound: flush_interval + 0.5 s = {bound} ms: {})",
        t.elapsed(),
        if p99 <= bound as f64 { "met" } else { "MISSED" }
    );
    let (hwm, _) = mirror.stop()?;
    drop(watcher);
    println!("(e) mirror peak RSS {hwm:.0} MB");
    Ok(())
}
