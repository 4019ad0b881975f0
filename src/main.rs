//! The `redauth` binary: parse configuration, set up logging, serve until
//! asked to stop, drain, exit. The drain's phases are described in
//! [`redauth::lifecycle`].
//!
//! Exit statuses:
//! - 0: a clean shutdown: SIGINT, `POST /quitquitquit`, or SIGTERM with
//!   `--exit-zero-on-sigterm`, and every client finished in time;
//! - 1: startup failed (an unusable certificate, the runtime or relay
//!   threads cannot start);
//! - 2: configuration errors (all of them are printed, each naming the flag,
//!   variable or TOML key it came from), including a file that cannot be
//!   read, an address that cannot be bound, a first Entra token that
//!   names no user, and `--auth aws-iam` without an AWS region;
//! - 3: the drain period (`--max-shutdown-delay`) ran out and open
//!   connections were cut;
//! - 143: SIGTERM without `--exit-zero-on-sigterm` (128 + 15, the status a
//!   shell reports for a process SIGTERM ended), every client finished.

use clap::Parser;
use redauth::admin::{AdminServer, Health};
use redauth::config::{self, Auth, Config, Settings};
use redauth::credentials::password_file::{self, Verdict};
use redauth::credentials::refresher::RedisUser;
use redauth::credentials::schedule::RefreshPolicy;
use redauth::credentials::{
    aws, entra, gcp, refresher, Credential, CredentialFeed, FeedState, TokenSource,
};
use redauth::environment::{Environment, ProcessEnv};
use redauth::lifecycle;
use redauth::server::{Server, StartError};
use redauth::session::ClientPassword;
use redauth::upstream::{health, Connector};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A credential-free local endpoint for a managed Redis.
#[derive(Debug, Parser)]
#[command(
    name = "redauth",
    version = redauth::version::LONG,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// TOML configuration file (keys are the flag names in snake_case)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    settings: Settings,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Wait until a running redauth has started (its /startupz answers 200):
    /// exit 0 then, or 1 after --timeout. For an application container that
    /// must not start before its redauth sidecar, or a Job.
    Wait(redauth::admin::wait::WaitArgs),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Wait(args)) => return wait(&args),
        None => {}
    }
    let env = ProcessEnv;
    let config = match load(cli, &env) {
        Ok(config) => config,
        Err(rejected) => {
            eprintln!(
                "redauth: the configuration has {} problem(s):",
                rejected.errors.len()
            );
            for e in rejected.errors {
                eprintln!("  - {e}");
            }
            for warning in rejected.warnings {
                eprintln!("redauth: warning: {warning}");
            }
            return ExitCode::from(lifecycle::EXIT_CONFIG);
        }
    };
    redauth::logging::init(config.log_format, &config.log_level);
    raise_file_limit();
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Sessions run on the relay threads (`--threads`, see `relays`); this
    // runtime only accepts clients and runs the admin endpoints and the token
    // refresher, for which one thread is plenty.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redauth: starting the runtime: {e}");
            return ExitCode::from(lifecycle::EXIT_STARTUP);
        }
    };
    runtime.block_on(serve(config))
}

fn wait(args: &redauth::admin::wait::WaitArgs) -> ExitCode {
    match redauth::admin::wait::wait(args) {
        Ok(took) => {
            let took = Duration::from_millis(took.as_millis() as u64);
            eprintln!(
                "redauth wait: started (after {})",
                humantime::format_duration(took)
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("redauth wait: {why}");
            ExitCode::from(lifecycle::EXIT_STARTUP)
        }
    }
}

/// Every client takes two file descriptors (its own and its upstream
/// connection's): raise the soft limit to the hard one, as servers do, so
/// thousands of clients fit without the operator tuning `ulimit -n`.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            tracing::debug!(
                from = before,
                to = limit.rlim_cur,
                "raised the open-file limit"
            );
        }
    }
}

/// Merges flags over environment over file, and validates.
fn load(cli: Cli, env: &dyn Environment) -> Result<Config, config::Rejected> {
    config::load(cli.settings, cli.config, env)
}

