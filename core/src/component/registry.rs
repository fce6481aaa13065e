//! Where component types are found by their `type` name.
//!
//! Compile-time components register with [`inventory`]; linking the crate (and referencing it from
//! the binary, see the note below) is enough. Runtime plugins, loaded with `libloading`, live in their
//! own copy of any static registry, so the plugin host adds them here at run time instead
//! ([`register_runtime_source`] and friends).
//!
//! Note: `inventory` only sees crates that are linked. A crate listed in `Cargo.toml` but never
//! referenced from code is dropped by the linker with its registrations; the `mirror` binary therefore
//! names each first-party crate (`use mirror_mongodb as _;`).
//!
//! ```
//! use async_trait::async_trait;
//! use mirror_core::component::{BuildError, Source, SourceConfig, SourceContext};
//!
//! #[derive(Debug, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct NothingConfig {}
//!
//! #[async_trait]
//! impl SourceConfig for NothingConfig {
//!     async fn build(&self, _cx: SourceContext) -> Result<Box<dyn Source>, BuildError> {
//!         Err(BuildError::new("nothing", "this example builds nothing"))
//!     }
//! }
//!
//! mirror_core::register_source!("nothing", NothingConfig, "an example that builds nothing");
//! assert!(mirror_core::component::source_types().contains(&"nothing".to_string()));
//! ```

use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;

use super::{SinkConfig, SourceConfig, TransformConfig};

/// A component's TOML table, without `type` and `inputs`, ready to deserialize into its config
/// struct. Errors carry the position in the original file.
pub struct ComponentToml<'a> {
    pub(crate) de: toml::de::Deserializer<'a>,
}

impl ComponentToml<'_> {
    /// Deserializes the table into `T` (use `#[serde(deny_unknown_fields)]` on `T`).
    pub fn deserialize<T: DeserializeOwned>(self) -> Result<T, toml::de::Error> {
        T::deserialize(self.de)
    }
}

/// Parses a source's table into its config.
pub type SourceParser = fn(ComponentToml<'_>) -> Result<Box<dyn SourceConfig>, toml::de::Error>;
/// Parses a transform's table into its config.
pub type TransformParser =
    fn(ComponentToml<'_>) -> Result<Box<dyn TransformConfig>, toml::de::Error>;
/// Parses a sink's table into its config.
pub type SinkParser = fn(ComponentToml<'_>) -> Result<Box<dyn SinkConfig>, toml::de::Error>;

/// A source type known at compile time.
pub struct SourceRegistration {
    /// The `type` name in `mirror.toml`.
    pub type_name: &'static str,
    /// One line for `mirror --help` and error messages.
    pub description: &'static str,
    /// Builds the config from its table.
    pub parse: SourceParser,
    /// Keys of its table whose values are secrets (key names, at any depth: `client_secret`
    /// covers `auth.client_secret` and `fabric.auth.client_secret`). Configuration errors show
    /// them as `***` ([`declared_secret_keys`]).
    pub secrets: &'static [&'static str],
}

/// A transform type known at compile time.
pub struct TransformRegistration {
    /// The `type` name in `mirror.toml`.
    pub type_name: &'static str,
    /// One line for `mirror --help` and error messages.
    pub description: &'static str,
    /// Builds the config from its table.
    pub parse: TransformParser,
    /// Keys of its table whose values are secrets (key names, at any depth: `client_secret`
    /// covers `auth.client_secret` and `fabric.auth.client_secret`). Configuration errors show
    /// them as `***` ([`declared_secret_keys`]).
    pub secrets: &'static [&'static str],
}

/// A sink type known at compile time.
pub struct SinkRegistration {
    /// The `type` name in `mirror.toml`.
    pub type_name: &'static str,
    /// One line for `mirror --help` and error messages.
    pub description: &'static str,
    /// Builds the config from its table.
    pub parse: SinkParser,
    /// Keys of its table whose values are secrets (key names, at any depth: `client_secret`
    /// covers `auth.client_secret` and `fabric.auth.client_secret`). Configuration errors show
    /// them as `***` ([`declared_secret_keys`]).
    pub secrets: &'static [&'static str],
}

inventory::collect!(SourceRegistration);
inventory::collect!(TransformRegistration);
inventory::collect!(SinkRegistration);

