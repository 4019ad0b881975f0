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
//!   read, an address that cannot be bound, and a first Entra token that
//!   names no user;
//! - 3: the drain period (`--max-shutdown-delay`) ran out and open
//!   connections were cut;
//! - 143: SIGTERM without `--exit-zero-on-sigterm` (128 + 15, the status a
//!   shell reports for a process SIGTERM ended), every client finished.

use clap::Parser;
use redauth::admin::{AdminServer, Health};
use redauth::config::{self, Auth, Config, Environment, LogFormat, ProcessEnv, Settings};
use redauth::credentials::schedule::RefreshPolicy;
use redauth::credentials::{entra, refresher, Credentials};
use redauth::lifecycle;
use redauth::server::{Server, StartError};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::watch;

/// A credential-free local endpoint for a managed Redis.
#[derive(Debug, Parser)]
#[command(
    name = "redauth",
    version,
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
    /// Run the emulated Azure cloud: a managed-identity token endpoint and a
    /// token-checking TLS front before a local redis-server. For the demo and
    /// tests; never for production.
    EmulateCloud(redauth::emulator::cli::EmulatorArgs),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(Command::EmulateCloud(args)) = cli.command.take() {
        return emulate_cloud(args);
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
    init_logging(&config);
    raise_file_limit();
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Sessions run on the relay threads (`--threads`, see `shards`); this
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

fn emulate_cloud(args: redauth::emulator::cli::EmulatorArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redauth: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(redauth::emulator::cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the emulated cloud stopped");
            ExitCode::from(1)
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

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs until asked to stop, drains, and says with which status to exit
/// (see the module documentation).
async fn serve(config: Config) -> ExitCode {
    // Watch the signals before anything else, so none is lost during startup.
    let signal = redauth::server::shutdown_signal();
    let (credentials, refresher_task) = match &config.auth {
        Auth::Static(credential) => (Credentials::fixed(credential.clone()), None),
        Auth::Entra { entra, username } => {
            let source = match entra::build(entra, &ProcessEnv) {
                Ok(source) => source,
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the Entra ID credential");
                    return ExitCode::from(lifecycle::EXIT_CONFIG);
                }
            };
            tracing::info!(credential = %source.kind(), scope = %entra.scope, "fetching Entra ID tokens");
            let (credentials, task) =
                refresher::start(source, username.clone(), RefreshPolicy::default());
            (credentials, Some(task))
        }
    };
    let health = Health::new(credentials.clone());
    let started = async {
        let server = Server::bind(&config, credentials).await?;
        let admin = AdminServer::bind(config.admin_listen, health.clone()).await?;
        Ok::<_, StartError>((server, admin))
    };
    let (server, admin) = match started.await {
        Ok(bound) => bound,
        Err(e) => {
            let status = match e {
                StartError::Bind { .. } => lifecycle::EXIT_CONFIG,
                _ => lifecycle::EXIT_STARTUP,
            };
            let e = anyhow::Error::from(e).context("starting the listeners");
            tracing::error!(error = format!("{e:#}"), "redauth stopped");
            return ExitCode::from(status);
        }
    };
    health.set_listening();
    // Serves until the runtime ends, through the drain.
    tokio::spawn(admin.run());
    let (stop_accepting, accepting) = watch::channel(false);
    let serving = tokio::spawn(server.run(accepting, config.shutdown.max_delay));
    let stop = lifecycle::wait_for_stop(signal, &health, refresher_task).await;
    let cut = lifecycle::drain(&stop, &health, &config.shutdown, stop_accepting, serving).await;
    ExitCode::from(lifecycle::exit_status(&stop, cut, &config.shutdown))
}
