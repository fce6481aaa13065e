//! Runs the pymongo test (python/test_pymongo.py) against the `mongo-sim` binary, proving the
//! simulator is not shaped around the Rust driver alone (pymongo handshakes over OP_QUERY, uses
//! exhaust cursors and its own change-stream resume logic).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pymongo_drives_the_binary() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.join("../..");
    let python = root.join(".venv/bin/python");
    let setup = crate_dir.join("python/setup-venv.sh");
    if !python.exists() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{} is missing: run {} before `cargo test` (CI must set up the virtualenv)",
                python.display(),
                setup.display()
            );
        }
        let status = Command::new("bash")
            .arg(&setup)
            .status()
            .expect("run setup-venv.sh");
        assert!(status.success(), "setup-venv.sh failed");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_mongo-sim"))
        .args(["--port", "0", "--noop-interval-ms", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mongo-sim");
    let stdout = child.stdout.take().expect("stdout");
    let guard = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read URI");
    let uri = line.trim().to_string();
    assert!(
        uri.starts_with("mongodb://127.0.0.1:"),
        "first line is the URI: {uri:?}"
    );
    let out = Command::new(&python)
        .arg(crate_dir.join("python/test_pymongo.py"))
        .arg(&uri)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pymongo tests failed:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    drop(guard);
}

#[test]
fn binary_help_lists_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_mongo-sim"))
        .arg("--help")
        .output()
        .expect("run --help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for opt in ["--port", "--oplog-size-mb", "--seed-sample", "--set-name"] {
        assert!(text.contains(opt), "--help mentions {opt}:\n{text}");
    }
}
