//! Opening a plugin library and checking its component table.

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mirror_plugin_api::{
    EntryFn, MirrorComponentV1, MirrorPluginV1, ABI_VERSION, ENTRY_SYMBOL, KIND_SINK, KIND_SOURCE,
    KIND_TRANSFORM,
};

use super::instance::ComponentConfig;
use super::LoadedPlugin;
use crate::component::registry::{
    self, register_runtime_sink, register_runtime_source, register_runtime_transform, ComponentToml,
};

/// Why a plugin was refused.
#[derive(Debug, thiserror::Error)]
pub enum PluginLoadError {
    /// The file could not be loaded as a shared library.
    #[error(
        "cannot load plugin {}: {message}. A plugin must be a shared library built for this \
         platform ({}-{}), e.g. a Rust `cdylib`", path.display(), std::env::consts::OS, std::env::consts::ARCH
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The entry point is missing.
    #[error("{} is not a mirror plugin: it does not export `{ENTRY_SYMBOL}` ({message})", path.display())]
    NoEntryPoint {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The entry point returned NULL.
    #[error("{} refused to work with this mirror (plugin ABI version {ABI_VERSION})", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
    },
    /// The ABI versions differ.
    #[error(
        "{} was built for plugin ABI version {found}, but this mirror implements version \
         {ABI_VERSION}; rebuild the plugin against mirror-plugin-api with ABI version {ABI_VERSION}",
        path.display()
    )]
    AbiVersion {
        /// The file.
        path: PathBuf,
        /// The plugin's version.
        found: u32,
    },
    /// A component entry is incomplete or inconsistent.
    #[error("{}: component {index}: {message}", path.display())]
    BadComponent {
        /// The file.
        path: PathBuf,
        /// Its position in the table.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The type name is taken.
    #[error("{}: the {kind} type `{type_name}` is already defined (built in, or by another plugin)", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// `source`, `transform` or `sink`.
        kind: &'static str,
        /// The name.
        type_name: String,
    },
    /// A plugin directory could not be listed.
    #[error("cannot list plugin directory {}: {source}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A loaded library and its (immutable, plugin-owned) component table.
pub(crate) struct Library {
    pub path: PathBuf,
    table: *const MirrorPluginV1,
    // Kept last so it is dropped after everything pointing into it (it never is, in practice:
    // libraries live until the process exits).
    _lib: libloading::Library,
}

// SAFETY: the component table is immutable after the entry point returned it, and the library
// handle may be used from any thread.
unsafe impl Send for Library {}
// SAFETY: see above.
unsafe impl Sync for Library {}

