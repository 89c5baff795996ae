//! A target's power: its credentials, capabilities and namespaces, read from
//! `/proc`, and Linux's capability rule applied to them.
//!
//! This is half of the privilege rule (`SECURITY.md`): where the supervisor
//! acts for a program it acts with the program's power, never its own. A
//! [`Creds`] is read fresh for each decision that needs it (a thread may
//! change its credentials at any moment with an untrapped `setuid`,
//! `capset`, `unshare` or `execve`), and [`Creds::capable`] answers as the
//! kernel's `cap_capable()` does: a capability counts in the user namespace
//! the thread lives in, and the owner of a child namespace holds every
//! capability in it.
//!
//! Ids are as seen from the supervisor's user namespace (the kernel's own
//! ids when the supervisor runs in the initial one).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

/// `CAP_NET_BIND_SERVICE`.
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// `CAP_NET_ADMIN`.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`.
pub const CAP_NET_RAW: u32 = 13;

/// Real, effective, saved and filesystem ids, in `/proc/PID/status` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ids {
    /// Real.
    pub real: u32,
    /// Effective.
    pub effective: u32,
    /// Saved set-id.
    pub saved: u32,
    /// Filesystem.
    pub fs: u32,
}

/// Capability sets, as bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    /// Effective: what the kernel checks.
    pub effective: u64,
    /// Permitted.
    pub permitted: u64,
    /// Inheritable.
    pub inheritable: u64,
    /// Bounding.
    pub bounding: u64,
    /// Ambient.
    pub ambient: u64,
}

/// Identity of a namespace or directory: `(st_dev, st_ino)`.
pub type FileId = (u64, u64);

/// What a thread may do, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// User ids.
    pub uid: Ids,
    /// Group ids.
    pub gid: Ids,
    /// Supplementary groups, sorted.
    pub groups: Vec<u32>,
    /// Capabilities, counted in [`Creds::user_ns`].
    pub caps: Caps,
    /// File mode creation mask.
    pub umask: u32,
    /// The user namespace the capabilities count in.
    pub user_ns: FileId,
    /// The network namespace.
    pub net_ns: FileId,
    /// The mount namespace.
    pub mnt_ns: FileId,
    /// The root directory (after `chroot`).
    pub root: FileId,
}

/// Why credentials could not be read.
fn gone() -> io::Error {
    io::Error::from_raw_os_error(libc::ESRCH)
}

impl Creds {
    /// The credentials of thread `tid`. `ESRCH` if it is gone or `/proc`
    /// shows something unreadable.
    pub fn of_thread(tid: u32) -> io::Result<Creds> {
        Creds::read(&format!("/proc/{tid}"))
    }

    /// The calling thread's own credentials.
    pub fn of_self() -> io::Result<Creds> {
        Creds::read("/proc/thread-self")
    }

    fn read(dir: &str) -> io::Result<Creds> {
        let status = std::fs::read_to_string(format!("{dir}/status")).map_err(|_| gone())?;
        let mut c = Creds::parse_status(&status).ok_or_else(gone)?;
        let id = |name: &str| -> io::Result<FileId> {
            let st = rustix::fs::stat(format!("{dir}/{name}").as_str()).map_err(|_| gone())?;
            Ok((st.st_dev, st.st_ino))
        };
        c.user_ns = id("ns/user")?;
        c.net_ns = id("ns/net")?;
        c.mnt_ns = id("ns/mnt")?;
        c.root = id("root")?;
        Ok(c)
    }

    /// The ids, groups, capabilities and umask from a `/proc/PID/status`
    /// text; namespaces and root are left zero.
    pub fn parse_status(status: &str) -> Option<Creds> {
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let ids = |name: &str| -> Option<Ids> {
            let v: Vec<u32> = field(name)?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            match v[..] {
                [real, effective, saved, fs] => Some(Ids {
                    real,
                    effective,
                    saved,
                    fs,
                }),
                _ => None,
            }
        };
        let hex = |name: &str| u64::from_str_radix(field(name)?, 16).ok();
        let mut groups: Vec<u32> = field("Groups:")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        groups.sort_unstable();
        groups.dedup();
        Some(Creds {
            uid: ids("Uid:")?,
            gid: ids("Gid:")?,
            groups,
            caps: Caps {
                effective: hex("CapEff:")?,
                permitted: hex("CapPrm:")?,
                inheritable: hex("CapInh:")?,
                bounding: hex("CapBnd:")?,
                ambient: hex("CapAmb:").unwrap_or(0),
            },
            // Older kernels lack the line; the default is what they use.
            umask: field("Umask:")
                .and_then(|v| u32::from_str_radix(v, 8).ok())
                .unwrap_or(0o022),
            user_ns: (0, 0),
            net_ns: (0, 0),
            mnt_ns: (0, 0),
            root: (0, 0),
        })
    }

    /// Whether a call made with `self` is judged by the kernel exactly as
    /// one made with `other`: the same ids, groups and capabilities in the
    /// same user namespace, and the same mount namespace and root for path
    /// names. The network namespace, working directory and umask are not
    /// compared: whoever acts sets those per call.
    pub fn same_power(&self, other: &Creds) -> bool {
        self.uid == other.uid
            && self.gid == other.gid
            && self.groups == other.groups
            && self.caps.effective == other.caps.effective
            && self.caps.permitted == other.caps.permitted
            && self.user_ns == other.user_ns
            && self.mnt_ns == other.mnt_ns
            && self.root == other.root
    }

