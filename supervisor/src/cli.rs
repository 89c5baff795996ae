//! The command line, in one place.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

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

    /// Run a program with its IPv4/IPv6 TCP and UDP sockets served by
    /// Joyride's user-space TCP/IP stack over DPDK (also installed as
    /// `joyride-exec`).
    ///
    /// The program and all its threads and children are trapped; each of
    /// their Internet sockets is a real kernel file descriptor (one end of an
    /// AF_UNIX socketpair) whose data the stack carries, so read, write,
    /// poll, epoll, select, fork, dup and close run untrapped. Loopback
    /// (unless --loopback stack), AF_UNIX, netlink and the destinations
    /// named with --kernel stay with the kernel.
    ///
    /// Without --nic, Joyride brings up its own network: a veth pair whose
    /// host end `joyride0` gets 10.77.0.1/24 and fd77::1/64 in the kernel,
    /// the other end driven by DPDK's net_af_xdp (net_af_packet if AF_XDP
    /// cannot start; --mtu at most 1778, 1500 under net_af_packet) with the
    /// stack on 10.77.0.2 and fd77::2 (joyride1 and 10.77.1.0/24 if joyride0
    /// is taken, and so on). The pair is removed at exit.
    ///
    /// The exit status is the program's (128 + signal number if it was
    /// killed). Environment: JOYRIDE_LOG sets the supervisor's own log filter.
    #[command(arg_required_else_help = true)]
    Exec(ExecArgs),
}

/// `joyride exec` options.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The NIC to drive, as DPDK device arguments, e.g.
    /// `net_af_packet0,iface=eth1` or `net_tap0,iface=jr0`; default: the
    /// embedded veth network.
    #[arg(long, value_name = "DEVARGS")]
    pub nic: Option<String>,

    /// An extra DPDK EAL argument (repeatable), e.g. `--eal=--huge-dir=/mnt/huge`.
    #[arg(long = "eal", value_name = "ARG", allow_hyphen_values = true)]
    pub eal: Vec<String>,

    /// The stack's address with prefix length, IPv4 or IPv6 (at most one of
    /// each); default with --nic: none (required), embedded: 10.77.N.2/24 and
    /// fd77:N::2/64.
    #[arg(long = "ip", value_name = "ADDR/LEN")]
    pub ip: Vec<String>,

    /// IPv4 default gateway.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<std::net::Ipv4Addr>,

    /// IPv6 default gateway.
    #[arg(long, value_name = "ADDR")]
    pub gateway6: Option<std::net::Ipv6Addr>,

    /// MTU of the stack's interface (default: the device's, 1500 on veth).
    #[arg(long, value_name = "N")]
    pub mtu: Option<u16>,

    /// Stack instances to run, one per core, each in its own thread on its
    /// own NIC queue pair; they share the address and the port space. The
    /// port gets N queues (`queue_count=N` for net_af_xdp, `qpairs=N` for
    /// net_af_packet, unless the device arguments set them).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub cores: u16,

    /// Destinations served by the kernel's stack instead of Joyride's
    /// (repeatable), e.g. `--kernel 192.168.0.0/16`.
    #[arg(long = "kernel", value_name = "CIDR")]
    pub kernel: Vec<String>,

    /// Who serves loopback (127.0.0.0/8, ::1): `kernel` (a socket bound or
    /// connected there becomes a kernel socket, so the host's loopback
    /// services are reached) or `stack` (Joyride's stack serves it, and the
    /// programs under this `joyride exec` talk to each other through it;
    /// the host's loopback is then out of their reach).
    #[arg(long, value_enum, value_name = "WHO", default_value_t = Loopback::Kernel)]
    pub loopback: Loopback,

    /// Print every trapped call as `joyride trace` does, to standard error
    /// (or -o FILE), with its output options below.
    #[arg(long)]
    pub trace: bool,

    /// How --trace prints the calls.
    #[command(flatten, next_help_heading = "Trace output (with --trace)")]
    pub trace_out: TraceOutput,

    /// At exit, print the stack's counters (frames, bytes, connections,
    /// drops by reason) to standard error.
    #[arg(long)]
    pub stats: bool,

    /// Let the program use io_uring (its operations bypass the stack).
    #[arg(long)]
    pub allow_io_uring: bool,

    /// The program to run and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "PROG ARGS")]
    pub command: Vec<OsString>,
}

/// Who serves loopback under `joyride exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Loopback {
    /// The kernel's stack.
    Kernel,
    /// Joyride's stack.
    Stack,
}

