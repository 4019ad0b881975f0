//! `--auth` and its companions: which credential upstream connections use,
//! and every combination that cannot work. Secret files are read here; their
//! content never appears in a message.

use super::env::PASSWORD_VAR;
use super::files::read_secret;
use super::names::Names;
use super::settings::Settings;
use super::Auth;
use crate::credentials::aws::{AwsIamConfig, DEFAULT_CONNECTION_LIMIT};
use crate::credentials::aws_token::Service;
use crate::credentials::entra::{EntraConfig, EntraKind, DEFAULT_SCOPE};
use crate::credentials::gcp::{self, GcpIamConfig, Reauth};
use crate::credentials::{Credential, Secret};
use crate::environment::Environment;

/// How upstream connections authenticate, or every problem with it.
pub(crate) fn resolve_auth(
    settings: &Settings,
    names: &Names,
    env: &dyn Environment,
) -> Result<Auth, Vec<String>> {
    let mode = settings.auth.as_deref().unwrap_or("password");
    let entra_keys = [
        ("entra_credential", settings.entra_credential.is_some()),
        ("entra_client_id", settings.entra_client_id.is_some()),
        ("entra_tenant_id", settings.entra_tenant_id.is_some()),
        ("entra_scope", settings.entra_scope.is_some()),
        (
            "entra_client_secret_file",
            settings.entra_client_secret_file.is_some(),
        ),
    ];
    let aws_keys = [
        ("aws_cache_name", settings.aws_cache_name.is_some()),
        ("aws_service", settings.aws_service.is_some()),
        ("aws_serverless", settings.aws_serverless.is_some()),
        ("aws_region", settings.aws_region.is_some()),
        (
            "aws_connection_limit",
            settings.aws_connection_limit.is_some(),
        ),
    ];
    let gcp_keys = [("gcp_scope", settings.gcp_scope.is_some())];
    let mut misplaced = Vec::new();
    for (keys, wants) in [
        (&entra_keys[..], "entra"),
        (&aws_keys[..], "aws-iam"),
        (&gcp_keys[..], "gcp-iam"),
    ] {
        if mode != wants {
            misplaced.extend(keys.iter().filter(|(_, given)| *given).map(|(key, _)| {
                format!(
                    "{} needs --auth {wants} (auth is {mode:?})",
                    names.name(key)
                )
            }));
        }
    }
    misplaced.extend(reauth_problem(settings, names, mode));
    if !misplaced.is_empty() {
        return Err(misplaced);
    }
    let one = |e: String| vec![e];
    match mode {
        "none" => no_auth(settings, env).map_err(one),
        "password" => password_auth(settings, names, env).map_err(one),
        "entra" => entra_auth(settings, names, env).map_err(one),
        "aws-iam" => aws_auth(settings, names, env),
        "gcp-iam" => gcp_auth(settings, names, env),
        other => Err(one(format!(
            "{}: {other:?} is not one of password, entra, aws-iam, gcp-iam, none",
            names.name("auth")
        ))),
    }
}

fn no_auth(settings: &Settings, env: &dyn Environment) -> Result<Auth, String> {
    if settings.username.is_some()
        || settings.password_file.is_some()
        || env.var(PASSWORD_VAR).is_some()
    {
        return Err("--auth none takes no --username, --password-file or REDAUTH_PASSWORD".into());
    }
    Ok(Auth::Static(Credential::none()))
}

fn password_auth(
    settings: &Settings,
    names: &Names,
    env: &dyn Environment,
) -> Result<Auth, String> {
    let password = match (&settings.password_file, env.var(PASSWORD_VAR)) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "the password is given twice: use {} or {PASSWORD_VAR}, not both",
                names.name("password_file")
            ))
        }
        (Some(path), None) => read_secret(&names.name("password_file"), path)?,
        (None, Some(text)) => text,
        (None, None) if settings.auth.is_none() => {
            return Err("no upstream password and no --auth: for Entra ID tokens, did you mean --auth entra? For AWS IAM, --auth aws-iam; for GCP Memorystore IAM, --auth gcp-iam. For an access key, give --password-file PATH or set REDAUTH_PASSWORD; for no AUTH at all, --auth none".into())
        }
        (None, None) => {
            return Err("--auth password needs the password: --password-file PATH or REDAUTH_PASSWORD".into())
        }
    };
    if password.is_empty() {
        return Err("the upstream password is empty".into());
    }
    Ok(Auth::Static(Credential::password(
        settings.username.clone(),
        Secret::new(password),
    )))
}

fn entra_auth(settings: &Settings, names: &Names, env: &dyn Environment) -> Result<Auth, String> {
    if settings.password_file.is_some() || env.var(PASSWORD_VAR).is_some() {
        return Err("--auth entra uses tokens: drop --password-file and REDAUTH_PASSWORD".into());
    }
    let kind: EntraKind = settings
        .entra_credential
        .as_deref()
        .unwrap_or("default")
        .parse()?;
    let client_secret = match &settings.entra_client_secret_file {
        Some(path) => Some(Secret::new(read_secret(
            &names.name("entra_client_secret_file"),
            path,
        )?)),
        None => None,
    };
    Ok(Auth::Entra {
        entra: EntraConfig {
            kind,
            client_id: settings.entra_client_id.clone(),
            tenant_id: settings.entra_tenant_id.clone(),
            scope: settings
                .entra_scope
                .clone()
                .unwrap_or_else(|| DEFAULT_SCOPE.into()),
            client_secret,
        },
        username: settings.username.clone(),
    })
}

