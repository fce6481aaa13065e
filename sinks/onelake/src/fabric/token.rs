//! Microsoft Entra tokens for the Fabric REST API (`https://api.fabric.microsoft.com/.default`),
//! with the sink's own credential methods ([`AuthConfig`]).
//!
//! The storage side gets its tokens from object_store's providers, which only ever ask for the
//! storage scope; the Fabric scope is asked for here:
//! - `client_secret`: the OAuth 2.0 client credentials grant, one form POST to
//!   `<authority_host>/<tenant>/oauth2/v2.0/token` (the public cloud's
//!   `https://login.microsoftonline.com` unless `authority_host` says otherwise). Written here
//!   rather than taken from `azure_identity` because that credential insists on an HTTPS authority,
//!   and a local simulator (or a proxy) serves plain HTTP;
//! - `managed_identity`, `workload_identity`, `azure_cli`, `developer_tools`: `azure_identity`'s
//!   credentials, asked for the Fabric scope;
//! - `bearer_token`: used as given and never refreshed;
//! - `access_key`, `sas`: refused, the Fabric API takes Entra tokens only;
//! - `auto`: `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` (and
//!   `AZURE_AUTHORITY_HOST`) for a service principal, else `AZURE_FEDERATED_TOKEN_FILE` for
//!   workload identity, else the managed identity.
//!
//! A token is cached until five minutes before it expires; [`FabricCredential::invalidate`] drops
//! it after a 401, so the next call gets a fresh one.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use chrono::{DateTime, Utc};

use super::error::FabricError;
use crate::auth::AuthConfig;

/// The scope of Fabric REST API tokens.
pub const FABRIC_SCOPE: &str = "https://api.fabric.microsoft.com/.default";

const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

type Token = (String, Option<DateTime<Utc>>);

#[async_trait]
trait Source: Send + Sync {
    async fn fetch(&self) -> Result<Token, String>;
}

/// The client credentials grant with a client secret.
struct ClientSecret {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    secret: mirror_core::config::Secret,
}

#[async_trait]
impl Source for ClientSecret {
    async fn fetch(&self) -> Result<Token, String> {
        let mut form = reqwest::Url::parse("http://form.invalid/").map_err(|e| e.to_string())?;
        form.query_pairs_mut()
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.secret.expose())
            .append_pair("scope", FABRIC_SCOPE);
        let body = form.query().unwrap_or_default().to_owned();
        let response = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{}: {}", self.endpoint, e.without_url()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{}: {}", self.endpoint, e.without_url()))?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
            format!(
                "{} answered {status} with a body that is not JSON",
                self.endpoint
            )
        })?;
        if let Some(token) = answer["access_token"].as_str() {
            let expires = answer["expires_in"]
                .as_i64()
                .or_else(|| answer["expires_in"].as_str().and_then(|s| s.parse().ok()))
                .map(|secs| Utc::now() + chrono::Duration::seconds(secs));
            return Ok((token.to_owned(), expires));
        }
        Err(format!(
            "{} answered {status} {}: {}",
            self.endpoint,
            answer["error"].as_str().unwrap_or("(no error code)"),
            answer["error_description"]
                .as_str()
                .unwrap_or("(no description)")
                .lines()
                .next()
                .unwrap_or_default()
        ))
    }
}

/// An `azure_identity` credential.
struct Identity(Arc<dyn TokenCredential>);

#[async_trait]
impl Source for Identity {
    async fn fetch(&self) -> Result<Token, String> {
        let token = self
            .0
            .get_token(&[FABRIC_SCOPE], None)
            .await
            .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())?;
        let expires = DateTime::from_timestamp(token.expires_on.unix_timestamp(), 0);
        Ok((token.token.secret().to_owned(), expires))
    }
}

/// A token given in the configuration.
struct Fixed(mirror_core::config::Secret);

#[async_trait]
impl Source for Fixed {
    async fn fetch(&self) -> Result<Token, String> {
        Ok((self.0.expose().to_owned(), None))
    }
}

/// Bearer tokens for the Fabric API, cached and refreshed.
pub struct FabricCredential {
    source: Box<dyn Source>,
    method: &'static str,
    refreshable: bool,
    cache: Mutex<Option<Token>>,
}

