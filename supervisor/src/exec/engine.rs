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

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use joyride_fd_bridge::Hub;
use joyride_netstack::iface::{Interface, SocketEvent};
use joyride_netstack::time::{Clock, SystemClock};
use joyride_notify::{Child, Listener, Notification};
use rustix::event::epoll;

use super::policy::Policy;
use super::shard::{Msg, ShardNic, Shared};
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
/// Token of the shard's eventfd: frames or messages from other shards.
const INBOX: u64 = 3;
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
/// Why `joyride exec` stops when TCP/UDP frames arrive with their checksum
/// left to an offload that never ran.
const PARTIAL_CHECKSUMS: &str = "frames from the link carry unfinished TCP/UDP checksums: the sender \
     leaves them to checksum offload that no hardware performs (a Linux veth or tap peer with its \
     default offloads); Joyride's stack drops them all. Turn the offload off on the sending interface: \
     `ethtool -K PEER tx off`";

/// How often TCP sockets without a bridge are checked for a close.
const REAP: Duration = Duration::from_secs(1);

/// Counters `--stats` also shows per shard when there are several.
const PER_SHARD: [&str; 4] = ["rx_frames", "tx_frames", "tcp_active_opens", "tcp_passive_opens"];

/// `--stats`' report: the shards' counters, summed.
pub fn stats_report(shards: &[Vec<(&'static str, u64)>]) -> String {
    let mut out = String::from("joyride stats:\n");
    let Some(first) = shards.first() else { return out };
    for (i, (k, _)) in first.iter().enumerate() {
        let v: u64 = shards.iter().filter_map(|rows| rows.get(i)).map(|(_, v)| v).sum();
        out.push_str(&format!("  {k} {v}\n"));
    }
    if shards.len() > 1 {
        out.push_str(&format!("  shards {}\n", shards.len()));
        for (k, rows) in shards.iter().enumerate() {
            for (key, v) in rows.iter().filter(|(key, _)| PER_SHARD.contains(key)) {
                out.push_str(&format!("  shard{k}_{key} {v}\n"));
            }
        }
    }
    out
}

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
    pub(super) sink: Option<Arc<Mutex<Sink>>>,
    pub(super) iface: Interface,
    pub(super) nic: ShardNic,
    /// This shard's number (0: the one that receives the trapped calls).
    pub(super) index: usize,
    /// What the shards share.
    pub(super) shared: Arc<Shared>,
    pub(super) clock: SystemClock,
    pub(super) socks: Socks,
    /// Where this shard connects its programs' TCP sockets.
    pub(super) hub: Hub,
    /// When sockets without a bridge were last checked for a close.
    reaped: Instant,
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
    fn datagram_head(
        &mut self,
        sock: std::os::fd::BorrowedFd<'_>,
        control: bool,
    ) -> Option<crate::kernel::DatagramHead> {
        self.socks.datagram_head(self.iface, sock, control)
    }

    fn ignores_send_name(&mut self, sock: std::os::fd::BorrowedFd<'_>) -> bool {
        self.socks.is_stream(sock)
    }

    fn send_datagram(
        &mut self,
        sock: std::os::fd::BorrowedFd<'_>,
        name: Option<&[u8]>,
        data: &[u8],
        control: &[u8],
    ) -> Option<Result<usize, i32>> {
        self.socks.send_datagram(self.iface, sock, name, data, control)
    }
}

/// One shard's stack and what it needs besides the served tree.
pub struct Parts {
    /// The stack.
    pub iface: Interface,
    /// Its queue pair.
    pub nic: ShardNic,
    /// Rings when a frame arrives on the queue (without one the loop naps).
    pub doorbell: Option<Doorbell>,
    /// Which sockets the kernel serves.
    pub policy: Policy,
    /// `--trace`'s output, shared by the shards.
    pub sink: Option<Arc<Mutex<Sink>>>,
    /// What the shards share.
    pub shared: Arc<Shared>,
    /// This shard's number.
    pub index: usize,
}

impl Exec {
    /// Shard 0: the engine serving `listener` for the tree rooted at
    /// `child`.
    pub fn new(listener: Listener, child: Child, parts: Parts) -> anyhow::Result<Exec> {
        Exec::with_tree(Tree::new(listener, child)?, parts)
    }

    /// Another shard: it serves the calls shard 0 forwards to it.
    pub fn worker(parts: Parts) -> anyhow::Result<Exec> {
        let exec = Exec::with_tree(Tree::without_program()?, parts)?;
        // Credential calls reach shard 0 only: this shard cannot know when
        // to forget what it read.
        exec.ctx.never_keep_creds();
        Ok(exec)
    }

    fn with_tree(tree: Tree, parts: Parts) -> anyhow::Result<Exec> {
        let Parts {
            iface,
            nic,
            doorbell,
            policy,
            sink,
            shared,
            index,
        } = parts;
        if let Some(bell) = &doorbell {
            epoll::add(
                &tree.epoll,
                bell.as_fd(),
                epoll::EventData::new_u64(DOORBELL),
                epoll::EventFlags::IN | epoll::EventFlags::ET,
            )?;
        }
        if shared.count() > 1 {
            epoll::add(
                &tree.epoll,
                shared.bell(index),
                epoll::EventData::new_u64(INBOX),
                epoll::EventFlags::IN,
            )?;
        }
        let mut socks = Socks::new();
        if index != 0 {
            socks.report_removals(shared.clone());
        }
        Ok(Exec {
            tree,
            ctx: Ctx::new()?,
            waits: Waits::new(FIRST_PARKED),
            sink,
            iface,
            nic,
            index,
            shared,
            clock: SystemClock::new(),
            socks,
            hub: Hub::new()?,
            reaped: Instant::now(),
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
            if self.program_gone() {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if self.iface.tcp_unfinished() == 0 || since.elapsed() >= LINGER {
                    break;
                }
            }
            if self.index == 0 {
                if let Some(sig) = crate::sys::take_forwarded_signal() {
                    self.forward_signal(sig);
                }
            }
            let rx = self.nic.counters().rx_frames;
            let moved = self.turn();
            if moved && self.iface.counters().drop_partial_checksum > 0 {
                // Every such frame would be dropped: stop now rather than
                // let the program hang.
                self.tree.signal_child(rustix::process::Signal::Kill);
                anyhow::bail!("{PARTIAL_CHECKSUMS}");
            }
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
            let sharded = self.shared.count() > 1;
            if timeout != 0 && sharded && !self.shared.may_sleep(self.index) {
                timeout = 0;
            }
            if timeout != 0 {
                self.stats.sleeps += 1;
            }
            let waited = epoll::wait(&self.tree.epoll, &mut events, timeout);
            if timeout != 0 && sharded {
                self.shared.awake(self.index);
            }
            match waited {
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
                    INBOX => self.on_inbox(),
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
            if now.duration_since(self.reaped) >= REAP {
                self.reap_closed();
            }
            self.ctx.stash.expire(now);
        }
        self.waits.abandon_all();
        for w in self.stack_waits.drain(..) {
            w.notif.abandon();
        }
        if let Some(s) = &self.sink {
            s.lock().unwrap_or_else(|e| e.into_inner()).flush();
        }
        Ok(self.tree.exit_code().unwrap_or(0))
    }

    /// Whether the program is gone: for shard 0, every process using the
    /// filter (and then it tells the other shards); for the others, when
    /// shard 0 said so.
    fn program_gone(&self) -> bool {
        if self.index != 0 {
            return self.shared.finishing();
        }
        let done = self.tree.done();
        if done {
            self.shared.finish();
        }
        done
    }

    /// Messages from other shards (frames in the inbox are received with
    /// the NIC's).
    fn on_inbox(&mut self) {
        for msg in self.shared.take_msgs(self.index) {
            match msg {
                Msg::Call(notif) => self.serve(notif),
                Msg::Connect(m) => self.adopt_and_connect(*m),
            }
        }
    }

    /// The stack's counters and the socket counters, for `--stats`.
    pub fn stat_rows(&self) -> Vec<(&'static str, u64)> {
        let c = self.iface.counters();
        let t = self.iface.tcp_counters();
        let n = self.nic.counters();
        // Each port's counters once: from the shard on its queue 0 (a port
        // per queue, or one port for all).
        let port = if self.nic.queue() == 0 {
            self.nic.port().stats().unwrap_or_default()
        } else {
            Default::default()
        };
        let s = &self.socks.stats;
        let mut rows: Vec<(&'static str, u64)> = vec![
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
            ("drop_partial_checksum", c.drop_partial_checksum),
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
            ("drop_nic_rx_missed", port.rx_missed),
            ("drop_nic_rx_no_mbuf", port.rx_no_mbuf),
            ("drop_nic_tx_no_mbuf", n.tx_no_mbuf),
            ("drop_shard_inbox_full", self.shared.inbox_dropped(self.index)),
        ]);
        rows
    }

    /// One turn of the stack: NIC bursts, protocol, timers, then the socket
    /// events it produced. Returns whether anything moved.
    fn turn(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..MAX_BURSTS {
            let now = self.clock.now();
            let n = self.iface.poll(now, &mut self.nic);
            moved |= n > 0;
            if self.nic.pulled() == 0 {
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
        let Some(notif) = kernel::pass_credential_call(&self.ctx, notif) else {
            return;
        };
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
                    self.ring(ino);
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
            // The program's next read says ECONNRESET (after what arrived
            // before), as on Linux: our end closes with a byte unread.
            let target = self.find_target(ino);
            if let Some(b) = self.socks.kill(&mut self.iface, ino, e) {
                match target {
                    Some(t) => b.reset_with(t.as_fd()),
                    None => b.reset(),
                }
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
                    match (held, s.bridge.as_mut()) {
                        (Some(held), Some(b)) => {
                            if let Err(e) = b.release_writes(held.as_fd()) {
                                tracing::warn!(error = %e, "cannot release a connected socket's writes");
                            }
                        }
                        // A blocking connect: the object is attached now.
                        (Some(held), None) => match self.hub.attach(held.as_fd()) {
                            Ok(b) => {
                                s.bridge = Some(b);
                                self.watch_bridge(ino);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot attach a connected socket");
                                let errno = crate::kernel::errno_of(e);
                                self.socks.kill(&mut self.iface, ino, errno);
                                self.fail_waiters(ino, errno);
                                return;
                            }
                        },
                        _ => {}
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
                if !matches!(s.phase, Phase::Connecting { .. }) {
                    return;
                }
                if s.bridge.is_some() {
                    // A non-blocking connect failed: SO_ERROR tells, and the
                    // program sees the socket readable, writable and in error
                    // (the held filler makes its first read ECONNRESET).
                    let held = match std::mem::replace(&mut s.phase, Phase::Dead) {
                        Phase::Connecting { held } => held,
                        _ => None,
                    };
                    if let Some(b) = self.socks.kill(&mut self.iface, ino, err) {
                        match held {
                            Some(t) => b.reset_with(t.as_fd()),
                            None => b.reset(),
                        }
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
        if let Some(s) = &self.sink {
            s.lock().unwrap_or_else(|e| e.into_inner()).emit(r);
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
        self.ring(ino);
        self.retry_waiters(ino);
    }

    /// Listener `ino` polls readable: a connection waits.
    fn ring(&mut self, ino: u64) {
        if let Some(l) = self.socks.get_mut(ino).and_then(|s| s.lobby.as_mut()) {
            if l.rung() == 0 {
                if let Err(e) = l.ring() {
                    tracing::debug!(error = %e, "cannot ring a listener's doorbell");
                }
            }
        }
    }

    /// Forgets the TCP sockets without a bridge (fresh, listening, in a
    /// blocking connect) whose target object is gone: the program closed
    /// every fd of it, and no hang-up said so. Every [`REAP`], and at once
    /// when a bind finds its port taken (a listener closed and bound again).
    pub(super) fn reap_closed(&mut self) -> usize {
        self.reaped = Instant::now();
        let mut n = 0;
        for ino in self.socks.bridgeless() {
            if self.hub.exists(ino) == Some(false) {
                if self
                    .socks
                    .get(ino)
                    .is_some_and(|s| matches!(s.phase, Phase::Connecting { .. }))
                {
                    self.fail_waiters(ino, libc::ECONNABORTED);
                }
                self.socks.close(&mut self.iface, ino);
                n += 1;
            }
        }
        n
    }

    /// A duplicate of socket `ino`'s target object, from where the target
    /// was last seen holding it.
    fn find_target(&self, ino: u64) -> Option<OwnedFd> {
        let (tid, fd) = self.socks.get(ino)?.seen_at?;
        let dup = crate::sys::thread_fd(tid, fd)?;
        (self.socks.lookup(dup.as_fd()) == Ok(ino)).then_some(dup)
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
        self.replay_opts(ino);
    }

    /// Sets again on socket `ino`'s stack socket the options the program
    /// set (after its stack socket was replaced).
    pub(super) fn replay_opts(&mut self, ino: u64) {
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
