//! Fixture of the `joyride exec` acceptance tests (`tests/tests/exec.rs`):
//! real programs run under `joyride exec` in a "target" namespace whose veth
//! end is driven by the user-space stack through DPDK `net_af_packet`, and
//! Linux kernel peers in a "peer" namespace.
//!
//! ```text
//!   ns A (target): joyride exec -- PROG      ns B (peer): kernel programs
//!   vA (no kernel address; the stack owns    vB 10.99.X.1/24, fd99:X::1/64
//!   10.99.X.2/24 and fd99:X::2/64)  ——veth——
//! ```
//!
//! Harness validation: with `JOYRIDE_EXEC_ON_KERNEL=1` vA gets the kernel
//! addresses 10.99.X.2/24 and fd99:X::2/64 instead and programs run in ns A
//! directly on the kernel stack; the checks that only make sense under
//! Joyride (the `--stats` block, no kernel socket in `ss`) are skipped, or
//! turned around where that validates them (a kernel listener *is* seen).
//! `embedded_default_network` tests the network `joyride exec` makes for
//! itself and has no kernel-mode run: validate with
//! `JOYRIDE_EXEC_ON_KERNEL=1 cargo test -p joyride-tests --test exec --
//! --skip embedded_default_network`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{joyride, program_source, require_root, sh, unique, SEQ};

/// True when the tests validate themselves on the kernel stack
/// (`JOYRIDE_EXEC_ON_KERNEL=1`) instead of running programs under Joyride.
pub fn kernel_mode() -> bool {
    std::env::var("JOYRIDE_EXEC_ON_KERNEL").is_ok_and(|v| v == "1")
}

/// `/usr/bin/python3` (on these machines `python3` in PATH may be a pyenv
/// shim, a bash script).
pub const PYTHON: &str = "/usr/bin/python3";

