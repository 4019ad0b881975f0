//! The IAM Identity Center (SSO) portal's `GetRoleCredentials`, as the SSO
//! provider of a profile with `sso_session` (or the legacy `sso_start_url`)
//! and `sso_account_id`/`sso_role_name` calls it when `AWS_ENDPOINT_URL_SSO`
//! points here: `GET /federation/credentials?role_name=…&account_id=…` with
//! the cached SSO access token in `x-amz-sso_bearer_token`. Answers the JSON
//! the portal sends, with the [`Issued`] credentials, when token, role and
//! account are the expected ones; 401 (`UnauthorizedException`) for another
//! token, 403 (`ForbiddenException`) for another role or account.
//!
//! The access token itself is what `aws sso login` leaves in
//! `~/.aws/sso/cache/` ([`write_cached_token`]); the provider reads it from
//! there and, while it is not near expiry, asks nothing else.

use super::{Answer, Asked, Issued, StandIn};
use hyper::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the portal is to be asked for, and with which access token.
#[derive(Clone)]
pub struct Expected {
    pub access_token: String,
    pub account_id: String,
    pub role_name: String,
}

/// Starts an SSO portal stand-in handing out `issued` for `expected`.
pub async fn start(expected: Expected, issued: Issued) -> std::io::Result<StandIn> {
    StandIn::start(
        "sso",
        Arc::new(move |asked: Asked<'_>| answer(&asked, &expected, &issued)),
    )
    .await
}

fn answer(asked: &Asked<'_>, expected: &Expected, issued: &Issued) -> Answer {
    if asked.method != Method::GET {
        return Answer::new(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let (path, query) = asked.target.split_once('?').unwrap_or((asked.target, ""));
    if path != "/federation/credentials" {
        return Answer::new(StatusCode::NOT_FOUND, "");
    }
    let token = asked
        .headers
        .get("x-amz-sso_bearer_token")
        .and_then(|v| v.to_str().ok());
    if token != Some(expected.access_token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedException",
            "Session token not found or invalid",
        );
    }
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("role_name") != Some(expected.role_name.as_str())
        || field("account_id") != Some(expected.account_id.as_str())
    {
        return error(StatusCode::FORBIDDEN, "ForbiddenException", "No access");
    }
    let expiration = issued
        .expiration
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    json(
        StatusCode::OK,
        serde_json::json!({
            "roleCredentials": {
                "accessKeyId": issued.access_key_id,
                "secretAccessKey": issued.secret_access_key,
                "sessionToken": issued.session_token,
                "expiration": expiration,
            }
        }),
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    let mut answer = json(status, serde_json::json!({ "message": message }));
    answer.headers.push(("x-amzn-errortype", code.to_string()));
    answer
}

fn json(status: StatusCode, body: serde_json::Value) -> Answer {
    Answer {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_string(),
    }
}

/// Writes the SSO access token cache file the SDKs read under `home`:
/// `.aws/sso/cache/<sha1 hex of identifier>.json`, where `identifier` is the
/// `sso_session` name (or, for a legacy profile, its `sso_start_url`), with
/// `accessToken` and `expiresAt` (no refresh fields: a token not near expiry
/// is used as it is). Returns the file's path.
pub fn write_cached_token(
    home: &Path,
    identifier: &str,
    access_token: &str,
    expires_at: SystemTime,
) -> std::io::Result<PathBuf> {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        identifier.as_bytes(),
    );
    let name: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let dir = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    let contents = serde_json::json!({
        "accessToken": access_token,
        "expiresAt": humantime::format_rfc3339_seconds(expires_at).to_string(),
    });
    std::fs::write(&path, contents.to_string())?;
    Ok(path)
}
