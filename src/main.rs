//! The `redauth` binary: parse configuration, set up logging, serve until a
//! signal, drain, exit.
//!
//! Exit codes: 0 after a clean shutdown, 1 when startup fails (e.g. a port
//! cannot be bound), 2 for configuration errors (all of them are printed).

use anyhow::Context;
use clap::Parser;
use redauth::config::{self, Config, Environment, LogFormat, ProcessEnv, Settings};
use redauth::credentials::Credentials;
use redauth::server::Server;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;

/// A credential-free local endpoint for a managed Redis.
#[derive(Debug, Parser)]
#[command(name = "redauth", version, about)]
struct Cli {
    /// TOML configuration file (keys are the flag names in snake_case)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    settings: Settings,
}

/// How long open sessions get to finish after a shutdown signal.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "redauth stopped");
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

async fn serve(config: Config) -> anyhow::Result<()> {
    let credentials = Credentials::fixed(config.credential.clone());
    let server = Server::bind(&config, credentials)
        .await
        .context("starting the listeners")?;
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: no longer accepting clients");
        let _ = stop.send(true);
    });
    let left = server.run(shutdown, DRAIN_GRACE).await;
    if left > 0 {
        tracing::warn!(
            sessions = left,
            "closing sessions still open after the drain period"
        );
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops redauth");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
