//! [`SimNetwork`]: nodes joined by impaired links under a virtual clock.
//!
//! Each node is a [`SimNode`] with one [`MemoryNic`] attached to at most one
//! link. A link is point-to-point, a hub (every frame to every other port) or
//! a switch (a frame to the port whose device has the destination MAC,
//! broadcast, multicast and unknown destinations to every other port). Links
//! lose, duplicate, corrupt, delay, reorder and rate-limit frames as their
//! [`LinkConfig`] says, and partitions cut groups of nodes apart until they
//! heal.
//!
//! The network is a discrete-event simulation: [`SimNetwork::step`] takes the
//! earliest pending event (a frame arriving, a node's wakeup), moves the
//! [`VirtualClock`] there and polls the node concerned; frames the node
//! transmitted enter its link. Ties are broken by insertion order and node
//! id, every random choice comes from a per-link stream of the run's seed, so
//! a run replays exactly from its seed.
//!
//! Not for: anything about protocols. The network only reads a frame's
//! destination MAC (switches) and never depends on `wire` or `iface`.

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use super::impair::{impair_copy, DelayLine, Fate, ImpairDrop, LinkConfig, Shaper};
use super::memory_nic::MemoryNic;
use super::rng::SimRng;
use crate::nic::Nic;
use crate::time::{Clock, Instant, VirtualClock};

/// Something the simulator drives: a stack, a test peer, a traffic source.
pub trait SimNode {
    /// Does the node's work at `now`: receive from `nic`, run timers,
    /// transmit and flush. Only frames flushed to `nic` leave the node.
    fn poll(&mut self, now: Instant, nic: &mut MemoryNic);

    /// When the node next needs a poll without new frames, if ever.
    fn next_wakeup(&self) -> Option<Instant>;
}

impl<T: SimNode + ?Sized> SimNode for Box<T> {
    fn poll(&mut self, now: Instant, nic: &mut MemoryNic) {
        (**self).poll(now, nic)
    }

    fn next_wakeup(&self) -> Option<Instant> {
        (**self).next_wakeup()
    }
}

/// Names a node of a [`SimNetwork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// Names a link of a [`SimNetwork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub usize);

/// How a link forwards frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Two ports; each frame goes to the other.
    PointToPoint,
    /// Every frame goes to every other port.
    Hub,
    /// A frame goes to the port whose device has its destination MAC;
    /// broadcast, multicast and unknown destinations go to every other port.
    Switch,
}

/// Counters of one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames transmitted into the link.
    pub sent: u64,
    /// Frame copies handed to a receiving device.
    pub delivered: u64,
    /// Bytes in those copies.
    pub bytes_delivered: u64,
    /// Copies lost at random.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies with a flipped bit.
    pub corrupted: u64,
    /// Copies held back to reorder them.
    pub reordered: u64,
    /// Copies dropped by a partition.
    pub partitioned: u64,
    /// Frames dropped because the sending port's queue was full.
    pub queue_dropped: u64,
    /// Frames dropped for exceeding `max_frame`.
    pub oversize: u64,
    /// Copies dropped because the receiving device's queue was full.
    pub rx_full: u64,
}

/// Why the network dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimDrop {
    /// Random loss.
    Loss,
    /// A partition.
    Partition,
    /// The sending port's queue was full.
    QueueFull,
    /// Larger than the link carries.
    Oversize,
    /// The receiving device's queue was full.
    RxFull,
    /// The sending node is not attached to a link.
    Unattached,
}

impl From<ImpairDrop> for SimDrop {
    fn from(why: ImpairDrop) -> SimDrop {
        match why {
            ImpairDrop::Loss => SimDrop::Loss,
            ImpairDrop::QueueFull => SimDrop::QueueFull,
            ImpairDrop::Oversize => SimDrop::Oversize,
        }
    }
}

/// What happened to a frame; see [`TraceEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// A copy was put on the wire, to arrive at `arrive_at`.
    Scheduled {
        /// Arrival time.
        arrive_at: Instant,
        /// This is an extra copy.
        duplicate: bool,
        /// A bit of this copy was flipped.
        corrupted: bool,
        /// This copy was held back.
        reordered: bool,
    },
    /// A copy reached the receiving device.
    Delivered,
    /// A frame or copy was dropped.
    Dropped(SimDrop),
}

/// One entry of the network's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// When.
    pub at: Instant,
    /// The link (none if the sender is unattached).
    pub link: Option<LinkId>,
    /// The sending node.
    pub from: NodeId,
    /// The receiving node (the sender itself for drops before a receiver is
    /// chosen).
    pub to: NodeId,
    /// Frame length.
    pub len: usize,
    /// FNV-1a hash of the frame's bytes (as sent or as delivered).
    pub digest: u64,
    /// What happened.
    pub kind: TraceKind,
}

