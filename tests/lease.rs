//! The single-writer lease between `mirror run` processes on one machine: a writer killed with
//! SIGKILL is replaced at once (its successor proves it gone), while a live writer is waited for
//! by a standby that says why it is not ready, and takes over once the writer stops: at once after
//! a clean stop, within the lease's time to live when the writer hangs.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{wait_for, Mirror};

fn config(dir: &Path, ttl: &str) -> std::path::PathBuf {
    let path = dir.join("mirror.toml");
    std::fs::write(
        &path,
        format!(
            r#"[sources.gen]
type = "generator"
rate = 400
batch_size = 40
tables = ["orders"]

[sinks.lake]
type = "onelake"
inputs = ["gen"]
landing_zone = "{lz}"
flush_interval = "200ms"
lease = {{ ttl = "{ttl}", lock_dir = "{locks}" }}
"#,
            lz = dir.join("lz").display(),
            locks = dir.join("locks").display(),
        ),
    )
    .unwrap();
    path
}

fn start(config: &Path, dir: &Path, name: &str) -> Mirror {
    let log_dir = dir.join(name);
    std::fs::create_dir_all(&log_dir).unwrap();
    Mirror::start(config, &log_dir, &["--api-address", "127.0.0.1:0"], &[])
}

/// The lease state of table `demo.schema/orders`... of the one table, as `/api/status` shows it.
fn lease(m: &Mirror) -> Option<String> {
    let status = m.get("/api/status").json();
    status["tables"]
        .as_array()?
        .iter()
        .find_map(|t| t["lease"].as_str().map(str::to_owned))
}

fn wait_until_held(m: &Mirror, what: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    wait_for(what, timeout, || {
        (lease(m).as_deref() == Some("held")).then_some(())
    });
    started.elapsed()
}

fn signal(m: &Mirror, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &m.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_killed_writer_is_replaced_at_once_and_a_live_one_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let first = start(&config, dir.path(), "first");
    wait_until_held(&first, "the first writer's lease", Duration::from_secs(60));

    // SIGKILL: no release, the lease stays in the landing zone for its whole TTL (60 s).
    drop(first);
    let started = Instant::now();
    let second = start(&config, dir.path(), "second");
    wait_until_held(
        &second,
        "the second writer's lease",
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the successor of a killed writer waited {took:?} (the lease's TTL is 60 s)"
    );
    assert!(
        second
            .log()
            .contains("taking over the table's lease: its holder is gone"),
        "{}",
        second.log()
    );

    // A third one stands by while the second lives, and says so.
    let third = start(&config, dir.path(), "third");
    let reason = wait_for(
        "the standby's readiness to name the holder",
        Duration::from_secs(60),
        || {
            let ready = third.get("/ready");
            (ready.status == 503 && ready.body.contains("waiting for the lease"))
                .then_some(ready.body)
        },
    );
    assert!(reason.contains("writer `lake`"), "{reason}");
    assert!(reason.contains("is running on this machine"), "{reason}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lease(&third).as_deref(), Some("waiting"));
    assert_eq!(lease(&second).as_deref(), Some("held"));
    let status = Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(
        printed.contains(&format!("pid {}", second.pid()))
            && printed.contains("held: its process")
            && printed.contains("is running on this machine"),
        "{printed}"
    );

    // A clean stop releases the lease: the standby takes over at once.
    let stopped = Instant::now();
    assert!(second.stop().success());
    let took = wait_until_held(&third, "the standby's lease", Duration::from_secs(60));
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "the standby took {took:?} after a clean stop"
    );
    assert_eq!(third.get("/ready").status, 200, "{}", third.log());
}

#[test]
fn a_hung_writer_is_replaced_within_the_lease_ttl_and_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "4s");
    let mut first = start(&config, dir.path(), "first");
    wait_until_held(&first, "the first writer's lease", Duration::from_secs(60));
    let second = start(&config, dir.path(), "second");
    wait_for("the standby", Duration::from_secs(60), || {
        (lease(&second).as_deref() == Some("waiting")).then_some(())
    });

    // The first hangs (alive, its lock still held, but it no longer renews): the standby takes
    // over once the lease expires, within its TTL.
    signal(&first, "-STOP");
    let stopped = Instant::now();
    wait_until_held(&second, "the standby's lease", Duration::from_secs(60));
    let took = stopped.elapsed();
    assert!(
        took <= Duration::from_secs(4 + 6),
        "the standby took {took:?} with a 4 s lease"
    );

    // Woken up, the first finds its lease taken and stops writing, with a route failure.
    signal(&first, "-CONT");
    let exited = wait_for("the first to stop", Duration::from_secs(60), || {
        first.try_wait()
    });
    assert_eq!(exited.code(), Some(1), "{}", first.log());
    assert!(first.log().contains("lost the lease"), "{}", first.log());
    assert_eq!(lease(&second).as_deref(), Some("held"));
}

