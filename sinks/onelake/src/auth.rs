//! How the sink authenticates to OneLake / ADLS Gen2: `auth = { method = "...", ... }`.
//!
//! | method | settings | notes |
//! |---|---|---|
//! | `client_secret` | `tenant_id`, `client_id`, `client_secret` | a service principal (what existing deployments use) |
//! | `managed_identity` | `client_id` (user-assigned, optional), `msi_endpoint` (optional) | Azure VMs, App Service, Container Apps |
//! | `workload_identity` | `tenant_id`, `client_id`, `federated_token_file` (default: the `AZURE_*` variables) | AKS |
//! | `azure_cli` | | the `az login` user (developer machines) |
//! | `developer_tools` | | `azure_identity`'s developer chain (Azure CLI, then Azure Developer CLI) |
//! | `bearer_token` | `token` | a token obtained elsewhere (tests, short jobs); never refreshed |
//! | `access_key` | `account_key` | ADLS Gen2 storage accounts only (OneLake takes Entra ID tokens only) |
//! | `sas` | `token` | ADLS Gen2 shared access signature |
//! | `auto` (default) | | object_store's detection from the `AZURE_*` environment variables |
//!
//! Secrets are [`Secret`]s: redacted in `Debug`, never logged. Use `${ENV}` interpolation in
//! `mirror.toml` rather than literal secrets. Tokens are requested for
//! `https://storage.azure.com/.default` and refreshed before they expire (object_store's token
//! cache renews a token in its last five minutes; `azure_identity` credentials cache likewise).

use mirror_core::config::Secret;
use serde::Deserialize;

/// The `auth` table of the sink.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// object_store's detection from environment variables.
    Auto {},
    /// A service principal with a client secret.
    ClientSecret {
        /// Entra tenant id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The secret.
        client_secret: Secret,
        /// Authority host for sovereign clouds (default: the public cloud).
        #[serde(default)]
        authority_host: Option<String>,
    },
    /// A managed identity (system-assigned, or user-assigned with `client_id`).
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        #[serde(default)]
        client_id: Option<String>,
        /// The token endpoint (default: `IDENTITY_ENDPOINT` with `IDENTITY_HEADER` where App Service
        /// and Container Apps set them, else the VM's IMDS).
        #[serde(default)]
        msi_endpoint: Option<String>,
    },
    /// Kubernetes workload identity (federated token file).
    WorkloadIdentity {
        /// Tenant id (default `AZURE_TENANT_ID`).
        #[serde(default)]
        tenant_id: Option<String>,
        /// Client id (default `AZURE_CLIENT_ID`).
        #[serde(default)]
        client_id: Option<String>,
        /// Token file (default `AZURE_FEDERATED_TOKEN_FILE`).
        #[serde(default)]
        federated_token_file: Option<String>,
    },
    /// The Azure CLI's logged-in account.
    AzureCli {},
    /// `azure_identity`'s developer tools chain.
    DeveloperTools {},
    /// A fixed bearer token.
    BearerToken {
        /// The token.
        token: Secret,
    },
    /// A storage account key (ADLS Gen2 only).
    AccessKey {
        /// The key.
        account_key: Secret,
    },
    /// A shared access signature (ADLS Gen2 only).
    Sas {
        /// The SAS query string.
        token: Secret,
    },
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig::Auto {}
    }
}

impl AuthConfig {
    /// The method name, for messages.
    pub fn method(&self) -> &'static str {
        match self {
            AuthConfig::Auto {} => "auto",
            AuthConfig::ClientSecret { .. } => "client_secret",
            AuthConfig::ManagedIdentity { .. } => "managed_identity",
            AuthConfig::WorkloadIdentity { .. } => "workload_identity",
            AuthConfig::AzureCli {} => "azure_cli",
            AuthConfig::DeveloperTools {} => "developer_tools",
            AuthConfig::BearerToken { .. } => "bearer_token",
            AuthConfig::AccessKey { .. } => "access_key",
            AuthConfig::Sas { .. } => "sas",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        auth: AuthConfig,
    }

    #[test]
    fn secrets_are_parsed_and_never_shown() {
        let h: Holder = toml::from_str(
            r#"auth = { method = "client_secret", tenant_id = "t", client_id = "c", client_secret = "s3cret" }"#,
        )
        .unwrap();
        let shown = format!("{:?}", h.auth);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(h.auth.method(), "client_secret");
        let bad = toml::from_str::<Holder>(r#"auth = { method = "azure_cli", tenant = "x" }"#);
        assert!(bad.is_err());
    }
}