/// Parses a config struct `T` as a source config; used by [`register_source!`](crate::register_source).
pub fn parse_source<T: SourceConfig + DeserializeOwned + 'static>(
    table: ComponentToml<'_>,
) -> Result<Box<dyn SourceConfig>, toml::de::Error> {
    Ok(Box::new(table.deserialize::<T>()?))
}

/// Parses a config struct `T` as a transform config.
pub fn parse_transform<T: TransformConfig + DeserializeOwned + 'static>(
    table: ComponentToml<'_>,
) -> Result<Box<dyn TransformConfig>, toml::de::Error> {
    Ok(Box::new(table.deserialize::<T>()?))
}

/// Parses a config struct `T` as a sink config.
pub fn parse_sink<T: SinkConfig + DeserializeOwned + 'static>(
    table: ComponentToml<'_>,
) -> Result<Box<dyn SinkConfig>, toml::de::Error> {
    Ok(Box::new(table.deserialize::<T>()?))
}

/// Registers a source config type under a `type` name, optionally with the keys of its table
/// that hold secrets (`secrets = ["password"]`; see [`SourceRegistration::secrets`]).
#[macro_export]
macro_rules! register_source {
    ($type_name:literal, $config:ty, $description:literal) => {
        $crate::register_source!($type_name, $config, $description, secrets = []);
    };
    ($type_name:literal, $config:ty, $description:literal, secrets = [$($secret:literal),* $(,)?]) => {
        $crate::inventory::submit! {
            $crate::component::registry::SourceRegistration {
                type_name: $type_name,
                description: $description,
                parse: $crate::component::registry::parse_source::<$config>,
                secrets: &[$($secret),*],
            }
        }
    };
}

/// Registers a transform config type under a `type` name, optionally with the keys of its table
/// that hold secrets (`secrets = ["password"]`; see [`TransformRegistration::secrets`]).
#[macro_export]
macro_rules! register_transform {
    ($type_name:literal, $config:ty, $description:literal) => {
        $crate::register_transform!($type_name, $config, $description, secrets = []);
    };
    ($type_name:literal, $config:ty, $description:literal, secrets = [$($secret:literal),* $(,)?]) => {
        $crate::inventory::submit! {
            $crate::component::registry::TransformRegistration {
                type_name: $type_name,
                description: $description,
                parse: $crate::component::registry::parse_transform::<$config>,
                secrets: &[$($secret),*],
            }
        }
    };
}

/// Registers a sink config type under a `type` name, optionally with the keys of its table
/// that hold secrets (`secrets = ["password"]`; see [`SinkRegistration::secrets`]).
#[macro_export]
macro_rules! register_sink {
    ($type_name:literal, $config:ty, $description:literal) => {
        $crate::register_sink!($type_name, $config, $description, secrets = []);
    };
    ($type_name:literal, $config:ty, $description:literal, secrets = [$($secret:literal),* $(,)?]) => {
        $crate::inventory::submit! {
            $crate::component::registry::SinkRegistration {
                type_name: $type_name,
                description: $description,
                parse: $crate::component::registry::parse_sink::<$config>,
                secrets: &[$($secret),*],
            }
        }
    };
}

