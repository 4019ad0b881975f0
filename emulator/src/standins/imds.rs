//! IMDSv2, as the AWS SDKs use it for an instance profile's credentials
//! (`AWS_EC2_METADATA_SERVICE_ENDPOINT` points them here):
//!
//! - `PUT /latest/api/token` with `x-aws-ec2-metadata-token-ttl-seconds` →
//!   a session token;
//! - `GET /latest/meta-data/iam/security-credentials/` with
//!   `x-aws-ec2-metadata-token` → the role name;
//! - `GET /latest/meta-data/iam/security-credentials/<role>` → the JSON
//!   credentials (`Code`, `AccessKeyId`, `SecretAccessKey`, `Token`,
//!   `Expiration`, …).
//!
//! A GET without the session token is 401, as on EC2 with IMDSv2 required.

use super::{Answer, Asked, Issued, StandIn};
use hyper::{Method, StatusCode};
use std::sync::Arc;

const ROLE: &str = "redauth-test-role";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";

/// Starts an IMDSv2 stand-in handing out `issued`.
pub async fn start(issued: Issued) -> std::io::Result<StandIn> {
    let session = crate::random::secret();
    StandIn::start(
        "imds",
        Arc::new(move |asked: Asked<'_>| answer(&asked, &session, &issued)),
    )
    .await
}

fn answer(asked: &Asked<'_>, session: &str, issued: &Issued) -> Answer {
    let header = |name: &str| {
        asked
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    if asked.method == Method::PUT && asked.target == "/latest/api/token" {
        return match header("x-aws-ec2-metadata-token-ttl-seconds").parse::<u32>() {
            Ok(ttl) => Answer {
                status: StatusCode::OK,
                headers: vec![("x-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())],
                body: session.to_string(),
            },
            Err(_) => Answer::new(StatusCode::BAD_REQUEST, ""),
        };
    }
    if asked.method != Method::GET {
        return Answer::new(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    if header("x-aws-ec2-metadata-token") != session {
        return Answer::new(StatusCode::UNAUTHORIZED, "");
    }
    match asked.target.strip_prefix(CREDENTIALS_PATH) {
        Some("") => Answer::new(StatusCode::OK, ROLE),
        Some(ROLE) => Answer::new(
            StatusCode::OK,
            serde_json::json!({
                "Code": "Success",
                "LastUpdated": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                "Type": "AWS-HMAC",
                "AccessKeyId": issued.access_key_id,
                "SecretAccessKey": issued.secret_access_key,
                "Token": issued.session_token,
                "Expiration": issued.expiration_text(),
            })
            .to_string(),
        ),
        _ => Answer::new(StatusCode::NOT_FOUND, ""),
    }
}
