//! Google's OAuth2 token endpoints as `google-cloud-auth` calls them for two
//! kinds of Application Default Credentials file, when the file's own
//! `token_uri` / `token_url` points here:
//!
//! - `POST /token`, JSON `{"grant_type": "refresh_token", "client_id",
//!   "client_secret", "refresh_token", "scope"}`: gcloud's user credentials
//!   (`"type": "authorized_user"`, what `gcloud auth application-default
//!   login` writes) being refreshed, as at `oauth2.googleapis.com/token`;
//! - `POST /v1/token`, form `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`
//!   with `subject_token` and `scope`: an external account (workload identity
//!   federation, `"type": "external_account"`) exchanging its subject token
//!   at STS, as at `sts.googleapis.com/v1/token`.
//!
//! Each answers with a token from the [`AccessTokens`] it is given (the
//! emulated GCP's, so its front accepts them) when the refresh token or the
//! subject token is the expected one; 400 `invalid_grant` otherwise. Not an
//! emulation of Google's checks (client ids, audiences, token types).

use super::{Answer, Asked, StandIn};
use crate::gcp::AccessTokens;
use hyper::{Method, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

/// The secrets a client must present.
#[derive(Clone)]
pub struct Expected {
    /// The authorized user's refresh token.
    pub refresh_token: String,
    /// The external account's subject token (the content of its
    /// `credential_source` file).
    pub subject_token: String,
}

/// Starts the stand-in, issuing tokens from `tokens`.
pub async fn start(expected: Expected, tokens: Arc<AccessTokens>) -> std::io::Result<StandIn> {
    StandIn::start(
        "google-oauth",
        Arc::new(move |asked: Asked<'_>| answer(&asked, &expected, &tokens)),
    )
    .await
}

fn answer(asked: &Asked<'_>, expected: &Expected, tokens: &AccessTokens) -> Answer {
    if asked.method != Method::POST {
        return Answer::new(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let path = asked.target.split('?').next().unwrap_or_default();
    let (presented, scope, exchange) = match path {
        "/token" => {
            let body: serde_json::Value = serde_json::from_slice(asked.body).unwrap_or_default();
            let field = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
            if field("grant_type").as_deref() != Some("refresh_token") {
                return invalid("unsupported_grant_type");
            }
            (field("refresh_token"), field("scope"), false)
        }
        "/v1/token" => {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(asked.body)
                .into_owned()
                .collect();
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            if field("grant_type").as_deref()
                != Some("urn:ietf:params:oauth:grant-type:token-exchange")
            {
                return invalid("unsupported_grant_type");
            }
            (field("subject_token"), field("scope"), true)
        }
        _ => return Answer::new(StatusCode::NOT_FOUND, ""),
    };
    let wanted = if exchange {
        &expected.subject_token
    } else {
        &expected.refresh_token
    };
    if presented.as_deref() != Some(wanted.as_str()) {
        return invalid("invalid_grant");
    }
    let scopes = scope.map(|s| {
        s.split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    });
    let token = tokens.issue(scopes);
    let expires_in = token
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs()
        .max(1);
    let mut body = serde_json::json!({
        "access_token": token.token,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": token.scopes.join(" "),
    });
    if exchange {
        body["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token".into();
    }
    json(StatusCode::OK, body)
}

fn invalid(error: &str) -> Answer {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "error": error, "error_description": "refused by the stand-in" }),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Answer {
    Answer {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_string(),
    }
}
