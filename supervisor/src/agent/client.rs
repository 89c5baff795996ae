//! The supervisor's side of an agent: starting one for a power, asking it to
//! act, and the pool of agents.
//!
//! Every reply is untrusted. An agent runs with a program's uid, so the
//! program may kill or stop it (it cannot ptrace it or read its fds: the
//! agent is not dumpable). A request that gets no well-formed reply within
//! [`TIMEOUT`] — the agent stopped, died, or said something that does not
//! parse or does not match the request (too many fds, a value longer than
//! asked for) — kills and reaps the agent and fails the program's call with
//! `EIO`: the call may or may not have taken effect (a datagram may have
//! left), so `EINTR`, which tells a program nothing happened and invites it
//! to retry, would be a lie; `EIO` is the kernel's word for "the device
//! failed, outcome unknown". The next call starts a fresh agent.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use super::chan::{self, Got};
use super::wire::{Msg, Op};
use super::{rights, with_rights, Act, OptVal, Received};
use crate::cred::{Creds, FileId};
use crate::sys;

/// How long an agent may take to answer one request.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// How long a new agent may take to start and adopt its power.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent channel's send buffer: a request or reply of `MSG_MAX` must fit
/// (the kernel refuses a datagram larger than the sender's buffer).
const CHAN_SNDBUF: i32 = 8 << 20;

/// Largest stream send or receive an agent moves in one request (a short
/// write or read, as a stream socket may give): large single allocations in
/// the kernel fail more readily than small ones.
pub const STREAM_MAX: usize = 1 << 20;

/// Whether a thread's trapped call is still pending, so its tid still names it.
pub trait StillThere {
    /// `SECCOMP_IOCTL_NOTIF_ID_VALID` or the like.
    fn still_there(&self) -> bool;
}

impl StillThere for joyride_notify::Notification {
    fn still_there(&self) -> bool {
        self.is_valid()
    }
}

/// Whether an agent made for `a` serves `b`: the same ids, groups,
/// capabilities and namespaces (umask and working directory go with each
/// request).
fn same_key(a: &Creds, b: &Creds) -> bool {
    a.same_power(b) && a.caps.inheritable == b.caps.inheritable && a.net_ns == b.net_ns
}

/// A helper process holding one program's power (see the module doc).
pub struct Agent {
    child: Option<std::process::Child>,
    chan: OwnedFd,
    creds: Creds,
    used: u64,
}

