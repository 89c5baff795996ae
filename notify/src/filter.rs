//! The seccomp filter: which system calls reach the supervisor.
//!
//! Built with libseccomp and exported as a BPF program, so that the child can
//! load it between `fork` and `execve` with one system call and the flags this
//! kernel supports (libseccomp 2.5 cannot ask for
//! `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`).
//!
//! Rules, for the native x86-64 ABI:
//! - [`Mode::Trace`]: every network call strace counts as `%network` (or the
//!   subset asked for) is sent to the supervisor.
//! - [`Mode::Exec`]: `socket` only for `AF_INET`/`AF_INET6` (the domain is
//!   compared on its low 32 bits, as the kernel reads an `int`), `sendto` and
//!   `recvfrom` only with an address, the rest of the network calls always.
//!
//! In every mode, `setgroups`, `setns` and `unshare` (every ABI) reach the
//! supervisor too: they change a thread's power in ways its ids and
//! capabilities do not show, and the supervisor keeps what it learnt of a
//! thread's credentials until then (it answers them with `CONTINUE`).
//!
//! Other entry points are never a way around the filter: i386 (`int 0x80`,
//! including `socketcall`) and x32 network calls are sent to the supervisor,
//! which refuses them with `ENOSYS`. `io_uring_setup`, `io_uring_enter` and
//! `io_uring_register` fail with `ENOSYS` on every ABI unless allowed, because
//! io_uring operations are not seen by seccomp.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use crate::syscall::NetCall;

/// Which calls the supervisor serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The kernel's stack serves every call; the supervisor records them.
    /// `calls` lists the calls to trap (all network calls when `None`).
    Trace {
        /// Calls to trap; `None` means every network call.
        calls: Option<Vec<NetCall>>,
    },
    /// Internet sockets are served by the user-space stack.
    Exec,
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// Which calls reach the supervisor.
    pub mode: Mode,
    /// Let io_uring through (it bypasses seccomp for the operations it runs).
    pub allow_io_uring: bool,
}

/// A filter ready to load: a classic BPF program.
#[derive(Clone)]
pub struct Filter {
    pub(crate) prog: Vec<libc::sock_filter>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.prog.len())
            .finish()
    }
}

