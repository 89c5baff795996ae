//! The agent's wire format: one `SOCK_SEQPACKET` message per request and per
//! reply, fds beside it by `SCM_RIGHTS`.
//!
//! A message is an op code, a few integers and a few byte strings:
//!
//! ```text
//! u32 op | u32 n | n x i64 | u32 m | m x (u32 len | len bytes)
//! ```
//!
//! all native-endian (both ends are the same binary on the same host).
//! [`Msg::decode`] checks every length against the buffer and against
//! [`MAX_NUMS`]/[`MAX_BLOBS`] and never panics, so a reply from an agent a
//! target has taken over is at worst rejected. What the integers and strings
//! mean is up to each op (see `client.rs` and `server.rs`, which share the
//! [`Op`] table).

/// Most integers in one message.
pub const MAX_NUMS: usize = 16;
/// Most byte strings in one message.
pub const MAX_BLOBS: usize = 8;

/// The requests an agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Op {
    /// A reply (the only op an agent sends).
    Reply = 0,
    /// `socket(domain, type, protocol)`.
    Socket = 1,
    /// `socketpair(domain, type, protocol)`.
    Socketpair = 2,
    /// `bind(fd, addr)` with a umask and maybe a working directory.
    Bind = 3,
    /// `connect(fd, addr)`, maybe in a working directory.
    Connect = 4,
    /// `listen(fd, backlog)`.
    Listen = 5,
    /// `shutdown(fd, how)`.
    Shutdown = 6,
    /// `getsockopt(fd, level, name)` into a buffer.
    Getsockopt = 7,
    /// `setsockopt(fd, level, name, value)`.
    Setsockopt = 8,
    /// `accept4(fd, flags)`.
    Accept4 = 9,
    /// `sendmsg(fd, name, data, control, flags)`.
    Sendmsg = 10,
    /// `recvmsg(fd, len, control_cap, flags)`.
    Recvmsg = 11,
    /// The credentials to adopt: the first message a new agent reads.
    Setup = 12,
}

impl Op {
    /// The op with code `v`.
    pub fn from_u32(v: u32) -> Option<Op> {
        use Op::*;
        Some(match v {
            0 => Reply,
            1 => Socket,
            2 => Socketpair,
            3 => Bind,
            4 => Connect,
            5 => Listen,
            6 => Shutdown,
            7 => Getsockopt,
            8 => Setsockopt,
            9 => Accept4,
            10 => Sendmsg,
            11 => Recvmsg,
            12 => Setup,
            _ => return None,
        })
    }
}

/// One request or reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// What it is.
    pub op: Op,
    /// Its integers.
    pub nums: Vec<i64>,
    /// Its byte strings.
    pub blobs: Vec<Vec<u8>>,
}

impl Msg {
    /// A message of `op`.
    pub fn new(op: Op, nums: Vec<i64>, blobs: Vec<Vec<u8>>) -> Msg {
        Msg { op, nums, blobs }
    }

    /// The bytes of the message.
    pub fn encode(&self) -> Vec<u8> {
        let size = 12 + 8 * self.nums.len() + self.blobs.iter().map(|b| 4 + b.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&(self.op as u32).to_ne_bytes());
        out.extend_from_slice(&(self.nums.len() as u32).to_ne_bytes());
        for n in &self.nums {
            out.extend_from_slice(&n.to_ne_bytes());
        }
        out.extend_from_slice(&(self.blobs.len() as u32).to_ne_bytes());
        for b in &self.blobs {
            out.extend_from_slice(&(b.len() as u32).to_ne_bytes());
            out.extend_from_slice(b);
        }
        out
    }

    /// Parses `buf`; `None` unless it is exactly one well-formed message.
    pub fn decode(buf: &[u8]) -> Option<Msg> {
        let mut r = Reader { buf, at: 0 };
        let op = Op::from_u32(r.u32()?)?;
        let n = r.u32()? as usize;
        if n > MAX_NUMS {
            return None;
        }
        let mut nums = Vec::with_capacity(n);
        for _ in 0..n {
            nums.push(i64::from_ne_bytes(r.take(8)?.try_into().ok()?));
        }
        let m = r.u32()? as usize;
        if m > MAX_BLOBS {
            return None;
        }
        let mut blobs = Vec::with_capacity(m);
        for _ in 0..m {
            let len = r.u32()? as usize;
            blobs.push(r.take(len)?.to_vec());
        }
        if r.at != buf.len() {
            return None;
        }
        Some(Msg { op, nums, blobs })
    }

    /// Integer `i`, if present.
    pub fn num(&self, i: usize) -> Option<i64> {
        self.nums.get(i).copied()
    }

    /// Integer `i` as an `i32`, if present and in range.
    pub fn int(&self, i: usize) -> Option<i32> {
        i32::try_from(self.num(i)?).ok()
    }

    /// Byte string `i`, if present.
    pub fn blob(&self, i: usize) -> Option<&[u8]> {
        self.blobs.get(i).map(Vec::as_slice)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = Msg::new(Op::Sendmsg, vec![-1, 7, i64::MAX], vec![b"abc".to_vec(), Vec::new()]);
        let b = m.encode();
        assert_eq!(b.len(), 12 + 24 + 4 + 3 + 4);
        assert_eq!(Msg::decode(&b), Some(m));
    }

    #[test]
    fn rejects_malformed() {
        let good = Msg::new(Op::Reply, vec![1], vec![b"xy".to_vec()]).encode();
        // Every truncation and every extension is refused.
        for n in 0..good.len() {
            assert_eq!(Msg::decode(&good[..n]), None, "truncated to {n}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Msg::decode(&long), None);
        // Unknown op, too many numbers, a blob longer than the buffer.
        let mut bad = good.clone();
        bad[0] = 99;
        assert_eq!(Msg::decode(&bad), None);
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&(MAX_NUMS as u32 + 1).to_ne_bytes());
        assert_eq!(Msg::decode(&bad), None);
        let mut bad = good;
        let at = 4 + 4 + 8 + 4;
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(Msg::decode(&bad), None);
    }
}
