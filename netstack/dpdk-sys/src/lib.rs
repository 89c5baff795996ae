//! Bindings to the system's DPDK.
//!
//! Three parts, all generated or compiled by `build.rs`:
//!
//! - a C shim (`shim/shim.c`, functions prefixed `jr_`) over the DPDK API that
//!   exists only as `static inline` functions or macros: rx/tx bursts, mbuf
//!   allocation, data pointer, append/trim/adj, `ol_flags`, `rte_errno`, the
//!   lcore id, link status;
//! - bindgen output for the shim and an allowlist of DPDK's control-path
//!   functions (EAL, mempools, ethdev); `rte_mbuf` and `rte_mempool` are opaque;
//! - [`PMDS`], where the poll-mode drivers Joyride supports live.
//!
//! # Loading poll-mode drivers
//!
//! A shared DPDK build (Debian's) ships every PMD as its own library
//! (`librte_net_af_packet.so`, ...) that registers its driver from an ELF
//! constructor. Nothing in a program refers to a PMD's symbols, so a normal
//! link (`--as-needed`, which rustc always passes) drops them. Debian's EAL
//! loads its whole plugin directory at `rte_eal_init` when it detects a shared
//! build, but a DPDK built from source without `RTE_EAL_PMD_PATH` does not,
//! and cargo cannot pass `--no-as-needed` on behalf of a dependency (a build
//! script's `rustc-link-arg` only reaches its own package's binaries). So
//! `build.rs` records the absolute path of each supported PMD in [`PMDS`] and
//! the wrapper passes them to the EAL with `-d <path>`; loading one that the
//! EAL already loaded from its plugin directory is harmless (`dlopen` returns
//! the same handle, constructors run once).
//!
//! Not for: anything safe. The `joyride-dpdk` crate is the safe wrapper.

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

include!(concat!(env!("OUT_DIR"), "/pmds.rs"));
