//! What both engines (`trace` and `exec`) keep about the process tree they
//! serve: the seccomp listener, the child's pidfd and exit code, the pidfds
//! of calling threads, and the epoll set that watches them.

use std::os::fd::{AsFd, OwnedFd};

use joyride_notify::{Child, Listener, Notification, NotifyError};
use rustix::event::epoll;

use crate::kernel::Ctx;

/// Token of the seccomp listener.
pub const LISTENER: u64 = 0;
/// Token of the child's pidfd.
pub const CHILD: u64 = 1;
/// Tokens with this bit watch a cached pidfd; the low bits are the tid.
pub const PIDFD: u64 = 1 << 63;

/// The served tree and the epoll set.
pub struct Tree {
    /// The epoll set; engines add their own fds under their own tokens.
    pub epoll: OwnedFd,
    /// `None` in a shard that serves no calls of its own (see
    /// [`Tree::without_program`]).
    listener: Option<Listener>,
    child: Option<Child>,
    exit_code: Option<i32>,
    listener_closed: bool,
}

impl Tree {
    /// Watches `listener` and `child`.
    pub fn new(listener: Listener, child: Child) -> anyhow::Result<Tree> {
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
        Ok(Tree {
            epoll,
            listener: Some(listener),
            child: Some(child),
            exit_code: None,
            listener_closed: false,
        })
    }

    /// An epoll set alone, for an engine that serves the calls another one
    /// receives (a shard of `joyride exec`): never [`Tree::done`].
    pub fn without_program() -> anyhow::Result<Tree> {
        Ok(Tree {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            listener: None,
            child: None,
            exit_code: None,
            listener_closed: false,
        })
    }

    /// Whether the child exited and no process uses the filter any more.
    pub fn done(&self) -> bool {
        self.listener_closed && self.exit_code.is_some()
    }

    /// Whether no process uses the filter any more.
    pub fn listener_closed(&self) -> bool {
        self.listener_closed
    }

    /// The child's exit code (128 + signal if killed), once it exited.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// The listener reported `flags`: the notification waiting there, if
    /// any (a closed listener is taken out of the set).
    pub fn on_listener(&mut self, flags: epoll::EventFlags) -> Option<Notification> {
        let listener = self.listener.as_ref()?;
        if flags.contains(epoll::EventFlags::IN) {
            match listener.recv() {
                Ok(notif) => return Some(notif),
                Err(NotifyError::Closed) => self.close_listener(),
                Err(e) => tracing::warn!(error = %e, "receiving a notification failed"),
            }
        } else if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
            self.close_listener();
        }
        None
    }

    fn close_listener(&mut self) {
        if !self.listener_closed {
            if let Some(l) = &self.listener {
                let _ = epoll::delete(&self.epoll, l);
            }
            self.listener_closed = true;
        }
    }

    /// The child's pidfd is readable: collect its exit status.
    pub fn on_child(&mut self) {
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

    /// Sends `sig` to the child, while it runs.
    pub fn signal_child(&self, sig: rustix::process::Signal) {
        if let Some(child) = &self.child {
            if let Err(e) = rustix::process::pidfd_send_signal(&child.pidfd, sig) {
                tracing::warn!(error = %e, "cannot forward a signal to the program");
            }
        }
    }

    /// A thread whose pidfd is cached exited: drop the entry.
    pub fn on_thread_exit(&self, ctx: &Ctx, tid: u32) {
        if let Some(fd) = ctx.forget_pidfd(tid) {
            let _ = epoll::delete(&self.epoll, &*fd);
        }
    }

    /// Watches the pidfds `ctx` cached since the last call, so that each
    /// entry is dropped when its thread exits.
    pub fn watch_fresh_pidfds(&self, ctx: &Ctx) {
        for (tid, fd) in ctx.take_fresh_pidfds() {
            let data = epoll::EventData::new_u64(PIDFD | tid as u64);
            if let Err(e) = epoll::add(&self.epoll, &*fd, data, epoll::EventFlags::IN) {
                tracing::debug!(tid, error = %e, "cannot watch a pidfd; forgetting it");
                ctx.forget_pidfd(tid);
            }
        }
    }
}