impl core::fmt::Display for TraceEvent {
    /// One line, e.g. `0.001010s link0 n0->n1 60B delivered`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.link {
            Some(l) => write!(f, "{} link{} ", self.at, l.0)?,
            None => write!(f, "{} nolink ", self.at)?,
        }
        write!(
            f,
            "n{}->n{} {}B {:016x} ",
            self.from.0, self.to.0, self.len, self.digest
        )?;
        match self.kind {
            TraceKind::Scheduled {
                arrive_at,
                duplicate,
                corrupted,
                reordered,
            } => {
                write!(f, "scheduled for {arrive_at}")?;
                for (flag, name) in [
                    (duplicate, "duplicate"),
                    (corrupted, "corrupted"),
                    (reordered, "reordered"),
                ] {
                    if flag {
                        write!(f, " {name}")?;
                    }
                }
                Ok(())
            }
            TraceKind::Delivered => f.write_str("delivered"),
            TraceKind::Dropped(why) => write!(f, "dropped ({why:?})"),
        }
    }
}

/// The simulation ran `max_steps` steps without going idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimit {
    /// Steps taken.
    pub steps: u64,
}

#[derive(Debug)]
struct NodeSlot<N> {
    node: N,
    nic: MemoryNic,
    link: Option<LinkId>,
}

#[derive(Debug)]
struct Link {
    kind: LinkKind,
    config: LinkConfig,
    ports: Vec<NodeId>,
    rng: SimRng,
    stats: LinkStats,
    /// Per sending port: its serialiser.
    queues: Vec<(NodeId, Shaper)>,
    /// Per direction (from, to): whether its burst-loss channel is in the
    /// bad state.
    bursting: BTreeMap<(NodeId, NodeId), bool>,
}

#[derive(Debug)]
struct Partition {
    a: BTreeSet<NodeId>,
    b: BTreeSet<NodeId>,
    from: Instant,
    until: Instant,
}

impl Partition {
    fn cuts(&self, x: NodeId, y: NodeId, t: Instant) -> bool {
        self.from <= t
            && t < self.until
            && ((self.a.contains(&x) && self.b.contains(&y)) || (self.a.contains(&y) && self.b.contains(&x)))
    }
}

#[derive(Debug)]
struct Arrival {
    link: LinkId,
    from: NodeId,
    to: NodeId,
    frame: Vec<u8>,
}

/// FNV-1a, 64 bits: a cheap fingerprint for traces.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A simulated network; see the module docs.
#[derive(Debug)]
pub struct SimNetwork<N> {
    seed: u64,
    clock: VirtualClock,
    nodes: Vec<NodeSlot<N>>,
    links: Vec<Link>,
    arrivals: DelayLine<Arrival>,
    kicked: BTreeSet<NodeId>,
    partitions: Vec<Partition>,
    trace: Option<Vec<TraceEvent>>,
    unattached_drops: u64,
    max_steps: u64,
}

impl<N: SimNode> SimNetwork<N> {
    /// An empty network whose clock starts at [`Instant::ZERO`] and whose
    /// random choices all derive from `seed`.
    pub fn new(seed: u64) -> Self {
        SimNetwork {
            seed,
            clock: VirtualClock::new(Instant::ZERO),
            nodes: Vec::new(),
            links: Vec::new(),
            arrivals: DelayLine::new(),
            kicked: BTreeSet::new(),
            partitions: Vec::new(),
            trace: None,
            unattached_drops: 0,
            max_steps: 10_000_000,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// A handle on the network's clock (for nodes that want to read it; the
    /// network alone moves it).
    pub fn clock(&self) -> VirtualClock {
        self.clock.clone()
    }

    /// A random stream for `node`'s own choices (ISNs, ports, jitter),
    /// derived from the seed and independent of every link's.
    pub fn node_rng(&self, node: NodeId) -> SimRng {
        SimRng::derive(self.seed, (1 << 32) + node.0 as u64)
    }

    /// Sets the step limit of [`SimNetwork::run_until_idle`] (default ten
    /// million).
    pub fn set_max_steps(&mut self, max_steps: u64) {
        self.max_steps = max_steps;
    }

    /// Adds a node with its device; it is polled at the current time on the
    /// next step.
    pub fn add_node(&mut self, node: N, nic: MemoryNic) -> NodeId {
        let id = NodeId(self.nodes.len());
        self.nodes.push(NodeSlot { node, nic, link: None });
        self.kicked.insert(id);
        id
    }

    /// The node `id`.
    ///
    /// # Panics
    /// If there is no such node (here and in every method taking a
    /// [`NodeId`] or [`LinkId`]).
    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id.0].node
    }

