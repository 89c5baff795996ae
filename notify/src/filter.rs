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
}
