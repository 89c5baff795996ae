//! `joyride-bench`: Joyride against the kernel stack, every workload of the
//! performance targets, same link, same run.
//!
//! Each workload runs an unmodified program in namespace A — under `joyride
//! exec` on Joyride's stack, or directly on the kernel stack — against kernel
//! peers in namespace B over one veth pair ([`joyride_benches::net`]). Each
//! round runs every workload once on each stack, the order of the two
//! alternating from round to round so that machine noise hits both; the
//! figures are medians of the rounds, the ratio is Joyride / kernel per
//! round. Prints a Markdown table, writes JSON and an SVG plot.
//!
//! 1. bulk TCP: iperf3 -c in A, iperf3 -s in B, both directions (`-R`),
//!    write sizes from 1 KB to 128 KB;
//! 2. request/response latency: `netload tcp-rr` 1 B and 1 KB, `udp-rr` 64 B
//!    (p50, p99, p99.9);
//! 3. connection rate: `netload tcp-connect` (short connections, 4 processes);
//! 4. UDP datagrams per second, 64 B, both directions;
//! 5. nginx under test in A with keep-alive, `wrk` in B;
//! 6. trapped-call round trip (`getsockopt` on a socket) and the cost of an
//!    untrapped call (`read` of /dev/zero) under the filter;
//! 7. CPU per GB moved: machine-wide busy CPU-seconds per GB during bulk;
//! 8. idle: CPU of an idle `joyride exec` over 10 s, and wake-up latency
//!    (request/response with 100 ms pauses).
//!
//! Needs root, gcc, iperf3, nginx, wrk, ethtool, and `joyride` next to
//! this binary: `bash scripts/bench.sh` does everything.

#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use joyride_benches::net::{machine_busy_seconds, process_cpu_seconds, BenchNet, Server, Stack, IP, PEER_IP};
use joyride_benches::report::{bulk_id, Better, Report, Target};
use joyride_benches::{compile_c, require_tool, run_timed, RunOutput, TempDir};

/// Joyride against the kernel stack: bulk, latency, connection rate, UDP,
/// nginx, syscalls, CPU and idle, in one run.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Rounds (each runs every workload once per stack, alternating which
    /// stack goes first).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Seconds per throughput measurement (bulk, UDP, connections, nginx).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=120))]
    secs: u64,
    /// One round, 2 s per measurement, fewer write sizes: a smoke run.
    #[arg(long)]
    quick: bool,
    /// Only the workloads whose number is given (1-8; repeatable).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=8))]
    only: Vec<u8>,
    /// Where to write the JSON results.
    #[arg(long, value_name = "FILE", default_value = "target/bench/joyride-bench.json")]
    json: PathBuf,
    /// Where to write the SVG plot.
    #[arg(long, value_name = "FILE", default_value = "target/bench/joyride-bench.svg")]
    svg: PathBuf,
    /// DPDK driver of Joyride's port on the link: `net_af_xdp` (the
    /// embedded network's default) or `net_af_packet`.
    #[arg(long, value_name = "PMD", default_value = "net_af_xdp", value_parser = ["net_af_xdp", "net_af_packet"])]
    pmd: String,
    /// Stack instances of `joyride exec` (`--cores`); the veth gets as
    /// many queues.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    cores: u16,
    /// The joyride binary (default: next to this one).
    #[arg(long, value_name = "PATH")]
    joyride: Option<PathBuf>,
}

/// Ports of the peer's servers in B.
const TCP_ECHO: u16 = 7001;
/// Two ports for the connection-rate peer, one per stack: the peer keeps
/// each short connection in TIME_WAIT (it closes first), and a SYN from
/// the other stack on the same 4-tuple — an ISN and timestamp from another
/// generator — is refused as old, reset and retried a second later.
const TCP_ONCE: [u16; 2] = [7002, 7012];
const UDP_ECHO: u16 = 7003;
const UDP_SINK: u16 = 7004;
/// Size of dd's input file.
const DD_BYTES: usize = 512 << 20;
/// nginx's port in A.
const NGINX: u16 = 8080;

/// How long a program may take to come up (Joyride's EAL start included).
const START: Duration = Duration::from_secs(30);

struct Tools {
    netload: PathBuf,
    syscall_loop: PathBuf,
    iperf3: PathBuf,
    nginx: PathBuf,
    wrk: PathBuf,
}

