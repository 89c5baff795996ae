//! Typed network system calls.
//!
//! One struct per trapped call, converted from the six raw argument registers
//! exactly as the kernel reads them (an `int` is the low 32 bits of its
//! register) and back without loss. Pointers stay pointers here: reading what
//! they point at is the supervisor's job, once, through
//! [`crate::Notification::read_bytes`]. The decoded forms of that memory
//! ([`SockAddr`], [`MsgHdr`], flags) live in the submodules and print like
//! strace.

mod flags;
mod msg;
mod sockaddr;
mod sockopt;

pub use flags::{accept_flags, errno_name, msg_flags, shutdown_how, sock_type, socket_domain, Quoted};
pub use msg::{Iovec, MmsgHdr, MsgHdr, RawMsgHdr, CMSG_MAX, IOV_MAX};
pub use sockaddr::{SockAddr, SOCKADDR_MAX};
pub use sockopt::{sockopt_level, sockopt_name, SockoptValue, OPTVAL_MAX};

/// The network calls Joyride traps, by their x86-64 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetCall {
    /// `socket(2)`
    Socket,
    /// `socketpair(2)`
    Socketpair,
    /// `bind(2)`
    Bind,
    /// `connect(2)`
    Connect,
    /// `listen(2)`
    Listen,
    /// `accept(2)`
    Accept,
    /// `accept4(2)`
    Accept4,
    /// `getsockname(2)`
    Getsockname,
    /// `getpeername(2)`
    Getpeername,
    /// `getsockopt(2)`
    Getsockopt,
    /// `setsockopt(2)`
    Setsockopt,
    /// `sendto(2)`
    Sendto,
    /// `recvfrom(2)`
    Recvfrom,
    /// `sendmsg(2)`
    Sendmsg,
    /// `recvmsg(2)`
    Recvmsg,
    /// `sendmmsg(2)`
    Sendmmsg,
    /// `recvmmsg(2)`
    Recvmmsg,
    /// `shutdown(2)`
    Shutdown,
}

impl NetCall {
    /// Every network call, in strace's `%network` set for x86-64.
    pub const ALL: [NetCall; 18] = [
        NetCall::Socket,
        NetCall::Socketpair,
        NetCall::Bind,
        NetCall::Connect,
        NetCall::Listen,
        NetCall::Accept,
        NetCall::Accept4,
        NetCall::Getsockname,
        NetCall::Getpeername,
        NetCall::Getsockopt,
        NetCall::Setsockopt,
        NetCall::Sendto,
        NetCall::Recvfrom,
        NetCall::Sendmsg,
        NetCall::Recvmsg,
        NetCall::Sendmmsg,
        NetCall::Recvmmsg,
        NetCall::Shutdown,
    ];

    /// The x86-64 system call number.
    pub fn nr(self) -> i64 {
        match self {
            NetCall::Socket => libc::SYS_socket,
            NetCall::Socketpair => libc::SYS_socketpair,
            NetCall::Bind => libc::SYS_bind,
            NetCall::Connect => libc::SYS_connect,
            NetCall::Listen => libc::SYS_listen,
            NetCall::Accept => libc::SYS_accept,
            NetCall::Accept4 => libc::SYS_accept4,
            NetCall::Getsockname => libc::SYS_getsockname,
            NetCall::Getpeername => libc::SYS_getpeername,
            NetCall::Getsockopt => libc::SYS_getsockopt,
            NetCall::Setsockopt => libc::SYS_setsockopt,
            NetCall::Sendto => libc::SYS_sendto,
            NetCall::Recvfrom => libc::SYS_recvfrom,
            NetCall::Sendmsg => libc::SYS_sendmsg,
            NetCall::Recvmsg => libc::SYS_recvmsg,
            NetCall::Sendmmsg => libc::SYS_sendmmsg,
            NetCall::Recvmmsg => libc::SYS_recvmmsg,
            NetCall::Shutdown => libc::SYS_shutdown,
        }
    }

    /// The call with x86-64 number `nr`.
    pub fn from_nr(nr: i64) -> Option<NetCall> {
        NetCall::ALL.into_iter().find(|c| c.nr() == nr)
    }

