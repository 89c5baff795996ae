//! The link of `joyride-bench`: two network namespaces joined by a veth
//! pair, the measured program in one, the kernel peers in the other.
//!
//! ```text
//!   ns A (measured program)                 ns B (kernel peers)
//!   vA: Joyride's stack (DPDK port)        vB 10.96.0.1/24
//!       or the kernel, 10.96.0.2/24  ——veth——
//! ```
//!
//! The same veth end serves both stacks, one after the other: for a kernel
//! run vA carries 10.96.0.2 in the kernel and the program runs directly in
//! ns A; for a Joyride run vA has no kernel address (and no IPv6) and the
//! program runs under `joyride exec --nic <PMD>0,iface=vA` with the port
//! the embedded default network uses. Offloads are off on both ends, as `joyride
//! exec` sets them on its embedded network, so both stacks see MTU-sized
//! frames on the same link.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Which stack serves the measured program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// The Linux kernel's stack.
    Kernel,
    /// Joyride's stack, the program under `joyride exec`.
    Joyride,
}

impl Stack {
    /// Lower-case name, for JSON and messages.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Kernel => "kernel",
            Stack::Joyride => "joyride",
        }
    }
}

/// The namespaces and the veth pair; removed on drop.
#[derive(Debug)]
pub struct BenchNet {
    a_ns: String,
    b_ns: String,
    a_dev: String,
    joyride: PathBuf,
    pmd: String,
    /// `joyride exec --cores`, and the queues of the veth.
    cores: u16,
    current: Option<Stack>,
}

/// The measured program's address (the stack's, or vA's in the kernel).
pub const IP: &str = "10.96.0.2";
/// The kernel peer's address on vB.
pub const PEER_IP: &str = "10.96.0.1";

/// Runs a setup command, failing with its standard error.
fn sh(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl BenchNet {
    /// Creates the namespaces and the link; `joyride` is the binary that
    /// runs programs on Joyride's stack, `pmd` the DPDK driver on vA
    /// (`net_af_xdp` or `net_af_packet`), with `cores` stack instances (and
    /// veth queues).
    pub fn new(joyride: PathBuf, pmd: &str, cores: u16) -> anyhow::Result<BenchNet> {
        let id = std::process::id();
        let net = BenchNet {
            a_ns: format!("jrbench{id}A"),
            b_ns: format!("jrbench{id}B"),
            a_dev: format!("jrb{id}a"),
            joyride,
            pmd: pmd.to_string(),
            cores,
            current: None,
        };
        let b_dev = format!("jrb{id}b");
        sh(&["ip", "netns", "add", &net.a_ns])?;
        sh(&["ip", "netns", "add", &net.b_ns])?;
        let q = cores.to_string();
        sh(&[
            "ip",
            "link",
            "add",
            &net.a_dev,
            "netns",
            &net.a_ns,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &b_dev,
            "netns",
            &net.b_ns,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ])?;
        for (ns, dev) in [(&net.a_ns, &net.a_dev), (&net.b_ns, &b_dev)] {
            sh(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                "gro", "off",
            ])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        sh(&[
            "ip",
            "-n",
            &net.b_ns,
            "addr",
            "add",
            &format!("{PEER_IP}/24"),
            "dev",
            &b_dev,
        ])?;
        Ok(net)
    }

    /// Gives vA to `stack`: the kernel address for the kernel, none for
    /// Joyride.
    pub fn use_stack(&mut self, stack: Stack) -> anyhow::Result<()> {
        if self.current == Some(stack) {
            return Ok(());
        }
        let sysctl = format!("net.ipv6.conf.{}.disable_ipv6", self.a_dev);
        match stack {
            Stack::Kernel => {
                // An XDP program left by a Joyride run that was killed
                // would take the kernel's frames.
                sh(&["ip", "-n", &self.a_ns, "link", "set", "dev", &self.a_dev, "xdp", "off"])?;
                self.a_sysctl(&format!("{sysctl}=0"))?;
                sh(&[
                    "ip",
                    "-n",
                    &self.a_ns,
                    "addr",
                    "add",
                    &format!("{IP}/24"),
                    "dev",
                    &self.a_dev,
                ])?;
            }
            Stack::Joyride => {
                sh(&["ip", "-n", &self.a_ns, "addr", "flush", "dev", &self.a_dev])?;
                self.a_sysctl(&format!("{sysctl}=1"))?;
            }
        }
        self.current = Some(stack);
        Ok(())
    }

    /// `sysctl -w setting` in ns A.
    fn a_sysctl(&self, setting: &str) -> anyhow::Result<()> {
        sh(&["ip", "netns", "exec", &self.a_ns, "sysctl", "-qw", setting])
    }

    /// `prog` in ns A on `stack` (call [`BenchNet::use_stack`] first); add
    /// its arguments.
    pub fn a(&self, stack: Stack, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.a_ns]);
        if stack == Stack::Joyride {
            c.arg(&self.joyride).args([
                "exec",
                "--nic",
                &self.devargs(),
                "--ip",
                &format!("{IP}/24"),
                "--cores",
                &self.cores.to_string(),
                "--",
            ]);
        }
        c.arg(prog);
        c
    }

    /// The DPDK device arguments of vA's port (`joyride exec` adds the
    /// queue counts).
    pub fn devargs(&self) -> String {
        format!("{}0,iface={}", self.pmd, self.a_dev)
    }

    /// `prog` in ns B, on the kernel stack; add its arguments.
    pub fn b(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.b_ns]).arg(prog);
        c
    }
}