impl std::fmt::Debug for FabricCredential {
    // Never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricCredential")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl FabricCredential {
    /// The credential of `auth`, asking for [`FABRIC_SCOPE`].
    pub fn new(auth: &AuthConfig, http: &reqwest::Client) -> Result<Self, FabricError> {
        let method = auth.method();
        let identity = |result: azure_core::Result<Arc<dyn TokenCredential>>| {
            result
                .map(|c| Box::new(Identity(c)) as Box<dyn Source>)
                .map_err(|e| FabricError::Token {
                    method,
                    message: e.to_string(),
                })
        };
        let secret_grant = |tenant: &str, client: &str, secret, authority: Option<&str>| {
            let authority = authority.unwrap_or(PUBLIC_AUTHORITY).trim_end_matches('/');
            Box::new(ClientSecret {
                http: http.clone(),
                endpoint: format!("{authority}/{tenant}/oauth2/v2.0/token"),
                client_id: client.to_owned(),
                secret,
            }) as Box<dyn Source>
        };
        let managed = |client_id: Option<String>| {
            identity(
                azure_identity::ManagedIdentityCredential::new(Some(
                    azure_identity::ManagedIdentityCredentialOptions {
                        user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
                        ..Default::default()
                    },
                ))
                .map(|c| c as Arc<dyn TokenCredential>),
            )
        };
        let workload = |tenant_id, client_id, file: Option<String>| {
            identity(
                azure_identity::WorkloadIdentityCredential::new(Some(
                    azure_identity::WorkloadIdentityCredentialOptions {
                        tenant_id,
                        client_id,
                        token_file_path: file.map(Into::into),
                        ..Default::default()
                    },
                ))
                .map(|c| c as Arc<dyn TokenCredential>),
            )
        };
        let (source, refreshable) = match auth {
            AuthConfig::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                authority_host,
            } => (
                secret_grant(
                    tenant_id,
                    client_id,
                    client_secret.clone(),
                    authority_host.as_deref(),
                ),
                true,
            ),
            AuthConfig::ManagedIdentity { client_id, .. } => (managed(client_id.clone())?, true),
            AuthConfig::WorkloadIdentity {
                tenant_id,
                client_id,
                federated_token_file,
            } => (
                workload(
                    tenant_id.clone(),
                    client_id.clone(),
                    federated_token_file.clone(),
                )?,
                true,
            ),
            AuthConfig::AzureCli {} => (
                identity(
                    azure_identity::AzureCliCredential::new(None)
                        .map(|c| c as Arc<dyn TokenCredential>),
                )?,
                true,
            ),
            AuthConfig::DeveloperTools {} => (
                identity(
                    azure_identity::DeveloperToolsCredential::new(None)
                        .map(|c| c as Arc<dyn TokenCredential>),
                )?,
                true,
            ),
            AuthConfig::BearerToken { token } => {
                (Box::new(Fixed(token.clone())) as Box<dyn Source>, false)
            }
            AuthConfig::AccessKey { .. } | AuthConfig::Sas { .. } => {
                return Err(FabricError::Config(format!(
                    "the Fabric REST API takes Microsoft Entra ID tokens only, not `{method}`: set \
                     `fabric.auth` to client_secret, managed_identity, workload_identity or azure_cli"
                )))
            }
            AuthConfig::Auto {} => {
                match (
                    env("AZURE_TENANT_ID"),
                    env("AZURE_CLIENT_ID"),
                    env("AZURE_CLIENT_SECRET"),
                ) {
                    (Some(tenant), Some(client), Some(secret)) => (
                        secret_grant(
                            &tenant,
                            &client,
                            mirror_core::config::Secret::new(secret),
                            env("AZURE_AUTHORITY_HOST").as_deref(),
                        ),
                        true,
                    ),
                    (tenant, client, _) if env("AZURE_FEDERATED_TOKEN_FILE").is_some() => (
                        workload(tenant, client, env("AZURE_FEDERATED_TOKEN_FILE"))?,
                        true,
                    ),
                    (_, client, _) => (managed(client)?, true),
                }
            }
        };
        Ok(Self {
            source,
            method,
            refreshable,
            cache: Mutex::new(None),
        })
    }

    /// The credential method, for messages.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// Whether a rejected token can be replaced by a fresh one.
    pub fn refreshable(&self) -> bool {
        self.refreshable
    }

    /// A valid token.
    pub async fn token(&self) -> Result<String, FabricError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((token, expires)) = cache.as_ref() {
                if expires.is_none_or(|e| e - chrono::Duration::minutes(5) > Utc::now()) {
                    return Ok(token.clone());
                }
            }
        }
        let fetched = self
            .source
            .fetch()
            .await
            .map_err(|message| FabricError::Token {
                method: self.method,
                message,
            })?;
        let token = fetched.0.clone();
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(fetched);
        Ok(token)
    }

    /// Forgets the cached token (it was rejected).
    pub fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