#[test]
fn a_standby_asked_to_stop_stops_at_once_and_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let first = start(&config, dir.path(), "first");
    wait_until_held(&first, "the first writer's lease", Duration::from_secs(60));
    let standby = start(&config, dir.path(), "standby");
    wait_for("the standby", Duration::from_secs(60), || {
        (lease(&standby).as_deref() == Some("waiting")).then_some(())
    });

    // A rolling update stops the standby (SIGTERM): it holds nothing and has nothing to flush,
    // so it must not sit out `shutdown_timeout` (30 s) and exit as if the stop had failed.
    let asked = Instant::now();
    let log = standby.log.clone();
    let exited = standby.stop();
    let took = asked.elapsed();
    let printed = std::fs::read_to_string(log).unwrap_or_default();
    assert!(exited.success(), "exit {exited:?}\n{printed}");
    assert!(
        took < Duration::from_secs(5),
        "the standby took {took:?} to stop\n{printed}"
    );
    assert!(printed.contains("stopped while standing by"), "{printed}");

    // The writer it waited for goes on writing.
    assert_eq!(lease(&first).as_deref(), Some("held"));
    assert!(first.stop().success());
}

/// Whether this machine lets us start processes in pid namespaces of their own (root, or
/// unprivileged user namespaces).
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The process the wrapper started (pid 1 in its namespace), as this namespace numbers it.
fn wrapped_child(m: &Mirror) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", m.pid()))
        .unwrap_or_default();
    children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the wrapped mirror process")
}

#[test]
fn a_restarted_container_takes_over_at_once() {
    // A container restart: the process is pid 1 again, in a new pid namespace, often with a new
    // host name, but on the same container file system (where the lock directory is).
    if !can_unshare() {
        if std::env::var_os("CI").is_some() {
            panic!("CI runs as root: `unshare --pid` must work");
        }
        eprintln!("note: skipping: cannot create pid namespaces here (not root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    // Each start is pid 1 of a new pid namespace, with a host name of its own.
    let container = |name: &str| {
        let log_dir = dir.path().join(name);
        std::fs::create_dir_all(&log_dir).unwrap();
        Mirror::start_wrapped(
            &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"],
            &config,
            &log_dir,
            &["--api-address", "127.0.0.1:0"],
            &[("HOSTNAME", name)],
        )
    };
    let first = container("container-a");
    wait_until_held(
        &first,
        "the first container's lease",
        Duration::from_secs(60),
    );
    let inner = wrapped_child(&first);
    let killed = Command::new("kill")
        .args(["-KILL", &inner.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(first);

    let started = Instant::now();
    let second = container("container-b");
    wait_until_held(
        &second,
        "the restarted container's lease",
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the restarted container waited {took:?} (the lease's TTL is 60 s)"
    );
    assert!(
        second.log().contains("is no longer locked"),
        "{}",
        second.log()
    );
}
