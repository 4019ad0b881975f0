//! STS's `AssumeRoleWithWebIdentity`, as the web identity provider (EKS IRSA:
//! `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`) calls it when
//! `AWS_ENDPOINT_URL_STS` points here: `POST /` with a form body naming the
//! action, the role and the web identity token. Answers the XML STS sends,
//! with the [`Issued`] credentials, when the token is the expected one; 400
//! (`InvalidIdentityToken`) otherwise.

use super::{Answer, Asked, Issued, StandIn};
use hyper::{Method, StatusCode};
use std::sync::Arc;

/// Starts an STS stand-in that trades `web_identity_token` for `issued`.
pub async fn start(web_identity_token: String, issued: Issued) -> std::io::Result<StandIn> {
    StandIn::start(
        "sts",
        Arc::new(move |asked: Asked<'_>| answer(&asked, &web_identity_token, &issued)),
    )
    .await
}

fn answer(asked: &Asked<'_>, expected: &str, issued: &Issued) -> Answer {
    if asked.method != Method::POST {
        return Answer::new(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(asked.body)
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("Action") != Some("AssumeRoleWithWebIdentity") {
        return Answer::new(
            StatusCode::BAD_REQUEST,
            error("InvalidAction", "unknown action"),
        );
    }
    if field("WebIdentityToken") != Some(expected) {
        return Answer::new(
            StatusCode::BAD_REQUEST,
            error(
                "InvalidIdentityToken",
                "the web identity token is not valid",
            ),
        );
    }
    let role = field("RoleArn").unwrap_or_default();
    let session = field("RoleSessionName").unwrap_or("session");
    Answer::new(
        StatusCode::OK,
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:default:redauth</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>{role}/{session}</Arn>
      <AssumedRoleId>AROASTANDIN:{session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{}</AccessKeyId>
      <SecretAccessKey>{}</SecretAccessKey>
      <SessionToken>{}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
    <Provider>www.example.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>00000000-0000-4000-8000-000000000000</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#,
            issued.access_key_id,
            issued.secret_access_key,
            issued.session_token,
            issued.expiration_text()
        ),
    )
}

fn error(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-4000-8000-000000000001</RequestId></ErrorResponse>"#
    )
}
