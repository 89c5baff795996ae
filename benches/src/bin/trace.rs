//! `joyride-bench-trace`: the benchmark of `joyride trace`, side by side with
//! the kernel and with `strace -f`.
//!
//! It compiles small C helper programs (benches/c/) with gcc into a temporary
//! directory and measures:
//!
//! 1. the trapped-call round trip: a loop of `getsockopt(SO_TYPE)` under
//!    `joyride trace -e getsockopt`, with and without
//!    SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, minus the same loop on the bare
//!    kernel (design target: at most 2 us); for scale, the same loop under a
//!    minimal C supervisor that only answers "continue" (the floor of any
//!    seccomp-notify supervisor on this machine);
//! 2. the cost of untrapped calls under the filter: `getppid()` and `read` of
//!    /dev/zero under `joyride trace` against the bare kernel and against a
//!    one-instruction allow-all filter (target: nothing measurable);
//! 3. the overhead of `joyride trace` against `strace -f` on a connect-heavy
//!    workload against a local, untraced echo server (target: at least 5x
//!    less overhead than strace); `strace --seccomp-bpf` for reference.
//!
//! Runs alternate between the setups so machine noise hits them all; medians
//! are reported.

#![deny(unsafe_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::Parser;
use joyride_benches::{compile_c, is_executable, require_tool, run_timed, show, Background, Stats, TempDir};
use serde_json::json;

/// Benchmark of `joyride trace`: trapped-call round trip, untrapped-call cost,
/// and overhead against `strace -f`.
#[derive(Debug, Parser)]
#[command(name = "joyride-bench-trace")]
struct Args {
    /// The joyride binary [default: `joyride` in the same directory as this
    /// benchmark, i.e. the same cargo target directory].
    #[arg(long, value_name = "PATH")]
    joyride: Option<PathBuf>,

    /// A short run (fewer iterations and repetitions), for a smoke check.
    #[arg(long)]
    quick: bool,

    /// Repetitions of every measurement (default 5, or 3 with --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=101))]
    rounds: Option<u32>,

    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Sizes of one benchmark run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Repetitions of every measurement.
    rounds: u32,
    /// getsockopt calls per round-trip run.
    trapped_iters: u64,
    /// getppid / read calls per untrapped run.
    untrapped_iters: u64,
    /// connect/send/recv/close cycles per connect-workload run.
    cycles: u64,
    /// Bytes sent and echoed per cycle.
    msg_size: u64,
}

impl Plan {
    fn new(args: &Args) -> Plan {
        let mut plan = if args.quick {
            Plan {
                rounds: 3,
                trapped_iters: 20_000,
                untrapped_iters: 200_000,
                cycles: 1_000,
                msg_size: 64,
            }
        } else {
            Plan {
                rounds: 5,
                trapped_iters: 200_000,
                untrapped_iters: 2_000_000,
                cycles: 5_000,
                msg_size: 64,
            }
        };
        if let Some(r) = args.rounds {
            plan.rounds = r;
        }
        plan
    }
}

/// How a measured program is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Directly, no tracer: the kernel baseline.
    Plain,
    /// `joyride trace` (optionally `-e CALLS`, optionally `--no-sync-wake-up`).
    Joyride {
        expr: Option<&'static str>,
        sync_wake_up: bool,
    },
    /// `strace -f -e trace=%network`.
    Strace,
    /// `strace -f --seccomp-bpf -e trace=%network`: strace stopping only at
    /// the traced calls.
    StraceSeccompBpf,
    /// Under the minimal C supervisor `notify_floor` (only for the
    /// `syscall_loop` helper): the floor of a trapped-call round trip.
    Floor { epoll: bool, sync_wake_up: bool },
    /// Directly, with the helper's own allow-everything seccomp filter (only
    /// for the `syscall_loop` helper): the floor cost of any filter.
    AllowFilter,
}

/// Paths of the tools and helpers.
struct Tools {
    joyride: PathBuf,
    strace: PathBuf,
    syscall_loop: PathBuf,
    echo_server: PathBuf,
    connect_client: PathBuf,
    notify_floor: PathBuf,
}

