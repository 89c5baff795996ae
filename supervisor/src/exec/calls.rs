//! Trapped calls on user-space sockets: `socket`, `bind`, `connect`,
//! `listen`, `accept`, names and options. Data calls (`sendmsg`,
//! `recvfrom` with an address, ...) run on the bridge through the kernel
//! path with [`super::engine::BridgeHooks`]; calls on any other fd are the
//! kernel's, served as `joyride trace` serves them.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use joyride_netstack::iface::{Family, SocketError};
use joyride_notify::{AddFd, NetCall, Notification, Syscall};

use super::addr;
use super::engine::{BridgeHooks, Exec, StackWait, WaitFor};
use super::shard::{Moving, Msg};
use super::socks::{new_bridge, Phase, Proto, Sock};
use crate::agent::OptVal;
use crate::kernel;
use crate::record::Record;

/// Longest address the supervisor reads (`sizeof(struct sockaddr_storage)`).
const ADDR_MAX: i32 = 128;

/// The arguments of an `accept`/`accept4` waiting for a connection.
pub struct AcceptArgs {
    call: NetCall,
    flags: i32,
    addr_ptr: u64,
    len_ptr: u64,
    user_len: u32,
}

impl AcceptArgs {
    /// `accept` or `accept4`.
    pub fn call_name(&self) -> &'static str {
        self.call.name()
    }
}

/// The stack family of a socket of `domain` (`IPV6_V6ONLY` as set).
pub fn family_of(domain: i32, v6only: Option<&[u8]>) -> Family {
    if domain == libc::AF_INET {
        Family::V4
    } else {
        let on = v6only.is_some_and(|v| v.iter().any(|b| *b != 0));
        Family::V6 { v6only: on }
    }
}

impl Exec {
    /// Serves one trapped native call.
    pub(super) fn serve(&mut self, notif: Notification) {
        let Some(call) = NetCall::from_nr(notif.nr as i64) else {
            let _ = notif.answer_errno(libc::ENOSYS);
            return;
        };
        let sc = Syscall::from_raw(call, &notif.args);
        let started = Instant::now();
        if let Syscall::Socket(c) = sc {
            if let Some(proto) = user_proto(c.domain, c.ty, c.protocol) {
                self.socket(notif, c.domain, c.ty, c.protocol, proto, started);
                return;
            }
            // A type or protocol the stack does not serve (raw, ICMP,
            // SCTP...): the kernel creates it in the program's context and
            // says EPERM or allows it as it would. Safe to continue: the
            // decision read only registers, which no other thread can change.
            return self.leave_to_kernel(notif, sc, started);
        }
        let Some(fd) = sc.fd() else {
            // socketpair: never a user-space socket.
            return self.leave_to_kernel(notif, sc, started);
        };
        let dup = match self.ctx.target_socket(&notif, fd) {
            Ok((_pidfd, dup)) => dup,
            // Not an fd, or the thread vanished: the kernel answers as it
            // would (EBADF, ENOTSOCK...).
            Err(_) => return self.leave_to_kernel(notif, sc, started),
        };
        let ino = match self.socks.lookup(dup.as_fd()) {
            Ok(ino) => ino,
            // A socket that moved to another shard is served there.
            Err(Some(ino)) if self.index == 0 && self.shared.count() > 1 => match self.shared.owner(ino) {
                Some(k) => return self.shared.send(k, Msg::Call(notif)),
                None => return self.leave_to_kernel(notif, sc, started),
            },
            // Not one of the stack's sockets (AF_UNIX, netlink, packet, a
            // kernel-served Internet socket): the kernel performs the call
            // in the program's context, with the program's credentials.
            //
            // Safe to continue although another thread may swap the fd
            // (dup2) between our look and the kernel's: the decision rested
            // on fd identity only, and whatever the fd then names, the
            // kernel judges the call with the program's own credentials on
            // an object the program holds. The only Joyride objects a
            // program holds are the target ends of its bridges, plain
            // AF_UNIX sockets it may use directly anyway.
            Err(_) => return self.leave_to_kernel(notif, sc, started),
        };
        let args = sc.raw_args();
        // Calls that may wait own their notification and answer it.
        match sc {
            Syscall::Connect(c) => {
                if let Err(Moved(notif)) = self.connect(notif, ino, dup, c.fd, c.addr, c.addrlen, started) {
                    self.leave_to_kernel(notif, sc, started);
                }
                return;
            }
            Syscall::Accept(c) => {
                return self.accept_call(notif, ino, dup, NetCall::Accept, 0, c.addr, c.addrlen, started);
            }
            Syscall::Accept4(c) => {
                return self.accept_call(notif, ino, dup, NetCall::Accept4, c.flags, c.addr, c.addrlen, started);
            }
            _ => {}
        }
        let served = match sc {
            Syscall::Bind(c) => self.bind(&notif, ino, c.fd, c.addr, c.addrlen),
            Syscall::Listen(c) => self.listen(&notif, ino, dup.as_fd(), c.backlog),
            Syscall::Getsockname(c) => self.name(&notif, ino, false, c.addr, c.addrlen),
            Syscall::Getpeername(c) => self.name(&notif, ino, true, c.addr, c.addrlen),
            Syscall::Getsockopt(c) => self.getsockopt(&notif, ino, c.level, c.optname, c.optval, c.optlen),
            Syscall::Setsockopt(c) => self.setsockopt(&notif, ino, dup.as_fd(), c.level, c.optname, c.optval, c.optlen),
            Syscall::Shutdown(c) => self.shutdown(ino, c.how),
            Syscall::Sendto(_) | Syscall::Sendmsg(_) | Syscall::Sendmmsg(_)
                if self.sends_to_kernel(&notif, ino, &sc) =>
            {
                // The kernel performs the send on the socket it became.
                self.move_to_kernel(&notif, ino, fd)
            }
            // Data calls run on the bridge.
            _ => return self.kernel_call(notif, sc),
        };
        match served {
            Ok(res) => self.reply(notif, call.name(), args, res, started),
            // Moved to the kernel: the kernel performs the call on the new
            // kernel socket (see `move_to_kernel`).
            Err(Moved(())) => self.leave_to_kernel(notif, sc, started),
        }
    }

