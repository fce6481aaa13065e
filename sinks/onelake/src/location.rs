//! Where a landing zone is: a local directory, OneLake, or an ADLS Gen2 account.
//!
//! | `landing_zone` | store |
//! |---|---|
//! | `./landing-zone`, `/data/lz`, `file:///data/lz` | local directory |
//! | `https://onelake.dfs.fabric.microsoft.com/<workspace>/<item>/Files/LandingZone` | OneLake |
//! | `abfss://<workspace>@onelake.dfs.fabric.microsoft.com/<item>/Files/LandingZone` | OneLake |
//! | `https://<account>.dfs.core.windows.net/<filesystem>/<path>` | ADLS Gen2 |
//! | `abfss://<filesystem>@<account>.dfs.core.windows.net/<path>` | ADLS Gen2 |
//!
//! `blob` instead of `dfs` in the host is accepted too. A OneLake URL without `Files/` (older preview
//! docs) is accepted as written.

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::AuthConfig;
use crate::error::SinkError;
use crate::store::remote::{RemoteOptions, RemoteStore};
use crate::store::{LandingStore, LocalStore};

/// A parsed landing-zone location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Local(PathBuf),
    /// An Azure storage endpoint (OneLake or ADLS Gen2).
    Azure(AzureLocation),
}

/// An Azure location, split the way the REST APIs need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureLocation {
    /// `onelake` or the storage account name.
    pub account: String,
    /// Whether this is OneLake (Fabric).
    pub onelake: bool,
    /// The container / filesystem; for OneLake, the workspace.
    pub container: String,
    /// The landing-zone path inside the container, without slashes at either end (for OneLake:
    /// `<item>/Files/LandingZone`).
    pub prefix: String,
}

/// Parses a `landing_zone` setting.
///
/// ```
/// use mirror_onelake::location::{parse_location, Location};
/// let Location::Azure(a) = parse_location(
///     "https://onelake.dfs.fabric.microsoft.com/ws/lake.MountedRelationalDatabase/Files/LandingZone/").unwrap()
/// else { panic!() };
/// assert_eq!((a.account.as_str(), a.container.as_str()), ("onelake", "ws"));
/// assert_eq!(a.prefix, "lake.MountedRelationalDatabase/Files/LandingZone");
/// assert_eq!(parse_location("./lz").unwrap(), Location::Local("./lz".into()));
/// ```
pub fn parse_location(text: &str) -> Result<Location, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("landing_zone is empty".into());
    }
    if let Some(path) = text.strip_prefix("file://") {
        return Ok(Location::Local(PathBuf::from(path)));
    }
    let (scheme, rest) = match text.split_once("://") {
        Some(parts) => parts,
        None => return Ok(Location::Local(PathBuf::from(text))),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_matches('/');
    let (container, host, prefix) = match scheme {
        "https" | "http" => {
            let (container, prefix) = path.split_once('/').unwrap_or((path, ""));
            (
                container.to_owned(),
                authority.to_owned(),
                prefix.to_owned(),
            )
        }
        "abfss" | "abfs" | "az" => {
            let (container, host) = authority.split_once('@').ok_or_else(|| {
                format!("`{text}`: expected {scheme}://<filesystem or workspace>@<host>/<path>")
            })?;
            (container.to_owned(), host.to_owned(), path.to_owned())
        }
        other => return Err(format!("`{text}`: unsupported scheme `{other}`")),
    };
    if container.is_empty() {
        return Err(format!(
            "`{text}`: the URL names no workspace or filesystem"
        ));
    }
    let host = host.to_ascii_lowercase();
    let (account, onelake) =
        if host.starts_with("onelake.") && host.ends_with(".fabric.microsoft.com") {
            ("onelake".to_owned(), true)
        } else if let Some((account, domain)) = host.split_once('.') {
            if !(domain.starts_with("dfs.") || domain.starts_with("blob.")) {
                return Err(format!(
                    "`{text}`: `{host}` is neither OneLake nor an ADLS Gen2 (dfs/blob) endpoint"
                ));
            }
            (account.to_owned(), false)
        } else {
            return Err(format!("`{text}`: `{host}` is not an Azure storage host"));
        };
    if onelake && prefix.is_empty() {
        return Err(format!(
            "`{text}`: a OneLake landing zone is <workspace>/<item>/Files/LandingZone"
        ));
    }
    Ok(Location::Azure(AzureLocation {
        account,
        onelake,
        container,
        prefix,
    }))
}

/// Opens the store for a `landing_zone` setting.
pub fn open_store(
    text: &str,
    auth: &AuthConfig,
    remote: &RemoteOptions,
) -> Result<Arc<dyn LandingStore>, SinkError> {
    match parse_location(text).map_err(SinkError::Config)? {
        Location::Local(path) => Ok(Arc::new(LocalStore::new(path))),
        Location::Azure(location) => Ok(Arc::new(RemoteStore::new(location, auth, remote)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure(text: &str) -> AzureLocation {
        match parse_location(text).unwrap() {
            Location::Azure(a) => a,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn onelake_and_adls_urls_in_every_documented_form() {
        let https = azure("https://onelake.dfs.fabric.microsoft.com/ws/item/Files/LandingZone");
        let abfss = azure("abfss://ws@onelake.dfs.fabric.microsoft.com/item/Files/LandingZone/");
        let blob = azure("https://onelake.blob.fabric.microsoft.com/ws/item/Files/LandingZone");
        for a in [&https, &abfss, &blob] {
            assert_eq!(
                (
                    a.account.as_str(),
                    a.onelake,
                    a.container.as_str(),
                    a.prefix.as_str()
                ),
                ("onelake", true, "ws", "item/Files/LandingZone")
            );
        }
        let adls = azure("https://acct.dfs.core.windows.net/fs/mirror/lz");
        let adls2 = azure("abfss://fs@acct.dfs.core.windows.net/mirror/lz");
        for a in [&adls, &adls2] {
            assert_eq!(
                (
                    a.account.as_str(),
                    a.onelake,
                    a.container.as_str(),
                    a.prefix.as_str()
                ),
                ("acct", false, "fs", "mirror/lz")
            );
        }
        assert_eq!(
            parse_location("file:///data/lz").unwrap(),
            Location::Local("/data/lz".into())
        );
        assert!(parse_location("https://example.com/x/y").is_err());
        assert!(parse_location("https://onelake.dfs.fabric.microsoft.com/ws").is_err());
        assert!(parse_location("s3://bucket/x").is_err());
        assert!(parse_location("").is_err());
    }
}
