//! The settings as given: every field optional, one struct for all three
//! sources (flags, environment, file) so they merge field by field. [`KEYS`]
//! lists every key with the shape of its value, for reading the environment
//! and checking a TOML file key by key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One layer of settings. Each `///` line here is the reference text for the
/// flag, the `REDAUTH_*` variable and the TOML key of the same name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Local address to listen on (repeatable): 127.0.0.1:6379, [::1]:6379, a
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

    /// How redauth authenticates upstream: password | entra | none [default: password]
    #[arg(long, value_name = "MODE")]
    pub auth: Option<String>,

    /// Redis ACL username. Password mode: without it, AUTH sends the password
    /// alone. Entra mode: overrides the token's oid claim
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

/// Every setting's key and shape, for reading `REDAUTH_<KEY>` variables.
pub(crate) const KEYS: &[(&str, Shape)] = &[
    ("listen", Shape::List),
    ("unix_socket", Shape::Text),
    ("unix_socket_mode", Shape::Text),
    ("upstream", Shape::Text),
    ("allow_plaintext_upstream", Shape::Flag),
    ("allow_remote_clients", Shape::Flag),
    ("client_password_file", Shape::Text),
    ("max_bulk_len", Shape::Number),
    ("ca_file", Shape::Text),
    ("tls_server_name", Shape::Text),
    ("client_cert", Shape::Text),
    ("client_key", Shape::Text),
    ("auth", Shape::Text),
    ("username", Shape::Text),
    ("password_file", Shape::Text),
    ("entra_credential", Shape::Text),
    ("entra_client_id", Shape::Text),
    ("entra_tenant_id", Shape::Text),
    ("entra_scope", Shape::Text),
    ("entra_client_secret_file", Shape::Text),
    ("connect_timeout", Shape::Text),
    ("pool_size", Shape::Number),
    ("threads", Shape::Number),
    ("output_timeout", Shape::Text),
    ("idle_timeout", Shape::Text),
    ("max_connections", Shape::Number),
    ("admin_listen", Shape::Text),
    ("min_shutdown_delay", Shape::Text),
    ("max_shutdown_delay", Shape::Text),
    ("exit_zero_on_sigterm", Shape::Flag),
    ("run_connection_test", Shape::Flag),
    ("log_format", Shape::Text),
    ("log_level", Shape::Text),
];

/// The shape of `key`'s value, if `key` is a setting.
pub(crate) fn shape_of(key: &str) -> Option<Shape> {
    KEYS.iter()
        .find(|(k, _)| *k == key)
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

    /// Fills every field this layer leaves empty from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            unix_socket: self.unix_socket.or(lower.unix_socket),
            unix_socket_mode: self.unix_socket_mode.or(lower.unix_socket_mode),
            upstream: self.upstream.or(lower.upstream),
            allow_plaintext_upstream: self
                .allow_plaintext_upstream
                .or(lower.allow_plaintext_upstream),
            allow_remote_clients: self.allow_remote_clients.or(lower.allow_remote_clients),
            client_password_file: self.client_password_file.or(lower.client_password_file),
            max_bulk_len: self.max_bulk_len.or(lower.max_bulk_len),
            ca_file: self.ca_file.or(lower.ca_file),
            tls_server_name: self.tls_server_name.or(lower.tls_server_name),
            client_cert: self.client_cert.or(lower.client_cert),
            client_key: self.client_key.or(lower.client_key),
            auth: self.auth.or(lower.auth),
            username: self.username.or(lower.username),
            password_file: self.password_file.or(lower.password_file),
            entra_credential: self.entra_credential.or(lower.entra_credential),
            entra_client_id: self.entra_client_id.or(lower.entra_client_id),
            entra_tenant_id: self.entra_tenant_id.or(lower.entra_tenant_id),
            entra_scope: self.entra_scope.or(lower.entra_scope),
            entra_client_secret_file: self
                .entra_client_secret_file
                .or(lower.entra_client_secret_file),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            pool_size: self.pool_size.or(lower.pool_size),
            threads: self.threads.or(lower.threads),
            output_timeout: self.output_timeout.or(lower.output_timeout),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            max_connections: self.max_connections.or(lower.max_connections),
            admin_listen: self.admin_listen.or(lower.admin_listen),
            min_shutdown_delay: self.min_shutdown_delay.or(lower.min_shutdown_delay),
            max_shutdown_delay: self.max_shutdown_delay.or(lower.max_shutdown_delay),
            exit_zero_on_sigterm: self.exit_zero_on_sigterm.or(lower.exit_zero_on_sigterm),
            run_connection_test: self.run_connection_test.or(lower.run_connection_test),
            log_format: self.log_format.or(lower.log_format),
            log_level: self.log_level.or(lower.log_level),
        }
    }
}
