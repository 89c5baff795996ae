//! OCI runtime integration for Joyride: the `joyride-runtime` wrapper around
//! runc/crun and the seccomp agent. Filled by the container issue.
#![deny(unsafe_code)]