    /// Answers `notif` with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the kernel
    /// runs the call in the program's own context, with its credentials,
    /// namespaces, working directory and umask. Every caller says why a
    /// racing thread cannot turn that into more than the program may do.
    pub(super) fn leave_to_kernel(&mut self, notif: Notification, sc: Syscall, started: Instant) {
        if let Syscall::Socket(_) = sc {
            self.socks.stats.kernel += 1;
        }
        let pid = notif.pid;
        match notif.answer_continue() {
            Ok(()) => {
                if self.sink.is_some() {
                    self.emit(&Record::continued(
                        pid,
                        sc.call().name(),
                        sc.raw_args(),
                        started.elapsed(),
                    ));
                }
            }
            Err(_) => self.stats.vanished += 1,
        }
    }

    /// Answers `notif` with `res` and prints it with `--trace`.
    pub(super) fn reply(
        &mut self,
        notif: Notification,
        call: &str,
        args: Vec<String>,
        res: Result<i64, i32>,
        started: Instant,
    ) {
        let pid = notif.pid;
        let answered = match res {
            Ok(v) => notif.answer(v),
            Err(e) => notif.answer_errno(e),
        };
        if answered.is_ok() {
            self.emit(&Record::new(pid, call, args, res, started.elapsed()));
        } else {
            self.stats.vanished += 1;
        }
    }

    /// Serves a call on the kernel's stack, with the bridges' hooks.
    fn kernel_call(&mut self, notif: Notification, sc: Syscall) {
        if let Syscall::Socket(_) = sc {
            self.socks.stats.kernel += 1;
        }
        let mut hooks = BridgeHooks {
            socks: &mut self.socks,
            iface: &mut self.iface,
        };
        let progress = kernel::start(&mut self.ctx, notif, sc, &mut hooks);
        self.settle(progress);
    }

    fn socket(&mut self, notif: Notification, domain: i32, ty: i32, protocol: i32, proto: Proto, started: Instant) {
        let pid = notif.pid;
        let args = vec![domain.to_string(), ty.to_string(), protocol.to_string()];
        let nonblocking = ty & libc::SOCK_NONBLOCK != 0;
        let cloexec = ty & libc::SOCK_CLOEXEC != 0;
        // TCP: the unconnected object a connect or listen turns into a
        // connection or a listener (`joyride_fd_bridge::Hub`); UDP: its
        // bridge at once.
        let made = match proto {
            Proto::Tcp => joyride_fd_bridge::unconnected(nonblocking).map(|(fd, ino)| (None, fd, ino)),
            Proto::Udp => new_bridge(proto, nonblocking).map(|(b, fd, ino)| (Some(b), fd, ino)),
        };
        let (bridge, theirs, ino) = match made {
            Ok(b) => b,
            Err(e) => {
                let errno = crate::kernel::errno_of(e);
                tracing::warn!(errno, "cannot create a bridge for a new socket");
                let r = Record::new(pid, "socket", args, Err(errno), started.elapsed());
                if notif.answer_errno(errno).is_ok() {
                    self.emit(&r);
                }
                return;
            }
        };
        let cookie = rustix::net::sockopt::get_socket_cookie(&theirs).unwrap_or(0);
        let family = family_of(domain, None);
        let h = match proto {
            Proto::Tcp => self.iface.tcp_open(family),
            Proto::Udp => self.iface.udp_open(family),
        };
        match notif.answer_with_fd(theirs.as_fd(), AddFd { cloexec, at: None }) {
            Ok(fd) => {
                let mut sock = Sock::new(proto, domain, protocol, h, cookie, bridge);
                sock.seen_at = Some((pid, fd));
                self.socks.insert(&mut self.iface, ino, sock);
                self.watch_bridge(ino);
                self.emit(&Record::new(pid, "socket", args, Ok(i64::from(fd)), started.elapsed()));
            }
            Err(_) => {
                self.stats.vanished += 1;
                let _ = match proto {
                    Proto::Tcp => self.iface.tcp_close(h),
                    Proto::Udp => self.iface.udp_close(h),
                };
            }
        }
    }