impl Tools {
    /// The command running `prog args` in `setup`, tracing to /dev/null.
    fn command(&self, setup: Setup, prog: &Path, args: &[&str]) -> Command {
        let mut cmd = match setup {
            Setup::Plain => return with_args(Command::new(prog), args),
            Setup::AllowFilter => {
                let mut c = with_args(Command::new(prog), args);
                c.arg("allow-filter");
                return c;
            }
            Setup::Joyride { expr, sync_wake_up } => {
                let mut c = Command::new(&self.joyride);
                c.args(["trace", "-o", "/dev/null"]);
                if let Some(e) = expr {
                    c.args(["-e", e]);
                }
                if !sync_wake_up {
                    c.arg("--no-sync-wake-up");
                }
                c.arg("--");
                c
            }
            Setup::Floor { epoll, sync_wake_up } => {
                let mut c = Command::new(&self.notify_floor);
                c.arg(if epoll { "epoll" } else { "block" });
                c.arg(if sync_wake_up { "sync" } else { "nosync" });
                c
            }
            Setup::Strace => {
                let mut c = Command::new(&self.strace);
                c.args(["-f", "-e", "trace=%network", "-o", "/dev/null", "--"]);
                c
            }
            Setup::StraceSeccompBpf => {
                let mut c = Command::new(&self.strace);
                c.args(["-f", "--seccomp-bpf", "-e", "trace=%network", "-o", "/dev/null", "--"]);
                c
            }
        };
        cmd.arg(prog);
        with_args(cmd, args)
    }
}

fn with_args(mut cmd: Command, args: &[&str]) -> Command {
    cmd.args(args);
    cmd
}

const SYSCALL_LOOP_C: &str = include_str!("../../c/syscall_loop.c");
const ECHO_SERVER_C: &str = include_str!("../../c/echo_server.c");
const CONNECT_CLIENT_C: &str = include_str!("../../c/connect_client.c");
const NOTIFY_FLOOR_C: &str = include_str!("../../c/notify_floor.c");

/// Network calls per connect-workload cycle that strace and joyride trace:
/// socket, connect, sendto (send), recvfrom (recv); close is not a network
/// call.
const NET_CALLS_PER_CYCLE: u64 = 4;

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("joyride-bench-trace: error: {e:#}");
        std::process::exit(1);
    }
}

fn default_joyride() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this benchmark's own path")?;
    let dir = me.parent().context("this benchmark's path has no directory")?;
    Ok(dir.join("joyride"))
}

