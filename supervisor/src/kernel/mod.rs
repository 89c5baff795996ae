//! Serving a trapped call on the kernel's own stack.
//!
//! The supervisor never lets a trapped call continue after reading its
//! arguments (the target could change them in between). It reads every
//! argument once, duplicates the target's socket (`pidfd_getfd`), performs the
//! call itself on the duplicate with its own copy, writes the results back,
//! and answers. `socket` and `socketpair` are performed in the target's network
//! namespace, relative `AF_UNIX` paths against the target's working directory.
//!
//! A call that would block on a blocking socket is tried without blocking and
//! then parked until its fd is ready (see [`crate::engine`]); the target
//! thread sleeps in the kernel meanwhile. What a call consumed on behalf of a
//! thread that vanished before the answer (an accepted connection, received
//! bytes) is kept in a [`Stash`] and handed to the next call on that socket.

pub mod cmsg;
mod ops;
mod stash;

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use joyride_notify::{MemError, Notification, Syscall};

pub use ops::{has_progress, interrupted, resume_op, send_destination, start, timed_out, Op, DATA_MAX};
pub use stash::Stash;

use crate::agent::{Act, Direct, Own, Pool, TargetNetns};
use crate::cred::{Creds, Glance};
use crate::record::Record;

/// What a parked call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// The socket becomes readable (data, a connection, EOF, an error).
    Read,
    /// The socket becomes writable (buffer space, a finished connect).
    Write,
    /// Nothing the kernel reports: try again after a short delay.
    Retry,
}

/// A call waiting for its socket.
pub struct Parked {
    /// The trapped call.
    pub notif: Notification,
    /// The supervisor's duplicate of the target's socket.
    pub sock: OwnedFd,
    /// The call's state.
    pub op: Op,
    /// What it waits for.
    pub interest: Interest,
    /// When the trap happened.
    pub started: Instant,
    /// `SO_RCVTIMEO`/`SO_SNDTIMEO` expiry.
    pub deadline: Option<Instant>,
}

/// The result of starting or resuming a call.
pub enum Progress {
    /// Answered (or the target vanished); the record to print.
    Done(Box<Record>),
    /// Waiting; register the fd and come back.
    Parked(Box<Parked>),
    /// The target vanished before the answer; nothing to print.
    Vanished,
}

/// What a receive from a user-space datagram socket's bridge shows besides
/// the bytes of the datagram at its head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatagramHead {
    /// The source address (`struct sockaddr` bytes); empty when nothing is
    /// queued (the receive will say so).
    pub name: Vec<u8>,
    /// The control messages the program asked for with its socket's
    /// options, in the kernel's order, whole: the receive lays them out in
    /// the caller's buffer ([`cmsg::put_cmsgs`]).
    pub control: Vec<cmsg::Cmsg>,
}

/// What a call served on a kernel socket must know about sockets that are
/// bridges to the user-space stack (`joyride exec`); `joyride trace` has none.
pub trait Hooks {
    /// What the datagram at the head of `sock` comes with, when `sock` is
    /// the target's end of a user-space datagram socket's bridge; `None`
    /// for any other socket. `control`: the receive has a control buffer
    /// (`recvmsg`, `recvmmsg`), so its control messages are wanted.
    fn datagram_head(&mut self, sock: BorrowedFd<'_>, control: bool) -> Option<DatagramHead> {
        let _ = (sock, control);
        None
    }

    /// Whether a destination given to a send on `sock` is to be ignored, as
    /// TCP ignores it on a connected socket (the target's end of a
    /// user-space stream socket's bridge, which would refuse it).
    fn ignores_send_name(&mut self, sock: BorrowedFd<'_>) -> bool {
        let _ = sock;
        false
    }

    /// Sends one datagram through the user-space stack when `sock` is the
    /// target's end of a user-space datagram socket's bridge: `Some` with
    /// the bytes sent or the errno; `None` for any other socket. `control`
    /// is the send's control buffer as the program gave it (`msg_control`,
    /// `msg_controllen` bytes).
    fn send_datagram(
        &mut self,
        sock: BorrowedFd<'_>,
        name: Option<&[u8]>,
        data: &[u8],
        control: &[u8],
    ) -> Option<Result<usize, i32>> {
        let _ = (sock, name, data, control);
        None
    }
}

