//! Harness for Joyride's end-to-end tests: network namespaces joined by veth
//! pairs (unique names, removed on drop), background peers that are killed on
//! drop, programs compiled for the test (C, 32-bit C, static Go), and the
//! `joyride` binary under test.
//!
//! Every test runs real programs against the Linux kernel as the peer; the
//! tests need root (network namespaces) and say so when they do not have it.

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