fn run(args: &Args) -> anyhow::Result<()> {
    let plan = Plan::new(args);
    let joyride = match &args.joyride {
        Some(p) => p.clone(),
        None => default_joyride()?,
    };
    if !is_executable(&joyride) {
        bail!(
            "the joyride binary {} is missing or not executable: build it with \
             `cargo build --release -p joyride` (in the same target directory as this \
             benchmark) or pass --joyride PATH",
            joyride.display()
        );
    }
    let gcc = require_tool("gcc", "to compile the benchmark's C helper programs")?;
    let strace = require_tool("strace", "for the comparison with `strace -f`")?;

    let tmp = TempDir::new("joyride-bench-trace")?;
    let tools = Tools {
        joyride,
        strace,
        syscall_loop: compile_c(&gcc, tmp.path(), "syscall_loop", SYSCALL_LOOP_C)?,
        echo_server: compile_c(&gcc, tmp.path(), "echo_server", ECHO_SERVER_C)?,
        connect_client: compile_c(&gcc, tmp.path(), "connect_client", CONNECT_CLIENT_C)?,
        notify_floor: compile_c(&gcc, tmp.path(), "notify_floor", NOTIFY_FLOOR_C)?,
    };
    check_joyride_traps(&tools, tmp.path())?;

    let env_start = environment_json();
    println!("joyride-bench-trace: {}", environment_line(&env_start));
    if let Some(note) = busy_note(&env_start) {
        println!("{note}");
    }
    println!(
        "joyride: {}   rounds: {}{}   (medians over rounds; runs alternate between setups)",
        tools.joyride.display(),
        plan.rounds,
        if args.quick { "   --quick" } else { "" }
    );
    println!();

    let round_trip = bench_round_trip(&tools, &plan)?;
    let untrapped = bench_untrapped(&tools, &plan)?;
    let versus = bench_versus_strace(&tools, &plan)?;

    if let Some(path) = &args.json {
        let doc = json!({
            "benchmark": "joyride-bench-trace",
            "environment": env_start,
            "environment_end": environment_json(),
            "joyride": tools.joyride.display().to_string(),
            "quick": args.quick,
            "plan": {
                "rounds": plan.rounds,
                "trapped_iters": plan.trapped_iters,
                "untrapped_iters": plan.untrapped_iters,
                "connect_cycles": plan.cycles,
                "msg_size": plan.msg_size,
            },
            "round_trip": round_trip,
            "untrapped": untrapped,
            "versus_strace": versus,
        });
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

/// Makes sure `joyride trace` really traps the helper's calls (a benchmark
/// of a tracer that traces nothing would be meaningless).
fn check_joyride_traps(tools: &Tools, dir: &Path) -> anyhow::Result<()> {
    let out = dir.join("check.trace");
    let iters = 100u64;
    let mut cmd = Command::new(&tools.joyride);
    cmd.args(["trace", "-e", "getsockopt", "-o"])
        .arg(&out)
        .arg("--")
        .arg(&tools.syscall_loop)
        .args(["getsockopt", &iters.to_string()]);
    run_timed(&mut cmd).context("joyride trace does not run the helper")?;
    let text = std::fs::read_to_string(&out).with_context(|| format!("cannot read {}", out.display()))?;
    let traced = text.lines().filter(|l| l.contains("getsockopt(")).count() as u64;
    // ITERS timed calls and ITERS/10 warm-up calls.
    let expected = iters + iters / 10;
    if traced != expected {
        bail!(
            "`{}` traced {traced} getsockopt calls, expected {expected}; not benchmarking",
            show(&cmd)
        );
    }
    Ok(())
}

/// A warning when other work keeps the CPUs busy: wake-up placement (and so
/// the round trip, and what SYNC_WAKE_UP changes) depends on idle CPUs.
fn busy_note(env: &serde_json::Value) -> Option<String> {
    let load: f64 = env["loadavg"].as_str()?.split_whitespace().next()?.parse().ok()?;
    let cpus = env["cpus"].as_u64()? as f64;
    (load >= cpus / 2.0).then(|| {
        format!(
            "WARNING: the machine is busy (1-minute load {load:.2} on {cpus} CPUs): figures are noisy, and \
             wake-ups land on busy CPUs, which changes the round trip and what SYNC_WAKE_UP buys."
        )
    })
}

fn environment_line(e: &serde_json::Value) -> String {
    format!(
        "kernel {}, {} CPUs, load average {}",
        e["kernel"].as_str().unwrap_or("?"),
        e["cpus"],
        e["loadavg"].as_str().unwrap_or("?")
    )
}

fn environment_json() -> serde_json::Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let loadavg = read("/proc/loadavg");
    let loadavg: String = loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    json!({
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "loadavg": loadavg,
    })
}

/// Runs `f` over `setups` for `rounds` rounds, rotating the order each round,
/// and returns each setup's samples in the order of `setups`.
fn alternate<F>(setups: &[Setup], rounds: u32, mut f: F) -> anyhow::Result<Vec<Vec<f64>>>
where
    F: FnMut(Setup) -> anyhow::Result<f64>,
{
    let mut samples = vec![Vec::new(); setups.len()];
    for round in 0..rounds as usize {
        for k in 0..setups.len() {
            let i = (round + k) % setups.len();
            samples[i].push(f(setups[i])?);
        }
    }
    Ok(samples)
}

fn ns_per_call(tools: &Tools, setup: Setup, mode: &str, iters: u64) -> anyhow::Result<f64> {
    let iters = iters.to_string();
    let mut cmd = tools.command(setup, &tools.syscall_loop, &[mode, &iters]);
    run_timed(&mut cmd)?.field("ns_per_call")
}

fn fmt_short(s: &Stats) -> String {
    format!("{:>7.1}  {:<16}", s.median, format!("({:.1} .. {:.1})", s.min, s.max))
}

fn fmt_stats(s: &Stats, scale: f64, prec: usize) -> String {
    format!(
        "{:>9.prec$}  ({:.prec$} .. {:.prec$})",
        s.median * scale,
        s.min * scale,
        s.max * scale
    )
}

/// Part 1: the trapped-call round trip.
fn bench_round_trip(tools: &Tools, plan: &Plan) -> anyhow::Result<serde_json::Value> {
    println!(
        "1. Trapped-call round trip: getsockopt(fd, SOL_SOCKET, SO_TYPE) x {} in a loop, timed by the \
         program itself (CLOCK_MONOTONIC), bare, under `joyride trace -e getsockopt -o /dev/null`, and \
         under a minimal C supervisor (the floor on this machine).",
        plan.trapped_iters
    );
    let joyride = |sync_wake_up| Setup::Joyride {
        expr: Some("getsockopt"),
        sync_wake_up,
    };
    let floor = |epoll, sync_wake_up| Setup::Floor { epoll, sync_wake_up };
    let rows: [(Setup, &str, &str); 7] = [
        (Setup::Plain, "kernel", "kernel baseline (no supervisor)"),
        (
            joyride(true),
            "joyride_sync_wake_up",
            "joyride trace, SYNC_WAKE_UP (default)",
        ),
        (
            joyride(false),
            "joyride_no_sync_wake_up",
            "joyride trace --no-sync-wake-up",
        ),
        (
            floor(false, true),
            "floor_block_sync_wake_up",
            "floor: blocking RECV, SYNC_WAKE_UP",
        ),
        (
            floor(false, false),
            "floor_block_no_sync_wake_up",
            "floor: blocking RECV, no SYNC_WAKE_UP",
        ),
        (
            floor(true, true),
            "floor_epoll_sync_wake_up",
            "floor: epoll + RECV, SYNC_WAKE_UP",
        ),
        (
            floor(true, false),
            "floor_epoll_no_sync_wake_up",
            "floor: epoll + RECV, no SYNC_WAKE_UP",
        ),
    ];
    let setups: Vec<Setup> = rows.iter().map(|r| r.0).collect();
    let mut floor_sync_unsupported = false;
    let samples = alternate(&setups, plan.rounds, |s| {
        let iters = plan.trapped_iters.to_string();
        let out = run_timed(&mut tools.command(s, &tools.syscall_loop, &["getsockopt", &iters]))?;
        if out.stderr.contains("sync=unsupported") {
            floor_sync_unsupported = true;
        }
        out.field("ns_per_call")
    })?;
    let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
    let base = stats[0].median;
    let target_us = 2.0;
    println!(
        "   {:<44} {:>9}  {:<20} {:>14}",
        "setup", "us/call", "(min .. max)", "round trip"
    );
    let mut rt = Vec::new();
    let mut json_rows = serde_json::Map::new();
    for (i, (setup, key, name)) in rows.iter().enumerate() {
        let r = (stats[i].median - base) / 1000.0;
        let rt_col = match setup {
            Setup::Plain => "-".to_string(),
            Setup::Joyride { .. } => format!("{r:.2} us {}", verdict(r <= target_us)),
            _ => format!("{r:.2} us     "),
        };
        println!("   {name:<44} {}  {rt_col:>14}", fmt_stats(&stats[i], 1e-3, 3));
        rt.push(r);
        let mut row = json!({ "ns_per_call": stats[i].to_json(&samples[i]) });
        if i > 0 {
            row["round_trip_us"] = json!(r);
        }
        json_rows.insert(key.to_string(), row);
    }
    println!(
        "   round trip = median(us/call) - median(us/call bare): what trapping one call costs. joyride: \
         seccomp notify, supervisor wake-up, pidfd_getfd, copying the arguments, the call done by the \
         supervisor, the reply, the trace line. floor: a C supervisor that only answers \
         SECCOMP_USER_NOTIF_FLAG_CONTINUE (the kernel's notify/reply and the two wake-ups, nothing \
         else). Target for joyride: <= {target_us} us."
    );
    // SYNC_WAKE_UP gain: round trip without it / with it.
    let joyride_gain = rt[2] / rt[1];
    let floor_gain = rt[4] / rt[3];
    println!(
        "   SYNC_WAKE_UP speed-up of the round trip: joyride {joyride_gain:.2}x, floor (blocking) {floor_gain:.2}x"
    );
    if floor_sync_unsupported {
        println!("   NOTE: this kernel refused SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (needs Linux 6.6).");
    } else if floor_gain >= 1.5 && joyride_gain < 1.15 {
        println!(
            "   NOTE: SYNC_WAKE_UP speeds the floor up {floor_gain:.1}x but joyride barely changes: check \
             that joyride really sets it (SECCOMP_IOCTL_NOTIF_SET_FLAGS takes the flags as the ioctl \
             argument itself, not a pointer to them)."
        );
    }
    println!();
    Ok(json!({
        "what": "getsockopt(SO_TYPE) loop, ns per call; round_trip_us = setup median - kernel median",
        "iters": plan.trapped_iters,
        "setups": json_rows,
        "round_trip_us_sync_wake_up": rt[1],
        "round_trip_us_no_sync_wake_up": rt[2],
        "floor_round_trip_us_sync_wake_up": rt[3],
        "floor_round_trip_us_no_sync_wake_up": rt[4],
        "sync_wake_up_speedup_joyride": joyride_gain,
        "sync_wake_up_speedup_floor": floor_gain,
        "floor_sync_wake_up_unsupported": floor_sync_unsupported,
        "target_us": target_us,
    }))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "(ok)"
    } else {
        "(MISS)"
    }
}