impl Agent {
    /// Starts an agent with the power `creds` that thread `tid` was read to
    /// have, executing `exe` (the joyride binary). The thread's namespaces
    /// and root are opened here, by the supervisor, and checked against
    /// `creds` after `still` confirms `tid` was not reused.
    pub fn spawn(exe: &Path, creds: &Creds, tid: u32, still: &dyn StillThere) -> Result<Agent, i32> {
        let open_ns = |name: &str| -> Result<OwnedFd, i32> {
            std::fs::File::open(format!("/proc/{tid}/ns/{name}"))
                .map(OwnedFd::from)
                .map_err(|_| libc::ESRCH)
        };
        let net = open_ns("net")?;
        let mnt = open_ns("mnt")?;
        let user = open_ns("user")?;
        use rustix::fs::{Mode, OFlags};
        let root = rustix::fs::open(
            format!("/proc/{tid}/root").as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| libc::ESRCH)?;
        if !still.still_there() {
            return Err(libc::ESRCH);
        }
        let ids: [(&OwnedFd, FileId); 4] = [
            (&net, creds.net_ns),
            (&mnt, creds.mnt_ns),
            (&user, creds.user_ns),
            (&root, creds.root),
        ];
        if ids
            .iter()
            .any(|(fd, want)| sys::file_id(fd.as_fd()).ok() != Some(*want))
        {
            // The thread moved between our reading its credentials and
            // opening its namespaces (a racing setns/chroot of its own).
            tracing::debug!(tid, "namespaces changed while starting an agent");
            return Err(libc::EIO);
        }
        let (ours, theirs) =
            sys::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0).map_err(|_| libc::EIO)?;
        for end in [&ours, &theirs] {
            let v = CHAN_SNDBUF.to_ne_bytes();
            if sys::setsockopt(end.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v).is_err() {
                let _ = sys::setsockopt(end.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, &v);
            }
        }
        let mut cmd = Command::new(exe);
        cmd.arg(super::server::ARG)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(v) = std::env::var_os("JOYRIDE_LOG") {
            cmd.env("JOYRIDE_LOG", v);
        }
        let placed = [theirs.as_fd(), net.as_fd(), mnt.as_fd(), user.as_fd(), root.as_fd()];
        let high = super::sys::place_fds(&mut cmd, &placed).map_err(|_| libc::EIO)?;
        let child = cmd.spawn().map_err(|e| {
            tracing::warn!(exe = %exe.display(), error = %e, "cannot start an agent");
            libc::EIO
        })?;
        drop(high);
        drop(theirs);
        let mut agent = Agent {
            child: Some(child),
            chan: ours,
            creds: creds.clone(),
            used: 0,
        };
        let setup = setup_msg(creds);
        match agent.exchange(&setup, &[], START_TIMEOUT) {
            Ok((reply, fds)) if fds.is_empty() && reply.num(0) == Some(0) => {
                tracing::debug!(pid = agent.pid(), uid = creds.uid.effective, "agent ready");
                Ok(agent)
            }
            Ok((reply, _)) => {
                let why = reply.blob(0).map(String::from_utf8_lossy).unwrap_or_default();
                tracing::warn!(tid, uid = creds.uid.effective, reason = %why, "an agent refused the power asked");
                Err(agent.broken("refused its setup"))
            }
            Err(why) => Err(agent.broken(why)),
        }
    }

    /// The agent's pid (0 once it is dead).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Whether the agent was killed (after a failed request) or exited.
    pub fn is_dead(&self) -> bool {
        self.child.is_none()
    }

    /// Kills and reaps the agent; the errno its request fails with.
    fn broken(&mut self, why: &str) -> i32 {
        tracing::warn!(
            pid = self.pid(),
            uid = self.creds.uid.effective,
            why,
            "agent failed; killed"
        );
        self.kill();
        libc::EIO
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reaps the agent if it has exited; whether it has.
    fn reap(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => false,
            Some(_) => {
                self.kill();
                true
            }
            None => true,
        }
    }

    /// Sends `req` with `fds` and waits for one reply.
    fn exchange(&self, req: &Msg, fds: &[RawFd], timeout: Duration) -> Result<(Msg, Vec<OwnedFd>), &'static str> {
        let deadline = Instant::now() + timeout;
        let chan = self.chan.as_fd();
        loop {
            match chan::send(chan, req, fds, true) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    if !chan::wait(chan, PollFlags::OUT, deadline) {
                        return Err("timed out taking a request");
                    }
                }
                Err(_) => return Err("cannot send a request"),
            }
        }
        loop {
            if !chan::wait(chan, PollFlags::IN, deadline) {
                return Err("timed out");
            }
            match chan::recv(chan, true) {
                Ok(Got::Msg(m, fds)) if m.op == Op::Reply => return Ok((m, fds)),
                Ok(Got::Msg(..)) => return Err("not a reply"),
                Ok(Got::Empty) => continue,
                Ok(Got::Eof) => return Err("closed its end"),
                Ok(Got::Malformed(why)) => return Err(why),
                Err(_) => return Err("cannot receive a reply"),
            }
        }
    }

    /// One request: the reply's numbers and blobs and exactly `want_fds`
    /// fds (`None`: any number up to the kernel's limit, for the caller to
    /// check), or the errno the agent reported, or `EIO` after killing it.
    fn call(&mut self, req: Msg, fds: &[RawFd], want_fds: Option<usize>) -> Result<(Msg, Vec<OwnedFd>), i32> {
        if self.is_dead() {
            return Err(libc::EIO);
        }
        let (reply, got) = match self.exchange(&req, fds, TIMEOUT) {
            Ok(r) => r,
            Err(why) => return Err(self.broken(why)),
        };
        match reply.num(0) {
            Some(r) if r >= 0 => {
                if want_fds.is_some_and(|n| n != got.len()) {
                    return Err(self.broken("wrong number of fds"));
                }
                Ok((reply, got))
            }
            Some(r) if (-4095..0).contains(&r) && got.is_empty() => Err(-r as i32),
            _ => Err(self.broken("malformed result")),
        }
    }

    /// [`Agent::call`] for requests whose reply is a bare result.
    fn simple(&mut self, req: Msg, fds: &[RawFd]) -> Result<i64, i32> {
        let (reply, _) = self.call(req, fds, Some(0))?;
        Ok(reply.num(0).unwrap_or(0))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn setup_msg(c: &Creds) -> Msg {
    let nums = vec![
        c.uid.real as i64,
        c.uid.effective as i64,
        c.uid.saved as i64,
        c.uid.fs as i64,
        c.gid.real as i64,
        c.gid.effective as i64,
        c.gid.saved as i64,
        c.gid.fs as i64,
        c.caps.effective as i64,
        c.caps.permitted as i64,
        c.caps.inheritable as i64,
        std::process::id() as i64,
    ];
    let groups = c.groups.iter().flat_map(|g| g.to_ne_bytes()).collect();
    let ids = [c.user_ns, c.net_ns, c.mnt_ns, c.root]
        .iter()
        .flat_map(|(dev, ino)| [dev.to_ne_bytes(), ino.to_ne_bytes()])
        .flatten()
        .collect();
    Msg::new(Op::Setup, nums, vec![groups, ids])
}

fn raw(fd: BorrowedFd<'_>) -> RawFd {
    fd.as_raw_fd()
}

/// Request fds: `fd`, then `cwd` if any; and the flag saying so.
fn with_cwd(fd: BorrowedFd<'_>, cwd: Option<BorrowedFd<'_>>) -> (Vec<RawFd>, i64) {
    let mut v = vec![raw(fd)];
    if let Some(c) = cwd {
        v.push(raw(c));
    }
    (v, cwd.is_some() as i64)
}

impl Act for Agent {
    fn socket(&mut self, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, i32> {
        let req = Msg::new(Op::Socket, vec![domain as i64, ty as i64, protocol as i64], vec![]);
        let (_, mut fds) = self.call(req, &[], Some(1))?;
        Ok(fds.remove(0))
    }

    fn socketpair(&mut self, domain: i32, ty: i32, protocol: i32) -> Result<(OwnedFd, OwnedFd), i32> {
        let req = Msg::new(Op::Socketpair, vec![domain as i64, ty as i64, protocol as i64], vec![]);
        let (_, mut fds) = self.call(req, &[], Some(2))?;
        let b = fds.remove(1);
        Ok((fds.remove(0), b))
    }

    fn bind(&mut self, fd: BorrowedFd<'_>, addr: &[u8], cwd: Option<BorrowedFd<'_>>, umask: u32) -> Result<(), i32> {
        let (fds, has_cwd) = with_cwd(fd, cwd);
        let req = Msg::new(Op::Bind, vec![umask as i64, has_cwd], vec![addr.to_vec()]);
        self.simple(req, &fds).map(drop)
    }

    fn connect(&mut self, fd: BorrowedFd<'_>, addr: &[u8], cwd: Option<BorrowedFd<'_>>) -> Result<(), i32> {
        let (fds, has_cwd) = with_cwd(fd, cwd);
        let req = Msg::new(Op::Connect, vec![has_cwd], vec![addr.to_vec()]);
        self.simple(req, &fds).map(drop)
    }

    fn listen(&mut self, fd: BorrowedFd<'_>, backlog: i32) -> Result<(), i32> {
        self.simple(Msg::new(Op::Listen, vec![backlog as i64], vec![]), &[raw(fd)])
            .map(drop)
    }

    fn shutdown(&mut self, fd: BorrowedFd<'_>, how: i32) -> Result<(), i32> {
        self.simple(Msg::new(Op::Shutdown, vec![how as i64], vec![]), &[raw(fd)])
            .map(drop)
    }

    fn getsockopt(&mut self, fd: BorrowedFd<'_>, level: i32, name: i32, buf: &mut [u8]) -> Result<u32, i32> {
        let req = Msg::new(Op::Getsockopt, vec![level as i64, name as i64], vec![buf.to_vec()]);
        let (reply, _) = self.call(req, &[raw(fd)], Some(0))?;
        let (Some(len), Some(val)) = (reply.num(1).and_then(|l| u32::try_from(l).ok()), reply.blob(0)) else {
            return Err(self.broken("malformed getsockopt reply"));
        };
        if val.len() > buf.len() {
            return Err(self.broken("getsockopt value longer than asked"));
        }
        buf[..val.len()].copy_from_slice(val);
        Ok(len)
    }

    fn setsockopt(&mut self, fd: BorrowedFd<'_>, level: i32, name: i32, val: &OptVal<'_>) -> Result<(), i32> {
        let mut fds = vec![raw(fd)];
        let (kind, blobs) = match *val {
            OptVal::Bytes(b) => (0, vec![b.to_vec()]),
            OptVal::Filter { fprog, prog } => (1, vec![fprog.to_vec(), prog.to_vec()]),
            OptVal::Fd { val, fd: prog_fd } => {
                fds.push(raw(prog_fd));
                (2, vec![val.to_vec()])
            }
        };
        let req = Msg::new(Op::Setsockopt, vec![level as i64, name as i64, kind], blobs);
        self.simple(req, &fds).map(drop)
    }

    fn accept4(&mut self, fd: BorrowedFd<'_>, flags: i32) -> Result<(OwnedFd, Vec<u8>, u32), i32> {
        let req = Msg::new(Op::Accept4, vec![flags as i64], vec![]);
        let (reply, mut fds) = self.call(req, &[raw(fd)], Some(1))?;
        match (reply.num(1).and_then(|l| u32::try_from(l).ok()), reply.blob(0)) {
            (Some(len), Some(addr)) if addr.len() <= 128 => Ok((fds.remove(0), addr.to_vec(), len)),
            _ => Err(self.broken("malformed accept reply")),
        }
    }

    fn sendmsg(
        &mut self,
        fd: BorrowedFd<'_>,
        name: Option<&[u8]>,
        data: &[u8],
        control: &[u8],
        flags: i32,
        cwd: Option<BorrowedFd<'_>>,
    ) -> Result<usize, i32> {
        let (mut fds, has_cwd) = with_cwd(fd, cwd);
        let passed = rights(control);
        if fds.len() + passed.len() > chan::FDS_MAX {
            return Err(libc::EINVAL);
        }
        fds.extend_from_slice(&passed);
        let data = if data.len() > STREAM_MAX
            && sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM)
        {
            &data[..STREAM_MAX]
        } else {
            data
        };
        let req = Msg::new(
            Op::Sendmsg,
            vec![flags as i64, name.is_some() as i64, has_cwd],
            vec![name.unwrap_or_default().to_vec(), data.to_vec(), control.to_vec()],
        );
        let n = self.simple(req, &fds)?;
        match usize::try_from(n) {
            Ok(n) if n <= data.len() => Ok(n),
            _ => Err(self.broken("sent more than given")),
        }
    }

    fn recvmsg(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8], control_cap: usize, flags: i32) -> Result<Received, i32> {
        let req = Msg::new(
            Op::Recvmsg,
            vec![buf.len() as i64, control_cap as i64, flags as i64],
            vec![],
        );
        let (reply, fds) = self.call(req, &[raw(fd)], None)?;
        let parsed = (|| {
            let n = usize::try_from(reply.num(1)?).ok()?;
            let namelen = u32::try_from(reply.num(2)?).ok()?;
            let msg_flags = reply.int(3)?;
            let (data, name, control) = (reply.blob(0)?, reply.blob(1)?, reply.blob(2)?);
            if data.len() > buf.len() || name.len() > 128 || control.len() > control_cap {
                return None;
            }
            Some((n, namelen, msg_flags, data, name, control))
        })();
        let Some((n, namelen, msg_flags, data, name, control)) = parsed else {
            return Err(self.broken("malformed recvmsg reply"));
        };
        if rights(control).len() != fds.len() {
            return Err(self.broken("fds do not match the control data"));
        }
        let numbers: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let Some(control) = with_rights(control, &numbers) else {
            return Err(self.broken("fds do not match the control data"));
        };
        buf[..data.len()].copy_from_slice(data);
        let out = Received {
            n,
            name: name.to_vec(),
            namelen,
            control,
            flags: msg_flags,
        };
        // The caller owns the fds the control data names now.
        for f in fds {
            let _ = f.into_raw_fd();
        }
        Ok(out)
    }
}