    fn bind(&mut self, notif: &Notification, ino: u64, fd: i32, ptr: u64, len: i32) -> Served {
        let s = self.socks.get(ino).expect("looked up by the caller");
        let (proto, domain, h) = (s.proto, s.domain, s.handle);
        let bytes = match read_addr(notif, ptr, len) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let a = match addr::parse_for(&bytes, domain, false) {
            Ok(Some(a)) => a,
            // AF_UNSPEC: Linux takes it as INADDR_ANY on IPv4 sockets only.
            Ok(None) if domain == libc::AF_INET => addr::unspecified(domain),
            Ok(None) => return Ok(Err(libc::EAFNOSUPPORT)),
            Err(e) => return Ok(Err(e)),
        };
        if self.policy.kernel_serves(a.ip()) {
            return self.move_to_kernel(notif, ino, fd);
        }
        if let Err(e) = super::privilege::check_bind_port(notif, a.port()) {
            return Ok(Err(e));
        }
        let mut res = match proto {
            Proto::Tcp => self.iface.tcp_bind(h, a),
            Proto::Udp => self.iface.udp_bind(h, a),
        };
        if proto == Proto::Tcp && res.as_ref().err().is_some_and(|e| e.errno() == libc::EADDRINUSE) {
            // Maybe a listener the program closed since the last look
            // (nothing hangs up when a listening object is closed).
            if self.reap_closed() > 0 {
                res = self.iface.tcp_bind(h, a);
            }
        }
        Ok(res.map(|_| 0).map_err(|e| e.errno()))
    }

    #[allow(clippy::too_many_arguments)]
    fn connect(
        &mut self,
        notif: Notification,
        ino: u64,
        dup: OwnedFd,
        fd: i32,
        ptr: u64,
        len: i32,
        started: Instant,
    ) -> Result<(), Moved> {
        let s = self.socks.get(ino).expect("looked up by the caller");
        let (proto, domain, h) = (s.proto, s.domain, s.handle);
        let bytes = match read_addr(&notif, ptr, len) {
            Ok(b) => b,
            Err(e) => return self.connect_reply(notif, Err(e), started),
        };
        let a = match addr::parse_for(&bytes, domain, proto == Proto::Udp) {
            Ok(a) => a,
            Err(e) => return self.connect_reply(notif, Err(e), started),
        };
        if let Some(a) = a {
            if self.policy.kernel_serves(a.ip()) {
                return match self.move_to_kernel(&notif, ino, fd) {
                    Ok(res) => self.connect_reply(notif, res, started),
                    Err(Moved(())) => Err(Moved(notif)),
                };
            }
        }
        if proto == Proto::Udp {
            let res = match a {
                Some(a) => self.iface.udp_connect(h, a),
                None => self.iface.udp_disconnect(h),
            };
            if let Some(s) = self.socks.get_mut(ino) {
                s.phase = if a.is_some() && res.is_ok() {
                    Phase::Connected
                } else {
                    Phase::Fresh
                };
            }
            return self.connect_reply(notif, res.map(|()| 0).map_err(|e| e.errno()), started);
        }
        let Some(a) = a else {
            // AF_UNSPEC on a TCP socket: nothing to dissolve before a connect.
            return self.connect_reply(notif, Ok(0), started);
        };
        // A connection to the stack itself stays in this shard, with the
        // listener it reaches (loopback does not cross shards).
        let to_self =
            self.policy.loopback_on_stack() && (addr::canonical(a.ip()).is_loopback() || self.is_ours(a.ip()));
        if let Some(k) = self.shard_for_connect(ino).filter(|_| !to_self) {
            self.move_to_shard(k, notif, ino, dup, fd, a, started);
            return Ok(());
        }
        self.connect_stack(notif, ino, dup, fd, a, started)
    }

    /// Whether `ip` is one of the stack's own addresses.
    fn is_ours(&self, ip: std::net::IpAddr) -> bool {
        match addr::canonical(ip) {
            std::net::IpAddr::V4(v4) => self.iface.has_ipv4(v4),
            std::net::IpAddr::V6(v6) => self.iface.has_ipv6(v6),
        }
    }

    /// The shard a TCP socket moves to for its first connect, in turn over
    /// the shards, if not this one: only from shard 0, and only a socket
    /// that has no port yet (its port is then picked to steer to the shard).
    fn shard_for_connect(&mut self, ino: u64) -> Option<usize> {
        if self.index != 0 || self.shared.count() < 2 {
            return None;
        }
        let s = self.socks.get(ino)?;
        let unbound = self.iface.tcp_local_addr(s.handle).is_ok_and(|a| a.is_none());
        if !(matches!(s.phase, Phase::Fresh) && unbound) {
            return None;
        }
        Some(self.shared.next_shard()).filter(|&k| k != self.index)
    }

