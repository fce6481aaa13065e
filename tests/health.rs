//! `mirror health`, the container image's HEALTHCHECK, against a real `mirror run`: exit 0 while
//! its `/health` answers 200, exit 1 with the reason when nothing answers or the answer is not 2xx.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

fn health(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["health", "--timeout", "5s", "--url", url])
        .env_remove("MIRROR_HEALTH_URL")
        .output()
        .expect("mirror health runs")
}

#[test]
fn health_exits_0_for_a_running_mirror_and_1_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.gen]\ntype = \"generator\"\nrate = 100.0\ntables = [\"t\"]\n\n\
             [sinks.lake]\ntype = \"onelake\"\ninputs = [\"gen\"]\nlanding_zone = {:?}\n\n\
             [api]\naddress = \"127.0.0.1:0\"\n",
            dir.path().join("lz").display().to_string()
        ),
    )
    .unwrap();
    let mirror = Mirror::start(&config, dir.path(), &[], &[]);
    wait_for("/health to answer 200", Duration::from_secs(60), || {
        (mirror.get("/health").status == 200).then_some(())
    });

    let ok = health(&format!("http://{}/health", mirror.api));
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");

    // A path the API does not serve: 404 is not healthy.
    let missing = health(&format!("http://{}/nothing-here", mirror.api));
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));

    let api = mirror.api;
    assert!(mirror.stop().success());
    let gone = health(&format!("http://{api}/health"));
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    let said = String::from_utf8_lossy(&gone.stderr);
    assert!(
        said.contains("no answer") && said.contains("refused"),
        "{said}"
    );
}
