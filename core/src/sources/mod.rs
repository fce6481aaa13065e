//! First-party sources that need no external system.

pub mod generator;
