//! `mirror init`: a commented starter `mirror.toml` from a few flags, or the configuration
//! equivalent to a MongoDB_Fabric_Mirroring app's `.env` ([`from_app_env`]).
//!
//! Secrets are never written: the MongoDB URI and the client secret stay in the environment and
//! the configuration names them (`${MONGO_CONN_STR}`, `${SECRET}`), so the same settings that
//! ran the app (its `.env`, App Service application settings) run `mirror`.

pub mod dotenv;

use std::collections::BTreeMap;

use mirror_onelake::location::{parse_location, Location};

use self::dotenv::EnvValue;

/// A TOML string.
fn q(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_owned()
}

/// A TOML array of strings.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// `text` as `# ` comment lines of at most 100 columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 100 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn is_remote(landing_zone: &str) -> bool {
    matches!(parse_location(landing_zone), Ok(Location::Azure(_)))
}

/// What [`starter`] is made from.
#[derive(Clone, Debug)]
pub struct Starter {
    /// The variable holding the MongoDB URI.
    pub uri_var: String,
    /// Databases (empty: all).
    pub databases: Vec<String>,
    /// Collections (empty: all).
    pub collections: Vec<String>,
    /// The landing zone.
    pub landing_zone: String,
}

/// A starter configuration.
pub fn starter(s: &Starter) -> Result<String, String> {
    if !s
        .uri_var
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || s.uri_var.is_empty()
    {
        return Err(format!(
            "--uri-var `{}` is not an environment variable name",
            s.uri_var
        ));
    }
    parse_location(&s.landing_zone).map_err(|e| format!("--landing-zone: {e}"))?;
    let all = || vec!["*".to_owned()];
    let databases = if s.databases.is_empty() {
        all()
    } else {
        s.databases.clone()
    };
    let collections = if s.collections.is_empty() {
        all()
    } else {
        s.collections.clone()
    };
    let remote = is_remote(&s.landing_zone);
    let mut out = format!(
        "# mirror.toml, written by `mirror init` (mirror {version}). Every key, commented:\n\
         # mirror.toml.example. Check it with `mirror check`, run it with `mirror run`.\n\
         \n\
         # The MongoDB to mirror. The URI (with its password) comes from the environment:\n\
         #   export {var}='mongodb+srv://user:password@cluster.example.net/'\n\
         [sources.mongodb]\n\
         type = \"mongodb\"\n\
         uri = {uri}\n\
         databases = {databases}          # [\"*\"]: every database but admin, local, config\n\
         collections = {collections}        # names, \"db.name\", patterns (\"orders_*\"), \"*\"\n\
         # naming = \"schema\"               # tables <db>.schema/<collection>; \"flat\": <collection>\n\
         \n\
         # Where the tables go: a Fabric open mirroring landing zone, or a local directory to try\n\
         # it out. `mirror fabric create --workspace <ws> --name <item> --config mirror.toml`\n\
         # creates a mirrored database and writes its landing zone here.\n\
         [sinks.fabric]\n\
         type = \"onelake\"\n\
         inputs = [\"mongodb\"]\n\
         landing_zone = {lz}\n",
        version = mirror_core::VERSION,
        var = s.uri_var,
        uri = q(&format!("${{{}}}", s.uri_var)),
        databases = list(&databases),
        collections = list(&collections),
        lz = q(&s.landing_zone),
    );
    let auth = "auth = { method = \"client_secret\", tenant_id = \"${AZURE_TENANT_ID}\", \
                client_id = \"${AZURE_CLIENT_ID}\", client_secret = \"${AZURE_CLIENT_SECRET}\" }";
    if remote {
        out.push_str(&format!(
            "# The service principal needs the Contributor role in the workspace; its secret stays\n\
             # in the environment. Other methods: managed_identity, workload_identity, azure_cli.\n\
             {auth}\n\
             # Fabric's side of the landing zone (end-to-end status in `mirror status`).\n\
             fabric = {{}}\n"
        ));
    } else {
        out.push_str(&format!("# For a OneLake landing zone:\n# {auth}\n"));
    }
    Ok(out)
}