/// Part 2: untrapped calls under the filter.
fn bench_untrapped(tools: &Tools, plan: &Plan) -> anyhow::Result<serde_json::Value> {
    println!(
        "2. Untrapped calls under the filter: a loop of {} never-trapped calls under `joyride trace -o \
         /dev/null` (every network call trapped) and bare.",
        plan.untrapped_iters
    );
    println!(
        "   {:<24} {:>7}  {:<16} {:>7}  {:<16} {:>7}  {:<16} {:>7} {:>7}",
        "call (ns/call)",
        "bare",
        "(min .. max)",
        "any flt",
        "(min .. max)",
        "joyride",
        "(min .. max)",
        "ratio",
        "delta"
    );
    let setups = [
        Setup::Plain,
        Setup::AllowFilter,
        Setup::Joyride {
            expr: None,
            sync_wake_up: true,
        },
    ];
    let mut out = serde_json::Map::new();
    for (mode, label) in [("getppid", "getppid()"), ("readzero", "read(/dev/zero, 1 B)")] {
        let samples = alternate(&setups, plan.rounds, |s| {
            ns_per_call(tools, s, mode, plan.untrapped_iters)
        })?;
        let st: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
        let (bare, any, joy) = (st[0], st[1], st[2]);
        let ratio = joy.median / bare.median;
        let delta = joy.median - bare.median;
        let any_ratio = any.median / bare.median;
        println!(
            "   {label:<24} {}  {}  {}  {ratio:>6.3}x {delta:>+7.1}",
            fmt_short(&bare),
            fmt_short(&any),
            fmt_short(&joy)
        );
        out.insert(
            mode.to_string(),
            json!({
                "kernel_ns_per_call": bare.to_json(&samples[0]),
                "allow_filter_ns_per_call": any.to_json(&samples[1]),
                "joyride_ns_per_call": joy.to_json(&samples[2]),
                "ratio": ratio,
                "delta_ns": delta,
                "allow_filter_ratio": any_ratio,
            }),
        );
    }
    println!(
        "   bare: no filter. any flt: the program's own one-instruction allow-all seccomp filter (what \
         any seccomp filter costs: the kernel's slower syscall entry). joyride: under `joyride trace`. \
         ratio = joyride median / bare median, delta = their difference in ns; 1.00x is nothing \
         measurable. The (min .. max) spread of the bare runs is the noise. Target: nothing measurable."
    );
    println!();
    out.insert("iters".into(), json!(plan.untrapped_iters));
    Ok(serde_json::Value::Object(out))
}

