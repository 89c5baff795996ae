//! `joyride-bench-tcp`: bulk TCP goodput of Joyride's stack against the
//! kernel's, over the same `joyride-impair` link
//! ([`joyride_dpdk::testbed::ImpairedLink`]).
//!
//! For each impairment (none; 2% loss + 25% reordering; 1% duplication +
//! 0.1% corruption; 50 ms each way at 1 Gbit/s) and each direction it runs
//! `--runs` pairs of transfers of `--mb` megabytes each (SHA-256 checked on
//! both ends), alternating which of the two goes first so that machine noise
//! hits both:
//!
//! - kernel: Linux to Linux, python3 `sendall`/`recv_into` in two
//!   namespaces, one where the stack would be;
//! - Joyride: Joyride to the kernel and the kernel to Joyride, the stack
//!   as the client, on DPDK `net_af_packet`.
//!
//! and prints goodput (bytes over the receiver's time from connection to
//! end of file) and the Joyride/kernel ratio (of each pair), as mean and
//! min-max over the runs, and the sender's retransmitted segments per
//! segment the forwarder lost or corrupted in the data's direction, summed
//! over the runs (1.0 is ideal: each loss repaired once; SACK makes it
//! possible; full-sized segments, so it is also bytes per byte).
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
    /// Kernel/Joyride pairs of transfers per impairment and direction.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

/// One transfer's result.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Goodput, bytes per second.
    bps: f64,
    /// The sender's retransmitted segments and the frames the forwarder lost
    /// in the data's direction, if the sender's count is known.
    rexmit: Option<(u64, u64)>,
}

/// One row of the table: the runs of one impairment and direction.
#[derive(Debug)]
struct Row {
    impairment: &'static str,
    direction: &'static str,
    kernel: Vec<Run>,
    joyride: Vec<Run>,
}

/// Mean, minimum and maximum.
fn spread(v: impl IntoIterator<Item = f64>) -> (f64, f64, f64) {
    let v: Vec<f64> = v.into_iter().collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, min, max)
}

/// `mean (min-max)` with `digits` decimals, or just the value for one run.
fn fmt_spread((mean, min, max): (f64, f64, f64), digits: usize) -> String {
    if min == max {
        format!("{mean:.digits$}")
    } else {
        format!("{mean:.digits$} ({min:.digits$}-{max:.digits$})")
    }
}

/// Retransmitted segments per lost segment over all runs; `-` without a
/// sender count or without losses.
fn fmt_rexmit(runs: &[Run]) -> String {
    let (mut retrans, mut lost, mut known) = (0, 0, false);
    for (r, l) in runs.iter().filter_map(|r| r.rexmit) {
        retrans += r;
        lost += l;
        known = true;
    }
    if known && lost > 0 {
        format!("{:.2}", retrans as f64 / lost as f64)
    } else {
        "-".to_owned()
    }
}

/// Frames lost or corrupted in direction `dir` (0: kernel side to the far
/// end, 1: back).
fn lost(counts: &Option<[ImpairCounts; 2]>, dir: usize) -> u64 {
    counts.map_or(0, |c| {
        c[dir].lost + c[dir].corrupted + c[dir].queue_drops + c[dir].kernel_drops
    })
}

/// Linux to Linux over `imp`, with the data going from the far end to K
/// (`from_far`) or back; `seed` for the forwarder.
fn kernel_run(imp: &Impairment, bytes: u64, from_far: bool, seed: u64) -> anyhow::Result<Run> {
    let mut link = ImpairedLink::new();
    let far = link.kernel_far_end();
    link.impair(imp, seed);
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
    Ok(Run {
        bps: bytes as f64 / r.secs,
        rexmit: Some((s.total_retrans, lost(&counts, usize::from(from_far)))),
    })
}

/// Joyride to the kernel (`stack_sends`) or back, the stack as client;
/// `seed` for the forwarder.
fn joyride_run(imp: &Impairment, bytes: u64, stack_sends: bool, seed: u64) -> anyhow::Result<Run> {
    let mut link = ImpairedLink::new();
    link.impair(imp, seed);
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
        Ok(Run {
            bps: bytes as f64 / k.secs,
            rexmit: Some((info.total_retrans, lost(&counts, 1))),
        })
    } else {
        Ok(Run {
            bps: bytes as f64 / o.stack.elapsed().as_secs_f64(),
            rexmit: None,
        })
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
            let mut row = Row {
                impairment: imp.name,
                direction,
                kernel: Vec::new(),
                joyride: Vec::new(),
            };
            for run in 0..args.runs {
                eprintln!("{}: {direction}, run {} of {} ...", imp.name, run + 1, args.runs);
                // The same forwarder seed for both halves of a pair; the
                // kernel baseline's sender sits where the stack would.
                let seed = 7 + u64::from(run);
                let kernel = |row: &mut Row| -> anyhow::Result<()> {
                    row.kernel.push(kernel_run(&imp, bytes, stack_sends, seed)?);
                    Ok(())
                };
                let joyride = |row: &mut Row| -> anyhow::Result<()> {
                    row.joyride.push(joyride_run(&imp, bytes, stack_sends, seed)?);
                    Ok(())
                };
                if run % 2 == 0 {
                    kernel(&mut row)?;
                    joyride(&mut row)?;
                } else {
                    joyride(&mut row)?;
                    kernel(&mut row)?;
                }
            }
            rows.push(row);
        }
    }
    println!(
        "{} run(s) per cell: mean (min-max); rtx/loss summed over the runs",
        args.runs
    );
    println!(
        "{:<24} {:<16} {:>20} {:>20} {:>18} {:>15} {:>16}",
        "impairment", "direction", "kernel Mb/s", "Joyride Mb/s", "ratio", "kernel rtx/loss", "Joyride rtx/loss"
    );
    let mbps = |runs: &[Run]| spread(runs.iter().map(|r| r.bps * 8.0 / 1e6));
    for r in &rows {
        let ratio = spread(r.joyride.iter().zip(&r.kernel).map(|(j, k)| j.bps / k.bps));
        println!(
            "{:<24} {:<16} {:>20} {:>20} {:>18} {:>15} {:>16}",
            r.impairment,
            r.direction,
            fmt_spread(mbps(&r.kernel), 0),
            fmt_spread(mbps(&r.joyride), 0),
            fmt_spread(ratio, 2),
            fmt_rexmit(&r.kernel),
            fmt_rexmit(&r.joyride),
        );
    }
    Ok(())
}
