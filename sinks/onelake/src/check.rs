//! `mirror check --connect` for the `onelake` sink: can `mirror run` write the landing zone?
//!
//! 1. `token`: a credential is obtained now (a Microsoft Entra token, an account key, a SAS);
//! 2. `landing zone`: its folder exists (DFS "Path - List" of it answers, not 404);
//! 3. `write permission`: a `_`-prefixed probe file (which Fabric ignores) is written at the
//!    landing zone's root and removed again; no table folder is touched;
//! 4. `Fabric item`: with a `fabric` setting, the mirrored database is found and reports its
//!    mirroring status.

use bytes::Bytes;
use mirror_core::component::check::{Check, CheckContext};

use crate::auth::AuthConfig;
use crate::config::OneLakeSinkConfig;
use crate::store::{PutMode, StoreError, StoreErrorKind};

/// What to check when a credential cannot be had, by auth method.
fn credential_fix(auth: &AuthConfig) -> &'static str {
    match auth {
        AuthConfig::ClientSecret { .. } => {
            "check tenant_id, client_id and client_secret (and authority_host), and that the app \
             registration's secret has not expired"
        }
        AuthConfig::ManagedIdentity { .. } => {
            "check that a managed identity is assigned to this VM or app (and that client_id names \
             it, for a user-assigned one)"
        }
        AuthConfig::WorkloadIdentity { .. } => {
            "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE, and the app's \
             federated credential for this service account"
        }
        AuthConfig::AzureCli {} | AuthConfig::DeveloperTools {} => "run `az login`",
        AuthConfig::BearerToken { .. } => "obtain a new token for https://storage.azure.com",
        AuthConfig::AccessKey { .. } => "check account_key (the storage account's access key)",
        AuthConfig::Sas { .. } => "create a new SAS with read, write, delete and list permissions",
        AuthConfig::Auto {} => {
            "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or choose an `auth` \
             method"
        }
    }
}

const FIX_ROLE: &str = "give the identity the Contributor role (or higher) on the Fabric \
    workspace, or `Storage Blob Data Contributor` on an ADLS Gen2 account";

fn store_failure(name: &str, e: &StoreError, config: &OneLakeSinkConfig) -> Check {
    let fix = match e.kind {
        StoreErrorKind::Unauthenticated => format!(
            "the landing zone refused the credential (an expired token?): {}",
            credential_fix(&config.auth)
        ),
        StoreErrorKind::Forbidden => FIX_ROLE.to_owned(),
        StoreErrorKind::Transient => "check that the endpoint is reachable from here (network, \
             firewall, private endpoint, proxy)"
            .to_owned(),
        _ => "check `landing_zone` and `endpoint`".to_owned(),
    };
    Check::failed(name, e.to_string(), fix)
}

