//! The agent against the kernel's own judgement: targets made unprivileged
//! with `setpriv` or put in user namespaces with `unshare`, and calls whose
//! outcome differs between root and them. Run as root (these machines are).
//!
//! The agents run the `joyride` binary cargo builds beside this test binary
//! (`target/debug/joyride`; `cargo test -p joyride` builds it first, as the
//! package has an integration test).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::client::{Agent, Pool, TIMEOUT};
use super::{Act, Direct, OptVal, Own, StillThere};
use crate::cred::Creds;
use crate::sys;

/// The joyride binary next to this test binary (`target/debug/deps/..`).
fn joyride_exe() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let exe = me.parent().and_then(Path::parent).expect("target dir").join("joyride");
    assert!(
        exe.exists(),
        "{} is missing: build it (cargo build -p joyride)",
        exe.display()
    );
    exe
}

/// A test's targets are sleeping children: their tids cannot be reused
/// while we hold them unreaped.
struct Held;

impl StillThere for Held {
    fn still_there(&self) -> bool {
        true
    }
}

/// A target program, killed and reaped on drop.
struct Target(Child);

impl Target {
    /// Runs `argv` and waits until it has become `sleep` (so its
    /// credentials and namespaces are final).
    fn start(argv: &[&str]) -> Target {
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .spawn()
            .expect("start target");
        let t = Target(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{}/comm", t.pid()))
            .unwrap_or_default()
            .trim()
            != "sleep"
        {
            assert!(Instant::now() < deadline, "target {argv:?} did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        t
    }

    fn nobody() -> Target {
        Target::start(&[
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "sleep",
            "30",
        ])
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn creds(&self) -> Creds {
        Creds::of_thread(self.pid()).expect("target creds")
    }

    fn agent(&self) -> Agent {
        Agent::spawn(&joyride_exe(), &self.creds(), self.pid(), &Held).expect("agent starts")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test thread's own place, with its own fs context so that working
/// directory and umask changes stay in this thread.
fn own_place() -> Own {
    rustix::thread::unshare(rustix::thread::UnshareFlags::FS).expect("unshare(CLONE_FS)");
    Own::of_this_thread().expect("own place")
}

/// A fresh directory with `mode`, owned by root.
fn scratch_dir(mode: u32) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "joyride-agent-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).expect("mkdir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).expect("chmod");
    d
}

fn sockaddr_un(path: &[u8]) -> Vec<u8> {
    let mut a = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    a.extend_from_slice(path);
    a.push(0);
    a
}

fn sockaddr_in(port: u16) -> Vec<u8> {
    let mut a = (libc::AF_INET as u16).to_ne_bytes().to_vec();
    a.extend_from_slice(&port.to_be_bytes());
    a.extend_from_slice(&[127, 0, 0, 1]);
    a.resize(16, 0);
    a
}

fn unix_stream() -> OwnedFd {
    sys::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).unwrap()
}

fn path_bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}

#[test]
fn raw_socket_needs_the_targets_power() {
    let t = Target::nobody();
    let mut agent = t.agent();
    assert_eq!(
        agent.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP).err(),
        Some(libc::EPERM)
    );
    // The same call by root succeeds: the test tells the two apart.
    let own = own_place();
    let mut direct = Direct::new(&own, None);
    assert!(direct.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP).is_ok());
    // What the agent may do, it does: a TCP socket, handed back to us.
    let s = agent.socket(libc::AF_INET, libc::SOCK_STREAM, 0).expect("tcp socket");
    assert_eq!(
        sys::getsockopt_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE).unwrap(),
        libc::SOCK_STREAM
    );
}

