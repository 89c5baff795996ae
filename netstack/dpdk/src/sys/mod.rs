//! The only module allowed `unsafe`: owning handles over DPDK objects whose
//! invariants make the FFI calls sound.
//!
//! - [`eal`]: EAL initialisation, device lookup and hot-plug;
//! - [`mempool`]: packet-buffer pools;
//! - [`mbuf`]: one packet buffer, move-only, freed on drop;
//! - [`ethdev`]: a started port and its queue pair;
//! - [`bpflog`]: libxdp's and libbpf's messages, to the debug log.
//!
//! Not for: policy (offload choices, counting, the `Nic` trait), which is safe
//! code in the modules above.
#![allow(unsafe_code)]

pub mod bpflog;
pub mod eal;
pub mod ethdev;
pub mod mbuf;
pub mod mempool;

use std::ffi::CStr;

/// DPDK's message for an error number (`rte_strerror`), copied out.
pub(crate) fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror accepts any integer and returns a pointer to a
    // NUL-terminated string, either static or in a per-thread buffer that
    // stays valid until this thread calls it again; we copy it out at once.
    let msg = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errnum)) };
    msg.to_string_lossy().into_owned()
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no preconditions.
    unsafe { dpdk_sys::jr_errno() }
}
