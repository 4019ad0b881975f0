//! The `redauth` binary: parse configuration, set up logging, serve until a
//! signal, drain, exit.
//!
//! Exit codes: 0 after a clean shutdown, 1 when startup fails (e.g. a port
//! cannot be bound), 2 for configuration errors (all of them are printed),
//! including a first Entra token that names no user.

use clap::Parser;
use redauth::config::{self, Auth, Config, Environment, LogFormat, ProcessEnv, Settings};
use redauth::credentials::schedule::RefreshPolicy;
use redauth::credentials::{entra, refresher, Credentials};
use redauth::server::Server;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
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

/// How long open sessions get to finish after a shutdown signal.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(Command::EmulateCloud(args)) = cli.command.take() {
        return emulate_cloud(args);
    }
    let env = ProcessEnv;
    let config = match load(cli, &env) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!(
                "redauth: the configuration has {} problem(s):",
                errors.len()
            );
            for e in errors {
                eprintln!("  - {e}");
            }
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redauth: starting the runtime: {e}");
            return ExitCode::from(1);
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

/// Merges flags over environment over file, and validates.
fn load(cli: Cli, env: &dyn Environment) -> Result<Config, Vec<config::ConfigError>> {
    let file_path = cli
        .config
        .or_else(|| env.var(config::CONFIG_VAR).map(PathBuf::from));
    let file = match file_path {
        Some(path) => config::load_file(&path).map_err(|e| vec![e])?,
        None => Settings::default(),
    };
    let from_env = config::settings_from_env(env).map_err(|e| vec![config::ConfigError(e)])?;
    config::resolve(cli.settings.or(from_env).or(file), env)
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

/// Runs until a signal (exit 0), a startup failure (1) or a credential
/// problem no retry can fix (2).
async fn serve(config: Config) -> ExitCode {
    let (credentials, fatal) = match &config.auth {
        Auth::Static(credential) => (Credentials::fixed(credential.clone()), None),
        Auth::Entra { entra, username } => {
            let source = match entra::build(entra, &ProcessEnv) {
                Ok(source) => source,
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the Entra ID credential");
                    return ExitCode::from(2);
                }
            };
            tracing::info!(credential = %source.kind(), scope = %entra.scope, "fetching Entra ID tokens");
            let (credentials, task) =
                refresher::start(source, username.clone(), RefreshPolicy::default());
            (credentials, Some(task))
        }
    };
    let server = match Server::bind(&config, credentials).await {
        Ok(server) => server,
        Err(e) => {
            let e = anyhow::Error::from(e).context("starting the listeners");
            tracing::error!(error = format!("{e:#}"), "redauth stopped");
            return ExitCode::from(1);
        }
    };
    let (stop, shutdown) = watch::channel(false);
    // Ends with whether redauth stops for a credential it can never get.
    let stopper = tokio::spawn(async move {
        let fatal = tokio::select! {
            _ = redauth::server::shutdown_signal() => {
                tracing::info!("shutdown requested: no longer accepting clients");
                false
            }
            Some(fatal) = watch_refresher(fatal) => {
                tracing::error!(error = %fatal, "redauth cannot authenticate; stopping");
                true
            }
        };
        let _ = stop.send(true);
        fatal
    });
    let left = server.run(shutdown, DRAIN_GRACE).await;
    if left > 0 {
        tracing::warn!(
            sessions = left,
            "closing sessions still open after the drain period"
        );
    }
    // The server stops only after the stopper said so, so it has finished.
    match stopper.await {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(2),
        Err(_) => ExitCode::from(1),
    }
}

/// Resolves with the refresher's fatal error, if it ever has one.
async fn watch_refresher(
    task: Option<tokio::task::JoinHandle<Option<refresher::Fatal>>>,
) -> Option<refresher::Fatal> {
    let outcome = match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    };
    match outcome {
        Ok(fatal) => fatal,
        Err(e) => Some(refresher::Fatal(format!("the token refresher failed: {e}"))),
    }
}
