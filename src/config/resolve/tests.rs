//! Tests of [`super`]: merged settings to a `Config`, and every refusal.
use super::*;
use crate::config::env::{settings_from_env, PASSWORD_VAR};
use crate::config::settings;
use crate::credentials::aws_token::Service;
use crate::credentials::entra::EntraKind;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn upstream(url: &str) -> Settings {
    Settings {
        upstream: Some(url.into()),
        ..Settings::default()
    }
}

#[test]
fn defaults_with_a_password_from_the_environment() {
    let c = resolve(
        upstream("rediss://cache:10000"),
        &env(&[(PASSWORD_VAR, "pw")]),
    )
    .unwrap();
    assert_eq!(
        c.listen,
        vec!["127.0.0.1:6379".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.unix_socket_mode, 0o660);
    assert_eq!(c.tls_server_name, "cache");
    assert_eq!(c.connect_timeout, Duration::from_secs(10));
    assert_eq!(c.idle_timeout, None);
    assert_eq!(c.max_connections, Some(10_000));
    assert_eq!(c.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
    assert_eq!(c.shutdown, ShutdownPolicy::default());
    assert_eq!(c.shutdown.max_delay, Duration::from_secs(10));
    let Auth::Static(credential) = c.auth else {
        panic!("password mode")
    };
    assert_eq!(credential.secret.unwrap().expose(), "pw");
}

#[test]
fn reports_every_problem_at_once() {
    let s = Settings {
        listen: Some(vec!["nowhere".into()]),
        upstream: Some("redis://cache:6379".into()),
        client_cert: Some("c.pem".into()),
        connect_timeout: Some("soon".into()),
        idle_timeout: Some("a while".into()),
        admin_listen: Some("port 9180".into()),
        max_shutdown_delay: Some("-1s".into()),
        log_format: Some("xml".into()),
        ..Settings::default()
    };
    let errors = resolve(s, &env(&[])).unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for needle in [
        "--listen: \"nowhere\" has no port",
        "plaintext",
        "--client-cert c.pem: no such file",
        "--client-key",
        "--connect-timeout",
        "--idle-timeout",
        "--admin-listen",
        "--max-shutdown-delay",
        "--log-format",
        "did you mean --auth entra?",
    ] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "{needle} missing from {text:?}"
        );
    }
}

#[test]
fn messages_name_the_source_and_hide_url_passwords() {
    let flags = Settings {
        log_level: Some("verbose".into()),
        ..Settings::default()
    };
    let from_env = Settings {
        upstream: Some("rediss://me:hunter2@cache:6380".into()),
        ..Settings::default()
    };
    let file = Settings {
        pool_size: Some(1),
        threads: Some(0),
        ..Settings::default()
    };
    let names = Names::new(&flags, &from_env, Some((Path::new("/r.toml"), &file)));
    let merged = flags.or(from_env).unwrap().or(file).unwrap();
    let errors = resolve_named(merged, &names, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("--log-level: \"verbose\" is not a log level")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t
            .starts_with("REDAUTH_UPSTREAM: \"rediss://me:***@cache:6380\": a user or password")),
        "{text:?}"
    );
    assert!(
        text.contains(&"threads in /r.toml: must be at least 1".to_string()),
        "{text:?}"
    );
    assert!(!text.iter().any(|t| t.contains("hunter2")), "{text:?}");
}

#[test]
fn listen_takes_a_bare_port_as_loopback() {
    let mut s = upstream("rediss://cache:10000");
    s.auth = Some("none".into());
    s.listen = Some(vec!["6380".into()]);
    s.admin_listen = Some("9181".into());
    let c = resolve(s, &env(&[])).unwrap();
    assert_eq!(
        c.listen,
        vec!["127.0.0.1:6380".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        c.admin_listen,
        "127.0.0.1:9181".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn lifecycle_settings() {
    let mut s = upstream("rediss://cache:10000");
    s.auth = Some("none".into());
    s.idle_timeout = Some("5m".into());
    s.max_connections = Some(0);
    s.min_shutdown_delay = Some("3s".into());
    s.max_shutdown_delay = Some("0".into());
    s.exit_zero_on_sigterm = Some(true);
    s.admin_listen = Some("0.0.0.0:9000".into());
    let c = resolve(s.clone(), &env(&[])).unwrap();
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(c.max_connections, None);
    assert_eq!(
        c.shutdown,
        ShutdownPolicy {
            min_delay: Duration::from_secs(3),
            max_delay: Duration::ZERO,
            exit_zero_on_sigterm: true,
        }
    );
    assert_eq!(c.admin_listen.port(), 9000);
    s.idle_timeout = Some("0s".into());
    s.max_connections = Some(2);
    let c = resolve(s, &env(&[])).unwrap();
    assert_eq!(c.idle_timeout, None);
    assert_eq!(c.max_connections, Some(2));
}

#[test]
fn threads_default_to_the_cpus_and_zero_is_refused() {
    let s = upstream("rediss://x:1");
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        resolve(s.clone(), &env(&[(PASSWORD_VAR, "pw")]))
            .unwrap()
            .threads,
        cpus
    );
    let mut three = s.clone();
    three.threads = Some(3);
    assert_eq!(
        resolve(three, &env(&[(PASSWORD_VAR, "pw")]))
            .unwrap()
            .threads,
        3
    );
    let mut zero = s;
    zero.threads = Some(0);
    let errors = resolve(zero, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("threads: must be at least 1")),
        "{errors:?}"
    );
}

#[test]
fn plaintext_needs_the_explicit_switch() {
    let mut s = upstream("redis://127.0.0.1:6379");
    s.auth = Some("none".into());
    assert!(resolve(s.clone(), &env(&[])).is_err());
    s.allow_plaintext_upstream = Some(true);
    assert!(!resolve(s, &env(&[])).unwrap().upstream.tls);
}

#[test]
fn password_file_loses_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, "s3cret\n").unwrap();
    let mut s = upstream("rediss://x:1");
    s.password_file = Some(path);
    let c = resolve(s, &env(&[])).unwrap();
    let Auth::Static(credential) = c.auth else {
        panic!("password mode")
    };
    assert_eq!(credential.secret.unwrap().expose(), "s3cret");
}

