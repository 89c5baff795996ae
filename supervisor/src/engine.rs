//! The supervisor's event loop for `joyride trace`.
//!
//! One thread, one epoll set: the seccomp listener, the child's pidfd and the
//! sockets of parked calls. Nothing here blocks except `epoll_wait`, so a call
//! waiting for a connection never delays another call. Parked calls whose
//! thread vanished are found by a sweep of `ID_VALID` and forgotten, so a
//! target killed mid-call leaves no fd or state behind.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use joyride_notify::{Child, Listener, NotifyError};
use rustix::event::epoll;

use crate::kernel::{self, Ctx, Parked, Progress};
use crate::record::Sink;
use crate::waits::{Swept, Waits};

const LISTENER: u64 = 0;
const CHILD: u64 = 1;
/// Tokens with this bit watch a cached pidfd; the low bits are the tid.
pub const PIDFD: u64 = 1 << 63;
/// First token of parked calls.
const FIRST_PARKED: u64 = 2;

/// Counters the engine keeps, for tests and `--stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Notifications received.
    pub trapped: u64,
    /// Calls parked at least once.
    pub parked: u64,
    /// Calls whose thread vanished before the answer.
    pub vanished: u64,
}

/// The event loop.
pub struct Engine {
    listener: Listener,
    epoll: OwnedFd,
    ctx: Ctx,
    waits: Waits,
    sink: Sink,
    child: Option<Child>,
    exit_code: Option<i32>,
    listener_closed: bool,
    /// Counters.
    pub stats: Stats,
}

impl Engine {
    /// An engine serving `listener` for the tree rooted at `child`.
    pub fn new(listener: Listener, child: Child, sink: Sink) -> anyhow::Result<Engine> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &listener,
            epoll::EventData::new_u64(LISTENER),
            epoll::EventFlags::IN,
        )?;
        epoll::add(
            &epoll,
            &child.pidfd,
            epoll::EventData::new_u64(CHILD),
            epoll::EventFlags::IN,
        )?;
        Ok(Engine {
            listener,
            epoll,
            ctx: Ctx::new()?,
            waits: Waits::new(FIRST_PARKED),
            sink,
            child: Some(child),
            exit_code: None,
            listener_closed: false,
            stats: Stats::default(),
        })
    }

    /// Serves calls until the child has exited and no process uses the filter
    /// any more; returns the child's exit code (128 + signal if killed).
    pub fn run(mut self) -> anyhow::Result<(i32, Stats)> {
        let mut events = epoll::EventVec::with_capacity(64);
        while !(self.listener_closed && self.exit_code.is_some()) {
            let timeout = match self.waits.timeout(Instant::now()) {
                Some(t) => t.as_millis().max(1) as i32,
                None if self.listener_closed => 100,
                None => -1,
            };
            match epoll::wait(&self.epoll, &mut events, timeout) {
                Ok(()) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<(u64, epoll::EventFlags)> = events.iter().map(|e| (e.data.u64(), e.flags)).collect();
            for (token, flags) in ready {
                match token {
                    LISTENER => self.on_listener(flags),
                    CHILD => self.on_child(),
                    t if t & PIDFD != 0 => self.on_thread_exit((t & !PIDFD) as u32),
                    t => {
                        if let Some(p) = self.waits.take(&self.epoll, t) {
                            self.resume(p);
                        }
                    }
                }
            }
            for swept in self.waits.sweep(&self.epoll, Instant::now()) {
                match swept {
                    Swept::Gone => self.stats.vanished += 1,
                    Swept::Settled(progress) => self.settle(progress),
                    Swept::Resume(p) => self.resume(p),
                }
            }
            self.ctx.stash.expire(Instant::now());
        }
        // Nothing can be pending once no process uses the filter.
        self.waits.abandon_all();
        self.sink.flush();
        Ok((self.exit_code.unwrap_or(0), self.stats))
    }
    fn on_listener(&mut self, flags: epoll::EventFlags) {
        if flags.contains(epoll::EventFlags::IN) {
            match self.listener.recv() {
                Ok(notif) => {
                    self.stats.trapped += 1;
                    let progress = if notif.is_native() {
                        kernel::start_native(&mut self.ctx, notif)
                    } else {
                        match kernel::refuse_foreign(notif) {
                            Some(r) => Progress::Done(Box::new(r)),
                            None => Progress::Vanished,
                        }
                    };
                    self.settle(progress);
                }
                Err(NotifyError::Closed) => self.close_listener(),
                Err(e) => {
                    tracing::warn!(error = %e, "receiving a notification failed");
                }
            }
        } else if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
            self.close_listener();
        }
    }

    fn close_listener(&mut self) {
        if !self.listener_closed {
            let _ = epoll::delete(&self.epoll, &self.listener);
            self.listener_closed = true;
        }
    }

    fn on_child(&mut self) {
        let Some(child) = &self.child else { return };
        let status = rustix::process::waitid(
            rustix::process::WaitId::PidFd(child.pidfd.as_fd()),
            rustix::process::WaitidOptions::EXITED | rustix::process::WaitidOptions::NOHANG,
        );
        if let Ok(Some(st)) = status {
            let code = if let Some(sig) = st.terminating_signal() {
                128 + sig
            } else {
                st.exit_status().unwrap_or(0)
            };
            self.exit_code = Some(code as i32);
            let _ = epoll::delete(&self.epoll, &child.pidfd);
            self.child = None;
        }
    }

    fn resume(&mut self, p: Box<Parked>) {
        let Parked {
            notif,
            sock,
            op,
            started,
            ..
        } = *p;
        let progress = kernel::resume_op(&mut self.ctx, notif, sock, op, started, &mut kernel::NoHooks);
        self.settle(progress);
    }

    /// A thread whose pidfd is cached exited: drop the entry.
    fn on_thread_exit(&mut self, tid: u32) {
        if let Some(fd) = self.ctx.forget_pidfd(tid) {
            let _ = epoll::delete(&self.epoll, &*fd);
        }
    }

    fn settle(&mut self, progress: Progress) {
        for (tid, fd) in self.ctx.take_fresh_pidfds() {
            let data = epoll::EventData::new_u64(PIDFD | tid as u64);
            if let Err(e) = epoll::add(&self.epoll, &*fd, data, epoll::EventFlags::IN) {
                tracing::debug!(tid, error = %e, "cannot watch a pidfd; forgetting it");
                self.ctx.forget_pidfd(tid);
            }
        }
        match progress {
            Progress::Done(r) => self.sink.emit(&r),
            Progress::Vanished => self.stats.vanished += 1,
            Progress::Parked(p) => {
                self.stats.parked += 1;
                self.waits.park(&self.epoll, p);
            }
        }
    }
}