/// `joyride trace` options: strace's, where they make sense for a tracer of
/// network calls.
#[derive(Debug, Args)]
#[command(override_usage = TRACE_USAGE)]
pub struct TraceArgs {
    /// How the calls are printed.
    #[command(flatten)]
    pub out: TraceOutput,

    /// A strace qualifying expression (repeatable): `trace=SET` traps only
    /// these network calls (`connect,accept4`, `%network`, `all`, `!SET` for
    /// all others, `?NAME` to skip a name that is not a network call; the
    /// `trace=` prefix may be left out), `status=SET` prints only calls that
    /// ended so: `successful`, `failed`, `unavailable` (left to the kernel,
    /// `= ?`), `unfinished`, `detached` (never printed: Joyride shows only
    /// calls that returned), `all`, `none`, `!SET`. As in strace, a later
    /// expression of the same kind replaces an earlier one. Calls not traced
    /// are not trapped at all; calls whose status is not printed still count
    /// for -c.
    #[arg(short = 'e', long = "expr", value_name = "EXPR")]
    pub expr: Vec<String>,

    /// Follow threads and children: always on; accepted for strace's habit.
    /// (`-ff`, one output file per process, is not supported.)
    #[arg(short = 'f', action = ArgAction::Count)]
    pub follow: u8,

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

/// The usage line of `joyride trace`, also shown when an option is unknown:
/// every option it takes.
const TRACE_USAGE: &str = "joyride trace [-f] [-c | -C] [-S SORTBY] [-w] [-o FILE] [--json] [-e EXPR]... \
[-z | -Z] [-t | -tt | -ttt] [-r] [-T] [-s STRSIZE] [-y | -yy] [--allow-io-uring] [--] PROG [ARGS]...";

/// How traced calls are printed: strace's output options, shared by every
/// command that prints calls.
#[derive(Debug, Clone, Args)]
pub struct TraceOutput {
    /// Write the trace (and the -c summary) to FILE instead of standard error.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// One JSON object per line (pid, call, args, ret, errno, usecs, addr;
    /// `start_us`, microseconds since the epoch, with -t, -r); the -c summary
    /// as one object.
    #[arg(long)]
    pub json: bool,

    /// Count calls, errors and time per call and print a table at exit
    /// instead of the calls (strace -c; times are wall-clock, from trap to
    /// answer, as strace -w measures).
    #[arg(short = 'c', conflicts_with = "summary_too")]
    pub summary_only: bool,

    /// Print the calls and the -c table at exit.
    #[arg(short = 'C')]
    pub summary_too: bool,

    /// Sort the -c table by `time` (default), `calls`, `errors`, `name`,
    /// `avg_time` or `none` (strace's column names are accepted).
    #[arg(short = 'S', value_name = "SORTBY", value_parser = crate::record::SortBy::parse)]
    pub sort_by: Option<crate::record::SortBy>,

    /// Summarise wall-clock time: always so; accepted for strace's habit.
    #[arg(short = 'w')]
    pub wall_clock: bool,

    /// Print only calls that succeeded (`-e status=successful`).
    #[arg(short = 'z', conflicts_with = "failed_only")]
    pub successful_only: bool,

    /// Print only calls that failed (`-e status=failed`).
    #[arg(short = 'Z')]
    pub failed_only: bool,

    /// Prefix each line with the time the call started: `-t` HH:MM:SS, `-tt`
    /// HH:MM:SS.micro (local time), `-ttt` seconds.micro since the epoch.
    #[arg(short = 't', action = ArgAction::Count)]
    pub timestamps: u8,

    /// Prefix each line with the time since the previous line's call started
    /// (negative when a call started before the previous line's: lines are
    /// printed when calls finish).
    #[arg(short = 'r')]
    pub relative: bool,

    /// Show the time each call took: always so; accepted for strace's habit.
    #[arg(short = 'T')]
    pub durations: bool,

    /// Show at most STRSIZE bytes of the data sent and received (default
    /// 32, strace's; at most 32 are captured).
    #[arg(short = 's', value_name = "STRSIZE")]
    pub strsize: Option<usize>,

    /// Show what each file descriptor is, with strace -yy's details for
    /// sockets: `3<TCP:[10.0.0.1:51000->10.0.0.2:443]>`,
    /// `4<UNIX-STREAM:[1234,"/run/x.sock"]>`, a path for other files. Looked
    /// up when the line is printed, after the call: a descriptor the program
    /// has closed by then shows as a number.
    #[arg(short = 'y', action = ArgAction::Count)]
    pub decode_fds: u8,
}