/// `--auth aws-iam`: every problem at once. The region, when not given, is
/// the AWS SDK's to find at start.
fn aws_auth(
    settings: &Settings,
    names: &Names,
    env: &dyn Environment,
) -> Result<Auth, Vec<String>> {
    let mut problems = Vec::new();
    if settings.password_file.is_some() || env.var(PASSWORD_VAR).is_some() {
        problems.push(
            "--auth aws-iam uses tokens: drop --password-file and REDAUTH_PASSWORD".to_string(),
        );
    }
    let username = settings.username.clone().filter(|u| !u.is_empty());
    if username.is_none() {
        problems.push(format!(
            "--auth aws-iam needs {}: the id of the IAM-enabled ElastiCache or MemoryDB user (ElastiCache wants its id and name to be the same)",
            names.name("username")
        ));
    }
    let cache = settings.aws_cache_name.clone().filter(|c| !c.is_empty());
    if cache.is_none() {
        problems.push(format!(
            "--auth aws-iam needs {}: the replication group id, serverless cache name or MemoryDB cluster name",
            names.name("aws_cache_name")
        ));
    }
    let service = match settings
        .aws_service
        .as_deref()
        .unwrap_or("elasticache")
        .parse()
    {
        Ok(service) => service,
        Err(e) => {
            problems.push(format!("{}: {e}", names.name("aws_service")));
            Service::ElastiCache
        }
    };
    let serverless = settings.aws_serverless.unwrap_or(false);
    if serverless && service == Service::MemoryDb {
        problems.push(format!(
            "{} is for ElastiCache serverless caches; MemoryDB has none",
            names.name("aws_serverless")
        ));
    }
    let region = settings.aws_region.clone();
    if region
        .as_deref()
        .is_some_and(|r| r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        problems.push(format!(
            "{}: {:?} is not a region name like us-east-1",
            names.name("aws_region"),
            region.as_deref().unwrap_or_default()
        ));
    }
    let connection_limit = match settings.aws_connection_limit.as_deref() {
        None => DEFAULT_CONNECTION_LIMIT,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                problems.push(format!(
                    "{}: {text:?} is not a duration like 12h",
                    names.name("aws_connection_limit")
                ));
                DEFAULT_CONNECTION_LIMIT
            }
        },
    };
    match (username, cache) {
        (Some(username), Some(cache)) if problems.is_empty() => Ok(Auth::AwsIam {
            aws: AwsIamConfig {
                cache,
                service,
                serverless,
                region,
                connection_limit,
            },
            username,
        }),
        _ => Err(problems),
    }
}

/// `--reauth`: meaningful only where tokens rotate, and `never` only where
/// the server keeps a connection whose token expired (Memorystore).
fn reauth_problem(settings: &Settings, names: &Names, mode: &str) -> Option<String> {
    let given = settings.reauth.as_deref()?;
    let flag = names.name("reauth");
    let reauth = match given.parse::<Reauth>() {
        Ok(reauth) => reauth,
        Err(e) => return Some(format!("{flag}: {e}")),
    };
    match (mode, reauth) {
        ("gcp-iam", _) | ("entra" | "aws-iam", Reauth::Always) => None,
        ("entra", Reauth::Never) => Some(format!(
            "{flag} never cannot work with --auth entra: Azure closes a connection when its token expires"
        )),
        ("aws-iam", Reauth::Never) => Some(format!(
            "{flag} never cannot work with --auth aws-iam: AWS closes a connection 12 hours after its last AUTH"
        )),
        _ => Some(format!(
            "{flag} is for token sources (entra, aws-iam, gcp-iam); auth is {mode:?}"
        )),
    }
}

/// `--auth gcp-iam`: every problem at once. Where the credentials come from
/// is Application Default Credentials' to find at start.
fn gcp_auth(
    settings: &Settings,
    names: &Names,
    env: &dyn Environment,
) -> Result<Auth, Vec<String>> {
    let mut problems = Vec::new();
    if settings.password_file.is_some() || env.var(PASSWORD_VAR).is_some() {
        problems.push(
            "--auth gcp-iam uses tokens: drop --password-file and REDAUTH_PASSWORD".to_string(),
        );
    }
    let scope = settings
        .gcp_scope
        .clone()
        .unwrap_or_else(|| gcp::DEFAULT_SCOPE.into());
    if scope.is_empty() || scope.contains(char::is_whitespace) {
        problems.push(format!(
            "{}: {scope:?} is not one OAuth2 scope like {}",
            names.name("gcp_scope"),
            gcp::DEFAULT_SCOPE
        ));
    }
    if settings.username.as_deref() == Some("") {
        problems.push(format!(
            "{} is empty: leave it out to send AUTH with the token alone (Memorystore's default user)",
            names.name("username")
        ));
    }
    let reauth = match settings.reauth.as_deref().map(str::parse) {
        Some(Ok(reauth)) => reauth,
        // Reported by reauth_problem.
        Some(Err(_)) | None => Reauth::Never,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Auth::GcpIam {
        gcp: GcpIamConfig { scope, reauth },
        username: settings.username.clone(),
    })
}
