//! The agent's side: `joyride __agent`, a single-threaded process the
//! supervisor starts as root with fds
//!
//! ```text
//! 3 its end of the SOCK_SEQPACKET channel    4 the program's network namespace
//! 5 the program's mount namespace            6 the program's user namespace
//! 7 the program's root directory (O_PATH)
//! ```
//!
//! It reads the power to adopt ([`Op::Setup`]), takes it on in the only order
//! the kernel allows — namespaces it needs root for first, then ids (before
//! joining a child user namespace, where `setgroups` may be denied), then the
//! user namespace, the root directory and the exact capability sets — reads
//! back what it now holds and refuses to serve unless that is what was asked.
//! Then it performs one request at a time with [`Direct`] in its own place
//! until the channel closes. It exits with its parent (`PR_SET_PDEATHSIG`)
//! and is not dumpable, so the program whose uid it shares can signal it but
//! not ptrace it or take its fds.

use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::chan::{self, Got, FDS_MAX};
use super::client::STREAM_MAX;
use super::sys::{self as asys, take_inherited_fd, FIRST_FD};
use super::wire::{Msg, Op};
use super::{with_rights, Act, Direct, OptVal, Own};
use crate::cred::{Caps, Creds, FileId, Ids};
use crate::sys;

/// The hidden first argument that makes the joyride binary an agent.
pub const ARG: &str = "__agent";

/// What the supervisor asked the agent to be.
struct Wanted {
    creds: Creds,
    parent: u32,
}

fn parse_setup(m: &Msg) -> Option<Wanted> {
    if m.op != Op::Setup || m.nums.len() != 12 || m.blobs.len() != 2 {
        return None;
    }
    let u = |i: usize| u32::try_from(m.nums[i]).ok();
    let c = |i: usize| m.nums[i] as u64;
    let groups: Vec<u32> = m.blobs[0]
        .chunks_exact(4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if !m.blobs[0].chunks_exact(4).remainder().is_empty() || m.blobs[1].len() != 64 {
        return None;
    }
    let w: Vec<u64> = m.blobs[1]
        .chunks_exact(8)
        .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        .collect();
    Some(Wanted {
        creds: Creds {
            uid: Ids {
                real: u(0)?,
                effective: u(1)?,
                saved: u(2)?,
                fs: u(3)?,
            },
            gid: Ids {
                real: u(4)?,
                effective: u(5)?,
                saved: u(6)?,
                fs: u(7)?,
            },
            groups,
            caps: Caps {
                effective: c(8),
                permitted: c(9),
                inheritable: c(10),
                bounding: 0,
                ambient: 0,
            },
            umask: 0,
            user_ns: (w[0], w[1]),
            net_ns: (w[2], w[3]),
            mnt_ns: (w[4], w[5]),
            root: (w[6], w[7]),
        },
        parent: u(11)?,
    })
}

/// The fds the agent starts with.
struct Given {
    chan: OwnedFd,
    net: OwnedFd,
    mnt: OwnedFd,
    user: OwnedFd,
    root: OwnedFd,
}

/// The entry point: `joyride __agent`. Returns the exit code. (The log is
/// set up by the binary's `main`, as for every subcommand.)
pub fn main() -> i32 {
    // Nothing but the fds we were given.
    let _ = asys::close_from(FIRST_FD + 5);
    let take = |i: RawFd| take_inherited_fd(FIRST_FD + i);
    let given = match (take(0), take(1), take(2), take(3), take(4)) {
        (Ok(chan), Ok(net), Ok(mnt), Ok(user), Ok(root)) => Given {
            chan,
            net,
            mnt,
            user,
            root,
        },
        _ => {
            eprintln!("joyride: {ARG} is the supervisor's own helper; it is not run by hand");
            return 2;
        }
    };
    let wanted = match chan::recv(given.chan.as_fd(), false) {
        Ok(Got::Msg(m, _)) => parse_setup(&m),
        _ => None,
    };
    let Some(wanted) = wanted else {
        tracing::error!("agent: no valid setup message");
        return 2;
    };
    if let Err(why) = adopt(&wanted, &given) {
        tracing::error!(uid = wanted.creds.uid.effective, reason = %why, "agent: refusing to serve");
        let _ = chan::send(
            given.chan.as_fd(),
            &Msg::new(Op::Reply, vec![-(libc::EPERM as i64)], vec![why.into_bytes()]),
            &[],
            false,
        );
        return 1;
    }
    let own = match Own::new(given.net, given.root) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "agent: cannot hold its own place");
            return 1;
        }
    };
    if chan::send(given.chan.as_fd(), &Msg::new(Op::Reply, vec![0], vec![]), &[], false).is_err() {
        return 1;
    }
    serve(given.chan.as_fd(), &own)
}

