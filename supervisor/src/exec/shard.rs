//! Shards: one stack instance per core, each on its own NIC queue pair.
//!
//! Every shard is a whole engine ([`super::engine::Exec`]) in its own thread,
//! with its own [`Interface`](joyride_netstack::iface::Interface), queue
//! pair, epoll set and sockets; they share one MAC, one IP and one port
//! space ([`joyride_netstack::steer`]). Nothing on the data path takes a
//! lock:
//!
//! - A frame that a queue received for another shard (the kernel, not us,
//!   chose the queue) is copied into that shard's inbox, a lock-free queue,
//!   and the shard's eventfd is written only if it sleeps. ARP and neighbor
//!   discovery go to every shard.
//! - Shard 0 is also the control shard: it receives every trapped call
//!   (one seccomp listener), owns the process tree, listeners and UDP. A TCP
//!   socket moves to the next shard in turn when its first `connect` goes to
//!   the stack (it has no port yet, so its port is picked to steer to that
//!   shard); later calls on it are forwarded there. Calls are the control
//!   path: the socket-to-shard table behind a mutex is consulted for them,
//!   never per frame.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use joyride_dpdk::{DpdkNic, NicCounters};
use joyride_netstack::nic::{Capabilities, Nic, RxMeta, TxFull, TxMeta};
use joyride_netstack::steer::{Dest, Steering};
use joyride_notify::Notification;
use rustix::event::{eventfd, EventfdFlags};

use super::socks::Sock;

/// Frames an inbox holds; past it, frames for that shard are dropped (and
/// counted), as a full receive ring would.
const INBOX_FRAMES: usize = 4096;
/// Frame buffers kept for reuse, so forwarding does not allocate.
const SPARE_FRAMES: usize = 8192;

/// What a shard is told by another one.
pub(super) enum Msg {
    /// A trapped call on a socket this shard serves.
    Call(Notification),
    /// A socket moving here for its first `connect`.
    Connect(Box<Moving>),
}

/// A socket moving to another shard with its first `connect`: its stack
/// socket is gone (the options are replayed on a new one); the address was
/// read and checked by shard 0.
pub(super) struct Moving {
    /// The `connect` call, answered by the new shard.
    pub notif: Notification,
    /// The socket's inode.
    pub ino: u64,
    /// The socket.
    pub sock: Sock,
    /// The target's end.
    pub dup: OwnedFd,
    /// The fd number in the caller.
    pub fd: i32,
    /// Where it connects.
    pub to: std::net::SocketAddr,
    /// When the call was received.
    pub started: std::time::Instant,
}

/// One shard's mailbox.
struct Inbox {
    frames: ArrayQueue<Vec<u8>>,
    msgs: Mutex<Vec<Msg>>,
    bell: OwnedFd,
    asleep: AtomicBool,
    dropped: AtomicU64,
}

/// What the shards share.
pub(super) struct Shared {
    inboxes: Vec<Inbox>,
    spare: ArrayQueue<Vec<u8>>,
    /// The shard serving each user-space socket that is not on shard 0,
    /// by inode.
    owners: Mutex<HashMap<u64, usize>>,
    /// The program is gone: shards finish their connections and stop.
    finishing: AtomicBool,
    /// Shard for the next socket that connects.
    next: AtomicUsize,
}

impl Shared {
    /// Mailboxes for `count` shards.
    pub fn new(count: usize) -> std::io::Result<Arc<Shared>> {
        let inboxes = (0..count)
            .map(|_| {
                Ok(Inbox {
                    frames: ArrayQueue::new(INBOX_FRAMES),
                    msgs: Mutex::new(Vec::new()),
                    bell: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
                    asleep: AtomicBool::new(false),
                    dropped: AtomicU64::new(0),
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Arc::new(Shared {
            inboxes,
            spare: ArrayQueue::new(SPARE_FRAMES),
            owners: Mutex::new(HashMap::new()),
            finishing: AtomicBool::new(false),
            next: AtomicUsize::new(0),
        }))
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.inboxes.len()
    }

    /// The eventfd that wakes shard `k`.
    pub fn bell(&self, k: usize) -> BorrowedFd<'_> {
        self.inboxes[k].bell.as_fd()
    }

    /// The shard for the next connecting socket, in turn.
    pub fn next_shard(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.count()
    }

    /// The shard serving socket `ino`, if it is not shard 0.
    pub fn owner(&self, ino: u64) -> Option<usize> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).get(&ino).copied()
    }

