//! Issue 12's race acceptance: a program whose threads swap the fd of a
//! trapped call (`dup2`) and rewrite the call's memory (addresses, claimed
//! credentials) while the call is in flight gains nothing through Joyride
//! that it could not get from the kernel by itself.
//!
//! `tests/programs/fdswap.c` runs as `nobody` (`setpriv`) for a bounded time
//! three ways: on the kernel alone (the baseline: what nobody gets), under
//! `joyride exec` (user-space stack on ExecNet's target namespace) and under
//! `joyride trace` (the kernel serves, the supervisor watches). Root-owned
//! judges made by the test, not by the program, decide:
//!
//! - `srv/st-shut`, a 0600 stream listener: must accept nothing;
//! - `srv/st-open`, a 0666 stream listener: every peer's `SO_PEERCRED` is
//!   nobody's (no connection made with root's identity);
//! - `srv/dg-shut`, a 0600 datagram receiver: must receive nothing;
//! - `srv/dg-open`, a 0666 datagram receiver with `SO_PASSCRED`: every
//!   message's credentials are nobody's (no `SCM_CREDENTIALS` uid 0 or gid 0);
//! - `sec/`, a root-only directory: no socket file appears in it;
//! - no more connections are accepted and no more datagrams arrive than
//!   the program's connect and sendmsg calls that succeeded (no call
//!   performed behind its back, e.g. by the supervisor while the program is
//!   told it failed);
//! - the run ends by itself within its time limit with the program's own
//!   exit status (7): the supervisor neither crashed nor hung.
//!
//! The permitted targets must also work (accepted and received > 0), so the
//! judges are shown to see what the program does. Every run prints the
//! program's outcome counts per call and errno and what each judge saw.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use joyride_tests::exec::{ExecNet, Program};
use joyride_tests::{build_c, joyride, require_root, TempDir};
use nix::sys::socket::{getsockopt, recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixAddr};

/// nobody / nogroup on Debian.
const NOBODY: u32 = 65534;
/// The program's exit status when it ran to its end.
const EXIT_STATUS: i32 = 7;
/// How long the program races, and its iteration cap.
const SECONDS: &str = "3";
const MAX_ITERATIONS: &str = "50000";
/// A run's time limit: the race, the supervisor's start (DPDK) and its exit.
const LIMIT: Duration = Duration::from_secs(40);

/// A datagram's `SO_PASSCRED` (uid, gid); `None` when it carried none.
type Creds = Option<(u32, u32)>;

/// What the judges of one run saw.
#[derive(Default, Debug)]
struct Seen {
    /// Peer uids of the connections each listener accepted.
    accepted: BTreeMap<&'static str, BTreeMap<u32, u64>>,
    /// Credentials of the datagrams each receiver got.
    received: BTreeMap<&'static str, BTreeMap<Creds, u64>>,
}