/// Takes on `w`'s power; `Err` with the reason if any step fails or the
/// result read back differs from what was asked.
fn adopt(w: &Wanted, g: &Given) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags};
    let step = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    let step_rx = |what: &'static str| move |e: rustix::io::Errno| format!("{what}: {e}");
    // Our /proc entry, opened while /proc is ours to see (the program's root
    // may have none). `status` is opened now too: it shows ids as the
    // opener's user namespace sees them, and we are about to leave ours.
    let proc_dir = rustix::fs::open(
        "/proc/self",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(step_rx("opening /proc/self"))?;
    let mut status = std::fs::File::open("/proc/self/status").map_err(step("opening /proc/self/status"))?;
    let own_id = |name: &str| -> Option<FileId> {
        let st = rustix::fs::statat(&proc_dir, name, rustix::fs::AtFlags::empty()).ok()?;
        Some((st.st_dev, st.st_ino))
    };
    let id_of = |fd: &OwnedFd| sys::file_id(fd.as_fd()).ok();

    if id_of(&g.net) != own_id("ns/net") {
        move_into_link_name_space(g.net.as_fd(), Some(LinkNameSpaceType::Network)).map_err(step_rx("setns(net)"))?;
    }
    if id_of(&g.mnt) != own_id("ns/mnt") {
        move_into_link_name_space(g.mnt.as_fd(), Some(LinkNameSpaceType::Mount)).map_err(step_rx("setns(mnt)"))?;
    }
    // Keep every capability across the uid change; they are set exactly below.
    use rustix::thread::CapabilitiesSecureBits as Sb;
    rustix::thread::set_capabilities_secure_bits(Sb::NO_SETUID_FIXUP | Sb::KEEP_CAPS)
        .map_err(step_rx("PR_SET_SECUREBITS"))?;
    let c = &w.creds;
    asys::set_groups(&c.groups).map_err(step("setgroups"))?;
    asys::set_res_gid(c.gid.real, c.gid.effective, c.gid.saved).map_err(step("setresgid"))?;
    asys::set_fs_gid(c.gid.fs).map_err(step("setfsgid"))?;
    asys::set_res_uid(c.uid.real, c.uid.effective, c.uid.saved).map_err(step("setresuid"))?;
    asys::set_fs_uid(c.uid.fs).map_err(step("setfsuid"))?;
    if id_of(&g.user) != own_id("ns/user") {
        // Joining gives every capability in the namespace; the kernel
        // refuses it to a chrooted process, so the root comes after.
        move_into_link_name_space(g.user.as_fd(), Some(LinkNameSpaceType::User)).map_err(step_rx("setns(user)"))?;
    }
    rustix::process::fchdir(&g.root).map_err(step_rx("fchdir(root)"))?;
    rustix::process::chroot(".").map_err(step_rx("chroot"))?;
    use rustix::thread::{CapabilityFlags, CapabilitySets};
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilityFlags::from_bits_retain(c.caps.effective),
            permitted: CapabilityFlags::from_bits_retain(c.caps.permitted),
            inheritable: CapabilityFlags::from_bits_retain(c.caps.inheritable),
        },
    )
    .map_err(step_rx("capset"))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(step_rx("PR_SET_DUMPABLE"))?;
    // The credential change cleared any death signal: set it now, then make
    // sure the parent did not die before it took effect.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::Kill))
        .map_err(step_rx("PR_SET_PDEATHSIG"))?;
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(w.parent) {
        return Err("the supervisor is gone".into());
    }
    // Read back what we hold, from the kernel's own account.
    let mut text = String::new();
    status.rewind().map_err(step("rewinding status"))?;
    status.read_to_string(&mut text).map_err(step("reading status"))?;
    let mut got = Creds::parse_status(&text).ok_or("unreadable status")?;
    got.user_ns = own_id("ns/user").ok_or("ns/user")?;
    got.net_ns = own_id("ns/net").ok_or("ns/net")?;
    got.mnt_ns = own_id("ns/mnt").ok_or("ns/mnt")?;
    got.root = own_id("root").ok_or("root")?;
    if !got.same_power(c) || got.net_ns != c.net_ns || got.caps.inheritable != c.caps.inheritable {
        return Err(format!("holds {got:?}, asked {c:?}"));
    }
    Ok(())
}