/// A configuration converted from the app's settings, with what did not carry over.
#[derive(Clone, Debug)]
pub struct Converted {
    /// The `mirror.toml` text.
    pub toml: String,
    /// Settings with no equivalent or a different meaning, explained.
    pub notes: Vec<String>,
    /// Variables the configuration reads from the environment.
    pub env: Vec<String>,
}

fn collections_of(value: &EnvValue) -> Result<Vec<String>, String> {
    let v = value.value.trim();
    if v == "all" {
        return Ok(vec!["*".into()]);
    }
    if v.starts_with('[') {
        let names: Vec<String> = serde_json::from_str(v).map_err(|e| {
            format!(
                "MONGO_COLLECTION (line {}) is not a JSON list of names: {e}",
                value.line
            )
        })?;
        if names.is_empty() {
            return Err(format!(
                "MONGO_COLLECTION (line {}) is an empty list",
                value.line
            ));
        }
        return Ok(names);
    }
    if v.is_empty() {
        return Err(format!("MONGO_COLLECTION (line {}) is empty", value.line));
    }
    Ok(vec![v.to_owned()])
}

/// The configuration equivalent to the app's `.env` (read from `file`).
pub fn from_app_env(file: &str, env: &BTreeMap<String, EnvValue>) -> Result<Converted, String> {
    let get = |k: &str| env.get(k).map(|v| v.value.trim()).filter(|v| !v.is_empty());
    let require =
        |k: &str, why: &str| get(k).ok_or_else(|| format!("{file}: {k} is not set ({why})"));
    let mut notes = Vec::new();
    let database = require("MONGO_DB_NAME", "the database the app mirrors")?;
    let collections = match env.get("MONGO_COLLECTION") {
        Some(v) => collections_of(v).map_err(|e| format!("{file}: {e}"))?,
        None => {
            return Err(format!(
                "{file}: MONGO_COLLECTION is not set (a name, a JSON list of names, or \"all\")"
            ))
        }
    };
    let lz_raw = require("LZ_URL", "the landing zone URL")?;
    let tenant = require("TENANT_ID", "the service principal's tenant")?;
    let app_id = require("APP_ID", "the service principal's application id")?;
    if env.get("MONGO_CONN_STR").is_none() {
        notes.push(
            "MONGO_CONN_STR is not in the file: set it in the environment before running mirror."
                .into(),
        );
    }
    if env.get("SECRET").is_none() {
        notes.push(
            "SECRET is not in the file: set it in the environment before running mirror.".into(),
        );
    }
    // The app joins LZ_URL + <collection> + "/": without a trailing slash its tables went next to
    // the landing zone, where Fabric does not look. mirror takes the URL as the landing zone.
    let landing_zone = lz_raw.trim_end_matches('/').to_owned();
    match parse_location(&landing_zone) {
        Ok(Location::Azure(a)) if a.onelake => {}
        Ok(_) => return Err(format!("{file}: LZ_URL `{lz_raw}` is not a OneLake URL")),
        Err(e) => return Err(format!("{file}: LZ_URL: {e}")),
    }
    if !lz_raw.ends_with('/') {
        notes.push(format!(
            "LZ_URL has no trailing slash: the app wrote its table folders next to the landing \
             zone (`{lz_raw}<collection>/`), where Fabric does not read them; mirror writes inside \
             it (`{landing_zone}/<collection>/`)."
        ));
    }
    if !landing_zone.ends_with("/Files/LandingZone") {
        notes.push(format!(
            "LZ_URL does not end in Files/LandingZone: check that `{landing_zone}` is the \
             mirrored database's landing zone (`mirror fabric status` prints it)."
        ));
    }
    let mut source_extra = String::new();
    match get("INIT_LOAD_BATCH_SIZE") {
        Some(n) if n.parse::<usize>().is_ok_and(|n| n > 0) => source_extra.push_str(&format!(
            "snapshot_page_size = {n}          # INIT_LOAD_BATCH_SIZE: documents per initial-sync read\n"
        )),
        Some(n) => notes.push(format!("INIT_LOAD_BATCH_SIZE `{n}` is not a positive number; mirror's default page size (5000) is used.")),
        None => {}
    }
    let mut comments = String::new();
    if let Some(n) = get("DELTA_SYNC_BATCH_SIZE") {
        let note = format!(
            "DELTA_SYNC_BATCH_SIZE = {n} has no equivalent: the app wrote a file per {n} change(s); \
             mirror writes a file when max_file_rows rows are buffered or when the oldest waited \
             flush_interval (1s), whichever comes first, so changes reach Fabric within a second \
             either way."
        );
        comments.push_str(&comment(&note));
        notes.push(note);
    }
    if let Some(n) = get("TIME_THRESHOLD_IN_SEC") {
        let note = format!(
            "TIME_THRESHOLD_IN_SEC = {n} means something else: the app flushed its buffered changes \
             after {n} s, checked only when a new change arrived; mirror's flush_interval (default \
             1s) publishes buffered rows on time even when no change follows. Set \
             `flush_interval = \"{n}s\"` on the sink only for fewer, larger files."
        );
        comments.push_str(&comment(&note));
        notes.push(note);
    }
    for key in ["APP_LOG_LEVEL", "LOG_LEVEL"] {
        if let Some(level) = get(key) {
            let note = format!(
                "{key} = {level} is not a configuration key: mirror logs to stderr, with \
                 RUST_LOG={} (or -v) and --log-format json.",
                level.to_ascii_lowercase()
            );
            comments.push_str(&comment(&note));
            notes.push(note);
        }
    }
    let known = [
        "MONGO_CONN_STR",
        "MONGO_DB_NAME",
        "MONGO_COLLECTION",
        "LZ_URL",
        "APP_ID",
        "SECRET",
        "TENANT_ID",
        "INIT_LOAD_BATCH_SIZE",
        "DELTA_SYNC_BATCH_SIZE",
        "TIME_THRESHOLD_IN_SEC",
        "APP_LOG_LEVEL",
        "LOG_LEVEL",
    ];
    let unused: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if !unused.is_empty() {
        let note = format!(
            "not used by mirror (the app's own logging, metrics and debugging switches): {}.",
            unused.join(", ")
        );
        comments.push_str(&comment(&note));
        notes.push(note);
    }
    if collections == ["*"] {
        notes.push(
            "MONGO_COLLECTION = \"all\": the app took the collections that existed when it started; \
             mirror also mirrors collections created later."
                .into(),
        );
    }
    let toml = format!(
        "# mirror.toml, converted by `mirror init --from-env {file}` (mirror {version}) from the\n\
         # MongoDB_Fabric_Mirroring app's settings. Secrets are not copied: the configuration reads\n\
         # MONGO_CONN_STR and SECRET from the environment, as the app did. docs/migrating.md has\n\
         # the cut-over step by step; mirror.toml.example explains every key.\n\
         \n\
         [sources.mongodb]\n\
         type = \"mongodb\"\n\
         uri = \"${{MONGO_CONN_STR}}\"             # MONGO_CONN_STR\n\
         databases = {databases}               # MONGO_DB_NAME\n\
         collections = {collections}             # MONGO_COLLECTION\n\
         naming = \"flat\"                        # tables keep the app's names: <landing zone>/<collection>/\n\
         {source_extra}\
         {comments}\
         \n\
         [sinks.fabric]\n\
         type = \"onelake\"\n\
         inputs = [\"mongodb\"]\n\
         landing_zone = {lz}   # LZ_URL\n\
         auth = {{ method = \"client_secret\", tenant_id = {tenant}, client_id = {app_id}, client_secret = \"${{SECRET}}\" }}   # TENANT_ID, APP_ID, SECRET\n\
         # Fabric's side of the landing zone: end-to-end status, and the wait of a table reset.\n\
         fabric = {{}}\n\
         # A table folder the app wrote is refused until you choose: \"reset\" deletes it, waits\n\
         # until Fabric has dropped the table and copies the collection afresh (docs/migrating.md).\n\
         # takeover = \"reset\"\n",
        version = mirror_core::VERSION,
        databases = list(&[database.to_owned()]),
        collections = list(&collections),
        lz = q(&landing_zone),
        tenant = q(tenant),
        app_id = q(app_id),
    );
    Ok(Converted {
        toml,
        notes,
        env: vec!["MONGO_CONN_STR".into(), "SECRET".into()],
    })
}
