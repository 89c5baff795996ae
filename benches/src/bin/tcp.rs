//! `joyride-bench-tcp`: bulk TCP goodput of Joyride's stack against the
//! kernel's, over the same `joyride-impair` link
//! ([`joyride_dpdk::testbed::ImpairedLink`]).
//!
//! For each impairment (none; 2% loss + 25% reordering; 1% duplication +
//! 0.1% corruption; 50 ms each way at 1 Gbit/s) and each direction it runs
//! one transfer of `--mb` megabytes (SHA-256 checked on both ends):
//!
//! - kernel: Linux to Linux, python3 `sendall`/`recv_into` in two
//!   namespaces, one where the stack would be;
//! - Joyride: Joyride to the kernel and the kernel to Joyride, the stack
//!   as the client, on DPDK `net_af_packet`.
//!
//! and prints goodput (bytes over the receiver's time from connection to
//! end of file), the Joyride/kernel ratio, and the sender's retransmitted
//! segments per segment the forwarder lost or corrupted in the data's
//! direction (1.0 is ideal: each loss repaired once; SACK makes it
//! possible).
//!
//! Needs root, `ethtool`, `python3` and `joyride-impair` next to this binary:
//! `cargo build --release -p joyride-tests -p joyride-benches --bins &&
//! target/release/joyride-bench-tcp`.

#![deny(unsafe_code)]

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use joyride_dpdk::testbed::{
    stack_config, transfer, ImpairCounts, ImpairedLink, Impairment, KernelPeer, Role, StackThread, TransferSpec,
    KERNEL_V4, STACK_V4,
};
use joyride_netstack::iface::Interface;
use joyride_netstack::nic::Nic;

/// Bulk TCP goodput, Joyride against the kernel, under impairments.
#[derive(Debug, Parser)]
#[command(name = "joyride-bench-tcp")]
struct Args {
    /// Megabytes per transfer.
    #[arg(long, default_value_t = 200)]
    mb: u64,
    /// Only the impairments whose name contains this (e.g. `loss`).
    #[arg(long)]
    only: Option<String>,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    impairment: &'static str,
    direction: &'static str,
    kernel_bps: f64,
    joyride_bps: f64,
    /// Kernel sender: retransmitted segments per lost segment.
    kernel_rexmit: Option<f64>,
    /// Joyride sender: the same (Joyride->kernel only).
    joyride_rexmit: Option<f64>,
}

/// Frames lost or corrupted in direction `dir` (0: kernel side to the far
/// end, 1: back).
fn lost(counts: &Option<[ImpairCounts; 2]>, dir: usize) -> u64 {
    counts.map_or(0, |c| {
        c[dir].lost + c[dir].corrupted + c[dir].queue_drops + c[dir].kernel_drops
    })
}

fn per_loss(retrans: u64, lost: u64) -> Option<f64> {
    (lost > 0).then(|| retrans as f64 / lost as f64)
}

/// Linux to Linux over `imp`: (bytes/s, retransmitted segments, lost frames)
/// with the data going from the far end to K (`from_far`) or back.
fn kernel_run(imp: &Impairment, bytes: u64, from_far: bool) -> anyhow::Result<(f64, Option<f64>)> {
    let mut link = ImpairedLink::new();
    let far = link.kernel_far_end();
    link.impair(imp, 7);
    let port = 6000;
    let (server_ns, client_ns, server_ip) = if from_far {
        (&link.k, &far, KERNEL_V4)
    } else {
        (&far, &link.k, STACK_V4)
    };
    let mut receiver = KernelPeer::start(server_ns, true, false, false, server_ip.into(), port, bytes);
    let mut sender = KernelPeer::start(client_ns, false, true, false, server_ip.into(), port, bytes);
    let timeout = Duration::from_secs(600);
    let r = receiver.finish(timeout).map_err(anyhow::Error::msg)?;
    let s = sender.finish(timeout).map_err(anyhow::Error::msg)?;
    if r.bytes != bytes || r.sha256 != s.sha256 {
        bail!("kernel to kernel: {r:?} against {s:?}");
    }
    let counts = link.stop_impair();
    Ok((
        bytes as f64 / r.secs,
        per_loss(s.total_retrans, lost(&counts, usize::from(from_far))),
    ))
}

/// Joyride to the kernel (`stack_sends`) or back, the stack as client.
fn joyride_run(imp: &Impairment, bytes: u64, stack_sends: bool) -> anyhow::Result<(f64, Option<f64>)> {
    let mut link = ImpairedLink::new();
    link.impair(imp, 7);
    let nic = link.dpdk_nic();
    let stack = StackThread::start(Interface::new(stack_config(nic.mac())), nic);
    let spec = TransferSpec {
        v6: false,
        role: Role::StackClient,
        stack_sends,
        bytes,
        port: 6001,
    };
    let o = transfer(&stack, &link, spec, Duration::from_secs(600));
    if let Err(e) = o.check() {
        bail!("{spec}: {e}\n{:?}\n{}", o.stack.info, stack.diagnostics());
    }
    let k = o.kernel.as_ref().expect("checked");
    let counts = link.stop_impair();
    let info = o.stack.info.context("no TcpInfo")?;
    if stack_sends {
        Ok((bytes as f64 / k.secs, per_loss(info.total_retrans, lost(&counts, 1))))
    } else {
        Ok((bytes as f64 / o.stack.elapsed().as_secs_f64(), None))
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("joyride-bench-tcp: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let bytes = args.mb * 1_000_000;
    let mut rows = Vec::new();
    for imp in Impairment::ALL {
        if args.only.as_ref().is_some_and(|o| !imp.name.contains(o.as_str())) {
            continue;
        }
        for (direction, stack_sends) in [("Joyride->kernel", true), ("kernel->Joyride", false)] {
            eprintln!("{}: {direction} ...", imp.name);
            // The kernel baseline's sender sits where the stack would.
            let (kernel_bps, kernel_rexmit) = kernel_run(&imp, bytes, stack_sends)?;
            let (joyride_bps, joyride_rexmit) = joyride_run(&imp, bytes, stack_sends)?;
            rows.push(Row {
                impairment: imp.name,
                direction,
                kernel_bps,
                joyride_bps,
                kernel_rexmit,
                joyride_rexmit,
            });
        }
    }
    let fmt_rexmit = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}"));
    println!(
        "{:<24} {:<16} {:>12} {:>12} {:>6} {:>14} {:>14}",
        "impairment", "direction", "kernel Mb/s", "Joyride Mb/s", "ratio", "kernel rtx/loss", "Joyride rtx/loss"
    );
    for r in &rows {
        println!(
            "{:<24} {:<16} {:>12.0} {:>12.0} {:>6.2} {:>14} {:>14}",
            r.impairment,
            r.direction,
            r.kernel_bps * 8.0 / 1e6,
            r.joyride_bps * 8.0 / 1e6,
            r.joyride_bps / r.kernel_bps,
            fmt_rexmit(r.kernel_rexmit),
            fmt_rexmit(r.joyride_rexmit),
        );
    }
    Ok(())
}
