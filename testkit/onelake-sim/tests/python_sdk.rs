//! The simulator driven by Microsoft's Azure Storage Python SDKs and by the production
//! open-mirroring writers' Python code (`tests/sdk/*.py`).
//!
//! Runs when a Python with `azure-storage-file-datalake` and `azure-storage-blob` is found
//! (`ONELAKE_SIM_PYTHON`, else `.venv/bin/python` at the repository root); skipped with a note
//! otherwise. With `CI` (or `ONELAKE_SIM_REQUIRE_SDK=1`) set, a missing SDK is a failure; `.ci/run`
//! installs it into `.venv`. Install:
//! `python3 -m venv .venv && .venv/bin/pip install -r testkit/onelake-sim/tests/sdk/requirements.txt`.

use std::path::PathBuf;
use std::process::Command;

use onelake_sim::OneLakeSim;

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("ONELAKE_SIM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
        });
    let ok = Command::new(&candidate)
        .args([
            "-c",
            "import azure.storage.filedatalake, azure.storage.blob",
        ])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(candidate)
}

/// Runs `tests/sdk/<script>` against a fresh simulator; its last line must be `done`.
async fn run_script(script: &str, done: &str) {
    let Some(python) = python() else {
        if std::env::var_os("ONELAKE_SIM_REQUIRE_SDK").is_some() || std::env::var_os("CI").is_some()
        {
            panic!("no Python with the Azure Storage SDKs (set ONELAKE_SIM_PYTHON)");
        }
        eprintln!(
            "note: skipping: no Python with azure-storage-file-datalake (set ONELAKE_SIM_PYTHON)"
        );
        return;
    };
    let sim = OneLakeSim::start().await.unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let endpoint = sim.endpoint();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(endpoint).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(done), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsofts_python_sdks_work_against_the_simulator() {
    run_script("open_mirroring_sdk_check.py", "all SDK checks passed").await;
}

/// Microsoft's open-mirroring client and the MongoDB_Fabric_Mirroring app, call for call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_open_mirroring_writers_work_against_the_simulator() {
    run_script(
        "open_mirroring_client_check.py",
        "all open-mirroring client checks passed",
    )
    .await;
}
