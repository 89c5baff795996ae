//! The run-to-completion loop of `joyride exec`: one thread drives the NIC,
//! the protocol, the timers, the bridges and the trapped calls.
//!
//! Each turn receives a burst from the NIC and runs the stack (input, due
//! timers, output), hands the stack's socket events to the bridges, serves
//! what the epoll set reports (trapped calls, bridge traffic, parked calls on
//! kernel sockets, exited threads), and transmits.
//!
//! While anything moved within the spin window the loop keeps polling; then
//! it sleeps in `epoll_wait` until the next stack timer. A `net_af_packet`
//! port has no receive interrupt: its [`Doorbell`] (see [`super::wake`]) is
//! armed for the sleep and wakes the loop when a frame arrives, so the sleep
//! is only capped by [`BACKSTOP`]. Without a doorbell the loop naps at most
//! [`IDLE_NAP`].
//!
//! The spin window adapts between [`SPIN_MIN`] and [`SPIN_MAX`]: a sleep
//! that ended with work after a gap of at most [`SPIN_MAX`] doubles it (a
//! longer spin would have saved the wake-up), a longer gap halves it (the
//! work comes in separate requests; spinning after each one only burns CPU).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use joyride_dpdk::DpdkNic;
use joyride_netstack::iface::{Interface, SocketEvent};
use joyride_netstack::time::{Clock, SystemClock};
use joyride_notify::{Child, Listener, Notification};
use rustix::event::epoll;

use super::policy::Policy;
use super::socks::{Phase, Proto, Socks};
use super::wake::Doorbell;
use crate::kernel::{self, Ctx, Hooks, Parked, Progress};
use crate::record::{Record, Sink};
use crate::tree::{Tree, CHILD, LISTENER, PIDFD};
use crate::waits::{Swept, Waits};

/// Tokens with this bit watch a bridge; the low bits are its inode.
pub(super) const BRIDGE: u64 = 1 << 62;
/// Tokens with this bit watch the loopback listeners of a wildcard
/// listener; the low bits are its inode.
pub(super) const LOOPBACK: u64 = 1 << 61;
/// Token of the NIC's doorbell.
const DOORBELL: u64 = 2;
const FIRST_PARKED: u64 = 16;

/// Longest sleep while idle without a doorbell: the NIC has no interrupt,
/// so this bounds how late the first frame after a quiet spell is seen.
const IDLE_NAP: Duration = Duration::from_millis(1);
/// Longest sleep with a doorbell: it should ring for every frame; this only
/// bounds the damage if it ever does not (and how late a signal that came
/// just before the sleep is forwarded).
const BACKSTOP: Duration = Duration::from_millis(100);
/// Shortest spin window: about one round trip to a peer on the embedded
/// network, so a request's answer usually finds the loop still polling.
const SPIN_MIN: Duration = Duration::from_micros(50);
/// Longest spin window.
const SPIN_MAX: Duration = Duration::from_micros(500);
/// Bursts received back to back before the rest of the loop runs.
const MAX_BURSTS: usize = 8;
/// After the program is gone: how long unsent data and FINs may take.
const LINGER: Duration = Duration::from_secs(10);

/// A call on a user-space socket waiting for the stack.
pub(super) struct StackWait {
    pub notif: Notification,
    pub ino: u64,
    pub what: WaitFor,
    pub started: Instant,
    pub deadline: Option<Instant>,
}

/// What a [`StackWait`] waits for.
pub(super) enum WaitFor {
    /// A blocking `connect` to finish.
    Connect,
    /// A connection for a blocking `accept`.
    Accept(super::calls::AcceptArgs),
}

/// Counters of the engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Notifications received.
    pub trapped: u64,
    /// Calls whose thread vanished before the answer.
    pub vanished: u64,
    /// Sleeps in `epoll_wait` with a timeout.
    pub sleeps: u64,
    /// Rings of the doorbell: frames that came while it was armed.
    pub doorbell_wakes: u64,
    /// Sleeps with the doorbell armed that timed out with frames in the
    /// port's ring and none in the doorbell: it did not ring for them.
    pub doorbell_missed: u64,
}

