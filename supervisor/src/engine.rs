//! The supervisor's event loop for `joyride trace`.
//!
//! One thread, one epoll set: the seccomp listener, the child's pidfd and the
//! sockets of parked calls. Nothing here blocks except `epoll_wait`, so a call
//! waiting for a connection never delays another call. Parked calls whose
//! thread vanished are found by a sweep of `ID_VALID` and forgotten, so a
//! target killed mid-call leaves no fd or state behind.

use std::time::Instant;

use joyride_notify::{Child, Listener};
use rustix::event::epoll;

use crate::kernel::{self, Ctx, Parked, Progress};
use crate::record::Sink;
use crate::tree::{Tree, CHILD, LISTENER, PIDFD};
use crate::waits::{Swept, Waits};

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
    tree: Tree,
    ctx: Ctx,
    waits: Waits,
    sink: Sink,
    /// Counters.
    pub stats: Stats,
}

impl Engine {
    /// An engine serving `listener` for the tree rooted at `child`.
    pub fn new(listener: Listener, child: Child, sink: Sink) -> anyhow::Result<Engine> {
        Ok(Engine {
            tree: Tree::new(listener, child)?,
            ctx: Ctx::new()?,
            waits: Waits::new(FIRST_PARKED),
            sink,
            stats: Stats::default(),
        })
    }

    /// Serves calls until the child has exited and no process uses the filter
    /// any more; returns the child's exit code (128 + signal if killed).
    pub fn run(mut self) -> anyhow::Result<(i32, Stats)> {
        let mut events = epoll::EventVec::with_capacity(64);
        while !self.tree.done() {
            let timeout = match self.waits.timeout(Instant::now()) {
                Some(t) => t.as_millis().max(1) as i32,
                None if self.tree.listener_closed() => 100,
                None => -1,
            };
            match epoll::wait(&self.tree.epoll, &mut events, timeout) {
                Ok(()) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<(u64, epoll::EventFlags)> = events.iter().map(|e| (e.data.u64(), e.flags)).collect();
            for (token, flags) in ready {
                match token {
                    LISTENER => self.on_listener(flags),
                    CHILD => self.tree.on_child(),
                    t if t & PIDFD != 0 => self.tree.on_thread_exit(&self.ctx, (t & !PIDFD) as u32),
                    t => {
                        if let Some(p) = self.waits.take(&self.tree.epoll, t) {
                            self.resume(p);
                        }
                    }
                }
            }
            for swept in self.waits.sweep(&self.tree.epoll, Instant::now()) {
                match swept {
                    Swept::Gone => self.stats.vanished += 1,
                    Swept::Settled(progress) => self.settle(progress),
                    Swept::Resume(p) => self.resume(p),
                }
            }
            self.ctx.stash.expire(Instant::now());
            self.ctx.reap_agents(Instant::now());
        }
        // Nothing can be pending once no process uses the filter.
        self.waits.abandon_all();
        self.sink.flush();
        Ok((self.tree.exit_code().unwrap_or(0), self.stats))
    }

    fn on_listener(&mut self, flags: epoll::EventFlags) {
        let Some(notif) = self.tree.on_listener(flags) else {
            return;
        };
        self.stats.trapped += 1;
        let Some(notif) = kernel::pass_credential_call(&self.ctx, notif) else {
            return;
        };
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

    fn settle(&mut self, progress: Progress) {
        self.tree.watch_fresh_pidfds(&self.ctx);
        match progress {
            Progress::Done(r) => self.sink.emit(&r),
            Progress::Vanished => self.stats.vanished += 1,
            Progress::Parked(p) => {
                self.stats.parked += 1;
                self.waits.park(&self.tree.epoll, p);
            }
        }
    }
}