#[test]
fn entra_mode_defaults_and_refusals() {
    let mut s = upstream("rediss://cache:10000");
    s.auth = Some("entra".into());
    let c = resolve(s.clone(), &env(&[])).unwrap();
    let Auth::Entra { entra, username } = c.auth else {
        panic!("entra mode")
    };
    assert_eq!(entra.kind, EntraKind::Default);
    assert_eq!(entra.scope, "https://redis.azure.com/.default");
    assert!(username.is_none());

    let errors = resolve(s.clone(), &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
    assert!(errors[0].0.contains("uses tokens"), "{errors:?}");

    s.entra_credential = Some("msi".into());
    let errors = resolve(s.clone(), &env(&[])).unwrap_err();
    assert!(errors[0].0.contains("managed-identity"), "{errors:?}");

    s.auth = Some("password".into());
    s.entra_credential = Some("managed-identity".into());
    let errors = resolve(s, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
    assert!(
        errors[0]
            .0
            .contains("--entra-credential needs --auth entra"),
        "{errors:?}"
    );
}

#[test]
fn aws_iam_mode_defaults() {
    let mut s = upstream("rediss://my-cache.abc123.use1.cache.amazonaws.com:6379");
    s.auth = Some("aws-iam".into());
    s.username = Some("app-user".into());
    s.aws_cache_name = Some("my-cache".into());
    let c = resolve(s.clone(), &env(&[])).unwrap();
    let Auth::AwsIam { aws, username } = c.auth else {
        panic!("aws-iam mode")
    };
    assert_eq!(username, "app-user");
    assert_eq!(aws.cache, "my-cache");
    assert_eq!(aws.service, Service::ElastiCache);
    assert!(!aws.serverless);
    assert_eq!(aws.region, None, "left to the AWS SDK");
    assert_eq!(aws.connection_limit, Duration::from_secs(12 * 3600));
    assert_eq!(c.password_file, None);

    s.aws_service = Some("memorydb".into());
    s.aws_region = Some("eu-west-1".into());
    s.aws_connection_limit = Some("30s".into());
    let Auth::AwsIam { aws, .. } = resolve(s, &env(&[])).unwrap().auth else {
        panic!("aws-iam mode")
    };
    assert_eq!(aws.service, Service::MemoryDb);
    assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(aws.connection_limit, Duration::from_secs(30));
}

#[test]
fn aws_iam_mode_reports_every_problem() {
    let mut s = upstream("rediss://cache:6379");
    s.auth = Some("aws-iam".into());
    s.aws_service = Some("redis".into());
    s.aws_connection_limit = Some("forever".into());
    s.aws_region = Some("eu west".into());
    let errors = resolve(s.clone(), &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for needle in [
        "uses tokens",
        "needs --username",
        "needs --aws-cache-name",
        "--aws-service: \"redis\" is neither elasticache nor memorydb",
        "--aws-connection-limit: \"forever\"",
        "--aws-region: \"eu west\"",
    ] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "{needle} missing from {text:?}"
        );
    }

    let mut s = upstream("rediss://cache:6379");
    s.auth = Some("aws-iam".into());
    s.username = Some("u".into());
    s.aws_cache_name = Some("c".into());
    s.aws_service = Some("memorydb".into());
    s.aws_serverless = Some(true);
    let errors = resolve(s, &env(&[])).unwrap_err();
    assert!(
        errors[0]
            .0
            .contains("--aws-serverless is for ElastiCache serverless"),
        "{errors:?}"
    );
}

#[test]
fn aws_settings_need_aws_iam_mode() {
    let mut s = upstream("rediss://cache:10000");
    s.auth = Some("entra".into());
    s.aws_cache_name = Some("c".into());
    s.aws_serverless = Some(true);
    let errors = resolve(s, &env(&[])).unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        text.contains(&"--aws-cache-name needs --auth aws-iam (auth is \"entra\")".to_string()),
        "{text:?}"
    );
    assert!(
        text.contains(&"--aws-serverless needs --auth aws-iam (auth is \"entra\")".to_string()),
        "{text:?}"
    );

    let mut s = upstream("rediss://cache:10000");
    s.auth = Some("aws-iam".into());
    s.username = Some("u".into());
    s.aws_cache_name = Some("c".into());
    s.entra_scope = Some("x".into());
    let errors = resolve(s, &env(&[])).unwrap_err();
    assert!(
        errors[0].0.contains("--entra-scope needs --auth entra"),
        "{errors:?}"
    );
}