    /// The node `id`, to change it; it is polled at the current time on the
    /// next step, so whatever the change asks for happens.
    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        self.kicked.insert(id);
        &mut self.nodes[id.0].node
    }

    /// The device of node `id`.
    pub fn nic(&self, id: NodeId) -> &MemoryNic {
        &self.nodes[id.0].nic
    }

    /// The device of node `id`, e.g. to inject a frame; the node is polled
    /// at the current time on the next step.
    pub fn nic_mut(&mut self, id: NodeId) -> &mut MemoryNic {
        self.kicked.insert(id);
        &mut self.nodes[id.0].nic
    }

    /// Polls node `id` at the current time on the next step.
    pub fn kick(&mut self, id: NodeId) {
        self.kicked.insert(id);
    }

    /// Joins `a` and `b` with a point-to-point link.
    ///
    /// # Panics
    /// If either node is already attached to a link.
    pub fn connect(&mut self, a: NodeId, b: NodeId, config: LinkConfig) -> LinkId {
        self.add_link(LinkKind::PointToPoint, config, &[a, b])
    }

    /// Joins `nodes` with a link of `kind`.
    ///
    /// # Panics
    /// If a node is already attached to a link, appears twice, or a
    /// point-to-point link does not get exactly two nodes.
    pub fn add_link(&mut self, kind: LinkKind, config: LinkConfig, nodes: &[NodeId]) -> LinkId {
        let id = LinkId(self.links.len());
        if kind == LinkKind::PointToPoint {
            assert_eq!(nodes.len(), 2, "a point-to-point link joins two nodes");
        }
        for n in nodes {
            let slot = &mut self.nodes[n.0];
            assert!(slot.link.is_none(), "node {n:?} is already attached");
            slot.link = Some(id);
        }
        self.links.push(Link {
            kind,
            config,
            ports: nodes.to_vec(),
            rng: SimRng::derive(self.seed, 1 + id.0 as u64),
            stats: LinkStats::default(),
            queues: Vec::new(),
            bursting: BTreeMap::new(),
        });
        id
    }

    /// Changes a link's impairments from now on (frames in flight keep
    /// theirs).
    pub fn set_link_config(&mut self, link: LinkId, config: LinkConfig) {
        self.links[link.0].config = config;
    }

    /// A link's impairments.
    pub fn link_config(&self, link: LinkId) -> &LinkConfig {
        &self.links[link.0].config
    }

    /// A link's counters.
    pub fn link_stats(&self, link: LinkId) -> &LinkStats {
        &self.links[link.0].stats
    }

    /// Frames dropped because their sender was attached to no link.
    pub fn unattached_drops(&self) -> u64 {
        self.unattached_drops
    }

    /// Cuts every node of `a` off from every node of `b` from `from` until
    /// `heal_at`: copies sent, or arriving, in that interval are dropped.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId], from: Instant, heal_at: Instant) {
        self.partitions.push(Partition {
            a: a.iter().copied().collect(),
            b: b.iter().copied().collect(),
            from,
            until: heal_at,
        });
    }

    /// Whether a partition separates `x` and `y` at `t`.
    pub fn is_partitioned(&self, x: NodeId, y: NodeId, t: Instant) -> bool {
        self.partitions.iter().any(|p| p.cuts(x, y, t))
    }

    /// Starts recording a trace of every frame's fate.
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// The trace recorded so far (empty unless enabled).
    pub fn trace(&self) -> &[TraceEvent] {
        self.trace.as_deref().unwrap_or(&[])
    }

    fn record(&mut self, ev: TraceEvent) {
        if let Some(t) = &mut self.trace {
            t.push(ev);
        }
    }

    /// When the next event is due, if any.
    pub fn next_event(&self) -> Option<Instant> {
        let now = self.now();
        let kicked = (!self.kicked.is_empty()).then_some(now);
        let arrival = self.arrivals.next_due();
        let wake = self
            .nodes
            .iter()
            .filter_map(|s| s.node.next_wakeup())
            .min()
            .map(|t| t.max(now));
        [kicked, arrival, wake].into_iter().flatten().min()
    }

    /// Handles the next event: delivers the frames arriving at one node at
    /// the earliest time, or wakes the node due first, and moves the clock
    /// there. Returns `false` if nothing is pending.
    pub fn step(&mut self) -> bool {
        let now = self.now();
        if let Some(id) = self.kicked.pop_first() {
            self.poll_node(id, now);
            return true;
        }
        let arrival = self.arrivals.next_due();
        let wake = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.node.next_wakeup().map(|t| (t.max(now), i)))
            .min();
        match (arrival, wake) {
            (None, None) => false,
            (Some(at), w) if !matches!(w, Some((t, _)) if t < at) => {
                let at = at.max(now);
                self.clock.set(at);
                let Some((first_at, first)) = self.arrivals.pop() else {
                    return false;
                };
                let to = first.to;
                self.deliver(first_at, first);
                // The rest of the burst for the same node at the same time.
                while let Some((next_at, next)) = self.arrivals.peek() {
                    if next_at > at || next.to != to {
                        break;
                    }
                    let Some((next_at, next)) = self.arrivals.pop() else {
                        break;
                    };
                    self.deliver(next_at, next);
                }
                self.poll_node(to, at);
                true
            }
            (_, Some((t, i))) => {
                self.clock.set(t);
                self.poll_node(NodeId(i), t);
                true
            }
            (Some(_), None) => unreachable!("handled above"),
        }
    }

    /// Steps until nothing is pending: no frame in flight, no node wakeup.
    /// Fails after the step limit (a node that always wants a poll).
    pub fn run_until_idle(&mut self) -> Result<u64, StepLimit> {
        let mut steps = 0;
        while self.step() {
            steps += 1;
            if steps >= self.max_steps {
                return Err(StepLimit { steps });
            }
        }
        Ok(steps)
    }

    /// Steps through every event due at or before `deadline`, then moves the
    /// clock to `deadline`. Returns the number of steps; fails after the step
    /// limit (a node that keeps asking for a poll at the same time).
    pub fn run_until(&mut self, deadline: Instant) -> Result<u64, StepLimit> {
        let mut steps = 0;
        while self.next_event().is_some_and(|t| t <= deadline) {
            self.step();
            steps += 1;
            if steps >= self.max_steps {
                return Err(StepLimit { steps });
            }
        }
        if deadline > self.now() {
            self.clock.set(deadline);
        }
        Ok(steps)
    }

    /// [`SimNetwork::run_until`] `now + d`.
    pub fn run_for(&mut self, d: Duration) -> Result<u64, StepLimit> {
        let deadline = self.now().saturating_add(d);
        self.run_until(deadline)
    }

    fn deliver(&mut self, at: Instant, a: Arrival) {
        let link = &mut self.links[a.link.0];
        let mut ev = TraceEvent {
            at,
            link: Some(a.link),
            from: a.from,
            to: a.to,
            len: a.frame.len(),
            digest: fnv1a(&a.frame),
            kind: TraceKind::Delivered,
        };
        if self.partitions.iter().any(|p| p.cuts(a.from, a.to, at)) {
            link.stats.partitioned += 1;
            ev.kind = TraceKind::Dropped(SimDrop::Partition);
        } else {
            let len = a.frame.len() as u64;
            if self.nodes[a.to.0].nic.inject(a.frame) {
                link.stats.delivered += 1;
                link.stats.bytes_delivered += len;
            } else {
                link.stats.rx_full += 1;
                ev.kind = TraceKind::Dropped(SimDrop::RxFull);
            }
        }
        self.record(ev);
    }

    fn poll_node(&mut self, id: NodeId, now: Instant) {
        let slot = &mut self.nodes[id.0];
        slot.node.poll(now, &mut slot.nic);
        while let Some(frame) = self.nodes[id.0].nic.pop_transmitted() {
            self.send(id, now, frame);
        }
    }

    /// Puts a frame transmitted by `from` on its link.
    fn send(&mut self, from: NodeId, now: Instant, frame: Vec<u8>) {
        let digest = fnv1a(&frame);
        let mut ev = TraceEvent {
            at: now,
            link: None,
            from,
            to: from,
            len: frame.len(),
            digest,
            kind: TraceKind::Dropped(SimDrop::Unattached),
        };
        let Some(link_id) = self.nodes[from.0].link else {
            self.unattached_drops += 1;
            self.record(ev);
            return;
        };
        ev.link = Some(link_id);
        let receivers = self.receivers(link_id, from, &frame);
        let link = &mut self.links[link_id.0];
        let cfg = link.config;
        link.stats.sent += 1;
        // Serialisation behind earlier frames of this port.
        let q = match link.queues.iter().position(|(n, _)| *n == from) {
            Some(i) => i,
            None => {
                link.queues.push((from, Shaper::new()));
                link.queues.len() - 1
            }
        };
        let depart = match link.queues[q].1.admit(&cfg, frame.len(), now) {
            Ok(t) => t,
            Err(why) => {
                match why {
                    ImpairDrop::Oversize => link.stats.oversize += 1,
                    ImpairDrop::QueueFull => link.stats.queue_dropped += 1,
                    ImpairDrop::Loss => link.stats.lost += 1,
                }
                ev.kind = TraceKind::Dropped(why.into());
                self.record(ev);
                return;
            }
        };
        let mut events = Vec::new();
        for to in receivers {
            let mut e = TraceEvent { to, ..ev };
            let bursting = link.bursting.entry((from, to)).or_default();
            let fate = Fate::draw(&cfg, &mut link.rng, bursting);
            if self.partitions.iter().any(|p| p.cuts(from, to, now)) {
                link.stats.partitioned += 1;
                e.kind = TraceKind::Dropped(SimDrop::Partition);
                events.push(e);
                continue;
            }
            if fate.lost {
                link.stats.lost += 1;
                e.kind = TraceKind::Dropped(SimDrop::Loss);
                events.push(e);
                continue;
            }
            for copy in 0..fate.copies() {
                let mut f = frame.clone();
                let c = impair_copy(&cfg, &mut link.rng, &mut f, depart);
                link.stats.corrupted += u64::from(c.corrupted);
                link.stats.reordered += u64::from(c.reordered);
                link.stats.duplicated += u64::from(copy == 1);
                events.push(TraceEvent {
                    digest: fnv1a(&f),
                    kind: TraceKind::Scheduled {
                        arrive_at: c.at,
                        duplicate: copy == 1,
                        corrupted: c.corrupted,
                        reordered: c.reordered,
                    },
                    ..e
                });
                self.arrivals.push(
                    c.at,
                    Arrival {
                        link: link_id,
                        from,
                        to,
                        frame: f,
                    },
                );
            }
        }
        for e in events {
            self.record(e);
        }
    }

    /// The ports a frame from `from` goes to.
    fn receivers(&self, link: LinkId, from: NodeId, frame: &[u8]) -> Vec<NodeId> {
        let link = &self.links[link.0];
        let others = link.ports.iter().copied().filter(|&p| p != from);
        match link.kind {
            LinkKind::PointToPoint | LinkKind::Hub => others.collect(),
            LinkKind::Switch => {
                let dst = frame.get(..6);
                let unicast = dst.filter(|d| d[0] & 1 == 0);
                let known = unicast.and_then(|d| others.clone().find(|p| self.nodes[p.0].nic.mac() == d));
                match known {
                    Some(p) => vec![p],
                    None => others.collect(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{BurstLoss, ScriptedNode};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
    const BCAST: [u8; 6] = [0xff; 6];

    fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
        let mut f = Vec::with_capacity(len.max(18));
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&seq.to_be_bytes());
        f.resize(len.max(18), (seq % 251) as u8);
        f
    }

    fn seq_of(f: &[u8]) -> u32 {
        u32::from_be_bytes([f[12], f[13], f[14], f[15]])
    }

    /// Two nodes on one link; `a` sends `n` frames of `len` bytes, one every
    /// `gap`.
    fn pair(seed: u64, cfg: LinkConfig, n: u32, gap: Duration, len: usize) -> (SimNetwork<ScriptedNode>, LinkId) {
        let mut net = SimNetwork::new(seed);
        let mut sender = ScriptedNode::new();
        for i in 0..n {
            sender.send_at(Instant::ZERO + gap * i, frame(B, A, i, len));
        }
        let a = net.add_node(sender, MemoryNic::new(A));
        let b = net.add_node(ScriptedNode::new(), MemoryNic::new(B));
        let l = net.connect(a, b, cfg);
        (net, l)
    }

    fn received_seqs(net: &SimNetwork<ScriptedNode>, node: usize) -> Vec<u32> {
        net.node(NodeId(node)).received.iter().map(|(_, f)| seq_of(f)).collect()
    }

    fn lossy() -> LinkConfig {
        LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::from_micros(300),
            loss: 0.05,
            duplicate: 0.05,
            reorder: 0.05,
            reorder_delay: Duration::from_millis(2),
            corrupt: 0.05,
            rate_bps: Some(100_000_000),
            queue_limit: 50,
            max_frame: Some(1514),
            burst_loss: Some(BurstLoss {
                enter: 0.001,
                leave: 0.5,
            }),
        }
    }

    #[test]
    fn perfect_link_delivers_in_order_after_latency() {
        let (mut net, l) = pair(1, LinkConfig::default(), 100, Duration::from_micros(100), 64);
        net.run_until_idle().unwrap();
        assert_eq!(received_seqs(&net, 1), (0..100).collect::<Vec<_>>());
        let first = &net.node(NodeId(1)).received[0];
        assert_eq!(first.0, Instant::from_micros(10));
        let s = net.link_stats(l);
        assert_eq!((s.sent, s.delivered, s.bytes_delivered), (100, 100, 6400));
        assert_eq!(net.now(), Instant::from_micros(9_910));
    }

    #[test]
    fn same_seed_same_trace() {
        let run = |seed| {
            let (mut net, _) = pair(seed, lossy(), 2000, Duration::from_micros(50), 700);
            net.enable_trace();
            net.run_until_idle().unwrap();
            (net.trace().to_vec(), net.node(NodeId(1)).received.clone())
        };
        let (t1, r1) = run(7);
        let (t2, r2) = run(7);
        assert!(t1.len() > 3000, "{}", t1.len());
        for kind in [SimDrop::Loss, SimDrop::QueueFull] {
            assert!(
                t1.iter().any(|e| e.kind == TraceKind::Dropped(kind)),
                "{kind:?} exercised"
            );
        }
        assert!(t1
            .iter()
            .any(|e| matches!(e.kind, TraceKind::Scheduled { duplicate: true, .. })));
        assert!(t1
            .iter()
            .any(|e| matches!(e.kind, TraceKind::Scheduled { corrupted: true, .. })));
        assert!(t1
            .iter()
            .any(|e| matches!(e.kind, TraceKind::Scheduled { reordered: true, .. })));
        assert_eq!(t1, t2);
        assert_eq!(r1, r2);
        assert!(t1.iter().any(|e| e.to_string().ends_with("delivered")));
        let (t3, _) = run(8);
        assert_ne!(t1, t3, "another seed, another run");
    }

    #[test]
    fn loss_rate_within_tolerance() {
        let cfg = LinkConfig {
            loss: 0.2,
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(3, cfg, 10_000, Duration::from_micros(20), 60);
        net.run_until_idle().unwrap();
        let s = *net.link_stats(l);
        // Binomial(10000, 0.2): sd = 40; allow 5 sd.
        assert!((1800..=2200).contains(&s.lost), "{s:?}");
        assert_eq!(s.lost + s.delivered, 10_000);
        assert_eq!(net.node(NodeId(1)).received.len() as u64, s.delivered);
        // Survivors arrive in order.
        let seqs = received_seqs(&net, 1);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn burst_loss_comes_in_runs() {
        let cfg = LinkConfig {
            burst_loss: Some(BurstLoss {
                enter: 0.01,
                leave: 0.2,
            }),
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(14, cfg, 20_000, Duration::from_micros(20), 60);
        net.run_until_idle().unwrap();
        let seqs = received_seqs(&net, 1);
        let lost = 20_000 - seqs.len();
        // Long-run rate enter / (enter + leave) = 4.8 %.
        assert!((600..=1400).contains(&lost), "{lost}");
        assert_eq!(net.link_stats(l).lost as usize, lost);
        // Gaps between survivors are runs of losses: about 1 / leave = 5
        // long, where independent loss would give about 1.
        let gaps: Vec<u32> = seqs.windows(2).map(|w| w[1] - w[0] - 1).filter(|&g| g > 0).collect();
        let mean = gaps.iter().sum::<u32>() as f64 / gaps.len() as f64;
        assert!((3.5..=6.5).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn duplication() {
        let cfg = LinkConfig {
            duplicate: 0.1,
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(4, cfg, 10_000, Duration::from_micros(20), 60);
        net.run_until_idle().unwrap();
        let s = *net.link_stats(l);
        assert!((800..=1200).contains(&s.duplicated), "{s:?}");
        assert_eq!(s.delivered, 10_000 + s.duplicated);
        let mut seqs = received_seqs(&net, 1);
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs, (0..10_000).collect::<Vec<_>>(), "every frame at least once");
    }

    #[test]
    fn reordering() {
        let cfg = LinkConfig {
            reorder: 0.1,
            reorder_delay: Duration::from_micros(500),
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(5, cfg, 2_000, Duration::from_micros(100), 60);
        net.run_until_idle().unwrap();
        let seqs = received_seqs(&net, 1);
        let inversions = seqs.windows(2).filter(|w| w[0] > w[1]).count();
        let s = *net.link_stats(l);
        assert!((120..=280).contains(&s.reordered), "{s:?}");
        assert!(inversions as u64 >= s.reordered / 2, "{inversions} inversions");
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(sorted, (0..2_000).collect::<Vec<_>>(), "reordered, not lost");
        // Jitter alone reorders too.
        let cfg = LinkConfig {
            jitter: Duration::from_micros(300),
            ..LinkConfig::default()
        };
        let (mut net, _) = pair(5, cfg, 2_000, Duration::from_micros(100), 60);
        net.run_until_idle().unwrap();
        assert!(received_seqs(&net, 1).windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn corruption_flips_one_bit() {
        let cfg = LinkConfig {
            corrupt: 0.3,
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(6, cfg, 1_000, Duration::from_micros(20), 100);
        net.run_until_idle().unwrap();
        let mut flipped = 0;
        for (i, (_, f)) in net.node(NodeId(1)).received.iter().enumerate() {
            let orig = frame(B, A, i as u32, 100);
            let bits: u32 = f.iter().zip(&orig).map(|(x, y)| (x ^ y).count_ones()).sum();
            assert!(bits <= 1);
            flipped += bits;
        }
        let s = *net.link_stats(l);
        assert_eq!(u64::from(flipped), s.corrupted);
        assert!((230..=370).contains(&s.corrupted), "{s:?}");
    }

    #[test]
    fn partition_heals() {
        let (mut net, l) = pair(7, LinkConfig::default(), 100, Duration::from_millis(1), 60);
        // Frames 20..50 are sent while the partition holds.
        net.partition(
            &[NodeId(0)],
            &[NodeId(1)],
            Instant::from_millis(20),
            Instant::from_millis(50),
        );
        assert!(net.is_partitioned(NodeId(1), NodeId(0), Instant::from_millis(20)));
        assert!(!net.is_partitioned(NodeId(1), NodeId(0), Instant::from_millis(50)));
        net.run_until_idle().unwrap();
        let expected: Vec<u32> = (0..20).chain(50..100).collect();
        assert_eq!(received_seqs(&net, 1), expected);
        assert_eq!(net.link_stats(l).partitioned, 30);
    }

    #[test]
    fn partition_drops_frames_in_flight() {
        let cfg = LinkConfig {
            latency: Duration::from_millis(10),
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(7, cfg, 1, Duration::ZERO, 60);
        net.partition(
            &[NodeId(1)],
            &[NodeId(0)],
            Instant::from_millis(5),
            Instant::from_millis(15),
        );
        net.run_until_idle().unwrap();
        assert!(net.node(NodeId(1)).received.is_empty());
        assert_eq!(net.link_stats(l).partitioned, 1);
    }

    #[test]
    fn rate_limit_and_queue() {
        // 1 Mbit/s: a 1250-byte frame takes 10 ms on the wire.
        let cfg = LinkConfig {
            rate_bps: Some(1_000_000),
            queue_limit: 5,
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(8, cfg, 20, Duration::from_millis(5), 1250);
        net.run_until_idle().unwrap();
        let got = &net.node(NodeId(1)).received;
        // Frames arrive every 10 ms; the sender offers one every 5 ms, so the
        // queue fills and the excess is dropped.
        for w in got.windows(2) {
            assert!(w[1].0 - w[0].0 >= Duration::from_millis(10));
        }
        assert_eq!(got[0].0, Instant::from_micros(10_010));
        let s = *net.link_stats(l);
        assert!(s.queue_dropped > 0);
        assert_eq!(s.queue_dropped + s.delivered, 20);
    }

    #[test]
    fn oversize_frames_dropped() {
        let cfg = LinkConfig {
            max_frame: Some(1514),
            ..LinkConfig::default()
        };
        let (mut net, l) = pair(9, cfg, 1, Duration::ZERO, 1515);
        net.run_until_idle().unwrap();
        assert_eq!(net.link_stats(l).oversize, 1);
        assert!(net.node(NodeId(1)).received.is_empty());
    }

    #[test]
    fn switch_forwards_by_mac_and_floods() {
        let mut net = SimNetwork::new(10);
        let mut a = ScriptedNode::new();
        a.send_at(Instant::ZERO, frame(B, A, 1, 60));
        a.send_at(Instant::ZERO, frame(BCAST, A, 2, 60));
        a.send_at(Instant::ZERO, frame([2, 9, 9, 9, 9, 9], A, 3, 60));
        let a = net.add_node(a, MemoryNic::new(A));
        let b = net.add_node(ScriptedNode::new(), MemoryNic::new(B));
        let c = net.add_node(ScriptedNode::new(), MemoryNic::new(C));
        let sw = net.add_link(LinkKind::Switch, LinkConfig::default(), &[a, b, c]);
        net.run_until_idle().unwrap();
        assert_eq!(received_seqs(&net, b.0), vec![1, 2, 3]);
        assert_eq!(received_seqs(&net, c.0), vec![2, 3]);
        assert!(net.node(a).received.is_empty());
        assert_eq!(net.link_stats(sw).delivered, 5);
        // A hub sends everything everywhere.
        let mut net = SimNetwork::new(10);
        let mut a = ScriptedNode::new();
        a.send_at(Instant::ZERO, frame(B, A, 1, 60));
        let a = net.add_node(a, MemoryNic::new(A));
        let b = net.add_node(ScriptedNode::new(), MemoryNic::new(B));
        let c = net.add_node(ScriptedNode::new(), MemoryNic::new(C));
        net.add_link(LinkKind::Hub, LinkConfig::default(), &[a, b, c]);
        net.run_until_idle().unwrap();
        assert_eq!(received_seqs(&net, c.0), vec![1]);
    }

    /// Replies to every frame with the same frame, addresses swapped.
    struct Echo;

    impl SimNode for Echo {
        fn poll(&mut self, _now: Instant, nic: &mut MemoryNic) {
            let mut frames = Vec::new();
            nic.receive(usize::MAX, |f, _| frames.push(f.to_vec()));
            for mut f in frames {
                let (dst, src) = f.split_at_mut(6);
                dst.swap_with_slice(&mut src[..6]);
                let _ = nic.transmit(f.len(), |b| {
                    b.copy_from_slice(&f);
                    crate::nic::TxMeta::default()
                });
            }
            nic.flush();
        }

        fn next_wakeup(&self) -> Option<Instant> {
            None
        }
    }

    /// Always wants a poll: never idle.
    struct Busy;

    impl SimNode for Busy {
        fn poll(&mut self, _now: Instant, _nic: &mut MemoryNic) {}

        fn next_wakeup(&self) -> Option<Instant> {
            Some(Instant::ZERO)
        }
    }

    #[test]
    fn heterogeneous_nodes_round_trip_and_run_until() {
        let mut net: SimNetwork<Box<dyn SimNode>> = SimNetwork::new(11);
        let a = net.add_node(Box::new(ScriptedNode::new()), MemoryNic::new(A));
        let b = net.add_node(Box::new(Echo), MemoryNic::new(B));
        let cfg = LinkConfig {
            latency: Duration::from_millis(3),
            ..LinkConfig::default()
        };
        let l = net.connect(a, b, cfg);
        net.run_until_idle().unwrap();
        // Inject a frame into b as if it came from a: b echoes it back to a.
        net.nic_mut(b).inject(frame(B, A, 42, 60));
        assert_eq!(net.run_until(Instant::from_millis(2)), Ok(1));
        assert_eq!(net.now(), Instant::from_millis(2));
        assert_eq!(net.next_event(), Some(Instant::from_millis(3)));
        net.run_for(Duration::from_millis(5)).unwrap();
        assert_eq!(net.now(), Instant::from_millis(7));
        assert_eq!(net.link_stats(l).delivered, 1);
        assert_eq!(net.nic(a).stats().rx_frames, 1, "a took the echo");

        let mut net = SimNetwork::new(12);
        net.add_node(Busy, MemoryNic::new(A));
        net.set_max_steps(1000);
        assert_eq!(net.run_until_idle(), Err(StepLimit { steps: 1000 }));
        assert_eq!(net.run_until(Instant::from_secs(1)), Err(StepLimit { steps: 1000 }));
    }

    /// Stop-and-wait over a bad link: a node with a retransmission timer.
    /// Frame: dst, src, kind (0 data, 1 ack), seq (4), fnv1a of the rest (8),
    /// payload.
    struct StopAndWait {
        me: [u8; 6],
        peer: [u8; 6],
        /// Messages to send (sender) or received (receiver).
        messages: Vec<Vec<u8>>,
        next: u32,
        resend_at: Option<Instant>,
        retransmissions: u32,
    }

    impl StopAndWait {
        fn new(me: [u8; 6], peer: [u8; 6], messages: Vec<Vec<u8>>) -> Self {
            StopAndWait {
                me,
                peer,
                messages,
                next: 0,
                resend_at: None,
                retransmissions: 0,
            }
        }

        fn emit(&self, nic: &mut MemoryNic, kind: u8, seq: u32, payload: &[u8]) {
            let mut body = vec![kind];
            body.extend_from_slice(&seq.to_be_bytes());
            body.extend_from_slice(payload);
            let mut f = self.peer.to_vec();
            f.extend_from_slice(&self.me);
            f.extend_from_slice(&fnv1a(&body).to_be_bytes());
            f.extend_from_slice(&body);
            let _ = nic.transmit(f.len(), |b| {
                b.copy_from_slice(&f);
                crate::nic::TxMeta::default()
            });
        }
    }

    impl SimNode for StopAndWait {
        fn poll(&mut self, now: Instant, nic: &mut MemoryNic) {
            let mut frames = Vec::new();
            nic.receive(usize::MAX, |f, _| frames.push(f.to_vec()));
            let sender = self.resend_at.is_some() || (self.next as usize) < self.messages.len();
            for f in frames {
                if f.len() < 25
                    || f[..6] != self.me
                    || u64::from_be_bytes(f[12..20].try_into().unwrap()) != fnv1a(&f[20..])
                {
                    continue; // Not for us, or corrupted.
                }
                let (kind, seq) = (f[20], u32::from_be_bytes(f[21..25].try_into().unwrap()));
                match kind {
                    0 => {
                        if seq == self.next {
                            self.messages.push(f[25..].to_vec());
                            self.next += 1;
                        }
                        if seq < self.next {
                            self.emit(nic, 1, seq, &[]);
                        }
                    }
                    _ if sender && seq == self.next => {
                        self.next += 1;
                        self.resend_at = None;
                    }
                    _ => {}
                }
            }
            let due = self.resend_at.is_some_and(|t| t <= now);
            if (self.resend_at.is_none() && (self.next as usize) < self.messages.len() && sender) || due {
                if due {
                    self.retransmissions += 1;
                }
                let m = self.messages[self.next as usize].clone();
                self.emit(nic, 0, self.next, &m);
                self.resend_at = Some(now + Duration::from_millis(5));
            }
            nic.flush();
        }

        fn next_wakeup(&self) -> Option<Instant> {
            self.resend_at
        }
    }

    #[test]
    fn reliable_transfer_over_a_bad_link_replays() {
        let run = |seed| {
            let messages: Vec<Vec<u8>> = (0..300u32).map(|i| frame(A, B, i, 40 + (i as usize % 900))).collect();
            let mut net = SimNetwork::new(seed);
            let cfg = LinkConfig {
                loss: 0.1,
                duplicate: 0.1,
                reorder: 0.1,
                corrupt: 0.1,
                ..lossy()
            };
            let a = net.add_node(StopAndWait::new(A, B, messages.clone()), MemoryNic::new(A));
            let b = net.add_node(StopAndWait::new(B, A, Vec::new()), MemoryNic::new(B));
            let l = net.connect(a, b, cfg);
            net.enable_trace();
            net.run_until_idle().unwrap();
            assert_eq!(net.node(b).messages, messages, "every message once, in order, intact");
            assert!(net.node(a).retransmissions > 30);
            let s = *net.link_stats(l);
            assert!(
                s.lost > 0 && s.duplicated > 0 && s.corrupted > 0 && s.reordered > 0,
                "{s:?}"
            );
            (net.now(), net.node(a).retransmissions, net.trace().to_vec())
        };
        let first = run(99);
        assert_eq!(first, run(99));
        assert_ne!(first.2, run(100).2);
    }

    #[test]
    fn unattached_sender_is_counted() {
        let mut net = SimNetwork::new(13);
        let mut a = ScriptedNode::new();
        a.send_at(Instant::ZERO, frame(B, A, 1, 60));
        net.add_node(a, MemoryNic::new(A));
        net.run_until_idle().unwrap();
        assert_eq!(net.unattached_drops(), 1);
    }
}