/// `joyride exec`'s state: the stack, its NIC, the sockets, the calls.
pub struct Exec {
    pub(super) tree: Tree,
    pub(super) ctx: Ctx,
    pub(super) waits: Waits,
    pub(super) sink: Option<Sink>,
    pub(super) iface: Interface,
    pub(super) nic: DpdkNic,
    pub(super) clock: SystemClock,
    pub(super) socks: Socks,
    pub(super) stack_waits: Vec<StackWait>,
    /// When `stack_waits` were last checked for signals and vanished calls.
    stack_swept: Instant,
    pub(super) policy: Policy,
    /// Counters.
    pub stats: Stats,
    doorbell: Option<Doorbell>,
    /// The doorbell was emptied and has not rung since: a sleep needs
    /// neither emptying it again nor the extra NIC poll.
    armed: bool,
    last_activity: Instant,
    spin: SpinWindow,
}

/// How long the loop keeps polling after the last work, in
/// [`SPIN_MIN`, `SPIN_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpinWindow(Duration);

impl SpinWindow {
    /// Work came after a sleep, `gap` after the last work: widen the window
    /// if a spin that long would have bridged the gap, narrow it otherwise.
    fn after_sleep(&mut self, gap: Duration) {
        self.0 = if gap <= SPIN_MAX {
            (self.0 * 2).min(SPIN_MAX)
        } else {
            (self.0 / 2).max(SPIN_MIN)
        };
    }
}

/// The hooks kernel-served calls use to reach the bridges.
pub(super) struct BridgeHooks<'a> {
    pub socks: &'a mut Socks,
    pub iface: &'a mut Interface,
}

impl Hooks for BridgeHooks<'_> {
    fn datagram_source(&mut self, sock: std::os::fd::BorrowedFd<'_>) -> Option<Vec<u8>> {
        self.socks.datagram_source(sock)
    }

    fn ignores_send_name(&mut self, sock: std::os::fd::BorrowedFd<'_>) -> bool {
        self.socks.is_stream(sock)
    }

    fn send_datagram(
        &mut self,
        sock: std::os::fd::BorrowedFd<'_>,
        name: Option<&[u8]>,
        data: &[u8],
    ) -> Option<Result<usize, i32>> {
        self.socks.send_datagram(self.iface, sock, name, data)
    }
}

impl Exec {
    /// An engine serving `listener` for the tree rooted at `child`, with the
    /// stack `iface` on `nic`, woken by `doorbell` when a frame arrives
    /// (without one it naps).
    pub fn new(
        listener: Listener,
        child: Child,
        sink: Option<Sink>,
        iface: Interface,
        nic: DpdkNic,
        doorbell: Option<Doorbell>,
        policy: Policy,
    ) -> anyhow::Result<Exec> {
        let tree = Tree::new(listener, child)?;
        if let Some(bell) = &doorbell {
            epoll::add(
                &tree.epoll,
                bell.as_fd(),
                epoll::EventData::new_u64(DOORBELL),
                epoll::EventFlags::IN | epoll::EventFlags::ET,
            )?;
        }
        Ok(Exec {
            tree,
            ctx: Ctx::new()?,
            waits: Waits::new(FIRST_PARKED),
            sink,
            iface,
            nic,
            clock: SystemClock::new(),
            socks: Socks::new(),
            stack_waits: Vec::new(),
            stack_swept: Instant::now(),
            policy,
            stats: Stats::default(),
            doorbell,
            armed: false,
            last_activity: Instant::now(),
            spin: SpinWindow(SPIN_MAX),
        })
    }

