//! What the binary prints for people (`error: ...` on stderr), scrubbed of the configuration's
//! secrets first: an error may quote a driver's message, and a driver may quote a URI.

use std::fmt::Display;

/// Prints `error: <message>` to stderr, without any known secret.
pub fn error(message: impl Display) {
    eprintln!(
        "error: {}",
        mirror_core::config::scrub(&message.to_string())
    );
}
