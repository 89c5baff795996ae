//! A TCP socket's states as a program sees them — readiness, errnos,
//! `SIGPIPE` — judged differentially: `tests/programs/states.py` runs on the
//! kernel's stack and under `joyride exec`, and its lines must be equal but
//! for the documented differences below, each asserted to its exact value.
//!
//! Three ways: both ends in one program on loopback served by Joyride's
//! stack (`--loopback stack`) and by the kernel (the default), and a
//! program under Joyride against a kernel peer over a veth pair.

use std::process::{Command, Stdio};
use std::time::Duration;

use joyride_tests::exec::{kernel_mode, run, ExecNet, Program, PYTHON};
use joyride_tests::{joyride, program_source, require_root};

const TIMEOUT: Duration = Duration::from_secs(90);

/// Where Joyride's answer differs from the kernel's, and what it is
/// instead: a fresh or listening TCP socket is an unconnected `AF_UNIX`
/// stream socket until it connects or listens (see fd-bridge's `lobby`
/// module for why), and the untrapped calls on it answer as `af_unix`
/// does: `unix_stream_recvmsg` `EINVAL`, `unix_stream_sendmsg` `ENOTCONN`,
/// `unix_shutdown` 0 (`shutdown` is not trapped: a round trip per
/// connection close). Readiness is the same.
const KNOWN: &[(&str, &str, &str)] = &[
    ("fresh recv", "ENOTCONN", "EINVAL"),
    ("fresh send", "EPIPE+SIGPIPE", "ENOTCONN"),
    ("fresh send nosignal", "EPIPE", "ENOTCONN"),
    ("fresh shutdown", "ENOTCONN", "=None"),
    ("listen recv", "ENOTCONN", "EINVAL"),
    ("listen send", "EPIPE+SIGPIPE", "ENOTCONN"),
];

/// With loopback left to the kernel, a socket that connects to 127.0.0.1
/// becomes a kernel socket installed over its fd (`ADDFD`): a new open
/// file, so an `epoll` registration made before the connect stays with the
/// old one and never fires.
const KNOWN_LOOPBACK_KERNEL: &[(&str, &str, &str)] = &[("epoll before connect sees", "OUT", "-")];

/// Lines `name: result` of one run.
fn lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(n, r)| (n.to_owned(), r.to_owned()))
        .collect()
}

/// Compares a Joyride run with the kernel's; panics with every difference
/// that is not a known one (and with a known one that did not come out as
/// documented).
fn compare(what: &str, kernel: &str, joyride: &str) {
    compare_with(what, kernel, joyride, &[]);
}

/// [`compare`], with `more` differences known for this way of running.
fn compare_with(what: &str, kernel: &str, joyride: &str, more: &[(&str, &str, &str)]) {
    let k = lines(kernel);
    let j = lines(joyride);
    assert!(k.len() > 40, "the kernel run printed too little:\n{kernel}");
    let mut bad = Vec::new();
    for (name, want) in &k {
        let got = j.iter().find(|(n, _)| n == name).map(|(_, r)| r.as_str());
        let known = KNOWN.iter().chain(more).find(|(n, _, _)| n == name);
        match (got, known) {
            (Some(g), _) if g == want && known.is_none() => {}
            (Some(g), Some((_, kw, jw))) if want == kw && g == *jw => {}
            (g, _) => bad.push(format!("  {name}: kernel {want}, joyride {}", g.unwrap_or("(missing)"))),
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} probes differ from the kernel:\n{}\n--- kernel:\n{kernel}\n--- joyride:\n{joyride}",
        bad.len(),
        k.len(),
        bad.join("\n")
    );
    eprintln!("{what}: {} probes, as on the kernel", k.len());
}

fn states_self(prefix: &[&str]) -> String {
    let mut c = Command::new(prefix[0]);
    c.args(&prefix[1..])
        .arg(PYTHON)
        .arg(program_source("states.py"))
        .arg("self");
    let ran = run(c, TIMEOUT);
    ran.assert_ok("states.py self");
    ran.out()
}

fn joyride_exec(extra: &[&str]) -> Vec<String> {
    let mut v = vec![joyride().display().to_string(), "exec".to_owned()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.push("--".to_owned());
    v
}

/// Both ends in one program, loopback served by Joyride's stack.
#[test]
fn states_on_loopback_in_the_stack_match_the_kernel() {
    require_root();
    let kernel = states_self(&["env"]);
    if kernel_mode() {
        return compare("kernel against kernel", &kernel, &states_self(&["env"]));
    }
    let cmd = joyride_exec(&["--loopback", "stack"]);
    let j = states_self(&cmd.iter().map(String::as_str).collect::<Vec<_>>());
    compare("--loopback stack", &kernel, &j);
}

/// Both ends in one program, loopback left to the kernel (the default):
/// the fresh and listening sockets are Joyride's until they bind or
/// connect to 127.0.0.1.
#[test]
fn states_on_loopback_in_the_kernel_match_the_kernel() {
    require_root();
    let kernel = states_self(&["env"]);
    if kernel_mode() {
        return compare("kernel against kernel", &kernel, &states_self(&["env"]));
    }
    let cmd = joyride_exec(&[]);
    let j = states_self(&cmd.iter().map(String::as_str).collect::<Vec<_>>());
    compare_with("--loopback kernel", &kernel, &j, KNOWN_LOOPBACK_KERNEL);
}

/// A program under Joyride against a kernel peer over a veth pair; the
/// kernel's own run is the same client on the peer's stack.
#[test]
fn states_against_a_kernel_peer_match_the_kernel() {
    let net = ExecNet::new();
    let port = "9160";
    let mut server = net.peer(PYTHON);
    server
        .arg("-u")
        .arg(program_source("states.py"))
        .args(["server", &net.peer_ip, port]);
    let mut server = Program::spawn(server, Stdio::null());
    server.wait_stdout("listening", Duration::from_secs(10));

    let mut k = net.peer(PYTHON);
    k.arg(program_source("states.py")).args(["client", &net.peer_ip, port]);
    let kernel = run(k, TIMEOUT);
    kernel.assert_ok("states.py client on the kernel");

    let mut j = net.under_joyride(PYTHON);
    j.arg(program_source("states.py")).args(["client", &net.peer_ip, port]);
    let joyride = net.run_watched(j, TIMEOUT);
    joyride.assert_ok("states.py client under joyride");
    if net.kernel {
        return compare("kernel against kernel", &kernel.out(), &joyride.out());
    }
    compare("a kernel peer", &kernel.out(), &joyride.out());
    server.kill_and_collect();
}