/// The agents of one engine, one per power, at most [`Pool::MAX`].
pub struct Pool {
    exe: PathBuf,
    agents: Vec<Agent>,
    clock: u64,
    last_reap: Instant,
}

impl Pool {
    /// Most agents kept; past it the least recently used is killed.
    pub const MAX: usize = 32;

    /// A pool whose agents execute `exe` (the joyride binary).
    pub fn new(exe: PathBuf) -> Pool {
        Pool {
            exe,
            agents: Vec::new(),
            clock: 0,
            last_reap: Instant::now(),
        }
    }

    /// The index of a live agent holding `creds`, started if there is none.
    pub fn index_for(&mut self, creds: &Creds, tid: u32, still: &dyn StillThere) -> Result<usize, i32> {
        self.agents.retain(|a| !a.is_dead());
        self.clock += 1;
        if let Some(i) = self.agents.iter().position(|a| same_key(&a.creds, creds)) {
            self.agents[i].used = self.clock;
            return Ok(i);
        }
        if self.agents.len() >= Self::MAX {
            if let Some(i) = (0..self.agents.len()).min_by_key(|&i| self.agents[i].used) {
                // Dropping it kills and reaps it.
                self.agents.swap_remove(i);
            }
        }
        let mut a = Agent::spawn(&self.exe, creds, tid, still)?;
        a.used = self.clock;
        self.agents.push(a);
        Ok(self.agents.len() - 1)
    }

    /// Agent `i` (from [`Pool::index_for`]).
    pub fn agent(&mut self, i: usize) -> &mut Agent {
        &mut self.agents[i]
    }

    /// Live agents.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.agents.iter().filter(|a| !a.is_dead()).count()
    }

    /// Reaps agents that exited (killed by their program, say), at most once
    /// a second, so none stays a zombie.
    pub fn reap_if_due(&mut self, now: Instant) {
        if self.agents.is_empty() || now.duration_since(self.last_reap) < Duration::from_secs(1) {
            return;
        }
        self.last_reap = now;
        self.agents.retain_mut(|a| !a.reap());
    }
}
