//! Harness for Joyride's end-to-end tests: network namespaces joined by veth
//! pairs (unique names, removed on drop), background peers that are killed on
//! drop, programs compiled for the test (C, 32-bit C, static Go), and the
//! `joyride` binary under test.
//!
//! Every test runs real programs against the Linux kernel as the peer; the
//! tests need root (network namespaces) and say so when they do not have it.

pub mod exec;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `joyride` binary of this build (next to the test executable).
pub fn joyride() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/joyride
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("joyride");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p joyride`, or run the README's test command)",
        bin.display()
    );
    bin
}

/// Panics with a clear message unless running as root.
pub fn require_root() {
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    assert_eq!(euid, "0", "these tests create network namespaces and must run as root");
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: `jr<pid%10000><seq>`.
fn unique(tag: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("jr{tag}{}{}", std::process::id() % 10000, n)
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two network namespaces joined by a veth pair: a server side and a client
/// side, each with one IPv4 and one IPv6 address. Removed on drop.
pub struct Net {
    /// Server namespace name.
    pub server_ns: String,
    /// Client namespace name.
    pub client_ns: String,
    /// Server IPv4 address.
    pub server_ip: String,
    /// Client IPv4 address.
    pub client_ip: String,
    /// Server IPv6 address.
    pub server_ip6: String,
}

impl Net {
    /// Creates the namespaces and the link, and waits for IPv6 to be usable.
    pub fn new() -> Net {
        require_root();
        let id = unique("");
        let server_ns = format!("{id}s");
        let client_ns = format!("{id}c");
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let a = (std::process::id() % 200) as u8 + 20;
        let b = (n % 250) as u8 + 1;
        let server_ip = format!("10.{a}.{b}.2");
        let client_ip = format!("10.{a}.{b}.1");
        let server_ip6 = format!("fd00:{a}:{b}::2");
        let client_ip6 = format!("fd00:{a}:{b}::1");
        let net = Net {
            server_ns: server_ns.clone(),
            client_ns: client_ns.clone(),
            server_ip: server_ip.clone(),
            client_ip: client_ip.clone(),
            server_ip6: server_ip6.clone(),
        };
        sh(&["ip", "netns", "add", &server_ns]);
        sh(&["ip", "netns", "add", &client_ns]);
        let (vs, vc) = (format!("{id}a"), format!("{id}b"));
        sh(&[
            "ip", "link", "add", &vs, "netns", &server_ns, "type", "veth", "peer", "name", &vc, "netns", &client_ns,
        ]);
        for (ns, dev, ip, ip6) in [
            (&server_ns, &vs, &server_ip, &server_ip6),
            (&client_ns, &vc, &client_ip, &client_ip6),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev]);
            sh(&["ip", "-n", ns, "addr", "add", &format!("{ip6}/64"), "dev", dev, "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// A command run inside the server namespace.
    pub fn server(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.server_ns, prog]);
        c
    }

    /// A command run inside the client namespace.
    pub fn client(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client_ns, prog]);
        c
    }

    /// `joyride trace --json -o FILE ARGS... -- PROG` run in the client
    /// namespace; returns the command (add the program and its arguments).
    pub fn traced(&self, trace_file: &Path) -> Command {
        let mut c = self.client(joyride().to_str().expect("utf-8 path"));
        c.args(["trace", "--json", "-o"]).arg(trace_file).arg("--");
        c
    }

    /// Waits until something listens on TCP `port` in the server namespace.
    pub fn wait_tcp(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let needle = format!(":{port} ");
        while Instant::now() < deadline {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.server_ns, "ss", "-Htln"])
                .output()
                .expect("ss");
            if String::from_utf8_lossy(&out.stdout).contains(&needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on port {port} in {}", self.server_ns);
    }
}

impl Default for Net {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Killing the namespaces' processes is the peers' Drop; deleting the
        // namespaces removes the veth pair with them.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A background process, killed (with its process group) on drop.
pub struct Bg(pub Child);

impl Bg {
    /// Starts `cmd` in its own process group with null stdin.
    pub fn spawn(mut cmd: Command) -> Bg {
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::null()).process_group(0);
        Bg(cmd.spawn().expect("spawn background peer"))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // Kill the whole group: `ip netns exec` forks the real server.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.0.wait();
    }
}

/// A directory for one test's files, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh directory (world-readable, for unprivileged runs).
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(unique("t"));
        std::fs::create_dir_all(&p).expect("temp dir");
        let _ = Command::new("chmod").arg("755").arg(&p).status();
        TempDir(p)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test programs' sources (`tests/programs`).
pub fn program_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs").join(name)
}

/// Compiles `tests/programs/<name>` with gcc and `flags` into `dir`.
pub fn build_c(dir: &TempDir, name: &str, flags: &[&str]) -> PathBuf {
    let out = dir.path(name.trim_end_matches(".c"));
    let src = program_source(name);
    let mut args: Vec<&str> = vec![
        "-O1",
        "-Wall",
        "-o",
        out.to_str().expect("utf-8"),
        src.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(flags);
    let o = Command::new("gcc")
        .args(&args)
        .output()
        .expect("gcc is installed (README setup)");
    assert!(o.status.success(), "gcc {name}: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Builds `tests/programs/<name>` (a Go main package file) as a static binary.
pub fn build_go(dir: &TempDir, name: &str) -> PathBuf {
    let out = dir.path(name.trim_end_matches(".go"));
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/go-cache");
    let o = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(program_source(name))
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", &cache)
        .env("GOPATH", cache.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "off")
        .output()
        .expect("go is installed (README setup)");
    assert!(
        o.status.success(),
        "go build {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// One line of `joyride trace --json`.
#[derive(Debug, Clone)]
pub struct Call {
    /// Calling thread.
    pub pid: u64,
    /// Call name.
    pub call: String,
    /// Rendered arguments.
    pub args: Vec<String>,
    /// Return value (-1 on error).
    pub ret: i64,
    /// Error name.
    pub errno: Option<String>,
    /// The whole JSON object.
    pub json: serde_json::Value,
}

/// Parses a `--json` trace file.
pub fn read_trace(path: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("trace file {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"));
            Call {
                pid: v["pid"].as_u64().expect("pid"),
                call: v["call"].as_str().expect("call").to_owned(),
                args: v["args"]
                    .as_array()
                    .expect("args")
                    .iter()
                    .map(|a| a.as_str().unwrap_or_default().to_owned())
                    .collect(),
                ret: v["ret"].as_i64().expect("ret"),
                errno: v["errno"].as_str().map(str::to_owned),
                json: v,
            }
        })
        .collect()
}

/// Asserts the trace holds a call named `call` whose arguments contain
/// `needle`, returning it.
#[track_caller]
pub fn find<'a>(trace: &'a [Call], call: &str, needle: &str) -> &'a Call {
    trace
        .iter()
        .find(|c| c.call == call && c.args.iter().any(|a| a.contains(needle)))
        .unwrap_or_else(|| panic!("no {call}(...{needle}...) in the trace:\n{}", dump(trace)))
}

/// The trace as text, for failure messages.
pub fn dump(trace: &[Call]) -> String {
    trace
        .iter()
        .map(|c| format!("{} {}({}) = {} {:?}", c.pid, c.call, c.args.join(", "), c.ret, c.errno))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Output of a finished command as text, for assertions.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The `joyride-impair` forwarder of this build (next to the test executable).
pub fn impair_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("joyride-impair");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p joyride-tests --bins`)",
        bin.display()
    );
    bin
}