    /// Socket `ino` is served by shard `k` from now on.
    pub fn set_owner(&self, ino: u64, k: usize) {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).insert(ino, k);
    }

    /// Socket `ino` is gone from the shard that served it.
    pub fn forget(&self, ino: u64) {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).remove(&ino);
    }

    /// Hands `msg` to shard `k` and wakes it.
    pub fn send(&self, k: usize, msg: Msg) {
        let inbox = &self.inboxes[k];
        inbox.msgs.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
        ring(inbox.bell.as_fd());
    }

    /// Messages for shard `k`, emptying its eventfd.
    pub fn take_msgs(&self, k: usize) -> Vec<Msg> {
        let inbox = &self.inboxes[k];
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&inbox.bell, &mut buf);
        std::mem::take(&mut *inbox.msgs.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The program is gone: every shard finishes its connections and stops.
    pub fn finish(&self) {
        if !self.finishing.swap(true, Ordering::SeqCst) {
            for inbox in &self.inboxes[1..] {
                ring(inbox.bell.as_fd());
            }
        }
    }

    /// Whether [`Shared::finish`] was called.
    pub fn finishing(&self) -> bool {
        self.finishing.load(Ordering::SeqCst)
    }

    /// Shard `k` is about to sleep: whether it may (no frame waits for it).
    /// Until [`Shared::awake`], a frame for it writes its eventfd.
    pub fn may_sleep(&self, k: usize) -> bool {
        let inbox = &self.inboxes[k];
        inbox.asleep.store(true, Ordering::SeqCst);
        // Pairs with the fence in `forward`: either the forwarder sees
        // `asleep` and rings, or we see its frame here.
        fence(Ordering::SeqCst);
        if inbox.frames.is_empty() {
            return true;
        }
        inbox.asleep.store(false, Ordering::SeqCst);
        false
    }

    /// Shard `k` woke up.
    pub fn awake(&self, k: usize) {
        self.inboxes[k].asleep.store(false, Ordering::Relaxed);
    }

    /// Frames dropped because shard `k`'s inbox was full.
    pub fn inbox_dropped(&self, k: usize) -> u64 {
        self.inboxes[k].dropped.load(Ordering::Relaxed)
    }

    /// Copies `frame` into shard `k`'s inbox, waking it if it sleeps.
    fn forward(&self, k: usize, frame: &[u8]) {
        let inbox = &self.inboxes[k];
        let mut buf = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(2048));
        buf.clear();
        buf.extend_from_slice(frame);
        if let Err(buf) = inbox.frames.push(buf) {
            inbox.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = self.spare.push(buf);
            return;
        }
        fence(Ordering::SeqCst);
        if inbox.asleep.load(Ordering::SeqCst) && inbox.asleep.swap(false, Ordering::SeqCst) {
            ring(inbox.bell.as_fd());
        }
    }
}

/// Adds one to an eventfd (it cannot overflow in practice; a full counter
/// still leaves it readable, which is all a ring means).
fn ring(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// A shard's NIC: its queue pair, with frames steered to the shard that
/// owns them, and the frames other shards steered here.
pub struct ShardNic {
    nic: DpdkNic,
    steering: Option<Steering>,
    shared: Arc<Shared>,
    index: usize,
    /// Frames the last receive took from the queue and the inbox, whoever
    /// they were for.
    pulled: usize,
}

impl ShardNic {
    /// Queue pair `nic` of shard `steering.index()` (no steering with one
    /// shard).
    pub(super) fn new(nic: DpdkNic, steering: Option<Steering>, shared: Arc<Shared>) -> ShardNic {
        let index = steering.as_ref().map_or(0, Steering::index);
        ShardNic {
            nic,
            steering,
            shared,
            index,
            pulled: 0,
        }
    }

    /// Frames the last receive took, including those it passed to other
    /// shards (which the stack does not count): more may be waiting.
    pub fn pulled(&self) -> usize {
        self.pulled
    }

    /// The queue pair's counters.
    pub fn counters(&self) -> NicCounters {
        self.nic.counters()
    }

    /// The port.
    pub fn port(&self) -> &joyride_dpdk::Port {
        self.nic.port()
    }

    /// The port's queue pair this is.
    pub fn queue(&self) -> u16 {
        self.nic.queue()
    }
}

impl Nic for ShardNic {
    fn capabilities(&self) -> Capabilities {
        self.nic.capabilities()
    }

    fn mac(&self) -> [u8; 6] {
        self.nic.mac()
    }

    fn receive<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, mut f: F) -> usize {
        let Some(steer) = &self.steering else {
            self.pulled = self.nic.receive(max, f);
            return self.pulled;
        };
        let (me, shared) = (self.index, &*self.shared);
        let mut mine = 0;
        let mut deliver = |frame: &[u8], meta: RxMeta| {
            f(frame, meta);
            mine += 1;
        };
        let mut pulled = self.nic.receive(max, |frame, meta| match steer.classify(frame) {
            Dest::Shard(k) if k != me && k < shared.count() => shared.forward(k, frame),
            Dest::Shard(_) => deliver(frame, meta),
            Dest::All => {
                for k in (0..shared.count()).filter(|&k| k != me) {
                    shared.forward(k, frame);
                }
                deliver(frame, meta)
            }
        });
        let inbox = &shared.inboxes[me];
        while pulled < max {
            let Some(buf) = inbox.frames.pop() else { break };
            // Checksums are checked again: the metadata stayed with the
            // queue that received the frame.
            deliver(&buf, RxMeta::default());
            let _ = shared.spare.push(buf);
            pulled += 1;
        }
        self.pulled = pulled;
        mine
    }

    fn transmit<F: FnOnce(&mut [u8]) -> TxMeta>(&mut self, len: usize, f: F) -> Result<(), TxFull> {
        self.nic.transmit(len, f)
    }

    fn flush(&mut self) {
        self.nic.flush()
    }
}
