//! `joyride exec`: a program's Internet sockets served by the user-space
//! stack.
//!
//! The supervisor brings up the stack's network ([`net`]), starts the
//! program under a filter that traps `socket(AF_INET/AF_INET6)` and the
//! calls that name or return addresses, and runs one loop ([`engine`]) that
//! drives the NIC, the stack and every trapped call. Each user-space socket
//! is a bridge ([`joyride_fd_bridge`]) whose target end the program holds as
//! an ordinary fd; [`socks`] pumps bytes between bridges and the stack.

mod addr;
mod calls;
mod engine;
mod net;
mod policy;
mod secret;
mod sockopt;
mod socks;
mod wake;

use anyhow::Context;
use joyride_netstack::iface::Interface;
use joyride_notify::{Filter, FilterSpec, Mode, SyncWakeUp};

use crate::cli::ExecArgs;
use crate::record::Sink;

/// Runs `joyride exec`; returns the exit code.
pub fn run(args: ExecArgs) -> anyhow::Result<i32> {
    let kernel = args
        .kernel
        .iter()
        .map(|c| policy::Cidr::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let policy = policy::Policy::new(kernel);
    let filter = Filter::build(&FilterSpec {
        mode: Mode::Exec,
        allow_io_uring: args.allow_io_uring,
    })
    .context("building the seccomp filter")?;
    let inherited = crate::sys::open_fds().context("listing open file descriptors")?;
    let opts = net::NetOpts {
        nic: args.nic.clone(),
        eal: args.eal.clone(),
        ip: args.ip.clone(),
        gateway: args.gateway,
        gateway6: args.gateway6,
        mtu: args.mtu,
    };
    let mut network = net::bring_up(&opts)?;
    tracing::info!("{}", network.describe());
    let doorbell = network.doorbell.take();
    let (nic, config, guard) = network.into_parts();
    let iface = Interface::new(config);
    // Nothing the supervisor opened (DPDK's packet socket, its memory)
    // reaches the program.
    crate::sys::cloexec_all_but(&inherited).context("marking the supervisor's fds close-on-exec")?;
    let sink = args
        .trace
        .then(|| Sink::new(Box::new(std::io::LineWriter::new(std::io::stderr())), false));
    let (child, listener, flags) = joyride_notify::spawn(&args.command, &filter)?;
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        if let Err(e) = crate::sys::ignore_signal(sig) {
            tracing::warn!(sig, error = %e, "cannot ignore a terminal signal");
        }
    }
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        if let Err(e) = crate::sys::forward_signal(sig) {
            tracing::warn!(sig, error = %e, "cannot catch a signal to forward it");
        }
    }
    if !flags.wait_killable {
        tracing::warn!("this kernel lacks SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: signals may restart trapped calls");
    }
    if listener.set_sync_wake_up()? == SyncWakeUp::Unsupported {
        tracing::info!("this kernel lacks SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP");
    }
    let mut exec = engine::Exec::new(listener, child, sink, iface, nic, doorbell, policy)?;
    let code = exec.run()?;
    if args.stats {
        eprint!("{}", exec.stats_report());
    }
    drop(exec);
    drop(guard);
    Ok(code)
}