/// `prog` run inside network namespace `ns`.
pub fn in_netns(ns: &str, prog: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]);
    c
}

/// Gives `dev` in `ns` an IPv4 /24 and an IPv6 /64 address and brings it
/// and `lo` up.
pub fn configure(ns: &str, dev: &str, ip: &str, ip6: &str) {
    sh(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev]);
    sh(&["ip", "-n", ns, "addr", "add", &format!("{ip6}/64"), "dev", dev, "nodad"]);
    sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
}

/// Turns off the offloads that would hand an L2 forwarder frames larger
/// than the MTU (TSO, GSO, GRO) or with partial checksums (tx checksum
/// offload) on `dev` in namespace `ns`.
pub fn offloads_off(ns: &str, dev: &str) {
    sh(&[
        "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
    ]);
}

/// Two kernel namespaces, `a` and `b`, on one IPv4/IPv6 subnet, whose link
/// runs through a third namespace where `joyride-impair` forwards frames
/// between two veth ends and impairs them (netem without `sch_netem`):
/// `a` —veth— forwarder —veth— `b`. Offloads are off on all four ends.
/// Removed on drop, forwarder included.
pub struct ImpairedNet {
    /// Namespace of side `a`.
    pub a_ns: String,
    /// Namespace of side `b`.
    pub b_ns: String,
    /// Namespace of the forwarder.
    pub f_ns: String,
    /// Interface of side `a` (toward the forwarder).
    pub a_dev: String,
    /// Interface of side `b` (toward the forwarder).
    pub b_dev: String,
    /// IPv4 address of side `a`.
    pub a_ip: String,
    /// IPv4 address of side `b`.
    pub b_ip: String,
    /// IPv6 address of side `b`.
    pub b_ip6: String,
    forwarder: Option<(Child, std::io::BufReader<std::process::ChildStderr>)>,
}

