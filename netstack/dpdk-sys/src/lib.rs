//! Bindings to the system's DPDK.
