//! No secret written into `mirror.toml` (or handed in through the environment) ever reaches
//! stdout or stderr: not in a configuration error's message or underlined line, not in `mirror
//! check`'s output, not in the logs of `mirror run`, at any log level.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mongo_sim::auth::SimUser;
use mongo_sim::{MongoSim, SimOptions};
use support::Lake;

/// Every secret in the configuration below (and in the environment it reads).
const SECRETS: &[&str] = &[
    "Mongo-Pass-1",
    "Mask-Key-2",
    "Client-Secret-3",
    "Fabric-Token-4",
    "QWNjb3VudC1LZXktNQ==",
    "Sas-Sig-6",
    "Api-Token-7",
    "Env-Pass-8",
    "Endpoint-Pass-9",
];

/// The log settings every command is run with.
const LOG_LEVELS: &[&[(&str, &str)]] = &[
    &[("RUST_LOG", "trace")],
    &[("RUST_LOG", "debug")],
    &[("RUST_LOG", "info")],
    &[("RUST_LOG", "warn")],
    &[("RUST_LOG", "error")],
];

fn config(mongo_port: u16, lake: &str) -> String {
    format!(
        r#"[sources.atlas]
type = "mongodb"
uri = "mongodb://mirror:Mongo-Pass-1@127.0.0.1:{mongo_port}/?directConnection=true&serverSelectionTimeoutMS=1500&authSource=admin"
databases = ["shop"]

[sources.from_env]
type = "mongodb"
uri = "${{MONGODB_URI}}"
databases = ["other"]

[transforms.pii]
type = "mask"
inputs = ["atlas", "from_env"]
columns = ["email"]
key = "Mask-Key-2"

[sinks.fabric]
type = "onelake"
inputs = ["pii"]
landing_zone = "https://onelake.dfs.fabric.microsoft.com/ws/lake.MountedRelationalDatabase/Files/LandingZone"
endpoint = "{lake}"
auth = {{ method = "client_secret", tenant_id = "t", client_id = "c", client_secret = "Client-Secret-3", authority_host = "{lake}" }}
fabric = {{ workspace = "ws", item = "lake", api = "{lake}/v1", auth = {{ method = "bearer_token", token = "Fabric-Token-4" }} }}

[sinks.adls]
type = "onelake"
inputs = ["pii"]
landing_zone = "https://acct.dfs.core.windows.net/fs/lz"
endpoint = "http://admin:Endpoint-Pass-9@127.0.0.1:9/"
auth = {{ method = "access_key", account_key = "QWNjb3VudC1LZXktNQ==" }}

[sinks.sas]
type = "onelake"
inputs = ["pii"]
landing_zone = "https://acct.dfs.core.windows.net/fs/other"
endpoint = "{lake}"
auth = {{ method = "sas", token = "sv=2022-11-02&sig=Sas-Sig-6" }}

[state]
path = "./state"

[api]
token = "Api-Token-7"
"#
    )
}

fn mirror(dir: &Path, args: &[&str], env: &[(&str, &str)], mongo_port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirror"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("MIRROR_CONFIG")
        .env("MIRROR_API_ADDRESS", "127.0.0.1:0")
        .env(
            "MONGODB_URI",
            format!(
                "mongodb://app:Env-Pass-8@127.0.0.1:{mongo_port}/?directConnection=true&authSource=admin"
            ),
        )
        .envs(env.iter().copied());
    cmd
}

/// Runs `cmd` to its end, or stops it (SIGTERM, then SIGKILL) after `limit`.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mirror starts");
    fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).ok();
            bytes
        })
    }
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            // A clean stop takes a moment; then it is killed, output and all.
            let stopped = Instant::now();
            while stopped.elapsed() < Duration::from_secs(10) {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what}: the secret {secret:?} was printed:\n{text}"
        );
    }
}

/// The configuration with a mistake on line `line` (1-based): a syntax error after the value,
/// an unknown key inside its inline table, or a value of the wrong type.
fn with_mistake(text: &str, line: usize, mistake: Mistake) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let l = &mut lines[line - 1];
    match mistake {
        Mistake::Syntax => l.push_str(" oops"),
        Mistake::UnknownKey => {
            let at = l.rfind("= {")? + 2;
            l.insert_str(at + 1, " extra = 1,");
        }
        Mistake::WrongType => {
            let (key, value) = l.split_once(" = ")?;
            if value.starts_with('{') {
                return None;
            }
            *l = format!("{key} = [{value}]");
        }
    }
    Some(lines.join("\n") + "\n")
}