/// No bridges: every socket is the kernel's.
pub struct NoHooks;

impl Hooks for NoHooks {}

/// State shared by all calls: where the supervisor stands, its own power,
/// the agents acting with other powers, and the stash.
pub struct Ctx {
    /// Who performs calls.
    pub acting: Acting,
    /// Results kept for vanished callers.
    pub stash: Stash,
    /// pidfds of calling threads, by tid. A cached pidfd names the thread it
    /// was opened for; if that thread is gone (its tid possibly reused),
    /// `pidfd_getfd` fails with `ESRCH` and the entry is replaced.
    pidfds: RefCell<HashMap<u32, Rc<OwnedFd>>>,
    /// Threads whose pidfd was cached since the engine last looked: it
    /// watches those pidfds and drops each entry when its thread exits.
    fresh: RefCell<Vec<(u32, Rc<OwnedFd>)>>,
    /// Credentials read from `/proc` for threads with a cached pidfd, kept
    /// while a [`Glance`] agrees and until a credential call forgets them
    /// (see [`Ctx::caller_creds`]).
    creds: RefCell<HashMap<u32, Rc<Creds>>>,
    /// Whether credentials may be kept: the kernel has `PIDFD_GET_INFO`,
    /// and this engine sees every call that must forget them (shard 0, or
    /// `joyride trace`; a shard that receives forwarded calls does not).
    keep_creds: std::cell::Cell<bool>,
}

/// Who performs calls for the targets: the supervisor and its agents.
pub struct Acting {
    own: Own,
    /// The engine thread's own credentials, read once: a caller with the
    /// same power is served by the supervisor itself.
    own_creds: Creds,
    /// Agents for callers with another power.
    agents: RefCell<Pool>,
}

/// Bound on cached pidfds; past it, pidfds are opened per call.
const PIDFD_CACHE_MAX: usize = 4096;

/// Who performs one call: the supervisor itself or an agent, chosen by
/// [`Ctx::actor`] from the caller's credentials as they were just read.
pub struct Actor<'a> {
    how: How<'a>,
    /// The caller's credentials, as read for this call (its umask among them).
    pub creds: Rc<Creds>,
}