/// Panics unless the `joyride` binary has an `exec` subcommand: in the
/// default mode the tests must fail, not skip, while it is missing.
pub fn require_exec() {
    static HAS_EXEC: OnceLock<Result<(), String>> = OnceLock::new();
    let r = HAS_EXEC.get_or_init(|| {
        let bin = joyride();
        let out = Command::new(&bin)
            .args(["exec", "--help"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} has no working `exec` subcommand ({}): {}\n(run with JOYRIDE_EXEC_ON_KERNEL=1 to validate \
                 these tests on the kernel stack)",
                bin.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// The two namespaces of one test (see the module documentation); removed
/// on drop with everything still running in them.
pub struct ExecNet {
    /// Target namespace: where joyride and the program under test run.
    pub a_ns: String,
    /// Peer namespace: the kernel peers.
    pub b_ns: String,
    /// Target veth end (driven by the stack through DPDK).
    pub a_dev: String,
    /// Peer veth end.
    pub b_dev: String,
    /// The subnet's third octet / second IPv6 group: 10.99.X.0/24, fd99:X::/64.
    pub x: u8,
    /// The program's (the stack's) IPv4 address, 10.99.X.2.
    pub ip: String,
    /// The program's IPv6 address, fd99:X::2.
    pub ip6: String,
    /// The peer's IPv4 address, 10.99.X.1.
    pub peer_ip: String,
    /// The peer's IPv6 address, fd99:X::1.
    pub peer_ip6: String,
    /// Harness validation on the kernel stack (see [`kernel_mode`]).
    pub kernel: bool,
    /// Stack instances of `joyride exec` (`--cores`), and queues of the veth.
    pub cores: u16,
}

impl ExecNet {
    /// Creates the namespaces and the veth pair, offloads off on both ends.
    pub fn new() -> ExecNet {
        ExecNet::with_cores(1)
    }

    /// [`ExecNet::new`] with a veth of `cores` queues, and `joyride exec
    /// --cores CORES`.
    pub fn with_cores(cores: u16) -> ExecNet {
        require_root();
        let kernel = kernel_mode();
        if !kernel {
            require_exec();
        }
        let id = unique("x");
        let x = (SEQ.fetch_add(1, Ordering::Relaxed) % 250) as u8 + 1;
        let net = ExecNet {
            a_ns: format!("{id}A"),
            b_ns: format!("{id}B"),
            a_dev: format!("{id}a"),
            b_dev: format!("{id}b"),
            x,
            ip: format!("10.99.{x}.2"),
            ip6: format!("fd99:{x}::2"),
            peer_ip: format!("10.99.{x}.1"),
            peer_ip6: format!("fd99:{x}::1"),
            kernel,
            cores,
        };
        sh(&["ip", "netns", "add", &net.a_ns]);
        sh(&["ip", "netns", "add", &net.b_ns]);
        // `ip netns exec A` bind-mounts these over /etc: the target's own
        // names and resolver (the peer, where nothing answers port 53 but
        // the DNS test's dnsmasq), so that no program under test waits on
        // the host's resolver through the peer or reaches one on loopback
        // (python's http.server looks its address up at start).
        let etc = net.etc_dir();
        std::fs::create_dir_all(&etc).expect("/etc/netns/NS");
        std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n::1 localhost\n{} joyride-target\n", net.ip),
        )
        .expect("write hosts");
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {}\n", net.peer_ip)).expect("write resolv.conf");
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
            &net.b_dev,
            "netns",
            &net.b_ns,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ]);
        for (ns, dev) in [(&net.a_ns, &net.a_dev), (&net.b_ns, &net.b_dev)] {
            // af_packet sees frames with partial checksums and larger than
            // the MTU otherwise.
            sh(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                "gro", "off",
            ]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let b_addrs = [(&net.peer_ip, "24"), (&net.peer_ip6, "64")];
        for (addr, len) in b_addrs {
            sh(&[
                "ip",
                "-n",
                &net.b_ns,
                "addr",
                "add",
                &format!("{addr}/{len}"),
                "dev",
                &net.b_dev,
                "nodad",
            ]);
        }
        if kernel {
            for (addr, len) in [(&net.ip, "24"), (&net.ip6, "64")] {
                sh(&[
                    "ip",
                    "-n",
                    &net.a_ns,
                    "addr",
                    "add",
                    &format!("{addr}/{len}"),
                    "dev",
                    &net.a_dev,
                    "nodad",
                ]);
            }
        } else {
            // The kernel keeps out of the stack's way on vA: no address, not
            // even an IPv6 link-local one (no router solicitations, no MLD).
            sh(&[
                "ip",
                "netns",
                "exec",
                &net.a_ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{}.disable_ipv6=1", net.a_dev),
            ]);
        }
        sh(&["ip", "-n", &net.a_ns, "link", "set", &net.a_dev, "up"]);
        sh(&["ip", "-n", &net.b_ns, "link", "set", &net.b_dev, "up"]);
        net
    }

    /// `/etc/netns/A`: files `ip netns exec A` puts over /etc's.
    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.a_ns)
    }

    /// `prog` run in the target namespace under `joyride exec` on vA with
    /// the stack's addresses and `--stats` (in kernel mode: directly in the
    /// target namespace). Add the program's arguments.
    pub fn under_joyride(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.a_ns]);
        if !self.kernel {
            c.arg(joyride()).args([
                "exec",
                "--nic",
                &format!("net_af_packet0,iface={}", self.a_dev),
                "--ip",
                &format!("{}/24", self.ip),
                "--ip",
                &format!("{}/64", self.ip6),
                "--gateway",
                &self.peer_ip,
                "--stats",
                "--cores",
                &self.cores.to_string(),
                "--",
            ]);
        }
        c.arg(prog);
        c
    }

    /// `prog` run on the kernel stack in the peer namespace.
    pub fn peer(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.b_ns]).arg(prog);
        c
    }

    /// `prog` run in the target namespace without Joyride (`ss`, say).
    pub fn target(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.a_ns]).arg(prog);
        c
    }

    /// `tests/programs/exec_peer.py MODE ARGS...` in the peer namespace.
    pub fn peer_py(&self, mode: &str, args: &[&str]) -> Command {
        let mut c = self.peer(PYTHON);
        c.arg("-u").arg(program_source("exec_peer.py")).arg(mode).args(args);
        c
    }

    /// The kernel's TCP and UDP sockets in the target namespace
    /// (`ss -tuanH`), one line each.
    pub fn kernel_sockets(&self) -> Vec<String> {
        let out = self.target("ss").arg("-tuanH").output().expect("run ss");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lines of [`Self::kernel_sockets`] that involve the peer's
    /// addresses or local `port`.
    pub fn kernel_sockets_for(&self, port: Option<u16>) -> Vec<String> {
        let port = port.map(|p| format!(":{p}"));
        let (v4, v6) = (format!("{}:", self.peer_ip), format!("[{}]:", self.peer_ip6));
        self.kernel_sockets()
            .into_iter()
            .filter(|l| {
                // Netid State Recv-Q Send-Q Local:Port Peer:Port [Process]
                let cols: Vec<&str> = l.split_whitespace().collect();
                let (local, remote) = (cols.get(4).copied().unwrap_or(""), cols.get(5).copied().unwrap_or(""));
                // Loopback is the kernel's by design (joyride may mirror a
                // wildcard listener there).
                let loopback = ["127.", "[::1]", "[::ffff:127."].iter().any(|p| local.starts_with(p));
                remote.starts_with(&v4)
                    || remote.starts_with(&v6)
                    || (!loopback && port.as_ref().is_some_and(|p| local.ends_with(p.as_str())))
            })
            .collect()
    }

    /// Under Joyride: the kernel holds no TCP/UDP socket in the target
    /// namespace for the peer's addresses or for the program's `port`. In
    /// kernel mode the opposite, which validates the check: the program's
    /// kernel socket on `port` is visible.
    #[track_caller]
    pub fn assert_no_kernel_socket(&self, port: u16) {
        let seen = self.kernel_sockets_for(Some(port));
        if self.kernel {
            assert!(
                !seen.is_empty(),
                "kernel mode: ss shows no socket on port {port} in {}: {:?}",
                self.a_ns,
                self.kernel_sockets()
            );
        } else {
            assert!(
                seen.is_empty(),
                "the kernel serves sockets of the program under joyride (ss -tuanH in {}):\n{}",
                self.a_ns,
                seen.join("\n")
            );
        }
    }

    /// Waits until a TCP connect from the peer namespace to the program's
    /// `port` succeeds (the server under test is up); panics with the
    /// server's output if it ends first or after `secs`.
    #[track_caller]
    pub fn wait_served(&self, server: &mut Program, port: u16, secs: u32) {
        let mut probe = Program::spawn(
            self.peer_py("wait", &[&self.ip, &port.to_string(), &secs.to_string()]),
            Stdio::null(),
        );
        let deadline = Instant::now() + Duration::from_secs(u64::from(secs) + 10);
        loop {
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                let ran = server.collect(status);
                panic!(
                    "the server under test ended before answering on port {port}:\n{}",
                    ran.describe()
                );
            }
            if let Some(status) = probe.child.try_wait().expect("try_wait") {
                let ran = probe.collect(status);
                if ran.status.success() {
                    return;
                }
                let srv = server.kill_and_collect();
                panic!(
                    "the program under test does not answer on {}:{port}: {}\nits output:\n{}",
                    self.ip,
                    ran.stderr,
                    srv.describe()
                );
            }
            if Instant::now() > deadline {
                let srv = server.kill_and_collect();
                panic!("timed out waiting for {}:{port}:\n{}", self.ip, srv.describe());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a kernel peer listens on `port` in the peer namespace
    /// (TCP, or UDP when `udp`).
    #[track_caller]
    pub fn wait_peer_listen(&self, port: u16, udp: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let needle = format!(":{port} ");
        while Instant::now() < deadline {
            let out = self
                .peer("ss")
                .arg(if udp { "-Huln" } else { "-Htln" })
                .output()
                .expect("ss");
            if String::from_utf8_lossy(&out.stdout).contains(&needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("no peer listens on port {port} in {}", self.b_ns);
    }

    /// Checks the `--stats` block of a run under Joyride (see
    /// [`check_stats`]) and returns the counters; `None` in kernel mode,
    /// where nothing is checked.
    #[track_caller]
    pub fn assert_stats(&self, stderr: &str, expect: &[Served]) -> Option<Stats> {
        if self.kernel {
            return None;
        }
        match check_stats(stderr, expect) {
            Ok(stats) => {
                let keys = [
                    "tcp_active_opens",
                    "tcp_passive_opens",
                    "tcp_retransmits",
                    "udp_datagrams_in",
                    "udp_datagrams_out",
                    "sockets_user",
                    "sockets_kernel",
                ];
                let shown: Vec<String> = keys.iter().map(|k| format!("{k}={}", stats.get(k))).collect();
                eprintln!("joyride stats: {}", shown.join(" "));
                Some(stats)
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Runs `cmd` (usually from [`Self::under_joyride`]) to its end with a
    /// time limit, watching the kernel's sockets in the target namespace
    /// every ~250 ms; under Joyride asserts none involved the peer.
    #[track_caller]
    pub fn run_watched(&self, cmd: Command, timeout: Duration) -> Ran {
        self.run_watched_with(cmd, Stdio::null(), None, timeout)
    }

    /// [`Self::run_watched`] with `stdin`, also watching for kernel sockets
    /// on the program's local `port`.
    #[track_caller]
    pub fn run_watched_with(&self, cmd: Command, stdin: Stdio, port: Option<u16>, timeout: Duration) -> Ran {
        let mut p = Program::spawn(cmd, stdin);
        let deadline = Instant::now() + timeout;
        let mut seen: Vec<String> = Vec::new();
        let mut next_look = Instant::now() + Duration::from_millis(100);
        loop {
            if let Some(status) = p.child.try_wait().expect("try_wait") {
                let ran = p.collect(status);
                if !self.kernel {
                    assert!(
                        seen.is_empty(),
                        "kernel sockets for the peer in the target namespace while the program ran:\n{}\n{}",
                        seen.join("\n"),
                        ran.describe()
                    );
                }
                return ran;
            }
            if Instant::now() > deadline {
                let partial = p.kill_and_collect();
                panic!("timed out after {timeout:?}; killed.\n{}", partial.describe());
            }
            if Instant::now() > next_look {
                seen.extend(self.kernel_sockets_for(port));
                next_look = Instant::now() + Duration::from_millis(250);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Default for ExecNet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ExecNet {
    fn drop(&mut self) {
        // Whatever still runs in the namespaces (a peer whose guard was
        // leaked) is killed first; deleting a namespace removes its veth end.
        for ns in [&self.a_ns, &self.b_ns] {
            kill_netns(ns);
        }
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}

/// Checks a `--stats` block: every counter of the contract present,
/// `sockets_kernel == 0`, `sockets_user > 0`, frames both ways, and each of
/// `expect` non-zero.
pub fn check_stats(stderr: &str, expect: &[Served]) -> Result<Stats, String> {
    let stats = Stats::parse(stderr).ok_or_else(|| format!("no `joyride stats:` block in stderr:\n{stderr}"))?;
    let fail = |what: String| Err(format!("{what}:\n{stderr}"));
    for key in STATS_KEYS {
        if !stats.0.contains_key(*key) {
            return fail(format!("the stats lack {key}"));
        }
    }
    if stats.get("sockets_kernel") != 0 {
        return fail(format!(
            "{} sockets were handed to the kernel (by policy: loopback, --kernel)",
            stats.get("sockets_kernel")
        ));
    }
    if stats.get("sockets_user") == 0 {
        return fail("no socket served by the user-space stack".into());
    }
    if stats.get("rx_frames") == 0 || stats.get("tx_frames") == 0 {
        return fail("no frames both ways".into());
    }
    for e in expect {
        let ok = match e {
            Served::ActiveOpens => stats.get("tcp_active_opens") > 0,
            Served::PassiveOpens => stats.get("tcp_passive_opens") > 0,
            Served::Udp => stats.get("udp_datagrams_in") > 0 && stats.get("udp_datagrams_out") > 0,
        };
        if !ok {
            return fail(format!("expected {e:?} in the stats"));
        }
    }
    Ok(stats)
}

/// The counters `joyride exec --stats` must print.
pub const STATS_KEYS: &[&str] = &[
    "rx_frames",
    "tx_frames",
    "rx_bytes",
    "tx_bytes",
    "tcp_active_opens",
    "tcp_passive_opens",
    "tcp_retransmits",
    "udp_datagrams_in",
    "udp_datagrams_out",
    "sockets_user",
    "sockets_kernel",
];

/// What a run's `--stats` must show the stack did.
#[derive(Debug, Clone, Copy)]
pub enum Served {
    /// `tcp_active_opens > 0` (the program connected).
    ActiveOpens,
    /// `tcp_passive_opens > 0` (the program accepted).
    PassiveOpens,
    /// `udp_datagrams_in > 0` and `udp_datagrams_out > 0`.
    Udp,
}

/// The counters of a `joyride stats:` block.
#[derive(Debug, Clone, Default)]
pub struct Stats(pub HashMap<String, u64>);

impl Stats {
    /// Parses the last `joyride stats:` block of `stderr`: the lines
    /// `  KEY VALUE` that follow it.
    pub fn parse(stderr: &str) -> Option<Stats> {
        let start = stderr.rfind("joyride stats:")?;
        let mut map = HashMap::new();
        for line in stderr[start..].lines().skip(1) {
            let mut words = line.split_whitespace();
            match (line.starts_with(' '), words.next(), words.next(), words.next()) {
                (true, Some(k), Some(v), None) => match v.parse() {
                    Ok(v) => {
                        map.insert(k.to_owned(), v);
                    }
                    Err(_) => break,
                },
                _ => break,
            }
        }
        Some(Stats(map))
    }

    /// Counter `key` (0 when absent).
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

/// A finished program.
#[derive(Debug)]
pub struct Ran {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Ran {
    /// Standard output as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Status and both outputs, for failure messages (long outputs cut).
    pub fn describe(&self) -> String {
        let cut = |s: &str| -> String {
            if s.len() > 4000 {
                let mut end = 4000;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}...[{} bytes]", &s[..end], s.len())
            } else {
                s.to_owned()
            }
        };
        format!(
            "status: {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            cut(&self.out()),
            cut(&self.stderr)
        )
    }

    /// Panics with the outputs unless the program exited 0.
    #[track_caller]
    pub fn assert_ok(&self, what: &str) {
        assert!(self.status.success(), "{what} failed:\n{}", self.describe());
    }
}

/// Runs `cmd` to its end with a time limit (killed with its process group
/// and a panic past it); stdin is null.
#[track_caller]
pub fn run(cmd: Command, timeout: Duration) -> Ran {
    let mut p = Program::spawn(cmd, Stdio::null());
    match p.wait_timeout(timeout) {
        Some(ran) => ran,
        None => {
            let partial = p.kill_and_collect();
            panic!("timed out after {timeout:?}; killed.\n{}", partial.describe());
        }
    }
}

/// A program running in the background in its own process group, its
/// outputs collected; killed (the whole group) on drop.
pub struct Program {
    /// The child: `ip netns exec`, which execs joyride (or the program).
    pub child: Child,
    /// Its stdin when spawned with one.
    pub stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    done: bool,
}

impl Program {
    /// Starts `cmd` in its own process group with piped outputs and `stdin`
    /// (`Stdio::piped()` leaves it in [`Self::stdin`]).
    pub fn spawn(mut cmd: Command, stdin: Stdio) -> Program {
        use std::os::unix::process::CommandExt;
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        readers.push(pump(out, stdout.clone()));
        readers.push(pump(err, stderr.clone()));
        Program {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            done: false,
        }
    }

    /// Everything written to stdout so far.
    pub fn stdout_so_far(&self) -> Vec<u8> {
        self.stdout.lock().expect("lock").clone()
    }

    /// Everything written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned()
    }

    /// Waits until stdout contains `needle`; panics (with the outputs) past
    /// `timeout` or if the program ends first.
    #[track_caller]
    pub fn wait_stdout(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if String::from_utf8_lossy(&self.stdout_so_far()).contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let ran = self.collect(status);
                panic!("ended before printing {needle:?}:\n{}", ran.describe());
            }
            if Instant::now() > deadline {
                let ran = self.kill_and_collect();
                panic!("no {needle:?} after {timeout:?}:\n{}", ran.describe());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the program under test: the child itself in kernel mode
    /// (`ip netns exec` execs the program), else joyride's children (the
    /// supervised program), or joyride itself if it has none yet.
    pub fn program_pids(&self, kernel: bool) -> Vec<u32> {
        let pid = self.child.id();
        if kernel {
            return vec![pid];
        }
        let kids = children(pid);
        if kids.is_empty() {
            vec![pid]
        } else {
            kids
        }
    }

    /// Sends `signal` (e.g. "TERM") to the program under test (see
    /// [`Self::program_pids`]) and waits for the run to end; kills the group
    /// past `timeout` and panics.
    #[track_caller]
    pub fn stop(&mut self, signal: &str, kernel: bool, timeout: Duration) -> Ran {
        for pid in self.program_pids(kernel) {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &pid.to_string()])
                .status();
        }
        match self.wait_timeout(timeout) {
            Some(ran) => ran,
            None => {
                let ran = self.kill_and_collect();
                panic!(
                    "did not stop within {timeout:?} of SIG{signal}; killed.\n{}",
                    ran.describe()
                );
            }
        }
    }

    /// Panics with the outputs if the program has ended.
    #[track_caller]
    pub fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            let ran = self.collect(status);
            panic!("{what} ended early:\n{}", ran.describe());
        }
    }

    /// Waits for the end for up to `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Ran> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(self.collect(status));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process group and returns what it printed.
    pub fn kill_and_collect(&mut self) -> Ran {
        self.kill_group();
        let status = self.child.wait().expect("wait");
        self.collect(status)
    }

    fn kill_group(&mut self) {
        if !self.done {
            let pgid = self.child.id();
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        }
    }

    /// Collects the outputs of a run that ended with `status`.
    pub fn collect(&mut self, status: ExitStatus) -> Ran {
        self.done = true;
        self.stdin = None;
        // The group may live on (a daemon child holding the pipes): end it
        // so that the readers see EOF.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ran {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().expect("lock")),
            stderr: String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned(),
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if !self.done {
            self.kill_group();
            let _ = self.child.wait();
            self.done = true;
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

fn pump(mut from: impl Read + Send + 'static, to: Arc<Mutex<Vec<u8>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => to.lock().expect("lock").extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Direct children of `pid` (all its threads').
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A network namespace of its own (for the embedded default network, so
/// that the host is untouched); deleted on drop, what runs in it killed.
pub struct Netns(pub String);

impl Netns {
    /// Creates a fresh namespace with `lo` up.
    pub fn new() -> Netns {
        require_root();
        let ns = Netns(format!("{}T", unique("x")));
        sh(&["ip", "netns", "add", &ns.0]);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// `prog` run in the namespace.
    pub fn cmd(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(prog);
        c
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_netns(&self.0);
    }
}

fn kill_netns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Open file descriptors of `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Writes `len` deterministic pseudo-random bytes (xorshift64, `seed`) to
/// `path` and returns their SHA-256 (hex, via `sha256sum`).
pub fn random_file(path: &Path, len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut left = len;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        let n = left.min(block.len());
        for chunk in block[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        f.write_all(&block[..n]).expect("write");
        left -= n;
    }
    f.flush().expect("flush");
    drop(f);
    sha256_file(path)
}

/// Hex SHA-256 of a file (`sha256sum`).
pub fn sha256_file(path: &Path) -> String {
    let out = sh(&["sha256sum", path.to_str().expect("utf-8")]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_owned()
}

/// Hex SHA-256 of bytes (`sha256sum` on stdin).
pub fn sha256_bytes(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("sha256sum");
    let _ = writer.join();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_owned()
}

/// A free-standing path to a program the tests need, with a clear failure
/// when the package is missing (`scripts/setup.sh` installs them all).
#[track_caller]
pub fn need(prog: &str) -> PathBuf {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let p = Path::new(dir).join(prog);
        if p.exists() {
            return p;
        }
    }
    panic!("{prog} is not installed: run scripts/setup.sh");
}