struct Bench {
    net: BenchNet,
    tools: Tools,
    secs: u64,
    bulk_sizes: Vec<usize>,
    dir: TempDir,
    report: Report,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("joyride-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.runs = 1;
        args.secs = 2;
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root: it creates network namespaces and runs `joyride exec`");
    }
    if args.cores > 1 && args.pmd == "net_af_xdp" {
        bail!(
            "--cores {} needs --pmd net_af_packet: DPDK 22.11's net_af_xdp drives one queue of a veth",
            args.cores
        );
    }
    let joyride = match args.joyride.clone() {
        Some(p) => p,
        None => std::env::current_exe()
            .context("cannot find this benchmark's own path")?
            .with_file_name("joyride"),
    };
    if !joyride.exists() {
        bail!(
            "{} not found (build it: cargo build --release -p joyride)",
            joyride.display()
        );
    }
    let dir = TempDir::new("joyride-bench")?;
    let gcc = require_tool("gcc", "to build the benchmark's C programs")?;
    let tools = Tools {
        netload: compile_c(&gcc, dir.path(), "netload", include_str!("../../c/netload.c"))?,
        syscall_loop: compile_c(&gcc, dir.path(), "syscall_loop", include_str!("../../c/syscall_loop.c"))?,
        iperf3: require_tool("iperf3", "for bulk TCP")?,
        nginx: require_tool("nginx", "for the web server workload")?
            .canonicalize()
            .context("nginx")?,
        wrk: require_tool("wrk", "to load nginx")?,
    };
    require_tool("ethtool", "to turn the link's offloads off")?;
    let bulk_sizes: Vec<usize> = if args.quick {
        vec![1024, 128 * 1024]
    } else {
        vec![1024, 4096, 16 * 1024, 64 * 1024, 128 * 1024]
    };
    let mut b = Bench {
        net: BenchNet::new(joyride.clone(), &args.pmd, args.cores)?,
        tools,
        secs: args.secs,
        bulk_sizes,
        dir,
        report: Report::default(),
    };
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let start = Instant::now();
    let wants = |n: u8| args.only.is_empty() || args.only.contains(&n);

    // The peers in B serve every round.
    let _servers = [
        Server::start(
            b.net_b_netload(&["tcp-echo", &TCP_ECHO.to_string()]),
            "tcp-echo peer",
            START,
        )?,
        Server::start(
            b.net_b_netload(&["tcp-once", &TCP_ONCE[0].to_string()]),
            "tcp-once peer (kernel runs)",
            START,
        )?,
        Server::start(
            b.net_b_netload(&["tcp-once", &TCP_ONCE[1].to_string()]),
            "tcp-once peer (Joyride runs)",
            START,
        )?,
        Server::start(
            b.net_b_netload(&["udp-echo", &UDP_ECHO.to_string()]),
            "udp-echo peer",
            START,
        )?,
    ];