/// Why a filter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// libseccomp refused a step.
    #[error("libseccomp: {what}: {source}")]
    Seccomp {
        /// The step that failed.
        what: &'static str,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// Exporting the BPF program failed.
    #[error("exporting the seccomp BPF program: {0}")]
    Export(#[from] std::io::Error),
    /// The program is longer than the kernel accepts.
    #[error("the seccomp program has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
}

fn ctx(what: &'static str) -> impl FnOnce(libseccomp::error::SeccompError) -> FilterError {
    move |source| FilterError::Seccomp { what, source }
}

const IO_URING: [&str; 3] = ["io_uring_setup", "io_uring_enter", "io_uring_register"];

/// Calls that change a thread's power in ways its ids and capability sets
/// do not show: its groups and its user and network namespaces. They reach
/// the supervisor on every ABI, which forgets what it knew of the caller's
/// credentials and lets the kernel run them ([`changes_credentials`]).
const CREDENTIAL_CALLS: [&str; 4] = ["setgroups", "setgroups32", "setns", "unshare"];

/// Whether call `nr` of ABI `arch` (as a notification names them) is one
/// of the credential-changing calls the filter sends to the supervisor.
pub fn changes_credentials(arch: u32, nr: i32) -> bool {
    if arch == crate::AUDIT_ARCH_X86_64 && nr & crate::X32_SYSCALL_BIT == 0 {
        return [libc::SYS_setgroups, libc::SYS_setns, libc::SYS_unshare].contains(&i64::from(nr));
    }
    let abi = if arch == crate::AUDIT_ARCH_I386 {
        ScmpArch::X86
    } else {
        ScmpArch::X32
    };
    ScmpSyscall::from(nr)
        .get_name_by_arch(abi)
        .is_ok_and(|name| CREDENTIAL_CALLS.contains(&name.as_str()))
}

impl Filter {
    /// Builds the filter for `spec`.
    pub fn build(spec: &FilterSpec) -> Result<Filter, FilterError> {
        let mut native = ScmpFilterContext::new_filter(ScmpAction::Allow).map_err(ctx("new filter"))?;
        native.set_ctl_nnp(false).map_err(ctx("no_new_privs attribute"))?;
        let notify = ScmpAction::Notify;
        let all: Vec<NetCall> = NetCall::ALL.to_vec();
        let calls = match &spec.mode {
            Mode::Trace { calls } => calls.clone().unwrap_or(all),
            Mode::Exec => all,
        };
        for call in calls {
            let sys = ScmpSyscall::from(call.nr() as i32);
            match (&spec.mode, call) {
                (Mode::Exec, NetCall::Socket) => {
                    for domain in [libc::AF_INET, libc::AF_INET6] {
                        let cmp = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0xffff_ffff), domain as u64);
                        native
                            .add_rule_conditional(notify, sys, &[cmp])
                            .map_err(ctx("socket rule"))?;
                    }
                }
                (Mode::Exec, NetCall::Sendto | NetCall::Recvfrom) => {
                    let cmp = ScmpArgCompare::new(4, ScmpCompareOp::NotEqual, 0);
                    native
                        .add_rule_conditional(notify, sys, &[cmp])
                        .map_err(ctx("sendto/recvfrom rule"))?;
                }
                (Mode::Exec, NetCall::Socketpair | NetCall::Shutdown) => {}
                _ => native.add_rule(notify, sys).map_err(ctx("network rule"))?,
            }
        }

        for name in CREDENTIAL_CALLS {
            // setgroups32 exists on i386 only.
            if let Ok(sys) = ScmpSyscall::from_name(name) {
                native.add_rule(notify, sys).map_err(ctx("credential rule"))?;
            }
        }

        // Other ABIs: every network entry point goes to the supervisor, which
        // refuses it; nothing is served by the kernel behind our back.
        let mut compat = ScmpFilterContext::new_filter(ScmpAction::Allow).map_err(ctx("new filter"))?;
        compat.set_ctl_nnp(false).map_err(ctx("no_new_privs attribute"))?;
        compat.add_arch(ScmpArch::X86).map_err(ctx("add i386"))?;
        compat.add_arch(ScmpArch::X32).map_err(ctx("add x32"))?;
        compat.remove_arch(ScmpArch::Native).map_err(ctx("remove native"))?;
        for call in NetCall::ALL {
            let sys = ScmpSyscall::from_name(call.name()).map_err(ctx("resolve name"))?;
            compat.add_rule(notify, sys).map_err(ctx("compat network rule"))?;
        }
        let socketcall = ScmpSyscall::from_name_by_arch("socketcall", ScmpArch::X86).map_err(ctx("socketcall"))?;
        compat.add_rule(notify, socketcall).map_err(ctx("socketcall rule"))?;
        for name in CREDENTIAL_CALLS {
            // By name: libseccomp puts the rule on each ABI that has the call
            // (setgroups32 is a pseudo-number natively, i386's own there).
            let sys = ScmpSyscall::from_name(name).map_err(ctx("resolve credential call"))?;
            compat.add_rule(notify, sys).map_err(ctx("compat credential rule"))?;
        }

        if !spec.allow_io_uring {
            let enosys = ScmpAction::Errno(libc::ENOSYS);
            for name in IO_URING {
                let sys = ScmpSyscall::from_name(name).map_err(ctx("resolve io_uring"))?;
                native.add_rule(enosys, sys).map_err(ctx("io_uring rule"))?;
                compat.add_rule(enosys, sys).map_err(ctx("compat io_uring rule"))?;
            }
        }
        native.merge(compat).map_err(ctx("merge ABIs"))?;
        let prog = export(&native)?;
        if prog.len() > 4096 {
            return Err(FilterError::TooLong(prog.len()));
        }
        Ok(Filter { prog })
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// Whether the program is empty (never, for a built filter).
    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, FilterError> {
    let fd = rustix::fs::memfd_create("joyride-bpf", rustix::fs::MemfdFlags::CLOEXEC).map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&mut file).map_err(ctx_export)?;
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    // struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; } in host order.
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

fn ctx_export(source: libseccomp::error::SeccompError) -> FilterError {
    FilterError::Seccomp {
        what: "export BPF",
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_for_every_mode() {
        for mode in [
            Mode::Exec,
            Mode::Trace { calls: None },
            Mode::Trace {
                calls: Some(vec![NetCall::Connect]),
            },
        ] {
            let f = Filter::build(&FilterSpec {
                mode,
                allow_io_uring: false,
            })
            .unwrap();
            assert!(f.len() > 10, "{f:?}");
        }
    }

    #[test]
    fn credential_calls_are_known_on_every_abi() {
        use crate::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
        assert!(changes_credentials(AUDIT_ARCH_X86_64, libc::SYS_setgroups as i32));
        assert!(changes_credentials(AUDIT_ARCH_X86_64, libc::SYS_unshare as i32));
        assert!(!changes_credentials(AUDIT_ARCH_X86_64, libc::SYS_connect as i32));
        // i386: setgroups32 is 206, unshare 310; 102 is socketcall.
        assert!(changes_credentials(AUDIT_ARCH_I386, 206));
        assert!(changes_credentials(AUDIT_ARCH_I386, 310));
        assert!(!changes_credentials(AUDIT_ARCH_I386, 102));
        // x32: the x86-64 numbers with the x32 bit.
        assert!(changes_credentials(
            AUDIT_ARCH_X86_64,
            X32_SYSCALL_BIT | libc::SYS_setns as i32
        ));
    }
}
