//! Starting a program under a filter.
//!
//! The child sets `no_new_privs`, loads the filter (asking for
//! `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` and falling back without it on
//! kernels before 5.19), writes the listener's fd number into a pipe and waits
//! for the parent to take the listener with `pidfd_getfd` before it `execve`s.
//! Nothing on that path is a trapped call (`write`, `read`, `close`, `execve`),
//! so the hand-off cannot deadlock on the filter it hands off, whatever the
//! filter traps. The listener is created close-on-exec, so the program never
//! holds it.
//!
//! `no_new_privs` is required to load a filter without `CAP_SYS_ADMIN`, and is
//! set in every case: setuid and setcap binaries run under Joyride without
//! gaining privileges (as under any seccomp sandbox), so `ping` or `sudo` in
//! the traced tree behave as if run by the calling user.

use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::filter::Filter;
use crate::listener::{Listener, NotifyError};
use crate::sys::{self, ChildPlan};

/// A running program started under a filter.
#[derive(Debug)]
pub struct Child {
    /// Process id.
    pub pid: i32,
    /// A pidfd for the process: readable when it exits.
    pub pidfd: OwnedFd,
}

/// Which filter flags the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedFlags {
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` is in force: once the
    /// supervisor has received a call, only a fatal signal interrupts it.
    pub wait_killable: bool,
}

/// Why a program could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program was not found in `PATH` or is not executable.
    #[error("{program}: command not found")]
    NotFound {
        /// The name given.
        program: String,
    },
    /// The program named by a path cannot be executed.
    #[error("cannot execute {program}: {source}")]
    NotExecutable {
        /// The path given.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// An argument contains a NUL byte.
    #[error("argument {0:?} contains a NUL byte")]
    Nul(OsString),
    /// A setup step in the parent failed.
    #[error("{op}: {source}")]
    Io {
        /// The step.
        op: &'static str,
        /// Its error.
        source: std::io::Error,
    },
    /// A setup step in the child failed before `execve`.
    #[error("in the child, {step} failed: {}", std::io::Error::from_raw_os_error(*.errno))]
    Child {
        /// The step.
        step: &'static str,
        /// Its errno.
        errno: i32,
    },
    /// The listener could not be set up.
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> LaunchError {
    move |source| LaunchError::Io { op, source }
}

/// Finds `program` the way `execvp` would: as a path if it has a slash,
/// otherwise in `PATH`.
pub fn resolve_program(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(p))
        .find(|cand| is_executable(cand))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// Steps the child reports on the status pipe: tag byte, then errno.
pub(crate) const STEP_NAMES: [&str; 4] = ["no_new_privs", "seccomp filter", "hand-off", "execve"];

/// Starts `argv` under `filter`; returns the child and the filter's listener.
pub fn spawn(argv: &[OsString], filter: &Filter) -> Result<(Child, Listener, LoadedFlags), LaunchError> {
    let first = argv
        .first()
        .ok_or_else(|| LaunchError::NotFound { program: String::new() })?;
    let path = resolve_program(first).ok_or_else(|| LaunchError::NotFound {
        program: first.to_string_lossy().into_owned(),
    })?;
    if let Err(source) = std::fs::metadata(&path) {
        return Err(LaunchError::NotExecutable {
            program: path.display().to_string(),
            source,
        });
    }
    // Everything the child needs is allocated before fork.
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| LaunchError::Nul(path.clone().into()))?;
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| LaunchError::Nul(a.clone())))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let prog = filter.prog.as_slice();

    // Child -> parent: [listener fd (4 bytes)] or [0xff, step, errno(4)].
    let (status_r, status_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| io("pipe")(e.into()))?;
    // Parent -> child: one byte once the listener is taken.
    let (ack_r, ack_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| io("pipe")(e.into()))?;

    let plan = ChildPlan {
        path: &cpath,
        argv: &ptrs,
        prog,
        status_w: status_w.as_raw_fd(),
        ack_r: ack_r.as_raw_fd(),
    };
    let pid = sys::fork_filtered(&plan).map_err(io("fork"))?;
    {
        {
            drop(status_w);
            drop(ack_r);
            let pidfd = rustix::process::pidfd_open(
                rustix::process::Pid::from_raw(pid).expect("fork returned a positive pid"),
                rustix::process::PidfdFlags::empty(),
            )
            .map_err(|e| io("pidfd_open")(e.into()))?;
            let child = Child { pid, pidfd };
            let mut status = std::fs::File::from(status_r);
            let mut msg = [0u8; 6];
            let reap = |child: &Child| {
                let _ = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(child.pid),
                    rustix::process::WaitOptions::empty(),
                );
            };
            if let Err(e) = status.read_exact(&mut msg) {
                reap(&child);
                return Err(io("reading the child's status")(e));
            }
            if msg[0] == 0xff {
                reap(&child);
                return Err(LaunchError::Child {
                    step: STEP_NAMES[msg[1] as usize % STEP_NAMES.len()],
                    errno: i32::from_ne_bytes([msg[2], msg[3], msg[4], msg[5]]),
                });
            }
            let flags = LoadedFlags {
                wait_killable: msg[1] == 1,
            };
            let listener_no = i32::from_ne_bytes([msg[2], msg[3], msg[4], msg[5]]);
            let listener_fd =
                rustix::process::pidfd_getfd(&child.pidfd, listener_no, rustix::process::PidfdGetfdFlags::empty());
            let listener_fd = match listener_fd {
                Ok(fd) => fd,
                Err(e) => {
                    kill_child(pid);
                    reap(&child);
                    return Err(io("pidfd_getfd of the listener")(e.into()));
                }
            };
            // Let the child exec; then learn whether execve failed (the pipe
            // closes on a successful exec).
            let mut ack = std::fs::File::from(ack_w);
            let _ = std::io::Write::write_all(&mut ack, &[1]);
            drop(ack);
            let mut tail = Vec::new();
            let _ = status.read_to_end(&mut tail);
            if tail.len() >= 6 && tail[0] == 0xff {
                reap(&child);
                return Err(LaunchError::Child {
                    step: STEP_NAMES[tail[1] as usize % STEP_NAMES.len()],
                    errno: i32::from_ne_bytes([tail[2], tail[3], tail[4], tail[5]]),
                });
            }
            let listener = Listener::from_fd(listener_fd)?;
            Ok((child, listener, flags))
        }
    }
}

fn kill_child(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::Kill);
    }
}
