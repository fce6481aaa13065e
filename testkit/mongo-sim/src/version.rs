//! The mongod version the simulator answers as: `buildInfo`'s `version` and `versionArray`,
//! hello's `maxWireVersion`, the feature compatibility version, and the few behaviours that differ
//! between the versions it can play (6.0 and later):
//! - `$changeStreamSplitLargeEvent` exists from 7.0 and, backported, from 6.0.9 (release notes of
//!   MongoDB 6.0.9, SERVER-74301 / "Change streams: $changeStreamSplitLargeEvent");
//! - `updateDescription.disambiguatedPaths` of expanded update events exists from 6.1
//!   (`change_stream_document_diff_parser.cpp`).
//!
//! Wire versions follow `src/mongo/db/wire_version.h`: 6.0 is 17, 6.1 18, 6.2 19, 6.3 20,
//! 7.0 21, 7.1 22, 7.2 23, 7.3 24, 8.0 25.

use std::fmt;

/// A mongod version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Default for ServerVersion {
    fn default() -> Self {
        Self::V7_0
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for ServerVersion {
    type Err = String;

    /// `major.minor[.patch]`, 6.0 or later.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let num = |i: usize| -> Result<u32, String> {
            match parts.get(i) {
                None if i == 2 => Ok(0),
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("'{s}' is not a version like 7.0.2")),
                None => Err(format!("'{s}' is not a version like 7.0.2")),
            }
        };
        if parts.len() > 3 {
            return Err(format!("'{s}' is not a version like 7.0.2"));
        }
        let v = ServerVersion {
            major: num(0)?,
            minor: num(1)?,
            patch: num(2)?,
        };
        if v < ServerVersion::new(6, 0, 0) {
            return Err(format!(
                "mongo-sim plays mongod 6.0 or later, not {v} (pre- and post-images and \
                 expanded change events need 6.0)"
            ));
        }
        Ok(v)
    }
}

impl ServerVersion {
    /// MongoDB 7.0.0, the default.
    pub const V7_0: ServerVersion = ServerVersion::new(7, 0, 0);

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// hello's `maxWireVersion`.
    pub fn wire_version(&self) -> i32 {
        match (self.major, self.minor) {
            (6, m) => 17 + m.min(3) as i32,
            (7, m) => 21 + m.min(3) as i32,
            _ => 25,
        }
    }

    /// The feature compatibility version (`major.minor`).
    pub fn fcv(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// Whether `$changeStreamSplitLargeEvent` exists (7.0+, 6.0.9+).
    pub fn splits_large_events(&self) -> bool {
        *self >= ServerVersion::new(7, 0, 0)
            || (self.major == 6 && self.minor == 0 && self.patch >= 9)
    }

    /// Whether expanded update events carry `disambiguatedPaths` (6.1+).
    pub fn disambiguates_paths(&self) -> bool {
        *self >= ServerVersion::new(6, 1, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_gate_features() {
        let v: ServerVersion = "6.0.8".parse().unwrap();
        assert!(!v.splits_large_events());
        assert_eq!(v.wire_version(), 17);
        assert!("6.0.9"
            .parse::<ServerVersion>()
            .unwrap()
            .splits_large_events());
        assert!(!"6.3.1"
            .parse::<ServerVersion>()
            .unwrap()
            .splits_large_events());
        assert!("7.0"
            .parse::<ServerVersion>()
            .unwrap()
            .splits_large_events());
        assert_eq!(ServerVersion::V7_0.wire_version(), 21);
        assert!("5.0.3".parse::<ServerVersion>().is_err());
        assert!("x".parse::<ServerVersion>().is_err());
    }
}
