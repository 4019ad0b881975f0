//! The settings as given: every field optional, one struct for all three
//! sources (flags, environment, file) so they merge field by field. Each
//! setting is declared once, as a field here: [`keys`] reads every key and
//! the shape of its value from those declarations, for reading the
//! environment and checking a TOML file key by key, and [`Settings::or`]
//! merges two layers without naming a field.
//!
//! (clap's own `env` support is not used for the environment layer: it stops
//! at the first malformed variable and names the flag, where redauth reports
//! every malformed variable at once, by name.)

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One layer of settings. Each `///` line here is the reference text for the
/// flag, the `REDAUTH_*` variable and the TOML key of the same name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Local address to listen on (repeatable): 127.0.0.1:6379, \[::1\]:6379, a
    /// bare port (6379: loopback, 127.0.0.1), or host:port (the host name is
    /// resolved once at startup and every address it has is bound)
    /// [default: 127.0.0.1:6379]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<Vec<String>>,

    /// Also listen on this Unix socket
    #[arg(long, value_name = "PATH")]
    pub unix_socket: Option<PathBuf>,

    /// Accept clients on a non-loopback --listen address (anyone who can
    /// reach it uses redauth's identity: set --client-password-file too)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_remote_clients: Option<bool>,

    /// File holding a password local clients must AUTH with, as with
    /// Redis's requirepass [default: none, any AUTH is answered +OK]
    #[arg(long, value_name = "PATH")]
    pub client_password_file: Option<PathBuf>,

    /// Largest argument a client may send, in bytes, like Redis's
    /// proto-max-bulk-len [default: 536870912]
    #[arg(long, value_name = "BYTES")]
    pub max_bulk_len: Option<u64>,

    /// Permissions of the Unix socket, octal [default: 0660]
    #[arg(long, value_name = "MODE")]
    pub unix_socket_mode: Option<String>,

    /// Upstream Redis URL: rediss://host:port (TLS). No user or password in
    /// it: use --username and --password-file
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// Allow a redis:// (plaintext) upstream
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_plaintext_upstream: Option<bool>,

    /// Extra trusted CA certificates (PEM); system roots are trusted too
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Name to send as SNI and to verify the upstream certificate against
    /// [default: the upstream host]
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// Client certificate chain (PEM) for mutual TLS; needs --client-key
    #[arg(long, value_name = "PEM")]
    pub client_cert: Option<PathBuf>,

    /// Private key (PEM) of --client-cert
    #[arg(long, value_name = "PEM")]
    pub client_key: Option<PathBuf>,

    /// How redauth authenticates upstream: password | entra | aws-iam |
    /// gcp-iam | none [default: password]
    #[arg(long, value_name = "MODE")]
    pub auth: Option<String>,

    /// Redis ACL username. Password mode: without it, AUTH sends the password
    /// alone. Entra mode: overrides the token's oid claim. AWS IAM mode
    /// (required): the IAM-enabled user's id. GCP IAM mode: without it, AUTH
    /// sends the token alone (Memorystore's default user)
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,

    /// File holding the upstream password (or set REDAUTH_PASSWORD)
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Entra ID credential: default | managed-identity | workload-identity |
    /// client-secret | azure-cli | developer-tools [default: default]
    #[arg(long, value_name = "KIND")]
    pub entra_credential: Option<String>,

    /// Client id of a user-assigned managed identity or app registration
    /// [default: AZURE_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub entra_client_id: Option<String>,

    /// Entra tenant id [default: AZURE_TENANT_ID]
    #[arg(long, value_name = "ID")]
    pub entra_tenant_id: Option<String>,

    /// Token scope [default: https://redis.azure.com/.default]
    #[arg(long, value_name = "SCOPE")]
    pub entra_scope: Option<String>,

    /// File holding the client secret for client-secret (or set AZURE_CLIENT_SECRET)
    #[arg(long, value_name = "PATH")]
    pub entra_client_secret_file: Option<PathBuf>,

    /// ElastiCache replication group id or serverless cache name, or MemoryDB
    /// cluster name, that --auth aws-iam signs tokens for
    #[arg(long, value_name = "NAME")]
    pub aws_cache_name: Option<String>,

    /// The AWS service of the cache: elasticache | memorydb [default: elasticache]
    #[arg(long, value_name = "SERVICE")]
    pub aws_service: Option<String>,

    /// The cache is an ElastiCache serverless cache (not with memorydb)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub aws_serverless: Option<bool>,

    /// AWS region of the cache [default: the AWS SDK's: AWS_REGION, the
    /// profile's region, the instance metadata]
    #[arg(long, value_name = "REGION")]
    pub aws_region: Option<String>,

    /// How long the server keeps a connection after its last AUTH: the
    /// service's limit (12 hours), not a tuning knob; shortened only in tests
    /// [default: 12h]
    #[arg(long, value_name = "DURATION")]
    pub aws_connection_limit: Option<String>,

    /// OAuth2 scope of the access tokens --auth gcp-iam asks for
    /// [default: https://www.googleapis.com/auth/cloud-platform]
    #[arg(long, value_name = "SCOPE")]
    pub gcp_scope: Option<String>,

    /// Whether live upstream connections authenticate again with each new
    /// token: always | never. Memorystore keeps an authenticated connection
    /// after its token expires; Azure and AWS close it [default: never for
    /// gcp-iam, always for entra and aws-iam]
    #[arg(long, value_name = "WHEN")]
    pub reauth: Option<String>,

    /// Whether the upstream is an OSS cluster (Azure Managed Redis's OSS
    /// policy, ElastiCache cluster mode): auto asks it after the first
    /// connection; on requires it; off relays to --upstream as one Redis
    /// [default: auto]
    #[arg(long, value_name = "MODE")]
    pub cluster: Option<String>,

    /// Local ports for the cluster's nodes, one each: FIRST (and the 99
    /// after it) or FIRST-LAST [default: the first --listen port + 1, 100 ports]
    #[arg(long, value_name = "PORTS")]
    pub cluster_ports: Option<String>,

    /// Host clients are told to reach node ports on, in rewritten CLUSTER
    /// SLOTS/SHARDS/NODES and -MOVED/-ASK replies [default: the first
    /// --listen address, 127.0.0.1 with only a Unix socket]
    #[arg(long, value_name = "HOST")]
    pub cluster_announce_host: Option<String>,

    /// Name to verify the certificates of cluster nodes announced by IP
    /// only against (nodes announced by name are verified against their
    /// name) [default: --tls-server-name, else the --upstream host]
    #[arg(long, value_name = "NAME")]
    pub cluster_tls_server_name: Option<String>,

    /// How often the cluster topology is read again when nothing asked for
    /// it (a -MOVED, a node that cannot be dialed, an unknown node) [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub cluster_refresh_interval: Option<String>,

    /// Bound on dial + TLS + AUTH for one upstream connection [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,

    /// Most upstream connections kept dialed and authenticated ahead of new
    /// clients (the pool adapts below it); 0 turns the warm pool off [default: 64]
    #[arg(long, value_name = "N")]
    pub pool_size: Option<usize>,

    /// Relay threads: client sessions are spread over this many threads,
    /// each with its own event loop [default: the CPUs available]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Close a client that has read none of its pending replies for this
    /// long (its replies wait in the server meanwhile), or whose replies are
    /// still not all out this long after it ended its input or sent QUIT
    /// [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub output_timeout: Option<String>,
    /// Close a client connection that has sent nothing for this long; 0 never
    /// closes one (like Redis's `timeout 0`) [default: 0]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,

    /// Most clients served at once; one more gets Redis's "max number of
    /// clients reached" error. 0: no limit [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u64>,

    /// Address of the admin HTTP endpoints: /livez, /startupz, /readyz,
    /// /metrics, POST /quitquitquit; a bare port means loopback, a host
    /// name is resolved once at startup [default: 127.0.0.1:9180]
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// On SIGTERM, SIGINT or /quitquitquit, keep accepting clients this long
    /// while /readyz fails [default: 0s]
    #[arg(long, value_name = "DURATION")]
    pub min_shutdown_delay: Option<String>,

    /// Then let open clients finish for at most this long before closing
    /// them [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub max_shutdown_delay: Option<String>,

    /// Exit with status 0 rather than 143 after SIGTERM
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub exit_zero_on_sigterm: Option<bool>,

    /// At startup, dial the upstream once (TLS, AUTH, PING) before serving,
    /// and exit with status 1 and the reason if that fails
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub run_connection_test: Option<bool>,

    /// Log format: text | json [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log level: trace | debug | info | warn | error | off, or tracing filter
    /// directives like redauth=debug,info [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// How a setting's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Text,
    Flag,
    List,
    Number,
}