    /// Hands socket `ino` and its connect to shard `k`.
    #[allow(clippy::too_many_arguments)]
    fn move_to_shard(
        &mut self,
        k: usize,
        notif: Notification,
        ino: u64,
        dup: OwnedFd,
        fd: i32,
        to: SocketAddr,
        started: Instant,
    ) {
        let Some(sock) = self.socks.remove(ino) else { return };
        if let Some(b) = &sock.bridge {
            let _ = rustix::event::epoll::delete(&self.tree.epoll, b.as_fd());
        }
        let _ = self.iface.tcp_close(sock.handle);
        self.shared.set_owner(ino, k);
        let m = Moving {
            notif,
            ino,
            sock,
            dup,
            fd,
            to,
            started,
        };
        self.shared.send(k, Msg::Connect(Box::new(m)));
    }

    /// Takes in a socket another shard moved here, on a new stack socket
    /// with its options, and starts its connect.
    pub(super) fn adopt_and_connect(&mut self, m: Moving) {
        let Moving {
            notif,
            ino,
            mut sock,
            dup,
            fd,
            to,
            started,
        } = m;
        let family = family_of(sock.domain, sock.opt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY));
        sock.handle = self.iface.tcp_open(family);
        self.socks.adopt(&mut self.iface, ino, sock);
        self.replay_opts(ino);
        self.watch_bridge(ino);
        let _ = self.connect_stack(notif, ino, dup, fd, to, started);
    }

    /// A TCP connect on the stack: starts the handshake, or answers what
    /// the socket's phase says.
    fn connect_stack(
        &mut self,
        notif: Notification,
        ino: u64,
        dup: OwnedFd,
        fd: i32,
        a: SocketAddr,
        started: Instant,
    ) -> Result<(), Moved> {
        let Some(h) = self.socks.get(ino).map(|s| s.handle) else {
            return self.connect_reply(notif, Err(libc::EBADF), started);
        };
        let blocking = !crate::sys::is_nonblocking(dup.as_fd()).unwrap_or(false);
        let s = self.socks.get_mut(ino).expect("looked up by the caller");
        match s.phase {
            Phase::Connected | Phase::Listening => return self.connect_reply(notif, Err(libc::EISCONN), started),
            Phase::Dead => {
                let e = s.error.take().unwrap_or(libc::ECONNABORTED);
                return self.connect_reply(notif, Err(e), started);
            }
            Phase::Connecting { .. } if !blocking => return self.connect_reply(notif, Err(libc::EALREADY), started),
            Phase::Connecting { .. } => {}
            Phase::Fresh => {
                // A non-blocking connect shows its progress on the target's
                // object at once: attached to a bridge, writes held.
                let bridge = if blocking {
                    None
                } else {
                    match self.hub.attach(dup.as_fd()) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot attach a connecting socket");
                            return self.connect_reply(notif, Err(crate::kernel::errno_of(e)), started);
                        }
                    }
                };
                if let Err(e) = self.iface.tcp_connect(h, a) {
                    if bridge.is_some() {
                        // Attached already: the object is connected for
                        // good, so the socket is too, in error.
                        let s = self.socks.get_mut(ino).expect("looked up by the caller");
                        s.bridge = bridge;
                        if let Some(b) = self.socks.kill(&mut self.iface, ino, e.errno()) {
                            b.reset_with(dup.as_fd());
                        }
                    }
                    return self.connect_reply(notif, Err(e.errno()), started);
                }
                let s = self.socks.get_mut(ino).expect("looked up by the caller");
                s.seen_at = Some((notif.pid, fd));
                s.phase = Phase::Connecting { held: Some(dup) };
                if let Some(mut b) = bridge {
                    if let Err(e) = b.hold_writes(s.held().expect("just set")) {
                        tracing::warn!(error = %e, "cannot hold a connecting socket's writes");
                    }
                    s.bridge = Some(b);
                    self.watch_bridge(ino);
                    return self.connect_reply(notif, Err(libc::EINPROGRESS), started);
                }
                // Blocking: the call waits below, `dup` is kept for the
                // attach when the handshake ends.
                return self.wait_connect(notif, ino, fd, started);
            }
        }
        self.wait_connect(notif, ino, fd, started)
    }

    /// Parks a blocking connect until the handshake ends.
    fn wait_connect(&mut self, notif: Notification, ino: u64, fd: i32, started: Instant) -> Result<(), Moved> {
        let deadline = send_deadline(&notif, fd, &self.ctx, started);
        self.stack_waits.push(StackWait {
            notif,
            ino,
            what: WaitFor::Connect,
            started,
            deadline,
        });
        Ok(())
    }

    fn connect_reply(&mut self, notif: Notification, res: Result<i64, i32>, started: Instant) -> Result<(), Moved> {
        let args = Syscall::from_raw(NetCall::Connect, &notif.args).raw_args();
        self.reply(notif, "connect", args, res, started);
        Ok(())
    }

    fn listen(&mut self, notif: &Notification, ino: u64, dup: BorrowedFd<'_>, backlog: i32) -> Served {
        let s = self.socks.get(ino).expect("looked up by the caller");
        if s.proto != Proto::Tcp {
            return Ok(Err(libc::EOPNOTSUPP));
        }
        let h = s.handle;
        if matches!(s.phase, Phase::Connected | Phase::Connecting { .. } | Phase::Dead) {
            return Ok(Err(libc::EINVAL));
        }
        // Linux clamps the backlog to somaxconn (4096) and takes a negative
        // one as 0.
        let backlog = backlog.clamp(0, 4096) as u32;
        if let Err(e) = self.iface.tcp_listen(h, backlog) {
            return Ok(Err(e.errno()));
        }
        if self.socks.get(ino).is_some_and(|s| s.lobby.is_none()) {
            match self.hub.lobby(dup) {
                Ok(l) => {
                    if let Some(s) = self.socks.get_mut(ino) {
                        s.lobby = Some(l);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot make a listening socket's object listen");
                    return Ok(Err(crate::kernel::errno_of(e)));
                }
            }
        }
        let loopback = match self.iface.tcp_local_addr(h) {
            Ok(Some(a)) if a.ip().is_unspecified() && !self.policy.loopback_on_stack() => {
                self.loopback_listeners(notif, ino, a, backlog)
            }
            _ => Vec::new(),
        };
        if let Some(s) = self.socks.get_mut(ino) {
            s.phase = Phase::Listening;
            s.loopback = loopback;
        }
        self.watch_loopback(ino);
        Ok(Ok(0))
    }

    /// Kernel listeners on 127.0.0.1 (and ::1 for an IPv6 socket) with the
    /// port of wildcard listener `ino`, made in the target's namespace.
    /// A port the kernel already uses on loopback is skipped (logged).
    fn loopback_listeners(&mut self, notif: &Notification, ino: u64, a: SocketAddr, backlog: u32) -> Vec<OwnedFd> {
        let Some(s) = self.socks.get(ino) else {
            return Vec::new();
        };
        let v6only = s
            .opt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
            .is_some_and(|v| v.iter().any(|b| *b != 0));
        let mut wanted: Vec<SocketAddr> = Vec::new();
        if s.domain == libc::AF_INET6 {
            wanted.push(SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), a.port()));
        }
        if s.domain == libc::AF_INET || !v6only {
            wanted.push(SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port()));
        }
        let mut out = Vec::new();
        for lo in wanted {
            let domain = if lo.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
            // Made with the program's power, in its network namespace: the
            // socket belongs to it as one it made itself would.
            let made = self.ctx.act(notif, |a| {
                let k = a.socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)?;
                let one = 1i32.to_ne_bytes();
                a.setsockopt(k.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &OptVal::Bytes(&one))?;
                if domain == libc::AF_INET6 {
                    a.setsockopt(k.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &OptVal::Bytes(&one))?;
                }
                a.bind(k.as_fd(), &addr::encode(lo, domain), None, 0)?;
                a.listen(k.as_fd(), backlog as i32)?;
                Ok(k)
            });
            match made {
                Ok(k) => out.push(k),
                Err(e) => tracing::info!(%lo, errno = e, "no loopback listener for a wildcard listener"),
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn accept_call(
        &mut self,
        notif: Notification,
        ino: u64,
        dup: OwnedFd,
        call: NetCall,
        flags: i32,
        addr_ptr: u64,
        len_ptr: u64,
        started: Instant,
    ) {
        let early = |this: &mut Exec, notif: Notification, e: i32| {
            let args = Syscall::from_raw(call, &notif.args).raw_args();
            this.reply(notif, call.name(), args, Err(e), started);
        };
        if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
            return early(self, notif, libc::EINVAL);
        }
        let s = self.socks.get(ino).expect("looked up by the caller");
        if s.proto != Proto::Tcp {
            return early(self, notif, libc::EOPNOTSUPP);
        }
        if !matches!(s.phase, Phase::Listening) {
            return early(self, notif, libc::EINVAL);
        }
        let mut user_len = 0;
        if addr_ptr != 0 {
            match notif.read_u32(len_ptr) {
                Ok(l) if (l as i32) < 0 => return early(self, notif, libc::EINVAL),
                Ok(l) => user_len = l,
                Err(e) => return early(self, notif, e.errno()),
            }
        }
        let args = AcceptArgs {
            call,
            flags,
            addr_ptr,
            len_ptr,
            user_len,
        };
        let nonblocking = crate::sys::is_nonblocking(dup.as_fd()).unwrap_or(false);
        let deadline = if nonblocking {
            None
        } else {
            crate::kernel::recv_deadline(dup.as_fd(), started)
        };
        let w = StackWait {
            notif,
            ino,
            what: WaitFor::Accept(args),
            started,
            deadline,
        };
        // A non-blocking accept is tried once: EAGAIN if nothing waits.
        self.try_accept(w, Some(dup), nonblocking);
    }

    /// Tries an accept: answers it with a new socket, with `EAGAIN` when
    /// `once` and nothing waits, or parks it.
    fn try_accept(&mut self, w: StackWait, dup: Option<OwnedFd>, once: bool) {
        let ino = w.ino;
        let Some(s) = self.socks.get(ino) else {
            let _ = w.notif.answer_errno(libc::EBADF);
            return;
        };
        let (h, domain) = (s.handle, s.domain);
        let kept = self.socks.get_mut(ino).and_then(|s| s.kept.pop_front());
        let (accepted, w) = match kept.map_or_else(|| self.iface.tcp_accept(h), Ok) {
            Err(SocketError::WouldBlock) => match self.accept_loopback(ino, w) {
                Ok(()) => {
                    self.settle_doorbell(ino, h, dup);
                    return;
                }
                Err(w) => (Err(SocketError::WouldBlock), *w),
            },
            other => (other, w),
        };
        let WaitFor::Accept(args) = &w.what else {
            unreachable!("accepts only")
        };
        let (child, peer) = match accepted {
            Ok(c) => c,
            Err(SocketError::WouldBlock) if !once => {
                self.stack_waits.push(w);
                return;
            }
            Err(e) => {
                let e = e.errno();
                let r = Record::new(w.notif.pid, args.call.name(), Vec::new(), Err(e), w.started.elapsed());
                if w.notif.answer_errno(e).is_ok() {
                    self.emit(&r);
                }
                return;
            }
        };
        let nonblocking = args.flags & libc::SOCK_NONBLOCK != 0;
        let cloexec = args.flags & libc::SOCK_CLOEXEC != 0;
        let fail = |this: &mut Exec, errno: i32, notif: Notification| {
            let _ = this.iface.tcp_close(child);
            let _ = notif.answer_errno(errno);
        };
        if args.addr_ptr != 0 {
            let bytes = addr::encode(peer, domain);
            let n = (args.user_len as usize).min(bytes.len());
            let len = (bytes.len() as u32).to_ne_bytes();
            if let Err(e) = w
                .notif
                .write_many(&[(args.addr_ptr, &bytes[..n]), (args.len_ptr, &len)])
            {
                return fail(self, e.errno(), w.notif);
            }
        }
        let (bridge, theirs, cino) = match new_bridge(Proto::Tcp, nonblocking) {
            Ok(b) => b,
            Err(e) => return fail(self, crate::kernel::errno_of(e), w.notif),
        };
        let cookie = rustix::net::sockopt::get_socket_cookie(&theirs).unwrap_or(0);
        let (pid, call, started) = (w.notif.pid, args.call, w.started);
        match w.notif.answer_with_fd(theirs.as_fd(), AddFd { cloexec, at: None }) {
            Ok(fd) => {
                let protocol = self.socks.get(ino).map_or(0, |s| s.protocol);
                let mut sock = Sock::new(Proto::Tcp, domain, protocol, child, cookie, Some(bridge));
                sock.phase = Phase::Connected;
                sock.seen_at = Some((pid, fd));
                self.socks.insert(&mut self.iface, cino, sock);
                self.watch_bridge(cino);
                self.pump(cino);
                self.emit(&Record::new(
                    pid,
                    call.name(),
                    vec![addr::encode(peer, domain).len().to_string()],
                    Ok(i64::from(fd)),
                    started.elapsed(),
                ));
            }
            Err(_) => {
                // The caller vanished: the connection waits for the next
                // accept, as the kernel's would have stayed queued.
                self.stats.vanished += 1;
                if let Some(s) = self.socks.get_mut(ino) {
                    s.kept.push_front((child, peer));
                }
            }
        }
        self.settle_doorbell(ino, h, dup);
    }

    /// The doorbell rings while connections wait, and only then.
    fn settle_doorbell(&mut self, ino: u64, h: joyride_netstack::iface::SocketHandle, dup: Option<OwnedFd>) {
        let stack = self.iface.tcp_readiness(h).is_ok_and(|r| r.readable)
            || self.socks.get(ino).is_some_and(|s| !s.kept.is_empty());
        let kernel = self
            .socks
            .get(ino)
            .is_some_and(|s| s.loopback.iter().any(|k| crate::sys::readable_now(k.as_fd())));
        if !stack && !kernel {
            self.unring(ino, dup);
        }
    }

    /// Accepts a connection from a loopback listener of `w`'s listener and
    /// answers `w` with it; gives `w` back if none waits there.
    fn accept_loopback(&mut self, ino: u64, w: StackWait) -> Result<(), Box<StackWait>> {
        let WaitFor::Accept(args) = &w.what else {
            return Err(Box::new(w));
        };
        let Some(s) = self.socks.get(ino) else {
            return Err(Box::new(w));
        };
        let flags = (args.flags & libc::SOCK_NONBLOCK) | libc::SOCK_CLOEXEC;
        let Some((k, name, full)) = s
            .loopback
            .iter()
            .find_map(|l| crate::sys::accept4(l.as_fd(), flags).ok())
        else {
            return Err(Box::new(w));
        };
        let cloexec = args.flags & libc::SOCK_CLOEXEC != 0;
        let (call, started, pid) = (args.call, w.started, w.notif.pid);
        if args.addr_ptr != 0 {
            let n = (args.user_len as usize).min(name.len());
            if let Err(e) = w
                .notif
                .write_many(&[(args.addr_ptr, &name[..n]), (args.len_ptr, &full.to_ne_bytes())])
            {
                let _ = w.notif.answer_errno(e.errno());
                return Ok(());
            }
        }
        self.socks.stats.kernel += 1;
        match w.notif.answer_with_fd(k.as_fd(), AddFd { cloexec, at: None }) {
            Ok(fd) => self.emit(&Record::new(
                pid,
                call.name(),
                Vec::new(),
                Ok(i64::from(fd)),
                started.elapsed(),
            )),
            Err(_) => self.stats.vanished += 1,
        }
        Ok(())
    }

    /// Takes the doorbell connection of listener `ino` off the target's
    /// listening object.
    fn unring(&mut self, ino: u64, dup: Option<OwnedFd>) {
        let Some(l) = self.socks.get_mut(ino).and_then(|s| s.lobby.as_mut()) else {
            return;
        };
        if l.rung() == 0 {
            return;
        }
        let Some(dup) = dup else { return };
        if let Err(e) = l.unring(dup.as_fd()) {
            tracing::debug!(error = %e, "cannot take a listener's doorbell");
        }
    }

    /// A call waiting on the stack may go on.
    pub(super) fn resume_stack_wait(&mut self, w: StackWait) {
        match w.what {
            WaitFor::Connect => {
                let Some(s) = self.socks.get(w.ino) else {
                    let _ = w.notif.answer_errno(libc::EBADF);
                    return;
                };
                match s.phase {
                    Phase::Connected => {
                        let r = Record::new(w.notif.pid, "connect", Vec::new(), Ok(0), w.started.elapsed());
                        if w.notif.answer(0).is_ok() {
                            self.emit(&r);
                        }
                    }
                    Phase::Connecting { .. } => self.stack_waits.push(w),
                    _ => {
                        let e = s.error.unwrap_or(libc::ECONNREFUSED);
                        let _ = w.notif.answer_errno(e);
                    }
                }
            }
            WaitFor::Accept(_) => {
                // A duplicate of the listener for the doorbell, from the
                // caller's own fd.
                let fd = w.notif.args[0] as i32;
                let dup = self
                    .ctx
                    .target_socket(&w.notif, fd)
                    .ok()
                    .map(|(_, d)| d)
                    .filter(|d| self.socks.lookup(d.as_fd()) == Ok(w.ino));
                self.try_accept(w, dup, false);
            }
        }
    }

    fn name(&mut self, notif: &Notification, ino: u64, peer: bool, ptr: u64, len_ptr: u64) -> Served {
        let s = self.socks.get(ino).expect("looked up by the caller");
        let (h, domain) = (s.handle, s.domain);
        let user_len = match notif.read_u32(len_ptr) {
            Ok(l) if (l as i32) < 0 => return Ok(Err(libc::EINVAL)),
            Ok(l) => l,
            Err(e) => return Ok(Err(e.errno())),
        };
        let got = match (s.proto, peer) {
            (Proto::Tcp, false) => self.iface.tcp_local_addr(h),
            (Proto::Tcp, true) => self.iface.tcp_peer_addr(h),
            (Proto::Udp, false) => self.iface.udp_local_addr(h),
            (Proto::Udp, true) => self.iface.udp_peer_addr(h),
        };
        let a: SocketAddr = match got {
            Ok(Some(a)) => a,
            Ok(None) if peer => return Ok(Err(libc::ENOTCONN)),
            Ok(None) => addr::unspecified(domain),
            Err(e) => return Ok(Err(e.errno())),
        };
        let bytes = addr::encode(a, domain);
        let n = (user_len as usize).min(bytes.len());
        let len = (bytes.len() as u32).to_ne_bytes();
        Ok(notif
            .write_many(&[(ptr, &bytes[..n]), (len_ptr, &len)])
            .map(|()| 0)
            .map_err(|e| e.errno()))
    }

    fn shutdown(&mut self, ino: u64, how: i32) -> Served {
        let s = self.socks.get(ino).expect("looked up by the caller");
        let (read, write) = match how {
            libc::SHUT_RD => (true, false),
            libc::SHUT_WR => (false, true),
            libc::SHUT_RDWR => (true, true),
            _ => return Ok(Err(libc::EINVAL)),
        };
        let res = match s.proto {
            Proto::Tcp => self.iface.tcp_shutdown(s.handle, read, write),
            Proto::Udp => Err(SocketError::NotConnected),
        };
        Ok(res.map(|()| 0).map_err(|e| e.errno()))
    }

    /// Whether a send on socket `ino` moves it to the kernel first: a UDP
    /// socket the stack has not bound yet, sending to a destination the
    /// kernel serves (loopback, `--kernel`). Like a first `connect`, the
    /// first destination decides; a socket with a port in the stack stays.
    /// The decision read the program's memory, so a racing thread can
    /// change which stack carries the socket, never whose power the kernel
    /// judges the send with (`SECURITY.md`, *Races*).
    fn sends_to_kernel(&self, notif: &Notification, ino: u64, sc: &Syscall) -> bool {
        let Some(s) = self.socks.get(ino) else { return false };
        if s.proto != Proto::Udp || !matches!(s.phase, Phase::Fresh) {
            return false;
        }
        if self.iface.udp_local_addr(s.handle).ok().flatten().is_some() {
            return false;
        }
        let Some(name) = kernel::send_destination(notif, sc) else {
            return false;
        };
        matches!(addr::parse(&name, s.domain), Ok(Some(a)) if self.policy.kernel_serves(a.ip()))
    }

    /// Policy: socket `ino` (the target's fd `fd`) goes to the kernel. A
    /// kernel socket of the same kind is made in the target's network
    /// namespace, given the options set so far, and installed over `fd`;
    /// the caller then performs the call on it.
    fn move_to_kernel(&mut self, notif: &Notification, ino: u64, fd: i32) -> Served {
        let Some(s) = self.socks.get(ino) else {
            return Ok(Err(libc::EBADF));
        };
        let ty = match s.proto {
            Proto::Tcp => libc::SOCK_STREAM,
            Proto::Udp => libc::SOCK_DGRAM,
        };
        let (domain, protocol) = (s.domain, s.protocol);
        let opts = s.opts.clone();
        // A port the program bound in the stack (a wildcard bind, then a
        // loopback connect) comes along: the kernel socket is bound to it.
        let bound = match s.proto {
            Proto::Tcp => self.iface.tcp_local_addr(s.handle),
            Proto::Udp => self.iface.udp_local_addr(s.handle),
        }
        .ok()
        .flatten()
        .map(|a| addr::encode(a, domain));
        let ours = match self.ctx.target_socket(notif, fd) {
            Ok((_p, d)) => d,
            Err(e) => return Ok(Err(e)),
        };
        let nonblocking = crate::sys::is_nonblocking(ours.as_fd()).unwrap_or(false);
        let cloexec = fd_cloexec(notif.pid, fd);
        // The kernel socket is made, and its options set, with the
        // program's power (`SECURITY.md`): it is the program's socket as if
        // it had made it (its owner for routing and firewall rules, its
        // credentials on the file).
        let made = self.ctx.act(notif, |a| {
            let k = a.socket(domain, ty, protocol)?;
            for (level, name, val) in &opts {
                if let Err(e) = a.setsockopt(k.as_fd(), *level, *name, &OptVal::Bytes(val)) {
                    tracing::debug!(
                        level,
                        name,
                        errno = e,
                        "an option did not carry over to the kernel socket"
                    );
                }
            }
            if let Some(name) = &bound {
                a.bind(k.as_fd(), name, None, 0)?;
            }
            Ok(k)
        });
        let k = match made {
            Ok(k) => k,
            Err(e) => return Ok(Err(e)),
        };
        if nonblocking {
            let _ = rustix::fs::fcntl_setfl(&k, rustix::fs::OFlags::NONBLOCK);
        }
        if let Err(e) = notif.add_fd(k.as_fd(), AddFd { cloexec, at: Some(fd) }) {
            tracing::debug!(error = %e, "cannot install a kernel socket");
            return Ok(Err(libc::ESRCH));
        }
        if let Some(s) = self.socks.remove(ino) {
            match s.proto {
                Proto::Tcp => {
                    let _ = self.iface.tcp_close(s.handle);
                }
                Proto::Udp => {
                    let _ = self.iface.udp_close(s.handle);
                }
            }
            self.socks.stats.user = self.socks.stats.user.saturating_sub(1);
            self.socks.stats.kernel += 1;
        }
        Err(Moved(()))
    }
}

