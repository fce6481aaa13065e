//! `mirror.toml`: parsing, `${VAR}` interpolation, validation and the route graph.
//!
//! The file is a Vector-style graph of named components wired by `inputs`:
//!
//! ```toml
//! [sources.gen]
//! type = "generator"
//! count = 1000
//!
//! [sinks.lake]
//! type = "onelake"
//! inputs = ["gen"]
//! landing_zone = "./landing-zone"
//! ```
//!
//! Every error names the file, line, column and dotted key, and shows the offending line with
//! secret values replaced by `***` ([`redact`]). Unknown keys are errors everywhere: a typo must
//! not silently fall back to a default.

mod interpolate;
pub mod location;
pub mod redact;
mod secret;
mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, Deserializer, ValueDeserializer};
use toml::Spanned;

use crate::component::registry::{
    self, parse_sink_table, parse_source_table, parse_transform_table, ComponentToml,
};
use crate::component::{SinkConfig, SourceConfig, TransformConfig};

pub use secret::{
    redact_uri, remember_secret, scrub, uri_secrets, Secret, SecretUri, MIN_SCRUBBED_LEN,
};
pub use tables::{TableSettings, ALL_TABLES};

/// A configuration error, located in the file when it comes from the file's content.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The content is wrong at a place in the file.
    #[error("{0}")]
    At(Box<LocatedError>),
    /// A plugin named in `[plugins]` could not be loaded.
    #[error("{file}: [plugins]: {message}")]
    Plugin {
        /// The config file.
        file: String,
        /// What failed.
        message: String,
    },
}

impl ConfigError {
    /// The located error, if the error is about the file's content.
    pub fn located(&self) -> Option<&LocatedError> {
        match self {
            ConfigError::At(e) => Some(e),
            _ => None,
        }
    }
}

/// An error at a place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The dotted key, e.g. `sources.atlas.uri`; empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// The offending line with carets under the problem.
    pub snippet: String,
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}\n{}", self.message, self.snippet)
    }
}

/// Engine tuning: `[engine]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Batches buffered between two stages of a route; bounds memory and gives backpressure.
    pub channel_capacity: usize,
    /// How long a clean shutdown (drain, flush, commit) may take after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Retries of transient errors.
    pub retry: RetrySettings,
    /// How long `mirror run` keeps trying to reach sources and sinks that are unreachable at
    /// start (with the backoff of `retry`), not ready meanwhile; unset: until stopped. Errors
    /// that waiting cannot fix (authentication, permissions, invalid settings) stop at once.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Option<Duration>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            channel_capacity: 4,
            shutdown_timeout: Duration::from_secs(30),
            retry: RetrySettings::default(),
            start_timeout: None,
        }
    }
}

/// Capped exponential backoff with jitter: `[engine.retry]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// First delay.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Largest delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Stop retrying and fail the route after this long; unset: retry until shutdown.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Option<Duration>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            give_up_after: None,
        }
    }
}

/// Where checkpoints are kept: `[state]`.
///
/// Without a `path`, state is kept where the data goes: in the store of the one sink that offers
/// one (the Open Mirroring sink keeps it in the landing zone, so a new host resumes where the old one
/// stopped), else in `./mirror-state`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// Directory of a local checkpoint store (relative to the working directory).
    pub path: Option<PathBuf>,
}

/// The local directory used when no sink keeps state and `[state] path` is unset.
pub const DEFAULT_STATE_DIR: &str = "mirror-state";

/// The HTTP API (`/health`, `/ready`, `/metrics`, `/api/status`, the status page): `[api]`.
///
/// The core only holds the settings; the binary serves the API.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Serve the API while `mirror run` runs (default true).
    pub enabled: bool,
    /// Where to listen, `127.0.0.1:8686` by default (`0.0.0.0:8080` in a container).
    pub address: std::net::SocketAddr,
    /// When set, every endpoint but `/health` and `/ready` requires
    /// `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// `/health` fails once items have waited this long without any commit (wedged).
    #[serde(with = "humantime_serde")]
    pub stalled_after: Duration,
    /// After a route failed, keep serving (`/health` answering 503) this long before exiting,
    /// so that probes and the next scrape see the failure.
    #[serde(with = "humantime_serde")]
    pub linger_on_failure: Duration,
}