impl Shape {
    /// What a value of this shape looks like, for error messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Shape::Text => "a string",
            Shape::Flag => "true or false",
            Shape::List => "a list of strings",
            Shape::Number => "a whole number (0 or more)",
        }
    }
}

/// Every setting's key (its field name) and the shape of its value, read
/// from the declarations above: the flag's definition is the one list.
pub(crate) fn keys() -> &'static [(String, Shape)] {
    static KEYS: std::sync::LazyLock<Vec<(String, Shape)>> = std::sync::LazyLock::new(|| {
        use clap::Args;
        Settings::augment_args(clap::Command::new("settings"))
            .get_arguments()
            .map(|arg| {
                let key = arg.get_id().as_str().to_string();
                let shape = shape_of_field(&key);
                (key, shape)
            })
            .collect()
    });
    &KEYS
}

/// The shape of a field's value, found by asking serde which TOML value
/// the field takes.
fn shape_of_field(key: &str) -> Shape {
    let takes = |value: toml::Value| {
        Settings::deserialize(toml::Table::from_iter([(key.to_string(), value)])).is_ok()
    };
    if takes(toml::Value::Boolean(true)) {
        Shape::Flag
    } else if takes(toml::Value::Integer(0)) {
        Shape::Number
    } else if takes(toml::Value::Array(vec![])) {
        Shape::List
    } else {
        Shape::Text
    }
}

