//! The Microsoft Entra ID side of the simulator: the OAuth 2.0 token endpoint for the client
//! credentials grant, and the tokens it issued.
//!
//! `POST /{tenant}/oauth2/v2.0/token` with a form body `grant_type=client_credentials`,
//! `client_id`, `client_secret`, `scope`, as Microsoft documents it ("Microsoft identity platform
//! and the OAuth 2.0 client credentials flow", learn.microsoft.com/entra/identity-platform/
//! v2-oauth2-client-creds-grant-flow): the answer is `{"token_type": "Bearer", "expires_in",
//! "ext_expires_in", "access_token"}`; errors are `{"error", "error_description", "error_codes",
//! "timestamp", "trace_id", "correlation_id"}` with the AADSTS code in the description:
//! - unknown tenant: 400 `invalid_request`, AADSTS90002;
//! - unknown application: 400 `unauthorized_client`, AADSTS700016;
//! - wrong secret: 401 `invalid_client`, AADSTS7000215;
//! - a scope that is not `<resource>/.default`: 400 `invalid_scope`, AADSTS1002012.
//!
//! A token is issued for one resource (its audience): a token for
//! `https://storage.azure.com/.default` is refused by the Fabric API and the other way round, as the
//! real services refuse a token of another audience.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

/// The scope of Fabric REST API tokens.
pub const FABRIC_SCOPE: &str = "https://api.fabric.microsoft.com/.default";
/// The audience of Fabric REST API tokens.
pub const FABRIC_AUDIENCE: &str = "https://api.fabric.microsoft.com";

/// A registered application (service principal).
#[derive(Clone, Debug)]
pub(crate) struct App {
    pub tenant: String,
    pub secret: String,
    /// The service principal's object id: what role assignments name.
    pub object_id: String,
}

/// An issued token.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    /// The principal's object id.
    pub principal: String,
    /// The resource it was issued for, e.g. `https://api.fabric.microsoft.com`.
    pub audience: String,
    pub expires: DateTime<Utc>,
}

/// Why a bearer token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Missing,
    Unknown,
    Expired,
    WrongAudience,
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// By client (application) id.
    apps: HashMap<String, App>,
    tokens: HashMap<String, Issued>,
    pub token_lifetime: Option<Duration>,
    /// Tokens issued, in order (tests check refreshes).
    pub issued: Vec<String>,
}

impl Directory {
    pub fn register(&mut self, tenant: &str, client_id: &str, secret: &str) -> String {
        let object_id = uuid::Uuid::new_v4().to_string();
        self.apps.insert(
            client_id.to_owned(),
            App {
                tenant: tenant.to_owned(),
                secret: secret.to_owned(),
                object_id: object_id.clone(),
            },
        );
        object_id
    }

    /// Issues a token for `principal` directly (a token obtained elsewhere).
    pub fn mint(&mut self, principal: &str, audience: &str) -> String {
        let token = format!("sim-{}", uuid::Uuid::new_v4().simple());
        let lifetime = self.token_lifetime.unwrap_or(Duration::seconds(3599));
        self.tokens.insert(
            token.clone(),
            Issued {
                principal: principal.to_owned(),
                audience: audience.to_owned(),
                expires: Utc::now() + lifetime,
            },
        );
        self.issued.push(token.clone());
        token
    }

    pub fn expire(&mut self, token: &str) {
        if let Some(t) = self.tokens.get_mut(token) {
            t.expires = Utc::now() - Duration::seconds(1);
        }
    }

    pub fn expire_all(&mut self) {
        let past = Utc::now() - Duration::seconds(1);
        for t in self.tokens.values_mut() {
            t.expires = past;
        }
    }

    /// The principal of a valid Fabric API bearer token.
    pub fn check(&self, authorization: Option<&str>) -> Result<String, TokenProblem> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(TokenProblem::Missing)?;
        let issued = self.tokens.get(token).ok_or(TokenProblem::Unknown)?;
        if issued.expires <= Utc::now() {
            return Err(TokenProblem::Expired);
        }
        if issued.audience != FABRIC_AUDIENCE {
            return Err(TokenProblem::WrongAudience);
        }
        Ok(issued.principal.clone())
    }

    /// The token endpoint: `(status, JSON body)`.
    pub fn token_request(
        &mut self,
        tenant: &str,
        form: &std::collections::BTreeMap<String, String>,
    ) -> (u16, String) {
        let error = |status: u16, error: &str, code: u32, description: &str| {
            let body = json!({
                "error": error,
                "error_description": format!("AADSTS{code}: {description}"),
                "error_codes": [code],
                "timestamp": Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
                "trace_id": uuid::Uuid::new_v4().to_string(),
                "correlation_id": uuid::Uuid::new_v4().to_string(),
            });
            (status, body.to_string())
        };
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if field("grant_type") != "client_credentials" {
            return error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            );
        }
        if !self.apps.values().any(|a| a.tenant == tenant) {
            return error(
                400,
                "invalid_request",
                90002,
                &format!("Tenant '{tenant}' not found."),
            );
        }
        let client_id = field("client_id");
        let Some(app) = self
            .apps
            .get(client_id)
            .filter(|a| a.tenant == tenant)
            .cloned()
        else {
            return error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            );
        };
        if field("client_secret") != app.secret {
            return error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            );
        }
        let scope = field("scope");
        let Some(resource) = scope.strip_suffix("/.default") else {
            return error(
                400,
                "invalid_scope",
                1002012,
                &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
            );
        };
        let token = self.mint(&app.object_id, resource);
        let lifetime = self
            .token_lifetime
            .unwrap_or(Duration::seconds(3599))
            .num_seconds();
        let body = json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        });
        (200, body.to_string())
    }
}
