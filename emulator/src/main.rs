//! `redauth-emulator`: an emulated cloud — Azure (a managed-identity token
//! endpoint), with `--cloud aws` AWS (a container-credentials endpoint) or,
//! with `--cloud gcp`, GCP (a metadata-server stand-in), each with a
//! token-checking TLS front before a local redis-server — as a
//! process, for the demo and for trying redauth by hand. Never for
//! production; not part of the `redauth` binary.

use clap::Parser;
use redauth_emulator::cli::EmulatorArgs;
use std::process::ExitCode;

/// An emulated Azure, AWS or GCP cloud, for the demo and tests; never for production.
#[derive(Debug, Parser)]
#[command(name = "redauth-emulator", version)]
struct Cli {
    #[command(flatten)]
    args: EmulatorArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redauth-emulator: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(redauth_emulator::cli::run(cli.args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the emulated cloud stopped");
            ExitCode::from(1)
        }
    }
}