/// Runs until asked to stop, drains, and says with which status to exit
/// (see the module documentation).
async fn serve(config: Config) -> ExitCode {
    // Watch the signals before anything else, so none is lost during startup.
    let signal = redauth::server::shutdown_signal();
    let upstream = match upstream_credentials(&config).await {
        Ok(upstream) => upstream,
        Err(status) => return status,
    };
    let credentials = upstream.credentials.clone();
    let (client_password, client_password_tx) = match &config.client_password {
        Some(password) => {
            let (tx, rx) = watch::channel(Some(Arc::new(password.clone())));
            (ClientPassword::following(rx), Some(tx))
        }
        None => (ClientPassword::none(), None),
    };
    let health = Health::new(credentials.clone());
    let started = async {
        let server = Server::bind(&config, credentials.clone(), client_password).await?;
        let admin = AdminServer::bind(config.admin_listen, health.clone()).await?;
        Ok::<_, StartError>((server, admin))
    };
    let (server, admin) = match started.await {
        Ok(bound) => bound,
        Err(e) => {
            let status = match e {
                StartError::Bind(_) => lifecycle::EXIT_CONFIG,
                _ => lifecycle::EXIT_STARTUP,
            };
            let e = anyhow::Error::from(e).context("starting the listeners");
            tracing::error!(error = format!("{e:#}"), "redauth stopped");
            return ExitCode::from(status);
        }
    };
    let connector = server.connector().clone();
    health.follow_dials(connector.health().clone());
    if let Some(directory) = server.directory() {
        health.follow_cluster(directory);
    }
    if config.run_connection_test {
        // The first token may take a while to fetch; the dial has its own bound.
        let wait = CONNECTION_TEST_WAIT.max(config.connect_timeout);
        match health::connection_test(&connector, &credentials, wait).await {
            Ok(took) => tracing::info!(
                took = %humantime::format_duration(Duration::from_millis(took.as_millis() as u64)),
                "connection test passed: dial, TLS, AUTH and PING"
            ),
            Err(why) => {
                tracing::error!(reason = %why, "connection test failed; exiting");
                return ExitCode::from(lifecycle::EXIT_STARTUP);
            }
        }
    }
    tracing::info!(
        version = %redauth::version::VERSION,
        commit = %redauth::version::COMMIT,
        auth = %upstream.summary,
        upstream = %config.upstream,
        tls_server_name = %config.tls_server_name,
        listen = ?server.local_addrs(),
        unix_socket = ?config.unix_socket,
        admin = %admin.local_addr().map_or("?".into(), |a| a.to_string()),
        threads = config.threads,
        "redauth started"
    );
    tokio::spawn(health::probe(
        connector.clone(),
        credentials.clone(),
        connector.health().clone(),
    ));
    if let (Some(tx), Some(path)) = (upstream.password_tx, config.password_file.clone()) {
        let (notice_tx, notice) = watch::channel(None);
        health.follow_notice(notice);
        let verify = password_verifier(connector.detached());
        tokio::spawn(password_file::follow_upstream(path, tx, verify, notice_tx));
    }
    if let (Some(tx), Some(path)) = (client_password_tx, config.client_password_file.clone()) {
        tokio::spawn(password_file::follow_client(path, tx));
    }
    health.set_listening();
    // systemd's Type=notify: ready when /startupz would say so.
    let (first, ready_health) = (credentials.clone(), health.clone());
    tokio::spawn(async move {
        first.obtained().await;
        // A first token that comes only during the drain: STOPPING=1 was said already.
        if !ready_health.is_draining() {
            redauth::notify::ready();
        }
    });
    // Serves until the runtime ends, through the drain.
    tokio::spawn(admin.run());
    let (stop_accepting, accepting) = watch::channel(false);
    let serving = tokio::spawn(server.run(accepting, config.shutdown.max_delay));
    let stop = lifecycle::wait_for_stop(signal, &health, upstream.refresher).await;
    let cut = lifecycle::drain(&stop, &health, &config.shutdown, stop_accepting, serving).await;
    ExitCode::from(lifecycle::exit_status(&stop, cut, &config.shutdown))
}

/// How long `--run-connection-test` waits for a first credential.
const CONNECTION_TEST_WAIT: Duration = Duration::from_secs(30);