impl Drop for BenchNet {
    fn drop(&mut self) {
        for ns in [&self.a_ns, &self.b_ns] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A program started in the background, killed on drop unless it was
/// waited for. [`Server::start`] waits for its first line (`ready`, say);
/// [`Server::spawn`] for nothing.
#[derive(Debug)]
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    what: String,
}

impl Server {
    /// Starts `cmd` and waits (at most `timeout`) for its first line of
    /// output.
    pub fn start(cmd: Command, what: &str, timeout: Duration) -> anyhow::Result<Server> {
        let mut server = Server::spawn(cmd, what)?;
        server.line(timeout)?;
        Ok(server)
    }

    /// Starts `cmd` (its output lines are kept for [`Server::line`]).
    pub fn spawn(mut cmd: Command, what: &str) -> anyhow::Result<Server> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("cannot start {what}"))?;
        let stdout: ChildStdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Server {
            child,
            lines,
            what: what.to_string(),
        })
    }

    /// The next line of output, waiting at most `timeout`.
    pub fn line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.stderr_text();
                bail!("{} said nothing within {timeout:?}: {err}", self.what)
            }
        }
    }

    /// The process id (of `ip netns exec`, which became the program or
    /// `joyride`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal`, then [`Server::wait_exit`].
    pub fn stop(mut self, signal: &str, timeout: Duration) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        self.wait_exit(timeout).with_context(|| format!("after SIG{signal}"))
    }

    /// Waits at most `timeout` for the exit (it is killed on drop after
    /// that). Fails unless it exited with status 0.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    let err = self.stderr_text();
                    bail!("{} exited with {status}: {err}", self.what);
                }
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("{} did not exit within {timeout:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What it wrote on standard error (once it exited).
    fn stderr_text(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err.trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of process `pid` and all its threads, from
/// `/proc/PID/stat`, in seconds.
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid}"))?;
    // The command name (field 2) may hold spaces; fields after its closing
    // parenthesis are plain.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("odd /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/PID/stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / clock_ticks())
}

/// Busy CPU time of the whole machine so far (everything but idle and
/// I/O wait, all CPUs), from `/proc/stat`, in seconds.
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    Ok(busy as f64 / clock_ticks())
}

/// USER_HZ, the unit of `/proc`'s CPU times.
fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux architecture Joyride runs on (the
    // kernel's ABI, independent of CONFIG_HZ).
    100.0
}