#[test]
fn unix_bind_is_judged_and_owned_as_the_target() {
    let t = Target::nobody();
    let mut agent = t.agent();
    let closed = scratch_dir(0o700);
    let addr = sockaddr_un(&path_bytes(&closed.join("s")));
    assert_eq!(agent.bind(unix_stream().as_fd(), &addr, None, 0o022), Err(libc::EACCES));
    let own = own_place();
    let mut direct = Direct::new(&own, None);
    assert_eq!(direct.bind(unix_stream().as_fd(), &addr, None, 0o022), Ok(()));

    let open = scratch_dir(0o777);
    let path = open.join("s");
    agent
        .bind(unix_stream().as_fd(), &sockaddr_un(&path_bytes(&path)), None, 0o027)
        .expect("bind in a 0777 dir");
    let md = std::fs::metadata(&path).unwrap();
    assert_eq!((md.uid(), md.gid()), (65534, 65534), "socket file owned by the target");
    assert_eq!(md.mode() & 0o777, 0o750, "the target's umask applied");
    // A relative path starts at the directory given, not the agent's.
    let cwd: OwnedFd = std::fs::File::open(&open).unwrap().into();
    agent
        .bind(unix_stream().as_fd(), &sockaddr_un(b"rel"), Some(cwd.as_fd()), 0o077)
        .expect("relative bind");
    let md = std::fs::metadata(open.join("rel")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (65534, 0o700));
    let _ = std::fs::remove_dir_all(&closed);
    let _ = std::fs::remove_dir_all(&open);
}

#[test]
fn unix_connect_is_judged_as_the_target_and_shows_its_ids() {
    let t = Target::nobody();
    let mut agent = t.agent();
    let dir = scratch_dir(0o755);
    let listener = |name: &str, mode: u32| {
        let l = unix_stream();
        let p = dir.join(name);
        sys::bind(l.as_fd(), &sockaddr_un(&path_bytes(&p))).unwrap();
        sys::listen(l.as_fd(), 4).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        (l, sockaddr_un(&path_bytes(&p)))
    };
    let (_private, private_addr) = listener("private", 0o600);
    assert_eq!(
        agent.connect(unix_stream().as_fd(), &private_addr, None),
        Err(libc::EACCES)
    );
    let (public, public_addr) = listener("public", 0o666);
    let c = unix_stream();
    agent
        .connect(c.as_fd(), &public_addr, None)
        .expect("connect to a 0666 socket");
    let (server_end, _, _) = sys::accept4(public.as_fd(), libc::SOCK_CLOEXEC).unwrap();
    let mut cred = [0u8; 12];
    sys::getsockopt(server_end.as_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, &mut cred).unwrap();
    let uid = u32::from_ne_bytes(cred[4..8].try_into().unwrap());
    let gid = u32::from_ne_bytes(cred[8..12].try_into().unwrap());
    assert_eq!((uid, gid), (65534, 65534), "the server sees the target's ids");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn credentials_and_fds_travel_as_the_target() {
    let t = Target::nobody();
    let mut agent = t.agent();
    let (a, b) = sys::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).unwrap();
    sys::setsockopt(b.as_fd(), libc::SOL_SOCKET, libc::SO_PASSCRED, &1i32.to_ne_bytes()).unwrap();
    // An fd passed with SCM_RIGHTS reaches the peer; the kernel stamps the
    // sender's ids on the message.
    let (x, y) = sys::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).unwrap();
    let rights = sys::build_cmsgs(&[(libc::SOL_SOCKET, libc::SCM_RIGHTS, x.as_raw_fd().to_ne_bytes().to_vec())]);
    assert_eq!(agent.sendmsg(a.as_fd(), None, b"hi", &rights, 0, None), Ok(2));
    let mut buf = [0u8; 8];
    let r = sys::recvmsg(b.as_fd(), &mut buf, 256, libc::MSG_CMSG_CLOEXEC).unwrap();
    assert_eq!(&buf[..r.n], b"hi");
    let mut ids = None;
    let mut passed = Vec::new();
    for (level, ty, data) in sys::parse_cmsgs(&r.control) {
        match (level, ty) {
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) => {
                let uid = u32::from_ne_bytes(data[4..8].try_into().unwrap());
                let gid = u32::from_ne_bytes(data[8..12].try_into().unwrap());
                ids = Some((uid, gid));
            }
            (libc::SOL_SOCKET, libc::SCM_RIGHTS) => passed.extend(sys::own_fds(&data)),
            _ => {}
        }
    }
    assert_eq!(ids, Some((65534, 65534)));
    assert_eq!(passed.len(), 1);
    assert_eq!(
        sys::file_id(passed[0].as_fd()).unwrap(),
        sys::file_id(x.as_fd()).unwrap()
    );
    // Claiming root's ids is refused to the target, as the kernel refuses it.
    let mut forged = std::process::id().to_ne_bytes().to_vec();
    forged.extend_from_slice(&[0u8; 8]);
    let forged = sys::build_cmsgs(&[(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, forged)]);
    assert_eq!(agent.sendmsg(a.as_fd(), None, b"x", &forged, 0, None), Err(libc::EPERM));
    // Receiving: the data and an fd come back to us through the agent.
    let fd_rights = sys::build_cmsgs(&[(libc::SOL_SOCKET, libc::SCM_RIGHTS, y.as_raw_fd().to_ne_bytes().to_vec())]);
    sys::sendmsg(b.as_fd(), None, &[b"back"], &fd_rights, 0).unwrap();
    let mut buf = [0u8; 16];
    let r = agent
        .recvmsg(a.as_fd(), &mut buf, 256, libc::MSG_CMSG_CLOEXEC)
        .expect("recvmsg");
    assert_eq!(&buf[..r.n], b"back");
    let got: Vec<OwnedFd> = sys::parse_cmsgs(&r.control)
        .into_iter()
        .filter(|(l, t, _)| (*l, *t) == (libc::SOL_SOCKET, libc::SCM_RIGHTS))
        .flat_map(|(_, _, d)| sys::own_fds(&d))
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(sys::file_id(got[0].as_fd()).unwrap(), sys::file_id(y.as_fd()).unwrap());
}

