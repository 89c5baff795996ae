//! The kernel file descriptors that stand for user-space sockets inside a
//! traced program.
//!
//! Filled by the `joyride exec` work: an `AF_UNIX` socketpair per user-space
//! socket, one end installed in the target, the other kept by the supervisor.
#![deny(unsafe_code)]