    /// Whether the thread holds capability `cap` over network namespace
    /// `net_ns` (an fd of it), as `ns_capable(net->user_ns, cap)` decides:
    /// Linux's `cap_capable()`, walking from the user namespace that owns
    /// the network namespace up towards the thread's own.
    pub fn capable(&self, cap: u32, net_ns: BorrowedFd<'_>) -> io::Result<bool> {
        let mut ns = crate::sys::ns_ioctl_fd(net_ns, libc::NS_GET_USERNS)?;
        loop {
            if file_id(ns.as_fd())? == self.user_ns {
                return Ok(self.caps.effective & (1u64 << cap) != 0);
            }
            // EPERM: `ns` is the initial namespace or outside the
            // supervisor's; the thread's namespace is not above it.
            let parent = match crate::sys::ns_ioctl_fd(ns.as_fd(), libc::NS_GET_PARENT) {
                Ok(p) => p,
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(false),
                Err(e) => return Err(e),
            };
            // "The owner of a user namespace has every capability in it",
            // when the owner lives in the parent namespace.
            if file_id(parent.as_fd())? == self.user_ns && crate::sys::ns_owner_uid(ns.as_fd())? == self.uid.effective {
                return Ok(true);
            }
            ns = parent;
        }
    }

    /// Whether the thread holds capability `cap` in the initial user
    /// namespace, as `capable(cap)` decides (options such as
    /// `SO_RCVBUFFORCE` ask that of any caller, even in its own network
    /// namespace). The initial namespace is the top of the supervisor's
    /// own chain of user namespaces.
    pub fn capable_initially(&self, cap: u32) -> io::Result<bool> {
        let mut ns: std::os::fd::OwnedFd = std::fs::File::open("/proc/thread-self/ns/user")?.into();
        loop {
            match crate::sys::ns_ioctl_fd(ns.as_fd(), libc::NS_GET_PARENT) {
                Ok(p) => ns = p,
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(file_id(ns.as_fd())? == self.user_ns && self.caps.effective & (1u64 << cap) != 0)
    }
}

/// What a thread's ids and capability sets are now, read in two system
/// calls (`PIDFD_GET_INFO`, `capget`) instead of `/proc`: enough to tell
/// whether credentials read earlier still hold, given that the calls that
/// change the rest of a thread's power without touching these (`setgroups`,
/// `setns`, `unshare`) reach the supervisor, which then forgets what it
/// read ([`joyride_notify::changes_credentials`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glance {
    uid: Ids,
    gid: Ids,
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

impl Glance {
    /// The ids and capabilities of thread `tid`, which `pidfd` names (a
    /// thread pidfd). Fails on kernels before 6.13 and for a thread that is
    /// gone.
    pub fn of(pidfd: BorrowedFd<'_>, tid: u32) -> io::Result<Glance> {
        let (u, g) = crate::sys::pidfd_ids(pidfd)?;
        let ids = |v: [u32; 4]| Ids {
            real: v[0],
            effective: v[1],
            saved: v[2],
            fs: v[3],
        };
        let pid = rustix::process::Pid::from_raw(tid as i32).ok_or_else(gone)?;
        let caps = rustix::thread::capabilities(Some(pid))?;
        Ok(Glance {
            uid: ids(u),
            gid: ids(g),
            effective: caps.effective.bits(),
            permitted: caps.permitted.bits(),
            inheritable: caps.inheritable.bits(),
        })
    }
}

impl Creds {
    /// Whether `glance` shows the ids and capabilities these credentials
    /// hold.
    pub fn agrees_with(&self, glance: &Glance) -> bool {
        self.uid == glance.uid
            && self.gid == glance.gid
            && self.caps.effective == glance.effective
            && self.caps.permitted == glance.permitted
            && self.caps.inheritable == glance.inheritable
    }
}

fn file_id(fd: BorrowedFd<'_>) -> io::Result<FileId> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tpython3\nUmask:\t0027\nState:\tS (sleeping)\nTgid:\t4242\n\
        Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65533\nGroups:\t27 4 4 \n\
        CapInh:\t0000000000000000\nCapPrm:\t0000000000000400\nCapEff:\t0000000000000400\n\
        CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000400\nNoNewPrivs:\t1\n";

    #[test]
    fn parses_status() {
        let c = Creds::parse_status(STATUS).unwrap();
        assert_eq!(c.uid.effective, 65534);
        assert_eq!(c.gid.fs, 65533);
        assert_eq!(c.groups, vec![4, 27]);
        assert_eq!(c.caps.effective, 1 << CAP_NET_BIND_SERVICE);
        assert_eq!(c.caps.ambient, 1 << CAP_NET_BIND_SERVICE);
        assert_eq!(c.umask, 0o027);
        assert!(Creds::parse_status("Uid:\t1 2 3\n").is_none());
    }

    #[test]
    fn own_power_is_own() {
        let me = Creds::of_self().unwrap();
        assert!(me.same_power(&me.clone()));
        let mut less = me.clone();
        less.caps.effective = 0;
        less.uid.effective = less.uid.effective.wrapping_add(1);
        assert!(!me.same_power(&less));
        let netns = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        // In our own namespaces the answer is our effective set.
        for cap in [CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW] {
            assert_eq!(
                me.capable(cap, netns.as_fd()).unwrap(),
                me.caps.effective & (1 << cap) != 0
            );
            let mut without = me.clone();
            without.caps.effective &= !(1 << cap);
            assert!(!without.capable(cap, netns.as_fd()).unwrap());
        }
    }
}
