//! The stack's network: a NIC named by DPDK device arguments, or the
//! embedded default veth pair.