/// The API's default address.
pub const DEFAULT_API_ADDRESS: &str = "127.0.0.1:8686";

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            address: std::net::SocketAddr::from(([127, 0, 0, 1], 8686)),
            token: None,
            stalled_after: crate::telemetry::DEFAULT_STALLED_AFTER,
            linger_on_failure: Duration::ZERO,
        }
    }
}

/// Runtime plugins: `[plugins]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Shared libraries to load.
    pub load: Vec<PathBuf>,
    /// A directory whose shared libraries are all loaded.
    pub dir: Option<PathBuf>,
}

/// A configured source.
#[derive(Debug)]
pub struct SourceSpec {
    /// Its name, `atlas` in `[sources.atlas]`.
    pub name: String,
    /// Its `type`.
    pub type_name: String,
    /// Its parsed configuration (the factory).
    pub config: Box<dyn SourceConfig>,
}

/// A configured transform.
#[derive(Debug)]
pub struct TransformSpec {
    /// Its name.
    pub name: String,
    /// Its `type`.
    pub type_name: String,
    /// The sources or transforms it reads.
    pub inputs: Vec<String>,
    /// Its parsed configuration (the factory).
    pub config: Box<dyn TransformConfig>,
}

/// A configured sink.
#[derive(Debug)]
pub struct SinkSpec {
    /// Its name.
    pub name: String,
    /// Its `type`.
    pub type_name: String,
    /// The sources or transforms it reads.
    pub inputs: Vec<String>,
    /// Its parsed configuration (the factory); shared, because the engine also asks it for its
    /// destination's status while the sink runs.
    pub config: std::sync::Arc<dyn SinkConfig>,
}

/// A parsed and validated `mirror.toml`.
#[derive(Debug)]
pub struct MirrorConfig {
    /// The file it came from, as named by the user.
    pub file: String,
    /// `[sources.*]`, by name.
    pub sources: Vec<SourceSpec>,
    /// `[transforms.*]`, by name.
    pub transforms: Vec<TransformSpec>,
    /// `[sinks.*]`, by name.
    pub sinks: Vec<SinkSpec>,
    /// `[tables."<source table>"]`.
    pub tables: BTreeMap<String, TableSettings>,
    /// `[engine]`.
    pub engine: EngineSettings,
    /// `[state]`.
    pub state: StateSettings,
    /// `[plugins]`.
    pub plugins: PluginSettings,
    /// `[api]`.
    pub api: ApiSettings,
}

/// Loads plugins named in `[plugins]` before components are parsed, so their types are known.
pub type PluginLoader<'a> = &'a dyn Fn(&PluginSettings) -> Result<(), String>;

type EnvLookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// How a configuration is read: where environment variables come from and who loads plugins.
pub struct ConfigLoader<'a> {
    env: EnvLookup<'a>,
    plugins: Option<PluginLoader<'a>>,
}

impl Default for ConfigLoader<'_> {
    fn default() -> Self {
        Self {
            env: Box::new(|name| std::env::var(name).ok()),
            plugins: None,
        }
    }
}

impl<'a> ConfigLoader<'a> {
    /// Reads variables from `env` instead of the process environment (tests, embedding).
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String> + 'a) -> Self {
        self.env = Box::new(env);
        self
    }

    /// Loads `[plugins]` with `loader` before parsing components.
    pub fn with_plugin_loader(mut self, loader: PluginLoader<'a>) -> Self {
        self.plugins = Some(loader);
        self
    }

    /// Reads and validates the file at `path`.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<MirrorConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.parse(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(&self, text: &str, file: &str) -> Result<MirrorConfig, ConfigError> {
        let secrets = redact::SecretSpans::scan(text);
        secrets.remember();
        Parser {
            text,
            file,
            env: &*self.env,
            secrets,
        }
        .parse(self.plugins)
    }
}