/// Every check, for a sink configured as `config`.
pub(crate) async fn check(config: &OneLakeSinkConfig, cx: &CheckContext) -> Vec<Check> {
    let mut out = Vec::new();
    let store = match config.store() {
        Ok(store) => store,
        Err(e) => {
            out.push(Check::failed(
                "settings",
                e,
                "fix the sink's settings in mirror.toml",
            ));
            return out;
        }
    };
    let location = store.location();
    let within = |what: &str| format!("no answer within {:?} while {what}", cx.timeout);

    match tokio::time::timeout(cx.timeout, store.credential()).await {
        Ok(Ok(None)) => out.push(Check::skipped("token", "a local directory needs none")),
        Ok(Ok(Some(what))) => out.push(Check::ok("token", format!("obtained {what}"))),
        Ok(Err(e)) => {
            out.push(Check::failed(
                "token",
                e.to_string(),
                credential_fix(&config.auth),
            ));
            return out;
        }
        Err(_) => {
            out.push(Check::failed(
                "token",
                within("obtaining a token"),
                credential_fix(&config.auth),
            ));
            return out;
        }
    }

    let local = matches!(
        crate::location::parse_location(&config.landing_zone),
        Ok(crate::location::Location::Local(_))
    );
    match tokio::time::timeout(cx.timeout, store.root_exists()).await {
        Ok(Ok(true)) => out.push(Check::ok("landing zone", format!("{location} exists"))),
        Ok(Ok(false)) if local => {
            out.push(Check::warning(
                "landing zone",
                format!("{location} does not exist yet"),
                "nothing to do: `mirror run` creates it (check the path if you expected data there)",
            ));
            out.push(Check::skipped(
                "write permission",
                "the folder does not exist yet",
            ));
            out.push(fabric(config, cx).await);
            return out;
        }
        Ok(Ok(false)) => {
            out.push(Check::failed(
                "landing zone",
                format!("{location} does not exist"),
                "check the workspace and item (mirrored database) names in `landing_zone`, or \
                 create the mirrored database first (`mirror fabric create`)",
            ));
            return out;
        }
        Ok(Err(e)) => {
            out.push(store_failure("landing zone", &e, config));
            return out;
        }
        Err(_) => {
            out.push(Check::failed(
                "landing zone",
                within("listing the landing zone"),
                "check that the endpoint is reachable from here",
            ));
            return out;
        }
    }

    out.push(write_probe(config, &*store, cx).await);
    out.push(fabric(config, cx).await);
    out
}

async fn write_probe(
    config: &OneLakeSinkConfig,
    store: &dyn crate::store::LandingStore,
    cx: &CheckContext,
) -> Check {
    const NAME: &str = "write permission";
    // `_`-prefixed, at the root: Fabric ignores it, and no table folder is touched.
    let probe = format!("_mirror_check_{}.tmp", uuid::Uuid::new_v4().simple());
    let body = Bytes::from_static(b"written and removed by `mirror check --connect`\n");
    let write = async {
        store.put(&probe, body, PutMode::Create).await?;
        store.delete(&probe).await
    };
    match tokio::time::timeout(cx.timeout, write).await {
        Ok(Ok(())) => Check::ok(NAME, format!("wrote and removed {probe}")),
        Ok(Err(e)) => store_failure(NAME, &e, config),
        Err(_) => Check::failed(
            NAME,
            format!("no answer within {:?} while writing {probe}", cx.timeout),
            "check that the endpoint is reachable from here",
        ),
    }
}

async fn fabric(config: &OneLakeSinkConfig, cx: &CheckContext) -> Check {
    const NAME: &str = "Fabric item";
    let target =
        match config.fabric_target() {
            Ok(Some(target)) => target,
            Ok(None) => return Check::skipped(
                NAME,
                "no `fabric` setting: Fabric's side is not checked (add one for end-to-end status)",
            ),
            Err(e) => return Check::failed(NAME, e, "fix the sink's `fabric` setting"),
        };
    let ask = async {
        let described = target.describe().await?;
        let status = target.status().await?;
        Ok::<_, crate::fabric::FabricError>((described, status))
    };
    match tokio::time::timeout(cx.timeout, ask).await {
        Ok(Ok((described, status))) => {
            let running = status.status == "Running";
            let detail = format!("{described}: mirroring {}", status.status);
            if running {
                Check::ok(NAME, detail)
            } else {
                Check::warning(
                    NAME,
                    detail,
                    "start mirroring (`mirror fabric start`): until then Fabric applies nothing",
                )
            }
        }
        Ok(Err(e)) => Check::failed(
            NAME,
            e.to_string(),
            "check the workspace and item in `fabric` (or `landing_zone`) and that the identity \
             has a role in the workspace (`mirror fabric grant`)",
        ),
        Err(_) => Check::failed(
            NAME,
            format!("no answer within {:?} from the Fabric API", cx.timeout),
            "check that api.fabric.microsoft.com (or `fabric.api`) is reachable from here",
        ),
    }
}