/// The root-owned servers and directories one run of the program is judged
/// by (see the module documentation); stopped and joined by [`Judges::finish`].
struct Judges {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<JoinHandle<()>>,
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Judges {
    fn new(dir: PathBuf) -> Judges {
        for sub in ["srv", "pub", "sec"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        chmod(&dir, 0o755);
        chmod(&dir.join("srv"), 0o755);
        chmod(&dir.join("sec"), 0o700);
        std::os::unix::fs::chown(dir.join("pub"), Some(NOBODY), Some(NOBODY)).expect("chown pub");
        let mut j = Judges {
            dir,
            stop: Arc::new(AtomicBool::new(false)),
            seen: Arc::new(Mutex::new(Seen::default())),
            threads: Vec::new(),
        };
        for (name, mode) in [("st-open", 0o666), ("st-shut", 0o600)] {
            j.listener(name, mode);
        }
        for (name, mode) in [("dg-open", 0o666), ("dg-shut", 0o600)] {
            j.receiver(name, mode);
        }
        j
    }

    fn listener(&mut self, name: &'static str, mode: u32) {
        let path = self.dir.join("srv").join(name);
        let l = UnixListener::bind(&path).expect("bind listener");
        chmod(&path, mode);
        l.set_nonblocking(true).expect("nonblocking");
        let (stop, seen) = (self.stop.clone(), self.seen.clone());
        seen.lock().unwrap().accepted.entry(name).or_default();
        self.threads.push(std::thread::spawn(move || loop {
            match l.accept() {
                Ok((s, _)) => {
                    let uid = getsockopt(&s, sockopt::PeerCredentials).map_or(u32::MAX, |c| c.uid());
                    *seen
                        .lock()
                        .unwrap()
                        .accepted
                        .entry(name)
                        .or_default()
                        .entry(uid)
                        .or_default() += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept on {name}: {e}"),
            }
        }));
    }

    fn receiver(&mut self, name: &'static str, mode: u32) {
        let path = self.dir.join("srv").join(name);
        let d = UnixDatagram::bind(&path).expect("bind receiver");
        chmod(&path, mode);
        setsockopt(&d, sockopt::PassCred, &true).expect("SO_PASSCRED");
        d.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let (stop, seen) = (self.stop.clone(), self.seen.clone());
        seen.lock().unwrap().received.entry(name).or_default();
        self.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            loop {
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                use std::os::fd::AsRawFd;
                match recvmsg::<UnixAddr>(d.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
                    Ok(msg) => {
                        let mut cred = None;
                        for c in msg.cmsgs().expect("cmsgs") {
                            if let ControlMessageOwned::ScmCredentials(u) = c {
                                cred = Some((u.uid(), u.gid()));
                            }
                        }
                        *seen
                            .lock()
                            .unwrap()
                            .received
                            .entry(name)
                            .or_default()
                            .entry(cred)
                            .or_default() += 1;
                    }
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                    Err(e) => panic!("recvmsg on {name}: {e}"),
                }
            }
        }));
    }

    /// Lets the servers drain what is queued, stops them, and returns what
    /// they saw with the names found in `sec/`.
    fn finish(mut self) -> (Seen, Vec<String>) {
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("judge thread");
        }
        let sec: Vec<String> = std::fs::read_dir(self.dir.join("sec"))
            .expect("read sec/")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        (seen, sec)
    }
}

