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
mod privilege;
mod secret;
mod shard;
mod sockopt;
mod socks;
mod wake;

use std::sync::{Arc, Mutex};

use anyhow::Context;
use joyride_netstack::iface::Interface;
use joyride_netstack::steer::{PortOwners, Steering};
use joyride_notify::{Filter, FilterSpec, Mode, SyncWakeUp};

use crate::cli::ExecArgs;

/// Runs `joyride exec`; returns the exit code.
pub fn run(args: ExecArgs) -> anyhow::Result<i32> {
    let kernel = args
        .kernel
        .iter()
        .map(|c| policy::Cidr::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let loopback_on_stack = args.loopback == crate::cli::Loopback::Stack;
    if loopback_on_stack && args.cores > 1 {
        // A looped packet stays in the stack instance that sent it, and
        // steering may want it in another one.
        anyhow::bail!("--loopback stack serves loopback from one stack instance: use it with --cores 1");
    }
    let policy = policy::Policy::new(kernel, loopback_on_stack);
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
        queues: args.cores,
    };
    let network = net::bring_up(&opts)?;
    tracing::info!("{}", network.describe());
    let (queues, config, guard) = network.into_parts();
    let shared = shard::Shared::new(queues.len()).context("creating the shards' eventfds")?;
    let ports = PortOwners::new(queues.len());
    let sink = args
        .trace
        .then(|| crate::trace::open_sink(&args.trace_out, None))
        .transpose()?
        .map(|s| Arc::new(Mutex::new(s)));
    let mut parts: Vec<engine::Parts> = queues
        .into_iter()
        .enumerate()
        .map(|(index, (nic, doorbell))| {
            let mut config = config.clone();
            let steering =
                (shared.count() > 1).then(|| Steering::new(index, shared.count(), config.seed, ports.clone()));
            // Each shard draws its own random numbers (IP IDs, ports);
            // steering keeps the shared seed.
            config.seed ^= (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            config.steering = steering.clone();
            config.loopback = policy.loopback_on_stack();
            engine::Parts {
                iface: Interface::new(config),
                nic: shard::ShardNic::new(nic, steering, shared.clone()),
                doorbell,
                policy: policy.clone(),
                sink: sink.clone(),
                shared: shared.clone(),
                index,
            }
        })
        .collect();
    let workers_parts = parts.split_off(1);
    let main = parts.pop().context("the port has no queue")?;
    // Nothing the supervisor opened (DPDK's packet socket, its memory)
    // reaches the program.
    crate::sys::cloexec_all_but(&inherited).context("marking the supervisor's fds close-on-exec")?;
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
    let mut workers = Vec::new();
    let mut spawned = Ok(());
    for p in workers_parts {
        let index = p.index;
        let thread = std::thread::Builder::new().name(format!("joyride-shard{index}")).spawn(
            move || -> anyhow::Result<Vec<(&'static str, u64)>> {
                let mut exec = engine::Exec::worker(p)?;
                exec.run()?;
                Ok(exec.stat_rows())
            },
        );
        match thread {
            Ok(t) => workers.push(t),
            Err(e) => {
                spawned = Err(anyhow::Error::new(e).context(format!("starting shard {index}'s thread")));
                break;
            }
        }
    }
    let mut rows = Vec::new();
    let code = spawned.and_then(|()| {
        let mut exec = engine::Exec::new(listener, child, main)?;
        let code = exec.run();
        rows.push(exec.stat_rows());
        code
    });
    // However shard 0 ended, the others finish their connections and stop.
    shared.finish();
    for (k, w) in workers.into_iter().enumerate() {
        match w.join() {
            Ok(Ok(r)) => rows.push(r),
            Ok(Err(e)) => tracing::error!("shard {} failed: {e:#}", k + 1),
            Err(_) => tracing::error!("shard {} panicked", k + 1),
        }
    }
    // The -c summary now: shard threads may still hold the sink.
    if let Some(s) = &sink {
        s.lock().unwrap_or_else(|e| e.into_inner()).finish();
    }
    let code = code?;
    if args.stats {
        eprint!("{}", engine::stats_report(&rows));
    }
    drop(guard);
    Ok(code)
}
