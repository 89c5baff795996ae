//! TCP, after FreeBSD's design: a `tcpcb` per connection driven by the RFC
//! 9293 state machine, a syncache with SYN cookies for listeners, pluggable
//! congestion control and an RFC 6675 SACK scoreboard.
//!
//! Like the rest of the core, nothing here does I/O or reads a clock: time
//! comes in as `now`, segments come in parsed and go out as `TcpRepr`s.

pub mod buffer;
pub mod cc;
pub mod isn;
pub mod sack;
pub mod seq;
pub mod syncache;
pub mod tcb;
pub mod timers;

pub use seq::SeqNum;