/// The program's count of `OP` calls that ended with `ERRNO` ("OK": success).
fn outcome(out: &str, op: &str, errno: &str) -> u64 {
    let prefix = format!("count {op} {errno} ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

/// All of the program's outcomes of `op`, as "ERRNO N, ...".
fn outcomes(out: &str, op: &str) -> String {
    let prefix = format!("count {op} ");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the program one way, `cmd` being a command line that ends in
/// `setpriv` (its arguments and `-- fdswap SECONDS MAX DIR` are added here),
/// with fresh judges in `dir`; what they object to goes into `breaches`.
fn race(what: &str, mut cmd: Command, prog: &Path, dir: PathBuf, breaches: &mut Vec<String>) {
    let judges = Judges::new(dir.clone());
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(prog)
        .args([SECONDS, MAX_ITERATIONS])
        .arg(&dir);
    let mut p = Program::spawn(cmd, Stdio::null());
    let ran = p.wait_timeout(LIMIT);
    let (seen, sec) = judges.finish();

    let mut report = format!("--- {what} ---\n");
    let ran = match ran {
        Some(ran) => ran,
        None => {
            let ran = p.kill_and_collect();
            breaches.push(format!(
                "{what}: did not end within {LIMIT:?} (supervisor hung?); killed:\n{}",
                ran.describe()
            ));
            ran
        }
    };
    let out = ran.out();
    for l in out
        .lines()
        .filter(|l| l.starts_with("count ") || l.starts_with("iterations "))
    {
        let _ = writeln!(report, "  program: {}", l);
    }
    let _ = writeln!(report, "  judges: accepted {:?}", seen.accepted);
    let _ = writeln!(report, "  judges: received {:?}", seen.received);
    let _ = writeln!(
        report,
        "  judges: sec/ holds {} entries {:?}",
        sec.len(),
        &sec[..sec.len().min(5)]
    );
    eprint!("{report}");

    if ran.status.code() != Some(EXIT_STATUS) && !breaches.iter().any(|b| b.starts_with(&format!("{what}:"))) {
        breaches.push(format!(
            "{what}: exit status {} instead of the program's {EXIT_STATUS} (supervisor crashed, or the \
             program did not run to its end):\n{}",
            ran.status,
            ran.describe()
        ));
    }
    if !out.contains("iterations ") {
        breaches.push(format!("{what}: the program printed no result"));
    }
    let shut = &seen.accepted["st-shut"];
    if !shut.is_empty() {
        breaches.push(format!(
            "{what}: the root-only (0600) stream listener accepted connections, peer uid -> count: {shut:?}"
        ));
    }
    let open = &seen.accepted["st-open"];
    let forged: BTreeMap<_, _> = open.iter().filter(|(u, _)| **u != NOBODY).collect();
    if !forged.is_empty() {
        breaches.push(format!(
            "{what}: connections to the 0666 listener with a peer uid other than nobody's: {forged:?}"
        ));
    }
    if open.values().sum::<u64>() == 0 {
        breaches.push(format!(
            "{what}: not one connection reached the 0666 listener (the permitted path must work); the program's \
             connect outcomes: {}",
            outcomes(&out, "connect")
        ));
    }
    let dshut = &seen.received["dg-shut"];
    if !dshut.is_empty() {
        breaches.push(format!(
            "{what}: the root-only (0600) datagram receiver got messages, (uid, gid) -> count: {dshut:?}"
        ));
    }
    let dopen = &seen.received["dg-open"];
    let forged: BTreeMap<_, _> = dopen.iter().filter(|(c, _)| **c != Some((NOBODY, NOBODY))).collect();
    if !forged.is_empty() {
        breaches.push(format!(
            "{what}: datagrams whose SO_PASSCRED credentials are not nobody's, (uid, gid) -> count: {forged:?}"
        ));
    }
    if dopen.values().sum::<u64>() == 0 {
        breaches.push(format!(
            "{what}: not one datagram reached the 0666 receiver (the permitted path must work); the program's \
             sendmsg outcomes: {}",
            outcomes(&out, "sendmsg")
        ));
    }
    // A sendmsg that succeeds reaches one of the two receivers (on every
    // other kind of socket in the rotation it fails), and a connect that
    // succeeds one of the two listeners (a non-blocking one that is still
    // pending fails with EAGAIN/EINPROGRESS and is never accepted), so more
    // arrivals than successes mean a call had an effect the program was
    // told failed: performed twice, or by someone else.
    let sent_ok = outcome(&out, "sendmsg", "OK");
    let delivered: u64 = dopen.values().chain(dshut.values()).sum();
    let connected_ok = outcome(&out, "connect", "OK") + outcome(&out, "connect-own", "OK");
    let accepted: u64 = open.values().chain(shut.values()).sum();
    if accepted > connected_ok {
        breaches.push(format!(
            "{what}: the listeners accepted {accepted} connections but only {connected_ok} connect calls \
             succeeded in the program (calls performed behind its back)"
        ));
    }
    if delivered > sent_ok {
        breaches.push(format!(
            "{what}: the receivers got {delivered} datagrams but only {sent_ok} sendmsg calls succeeded in the \
             program (calls performed behind its back)"
        ));
    }
    if !sec.is_empty() {
        breaches.push(format!(
            "{what}: {} socket files created in the root-only directory, e.g. {:?}",
            sec.len(),
            &sec[..sec.len().min(5)]
        ));
    }
}

/// A second thread swapping the fd (and a third rewriting the call's
/// memory) during trapped connect/bind/sendmsg calls gains nothing, under
/// `joyride exec` and under `joyride trace`, compared with the same program
/// on the kernel alone.
#[test]
fn fd_swap_during_trapped_calls_gains_nothing() {
    require_root();
    let tmp = TempDir::new();
    let prog = build_c(&tmp, "fdswap.c", &["-pthread"]);
    let mut breaches = Vec::new();

    let net = ExecNet::new();
    // Baseline: what nobody gets from the kernel by itself.
    race(
        "kernel",
        net.target("setpriv"),
        &prog,
        tmp.path("kernel"),
        &mut breaches,
    );
    race(
        "joyride exec",
        net.under_joyride("setpriv"),
        &prog,
        tmp.path("exec"),
        &mut breaches,
    );
    let mut trace = net.target(joyride());
    trace.args(["trace", "-o", "/dev/null", "--", "setpriv"]);
    race("joyride trace", trace, &prog, tmp.path("trace"), &mut breaches);

    assert!(
        breaches.is_empty(),
        "nobody gained something through a race (or a run failed):\n- {}",
        breaches.join("\n- ")
    );
}