enum How<'a> {
    Direct(Direct<'a>),
    Agent(RefMut<'a, Pool>, usize),
}

impl<'a> Actor<'a> {
    /// The actor's calls.
    pub fn act(&mut self) -> &mut dyn Act {
        match &mut self.how {
            How::Direct(d) => d,
            How::Agent(pool, i) => pool.agent(*i),
        }
    }
}

impl Ctx {
    /// Captures the supervisor's own network namespace, working directory
    /// and credentials, and gives the calling thread its own fs context so
    /// that changing its working directory or umask for a target's
    /// `AF_UNIX` path does not move other threads.
    pub fn new() -> io::Result<Ctx> {
        Ctx::with_agent_exe(PathBuf::from("/proc/self/exe"))
    }

    /// [`Ctx::new`] with agents started from `exe` (the joyride binary).
    pub fn with_agent_exe(exe: PathBuf) -> io::Result<Ctx> {
        rustix::thread::unshare(rustix::thread::UnshareFlags::FS)?;
        Ok(Ctx {
            acting: Acting {
                own: Own::of_this_thread()?,
                own_creds: Creds::of_self()?,
                agents: RefCell::new(Pool::new(exe)),
            },
            stash: Stash::default(),
            pidfds: RefCell::new(HashMap::new()),
            fresh: RefCell::new(Vec::new()),
            creds: RefCell::new(HashMap::new()),
            keep_creds: std::cell::Cell::new(true),
        })
    }

    /// Never keeps credentials between calls: for an engine that does not
    /// receive the calls that must forget them.
    pub fn never_keep_creds(&self) {
        self.keep_creds.set(false);
        self.creds.borrow_mut().clear();
    }

    /// Forgets every thread's credentials: a traced thread is changing its
    /// groups or namespaces (`setgroups`, `setns`, `unshare`), which neither
    /// its ids nor its capabilities show. Its next call reads `/proc` again.
    pub fn forget_creds(&self) {
        self.creds.borrow_mut().clear();
    }

    /// The power of `notif`'s thread for one decision.
    ///
    /// Read from `/proc` ([`Creds::of_thread`], about 30 us), unless it was
    /// read for an earlier call of the same thread and still holds: the
    /// thread's ids and capability sets, read through its pidfd in two
    /// system calls ([`Glance`], about 1 us), are what was read then, and no
    /// call that changes the rest without changing those (`setgroups`,
    /// `setns`, `unshare`, on any ABI) came since — those are trapped and
    /// make the engine [`Ctx::forget_creds`]. A thread makes one call at a
    /// time, so its own change is complete before its next call is decided;
    /// changes that touch other threads' power too (`chroot`, `pivot_root`,
    /// `umask`) concern only path names, and `path` is set for calls naming
    /// an `AF_UNIX` path, which always read `/proc`.
    pub fn caller_creds(&self, notif: &Notification, path: bool) -> Result<Rc<Creds>, i32> {
        let keep = self.keep_creds.get() && !path;
        if keep {
            let known = self.creds.borrow().get(&notif.pid).cloned();
            let pidfd = self.pidfds.borrow().get(&notif.pid).cloned();
            if let (Some(c), Some(pidfd)) = (known, pidfd) {
                match Glance::of(pidfd.as_fd(), notif.pid) {
                    // Still pending, so the thread that holds the tid (the
                    // one `capget` read) is the pidfd's.
                    Ok(g) if c.agrees_with(&g) && notif.is_valid() => return Ok(c),
                    Ok(_) => {}
                    // ENOTTY/EINVAL: no PIDFD_GET_INFO on this kernel.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => self.never_keep_creds(),
                    // The thread is gone (its tid may come back as another).
                    Err(_) => {}
                }
            }
        }
        let c = Rc::new(Creds::of_thread(notif.pid).map_err(|_| libc::ESRCH)?);
        if !notif.is_valid() {
            return Err(libc::ESRCH);
        }
        // Kept only for a thread whose pidfd is cached: the engine forgets
        // both when the thread exits.
        if keep && self.keep_creds.get() && self.pidfds.borrow().contains_key(&notif.pid) {
            self.creds.borrow_mut().insert(notif.pid, Rc::clone(&c));
        }
        Ok(c)
    }

    /// Who is to perform a call for the calling thread of `notif` (see
    /// [`Acting::actor`]).
    pub fn actor<'a>(&'a self, notif: &'a Notification) -> Result<Actor<'a>, i32> {
        self.acting.actor(notif, self.caller_creds(notif, false)?)
    }

    /// [`Ctx::actor`] for a call naming address `addr`: an `AF_UNIX` path
    /// is judged with credentials read afresh (see [`Ctx::caller_creds`]).
    pub fn actor_at<'a>(&'a self, notif: &'a Notification, addr: &[u8]) -> Result<Actor<'a>, i32> {
        let path = crate::agent::unix_path(addr);
        self.acting.actor(notif, self.caller_creds(notif, path)?)
    }

    /// Performs `f` with the caller's power (see [`Acting::actor`]).
    pub fn act<T>(&self, notif: &Notification, f: impl FnOnce(&mut dyn Act) -> Result<T, i32>) -> Result<T, i32> {
        let mut actor = self.actor(notif)?;
        f(actor.act())
    }

    /// [`Ctx::act`] for a call naming address `addr`.
    pub fn act_at<T>(
        &self,
        notif: &Notification,
        addr: &[u8],
        f: impl FnOnce(&mut dyn Act) -> Result<T, i32>,
    ) -> Result<T, i32> {
        let mut actor = self.actor_at(notif, addr)?;
        f(actor.act())
    }

    /// Reaps agents that exited, now and then (the engine calls it each turn).
    pub fn reap_agents(&self, now: Instant) {
        self.acting.agents.borrow_mut().reap_if_due(now);
    }

    /// A pidfd for the calling thread of `notif` (from the cache, or opened
    /// and checked against `ID_VALID`).
    fn pidfd(&self, notif: &Notification) -> Result<Rc<OwnedFd>, i32> {
        if let Some(p) = self.pidfds.borrow().get(&notif.pid) {
            return Ok(Rc::clone(p));
        }
        let fd = Rc::new(notif.pidfd().map_err(mem)?);
        let mut cache = self.pidfds.borrow_mut();
        if cache.len() < PIDFD_CACHE_MAX {
            cache.insert(notif.pid, Rc::clone(&fd));
            self.fresh.borrow_mut().push((notif.pid, Rc::clone(&fd)));
        }
        Ok(fd)
    }

    /// pidfds cached since the last call, for the engine to watch.
    pub fn take_fresh_pidfds(&self) -> Vec<(u32, Rc<OwnedFd>)> {
        std::mem::take(&mut *self.fresh.borrow_mut())
    }

    /// Drops the cached pidfd and credentials of thread `tid` (it exited).
    pub fn forget_pidfd(&self, tid: u32) -> Option<Rc<OwnedFd>> {
        self.creds.borrow_mut().remove(&tid);
        self.pidfds.borrow_mut().remove(&tid)
    }

    /// The calling thread's pidfd and a duplicate of its socket `fd`.
    pub fn target_socket(&self, notif: &Notification, fd: i32) -> Result<(Rc<OwnedFd>, OwnedFd), i32> {
        let pidfd = self.pidfd(notif)?;
        match notif.dup_fd(pidfd.as_fd(), fd) {
            Ok(sock) => Ok((pidfd, sock)),
            Err(libc::ESRCH) => {
                // The cached thread is gone: open the caller afresh.
                self.forget_pidfd(notif.pid);
                let pidfd = self.pidfd(notif)?;
                let sock = notif.dup_fd(pidfd.as_fd(), fd)?;
                Ok((pidfd, sock))
            }
            Err(e) => Err(e),
        }
    }

    /// The working directory of the calling thread of `notif` (`O_PATH`),
    /// for a relative `AF_UNIX` path.
    fn target_cwd(&self, notif: &Notification) -> Result<OwnedFd, i32> {
        use rustix::fs::{Mode, OFlags};
        let cwd = rustix::fs::open(
            format!("/proc/{}/cwd", notif.pid).as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| libc::ESRCH)?;
        if !notif.is_valid() {
            return Err(libc::ESRCH);
        }
        Ok(cwd)
    }

    /// The working directory for `addr` when it is a relative `AF_UNIX`
    /// path, else `None`.
    fn cwd_for(&self, notif: &Notification, addr: &[u8]) -> Result<Option<OwnedFd>, i32> {
        if crate::agent::relative_unix_path(addr) {
            self.target_cwd(notif).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Acting {
    /// Who is to perform a call for the calling thread of `notif`, given its
    /// power as of now (`creds`, from [`Ctx::caller_creds`]): the supervisor acts
    /// itself if they give the same power as its own, or else an agent
    /// holding that power does. Call it where a call is performed, not
    /// before: the answer holds for that call only.
    pub fn actor<'a>(&'a self, notif: &'a Notification, creds: Rc<Creds>) -> Result<Actor<'a>, i32> {
        if creds.same_power(&self.own_creds) {
            let target = TargetNetns {
                tid: notif.pid,
                id: creds.net_ns,
                valid: notif,
            };
            return Ok(Actor {
                how: How::Direct(Direct::new(&self.own, Some(target))),
                creds,
            });
        }
        let mut pool = self.agents.borrow_mut();
        pool.reap_if_due(Instant::now());
        let i = pool.index_for(&creds, notif.pid, notif)?;
        Ok(Actor {
            how: How::Agent(pool, i),
            creds,
        })
    }
}

/// Serves a credential-changing call (`setgroups`, `setns`, `unshare`, on
/// any ABI; see [`joyride_notify::changes_credentials`]): forgets what is
/// known of every thread's credentials and lets the kernel run the call.
/// Continuing is safe: the decision read only the call number, and the
/// kernel runs the call in the program's context. Gives any other
/// notification back.
pub fn pass_credential_call(ctx: &Ctx, notif: Notification) -> Option<Notification> {
    if !joyride_notify::changes_credentials(notif.arch, notif.nr) {
        return Some(notif);
    }
    ctx.forget_creds();
    if let Err(e) = notif.answer_continue() {
        tracing::debug!(error = %e, "a credential call vanished before it continued");
    }
    None
}

/// The errno of an I/O error (EIO if it carries none).
pub fn errno_of(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Maps a memory error to what the target sees.
fn mem(e: MemError) -> i32 {
    e.errno()
}

/// `SO_RCVTIMEO`/`SO_SNDTIMEO` of a socket as a deadline from `now`.
fn timeout_deadline(sock: BorrowedFd<'_>, send: bool, now: Instant) -> Option<Instant> {
    let name = if send { libc::SO_SNDTIMEO } else { libc::SO_RCVTIMEO };
    let mut tv = [0u8; 16];
    crate::sys::getsockopt(sock, libc::SOL_SOCKET, name, &mut tv).ok()?;
    let secs = i64::from_ne_bytes(tv[0..8].try_into().ok()?);
    let usecs = i64::from_ne_bytes(tv[8..16].try_into().ok()?);
    if secs <= 0 && usecs <= 0 {
        return None;
    }
    Some(now + Duration::from_secs(secs.max(0) as u64) + Duration::from_micros(usecs.max(0) as u64))
}

/// `SO_RCVTIMEO` of `sock` as a deadline from `now`.
pub fn recv_deadline(sock: BorrowedFd<'_>, now: Instant) -> Option<Instant> {
    timeout_deadline(sock, false, now)
}

/// `SO_SNDTIMEO` of `sock` as a deadline from `now`.
pub fn send_deadline(sock: BorrowedFd<'_>, now: Instant) -> Option<Instant> {
    timeout_deadline(sock, true, now)
}

/// Whether a call on `sock` with `MSG_*` `flags` may block.
fn may_block(sock: BorrowedFd<'_>, flags: u32) -> bool {
    flags & libc::MSG_DONTWAIT as u32 == 0 && !crate::sys::is_nonblocking(sock).unwrap_or(true)
}

/// Whether thread `tid` has a signal pending that it will handle: pending
/// (for the thread or its process), not blocked, and caught by a handler.
/// Ignored and default-action signals need nothing from us (a fatal one
/// ends the wait by itself).
pub fn signal_pending(tid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = field("SigPnd:") | field("ShdPnd:");
    pending & !field("SigBlk:") & field("SigCgt:") != 0
}

/// Describes a call the supervisor refuses outright (other ABIs).
pub fn refuse_foreign(notif: Notification) -> Option<Record> {
    let started = Instant::now();
    let (pid, nr, arch, args) = (notif.pid, notif.nr, notif.arch, notif.args);
    let (call, shown) = foreign_name(arch, nr, &args);
    let answered = notif.answer_errno(libc::ENOSYS);
    if answered.is_err() {
        return None;
    }
    let mut r = Record::new(pid, call, shown, Err(libc::ENOSYS), started.elapsed());
    r.note = Some(match arch {
        joyride_notify::AUDIT_ARCH_I386 => "i386 network calls are refused".into(),
        _ => "x32 network calls are refused".into(),
    });
    Some(r)
}

fn foreign_name(arch: u32, nr: i32, args: &[u64; 6]) -> (String, Vec<String>) {
    use libseccomp::{ScmpArch, ScmpSyscall};
    let scmp_arch = if arch == joyride_notify::AUDIT_ARCH_I386 {
        ScmpArch::X86
    } else {
        ScmpArch::X32
    };
    let name = ScmpSyscall::from(nr)
        .get_name_by_arch(scmp_arch)
        .unwrap_or_else(|_| format!("syscall_{nr:#x}"));
    let shown = if name == "socketcall" {
        vec![
            joyride_notify::syscall::socketcall_name(args[0] as u32).to_owned(),
            format!("{:#x}", args[1] as u32),
        ]
    } else {
        args.iter().take(3).map(|a| format!("{:#x}", *a as u32)).collect()
    };
    (name, shown)
}

/// Decodes and starts a native call.
pub fn start_native(ctx: &mut Ctx, notif: Notification) -> Progress {
    let Some(call) = joyride_notify::NetCall::from_nr(notif.nr as i64) else {
        // Not one of ours (the filter only traps network calls): let the
        // kernel refuse it the way it would.
        let _ = notif.answer_errno(libc::ENOSYS);
        return Progress::Vanished;
    };
    let sc = Syscall::from_raw(call, &notif.args);
    start(ctx, notif, sc, &mut NoHooks)
}
