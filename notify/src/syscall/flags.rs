//! Names of constants and flags, and strace-style quoting of data.

use std::fmt;

/// The name of an address family (`AF_INET`), if known.
pub(crate) fn family_name(family: i32) -> Option<&'static str> {
    Some(match family {
        libc::AF_UNSPEC => "AF_UNSPEC",
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_VSOCK => "AF_VSOCK",
        libc::AF_ALG => "AF_ALG",
        libc::AF_BLUETOOTH => "AF_BLUETOOTH",
        libc::AF_XDP => "AF_XDP",
        libc::AF_KEY => "AF_KEY",
        libc::AF_TIPC => "AF_TIPC",
        libc::AF_CAN => "AF_CAN",
        _ => return None,
    })
}

/// `socket`'s first argument: `AF_INET`, or the number.
pub fn socket_domain(domain: i32) -> String {
    family_name(domain)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{domain} /* AF_??? */"))
}

/// Joins the names of the set bits of `value` with `|`; leftover bits in hex.
fn bits(value: u64, names: &[(u64, &str)], zero: &str) -> String {
    if value == 0 {
        return zero.to_owned();
    }
    let mut out = String::new();
    let mut rest = value;
    for &(bit, name) in names {
        if bit != 0 && rest & bit == bit {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        if !out.is_empty() {
            out.push('|');
        }
        out.push_str(&format!("{rest:#x}"));
    }
    out
}

// strace's order.
const SOCK_FLAGS: [(u64, &str); 2] = [
    (libc::SOCK_CLOEXEC as u64, "SOCK_CLOEXEC"),
    (libc::SOCK_NONBLOCK as u64, "SOCK_NONBLOCK"),
];

/// `socket`'s type argument: `SOCK_STREAM|SOCK_CLOEXEC`.
pub fn sock_type(ty: i32) -> String {
    let base = ty & 0xf;
    let name = match base {
        libc::SOCK_STREAM => "SOCK_STREAM".to_owned(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_owned(),
        libc::SOCK_RAW => "SOCK_RAW".to_owned(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".to_owned(),
        libc::SOCK_RDM => "SOCK_RDM".to_owned(),
        10 => "SOCK_PACKET".to_owned(),
        other => format!("{other:#x} /* SOCK_??? */"),
    };
    let flags = (ty & !0xf) as u32 as u64;
    if flags == 0 {
        name
    } else {
        format!("{name}|{}", bits(flags, &SOCK_FLAGS, "0"))
    }
}

/// `accept4`'s flags: `SOCK_CLOEXEC|SOCK_NONBLOCK` or `0`.
pub fn accept_flags(flags: i32) -> String {
    bits(flags as u32 as u64, &SOCK_FLAGS, "0")
}

/// `MSG_*` flags.
pub fn msg_flags(flags: u32) -> String {
    const NAMES: [(u64, &str); 17] = [
        (libc::MSG_OOB as u64, "MSG_OOB"),
        (libc::MSG_PEEK as u64, "MSG_PEEK"),
        (libc::MSG_DONTROUTE as u64, "MSG_DONTROUTE"),
        (libc::MSG_CTRUNC as u64, "MSG_CTRUNC"),
        (libc::MSG_TRUNC as u64, "MSG_TRUNC"),
        (libc::MSG_DONTWAIT as u64, "MSG_DONTWAIT"),
        (libc::MSG_EOR as u64, "MSG_EOR"),
        (libc::MSG_WAITALL as u64, "MSG_WAITALL"),
        (libc::MSG_CONFIRM as u64, "MSG_CONFIRM"),
        (libc::MSG_ERRQUEUE as u64, "MSG_ERRQUEUE"),
        (libc::MSG_NOSIGNAL as u64, "MSG_NOSIGNAL"),
        (libc::MSG_MORE as u64, "MSG_MORE"),
        (libc::MSG_WAITFORONE as u64, "MSG_WAITFORONE"),
        (libc::MSG_FASTOPEN as u64, "MSG_FASTOPEN"),
        (libc::MSG_CMSG_CLOEXEC as u64, "MSG_CMSG_CLOEXEC"),
        (libc::MSG_TRYHARD as u64, "MSG_TRYHARD"),
        (libc::MSG_ZEROCOPY as u64, "MSG_ZEROCOPY"),
    ];
    bits(flags as u64, &NAMES, "0")
}

/// `shutdown`'s how: `SHUT_WR`.
pub fn shutdown_how(how: i32) -> String {
    match how {
        libc::SHUT_RD => "SHUT_RD".into(),
        libc::SHUT_WR => "SHUT_WR".into(),
        libc::SHUT_RDWR => "SHUT_RDWR".into(),
        other => format!("{other} /* SHUT_??? */"),
    }
}

/// The symbolic name of an errno value (`ECONNREFUSED`).
pub fn errno_name(errno: i32) -> String {
    if errno == crate::listener::ERESTARTSYS {
        return "ERESTARTSYS".into();
    }
    let e = nix::errno::Errno::from_raw(errno);
    if e == nix::errno::Errno::UnknownErrno {
        format!("E{errno}")
    } else {
        format!("{e:?}")
    }
}

/// Bytes shown the way strace shows strings: quoted, escaped, cut after
/// `limit` bytes with `...` after the closing quote.
pub struct Quoted<'a> {
    bytes: &'a [u8],
    limit: usize,
}

impl<'a> Quoted<'a> {
    /// strace's default: at most 32 bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Quoted { bytes, limit: 32 }
    }

    /// All of the bytes.
    pub fn full(bytes: &'a [u8]) -> Self {
        Quoted {
            bytes,
            limit: usize::MAX,
        }
    }

    /// At most `limit` bytes.
    pub fn with_limit(bytes: &'a [u8], limit: usize) -> Self {
        Quoted { bytes, limit }
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(self.limit)];
        f.write_str("\"")?;
        for (i, &b) in shown.iter().enumerate() {
            let next_is_digit = shown.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
            match b {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                0x0b => f.write_str("\\v")?,
                0x0c => f.write_str("\\f")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ if next_is_digit => write!(f, "\\{b:03o}")?,
                _ => write!(f, "\\{b:o}")?,
            }
        }
        f.write_str("\"")?;
        if shown.len() < self.bytes.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_flags() {
        assert_eq!(sock_type(libc::SOCK_STREAM), "SOCK_STREAM");
        assert_eq!(
            sock_type(libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK),
            "SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK"
        );
        assert_eq!(accept_flags(0), "0");
        assert_eq!(accept_flags(libc::SOCK_CLOEXEC), "SOCK_CLOEXEC");
        assert_eq!(
            msg_flags(libc::MSG_NOSIGNAL as u32 | libc::MSG_CMSG_CLOEXEC as u32),
            "MSG_NOSIGNAL|MSG_CMSG_CLOEXEC"
        );
        assert_eq!(
            msg_flags(0x8000_0000_u32 | libc::MSG_PEEK as u32),
            "MSG_PEEK|0x80000000"
        );
        assert_eq!(socket_domain(libc::AF_INET6), "AF_INET6");
        assert_eq!(socket_domain(99), "99 /* AF_??? */");
        assert_eq!(shutdown_how(libc::SHUT_WR), "SHUT_WR");
    }

    #[test]
    fn errnos() {
        assert_eq!(errno_name(libc::ECONNREFUSED), "ECONNREFUSED");
        assert_eq!(errno_name(libc::EINPROGRESS), "EINPROGRESS");
        assert_eq!(errno_name(4095), "E4095");
    }

    #[test]
    fn quoting_like_strace() {
        assert_eq!(
            Quoted::new(b"GET / HTTP/1.1\r\n").to_string(),
            r#""GET / HTTP/1.1\r\n""#
        );
        assert_eq!(Quoted::new(b"a\0b").to_string(), r#""a\0b""#);
        assert_eq!(Quoted::new(b"\x001").to_string(), r#""\0001""#);
        assert_eq!(Quoted::with_limit(b"abcdef", 3).to_string(), r#""abc"..."#);
        assert_eq!(Quoted::new(b"\"\\").to_string(), r#""\"\\""#);
    }
}