#[derive(Clone, Copy, Debug)]
enum Mistake {
    Syntax,
    UnknownKey,
    WrongType,
}

#[test]
fn config_errors_on_lines_with_secrets_never_print_them() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(9, "http://127.0.0.1:9");
    let secret_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| SECRETS.iter().any(|s| l.contains(s)) || l.contains("MONGODB_URI"))
        .map(|(i, _)| i + 1)
        .collect();
    assert!(secret_lines.len() >= 9, "{secret_lines:?}");
    let mut checked = 0;
    for &line in &secret_lines {
        for mistake in [Mistake::Syntax, Mistake::UnknownKey, Mistake::WrongType] {
            let Some(wrong) = with_mistake(&text, line, mistake) else {
                continue;
            };
            std::fs::write(dir.path().join("mirror.toml"), &wrong).unwrap();
            for command in ["check", "run"] {
                for env in LOG_LEVELS {
                    let out = mirror(dir.path(), &[command, "--config", "mirror.toml"], env, 9)
                        .output()
                        .unwrap();
                    let shown = printed(&out);
                    let what = format!("{command} with {mistake:?} on line {line} ({env:?})");
                    assert_eq!(out.status.code(), Some(2), "{what}: {shown}");
                    assert_no_secret(&what, &shown);
                    assert!(
                        shown.contains(&format!("mirror.toml:{line}:")),
                        "{what}: the error is not placed on its line: {shown}"
                    );
                    let literal = SECRETS
                        .iter()
                        .any(|s| wrong.lines().nth(line - 1).is_some_and(|l| l.contains(s)));
                    if literal {
                        assert!(shown.contains("***"), "{what}: {shown}");
                    }
                    checked += 1;
                }
            }
            // The caret stays under the mistake, past the hidden value.
            if let Mistake::UnknownKey = mistake {
                let out = mirror(dir.path(), &["check", "--config", "mirror.toml"], &[], 9)
                    .output()
                    .unwrap();
                let shown = printed(&out);
                let prefix = format!("{line} | ");
                let snippet: Vec<&str> = shown
                    .lines()
                    .skip_while(|l| !l.starts_with(&prefix))
                    .collect();
                let (source, carets) = (snippet[0], snippet[1]);
                let column = carets.find('^').expect("carets");
                assert_eq!(
                    &source[column..column + 5],
                    "extra",
                    "line {line}: the caret is not under the unknown key:\n{shown}"
                );
            }
        }
    }
    assert!(checked >= 100, "{checked}");
}

#[test]
fn check_and_run_print_no_secret_at_any_log_level() {
    // The server checks both users' passwords, so the run gets as far as reading with them.
    let mongo = MongoSim::start_on_thread(SimOptions {
        users: vec![
            SimUser::new("admin", "mirror", "Mongo-Pass-1").role("read", "shop"),
            SimUser::new("admin", "app", "Env-Pass-8").role("read", "other"),
        ],
        ..SimOptions::default()
    })
    .unwrap();
    mongo
        .insert(
            "shop",
            "people",
            bson::doc! {"_id": 1, "email": "a@example.com"},
        )
        .unwrap();
    mongo
        .insert(
            "other",
            "people",
            bson::doc! {"_id": 2, "email": "b@example.com"},
        )
        .unwrap();
    let port: u16 = mongo
        .uri()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the simulator's port");
    let lake = Lake::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mirror.toml"),
        config(port, &lake.sim.endpoint()),
    )
    .unwrap();
    let mut levels: Vec<Vec<(&str, &str)>> = LOG_LEVELS.iter().map(|l| l.to_vec()).collect();
    levels.push(vec![("RUST_LOG", "trace"), ("MIRROR_LOG_FORMAT", "json")]);
    for env in &levels {
        let out = mirror(dir.path(), &["check", "--config", "mirror.toml"], env, port)
            .output()
            .unwrap();
        let shown = printed(&out);
        assert!(out.status.success(), "check ({env:?}): {shown}");
        assert_no_secret(&format!("check ({env:?})"), &shown);
        assert!(shown.contains("mongodb://mirror:***@127.0.0.1"), "{shown}");

        let out = output_within(
            mirror(dir.path(), &["run", "--config", "mirror.toml"], env, port),
            Duration::from_secs(8),
        );
        let shown = printed(&out);
        assert_no_secret(&format!("run ({env:?})"), &shown);
        if env[0].1 == "trace" {
            // The run got as far as reading with the credentials.
            assert!(
                shown.contains("initial sync"),
                "run ({env:?}) did not read:\n{shown}"
            );
        }
    }
}