#[test]
fn capability_gated_options_and_values_in_both_directions() {
    let t = Target::nobody();
    let mut agent = t.agent();
    let s = sys::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).unwrap();
    let mark = OptVal::Bytes(&7i32.to_ne_bytes());
    assert_eq!(
        agent.setsockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_MARK, &mark),
        Err(libc::EPERM)
    );
    let own = own_place();
    assert_eq!(
        Direct::new(&own, None).setsockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_MARK, &mark),
        Ok(())
    );
    // An ungated option is set, and read back through the agent.
    let big = OptVal::Bytes(&(1i32 << 16).to_ne_bytes());
    agent
        .setsockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &big)
        .unwrap();
    let mut v = [0u8; 4];
    assert_eq!(
        agent.getsockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &mut v),
        Ok(4)
    );
    assert_eq!(i32::from_ne_bytes(v), 1 << 17, "the kernel doubles SO_RCVBUF");
    // A classic BPF filter travels as a copy the agent points at itself.
    let accept_all: [u8; 8] = [0x06, 0, 0, 0, 0xff, 0xff, 0, 0]; // ret #0xffff
    let mut fprog = 1u16.to_ne_bytes().to_vec();
    fprog.resize(16, 0);
    let filter = OptVal::Filter {
        fprog: &fprog,
        prog: &accept_all,
    };
    assert_eq!(
        agent.setsockopt(s.as_fd(), libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &filter),
        Ok(())
    );
}

/// `/proc/sys/net/ipv4/ip_unprivileged_port_start` of our namespace.
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn root_of_a_user_namespace_is_root_in_its_own_network_only() {
    assert!(
        unprivileged_port_start() > 80,
        "port 80 must be privileged here for this test"
    );
    // Root of its own user and network namespace may bind port 80 there.
    let t = Target::start(&["unshare", "-Urn", "sh", "-c", "ip link set lo up && exec sleep 30"]);
    assert_ne!(t.creds().net_ns, Creds::of_self().unwrap().net_ns);
    let mut agent = t.agent();
    let s = agent.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
    assert_eq!(agent.bind(s.as_fd(), &sockaddr_in(80), None, 0o022), Ok(()));
    let (addr, _) = sys::sockname(s.as_fd(), false).unwrap();
    assert_eq!(addr[2..4], 80u16.to_be_bytes());

    // Root of a user namespace in the host's network namespace may not.
    let t = Target::start(&["unshare", "-Ur", "sleep", "30"]);
    assert_eq!(t.creds().net_ns, Creds::of_self().unwrap().net_ns);
    assert_ne!(t.creds().user_ns, Creds::of_self().unwrap().user_ns);
    let mut agent = t.agent();
    let s = agent.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
    assert_eq!(agent.bind(s.as_fd(), &sockaddr_in(80), None, 0o022), Err(libc::EACCES));
    assert_eq!(
        agent.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP).err(),
        Some(libc::EPERM)
    );
}

