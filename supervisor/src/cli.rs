//! The command line, in one place.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Joyride traps the network system calls of unmodified Linux programs (static,
/// Go and raw `syscall` callers included) with seccomp user notification, to
/// serve them from its own user-space TCP/IP stack.
///
/// `joyride trace` uses the same trap machinery as a fast strace-like tracer:
/// the kernel serves the calls and Joyride prints them.
#[derive(Debug, Parser)]
#[command(name = "joyride", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace the network system calls of a program and all its threads and
    /// children; the kernel still serves every call.
    ///
    /// Each call is printed as one line when it finishes: the calling thread,
    /// the call with decoded arguments, the result or errno, and the time it
    /// took (strace's `-f -T` style). The exit status is the program's (128 +
    /// signal number if it was killed). Works as an ordinary user on programs
    /// that user may run; setuid programs run without their privileges
    /// (no_new_privs). 32-bit (i386, `int 0x80`, `socketcall`) and x32 network
    /// calls are refused with ENOSYS and shown as refused; io_uring is refused
    /// with ENOSYS unless --allow-io-uring.
    ///
    /// Environment: JOYRIDE_LOG sets the supervisor's own log filter
    /// (e.g. `debug`).
    #[command(arg_required_else_help = true)]
    Trace(TraceArgs),
}

/// `joyride trace` options.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Write the trace to FILE instead of standard error.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// One JSON object per line (pid, call, args, ret, errno, usecs, addr).
    #[arg(long)]
    pub json: bool,

    /// Trace only these network calls: a comma-separated list such as
    /// `connect,accept4`; strace's `trace=` prefix, `%network` and `all` are
    /// accepted. Calls not listed are not trapped at all.
    #[arg(short = 'e', long = "expr", value_name = "SYSCALLS")]
    pub expr: Option<String>,

    /// Let the program use io_uring. Its operations are not seen by seccomp,
    /// so network I/O done through io_uring is neither traced nor served.
    #[arg(long)]
    pub allow_io_uring: bool,

    /// Do not ask the kernel to wake answered threads on the supervisor's CPU
    /// (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP); for measurements.
    #[arg(long)]
    pub no_sync_wake_up: bool,

    /// The program to run and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "PROG ARGS")]
    pub command: Vec<OsString>,
}
