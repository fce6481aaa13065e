//! What a user sees for each kind of configuration mistake: file, line, column, key, and a message
//! that says what to fix. Secrets never show up in errors or `Debug` output.

mod support;

use mirror_core::config::{ConfigError, ConfigLoader, MirrorConfig};

fn parse_with_env(text: &str, env: &[(&str, &str)]) -> Result<MirrorConfig, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ConfigLoader::default()
        .with_env(move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .parse(text, "mirror.toml")
}

fn error(text: &str) -> String {
    parse_with_env(text, &[]).unwrap_err().to_string()
}

const VALID: &str = r#"
[sources.numbers]
type = "counting"
probe = "config"
count = 3

[sinks.lake]
type = "recording"
inputs = ["numbers"]
probe = "config"
"#;

#[test]
fn a_valid_file_parses_into_routes() {
    let config = parse_with_env(VALID, &[]).unwrap();
    assert_eq!(
        config.routes(),
        vec![vec!["numbers".to_string(), "lake".to_string()]]
    );
    assert_eq!(config.engine.channel_capacity, 4);
}

#[test]
fn malformed_toml() {
    let text = "[sources.numbers]\ntype = \"counting\"\nprobe = \"x\ncount = 3\n";
    assert_eq!(
        error(text),
        "mirror.toml:3:11: invalid basic string, expected `\"`\n  |\n3 | probe = \"x\n  |           ^"
    );
}

#[test]
fn unknown_key_in_a_component() {
    let text = VALID.replace("count = 3", "cuont = 3");
    assert_eq!(
        error(&text),
        "mirror.toml:5:1: sources.numbers.cuont: unknown field `cuont`, expected one of `probe`, \
         `count`, `transient_at`, `transient_times`, `permanent_at`, `checkpoint_items`, \
         `interval_ms`, `password`, `record_schema`\n  |\n5 | cuont = 3\n  | ^^^^^"
    );
}

#[test]
fn api_settings_are_checked_with_their_place() {
    let text = format!("[api]\naddress = \"localhost:80:1\"\n{VALID}");
    let e = error(&text);
    assert!(
        e.starts_with("mirror.toml:2:11: api.address: invalid socket address"),
        "{e}"
    );
    let text = format!("[api]\ntoken = \"\"\n{VALID}");
    let e = error(&text);
    assert!(e.starts_with("mirror.toml:2:9: api.token: is empty"), "{e}");
    let config = parse_with_env(
        &format!("[api]\naddress = \"0.0.0.0:8080\"\nenabled = false\n{VALID}"),
        &[],
    )
    .unwrap();
    assert_eq!(config.api.address.to_string(), "0.0.0.0:8080");
    assert!(!config.api.enabled);
}

#[test]
fn unknown_key_in_a_core_section_and_unknown_section() {
    let text = format!("[engine]\nchannel_capacty = 3\n{VALID}");
    assert_eq!(
        error(&text),
        "mirror.toml:2:1: engine.channel_capacty: unknown field `channel_capacty`, expected one of \
         `channel_capacity`, `shutdown_timeout`, `retry`, `start_timeout`\n  |\n2 | channel_capacty = 3\n  | ^^^^^^^^^^^^^^^"
    );
    let text = format!("[sourcez.x]\ntype = \"counting\"\n{VALID}");
    assert_eq!(
        error(&text),
        "mirror.toml:1:2: sourcez: unknown section `sourcez`, expected one of: sources, \
         transforms, sinks, tables, engine, state, plugins, api\n  |\n1 | [sourcez.x]\n  |  ^^^^^^^"
    );
}

#[test]
fn wrong_type() {
    let text = VALID.replace("count = 3", "count = \"three\"");
    assert_eq!(
        error(&text),
        "mirror.toml:5:9: sources.numbers.count: invalid type: string \"three\", expected u64\n  |\n5 | count = \"three\"\n  |         ^^^^^^^"
    );
    let text = format!("[engine]\nshutdown_timeout = \"soon\"\n{VALID}");
    assert!(
        error(&text).starts_with("mirror.toml:2:20: engine.shutdown_timeout: "),
        "{}",
        error(&text)
    );
}

#[test]
fn missing_environment_variable() {
    let text = VALID.replace(
        "probe = \"config\"\ncount",
        "probe = \"${PROBE_NAME}\"\ncount",
    );
    assert_eq!(
        error(&text),
        "mirror.toml:4:9: sources.numbers.probe: environment variable `PROBE_NAME` is not set\n  |\n4 | probe = \"${PROBE_NAME}\"\n  |         ^^^^^^^^^^^^^^^"
    );
    let config = parse_with_env(&text, &[("PROBE_NAME", "from-env")]).unwrap();
    assert!(format!("{:?}", config.sources[0].config).contains("probe: \"from-env\""));
}

#[test]
fn missing_required_key_and_type() {
    let text = VALID.replace("probe = \"config\"\ncount = 3\n", "count = 3\n");
    assert_eq!(
        error(&text),
        "mirror.toml:2:1: sources.numbers: missing field `probe`\n  |\n2 | [sources.numbers]\n  | ^^^^^^^^^^^^^^^^^"
    );
    let text = VALID.replace("type = \"counting\"\n", "");
    assert_eq!(
        error(&text),
        "mirror.toml:2:10: sources.numbers.type: missing key `type`\n  |\n2 | [sources.numbers]\n  |          ^^^^^^^"
    );
    let text = VALID.replace("\"counting\"", "\"mongo\"");
    let err = error(&text);
    assert!(
        err.starts_with("mirror.toml:3:8: sources.numbers.type: unknown source type `mongo` (this build knows: counting"),
        "{err}"
    );
}

#[test]
fn graph_mistakes_name_the_component() {
    let text = VALID.replace("inputs = [\"numbers\"]", "inputs = [\"nubmers\"]");
    let err = error(&text);
    assert_eq!(
        err,
        "mirror.toml:9:11: sinks.lake.inputs: no source or transform is named `nubmers` (known: numbers)\n  |\n9 | inputs = [\"nubmers\"]\n  |           ^^^^^^^^^"
    );
    let text = format!("{VALID}\n[sources.idle]\ntype = \"counting\"\nprobe = \"idle\"\n");
    assert!(
        error(&text).starts_with("mirror.toml:12:10: sources.idle: feeds no sink"),
        "{}",
        error(&text)
    );
    let text = VALID.replace("inputs = [\"numbers\"]\n", "");
    assert!(error(&text).contains("sinks.lake.inputs: missing key `inputs`"));
}

#[test]
fn secrets_never_reach_debug_output_or_errors() {
    let text = VALID.replace("count = 3", "count = 3\npassword = \"${DB_PASSWORD}\"");
    let config = parse_with_env(&text, &[("DB_PASSWORD", "hunter2-very-secret")]).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("Secret(***)"));
    // A later error in the same file does not echo the secret either.
    let text = text.replace("count = 3", "count = \"3\"");
    let err = parse_with_env(&text, &[("DB_PASSWORD", "hunter2-very-secret")])
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn errors_in_table_sections_name_the_quoted_key() {
    let text = format!("{VALID}\n[tables.\"shop.orders\"]\nflatten_depth = \"deep\"\n");
    let err = error(&text);
    assert!(
        err.starts_with("mirror.toml:13:17: tables.\"shop.orders\".flatten_depth: invalid type: string \"deep\", expected u32"),
        "{err}"
    );
}
