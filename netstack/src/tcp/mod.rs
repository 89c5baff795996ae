//! TCP, after FreeBSD's design: a `tcpcb` per connection driven by the RFC
//! 9293 state machine, a syncache with SYN cookies for listeners, pluggable
//! congestion control, an RFC 6675 SACK scoreboard and Linux-like buffer
//! autotuning.
//!
//! Like the rest of the core, nothing here does I/O or reads a clock: time
//! comes in as `now`, segments come in parsed and go out as `TcpRepr`s.

pub mod autotune;
pub mod buffer;
pub mod cc;
pub mod isn;
pub mod sack;
pub mod seq;
pub mod syncache;
pub mod tcb;
pub mod timers;

pub use seq::SeqNum;