/// Result of a handler: the call's result, or "moved to the kernel: serve
/// it there".
pub(super) type Served = Result<Result<i64, i32>, Moved<()>>;

/// The socket moved to the kernel; carries the notification when the
/// handler owned it.
pub(super) struct Moved<T = Notification>(T);

/// Which user-space protocol serves `socket(domain, ty, protocol)`, if any.
fn user_proto(domain: i32, ty: i32, protocol: i32) -> Option<Proto> {
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return None;
    }
    if ty & !(0xf | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return None;
    }
    match (ty & 0xf, protocol) {
        (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => Some(Proto::Tcp),
        (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Some(Proto::Udp),
        _ => None,
    }
}

/// Reads an address argument once, with Linux's length checks.
fn read_addr(notif: &Notification, ptr: u64, len: i32) -> Result<Vec<u8>, i32> {
    if !(0..=ADDR_MAX).contains(&len) {
        return Err(libc::EINVAL);
    }
    notif
        .read_bytes(ptr, len as u64, ADDR_MAX as usize)
        .map_err(|e| e.errno())
}

/// Whether fd `fd` of process `pid` has `FD_CLOEXEC` (from its fdinfo).
fn fd_cloexec(pid: u32, fd: i32) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|f| f & libc::O_CLOEXEC as u32 != 0)
}

/// `SO_SNDTIMEO` of the target's fd as a deadline.
fn send_deadline(notif: &Notification, fd: i32, ctx: &kernel::Ctx, started: Instant) -> Option<Instant> {
    let (_p, dup) = ctx.target_socket(notif, fd).ok()?;
    kernel::send_deadline(dup.as_fd(), started)
}
