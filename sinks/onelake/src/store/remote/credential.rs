//! Credentials for OneLake / ADLS: object_store's providers where it has one, `azure_identity` and
//! custom token sources through an adapter.
//!
//! Every request (object_store's Blob calls and our DFS calls) asks the same
//! [`AzureCredentialProvider`] for a credential, so both always use the same, current token.
//! [`TokenSourceProvider`] adapts any [`TokenSource`] (an `azure_identity` credential, or one a
//! library user supplies) and caches its token until five minutes before expiry; after a 401 the
//! store calls [`Invalidate::invalidate`] and the next request fetches a fresh token.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use object_store::azure::{AzureCredential, AzureCredentialProvider, MicrosoftAzureBuilder};
use object_store::CredentialProvider;

use crate::auth::AuthConfig;

/// The scope of OneLake and Azure Storage data-plane tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Something that hands out bearer tokens for [`STORAGE_SCOPE`].
#[async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// A token and its expiry; `refresh` asks for a new one (the last one was rejected).
    async fn token(&self, refresh: bool) -> Result<(String, Option<DateTime<Utc>>), String>;
}

/// Drops a cached token so the next request gets a fresh one.
pub trait Invalidate: Send + Sync + std::fmt::Debug {
    /// Forget the cached token.
    fn invalidate(&self);
}

#[derive(Default)]
struct Cached {
    token: Option<(Arc<AzureCredential>, Option<DateTime<Utc>>)>,
    refresh: bool,
}

/// An object_store credential provider over a [`TokenSource`], with a cache.
pub struct TokenSourceProvider {
    source: Arc<dyn TokenSource>,
    cache: Mutex<Cached>,
}

impl std::fmt::Debug for TokenSourceProvider {
    // Never the cached token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSourceProvider")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TokenSourceProvider {
    /// Wraps `source`.
    pub fn new(source: Arc<dyn TokenSource>) -> Arc<Self> {
        Arc::new(Self {
            source,
            cache: Mutex::new(Cached::default()),
        })
    }
}

impl Invalidate for TokenSourceProvider {
    fn invalidate(&self) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.token = None;
        cache.refresh = true;
    }
}

#[async_trait]
impl CredentialProvider for TokenSourceProvider {
    type Credential = AzureCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AzureCredential>> {
        let refresh = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((cred, expires)) = &cache.token {
                let fresh = expires.is_none_or(|e| e - chrono::Duration::minutes(5) > Utc::now());
                if fresh {
                    return Ok(cred.clone());
                }
            }
            cache.refresh
        };
        let (token, expires) =
            self.source
                .token(refresh)
                .await
                .map_err(|message| object_store::Error::Generic {
                    store: "MicrosoftAzure",
                    source: message.into(),
                })?;
        let cred = Arc::new(AzureCredential::BearerToken(token));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.token = Some((cred.clone(), expires));
        cache.refresh = false;
        Ok(cred)
    }
}

/// `azure_identity`'s developer tools chain as a [`TokenSource`].
#[derive(Debug)]
struct DeveloperTools(Arc<azure_identity::DeveloperToolsCredential>);

#[async_trait]
impl TokenSource for DeveloperTools {
    async fn token(&self, _refresh: bool) -> Result<(String, Option<DateTime<Utc>>), String> {
        use azure_core::credentials::TokenCredential;
        let token = self
            .0
            .get_token(&[STORAGE_SCOPE], None)
            .await
            .map_err(|e| format!("developer tools credential: {e}"))?;
        let expires = DateTime::from_timestamp(token.expires_on.unix_timestamp(), 0);
        Ok((token.token.secret().to_owned(), expires))
    }
}

/// Where managed identity tokens come from: the configured `msi_endpoint`, else the local identity
/// endpoint that App Service and Container Apps announce in `IDENTITY_ENDPOINT` with its secret in
/// `IDENTITY_HEADER` (they have no IMDS), else `None`: the VM's IMDS at 169.254.169.254.
///
/// object_store reads `IDENTITY_ENDPOINT` only in `MicrosoftAzureBuilder::from_env`, which the sink
/// does not use (the configuration, not stray `AZURE_*` variables, decides); it does send
/// `IDENTITY_HEADER` as `X-IDENTITY-HEADER` and asks with api-version 2019-08-01, `resource` and
/// `client_id`, which is the App Service protocol ("How to use managed identities for App
/// Service", REST endpoint reference: learn.microsoft.com/azure/app-service/
/// overview-managed-identity). `azure_identity`, used for Fabric tokens, detects the same pair.
fn managed_identity_endpoint(
    configured: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(endpoint) = configured {
        return Some(endpoint.to_owned());
    }
    match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
        (Some(endpoint), Some(_)) if !endpoint.is_empty() => Some(endpoint),
        _ => None,
    }
}