/// Serves requests until the channel closes; the exit code.
fn serve(chan: BorrowedFd<'_>, own: &Own) -> i32 {
    let mut direct = Direct::new(own, None);
    loop {
        let (req, fds) = match chan::recv(chan, false) {
            Ok(Got::Msg(m, fds)) => (m, fds),
            Ok(Got::Eof) => return 0,
            Ok(Got::Empty) => continue,
            Ok(Got::Malformed(why)) => {
                tracing::error!(why, "agent: malformed request");
                return 1;
            }
            Err(e) => {
                tracing::error!(error = %e, "agent: cannot receive");
                return 1;
            }
        };
        let (nums, blobs, out) = match handle(&mut direct, &req, fds) {
            Ok(r) => r,
            Err(e) => (vec![-(e as i64)], Vec::new(), Vec::new()),
        };
        let raw: Vec<RawFd> = out.iter().map(AsRawFd::as_raw_fd).collect();
        if let Err(e) = chan::send(chan, &Msg::new(Op::Reply, nums, blobs), &raw, false) {
            tracing::error!(error = %e, "agent: cannot reply");
            return 1;
        }
    }
}

type Reply = (Vec<i64>, Vec<Vec<u8>>, Vec<OwnedFd>);

/// Performs one request.
fn handle(a: &mut Direct<'_>, m: &Msg, fds: Vec<OwnedFd>) -> Result<Reply, i32> {
    let bad = libc::EINVAL;
    let int = |i: usize| m.int(i).ok_or(bad);
    let blob = |i: usize| m.blob(i).ok_or(bad);
    // fds[0] is the socket for every request but socket/socketpair; the
    // optional ones follow in a fixed order.
    let sock = || fds.first().map(|f| f.as_fd()).ok_or(bad);
    let opt = |flag: i32, at: usize| -> Result<Option<BorrowedFd<'_>>, i32> {
        match flag {
            0 => Ok(None),
            _ => fds.get(at).map(|f| Some(f.as_fd())).ok_or(bad),
        }
    };
    let need = |n: usize| if fds.len() == n { Ok(()) } else { Err(bad) };
    let done = |r: i64| (vec![r], Vec::new(), Vec::new());
    match m.op {
        Op::Socket => {
            need(0)?;
            let s = a.socket(int(0)?, int(1)? | libc::SOCK_CLOEXEC, int(2)?)?;
            Ok((vec![0], Vec::new(), vec![s]))
        }
        Op::Socketpair => {
            need(0)?;
            let (x, y) = a.socketpair(int(0)?, int(1)? | libc::SOCK_CLOEXEC, int(2)?)?;
            Ok((vec![0], Vec::new(), vec![x, y]))
        }
        Op::Bind => {
            let has_cwd = int(1)?;
            need(1 + (has_cwd != 0) as usize)?;
            a.bind(sock()?, blob(0)?, opt(has_cwd, 1)?, int(0)? as u32)?;
            Ok(done(0))
        }
        Op::Connect => {
            let has_cwd = int(0)?;
            need(1 + (has_cwd != 0) as usize)?;
            a.connect(sock()?, blob(0)?, opt(has_cwd, 1)?)?;
            Ok(done(0))
        }
        Op::Listen => {
            need(1)?;
            a.listen(sock()?, int(0)?)?;
            Ok(done(0))
        }
        Op::Shutdown => {
            need(1)?;
            a.shutdown(sock()?, int(0)?)?;
            Ok(done(0))
        }
        Op::Getsockopt => {
            need(1)?;
            let mut buf = blob(0)?.to_vec();
            let len = a.getsockopt(sock()?, int(0)?, int(1)?, &mut buf)?;
            buf.truncate(len as usize);
            Ok((vec![0, len as i64], vec![buf], Vec::new()))
        }
        Op::Setsockopt => {
            let kind = int(2)?;
            need(1 + (kind == 2) as usize)?;
            let val = match kind {
                0 => OptVal::Bytes(blob(0)?),
                1 => OptVal::Filter {
                    fprog: blob(0)?,
                    prog: blob(1)?,
                },
                2 => OptVal::Fd {
                    val: blob(0)?,
                    fd: fds.get(1).ok_or(bad)?.as_fd(),
                },
                _ => return Err(bad),
            };
            a.setsockopt(sock()?, int(0)?, int(1)?, &val)?;
            Ok(done(0))
        }
        Op::Accept4 => {
            need(1)?;
            let (fd, addr, len) = a.accept4(sock()?, int(0)?)?;
            Ok((vec![0, len as i64], vec![addr], vec![fd]))
        }
        Op::Sendmsg => {
            let (flags, has_name, has_cwd) = (int(0)?, int(1)?, int(2)?);
            let first_right = 1 + (has_cwd != 0) as usize;
            if fds.len() < first_right || fds.len() > FDS_MAX {
                return Err(bad);
            }
            let rights: Vec<RawFd> = fds[first_right..].iter().map(AsRawFd::as_raw_fd).collect();
            let control = with_rights(blob(2)?, &rights).ok_or(bad)?;
            let name = if has_name != 0 { Some(blob(0)?) } else { None };
            let n = a.sendmsg(sock()?, name, blob(1)?, &control, flags, opt(has_cwd, 1)?)?;
            Ok(done(n as i64))
        }
        Op::Recvmsg => {
            need(1)?;
            let mut len = usize::try_from(m.num(0).ok_or(bad)?).map_err(|_| bad)?;
            let control_cap = usize::try_from(m.num(1).ok_or(bad)?).map_err(|_| bad)?;
            if len > crate::kernel::DATA_MAX || control_cap > joyride_notify::syscall::CMSG_MAX {
                return Err(bad);
            }
            let s = sock()?;
            if len > STREAM_MAX
                && sys::getsockopt_int(s, libc::SOL_SOCKET, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM)
            {
                len = STREAM_MAX;
            }
            let mut buf = vec![0u8; len];
            let r = a.recvmsg(s, &mut buf, control_cap, int(2)? | libc::MSG_CMSG_CLOEXEC)?;
            buf.truncate(r.n.min(len));
            // The fds that arrived go back to the supervisor; their numbers
            // in the control data are ours and mean nothing there.
            let mut out = Vec::new();
            for (level, ty, data) in sys::parse_cmsgs(&r.control) {
                if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
                    out.extend(sys::own_fds(&data));
                }
            }
            Ok((
                vec![0, r.n as i64, r.namelen as i64, r.flags as i64],
                vec![buf, r.name, r.control],
                out,
            ))
        }
        Op::Reply | Op::Setup => Err(bad),
    }
}