    /// Serves the program until it and every process sharing its filter
    /// are gone and the stack delivered what they sent (at most [`LINGER`]);
    /// returns the program's exit code (128 + signal if killed).
    pub fn run(&mut self) -> anyhow::Result<i32> {
        let mut events = epoll::EventVec::with_capacity(256);
        let mut gone_since: Option<Instant> = None;
        let mut frames = self.frames();
        let mut quiet_sleep = false;
        loop {
            if self.tree.done() {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if self.iface.tcp_unfinished() == 0 || since.elapsed() >= LINGER {
                    break;
                }
            }
            if let Some(sig) = crate::sys::take_forwarded_signal() {
                self.forward_signal(sig);
            }
            let rx = self.nic.counters().rx_frames;
            let moved = self.turn();
            if std::mem::take(&mut quiet_sleep) && self.nic.counters().rx_frames > rx && !self.doorbell_holds_frames() {
                self.stats.doorbell_missed += 1;
            }
            let now = Instant::now();
            let f = self.frames();
            if moved || f != frames {
                self.last_activity = now;
                frames = f;
            }
            let mut timeout = self.timeout(now);
            if timeout != 0 && self.arm_doorbell() {
                // A frame the doorbell dropped or that arming consumed is in
                // the port's ring now: poll once more before sleeping.
                if self.turn() {
                    self.last_activity = Instant::now();
                    timeout = 0;
                }
            }
            if timeout != 0 {
                self.stats.sleeps += 1;
            }
            match epoll::wait(&self.tree.epoll, &mut events, timeout) {
                Ok(()) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            quiet_sleep = timeout != 0 && self.doorbell.is_some() && events.is_empty();
            // A trapped call alone is no reason to spin: the loop answers
            // it, and sleeps again if it moved no frame, so the caller (woken
            // on this CPU) runs at once. Anything else is network work.
            if events.iter().any(|e| e.data.u64() != LISTENER) {
                let now = Instant::now();
                if timeout != 0 {
                    self.spin.after_sleep(now.duration_since(self.last_activity));
                }
                self.last_activity = now;
            }
            let ready: Vec<(u64, epoll::EventFlags)> = events.iter().map(|e| (e.data.u64(), e.flags)).collect();
            for (token, flags) in ready {
                match token {
                    LISTENER => self.on_listener(flags),
                    DOORBELL => {
                        self.armed = false;
                        self.stats.doorbell_wakes += 1;
                    }
                    CHILD => self.tree.on_child(),
                    t if t & PIDFD != 0 => self.tree.on_thread_exit(&self.ctx, (t & !PIDFD) as u32),
                    t if t & BRIDGE != 0 => self.on_bridge(t & !BRIDGE, flags),
                    t if t & LOOPBACK != 0 => self.on_loopback(t & !LOOPBACK),
                    t => {
                        if let Some(p) = self.waits.take(&self.tree.epoll, t) {
                            self.resume_kernel(p);
                        }
                    }
                }
            }
            let now = Instant::now();
            for swept in self.waits.sweep(&self.tree.epoll, now) {
                match swept {
                    Swept::Gone => self.stats.vanished += 1,
                    Swept::Settled(progress) => self.settle(progress),
                    Swept::Resume(p) => self.resume_kernel(p),
                }
            }
            self.sweep_stack_waits(now);
            self.ctx.stash.expire(now);
        }
        self.waits.abandon_all();
        for w in self.stack_waits.drain(..) {
            w.notif.abandon();
        }
        if let Some(s) = &mut self.sink {
            s.flush();
        }
        Ok(self.tree.exit_code().unwrap_or(0))
    }

    /// The stack's counters and the socket counters, for `--stats`.
    pub fn stats_report(&self) -> String {
        let c = self.iface.counters();
        let t = self.iface.tcp_counters();
        let n = self.nic.counters();
        let port = self.nic.port().stats().unwrap_or_default();
        let s = &self.socks.stats;
        let mut rows: Vec<(&str, u64)> = vec![
            ("rx_frames", c.rx_frames),
            ("tx_frames", c.tx_frames),
            ("rx_bytes", port.rx_bytes),
            ("tx_bytes", port.tx_bytes),
            ("tcp_active_opens", t.active_opens),
            ("tcp_passive_opens", t.passive_opens),
            ("tcp_segments_in", t.rx_segments),
            ("tcp_segments_out", t.tx_segments),
            ("tcp_retransmits", self.iface.tcp_retransmits()),
            ("tcp_resets_sent", t.rst_sent),
            ("tcp_listen_overflows", t.listen_overflows),
            ("udp_datagrams_in", c.udp_rx_datagrams),
            ("udp_datagrams_out", c.udp_tx_datagrams),
            ("sockets_user", s.user),
            ("sockets_kernel", s.kernel),
            ("calls_trapped", self.stats.trapped),
            ("calls_vanished", self.stats.vanished),
            ("engine_sleeps", self.stats.sleeps),
            ("engine_doorbell_wakes", self.stats.doorbell_wakes),
            ("engine_doorbell_missed", self.stats.doorbell_missed),
        ];
        rows.extend([
            ("drop_eth_not_for_us", c.drop_eth_not_for_us),
            ("drop_ipv4_malformed", c.drop_ipv4_malformed),
            ("drop_ipv4_checksum", c.drop_ipv4_checksum),
            ("drop_ipv6_malformed", c.drop_ipv6_malformed),
            ("drop_tcp_malformed", t.drop_malformed),
            ("drop_tcp_checksum", t.drop_checksum),
            ("drop_tcp_no_socket", t.no_socket),
            ("drop_udp_malformed", c.drop_udp_malformed),
            ("drop_udp_checksum", c.drop_udp_checksum),
            ("drop_udp_no_socket", c.drop_udp_no_socket),
            ("drop_udp_queue_full", c.drop_udp_queue_full),
            ("drop_udp_no_destination", s.udp_no_destination),
            ("drop_udp_refused", s.udp_send_failed),
            ("drop_tx_no_route", c.drop_tx_no_route),
            ("drop_tx_neighbor", c.drop_tx_neighbor),
            ("drop_tx_queue_full", c.drop_tx_queue_full),
            ("drop_nic_tx_full", n.tx_dropped),
        ]);
        let mut out = String::from("joyride stats:\n");
        for (k, v) in rows {
            out.push_str(&format!("  {k} {v}\n"));
        }
        out
    }

    /// One turn of the stack: NIC bursts, protocol, timers, then the socket
    /// events it produced. Returns whether anything moved.
    fn turn(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..MAX_BURSTS {
            let now = self.clock.now();
            let n = self.iface.poll(now, &mut self.nic);
            moved |= n > 0;
            if n == 0 {
                break;
            }
            moved |= self.dispatch_stack_events();
        }
        moved |= self.dispatch_stack_events();
        moved
    }

    fn dispatch_stack_events(&mut self) -> bool {
        let events: Vec<SocketEvent> = self.iface.drain_events().collect();
        let any = !events.is_empty();
        for ev in events {
            if let Some(ino) = self.socks.ino_of(ev.handle) {
                self.on_stack_event(ino, ev);
            }
        }
        if any {
            // What the pumps queued goes out now, not after a sleep.
            let now = self.clock.now();
            self.iface.poll(now, &mut self.nic);
        }
        any
    }

    /// Frames received and sent so far.
    fn frames(&self) -> u64 {
        let n = self.nic.counters();
        n.rx_frames + n.tx_frames
    }

    /// Whether the doorbell kept frames (it rang after the last sleep ended).
    fn doorbell_holds_frames(&self) -> bool {
        self.doorbell
            .as_ref()
            .is_some_and(|b| crate::sys::readable_now(b.as_fd()))
    }

    /// Arms the doorbell before a sleep unless it still is (every frame
    /// queued since it was emptied reports an edge, which clears `armed`).
    /// Whether the NIC needs the extra poll before sleeping.
    fn arm_doorbell(&mut self) -> bool {
        match &self.doorbell {
            Some(_) if self.armed => false,
            Some(bell) => {
                bell.arm();
                self.armed = true;
                true
            }
            None => false,
        }
    }

    fn timeout(&self, now: Instant) -> i32 {
        if now.duration_since(self.last_activity) < self.spin.0 {
            return 0;
        }
        let mut t = if self.doorbell.is_some() { BACKSTOP } else { IDLE_NAP };
        if let Some(at) = self.iface.poll_at() {
            let stack_now = self.clock.now();
            t = t.min(at.saturating_duration_since(stack_now));
        }
        if let Some(w) = self.waits.timeout(now) {
            t = t.min(w);
        }
        if !self.stack_waits.is_empty() {
            t = t.min(crate::waits::SWEEP.saturating_sub(now.duration_since(self.stack_swept)));
            for d in self.stack_waits.iter().filter_map(|w| w.deadline) {
                t = t.min(d.saturating_duration_since(now));
            }
        }
        // epoll_wait counts milliseconds: round up, so a timer 0.3 ms away
        // is not polled for in a tight loop, and 0 only when due.
        if t.is_zero() {
            0
        } else {
            t.as_millis().max(1) as i32
        }
    }

    fn on_listener(&mut self, flags: epoll::EventFlags) {
        let Some(notif) = self.tree.on_listener(flags) else {
            return;
        };
        self.stats.trapped += 1;
        if notif.is_native() {
            self.serve(notif);
        } else if let Some(r) = kernel::refuse_foreign(notif) {
            self.emit(&r);
        }
    }

    fn forward_signal(&mut self, sig: i32) {
        if let Some(sig) = rustix::process::Signal::from_raw(sig) {
            self.tree.signal_child(sig);
        }
    }

    /// Traffic or a hang-up on a bridge.
    fn on_bridge(&mut self, ino: u64, flags: epoll::EventFlags) {
        let Some(s) = self.socks.get(ino) else { return };
        let hup = flags.contains(epoll::EventFlags::HUP);
        let pumpable = match s.phase {
            Phase::Connected => true,
            Phase::Fresh => s.proto == Proto::Udp,
            Phase::Connecting { .. } | Phase::Listening | Phase::Dead => false,
        };
        if pumpable {
            self.pump(ino);
        } else if hup {
            // Closed before it carried anything (or while listening, or
            // while connecting).
            if let Some(Phase::Connecting { .. }) = self.socks.get(ino).map(|s| &s.phase) {
                self.fail_waiters(ino, libc::ECONNABORTED);
            }
            self.socks.close(&mut self.iface, ino);
        }
    }

    /// Pumps one socket's bytes; forgets it if the program closed it.
    pub(super) fn pump(&mut self, ino: u64) {
        let _ = self.socks.pump(&mut self.iface, ino);
    }

    /// The stack says something changed for socket `ino`.
    fn on_stack_event(&mut self, ino: u64, ev: SocketEvent) {
        let Some(s) = self.socks.get(ino) else { return };
        let h = s.handle;
        match (&s.phase, s.proto) {
            (Phase::Listening, _) => {
                let readable = self.iface.tcp_readiness(h).is_ok_and(|r| r.readable);
                if readable {
                    if let Some(b) = self.socks.get_mut(ino).and_then(|s| s.bridge.as_mut()) {
                        if b.rung() == 0 {
                            if let Err(e) = b.ring() {
                                tracing::debug!(error = %e, "cannot ring a listener's doorbell");
                            }
                        }
                    }
                    self.retry_waiters(ino);
                }
            }
            (Phase::Connecting { .. }, Proto::Tcp) | (Phase::Fresh, Proto::Tcp) => {
                self.connect_progress(ino);
            }
            (Phase::Connected, Proto::Tcp) => {
                self.pump(ino);
                if ev.error || ev.readable {
                    self.check_tcp_error(ino);
                }
            }
            (_, Proto::Udp) => self.pump(ino),
            (Phase::Dead, _) => {}
        }
    }

    /// A connected TCP socket's pending error (reset, timeout): the program
    /// reads what arrived before it, then the bridge is reset.
    fn check_tcp_error(&mut self, ino: u64) {
        let Some(s) = self.socks.get_mut(ino) else { return };
        let h = s.handle;
        let pending = s.error;
        let err = match pending {
            Some(e) => Some(e),
            None => match self.iface.tcp_readiness(h) {
                Ok(r) if r.error.is_some() => self.iface.tcp_take_error(h).ok().flatten().map(|e| e.errno()),
                _ => None,
            },
        };
        if let Some(e) = err {
            if let Some(b) = self.socks.kill(&mut self.iface, ino, e) {
                b.reset();
            }
        }
    }

    /// The handshake of socket `ino` may have finished or failed.
    fn connect_progress(&mut self, ino: u64) {
        let Some(s) = self.socks.get(ino) else { return };
        let h = s.handle;
        let state = self.iface.tcp_state(h).ok().flatten();
        use joyride_netstack::tcp::tcb::State;
        match state {
            Some(State::Established | State::CloseWait) => {
                let s = self.socks.get_mut(ino).expect("looked up above");
                if let Phase::Connecting { held } = std::mem::replace(&mut s.phase, Phase::Connected) {
                    if let (Some(held), Some(b)) = (held, s.bridge.as_mut()) {
                        if let Err(e) = b.release_writes(held.as_fd()) {
                            tracing::warn!(error = %e, "cannot release a connected socket's writes");
                        }
                    }
                }
                self.retry_waiters(ino);
                self.pump(ino);
            }
            Some(State::SynSent | State::SynReceived) => {}
            _ => {
                let err = self
                    .iface
                    .tcp_take_error(h)
                    .ok()
                    .flatten()
                    .map_or(libc::ECONNREFUSED, |e| e.errno());
                let s = self.socks.get_mut(ino).expect("looked up above");
                let held = matches!(s.phase, Phase::Connecting { held: Some(_) });
                if !matches!(s.phase, Phase::Connecting { .. }) {
                    return;
                }
                if held {
                    // A non-blocking connect failed: SO_ERROR tells, and the
                    // program sees the socket readable, writable and in error.
                    if let Some(b) = self.socks.kill(&mut self.iface, ino, err) {
                        b.reset();
                    }
                } else {
                    // A blocking connect failed: the call returns the error;
                    // the socket may connect again, with a new stack socket.
                    self.fresh_stack_socket(ino);
                    self.fail_waiters(ino, err);
                }
            }
        }
    }

    /// Answers every call waiting on `ino` with `errno`.
    fn fail_waiters(&mut self, ino: u64, errno: i32) {
        let (mine, rest): (Vec<StackWait>, Vec<StackWait>) = std::mem::take(&mut self.stack_waits)
            .into_iter()
            .partition(|w| w.ino == ino);
        self.stack_waits = rest;
        for w in mine {
            let r = Record::new(w.notif.pid, w.what.name(), Vec::new(), Err(errno), w.started.elapsed());
            if w.notif.answer_errno(errno).is_ok() {
                self.emit(&r);
            }
        }
    }

    /// Tries again the calls waiting on `ino`.
    fn retry_waiters(&mut self, ino: u64) {
        let (mine, rest): (Vec<StackWait>, Vec<StackWait>) = std::mem::take(&mut self.stack_waits)
            .into_iter()
            .partition(|w| w.ino == ino);
        self.stack_waits = rest;
        for w in mine {
            self.resume_stack_wait(w);
        }
    }

    /// Answers the blocking connects and accepts whose caller vanished, was
    /// signalled or ran out of time. Every [`SWEEP`](crate::waits::SWEEP)
    /// (a signal is seen by reading `/proc/TID/status`, too dear for every
    /// turn of a busy loop: it was a tenth of the engine's time with four
    /// programs connecting), or at once when a deadline is due.
    fn sweep_stack_waits(&mut self, now: Instant) {
        if self.stack_waits.is_empty() {
            return;
        }
        let due = self.stack_waits.iter().any(|w| w.deadline.is_some_and(|d| d <= now));
        if !due && now.duration_since(self.stack_swept) < crate::waits::SWEEP {
            return;
        }
        self.stack_swept = now;
        let waits = std::mem::take(&mut self.stack_waits);
        for w in waits {
            if !w.notif.is_valid() {
                self.stats.vanished += 1;
                w.notif.abandon();
            } else if w.deadline.is_some_and(|d| d <= now) {
                let e = match w.what {
                    WaitFor::Connect => libc::EINPROGRESS,
                    WaitFor::Accept(_) => libc::EAGAIN,
                };
                let r = Record::new(w.notif.pid, w.what.name(), Vec::new(), Err(e), w.started.elapsed());
                if w.notif.answer_errno(e).is_ok() {
                    self.emit(&r);
                }
            } else if kernel::signal_pending(w.notif.pid) {
                // As the kernel: restarted if the handler asks for it (a
                // restarted connect waits for the same handshake), EINTR
                // otherwise; EINTR always with a timeout.
                let r_pid = w.notif.pid;
                let (res, answered) = if w.deadline.is_some() {
                    (Err(libc::EINTR), w.notif.answer_errno(libc::EINTR))
                } else {
                    (Err(joyride_notify::ERESTARTSYS), w.notif.answer_restart())
                };
                let r = Record::new(r_pid, w.what.name(), Vec::new(), res, w.started.elapsed());
                if answered.is_ok() {
                    self.emit(&r);
                }
            } else {
                self.stack_waits.push(w);
            }
        }
    }

    /// Resumes a call parked on a kernel socket.
    fn resume_kernel(&mut self, p: Box<Parked>) {
        let Parked {
            notif,
            sock,
            op,
            started,
            ..
        } = *p;
        let mut hooks = BridgeHooks {
            socks: &mut self.socks,
            iface: &mut self.iface,
        };
        let progress = kernel::resume_op(&mut self.ctx, notif, sock, op, started, &mut hooks);
        self.settle(progress);
    }

    /// Books the outcome of a kernel-served call.
    pub(super) fn settle(&mut self, progress: Progress) {
        self.tree.watch_fresh_pidfds(&self.ctx);
        match progress {
            Progress::Done(r) => self.emit(&r),
            Progress::Vanished => self.stats.vanished += 1,
            Progress::Parked(p) => self.waits.park(&self.tree.epoll, p),
        }
    }

    /// Prints a record with `--trace`.
    pub(super) fn emit(&mut self, r: &Record) {
        if let Some(s) = &mut self.sink {
            s.emit(r);
        }
    }

    /// Watches the loopback listeners of listener `ino` (edge-triggered:
    /// each new connection is an edge).
    pub(super) fn watch_loopback(&mut self, ino: u64) {
        let Some(s) = self.socks.get(ino) else { return };
        for k in &s.loopback {
            let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
            if let Err(e) = epoll::add(
                &self.tree.epoll,
                k.as_fd(),
                epoll::EventData::new_u64(LOOPBACK | ino),
                flags,
            ) {
                tracing::warn!(error = %e, "cannot watch a loopback listener");
            }
        }
    }

    /// A connection waits on a loopback listener of listener `ino`.
    fn on_loopback(&mut self, ino: u64) {
        if let Some(b) = self.socks.get_mut(ino).and_then(|s| s.bridge.as_mut()) {
            if b.rung() == 0 {
                if let Err(e) = b.ring() {
                    tracing::debug!(error = %e, "cannot ring a listener's doorbell");
                }
            }
        }
        self.retry_waiters(ino);
    }

    /// Watches a new bridge.
    pub(super) fn watch_bridge(&mut self, ino: u64) {
        let Some(b) = self.socks.get(ino).and_then(|s| s.bridge.as_ref()) else {
            return;
        };
        let flags = epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
        if let Err(e) = epoll::add(
            &self.tree.epoll,
            b.as_fd(),
            epoll::EventData::new_u64(BRIDGE | ino),
            flags,
        ) {
            tracing::warn!(error = %e, "cannot watch a bridge");
        }
    }

    /// Replaces a socket's stack socket by a fresh one with the same
    /// options (after a failed blocking connect, as Linux's socket returns
    /// to CLOSE and may connect again).
    fn fresh_stack_socket(&mut self, ino: u64) {
        let Some(s) = self.socks.get_mut(ino) else { return };
        let old = s.handle;
        let family = super::calls::family_of(s.domain, s.opt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY));
        s.phase = Phase::Fresh;
        let _ = self.iface.tcp_close(old);
        let h = self.iface.tcp_open(family);
        self.socks.rehandle(ino, h);
        let opts = self.socks.get(ino).map(|s| s.opts.clone()).unwrap_or_default();
        for (level, name, val) in opts {
            let _ = self.apply_opt(ino, level, name, &val);
        }
    }
}

impl WaitFor {
    fn name(&self) -> &'static str {
        match self {
            WaitFor::Connect => "connect",
            WaitFor::Accept(a) => a.call_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests a few hundred µs apart keep the loop polling; requests far
    /// apart shrink the window to [`SPIN_MIN`] in a few steps, and one short
    /// gap starts widening it again.
    #[test]
    fn spin_window_follows_the_gaps() {
        let mut w = SpinWindow(SPIN_MAX);
        w.after_sleep(Duration::from_micros(300));
        assert_eq!(w, SpinWindow(SPIN_MAX));
        for _ in 0..10 {
            w.after_sleep(Duration::from_millis(100));
        }
        assert_eq!(w, SpinWindow(SPIN_MIN));
        w.after_sleep(SPIN_MAX);
        assert_eq!(w, SpinWindow(SPIN_MIN * 2));
        for _ in 0..10 {
            w.after_sleep(Duration::from_micros(80));
        }
        assert_eq!(w, SpinWindow(SPIN_MAX));
    }
}