#[test]
fn layers_merge_field_by_field() {
    let file: Settings = toml::from_str(
        "upstream = \"rediss://file:1\"\nusername = \"from-file\"\nlisten = [\"127.0.0.1:1\"]",
    )
    .unwrap();
    let (from_env, _) = settings_from_env(&env(&[("REDAUTH_UPSTREAM", "rediss://env:2")]));
    let flags = Settings {
        listen: Some(vec!["127.0.0.1:3".into()]),
        ..Settings::default()
    };
    let merged = flags.or(from_env).unwrap().or(file).unwrap();
    assert_eq!(merged.upstream.as_deref(), Some("rediss://env:2"));
    assert_eq!(merged.username.as_deref(), Some("from-file"));
    assert_eq!(merged.listen.unwrap(), vec!["127.0.0.1:3"]);
}

#[test]
fn the_example_config_shows_every_setting_and_parses() {
    let text = include_str!("../../../config/redauth.example.toml");
    let mut keys = std::collections::HashSet::new();
    let uncommented: String = text
        .lines()
        .filter_map(|line| {
            let body = line.strip_prefix('#')?;
            let (key, _) = body.split_once(" = ")?;
            let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            (is_key && keys.insert(key.to_string())).then(|| format!("{body}\n"))
        })
        .collect();
    let parsed: Settings = toml::from_str(&uncommented).expect("the example parses");
    for (key, _) in settings::keys() {
        assert!(
            keys.contains(key),
            "config/redauth.example.toml lacks {key}"
        );
    }
    assert!(parsed.upstream.is_some());
}

#[test]
fn unknown_file_keys_are_errors() {
    assert!(toml::from_str::<Settings>("upstrem = \"x\"").is_err());
}

#[test]
fn gcp_iam_mode_defaults_to_the_default_user_cloud_platform_and_no_live_reauth() {
    use crate::credentials::gcp::{Reauth, DEFAULT_SCOPE};
    let mut s = upstream("rediss://10.0.0.3:6379");
    s.auth = Some("gcp-iam".into());
    let c = resolve(s.clone(), &env(&[])).unwrap();
    let Auth::GcpIam { gcp, username } = c.auth else {
        panic!("gcp-iam mode")
    };
    assert_eq!(username, None, "AUTH <token>");
    assert_eq!(gcp.scope, DEFAULT_SCOPE);
    assert_eq!(gcp.reauth, Reauth::Never);
    assert_eq!(c.password_file, None);

    s.username = Some("default".into());
    s.reauth = Some("always".into());
    s.gcp_scope = Some("https://www.googleapis.com/auth/userinfo.email".into());
    let Auth::GcpIam { gcp, username } = resolve(s, &env(&[])).unwrap().auth else {
        panic!("gcp-iam mode")
    };
    assert_eq!(username.as_deref(), Some("default"));
    assert_eq!(gcp.reauth, Reauth::Always);
    assert!(gcp.scope.ends_with("userinfo.email"));
}

#[test]
fn gcp_iam_mode_and_reauth_report_every_problem() {
    let mut s = upstream("rediss://cache:6379");
    s.auth = Some("gcp-iam".into());
    s.gcp_scope = Some("a b".into());
    s.username = Some(String::new());
    let errors = resolve(s, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for needle in ["uses tokens", "--gcp-scope: \"a b\"", "--username is empty"] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "{needle} missing from {text:?}"
        );
    }

    let mut s = upstream("rediss://cache:6379");
    s.auth = Some("gcp-iam".into());
    s.reauth = Some("sometimes".into());
    let errors = resolve(s, &env(&[])).unwrap_err();
    assert!(
        errors[0].0.contains("--reauth: \"sometimes\""),
        "{errors:?}"
    );

    let mut s = upstream("rediss://cache:10000");
    s.auth = Some("entra".into());
    s.reauth = Some("never".into());
    s.gcp_scope = Some("x".into());
    let text: Vec<String> = resolve(s, &env(&[]))
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        text.contains(&"--gcp-scope needs --auth gcp-iam (auth is \"entra\")".to_string()),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("--reauth never cannot work with --auth entra")),
        "{text:?}"
    );

    let mut s = upstream("rediss://cache:10000");
    s.reauth = Some("always".into());
    let errors = resolve(s, &env(&[(PASSWORD_VAR, "pw")])).unwrap_err();
    assert!(errors[0].0.contains("is for token sources"), "{errors:?}");
}
