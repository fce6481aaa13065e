//! A live plugin instance: creation, calls on the blocking pool, error messages, destruction.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use mirror_plugin_api::{MIRROR_END, MIRROR_OK, MIRROR_PERMANENT, MIRROR_TRANSIENT};

use super::library::Component;
use crate::component::BuildError;
use crate::config::Secret;
use crate::error::ComponentError;

/// One configured use of a plugin component: which component, and its TOML table.
#[derive(Debug)]
pub(crate) struct ComponentConfig {
    pub component: Component,
    /// The component's TOML table as text; a `Secret`, since it may hold credentials (its `Debug`
    /// shows none).
    pub config: Secret,
}

impl ComponentConfig {
    /// Creates the instance for the route component `name`, resuming from `resume` (sources).
    pub async fn instantiate(
        &self,
        name: &str,
        resume: Option<Vec<u8>>,
    ) -> Result<SharedInstance, BuildError> {
        SharedInstance::create(
            self.component.clone(),
            self.config.expose().to_owned(),
            resume,
        )
        .await
        .map_err(|e| BuildError::new(name, e.chain()))
    }

    /// What `describe` shows for the component.
    pub fn describe(&self) -> String {
        format!("{:?}", self.component)
    }
}

/// The error of a plugin call.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{type_name}` {call}: {message}")]
pub(crate) struct PluginCallError {
    pub type_name: String,
    pub call: &'static str,
    pub message: String,
}

pub(crate) struct Instance {
    ptr: *mut c_void,
    pub component: Component,
}

// SAFETY: the ABI allows an instance to be used from any thread, one call at a time; `Mutex` in
// `SharedInstance` serialises calls.
unsafe impl Send for Instance {}

/// What a status code means for the host.
pub(crate) enum Outcome {
    Ok,
    End,
}

impl Instance {
    /// Creates an instance (blocking; call on the blocking pool).
    pub fn create(
        component: Component,
        config: &str,
        resume: Option<&[u8]>,
    ) -> Result<Self, ComponentError> {
        let create = component.vt.create.expect("checked at load");
        let mut ptr: *mut c_void = std::ptr::null_mut();
        let (resume_ptr, resume_len) =
            resume.map_or((std::ptr::null(), 0), |r| (r.as_ptr(), r.len()));
        // SAFETY: arguments per the ABI; `config` and `resume` are borrowed for the call.
        let status = unsafe {
            create(
                config.as_ptr(),
                config.len(),
                resume_ptr,
                resume_len,
                &mut ptr,
            )
        };
        if status == MIRROR_OK && !ptr.is_null() {
            return Ok(Self { ptr, component });
        }
        let message = read_error(&component, std::ptr::null_mut());
        let err = PluginCallError {
            type_name: component.type_name.clone(),
            call: "create",
            message: if status == MIRROR_OK {
                "returned no instance".into()
            } else {
                message
            },
        };
        Err(classify(status, err))
    }

    pub fn ptr(&self) -> *mut c_void {
        self.ptr
    }

    /// Turns a status into a result, fetching the message on failure.
    pub fn check(&self, status: i32, call: &'static str) -> Result<Outcome, ComponentError> {
        match status {
            MIRROR_OK => Ok(Outcome::Ok),
            MIRROR_END => Ok(Outcome::End),
            _ => {
                let err = PluginCallError {
                    type_name: self.component.type_name.clone(),
                    call,
                    message: read_error(&self.component, self.ptr),
                };
                Err(classify(status, err))
            }
        }
    }

    /// An error the host found in what the plugin returned.
    pub fn refuse(&self, call: &'static str, message: impl std::fmt::Display) -> ComponentError {
        ComponentError::permanent(PluginCallError {
            type_name: self.component.type_name.clone(),
            call,
            message: message.to_string(),
        })
    }
}

fn classify(status: i32, err: PluginCallError) -> ComponentError {
    match status {
        MIRROR_TRANSIENT => ComponentError::transient(err),
        MIRROR_PERMANENT => ComponentError::permanent(err),
        other => ComponentError::permanent(PluginCallError {
            message: format!("{} (and returned the unknown status {other})", err.message),
            ..err
        }),
    }
}

fn read_error(component: &Component, instance: *mut c_void) -> String {
    let last_error = component.vt.last_error.expect("checked at load");
    let mut buf = vec![0u8; 1024];
    // SAFETY: the buffer holds `len` bytes; the plugin copies at most that many.
    let needed = unsafe { last_error(instance, buf.as_mut_ptr() as *mut c_char, buf.len()) };
    if needed >= buf.len() {
        buf = vec![0u8; needed + 1];
        // SAFETY: as above, with a buffer large enough for the whole message.
        unsafe { last_error(instance, buf.as_mut_ptr() as *mut c_char, buf.len()) };
    }
    let end = buf
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(buf.len())
        .min(needed);
    let message = String::from_utf8_lossy(&buf[..end]).into_owned();
    if message.is_empty() {
        "failed without a message".into()
    } else {
        message
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(destroy) = self.component.vt.destroy {
            // SAFETY: the instance came from `create` and is destroyed exactly once.
            unsafe { destroy(self.ptr) };
        }
    }
}

/// An instance shared by an async adapter, whose calls run on the blocking pool.
#[derive(Clone)]
pub(crate) struct SharedInstance(Arc<Mutex<Instance>>);

impl SharedInstance {
    /// Creates the instance on the blocking pool.
    pub async fn create(
        component: Component,
        config: String,
        resume: Option<Vec<u8>>,
    ) -> Result<Self, ComponentError> {
        let instance = tokio::task::spawn_blocking(move || {
            Instance::create(component, &config, resume.as_deref())
        })
        .await
        .map_err(ComponentError::permanent)??;
        Ok(Self(Arc::new(Mutex::new(instance))))
    }

    /// Runs `f` with the instance on the blocking pool.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Instance) -> Result<R, ComponentError> + Send + 'static,
    ) -> Result<R, ComponentError> {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(ComponentError::permanent)?
    }

    /// Calls `close` if the component has one.
    pub async fn close(&self) -> Result<(), ComponentError> {
        self.call(|inst| match inst.component.vt.close {
            // SAFETY: calling the plugin per the ABI.
            Some(close) => inst
                .check(unsafe { close(inst.ptr()) }, "close")
                .map(|_| ()),
            None => Ok(()),
        })
        .await
    }
}
