//! `joyride`: run unmodified programs on Joyride, or trace their network calls.
#![deny(unsafe_code)]

mod agent;
mod cli;
mod cred;
mod engine;
mod exec;
mod kernel;
mod record;
mod sys;
mod trace;
mod tree;
mod waits;

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JOYRIDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The supervisor's helper that acts with a program's power (hidden from
    // --help: not a command anyone runs by hand).
    if std::env::args_os().nth(1).is_some_and(|a| a == agent::server::ARG) {
        std::process::exit(agent::server::main());
    }
    let cli = cli::Cli::parse();
    let code = match cli.command {
        cli::Command::Trace(args) => trace::run(args),
        cli::Command::Exec(args) => exec::run(args),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("joyride: {e:#}");
            std::process::exit(125);
        }
    }
}
