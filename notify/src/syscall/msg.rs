//! `struct msghdr`, `struct mmsghdr` and `struct iovec` as a target lays them
//! out on x86-64, and their strace-like display.

use std::fmt;

use super::flags::{msg_flags, Quoted};
use super::sockaddr::SockAddr;

/// `UIO_MAXIOV`: the kernel refuses more iovecs with `EMSGSIZE`.
pub const IOV_MAX: usize = 1024;

/// Largest control buffer Joyride copies (the kernel's `optmem_max` is far
/// smaller by default); larger ones get `ENOBUFS`, as from the kernel.
pub const CMSG_MAX: usize = 64 * 1024;

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_ne_bytes(a)
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_ne_bytes(a)
}

/// `struct msghdr` with its pointers still pointing into the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawMsgHdr {
    /// `msg_name`
    pub name: u64,
    /// `msg_namelen`
    pub namelen: u32,
    /// `msg_iov`
    pub iov: u64,
    /// `msg_iovlen`
    pub iovlen: u64,
    /// `msg_control`
    pub control: u64,
    /// `msg_controllen`
    pub controllen: u64,
    /// `msg_flags`
    pub flags: i32,
}

impl RawMsgHdr {
    /// `sizeof(struct msghdr)`.
    pub const SIZE: usize = 56;
    /// Offset of `msg_namelen`.
    pub const NAMELEN_OFFSET: u64 = 8;
    /// Offset of `msg_controllen`.
    pub const CONTROLLEN_OFFSET: u64 = 40;
    /// Offset of `msg_flags`.
    pub const FLAGS_OFFSET: u64 = 48;

    /// Decodes the first [`Self::SIZE`] bytes of `b`; `None` if shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(RawMsgHdr {
            name: u64_at(b, 0),
            namelen: u32_at(b, 8),
            iov: u64_at(b, 16),
            iovlen: u64_at(b, 24),
            control: u64_at(b, 32),
            controllen: u64_at(b, 40),
            flags: u32_at(b, 48) as i32,
        })
    }

    /// Encodes as the kernel's layout (padding zero).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.name.to_ne_bytes());
        b[8..12].copy_from_slice(&self.namelen.to_ne_bytes());
        b[16..24].copy_from_slice(&self.iov.to_ne_bytes());
        b[24..32].copy_from_slice(&self.iovlen.to_ne_bytes());
        b[32..40].copy_from_slice(&self.control.to_ne_bytes());
        b[40..48].copy_from_slice(&self.controllen.to_ne_bytes());
        b[48..52].copy_from_slice(&self.flags.to_ne_bytes());
        b
    }
}

/// `struct mmsghdr`: a message header and the length the kernel reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MmsgHdr {
    /// `msg_hdr`
    pub hdr: RawMsgHdr,
    /// `msg_len`
    pub len: u32,
}

impl MmsgHdr {
    /// `sizeof(struct mmsghdr)`.
    pub const SIZE: usize = 64;
    /// Offset of `msg_len`.
    pub const LEN_OFFSET: u64 = 56;

    /// Decodes the first [`Self::SIZE`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(MmsgHdr {
            hdr: RawMsgHdr::parse(b)?,
            len: u32_at(b, 56),
        })
    }

    /// Encodes as the kernel's layout.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..RawMsgHdr::SIZE].copy_from_slice(&self.hdr.to_bytes());
        b[56..60].copy_from_slice(&self.len.to_ne_bytes());
        b
    }
}

/// `struct iovec` pointing into the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Iovec {
    /// `iov_base`
    pub base: u64,
    /// `iov_len`
    pub len: u64,
}

impl Iovec {
    /// `sizeof(struct iovec)`.
    pub const SIZE: usize = 16;

    /// Decodes an array of iovecs (trailing partial bytes ignored).
    pub fn parse_list(b: &[u8]) -> Vec<Iovec> {
        b.chunks_exact(Self::SIZE)
            .map(|c| Iovec {
                base: u64_at(c, 0),
                len: u64_at(c, 8),
            })
            .collect()
    }

    /// Encodes an array of iovecs.
    pub fn list_to_bytes(list: &[Iovec]) -> Vec<u8> {
        let mut out = Vec::with_capacity(list.len() * Self::SIZE);
        for v in list {
            out.extend_from_slice(&v.base.to_ne_bytes());
            out.extend_from_slice(&v.len.to_ne_bytes());
        }
        out
    }
}

/// A message header with what it points at, for display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgHdr {
    /// The address, if one was given (or received).
    pub name: Option<SockAddr>,
    /// `msg_namelen`.
    pub namelen: u32,
    /// Each iovec's data as far as it is shown, and its length.
    pub iov: Vec<(Vec<u8>, u64)>,
    /// `msg_iovlen`.
    pub iovlen: u64,
    /// `msg_controllen`.
    pub controllen: u64,
    /// `msg_flags`.
    pub flags: i32,
}

impl fmt::Display for MsgHdr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        match &self.name {
            Some(a) => write!(f, "msg_name={a}, msg_namelen={}, ", self.namelen)?,
            None => f.write_str("msg_name=NULL, msg_namelen=0, ")?,
        }
        f.write_str("msg_iov=[")?;
        for (i, (data, len)) in self.iov.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if i >= 8 {
                f.write_str("...")?;
                break;
            }
            write!(f, "{{iov_base={}, iov_len={len}}}", Quoted::new(data))?;
        }
        write!(
            f,
            "], msg_iovlen={}, msg_controllen={}, msg_flags={}}}",
            self.iovlen,
            self.controllen,
            msg_flags(self.flags as u32)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(RawMsgHdr::SIZE, std::mem::size_of::<libc::msghdr>());
        assert_eq!(MmsgHdr::SIZE, std::mem::size_of::<libc::mmsghdr>());
        assert_eq!(Iovec::SIZE, std::mem::size_of::<libc::iovec>());
    }

    #[test]
    fn msghdr_round_trip() {
        let h = RawMsgHdr {
            name: 0x1000,
            namelen: 16,
            iov: 0x2000,
            iovlen: 2,
            control: 0,
            controllen: 0,
            flags: 0,
        };
        assert_eq!(RawMsgHdr::parse(&h.to_bytes()), Some(h));
        let m = MmsgHdr { hdr: h, len: 77 };
        assert_eq!(MmsgHdr::parse(&m.to_bytes()), Some(m));
        assert_eq!(RawMsgHdr::parse(&[0; 55]), None);
        let iov = vec![Iovec { base: 1, len: 2 }, Iovec { base: 3, len: 4 }];
        assert_eq!(Iovec::parse_list(&Iovec::list_to_bytes(&iov)), iov);
    }

    #[test]
    fn display_like_strace() {
        let m = MsgHdr {
            name: None,
            namelen: 0,
            iov: vec![(b"hi".to_vec(), 2)],
            iovlen: 1,
            controllen: 0,
            flags: 0,
        };
        assert_eq!(
            m.to_string(),
            r#"{msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="hi", iov_len=2}], msg_iovlen=1, msg_controllen=0, msg_flags=0}"#
        );
    }
}