    /// The call's name, as strace prints it.
    pub fn name(self) -> &'static str {
        match self {
            NetCall::Socket => "socket",
            NetCall::Socketpair => "socketpair",
            NetCall::Bind => "bind",
            NetCall::Connect => "connect",
            NetCall::Listen => "listen",
            NetCall::Accept => "accept",
            NetCall::Accept4 => "accept4",
            NetCall::Getsockname => "getsockname",
            NetCall::Getpeername => "getpeername",
            NetCall::Getsockopt => "getsockopt",
            NetCall::Setsockopt => "setsockopt",
            NetCall::Sendto => "sendto",
            NetCall::Recvfrom => "recvfrom",
            NetCall::Sendmsg => "sendmsg",
            NetCall::Recvmsg => "recvmsg",
            NetCall::Sendmmsg => "sendmmsg",
            NetCall::Recvmmsg => "recvmmsg",
            NetCall::Shutdown => "shutdown",
        }
    }

    /// The call named `name` (strace's spelling).
    pub fn from_name(name: &str) -> Option<NetCall> {
        NetCall::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for NetCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A pointer into the target's address space (never dereferenced here).
pub type UserPtr = u64;

/// The low 32 bits of a register, as the kernel reads an `int` argument.
fn int(reg: u64) -> i32 {
    reg as u32 as i32
}

/// The low 32 bits of a register, as the kernel reads an unsigned argument.
fn uint(reg: u64) -> u32 {
    reg as u32
}

macro_rules! calls {
    ($( $(#[$doc:meta])* $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ident = $idx:literal ),* $(,)? } ),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $name { $( $(#[$fdoc])* pub $field: $ty ),* }

            impl $name {
                /// Decodes the raw argument registers as the kernel does.
                pub fn from_args(args: &[u64; 6]) -> Self {
                    $name { $( $field: calls!(@get $ty, args[$idx]) ),* }
                }

                /// The arguments as strace shows undecoded ones: integers in
                /// decimal, pointers in hex (or `NULL`).
                pub fn raw_args(&self) -> Vec<String> {
                    vec![$( calls!(@show $ty, self.$field) ),*]
                }

                /// The raw argument registers (unused ones zero).
                pub fn to_args(&self) -> [u64; 6] {
                    let mut a = [0u64; 6];
                    $( a[$idx] = calls!(@put $ty, self.$field); )*
                    a
                }
            }
        )*

        /// A decoded network system call.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Syscall {
            $( $(#[$doc])* $name($name), )*
        }

        impl Syscall {
            /// Decodes call `call` from its raw argument registers.
            pub fn from_raw(call: NetCall, args: &[u64; 6]) -> Syscall {
                match call { $( NetCall::$name => Syscall::$name($name::from_args(args)), )* }
            }

            /// Which call this is (its name is [`NetCall::name`]).
            pub fn call(&self) -> NetCall {
                match self { $( Syscall::$name(_) => NetCall::$name, )* }
            }

            /// The raw argument registers.
            pub fn to_args(&self) -> [u64; 6] {
                match self { $( Syscall::$name(c) => c.to_args(), )* }
            }

            /// The arguments, undecoded (see each struct's `raw_args`).
            pub fn raw_args(&self) -> Vec<String> {
                match self { $( Syscall::$name(c) => c.raw_args(), )* }
            }
        }

        /// Prints the call with its arguments undecoded, as strace does for
        /// memory it has not read: `connect(3, 0x7ffd1000, 16)`.
        impl std::fmt::Display for Syscall {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", self.call().name(), self.raw_args().join(", "))
            }
        }
    };
    (@show i32, $e:expr) => { $e.to_string() };
    (@show u32, $e:expr) => { $e.to_string() };
    (@show u64, $e:expr) => { $e.to_string() };
    (@show UserPtr, $e:expr) => { if $e == 0 { "NULL".to_string() } else { format!("{:#x}", $e) } };
    (@get i32, $e:expr) => { int($e) };
    (@get u32, $e:expr) => { uint($e) };
    (@get u64, $e:expr) => { $e };
    (@get UserPtr, $e:expr) => { $e };
    (@put i32, $e:expr) => { $e as u32 as u64 };
    (@put u32, $e:expr) => { $e as u64 };
    (@put u64, $e:expr) => { $e };
    (@put UserPtr, $e:expr) => { $e };
}

calls! {
    /// `socket(domain, type, protocol)`
    Socket { /** address family */ domain: i32 = 0, /** type and `SOCK_*` flags */ ty: i32 = 1, /** protocol */ protocol: i32 = 2 },
    /// `socketpair(domain, type, protocol, sv)`
    Socketpair { /** address family */ domain: i32 = 0, /** type and flags */ ty: i32 = 1, /** protocol */ protocol: i32 = 2, /** `int[2]` result */ sv: UserPtr = 3 },
    /// `bind(fd, addr, addrlen)`
    Bind { /** socket */ fd: i32 = 0, /** address */ addr: UserPtr = 1, /** address length */ addrlen: i32 = 2 },
    /// `connect(fd, addr, addrlen)`
    Connect { /** socket */ fd: i32 = 0, /** address */ addr: UserPtr = 1, /** address length */ addrlen: i32 = 2 },
    /// `listen(fd, backlog)`
    Listen { /** socket */ fd: i32 = 0, /** backlog */ backlog: i32 = 1 },
    /// `accept(fd, addr, addrlen)`
    Accept { /** listening socket */ fd: i32 = 0, /** peer address out */ addr: UserPtr = 1, /** `socklen_t *` in/out */ addrlen: UserPtr = 2 },
    /// `accept4(fd, addr, addrlen, flags)`
    Accept4 { /** listening socket */ fd: i32 = 0, /** peer address out */ addr: UserPtr = 1, /** `socklen_t *` in/out */ addrlen: UserPtr = 2, /** `SOCK_NONBLOCK`, `SOCK_CLOEXEC` */ flags: i32 = 3 },
    /// `getsockname(fd, addr, addrlen)`
    Getsockname { /** socket */ fd: i32 = 0, /** address out */ addr: UserPtr = 1, /** `socklen_t *` in/out */ addrlen: UserPtr = 2 },
    /// `getpeername(fd, addr, addrlen)`
    Getpeername { /** socket */ fd: i32 = 0, /** address out */ addr: UserPtr = 1, /** `socklen_t *` in/out */ addrlen: UserPtr = 2 },
    /// `getsockopt(fd, level, optname, optval, optlen)`
    Getsockopt { /** socket */ fd: i32 = 0, /** level */ level: i32 = 1, /** option */ optname: i32 = 2, /** value out */ optval: UserPtr = 3, /** `socklen_t *` in/out */ optlen: UserPtr = 4 },
    /// `setsockopt(fd, level, optname, optval, optlen)`
    Setsockopt { /** socket */ fd: i32 = 0, /** level */ level: i32 = 1, /** option */ optname: i32 = 2, /** value */ optval: UserPtr = 3, /** value length */ optlen: i32 = 4 },
    /// `sendto(fd, buf, len, flags, addr, addrlen)`
    Sendto { /** socket */ fd: i32 = 0, /** data */ buf: UserPtr = 1, /** data length */ len: u64 = 2, /** `MSG_*` */ flags: u32 = 3, /** destination or NULL */ addr: UserPtr = 4, /** address length */ addrlen: i32 = 5 },
    /// `recvfrom(fd, buf, len, flags, addr, addrlen)`
    Recvfrom { /** socket */ fd: i32 = 0, /** buffer */ buf: UserPtr = 1, /** buffer length */ len: u64 = 2, /** `MSG_*` */ flags: u32 = 3, /** source out or NULL */ addr: UserPtr = 4, /** `socklen_t *` in/out */ addrlen: UserPtr = 5 },
    /// `sendmsg(fd, msg, flags)`
    Sendmsg { /** socket */ fd: i32 = 0, /** `struct msghdr *` */ msg: UserPtr = 1, /** `MSG_*` */ flags: u32 = 2 },
    /// `recvmsg(fd, msg, flags)`
    Recvmsg { /** socket */ fd: i32 = 0, /** `struct msghdr *` */ msg: UserPtr = 1, /** `MSG_*` */ flags: u32 = 2 },
    /// `sendmmsg(fd, msgvec, vlen, flags)`
    Sendmmsg { /** socket */ fd: i32 = 0, /** `struct mmsghdr *` */ msgvec: UserPtr = 1, /** number of messages */ vlen: u32 = 2, /** `MSG_*` */ flags: u32 = 3 },
    /// `recvmmsg(fd, msgvec, vlen, flags, timeout)`
    Recvmmsg { /** socket */ fd: i32 = 0, /** `struct mmsghdr *` */ msgvec: UserPtr = 1, /** number of messages */ vlen: u32 = 2, /** `MSG_*` */ flags: u32 = 3, /** `struct timespec *` or NULL */ timeout: UserPtr = 4 },
    /// `shutdown(fd, how)`
    Shutdown { /** socket */ fd: i32 = 0, /** `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR` */ how: i32 = 1 },
}

impl Syscall {
    /// The socket the call acts on, if it takes one.
    pub fn fd(&self) -> Option<i32> {
        match self {
            Syscall::Socket(_) | Syscall::Socketpair(_) => None,
            Syscall::Bind(c) => Some(c.fd),
            Syscall::Connect(c) => Some(c.fd),
            Syscall::Listen(c) => Some(c.fd),
            Syscall::Accept(c) => Some(c.fd),
            Syscall::Accept4(c) => Some(c.fd),
            Syscall::Getsockname(c) => Some(c.fd),
            Syscall::Getpeername(c) => Some(c.fd),
            Syscall::Getsockopt(c) => Some(c.fd),
            Syscall::Setsockopt(c) => Some(c.fd),
            Syscall::Sendto(c) => Some(c.fd),
            Syscall::Recvfrom(c) => Some(c.fd),
            Syscall::Sendmsg(c) => Some(c.fd),
            Syscall::Recvmsg(c) => Some(c.fd),
            Syscall::Sendmmsg(c) => Some(c.fd),
            Syscall::Recvmmsg(c) => Some(c.fd),
            Syscall::Shutdown(c) => Some(c.fd),
        }
    }
}

/// The i386 `socketcall(2)` multiplexer's call numbers (`SYS_SOCKET`...).
pub fn socketcall_name(call: u32) -> &'static str {
    const NAMES: [&str; 21] = [
        "?",
        "SYS_SOCKET",
        "SYS_BIND",
        "SYS_CONNECT",
        "SYS_LISTEN",
        "SYS_ACCEPT",
        "SYS_GETSOCKNAME",
        "SYS_GETPEERNAME",
        "SYS_SOCKETPAIR",
        "SYS_SEND",
        "SYS_RECV",
        "SYS_SENDTO",
        "SYS_RECVFROM",
        "SYS_SHUTDOWN",
        "SYS_SETSOCKOPT",
        "SYS_GETSOCKOPT",
        "SYS_SENDMSG",
        "SYS_RECVMSG",
        "SYS_ACCEPT4",
        "SYS_RECVMMSG",
        "SYS_SENDMMSG",
    ];
    NAMES
        .get(call as usize)
        .copied()
        .filter(|n| *n != "?")
        .unwrap_or("SYS_???")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_round_trip() {
        for call in NetCall::ALL {
            assert_eq!(NetCall::from_nr(call.nr()), Some(call));
            assert_eq!(NetCall::from_name(call.name()), Some(call));
        }
        assert_eq!(NetCall::from_nr(libc::SYS_read), None);
        assert_eq!(NetCall::Connect.nr(), 42);
        assert_eq!(NetCall::Socket.nr(), 41);
    }

    #[test]
    fn every_call_round_trips_through_registers() {
        let regs = [
            0x7fff_0000_1234u64,
            0xdead_beef,
            0x1_0000_0001,
            0xffff_ffff,
            0x4000,
            0x10,
        ];
        for call in NetCall::ALL {
            let sc = Syscall::from_raw(call, &regs);
            assert_eq!(sc.call(), call);
            // Canonical registers: decoding them again gives the same call.
            let canon = sc.to_args();
            assert_eq!(Syscall::from_raw(call, &canon), sc, "{call}");
        }
    }

    #[test]
    fn ints_are_low_32_bits_like_the_kernel() {
        // A program may leave garbage in the upper half of an int register.
        let c = Connect::from_args(&[0xffff_ffff_0000_0003, 0x1000, 0x5_0000_0010, 0, 0, 0]);
        assert_eq!(
            c,
            Connect {
                fd: 3,
                addr: 0x1000,
                addrlen: 16
            }
        );
        let s = Socket::from_args(&[0x1_0000_0002, 0x8_0801, 0, 0, 0, 0]);
        assert_eq!(s.domain, libc::AF_INET);
        assert_eq!(s.ty, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK);
        let sendto = Sendto::from_args(&[3, 0x1000, 1 << 40, 0x4000, 0, 0]);
        assert_eq!(sendto.len, 1 << 40, "size_t is 64 bits");
        assert_eq!(sendto.flags, libc::MSG_NOSIGNAL as u32);
    }

    #[test]
    fn display_like_strace_for_unread_memory() {
        let c = Syscall::Connect(Connect {
            fd: 3,
            addr: 0x7ffd_1000,
            addrlen: 16,
        });
        assert_eq!(c.to_string(), "connect(3, 0x7ffd1000, 16)");
        let a = Syscall::Accept(Accept {
            fd: 4,
            addr: 0,
            addrlen: 0,
        });
        assert_eq!(a.to_string(), "accept(4, NULL, NULL)");
        let s = Syscall::from_raw(NetCall::Sendto, &[5, 0x1000, 10, 0x4000, 0, 0]);
        assert_eq!(s.to_string(), "sendto(5, 0x1000, 10, 16384, NULL, 0)");
    }

    #[test]
    fn socketcall_names() {
        assert_eq!(socketcall_name(1), "SYS_SOCKET");
        assert_eq!(socketcall_name(20), "SYS_SENDMMSG");
        assert_eq!(socketcall_name(0), "SYS_???");
        assert_eq!(socketcall_name(99), "SYS_???");
    }
}
