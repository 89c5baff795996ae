//! Deterministic simulation: shells that run the core without hardware, a
//! real clock or real randomness.
//!
//! - [`MemoryNic`]: an in-memory [`Nic`](crate::nic::Nic), usable alone in
//!   unit tests (inject frames, take transmitted ones).
//! - [`SimNetwork`]: nodes ([`SimNode`]) with `MemoryNic`s joined by links
//!   that lose, delay, duplicate, reorder, corrupt and rate-limit frames,
//!   with partitions that heal; a virtual clock; every random choice from a
//!   seeded [`SimRng`], so any run replays exactly from its seed (the idea of
//!   netstack3's `FakeNetwork` and smoltcp's `netsim`).
//! - [`Impairer`]: one direction of such a link on its own (frame and time
//!   in, copies and their due times out), for shells on a real clock such
//!   as the `joyride-impair` forwarder; its stages are what the links use.
//! - [`ScriptedNode`]: a node that sends frames at set times and records
//!   what it receives, for driving a stack under test with raw frames.
//! - [`MemoryPair`]: two [`Interface`](crate::iface::Interface)s on one
//!   in-memory wire with a connected TCP pair, frames moved on demand, for
//!   benchmarks of the stack's per-segment and per-byte costs.
//!
//! Not for: production I/O (see the DPDK shell), or protocol logic — the
//! simulator does not depend on `wire` or `iface` (but for `MemoryPair`,
//! which only wires two interfaces together); a node is anything that
//! implements [`SimNode`].

mod impair;
mod memory_nic;
mod network;
mod nodes;
mod pair;
mod rng;

pub use impair::{
    impair_copy, BurstLoss, CopyFate, DelayLine, Delivery, Fate, ImpairDrop, ImpairStats, Impairer, LinkConfig, Shaper,
    Verdict,
};
pub use memory_nic::{MemoryNic, MemoryNicStats};
pub use network::{
    fnv1a, LinkId, LinkKind, LinkStats, NodeId, SimDrop, SimNetwork, SimNode, StepLimit, TraceEvent, TraceKind,
};
pub use nodes::ScriptedNode;
pub use pair::MemoryPair;
pub use rng::SimRng;