/// The upstream credential channel, and what feeds it.
struct UpstreamCredentials {
    credentials: CredentialFeed,
    /// The token refresher (Entra ID, AWS IAM).
    refresher: Option<tokio::task::JoinHandle<Option<refresher::Fatal>>>,
    /// The channel's sender, for following `--password-file`.
    password_tx: Option<watch::Sender<FeedState>>,
    /// How redauth authenticates, for the startup line (never the secret).
    summary: String,
}

async fn upstream_credentials(config: &Config) -> Result<UpstreamCredentials, ExitCode> {
    Ok(match &config.auth {
        Auth::Static(credential) if config.password_file.is_some() => {
            let (tx, rx) = watch::channel(FeedState::Ready(Arc::new(credential.clone())));
            UpstreamCredentials {
                credentials: CredentialFeed::from_channel(rx),
                refresher: None,
                password_tx: Some(tx),
                summary: static_summary(credential, "from --password-file, followed"),
            }
        }
        Auth::Static(credential) => UpstreamCredentials {
            credentials: CredentialFeed::fixed(credential.clone()),
            refresher: None,
            password_tx: None,
            summary: static_summary(credential, "from REDAUTH_PASSWORD"),
        },
        Auth::Entra { entra, username } => {
            let source = match entra::build(entra, &ProcessEnv) {
                Ok(source) => source,
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the Entra ID credential");
                    return Err(ExitCode::from(lifecycle::EXIT_CONFIG));
                }
            };
            let summary = format!("entra: {}, scope {}", source.kind(), entra.scope);
            let (credentials, task) = refresher::start(
                source,
                RedisUser::named_or(username.clone(), RedisUser::FromToken),
                RefreshPolicy::default(),
            );
            UpstreamCredentials {
                credentials,
                refresher: Some(task),
                password_tx: None,
                summary,
            }
        }
        Auth::AwsIam {
            aws: settings,
            username,
        } => {
            let source = match aws::build(settings, username).await {
                Ok(source) => source,
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the AWS credentials");
                    return Err(ExitCode::from(lifecycle::EXIT_CONFIG));
                }
            };
            let target = source.target();
            let summary = format!(
                "aws-iam: {} {}{} in {}, user {}",
                target.service.name(),
                target.cache,
                if target.serverless {
                    " (serverless)"
                } else {
                    ""
                },
                target.region,
                target.user
            );
            let (credentials, task) = refresher::start(
                Arc::new(source),
                RedisUser::Named(username.clone()),
                RefreshPolicy::default(),
            );
            UpstreamCredentials {
                credentials,
                refresher: Some(task),
                password_tx: None,
                summary,
            }
        }
        Auth::GcpIam {
            gcp: settings,
            username,
        } => {
            let source = match gcp::build(settings, &ProcessEnv) {
                Ok(source) => source,
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the GCP credentials");
                    return Err(ExitCode::from(lifecycle::EXIT_CONFIG));
                }
            };
            let summary = format!(
                "{}, scope {}, user {}, live re-authentication {}",
                source.kind(),
                settings.scope,
                username.as_deref().unwrap_or("default (AUTH <token>)"),
                match settings.reauth {
                    gcp::Reauth::Always => "before each token expires",
                    gcp::Reauth::Never => "off (Memorystore keeps authenticated connections)",
                }
            );
            let (credentials, task) = refresher::start(
                Arc::new(source),
                RedisUser::named_or(username.clone(), RedisUser::Default),
                RefreshPolicy::default(),
            );
            UpstreamCredentials {
                credentials,
                refresher: Some(task),
                password_tx: None,
                summary,
            }
        }
    })
}

/// `--auth password` or `none` in words, naming the user but not the password.
fn static_summary(credential: &Credential, from: &str) -> String {
    match (&credential.secret, &credential.username) {
        (None, _) => "none".into(),
        (Some(_), Some(user)) => format!("password for user {user} ({from})"),
        (Some(_), None) => format!("password ({from})"),
    }
}

/// Tries a changed upstream password on a dial of its own.
fn password_verifier(connector: Connector) -> password_file::Verify {
    Arc::new(move |credential| {
        let connector = connector.clone();
        Box::pin(async move {
            match connector.connect(&credential).await {
                Ok(_) => Verdict::Accepted,
                Err(e) if health::credential_refused(&e) => Verdict::Refused(e.cause),
                Err(e) => Verdict::Unknown(e.to_string()),
            }
        })
    })
}