impl Library {
    pub fn open(path: &Path, canonical: PathBuf) -> Result<Self, PluginLoadError> {
        // SAFETY: loading runs the library's initialisers; that is what loading a plugin means,
        // and the user named this file in the configuration.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| PluginLoadError::Open {
            path: path.to_owned(),
            message: with_cause(&e),
        })?;
        // SAFETY: the symbol's type is fixed by the ABI.
        let entry: libloading::Symbol<EntryFn> = unsafe { lib.get(ENTRY_SYMBOL.as_bytes()) }
            .map_err(|e| PluginLoadError::NoEntryPoint {
                path: path.to_owned(),
                message: with_cause(&e),
            })?;
        // SAFETY: calling the plugin's entry point per the ABI.
        let table = unsafe { entry(ABI_VERSION) };
        if table.is_null() {
            return Err(PluginLoadError::Refused {
                path: path.to_owned(),
            });
        }
        // Read only the version before trusting anything else in the table.
        // SAFETY: every ABI version starts with a u32 `abi_version`.
        let found = unsafe { std::ptr::read(table as *const u32) };
        if found != ABI_VERSION {
            return Err(PluginLoadError::AbiVersion {
                path: path.to_owned(),
                found,
            });
        }
        Ok(Self {
            path: canonical,
            table,
            _lib: lib,
        })
    }

    pub fn components(self: &Arc<Self>) -> Result<Vec<Component>, PluginLoadError> {
        // SAFETY: the version matched, so the table has this layout.
        let header = unsafe { &*self.table };
        if header.components_len > 0 && header.components.is_null() {
            return Err(self.bad(0, "the component list is NULL"));
        }
        let mut out = Vec::new();
        for index in 0..header.components_len as usize {
            // SAFETY: `components_len` entries, per the ABI.
            let vt = unsafe { *header.components.add(index) };
            let type_name = self.text(vt.type_name, index, "type_name")?;
            if type_name.is_empty() {
                return Err(self.bad(index, "empty type_name"));
            }
            let kind = match vt.kind {
                KIND_SOURCE => "source",
                KIND_TRANSFORM => "transform",
                KIND_SINK => "sink",
                other => {
                    return Err(self.bad(index, &format!("`{type_name}` has unknown kind {other}")))
                }
            };
            let needs: &[(&str, bool)] = &[
                ("create", vt.create.is_some()),
                ("destroy", vt.destroy.is_some()),
                ("last_error", vt.last_error.is_some()),
                ("next", vt.kind != KIND_SOURCE || vt.next.is_some()),
                ("apply", vt.kind != KIND_TRANSFORM || vt.apply.is_some()),
                ("write", vt.kind != KIND_SINK || vt.write.is_some()),
                ("flush", vt.kind != KIND_SINK || vt.flush.is_some()),
                ("take_acks", vt.kind != KIND_SINK || vt.take_acks.is_some()),
            ];
            if let Some((missing, _)) = needs.iter().find(|(_, ok)| !ok) {
                return Err(self.bad(
                    index,
                    &format!("{kind} `{type_name}` has no `{missing}` function"),
                ));
            }
            out.push(Component {
                lib: self.clone(),
                vt,
                kind,
                type_name,
            });
        }
        Ok(out)
    }

    pub fn describe(self: &Arc<Self>) -> LoadedPlugin {
        LoadedPlugin {
            path: self.path.clone(),
            components: self
                .components()
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.kind, c.type_name))
                .collect(),
        }
    }

    fn text(&self, p: *const c_char, index: usize, what: &str) -> Result<String, PluginLoadError> {
        if p.is_null() {
            return Err(self.bad(index, &format!("`{what}` is NULL")));
        }
        // SAFETY: the ABI promises NUL-terminated strings living as long as the library.
        unsafe { CStr::from_ptr(p) }
            .to_str()
            .map(str::to_owned)
            .map_err(|_| self.bad(index, &format!("`{what}` is not UTF-8")))
    }

    fn bad(&self, index: usize, message: &str) -> PluginLoadError {
        PluginLoadError::BadComponent {
            path: self.path.clone(),
            index,
            message: message.to_owned(),
        }
    }
}

/// The loader's message with its cause (libloading puts the system's text in the source).
fn with_cause(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// One component of a loaded library.
#[derive(Clone)]
pub(crate) struct Component {
    pub lib: Arc<Library>,
    pub vt: MirrorComponentV1,
    pub kind: &'static str,
    pub type_name: String,
}

// SAFETY: `vt` holds function pointers and pointers to the library's static strings; the library
// stays loaded while `lib` is held.
unsafe impl Send for Component {}
// SAFETY: see above.
unsafe impl Sync for Component {}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin {} `{}` from {}",
            self.kind,
            self.type_name,
            self.lib.path.display()
        )
    }
}

/// The component's TOML table, as text for the plugin.
pub(crate) fn table_text(table: ComponentToml<'_>) -> Result<String, toml::de::Error> {
    let table: toml::Table = table.deserialize()?;
    Ok(toml::to_string(&table).unwrap_or_default())
}

impl Component {
    pub fn check_name_is_free(&self) -> Result<(), PluginLoadError> {
        let known = match self.vt.kind {
            KIND_SOURCE => registry::source_types(),
            KIND_TRANSFORM => registry::transform_types(),
            _ => registry::sink_types(),
        };
        if known.contains(&self.type_name) {
            return Err(PluginLoadError::Duplicate {
                path: self.lib.path.clone(),
                kind: self.kind,
                type_name: self.type_name.clone(),
            });
        }
        Ok(())
    }

    pub fn register(self) {
        let name = self.type_name.clone();
        match self.vt.kind {
            KIND_SOURCE => register_runtime_source(
                &name,
                Arc::new(move |t| {
                    Ok(Box::new(super::source::PluginSourceConfig(
                        ComponentConfig {
                            component: self.clone(),
                            config: crate::config::Secret::new(table_text(t)?),
                        },
                    )))
                }),
            ),
            KIND_TRANSFORM => register_runtime_transform(
                &name,
                Arc::new(move |t| {
                    Ok(Box::new(super::transform::PluginTransformConfig(
                        ComponentConfig {
                            component: self.clone(),
                            config: crate::config::Secret::new(table_text(t)?),
                        },
                    )))
                }),
            ),
            _ => register_runtime_sink(
                &name,
                Arc::new(move |t| {
                    Ok(Box::new(super::sink::PluginSinkConfig(ComponentConfig {
                        component: self.clone(),
                        config: crate::config::Secret::new(table_text(t)?),
                    })))
                }),
            ),
        }
    }
}