fn reaped(pid: u32) -> bool {
    // Neither running nor a zombie: the pid is gone from /proc.
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn tcp_socket_works(pool: &mut Pool, i: usize) -> Result<OwnedFd, i32> {
    pool.agent(i).socket(libc::AF_INET, libc::SOCK_STREAM, 0)
}

#[test]
fn a_stopped_agent_times_out_and_is_replaced() {
    let t = Target::nobody();
    let mut pool = Pool::new(joyride_exe());
    let i = pool.index_for(&t.creds(), t.pid(), &Held).unwrap();
    let first = pool.agent(i).pid();
    tcp_socket_works(&mut pool, i).expect("works before");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first as i32).unwrap(),
        rustix::process::Signal::Stop,
    )
    .unwrap();
    let start = Instant::now();
    assert_eq!(tcp_socket_works(&mut pool, i).err(), Some(libc::EIO));
    assert!(start.elapsed() >= TIMEOUT, "failed by the timeout, not before");
    assert!(pool.agent(i).is_dead());
    assert!(reaped(first), "the stopped agent was killed and reaped");
    let j = pool.index_for(&t.creds(), t.pid(), &Held).unwrap();
    assert_ne!(pool.agent(j).pid(), first);
    tcp_socket_works(&mut pool, j).expect("a fresh agent serves");
}

#[test]
fn a_killed_agent_is_replaced() {
    let t = Target::nobody();
    let mut pool = Pool::new(joyride_exe());
    let i = pool.index_for(&t.creds(), t.pid(), &Held).unwrap();
    let first = pool.agent(i).pid();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first as i32).unwrap(),
        rustix::process::Signal::Kill,
    )
    .unwrap();
    let start = Instant::now();
    assert_eq!(tcp_socket_works(&mut pool, i).err(), Some(libc::EIO));
    assert!(start.elapsed() < TIMEOUT, "a dead agent is noticed at once");
    assert!(reaped(first));
    let j = pool.index_for(&t.creds(), t.pid(), &Held).unwrap();
    assert_ne!(pool.agent(j).pid(), first);
    tcp_socket_works(&mut pool, j).expect("a fresh agent serves");
}

#[test]
fn the_pool_is_bounded_and_its_agents_die_with_it() {
    let t = Target::nobody();
    let mut pool = Pool::new(joyride_exe());
    let base = t.creds();
    let mut pids = Vec::new();
    // Distinct powers (the agent adopts whatever uid it is asked for).
    for n in 0..=Pool::MAX as u32 {
        let mut c = base.clone();
        c.uid.real = 70000 + n;
        c.uid.effective = 70000 + n;
        c.uid.saved = 70000 + n;
        c.uid.fs = 70000 + n;
        let i = pool.index_for(&c, t.pid(), &Held).unwrap();
        pids.push(pool.agent(i).pid());
    }
    assert_eq!(pool.len(), Pool::MAX);
    assert!(reaped(pids[0]), "the least recently used was killed");
    drop(pool);
    assert!(pids.iter().all(|&p| reaped(p)), "no agent outlives its pool");
}

#[test]
fn an_agent_refuses_a_power_it_cannot_hold() {
    let t = Target::nobody();
    let mut c = t.creds();
    // No such capability: capset fails and the agent must not serve.
    c.caps.permitted |= 1 << 63;
    c.caps.effective |= 1 << 63;
    assert_eq!(Agent::spawn(&joyride_exe(), &c, t.pid(), &Held).err(), Some(libc::EIO));
    // Namespaces that are not the thread's are not opened for it.
    let mut c = t.creds();
    c.net_ns.1 ^= 1;
    assert_eq!(Agent::spawn(&joyride_exe(), &c, t.pid(), &Held).err(), Some(libc::EIO));
}

/// What choosing an actor costs per call: reading a thread's credentials
/// from `/proc` (`cargo test -p joyride --release creds_read_cost --
/// --ignored --nocapture`).
#[test]
#[ignore = "a measurement that prints a timing and asserts nothing; run: cargo test -p joyride --release creds_read_cost -- --ignored --nocapture"]
fn creds_read_cost() {
    let t = Target::nobody();
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Creds::of_thread(t.pid()).unwrap());
    }
    let per = start.elapsed() / n;
    let me = Creds::of_self().unwrap();
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Creds::of_thread(t.pid()).unwrap().same_power(&me));
    }
    println!(
        "Creds::of_thread: {per:?} per call; with same_power: {:?}",
        start.elapsed() / n
    );
}