impl MirrorConfig {
    /// Reads and validates `path` with the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<MirrorConfig, ConfigError> {
        ConfigLoader::default().load(path)
    }

    /// Parses and validates `text` with the process environment; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<MirrorConfig, ConfigError> {
        ConfigLoader::default().parse(text, file)
    }

    /// Every path from a source through transforms to a sink, e.g. `["atlas", "pii", "fabric"]`.
    pub fn routes(&self) -> Vec<Vec<String>> {
        let mut consumers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in &self.transforms {
            for input in &t.inputs {
                consumers.entry(input).or_default().push(&t.name);
            }
        }
        for s in &self.sinks {
            for input in &s.inputs {
                consumers.entry(input).or_default().push(&s.name);
            }
        }
        let sinks: BTreeSet<&str> = self.sinks.iter().map(|s| s.name.as_str()).collect();
        let mut routes = Vec::new();
        for source in &self.sources {
            let mut stack = vec![vec![source.name.as_str()]];
            while let Some(path) = stack.pop() {
                let last = path[path.len() - 1];
                if sinks.contains(last) {
                    routes.push(path.iter().map(|s| s.to_string()).collect());
                    continue;
                }
                for next in consumers.get(last).into_iter().flatten().rev() {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
        routes
    }

    /// The settings of a source table, if `[tables."<name>"]` has any.
    pub fn table(&self, source_table: &str) -> Option<&TableSettings> {
        self.tables.get(source_table)
    }
}

struct Parser<'t> {
    text: &'t str,
    file: &'t str,
    env: &'t dyn Fn(&str) -> Option<String>,
    /// The secret values in `text`, hidden in every error.
    secrets: redact::SecretSpans,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "sources",
    "transforms",
    "sinks",
    "tables",
    "engine",
    "state",
    "plugins",
    "api",
];

impl<'t> Parser<'t> {
    fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let at = location::line_col(self.text, span.start);
        let hidden: Vec<location::Replacement> = self
            .secrets
            .spans()
            .iter()
            .map(|s| location::Replacement {
                span: s.span.clone(),
                shown: s.shown.clone(),
            })
            .collect();
        ConfigError::At(Box::new(LocatedError {
            file: self.file.to_owned(),
            line: at.line,
            column: at.column,
            key: key.into(),
            message: self.secrets.scrub(&message.into()),
            snippet: location::snippet_redacted(self.text, &span, &hidden),
        }))
    }

    /// A serde error inside the value at `path`, located at the deepest key containing its span.
    fn de_error(
        &self,
        err: toml::de::Error,
        path: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> ConfigError {
        let mut span = err.span().unwrap_or_else(|| value.span());
        let mut key = deepest_key(value, path, &span);
        // Serde locates an unknown field of an internally tagged enum (`auth = { method = ...,
        // typo = 1 }`) at the whole table: point at the field itself.
        let field = err
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field);
        if let Some((field, field_span)) =
            field.and_then(|f| Some((f, key_in_table_at(value, span.start, f)?)))
        {
            key = format!("{key}.{}", quote_key(field));
            span = field_span;
        }
        self.error(span, key, err.message().trim())
    }

    fn parse(&self, plugin_loader: Option<PluginLoader<'_>>) -> Result<MirrorConfig, ConfigError> {
        let root = DeTable::parse(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            self.error(span, "", e.message().trim())
        })?;
        let mut root = root.into_inner();
        interpolate::interpolate_table(&mut root, "", self.env)
            .map_err(|e| self.error(e.span, e.key, e.message))?;
        redact::remember_values(&root);

        let mut sections: BTreeMap<String, Spanned<DeValue<'_>>> = BTreeMap::new();
        for (key, value) in root {
            let name = key.get_ref().to_string();
            if !TOP_LEVEL_KEYS.contains(&name.as_str()) {
                return Err(self.error(
                    key.span(),
                    name.clone(),
                    format!(
                        "unknown section `{name}`, expected one of: {}",
                        TOP_LEVEL_KEYS.join(", ")
                    ),
                ));
            }
            sections.insert(name, value);
        }

        let engine: EngineSettings = self.typed(sections.remove("engine"), "engine")?;
        let state: StateSettings = self.typed(sections.remove("state"), "state")?;
        let plugins: PluginSettings = self.typed(sections.remove("plugins"), "plugins")?;
        let token_span = sections.get("api").and_then(|api| match api.get_ref() {
            DeValue::Table(t) => t.get("token").map(|v| v.span()),
            _ => None,
        });
        let api: ApiSettings = self.typed(sections.remove("api"), "api")?;
        if api.token.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(self.error(
                token_span.unwrap_or(0..0),
                "api.token",
                "is empty (an unset variable?); remove the key to serve the API without a token",
            ));
        }
        if let Some(loader) = plugin_loader {
            loader(&plugins).map_err(|message| ConfigError::Plugin {
                file: self.file.to_owned(),
                message,
            })?;
        }
        let tables: BTreeMap<String, TableSettings> =
            self.typed(sections.remove("tables"), "tables")?;

        let mut names: BTreeMap<String, (&'static str, Range<usize>)> = BTreeMap::new();
        let mut sources = Vec::new();
        for c in self.components(sections.remove("sources"), "sources", false, &mut names)? {
            let config = match parse_source_table(&c.type_name, c.toml) {
                Some(parsed) => parsed.map_err(|e| self.de_error(e, &c.path, &c.value))?,
                None => {
                    return Err(self.unknown_type(
                        &c.type_span,
                        &c.path,
                        &c.type_name,
                        "source",
                        registry::source_types(),
                    ))
                }
            };
            sources.push(SourceSpec {
                name: c.name,
                type_name: c.type_name,
                config,
            });
        }
        let mut transforms = Vec::new();
        let mut transform_inputs = Vec::new();
        for c in self.components(
            sections.remove("transforms"),
            "transforms",
            true,
            &mut names,
        )? {
            let config = match parse_transform_table(&c.type_name, c.toml) {
                Some(parsed) => parsed.map_err(|e| self.de_error(e, &c.path, &c.value))?,
                None => {
                    return Err(self.unknown_type(
                        &c.type_span,
                        &c.path,
                        &c.type_name,
                        "transform",
                        registry::transform_types(),
                    ))
                }
            };
            transform_inputs.push((c.path.clone(), c.inputs.clone()));
            transforms.push(TransformSpec {
                name: c.name,
                type_name: c.type_name,
                inputs: c.inputs.iter().map(|i| i.get_ref().clone()).collect(),
                config,
            });
        }
        let mut sinks = Vec::new();
        let mut sink_inputs = Vec::new();
        for c in self.components(sections.remove("sinks"), "sinks", true, &mut names)? {
            let config = match parse_sink_table(&c.type_name, c.toml) {
                Some(parsed) => parsed.map_err(|e| self.de_error(e, &c.path, &c.value))?,
                None => {
                    return Err(self.unknown_type(
                        &c.type_span,
                        &c.path,
                        &c.type_name,
                        "sink",
                        registry::sink_types(),
                    ))
                }
            };
            sink_inputs.push((c.path.clone(), c.inputs.clone()));
            sinks.push(SinkSpec {
                name: c.name,
                type_name: c.type_name,
                inputs: c.inputs.iter().map(|i| i.get_ref().clone()).collect(),
                config: config.into(),
            });
        }

        let config = MirrorConfig {
            file: self.file.to_owned(),
            sources,
            transforms,
            sinks,
            tables,
            engine,
            state,
            plugins,
            api,
        };
        self.validate_graph(&config, &names, &transform_inputs, &sink_inputs)?;
        Ok(config)
    }

    fn unknown_type(
        &self,
        span: &Range<usize>,
        path: &str,
        type_name: &str,
        kind: &str,
        known: Vec<String>,
    ) -> ConfigError {
        let known = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        self.error(
            span.clone(),
            format!("{path}.type"),
            format!("unknown {kind} type `{type_name}` (this build knows: {known}; runtime plugins are loaded from [plugins])"),
        )
    }

    fn typed<T: serde::de::DeserializeOwned + Default>(
        &self,
        value: Option<Spanned<DeValue<'_>>>,
        path: &str,
    ) -> Result<T, ConfigError> {
        let Some(value) = value else {
            return Ok(T::default());
        };
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            return Err(self.error(
                value.span(),
                path,
                format!("expected a table, found {}", value.get_ref().type_str()),
            ));
        }
        let copy = value.clone();
        T::deserialize(ValueDeserializer::from(value)).map_err(|e| self.de_error(e, path, &copy))
    }

    fn components<'v>(
        &self,
        section: Option<Spanned<DeValue<'v>>>,
        kind: &'static str,
        needs_inputs: bool,
        names: &mut BTreeMap<String, (&'static str, Range<usize>)>,
    ) -> Result<Vec<RawComponent<'v>>, ConfigError> {
        let Some(section) = section else {
            return Ok(Vec::new());
        };
        let span = section.span();
        let DeValue::Table(table) = section.into_inner() else {
            return Err(self.error(span, kind, "expected a table of named components"));
        };
        let mut out = Vec::new();
        for (name, value) in table {
            let name_span = name.span();
            let name = name.into_inner().to_string();
            let path = format!("{kind}.{name}");
            if !is_component_name(&name) {
                return Err(self.error(
                    name_span,
                    path,
                    "component names use letters, digits, `_` and `-` only",
                ));
            }
            if let Some((other_kind, _)) = names.get(&name) {
                return Err(self.error(name_span, path, format!("the name `{name}` is already used in [{other_kind}]; component names must be unique")));
            }
            names.insert(name.clone(), (kind, name_span.clone()));
            let value_span = value.span();
            let copy = value.clone();
            let DeValue::Table(mut fields) = value.into_inner() else {
                return Err(self.error(value_span, path, "expected a table"));
            };
            let Some(type_value) = fields.remove("type") else {
                return Err(self.error(name_span, format!("{path}.type"), "missing key `type`"));
            };
            let type_span = type_value.span();
            let DeValue::String(type_name) = type_value.get_ref() else {
                return Err(self.error(type_span, format!("{path}.type"), "expected a string"));
            };
            let type_name = type_name.to_string();
            let inputs = match fields.remove("inputs") {
                Some(v) if needs_inputs => self.inputs(v, &path)?,
                Some(v) => {
                    return Err(self.error(
                        v.span(),
                        format!("{path}.inputs"),
                        "sources have no inputs",
                    ));
                }
                None if needs_inputs => {
                    return Err(self.error(
                        name_span,
                        format!("{path}.inputs"),
                        "missing key `inputs` (the sources or transforms this component reads)",
                    ));
                }
                None => Vec::new(),
            };
            let toml = ComponentToml {
                de: Deserializer::from(Spanned::new(value_span, fields)),
            };
            out.push(RawComponent {
                name,
                path,
                type_name,
                type_span,
                inputs,
                toml,
                value: copy,
            });
        }
        Ok(out)
    }

    fn inputs(
        &self,
        value: Spanned<DeValue<'_>>,
        path: &str,
    ) -> Result<Vec<Spanned<String>>, ConfigError> {
        let key = format!("{path}.inputs");
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            return Err(self.error(span, key, "expected an array of component names"));
        };
        if items.is_empty() {
            return Err(self.error(span, key, "needs at least one input"));
        }
        items
            .into_iter()
            .map(|item| {
                let span = item.span();
                match item.into_inner() {
                    DeValue::String(s) => Ok(Spanned::new(span, s.to_string())),
                    _ => Err(self.error(span, key.clone(), "expected a component name (a string)")),
                }
            })
            .collect()
    }

    fn validate_graph(
        &self,
        config: &MirrorConfig,
        names: &BTreeMap<String, (&'static str, Range<usize>)>,
        transform_inputs: &[(String, Vec<Spanned<String>>)],
        sink_inputs: &[(String, Vec<Spanned<String>>)],
    ) -> Result<(), ConfigError> {
        let end = self.text.len()..self.text.len();
        if config.sources.is_empty() {
            return Err(self.error(
                end,
                "sources",
                "no source is configured (add a [sources.<name>] table)",
            ));
        }
        if config.sinks.is_empty() {
            return Err(self.error(
                end,
                "sinks",
                "no sink is configured (add a [sinks.<name>] table)",
            ));
        }
        for (path, inputs) in transform_inputs.iter().chain(sink_inputs) {
            for input in inputs {
                match names.get(input.get_ref()) {
                    Some(("sinks", _)) => {
                        return Err(self.error(
                            input.span(),
                            format!("{path}.inputs"),
                            format!(
                                "`{}` is a sink; inputs are sources or transforms",
                                input.get_ref()
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        let known: Vec<&str> = names
                            .iter()
                            .filter(|(_, (k, _))| *k != "sinks")
                            .map(|(n, _)| n.as_str())
                            .collect();
                        return Err(self.error(
                            input.span(),
                            format!("{path}.inputs"),
                            format!(
                                "no source or transform is named `{}` (known: {})",
                                input.get_ref(),
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        // Transforms must not form a cycle.
        let edges: BTreeMap<&str, Vec<&str>> = config
            .transforms
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.inputs.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        for t in &config.transforms {
            let mut stack: Vec<&str> = edges[t.name.as_str()].clone();
            let mut seen = BTreeSet::new();
            while let Some(n) = stack.pop() {
                if n == t.name {
                    let span = names[&t.name].1.clone();
                    return Err(self.error(
                        span,
                        format!("transforms.{}.inputs", t.name),
                        "the transform feeds into itself (inputs form a cycle)",
                    ));
                }
                if seen.insert(n) {
                    stack.extend(edges.get(n).into_iter().flatten());
                }
            }
        }
        // Everything that produces data must reach a sink, or its data would be silently dropped.
        let routes = config.routes();
        let reaching: BTreeSet<&str> = routes.iter().flatten().map(String::as_str).collect();
        for (name, (kind, span)) in names {
            if *kind != "sinks" && !reaching.contains(name.as_str()) {
                return Err(self.error(
                    span.clone(),
                    format!("{kind}.{name}"),
                    "feeds no sink (name it in some sink's or transform's `inputs`)",
                ));
            }
        }
        Ok(())
    }
}

struct RawComponent<'v> {
    name: String,
    path: String,
    type_name: String,
    type_span: Range<usize>,
    inputs: Vec<Spanned<String>>,
    toml: ComponentToml<'v>,
    value: Spanned<DeValue<'v>>,
}

fn is_component_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The dotted path of the deepest key below `value` whose key or value contains `span.start`.
///
/// Tables made by `[a."b.c"]` headers have spans that do not enclose their contents, so every child
/// is searched rather than only those whose span contains the position.
fn deepest_key(value: &Spanned<DeValue<'_>>, path: &str, span: &Range<usize>) -> String {
    find_key(value, path, span.start).unwrap_or_else(|| path.to_owned())
}

fn find_key(value: &Spanned<DeValue<'_>>, path: &str, at: usize) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(table) => {
            for (k, v) in table.iter() {
                let child = format!("{path}.{}", quote_key(k.get_ref()));
                if k.span().contains(&at) {
                    return Some(child);
                }
                if let Some(found) = find_key(v, &child, at) {
                    return Some(found);
                }
                if v.span().contains(&at) {
                    return Some(child);
                }
            }
            None
        }
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            let child = format!("{path}[{i}]");
            find_key(v, &child, at).or_else(|| v.span().contains(&at).then_some(child))
        }),
        _ => None,
    }
}

/// The span of key `field` in the table that starts at `start` below `value`, if there is one.
fn key_in_table_at(
    value: &Spanned<DeValue<'_>>,
    start: usize,
    field: &str,
) -> Option<Range<usize>> {
    match value.get_ref() {
        DeValue::Table(table) => {
            if value.span().start == start {
                if let Some((k, _)) = table.get_key_value(field) {
                    return Some(k.span());
                }
            }
            table
                .iter()
                .find_map(|(_, v)| key_in_table_at(v, start, field))
        }
        DeValue::Array(items) => items.iter().find_map(|v| key_in_table_at(v, start, field)),
        _ => None,
    }
}

/// A key as written in TOML: bare if it can be, quoted otherwise (`"shop.orders"`).
fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
