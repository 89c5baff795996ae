//! Joyride's user-space TCP/IP stack.
//!
//! The core (everything outside [`sim`]'s drivers and the DPDK shell) does no
//! I/O and reads no clock: time comes in as an argument, frames through the
//! [`nic::Nic`] trait, randomness through an injected RNG. DPDK, the in-memory
//! link and the simulator are shells around it.
#![deny(unsafe_code)]

pub mod iface;
pub mod neighbor;
pub mod nic;
pub mod reassembly;
pub mod sim;
pub mod steer;
pub mod tcp;
pub mod time;
pub mod wire;
