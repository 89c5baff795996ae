//! Joyride's user-space TCP/IP stack.
#![deny(unsafe_code)]