    for round in 0..args.runs {
        let order = if round % 2 == 0 {
            [Stack::Kernel, Stack::Joyride]
        } else {
            [Stack::Joyride, Stack::Kernel]
        };
        eprintln!("round {}/{} (first: {})", round + 1, args.runs, order[0].name());
        type Workload = fn(&mut Bench, Stack) -> anyhow::Result<()>;
        let workloads: [(u8, &str, Workload); 8] = [
            (1, "bulk", Bench::bulk),
            (2, "latency", Bench::latency),
            (3, "connections", Bench::connections),
            (4, "udp", Bench::udp),
            (5, "nginx", Bench::nginx),
            (6, "syscalls", Bench::syscalls),
            (7, "cpu", |_, _| Ok(())),
            (8, "idle", Bench::idle),
        ];
        for (n, name, f) in workloads {
            // Workload 7 is measured during workload 1.
            if !wants(n) || n == 7 {
                continue;
            }
            for stack in order {
                b.net.use_stack(stack)?;
                let t = Instant::now();
                f(&mut b, stack).with_context(|| format!("workload {n} ({name}) on {}", stack.name()))?;
                eprintln!(
                    "  {n} {name:<12} {:<8} {:5.1} s",
                    stack.name(),
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }

    let table = b.report.table();
    println!("{table}");
    let meta = serde_json::json!({
        "runs": args.runs,
        "secs": args.secs,
        "link": "veth, offloads off",
        "joyride_port": b.net.devargs(),
        "joyride_cores": args.cores,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "loadavg_before": load_before.trim(),
        "loadavg_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "elapsed_s": start.elapsed().as_secs_f64(),
        "joyride": joyride.display().to_string(),
    });
    for path in [&args.json, &args.svg] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    let json = serde_json::to_string_pretty(&b.report.json(meta))?;
    std::fs::write(&args.json, json).with_context(|| format!("cannot write {}", args.json.display()))?;
    b.report.plot(&args.svg, &b.bulk_sizes)?;
    eprintln!(
        "wrote {} and {} ({:.0} s in all)",
        args.json.display(),
        args.svg.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Megabit per second.
const MBPS: &str = "Mbit/s";

impl Bench {
    fn net_b_netload(&self, args: &[&str]) -> Command {
        let mut c = self.net.b(&self.tools.netload);
        c.args(args);
        c
    }

    fn netload_a(&self, stack: Stack, args: &[&str]) -> Command {
        let mut c = self.net.a(stack, &self.tools.netload);
        c.args(args);
        c
    }

    /// 1 and 7: iperf3 both directions at every write size; CPU per GB.
    fn bulk(&mut self, stack: Stack) -> anyhow::Result<()> {
        for size in self.bulk_sizes.clone() {
            for (dir, reverse) in [("tx", false), ("rx", true)] {
                let mut server = self.net.b(&self.tools.iperf3);
                server.args(["-s", "-1", "-p", "5201"]);
                // iperf3 -s prints its banner only when a client connects:
                // wait for the port instead.
                let mut server = Server::spawn(server, "iperf3 -s")?;
                wait_tcp_listen(&self.net, 5201)?;
                let mut c = self.net.a(stack, &self.tools.iperf3);
                c.args(["-c", PEER_IP, "-p", "5201", "-J", "--connect-timeout", "10000"])
                    .args(["-t", &self.secs.to_string(), "-l", &size.to_string()]);
                if reverse {
                    c.arg("-R");
                }
                let cpu0 = machine_busy_seconds()?;
                let out = run_timed(&mut c)?;
                let cpu = machine_busy_seconds()? - cpu0;
                server.wait_exit(Duration::from_secs(15))?;
                let v: serde_json::Value =
                    serde_json::from_str(&out.stdout).context("iperf3 --json output is not JSON")?;
                if let Some(e) = v.get("error") {
                    bail!("iperf3: {e}");
                }
                let bps = v["end"]["sum_received"]["bits_per_second"]
                    .as_f64()
                    .context("no sum_received in iperf3")?;
                let bytes = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
                if bytes <= 0.0 {
                    bail!("iperf3 moved nothing");
                }
                let who = if reverse {
                    "kernel→Joyride"
                } else {
                    "Joyride→kernel"
                };
                let label = format!("{who}, {} KB writes", size / 1024);
                let target = (size == 1024 || size == 128 * 1024).then_some(Target::RatioAtLeast(1.0));
                self.report.record(
                    &bulk_id(dir, size),
                    "1 bulk TCP (iperf3)",
                    &label,
                    MBPS,
                    Better::Higher,
                    target,
                    stack,
                    bps / 1e6,
                );
                // The whole machine works for both ends, whichever stack:
                // the sender, the receiver, and for Joyride the supervisor.
                self.report.record(
                    &format!("cpu.{dir}.{}k", size / 1024),
                    "7 CPU per GB (whole machine)",
                    &label,
                    "CPU-s/GB",
                    Better::Lower,
                    None,
                    stack,
                    cpu / (bytes / 1e9),
                );
            }
        }
        Ok(())
    }

    /// 2: request/response, 1 B and 1 KB over TCP, 64 B over UDP.
    fn latency(&mut self, stack: Stack) -> anyhow::Result<()> {
        let cases = [
            ("rr.tcp.1", "tcp-rr", TCP_ECHO, "1", "TCP 1 B", "20000"),
            ("rr.tcp.1k", "tcp-rr", TCP_ECHO, "1024", "TCP 1 KB", "20000"),
            ("rr.udp.64", "udp-rr", UDP_ECHO, "64", "UDP 64 B", "20000"),
        ];
        for (id, mode, port, size, name, count) in cases {
            let out = run_timed(&mut self.netload_a(stack, &[mode, PEER_IP, &port.to_string(), size, count, "0"]))?;
            self.record_percentiles(id, "2 request/response latency", name, stack, &out)?;
        }
        Ok(())
    }

    fn record_percentiles(
        &mut self,
        id: &str,
        group: &'static str,
        name: &str,
        stack: Stack,
        out: &RunOutput,
    ) -> anyhow::Result<()> {
        for (key, pct, target) in [
            ("p50_ns", "p50", Some(Target::RatioAtMost(1.2))),
            ("p99_ns", "p99", None),
            ("p999_ns", "p999", None),
        ] {
            let ns: f64 = out.field(key)?;
            let shown = if pct == "p999" { "p99.9" } else { pct };
            let target = if group.starts_with('2') { target } else { None };
            self.report.record(
                &format!("{id}.{pct}"),
                group,
                &format!("{name} {shown}"),
                "µs",
                Better::Lower,
                target,
                stack,
                ns / 1000.0,
            );
        }
        Ok(())
    }

    /// 3: short connections per second (4 connecting processes; the peer
    /// answers one byte and closes).
    fn connections(&mut self, stack: Stack) -> anyhow::Result<()> {
        let secs = self.secs.to_string();
        let port = TCP_ONCE[usize::from(stack == Stack::Joyride)].to_string();
        let out = run_timed(&mut self.netload_a(stack, &["tcp-connect", PEER_IP, &port, &secs, "4"]))?;
        let conns: f64 = out.field("conns")?;
        let ns: f64 = out.field("ns")?;
        self.report.record(
            "conn.rate",
            "3 connection rate",
            "connect, 1 B each way, close; 4 processes",
            "conn/s",
            Better::Higher,
            Some(Target::RatioAtLeast(0.8)),
            stack,
            conns / (ns / 1e9),
        );
        Ok(())
    }

    /// 4: 64-byte datagrams per second as received, both directions (UDP
    /// latency is measured with the others in 2).
    fn udp(&mut self, stack: Stack) -> anyhow::Result<()> {
        let port = UDP_SINK.to_string();
        let secs = self.secs.to_string();
        for (dir, label) in [("tx", "Joyride→kernel, 64 B"), ("rx", "kernel→Joyride, 64 B")] {
            let (sink_cmd, mut send_cmd) = if dir == "tx" {
                (
                    self.net_b_netload(&["udp-sink", &port]),
                    self.netload_a(stack, &["udp-send", PEER_IP, &port, "64", &secs]),
                )
            } else {
                (
                    self.netload_a(stack, &["udp-sink", &port]),
                    self.net_b_netload(&["udp-send", IP, &port, "64", &secs]),
                )
            };
            let mut sink = Server::start(sink_cmd, "udp-sink", START)?;
            let sent: f64 = run_timed(&mut send_cmd)?.field("sent")?;
            let line = sink.line(Duration::from_secs(20))?;
            sink.stop("TERM", Duration::from_secs(15)).ok();
            let got = RunOutput {
                wall: Duration::ZERO,
                stdout: line,
                stderr: String::new(),
            };
            let datagrams: f64 = got.field("datagrams")?;
            let ns: f64 = got.field("ns")?;
            if datagrams == 0.0 || ns == 0.0 {
                bail!("udp-sink received {datagrams} datagrams of {sent} sent");
            }
            self.report.record(
                &format!("udp.{dir}.pps"),
                "4 UDP",
                &format!("{label} datagrams received"),
                "kpps",
                Better::Higher,
                None,
                stack,
                datagrams / (ns / 1e9) / 1000.0,
            );
        }
        Ok(())
    }

    /// 5: nginx in A, 1 KB page, keep-alive, wrk in B (2 threads, 32
    /// connections).
    fn nginx(&mut self, stack: Stack) -> anyhow::Result<()> {
        let d = self.dir.path().join(format!("nginx-{}", stack.name()));
        let www = d.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("1k.html"), "x".repeat(1024))?;
        let conf = d.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&d, &www))?;
        let mut c = self.net.a(stack, &self.tools.nginx);
        c.args(["-p"])
            .arg(&d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(&conf);
        let server = Server::spawn(c, "nginx")?;
        wait_http(&self.net, &format!("http://{IP}:{NGINX}/1k.html"))?;
        let mut wrk = self.net.b(&self.tools.wrk);
        wrk.args(["-t2", "-c32", "-d", &format!("{}s", self.secs), "--timeout", "5s"])
            .arg(format!("http://{IP}:{NGINX}/1k.html"));
        let out = run_timed(&mut wrk)?;
        server.stop("TERM", Duration::from_secs(15))?;
        if out.stdout.contains("Non-2xx") || out.stdout.contains("Socket errors") {
            bail!("wrk saw errors:\n{}", out.stdout);
        }
        let rps: f64 = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no Requests/sec in wrk's output:\n{}", out.stdout))?;
        self.report.record(
            "nginx.rps",
            "5 nginx + wrk",
            "1 KB page, keep-alive, 32 connections",
            "req/s",
            Better::Higher,
            None,
            stack,
            rps,
        );
        Ok(())
    }

    /// 6: a trapped call's round trip, and an untrapped call's cost under
    /// the filter.
    fn syscalls(&mut self, stack: Stack) -> anyhow::Result<()> {
        for (mode, iters, id, label, target) in [
            (
                "getsockopt",
                "200000",
                "sys.trapped",
                "getsockopt(SO_TYPE) on a TCP socket (trapped under Joyride)",
                Some(Target::JoyrideAtMost(2000.0)),
            ),
            (
                "readzero",
                "2000000",
                "sys.untrapped",
                "read(/dev/zero, 1 B) (never trapped)",
                Some(Target::RatioAtMost(1.01)),
            ),
        ] {
            let mut c = self.net.a(stack, &self.tools.syscall_loop);
            c.args([mode, iters]);
            let ns: f64 = run_timed(&mut c)?.field("ns_per_call")?;
            self.report
                .record(id, "6 system calls", label, "ns/call", Better::Lower, target, stack, ns);
        }
        // A file-I/O program: dd copying a cached file 1 KiB at a time (a
        // read and a write per KiB, none of them trapped).
        let file = self.dir.path().join("dd.in");
        if !file.exists() {
            std::fs::write(&file, vec![0x5au8; DD_BYTES])?;
        }
        let mut c = self.net.a(stack, "dd");
        c.arg(format!("if={}", file.display())).args(["of=/dev/null", "bs=1k"]);
        let out = run_timed(&mut c)?;
        // "536870912 bytes (537 MB, 512 MiB) copied, 0.61 s, 880 MB/s"
        let secs: f64 = out
            .stderr
            .lines()
            .find_map(|l| l.split_once(" copied, ")?.1.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no time in dd's output: {}", out.stderr))?;
        self.report.record(
            "sys.dd",
            "6 system calls",
            "dd bs=1k of a cached 512 MiB file (untrapped read+write)",
            "ns/KiB",
            Better::Lower,
            Some(Target::RatioAtMost(1.01)),
            stack,
            secs * 1e9 / (DD_BYTES / 1024) as f64,
        );
        Ok(())
    }

    /// 8: CPU of an idle program's process tree over 10 s (Joyride: the
    /// supervisor's, whose program sleeps), and wake-up latency: 1-byte
    /// request/response with 100 ms of silence before each.
    fn idle(&mut self, stack: Stack) -> anyhow::Result<()> {
        let c = {
            let mut c = self.net.a(stack, "/bin/sh");
            c.args(["-c", "echo ready; exec sleep 12"]);
            c
        };
        let server = Server::start(c, "idle sleep", START)?;
        // Past the start (EAL, port), before measuring.
        std::thread::sleep(Duration::from_millis(500));
        let pid = server.pid();
        let t0 = Instant::now();
        let c0 = process_cpu_seconds(pid)?;
        std::thread::sleep(Duration::from_secs(10));
        let c1 = process_cpu_seconds(pid)?;
        let pct = (c1 - c0) / t0.elapsed().as_secs_f64() * 100.0;
        drop(server);
        self.report.record(
            "idle.cpu",
            "8 idle",
            "CPU of an idle program (Joyride: its supervisor), 10 s",
            "% of a core",
            Better::Lower,
            Some(Target::JoyrideAtMost(1.0)),
            stack,
            pct,
        );
        let out =
            run_timed(&mut self.netload_a(stack, &["tcp-rr", PEER_IP, &TCP_ECHO.to_string(), "1", "30", "100000"]))?;
        for (key, pct) in [("p50_ns", "p50"), ("p99_ns", "p99")] {
            let ns: f64 = out.field(key)?;
            self.report.record(
                &format!("wake.{pct}"),
                "8 idle",
                &format!("wake-up: 1 B request/response after 100 ms idle, {pct}"),
                "µs",
                Better::Lower,
                None,
                stack,
                ns / 1000.0,
            );
        }
        Ok(())
    }
}

/// nginx's configuration: one worker (the machine has few cores and
/// Joyride's engine takes one), keep-alive without limit, logs off.
fn nginx_conf(d: &Path, www: &Path) -> String {
    let d = d.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser www-data;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ use epoll; worker_connections 1024; }}\n\
         http {{\n  sendfile on;\n  access_log off;\n  keepalive_requests 1000000;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  types {{ text/html html; }}\n\
         server {{ listen {IP}:{NGINX}; root {}; }}\n}}\n",
        www.display()
    )
}

/// Waits until something listens on TCP `port` in ns B.
fn wait_tcp_listen(net: &BenchNet, port: u16) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < START {
        let out = net.b("ss").args(["-tlnH", &format!("sport = :{port}")]).output()?;
        if !out.stdout.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listens on port {port} in the peer namespace after {START:?}")
}

/// Waits until `url` answers 200 from ns B.
fn wait_http(net: &BenchNet, url: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < START {
        let st = net
            .b("curl")
            .args(["-sf", "-o", "/dev/null", "--max-time", "2", url])
            .status()?;
        if st.success() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{url} did not answer from the peer namespace within {START:?}")
}