/// The shape of `key`'s value, if `key` is a setting.
pub(crate) fn shape_of(key: &str) -> Option<Shape> {
    keys()
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, shape)| *shape)
}

impl Settings {
    /// The keys this layer sets.
    pub fn keys_set(&self) -> BTreeSet<String> {
        // Serialising leaves the unset (None) fields out.
        toml::Table::try_from(self)
            .map(|table| table.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Fills every field this layer leaves empty from `lower`. Fails only
    /// for a path that is not UTF-8 (which TOML, and so the merge, cannot hold).
    pub fn or(self, lower: Settings) -> Result<Settings, String> {
        let table = |settings: &Settings| {
            toml::Table::try_from(settings).map_err(|e| format!("a setting cannot be read: {e}"))
        };
        let mut merged = table(&lower)?;
        merged.extend(table(&self)?);
        Settings::deserialize(merged).map_err(|e| format!("a setting cannot be read: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_a_key_with_the_shape_of_its_value() {
        let keys = keys();
        assert_eq!(shape_of("listen"), Some(Shape::List));
        assert_eq!(shape_of("allow_remote_clients"), Some(Shape::Flag));
        assert_eq!(shape_of("pool_size"), Some(Shape::Number));
        assert_eq!(shape_of("max_connections"), Some(Shape::Number));
        assert_eq!(shape_of("upstream"), Some(Shape::Text));
        assert_eq!(shape_of("ca_file"), Some(Shape::Text));
        assert_eq!(shape_of("password"), None);
        // Every field, and only fields: the serialised full layer has the same keys.
        let full: Settings = toml::from_str(
            &keys
                .iter()
                .map(|(key, shape)| match shape {
                    Shape::Flag => format!("{key} = true\n"),
                    Shape::Number => format!("{key} = 1\n"),
                    Shape::List => format!("{key} = [\"x\"]\n"),
                    Shape::Text => format!("{key} = \"x\"\n"),
                })
                .collect::<String>(),
        )
        .expect("every key with a value of its shape parses");
        assert_eq!(full.keys_set().len(), keys.len());
        assert_eq!(
            keys.len(),
            45,
            "a setting was added or lost: update this count"
        );
    }

    #[test]
    fn a_layer_fills_only_what_the_one_above_left_empty() {
        let flags = Settings {
            upstream: Some("rediss://flag:1".into()),
            ..Settings::default()
        };
        let env = Settings {
            upstream: Some("rediss://env:1".into()),
            pool_size: Some(3),
            listen: Some(vec!["1".into(), "2".into()]),
            ..Settings::default()
        };
        let merged = flags.or(env).expect("merges");
        assert_eq!(merged.upstream.as_deref(), Some("rediss://flag:1"));
        assert_eq!(merged.pool_size, Some(3));
        assert_eq!(merged.listen, Some(vec!["1".to_string(), "2".to_string()]));
        assert_eq!(merged.auth, None);
    }

    #[test]
    fn a_path_that_is_not_utf8_is_reported_not_dropped() {
        use std::os::unix::ffi::OsStrExt;
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff"));
        let flags = Settings {
            ca_file: Some(odd),
            ..Settings::default()
        };
        assert!(flags.or(Settings::default()).is_err());
    }
}