/// A runtime-registered parser (plugins): it may capture the loaded library.
pub type RuntimeParser<C> =
    Arc<dyn Fn(ComponentToml<'_>) -> Result<Box<C>, toml::de::Error> + Send + Sync>;

struct RuntimeEntry<C: ?Sized> {
    type_name: String,
    parse: RuntimeParser<C>,
}

static RUNTIME_SOURCES: RwLock<Vec<RuntimeEntry<dyn SourceConfig>>> = RwLock::new(Vec::new());
static RUNTIME_TRANSFORMS: RwLock<Vec<RuntimeEntry<dyn TransformConfig>>> = RwLock::new(Vec::new());
static RUNTIME_SINKS: RwLock<Vec<RuntimeEntry<dyn SinkConfig>>> = RwLock::new(Vec::new());

/// Adds a source type at run time (used by the plugin host).
pub fn register_runtime_source(type_name: &str, parse: RuntimeParser<dyn SourceConfig>) {
    push(&RUNTIME_SOURCES, type_name, parse);
}

/// Adds a transform type at run time (used by the plugin host).
pub fn register_runtime_transform(type_name: &str, parse: RuntimeParser<dyn TransformConfig>) {
    push(&RUNTIME_TRANSFORMS, type_name, parse);
}

/// Adds a sink type at run time (used by the plugin host).
pub fn register_runtime_sink(type_name: &str, parse: RuntimeParser<dyn SinkConfig>) {
    push(&RUNTIME_SINKS, type_name, parse);
}

fn push<C: ?Sized>(list: &RwLock<Vec<RuntimeEntry<C>>>, type_name: &str, parse: RuntimeParser<C>) {
    let mut list = list.write().unwrap_or_else(|e| e.into_inner());
    list.retain(|e| e.type_name != type_name);
    list.push(RuntimeEntry {
        type_name: type_name.to_owned(),
        parse,
    });
}

fn runtime<C: ?Sized>(list: &RwLock<Vec<RuntimeEntry<C>>>, name: &str) -> Option<RuntimeParser<C>> {
    let list = list.read().unwrap_or_else(|e| e.into_inner());
    list.iter()
        .find(|e| e.type_name == name)
        .map(|e| e.parse.clone())
}

fn runtime_names<C: ?Sized>(list: &RwLock<Vec<RuntimeEntry<C>>>) -> Vec<String> {
    let list = list.read().unwrap_or_else(|e| e.into_inner());
    list.iter().map(|e| e.type_name.clone()).collect()
}

pub(crate) fn parse_source_table(
    type_name: &str,
    table: ComponentToml<'_>,
) -> Option<Result<Box<dyn SourceConfig>, toml::de::Error>> {
    if let Some(reg) = inventory::iter::<SourceRegistration>().find(|r| r.type_name == type_name) {
        return Some((reg.parse)(table));
    }
    runtime(&RUNTIME_SOURCES, type_name).map(|parse| parse(table))
}

pub(crate) fn parse_transform_table(
    type_name: &str,
    table: ComponentToml<'_>,
) -> Option<Result<Box<dyn TransformConfig>, toml::de::Error>> {
    if let Some(reg) = inventory::iter::<TransformRegistration>().find(|r| r.type_name == type_name)
    {
        return Some((reg.parse)(table));
    }
    runtime(&RUNTIME_TRANSFORMS, type_name).map(|parse| parse(table))
}

pub(crate) fn parse_sink_table(
    type_name: &str,
    table: ComponentToml<'_>,
) -> Option<Result<Box<dyn SinkConfig>, toml::de::Error>> {
    if let Some(reg) = inventory::iter::<SinkRegistration>().find(|r| r.type_name == type_name) {
        return Some((reg.parse)(table));
    }
    runtime(&RUNTIME_SINKS, type_name).map(|parse| parse(table))
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

/// The secret keys every compile-time component declares, with the core's own (`[api] token`).
///
/// Configuration errors hide the values of these keys wherever they appear in the file, whatever
/// the component: a conservative union, since the error may be about the very line that says
/// which component it is. Runtime plugins cannot declare keys; the core's key-name patterns
/// (see `config::redact`) cover them.
pub fn declared_secret_keys() -> std::collections::BTreeSet<&'static str> {
    let mut keys: std::collections::BTreeSet<&'static str> = ["token"].into_iter().collect();
    keys.extend(inventory::iter::<SourceRegistration>().flat_map(|r| r.secrets.iter().copied()));
    keys.extend(inventory::iter::<TransformRegistration>().flat_map(|r| r.secrets.iter().copied()));
    keys.extend(inventory::iter::<SinkRegistration>().flat_map(|r| r.secrets.iter().copied()));
    keys
}

/// Every source type this build knows, sorted.
pub fn source_types() -> Vec<String> {
    let mut names: Vec<String> = inventory::iter::<SourceRegistration>()
        .map(|r| r.type_name.to_owned())
        .collect();
    names.extend(runtime_names(&RUNTIME_SOURCES));
    sorted(names)
}

/// Every transform type this build knows, sorted.
pub fn transform_types() -> Vec<String> {
    let mut names: Vec<String> = inventory::iter::<TransformRegistration>()
        .map(|r| r.type_name.to_owned())
        .collect();
    names.extend(runtime_names(&RUNTIME_TRANSFORMS));
    sorted(names)
}

/// Every sink type this build knows, sorted.
pub fn sink_types() -> Vec<String> {
    let mut names: Vec<String> = inventory::iter::<SinkRegistration>()
        .map(|r| r.type_name.to_owned())
        .collect();
    names.extend(runtime_names(&RUNTIME_SINKS));
    sorted(names)
}
