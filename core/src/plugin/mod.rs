//! The plugin host: loads runtime plugins (shared libraries speaking the C ABI of
//! `mirror-plugin-api`) and makes their components available by `type` name.
//!
//! Loading checks, in order: the file is a shared library for this platform, it exports
//! `mirror_plugin_entry`, the table it returns has this host's ABI version, and every component has
//! the functions its kind needs. Any failure is an error naming the file and what is wrong; nothing
//! is half-registered. Libraries stay loaded for the life of the process (unloading code that may
//! still run is not safe).
//!
//! Plugin calls are blocking C calls: they run on tokio's blocking pool, one call at a time per
//! instance. Batches cross through the Arrow C Data Interface without copying column data.

mod convert;
mod instance;
mod library;
mod sink;
mod source;
mod transform;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::PluginSettings;

pub use library::PluginLoadError;
use library::{Component, Library};

/// What a loaded plugin provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPlugin {
    /// The library file.
    pub path: PathBuf,
    /// `(kind, type name)` of each component.
    pub components: Vec<(&'static str, String)>,
}

static LOADED: Mutex<Vec<Arc<Library>>> = Mutex::new(Vec::new());

/// Loads every library named in `[plugins]` and registers its components.
///
/// Loading the same file twice is a no-op. A type name that a built-in component or another plugin
/// already uses is an error.
pub fn load_plugins(settings: &PluginSettings) -> Result<Vec<LoadedPlugin>, PluginLoadError> {
    let mut paths = settings.load.clone();
    if let Some(dir) = &settings.dir {
        paths.extend(library_files(dir)?);
    }
    let mut loaded = Vec::new();
    for path in paths {
        loaded.push(load_plugin(&path)?);
    }
    Ok(loaded)
}

/// Loads one library and registers its components.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, PluginLoadError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut registry = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(lib) = registry.iter().find(|l| l.path == canonical) {
        return Ok(lib.describe());
    }
    let lib = Arc::new(Library::open(path, canonical)?);
    let components: Vec<Component> = lib.components()?;
    for c in &components {
        c.check_name_is_free()?;
    }
    for c in components {
        c.register();
    }
    let info = lib.describe();
    registry.push(lib);
    Ok(info)
}

fn library_files(dir: &Path) -> Result<Vec<PathBuf>, PluginLoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PluginLoadError::Directory {
        dir: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("so" | "dylib" | "dll")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}