impl ImpairedNet {
    /// Creates the three namespaces and starts the forwarder with
    /// `impair_args` (e.g. `["--delay", "20ms", "--loss", "1%"]`); returns
    /// once it forwards.
    pub fn new(impair_args: &[&str]) -> ImpairedNet {
        require_root();
        let id = unique("i");
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let hi = (std::process::id() % 200) as u8 + 20;
        let lo = (n % 250) as u8 + 1;
        let mut net = ImpairedNet {
            a_ns: format!("{id}a"),
            b_ns: format!("{id}b"),
            f_ns: format!("{id}f"),
            a_dev: format!("{id}a0"),
            b_dev: format!("{id}b0"),
            a_ip: format!("10.{hi}.{lo}.1"),
            b_ip: format!("10.{hi}.{lo}.2"),
            b_ip6: format!("fd01:{hi}:{lo}::2"),
            forwarder: None,
        };
        let (fa, fb) = (format!("{id}fa"), format!("{id}fb"));
        for ns in [&net.a_ns, &net.b_ns, &net.f_ns] {
            sh(&["ip", "netns", "add", ns]);
        }
        for (ns, dev, fdev) in [(&net.a_ns, &net.a_dev, &fa), (&net.b_ns, &net.b_dev, &fb)] {
            sh(&[
                "ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", fdev, "netns", &net.f_ns,
            ]);
            offloads_off(ns, dev);
            offloads_off(&net.f_ns, fdev);
            sh(&["ip", "-n", &net.f_ns, "link", "set", fdev, "up"]);
        }
        let a_ip6 = format!("fd01:{hi}:{lo}::1");
        for (ns, dev, ip, ip6) in [
            (&net.a_ns, &net.a_dev, &net.a_ip, &a_ip6),
            (&net.b_ns, &net.b_dev, &net.b_ip, &net.b_ip6),
        ] {
            configure(ns, dev, ip, ip6);
        }
        // Permanent neighbours, so that loss never hits address resolution
        // (the tests measure the data's fate, not ARP's retries).
        let mac = |ns: &str, dev: &str| {
            let out = sh(&["ip", "-n", ns, "-br", "link", "show", dev]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace().nth(2).expect("MAC in `ip -br link`").to_owned()
        };
        let (a_mac, b_mac) = (mac(&net.a_ns, &net.a_dev), mac(&net.b_ns, &net.b_dev));
        for (ns, dev, ip, ip6, lladdr) in [
            (&net.a_ns, &net.a_dev, &net.b_ip, &net.b_ip6, &b_mac),
            (&net.b_ns, &net.b_dev, &net.a_ip, &a_ip6, &a_mac),
        ] {
            for addr in [ip, ip6] {
                sh(&[
                    "ip", "-n", ns, "neigh", "replace", addr, "lladdr", lladdr, "dev", dev, "nud", "noarp",
                ]);
            }
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.f_ns])
            .arg(impair_bin())
            .args(["--a", &fa, "--b", &fb, "--seed", "1"])
            .args(impair_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start joyride-impair");
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut err, &mut line).expect("read the forwarder's stderr");
        if !line.contains("forwarding") {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut rest);
            let _ = child.kill();
            let _ = child.wait();
            panic!("joyride-impair did not start: {line}{rest}");
        }
        net.forwarder = Some((child, err));
        net
    }

    /// A command run inside namespace `a`.
    pub fn a(&self, prog: &str) -> Command {
        in_netns(&self.a_ns, prog)
    }

    /// A command run inside namespace `b`.
    pub fn b(&self, prog: &str) -> Command {
        in_netns(&self.b_ns, prog)
    }

    /// Stops the forwarder (SIGTERM) and returns its counters: one line per
    /// direction, `a -> b` first (see [`impair_counter`]).
    pub fn stop(&mut self) -> String {
        let Some((mut child, mut err)) = self.forwarder.take() else {
            return String::new();
        };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        let status = child.wait().expect("wait for joyride-impair");
        assert!(status.success(), "joyride-impair failed ({status}): {rest}");
        rest
    }
}

/// Counter `name` (e.g. `lost`) of direction `dir` (0: a -> b, 1: b -> a)
/// in what [`ImpairedNet::stop`] returned.
pub fn impair_counter(report: &str, dir: usize, name: &str) -> u64 {
    let line = report
        .lines()
        .filter(|l| l.contains("received="))
        .nth(dir)
        .unwrap_or_else(|| panic!("no direction {dir} in {report:?}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

impl Drop for ImpairedNet {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.forwarder.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.a_ns, &self.b_ns, &self.f_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
