//! `--auth` and its companions: which credential upstream connections use,
//! and every combination that cannot work. Secret files are read here; their
//! content never appears in a message.

use super::env::PASSWORD_VAR;
use super::files::read_secret;
use super::names::Names;
use super::settings::Settings;
use super::Auth;
use crate::credentials::entra::{EntraConfig, EntraKind, DEFAULT_SCOPE};
use crate::credentials::{Credential, Secret};
use crate::environment::Environment;

/// How upstream connections authenticate, or what is wrong.
pub(crate) fn resolve_auth(
    settings: &Settings,
    names: &Names,
    env: &dyn Environment,
) -> Result<Auth, String> {
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
    if mode != "entra" {
        if let Some((key, _)) = entra_keys.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{} needs --auth entra (auth is {mode:?})",
                names.name(key)
            ));
        }
    }
    match mode {
        "none" => no_auth(settings, env),
        "password" => password_auth(settings, names, env),
        "entra" => entra_auth(settings, names, env),
        other => Err(format!(
            "{}: {other:?} is not one of password, entra, none",
            names.name("auth")
        )),
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
            return Err("no upstream password and no --auth: for Entra ID tokens, did you mean --auth entra? For an access key, give --password-file PATH or set REDAUTH_PASSWORD; for no AUTH at all, --auth none".into())
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