/// Part 3: `joyride trace` against `strace -f` on a connect-heavy workload.
fn bench_versus_strace(tools: &Tools, plan: &Plan) -> anyhow::Result<serde_json::Value> {
    println!(
        "3. joyride trace vs strace -f: {} cycles of socket/connect/send {} B/recv echo/close against an \
         untraced echo server on 127.0.0.1 ({} traced network calls per cycle).",
        plan.cycles, plan.msg_size, NET_CALLS_PER_CYCLE
    );
    let (mut server, line) = Background::start_reading_line(&tools.echo_server, &[] as &[&OsStr])?;
    let port: u16 = line
        .strip_prefix("port=")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("echo_server said {line:?}, expected port=N"))?;
    let port = port.to_string();
    let cycles = plan.cycles.to_string();
    let size = plan.msg_size.to_string();
    let client_args = [port.as_str(), cycles.as_str(), size.as_str()];

    // Warm-up: page cache, the server's first accepts.
    run_timed(&mut tools.command(Setup::Plain, &tools.connect_client, &client_args))?;

    let rows: [(Setup, &str, &str); 4] = [
        (Setup::Plain, "plain", "plain (no tracer)"),
        (Setup::Strace, "strace", "strace -f -e trace=%network"),
        (
            Setup::StraceSeccompBpf,
            "strace_seccomp_bpf",
            "strace -f --seccomp-bpf -e trace=%network",
        ),
        (
            Setup::Joyride {
                expr: None,
                sync_wake_up: true,
            },
            "joyride",
            "joyride trace",
        ),
    ];
    let setups: Vec<Setup> = rows.iter().map(|r| r.0).collect();
    let mut loop_samples = vec![Vec::new(); setups.len()];
    let wall_samples = alternate(&setups, plan.rounds, |s| {
        let out = run_timed(&mut tools.command(s, &tools.connect_client, &client_args))?;
        let loop_ns: f64 = out.field("elapsed_ns")?;
        let i = setups.iter().position(|x| *x == s).expect("a listed setup");
        loop_samples[i].push(loop_ns / 1e6);
        Ok(out.wall.as_secs_f64() * 1e3)
    })?;
    if !server.is_running() {
        bail!("the echo server died during the benchmark");
    }
    drop(server);

    let wall: Vec<Stats> = wall_samples.iter().map(|s| Stats::of(s)).collect();
    let inner: Vec<Stats> = loop_samples.iter().map(|s| Stats::of(s)).collect();
    let calls = (plan.cycles * NET_CALLS_PER_CYCLE) as f64;
    let target = 5.0;

    println!(
        "   {:<42} {:>9}  {:<20} {:>11}  {:>14}  {:>8}",
        "setup (wall time of the whole run)", "ms", "(min .. max)", "overhead ms", "us/traced call", "loop ms"
    );
    let overhead: Vec<f64> = wall.iter().map(|w| w.median - wall[0].median).collect();
    let inner_ovh: Vec<f64> = inner.iter().map(|w| w.median - inner[0].median).collect();
    let mut json_wall = serde_json::Map::new();
    let mut json_loop = serde_json::Map::new();
    let mut json_ovh = serde_json::Map::new();
    let mut json_loop_ovh = serde_json::Map::new();
    for (i, (_, key, name)) in rows.iter().enumerate() {
        let (ovh, per) = if i == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.1}", overhead[i]),
                format!("{:.2}", overhead[i] * 1e3 / calls),
            )
        };
        println!(
            "   {name:<42} {}  {ovh:>11}  {per:>14}  {:>8.1}",
            fmt_stats(&wall[i], 1.0, 1),
            inner[i].median
        );
        json_wall.insert(key.to_string(), wall[i].to_json(&wall_samples[i]));
        json_loop.insert(key.to_string(), inner[i].to_json(&loop_samples[i]));
        if i > 0 {
            json_ovh.insert(key.to_string(), json!(overhead[i]));
            json_loop_ovh.insert(key.to_string(), json!(inner_ovh[i]));
        }
    }
    let ratio = overhead[1] / overhead[3];
    let inner_ratio = inner_ovh[1] / inner_ovh[3];
    let bpf_ratio = overhead[2] / overhead[3];
    println!(
        "   overhead = median(traced) - median(plain), wall time including the tracer's start-up; loop ms = \
         the loop alone, timed inside the client; us/traced call = overhead / ({} network calls).",
        plan.cycles * NET_CALLS_PER_CYCLE
    );
    println!(
        "   strace -f overhead / joyride overhead = {ratio:.2}x (wall), {inner_ratio:.2}x (loop alone). \
         Target >= {target}x {}",
        verdict(ratio >= target)
    );
    println!(
        "   (for reference: strace -f --seccomp-bpf overhead / joyride overhead = {bpf_ratio:.2}x; \
         --seccomp-bpf makes strace stop only at the traced calls)"
    );
    println!();
    Ok(json!({
        "what": "wall ms of the whole run (spawn to exit) and loop ms timed inside the client; overhead = traced - plain",
        "cycles": plan.cycles,
        "msg_size": plan.msg_size,
        "traced_calls_per_cycle": NET_CALLS_PER_CYCLE,
        "wall_ms": json_wall,
        "loop_ms": json_loop,
        "overhead_ms": json_ovh,
        "loop_overhead_ms": json_loop_ovh,
        "strace_over_joyride": ratio,
        "strace_over_joyride_loop": inner_ratio,
        "strace_seccomp_bpf_over_joyride": bpf_ratio,
        "target": target,
    }))
}
