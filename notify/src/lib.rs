//! Seccomp user notification: filters, the listener, target memory, launch.
