//! `joyride trace`: run a program with its network calls trapped, serve them
//! on the kernel's stack, and print each one.
//!
//! Here the command line becomes a filter (which calls are trapped) and a
//! [`Sink`] (how they are printed); strace's expressions (`-e trace=`,
//! `-e status=`) are parsed here too.

use std::fs::File;
use std::io::{BufWriter, LineWriter};

use anyhow::{bail, Context};
use joyride_notify::{Filter, FilterSpec, Mode, NetCall, SyncWakeUp};

use crate::cli::{TraceArgs, TraceOutput};
use crate::engine::Engine;
use crate::record::{Show, Sink, SortBy, Stamp, Status, CAPTURED};

/// What the `-e` expressions asked for; `None` where they did not say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expr {
    /// `trace=`: the calls to trap (`Some(None)` for all of them).
    pub calls: Option<Option<Vec<NetCall>>>,
    /// `status=`: the outcomes to print.
    pub status: Option<Status>,
}

/// Parses the `-e` expressions in order: `connect,sendto`, `trace=SET`,
/// `status=SET`; a later one of a kind replaces an earlier one, as in strace.
pub fn parse_exprs(exprs: &[String]) -> anyhow::Result<Expr> {
    let mut e = Expr::default();
    for expr in exprs {
        let (qualifier, set) = match expr.split_once('=') {
            Some((q, set)) => (q, set),
            None => ("trace", expr.as_str()),
        };
        match qualifier {
            "trace" | "t" => e.calls = Some(parse_trace(set)?),
            "status" => e.status = Some(parse_status(set)?),
            _ => bail!("-e {qualifier}=: not supported (joyride trace takes -e trace=SET and -e status=SET)"),
        }
    }
    Ok(e)
}

/// Parses a `trace=` set: `connect,sendto`, `%network`, `all`, `!SET`
/// (every other network call), `?NAME` (skipped if not a network call).
pub fn parse_trace(set: &str) -> anyhow::Result<Option<Vec<NetCall>>> {
    let (negated, list) = match set.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, set),
    };
    let mut calls = Vec::new();
    let mut everything = false;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let (optional, name) = match name.strip_prefix('?') {
            Some(n) => (true, n),
            None => (false, name),
        };
        match name {
            "%network" | "%net" | "all" => everything = true,
            _ => match NetCall::from_name(name) {
                Some(c) => calls.push(c),
                None if optional => {}
                None => bail!(
                    "-e: `{name}` is not a network system call Joyride traces (known: {}, %network, all)",
                    NetCall::ALL.map(|c| c.name()).join(",")
                ),
            },
        }
    }
    if everything {
        calls = NetCall::ALL.to_vec();
    }
    if negated {
        calls = NetCall::ALL.into_iter().filter(|c| !calls.contains(c)).collect();
    }
    if calls.is_empty() {
        bail!("-e: no system calls to trace in `{set}`");
    }
    calls.sort();
    calls.dedup();
    if calls.len() == NetCall::ALL.len() {
        return Ok(None);
    }
    Ok(Some(calls))
}

/// Parses a `status=` set: `successful`, `failed`, `unavailable`,
/// `unfinished`, `detached`, `all`, `none`, `!SET`.
pub fn parse_status(set: &str) -> anyhow::Result<Status> {
    let (negated, list) = match set.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, set),
    };
    let mut s = Status::NONE;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "successful" => s.successful = true,
            "failed" => s.failed = true,
            "unavailable" => s.unavailable = true,
            // Joyride prints only calls that returned: these never show.
            "unfinished" | "detached" | "none" => {}
            "all" => s = Status::ALL,
            _ => bail!(
                "-e status=: `{name}` is not a status (successful, failed, unavailable, unfinished, detached, all, none)"
            ),
        }
    }
    Ok(if negated { s.complement() } else { s })
}

