//! `joyride trace`: run a program with its network calls trapped, serve them
//! on the kernel's stack, and print each one.

use std::fs::File;
use std::io::{BufWriter, LineWriter};

use anyhow::{bail, Context};
use joyride_notify::{Filter, FilterSpec, Mode, NetCall, SyncWakeUp};

use crate::cli::TraceArgs;
use crate::engine::Engine;
use crate::record::Sink;

/// Parses `-e`: `connect,sendto`, `trace=connect`, `%network`, `all`.
pub fn parse_expr(expr: &str) -> anyhow::Result<Option<Vec<NetCall>>> {
    let list = expr.strip_prefix("trace=").unwrap_or(expr);
    let mut calls = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "%network" | "%net" | "all" => return Ok(None),
            _ => match NetCall::from_name(name) {
                Some(c) => calls.push(c),
                None => bail!(
                    "-e: `{name}` is not a network system call Joyride traces (known: {})",
                    NetCall::ALL.map(|c| c.name()).join(",")
                ),
            },
        }
    }
    if calls.is_empty() {
        bail!("-e: no system calls named");
    }
    calls.sort();
    calls.dedup();
    Ok(Some(calls))
}

/// Runs `joyride trace`; returns the exit code.
pub fn run(args: TraceArgs) -> anyhow::Result<i32> {
    let calls = match &args.expr {
        Some(e) => parse_expr(e)?,
        None => None,
    };
    let filter = Filter::build(&FilterSpec {
        mode: Mode::Trace { calls },
        allow_io_uring: args.allow_io_uring,
    })
    .context("building the seccomp filter")?;
    let out: Box<dyn std::io::Write + Send> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(LineWriter::new(std::io::stderr())),
    };
    let sink = Sink::new(out, args.json);
    let (child, listener, flags) = joyride_notify::spawn(&args.command, &filter)?;
    // The program gets the terminal's signals itself; we outlive it.
    ignore_terminal_signals();
    if !flags.wait_killable {
        tracing::warn!("this kernel lacks SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: signals may restart trapped calls");
    }
    if !args.no_sync_wake_up && listener.set_sync_wake_up()? == SyncWakeUp::Unsupported {
        tracing::info!("this kernel lacks SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP");
    }
    tracing::debug!(pid = child.pid, instructions = filter.len(), "tracing");
    let engine = Engine::new(listener, child, sink)?;
    let (code, stats) = engine.run()?;
    tracing::debug!(?stats, "done");
    Ok(code)
}

fn ignore_terminal_signals() {
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        if let Err(e) = crate::sys::ignore_signal(sig) {
            tracing::warn!(sig, error = %e, "cannot ignore a terminal signal");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        assert_eq!(parse_expr("%network").unwrap(), None);
        assert_eq!(parse_expr("trace=all").unwrap(), None);
        assert_eq!(
            parse_expr("trace=connect,socket").unwrap(),
            Some(vec![NetCall::Socket, NetCall::Connect])
        );
        assert!(parse_expr("open").is_err());
        assert!(parse_expr("").is_err());
    }
}
