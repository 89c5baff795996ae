//! Seccomp user notification for Joyride: the filter that decides which
//! system calls reach the supervisor, the listener that receives them, typed
//! decoding of the network calls, reading and writing target memory, and
//! starting a program under a filter.
//!
//! This crate knows nothing about TCP or about how a call is served; it only
//! traps, decodes and answers.
#![deny(unsafe_code)]

pub mod filter;
pub mod launch;
pub mod listener;
mod sys;
pub mod syscall;

pub use filter::{changes_credentials, Filter, FilterError, FilterSpec, Mode};
pub use launch::{resolve_program, spawn, Child, LaunchError, LoadedFlags};
pub use listener::{
    AddFd, Listener, MemError, Notification, NotifyError, SyncWakeUp, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, ERESTARTSYS,
    X32_SYSCALL_BIT,
};
pub use syscall::{NetCall, Syscall};