/// How `out` and the status set `status` (from `-e status=`) print calls.
pub fn show(out: &TraceOutput, status: Option<Status>) -> anyhow::Result<Show> {
    let flag_status = if out.successful_only {
        Some(Status {
            successful: true,
            ..Status::NONE
        })
    } else if out.failed_only {
        Some(Status {
            failed: true,
            ..Status::NONE
        })
    } else {
        None
    };
    if flag_status.is_some() && status.is_some() {
        bail!("-z/-Z and -e status= say the same thing: give one");
    }
    let stamp = match out.timestamps {
        0 => Stamp::None,
        1 => Stamp::Seconds,
        2 => Stamp::Micros,
        _ => Stamp::Epoch,
    };
    let strsize = out.strsize.unwrap_or(CAPTURED);
    if strsize > CAPTURED {
        tracing::warn!("-s {strsize}: Joyride captures {CAPTURED} bytes of data per string; longer ones are cut there");
    }
    let summary = (out.summary_only || out.summary_too).then(|| out.sort_by.unwrap_or(SortBy::Time));
    if out.sort_by.is_some() && summary.is_none() {
        bail!("-S sorts the -c table: give -c or -C with it");
    }
    Ok(Show {
        json: out.json,
        lines: !out.summary_only,
        summary,
        status: flag_status.or(status).unwrap_or(Status::ALL),
        stamp,
        relative: out.relative,
        strsize,
        decode_fds: out.decode_fds > 0,
        utc_offset: if matches!(stamp, Stamp::Seconds | Stamp::Micros) {
            crate::sys::utc_offset_now()
        } else {
            0
        },
    })
}

/// A sink printing as `out` and `status` say, to `-o FILE` or standard error.
pub fn open_sink(out: &TraceOutput, status: Option<Status>) -> anyhow::Result<Sink> {
    let show = show(out, status)?;
    let w: Box<dyn std::io::Write + Send> = match &out.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(LineWriter::new(std::io::stderr())),
    };
    Ok(Sink::with(w, show))
}

/// Runs `joyride trace`; returns the exit code.
pub fn run(args: TraceArgs) -> anyhow::Result<i32> {
    if args.follow > 1 {
        bail!("-ff (one output file per process) is not supported; -f is always on");
    }
    let expr = parse_exprs(&args.expr)?;
    let filter = Filter::build(&FilterSpec {
        mode: Mode::Trace {
            calls: expr.calls.flatten(),
        },
        allow_io_uring: args.allow_io_uring,
    })
    .context("building the seccomp filter")?;
    let sink = open_sink(&args.out, expr.status)?;
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
    // The engine owns the sink; dropping it at the end prints the -c table.
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

    fn exprs(v: &[&str]) -> anyhow::Result<Expr> {
        parse_exprs(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn trace_sets() {
        assert_eq!(parse_trace("%network").unwrap(), None);
        assert_eq!(parse_trace("all").unwrap(), None);
        assert_eq!(
            parse_trace("connect,socket").unwrap(),
            Some(vec![NetCall::Socket, NetCall::Connect])
        );
        let not_connect = parse_trace("!connect").unwrap().unwrap();
        assert_eq!(not_connect.len(), NetCall::ALL.len() - 1);
        assert!(!not_connect.contains(&NetCall::Connect));
        assert_eq!(parse_trace("?open,connect").unwrap(), Some(vec![NetCall::Connect]));
        assert!(parse_trace("open").is_err());
        assert!(parse_trace("").is_err());
        assert!(parse_trace("!all").is_err());
        assert!(parse_trace("?open").is_err());
    }

    #[test]
    fn expressions() {
        assert_eq!(exprs(&[]).unwrap(), Expr::default());
        let e = exprs(&["trace=connect", "status=failed"]).unwrap();
        assert_eq!(e.calls, Some(Some(vec![NetCall::Connect])));
        assert_eq!(
            e.status,
            Some(Status {
                failed: true,
                ..Status::NONE
            })
        );
        // The last of a kind wins, as in strace.
        let e = exprs(&["connect", "t=socket", "status=failed", "status=successful"]).unwrap();
        assert_eq!(e.calls, Some(Some(vec![NetCall::Socket])));
        assert_eq!(
            e.status,
            Some(Status {
                successful: true,
                ..Status::NONE
            })
        );
        assert_eq!(exprs(&["trace=%network"]).unwrap().calls, Some(None));
        let err = exprs(&["abbrev=none"]).unwrap_err().to_string();
        assert!(err.contains("not supported") && err.contains("status="), "{err}");
    }

    #[test]
    fn status_sets() {
        assert_eq!(parse_status("all").unwrap(), Status::ALL);
        assert_eq!(parse_status("none").unwrap(), Status::NONE);
        assert_eq!(
            parse_status("!failed").unwrap(),
            Status {
                failed: false,
                ..Status::ALL
            }
        );
        assert_eq!(
            parse_status("successful,unfinished").unwrap(),
            Status {
                successful: true,
                ..Status::NONE
            }
        );
        assert!(parse_status("bogus").is_err());
    }
}