/// What credential setup produced: settings for the object_store builder, or a provider.
pub(crate) enum Resolved {
    /// Let object_store build the provider from the builder settings applied.
    Builtin(MicrosoftAzureBuilder),
    /// Use this provider.
    Custom(
        MicrosoftAzureBuilder,
        AzureCredentialProvider,
        Option<Arc<dyn Invalidate>>,
    ),
}

/// Applies `auth` to `builder`.
pub(crate) fn resolve(
    auth: &AuthConfig,
    builder: MicrosoftAzureBuilder,
    token_source: Option<Arc<dyn TokenSource>>,
) -> Result<Resolved, String> {
    if let Some(source) = token_source {
        let provider = TokenSourceProvider::new(source);
        return Ok(Resolved::Custom(builder, provider.clone(), Some(provider)));
    }
    Ok(match auth {
        AuthConfig::Auto {} => Resolved::Builtin(builder),
        AuthConfig::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
            authority_host,
        } => {
            let mut b = builder
                .with_credential_type("client_secret")
                .with_tenant_id(tenant_id)
                .with_client_id(client_id)
                .with_client_secret(client_secret.expose());
            if let Some(host) = authority_host {
                b = b.with_authority_host(host);
            }
            Resolved::Builtin(b)
        }
        AuthConfig::ManagedIdentity {
            client_id,
            msi_endpoint,
        } => {
            let mut b = builder.with_credential_type("managed_identity");
            if let Some(id) = client_id {
                b = b.with_client_id(id);
            }
            let env = |name: &str| std::env::var(name).ok();
            if let Some(endpoint) = managed_identity_endpoint(msi_endpoint.as_deref(), env) {
                b = b.with_msi_endpoint(endpoint);
            }
            Resolved::Builtin(b)
        }
        AuthConfig::WorkloadIdentity {
            tenant_id,
            client_id,
            federated_token_file,
        } => {
            let env = |name: &str| std::env::var(name).ok();
            let tenant = tenant_id.clone().or_else(|| env("AZURE_TENANT_ID"));
            let client = client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
            let file = federated_token_file
                .clone()
                .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE"));
            let (Some(tenant), Some(client), Some(file)) = (tenant, client, file) else {
                return Err(
                    "workload_identity needs tenant_id, client_id and federated_token_file \
                            (or AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)"
                        .into(),
                );
            };
            Resolved::Builtin(
                builder
                    .with_credential_type("workload_identity")
                    .with_tenant_id(tenant)
                    .with_client_id(client)
                    .with_federated_token_file(file),
            )
        }
        AuthConfig::AzureCli {} => Resolved::Builtin(builder.with_credential_type("azure_cli")),
        AuthConfig::DeveloperTools {} => {
            let cred = azure_identity::DeveloperToolsCredential::new(None)
                .map_err(|e| format!("developer_tools: {e}"))?;
            let provider = TokenSourceProvider::new(Arc::new(DeveloperTools(cred)));
            Resolved::Custom(builder, provider.clone(), Some(provider))
        }
        AuthConfig::BearerToken { token } => Resolved::Builtin(
            builder
                .with_credential_type("bearer_token")
                .with_bearer_token_authorization(token.expose()),
        ),
        AuthConfig::AccessKey { account_key } => Resolved::Builtin(
            builder
                .with_credential_type("access_key")
                .with_access_key(account_key.expose()),
        ),
        AuthConfig::Sas { token } => {
            let pairs = object_store::azure::split_sas(token.expose())
                .map_err(|e| format!("sas token: {e}"))?;
            Resolved::Builtin(
                builder
                    .with_credential_type("sas_token")
                    .with_sas_authorization(pairs),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::managed_identity_endpoint;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn container_apps_and_app_service_use_their_identity_endpoint() {
        let platform = [
            ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
            ("IDENTITY_HEADER", "853b9a84-5bfa-4b22-a3f3-0b9a43d9ad8a"),
        ];
        assert_eq!(
            managed_identity_endpoint(None, env(&platform)).as_deref(),
            Some("http://localhost:42356/msi/token")
        );
        // The configuration wins over the platform.
        assert_eq!(
            managed_identity_endpoint(Some("http://10.0.0.1/token"), env(&platform)).as_deref(),
            Some("http://10.0.0.1/token")
        );
        // A VM: no endpoint announced, object_store's IMDS default.
        assert_eq!(managed_identity_endpoint(None, env(&[])), None);
        // An endpoint without its secret is not the platform's (every request would be refused).
        assert_eq!(managed_identity_endpoint(None, env(&platform[..1])), None);
    }
}
