//! Neighbor discovery (RFC 4861): neighbor solicitation and advertisement,
//! with the source/target link-layer address options. Router discovery and
//! redirects are not handled (the interface is configured statically).

use std::net::Ipv6Addr;

use super::icmpv6::{msg_type, Icmpv6Packet, HEADER_LEN};
use super::{Error, EthernetAddress, Result};

/// Length of an NS or NA without options (header and target address).
pub const BASE_LEN: usize = HEADER_LEN + 16;
/// Length of a link-layer address option for Ethernet.
pub const LLADDR_OPT_LEN: usize = 8;

mod opt_type {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
}

/// One NDP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpOption<'a> {
    /// Source link-layer address.
    SourceLinkLayerAddr(EthernetAddress),
    /// Target link-layer address.
    TargetLinkLayerAddr(EthernetAddress),
    /// An option this stack ignores.
    Unknown {
        /// Option type.
        kind: u8,
        /// Option body (after type and length).
        data: &'a [u8],
    },
}

/// Iterates over the options in `b`. Yields `Err(Malformed)` once and stops
/// if an option has length zero or runs past the end (RFC 4861 section 4.6:
/// "Nodes MUST silently discard an ND packet that contains an option with
/// length zero").
pub fn options(b: &[u8]) -> impl Iterator<Item = Result<NdpOption<'_>>> {
    let mut rest = b;
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || rest.is_empty() {
            return None;
        }
        if rest.len() < 2 || rest[1] == 0 || rest.len() < rest[1] as usize * 8 {
            failed = true;
            return Some(Err(Error::Malformed));
        }
        let len = rest[1] as usize * 8;
        let (opt, tail) = rest.split_at(len);
        rest = tail;
        let o = match opt[0] {
            opt_type::SOURCE_LLADDR => NdpOption::SourceLinkLayerAddr(EthernetAddress::from_bytes(&opt[2..8])),
            opt_type::TARGET_LLADDR => NdpOption::TargetLinkLayerAddr(EthernetAddress::from_bytes(&opt[2..8])),
            kind => NdpOption::Unknown { kind, data: &opt[2..] },
        };
        Some(Ok(o))
    })
}

/// Flags of a neighbor advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaFlags {
    /// The sender is a router.
    pub router: bool,
    /// Sent in response to a solicitation.
    pub solicited: bool,
    /// Override an existing cache entry.
    pub override_: bool,
}

/// A neighbor solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr {
    /// Neighbor solicitation.
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Addr,
        /// The sender's link-layer address, if given.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor advertisement.
    NeighborAdvert {
        /// Flags.
        flags: NaFlags,
        /// The address being advertised.
        target_addr: Ipv6Addr,
        /// The target's link-layer address, if given.
        lladdr: Option<EthernetAddress>,
    },
}

impl NdpRepr {
    /// Parses an NS or NA (checksum already verified by the caller). The code
    /// must be zero, the message at least 24 bytes, the target not
    /// multicast, every option of non-zero length (RFC 4861 sections 7.1.1
    /// and 7.1.2; the hop-limit check is the IP layer's).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Icmpv6Packet<&T>) -> Result<Self> {
        p.check_len()?;
        if p.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        let data = p.data();
        if data.len() < 16 {
            return Err(Error::Truncated);
        }
        let mut t = [0u8; 16];
        t.copy_from_slice(&data[..16]);
        let target_addr = Ipv6Addr::from(t);
        if target_addr.is_multicast() {
            return Err(Error::Malformed);
        }
        let mut source = None;
        let mut target = None;
        for o in options(&data[16..]) {
            match o? {
                NdpOption::SourceLinkLayerAddr(a) => source = Some(a),
                NdpOption::TargetLinkLayerAddr(a) => target = Some(a),
                NdpOption::Unknown { .. } => {}
            }
        }
        match p.msg_type() {
            msg_type::NEIGHBOR_SOLICIT => Ok(NdpRepr::NeighborSolicit {
                target_addr,
                lladdr: source,
            }),
            msg_type::NEIGHBOR_ADVERT => {
                let r = p.rest();
                Ok(NdpRepr::NeighborAdvert {
                    flags: NaFlags {
                        router: r & 0x8000_0000 != 0,
                        solicited: r & 0x4000_0000 != 0,
                        override_: r & 0x2000_0000 != 0,
                    },
                    target_addr,
                    lladdr: target,
                })
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// Length of the message.
    pub fn buffer_len(&self) -> usize {
        let l = match self {
            NdpRepr::NeighborSolicit { lladdr, .. } | NdpRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        BASE_LEN + if l.is_some() { LLADDR_OPT_LEN } else { 0 }
    }

    /// Writes the message, checksum left to the caller
    /// ([`super::Icmpv6Repr::emit`] fills it).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Icmpv6Packet<T>) {
        let (ty, rest, target, lladdr, opt) = match *self {
            NdpRepr::NeighborSolicit { target_addr, lladdr } => (
                msg_type::NEIGHBOR_SOLICIT,
                0,
                target_addr,
                lladdr,
                opt_type::SOURCE_LLADDR,
            ),
            NdpRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                let r = (flags.router as u32) << 31 | (flags.solicited as u32) << 30 | (flags.override_ as u32) << 29;
                (
                    msg_type::NEIGHBOR_ADVERT,
                    r,
                    target_addr,
                    lladdr,
                    opt_type::TARGET_LLADDR,
                )
            }
        };
        p.set_msg_type(ty);
        p.set_msg_code(0);
        p.set_rest(rest);
        let d = p.data_mut();
        d[..16].copy_from_slice(&target.octets());
        if let Some(a) = lladdr {
            d[16] = opt;
            d[17] = 1;
            d[18..24].copy_from_slice(&a.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmpv6::Icmpv6Repr;
    use crate::wire::test_util::hex;

    fn src() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }
    fn sn() -> Ipv6Addr {
        "ff02::1:ff00:2".parse().unwrap()
    }

    const NS: &str = "87 00 0000 00000000 fe80 0000 0000 0000 0000 0000 0000 0002 01 01 020000000001";

    #[test]
    fn golden_ns() {
        let mut b = hex(NS);
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(&src(), &sn());
        let r = Icmpv6Repr::parse(&src(), &sn(), &Icmpv6Packet::new_checked(&b[..]).unwrap()).unwrap();
        let want = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target_addr: "fe80::2".parse().unwrap(),
            lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
        });
        assert_eq!(r, want);
        let mut out = vec![0u8; want.buffer_len()];
        want.emit(&src(), &sn(), &mut Icmpv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn golden_na() {
        let want = Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
            flags: NaFlags {
                router: false,
                solicited: true,
                override_: true,
            },
            target_addr: "fe80::2".parse().unwrap(),
            lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 2])),
        });
        let mut out = vec![0u8; want.buffer_len()];
        want.emit(&src(), &src(), &mut Icmpv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[0], 136);
        assert_eq!(&out[4..8], &[0x60, 0, 0, 0]);
        assert_eq!(&out[24..], &hex("02 01 020000000002")[..]);
        let p = Icmpv6Packet::new_checked(&out[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&src(), &src(), &p).unwrap(), want);
    }

    #[test]
    fn zero_length_option_rejected() {
        let mut b = hex(NS);
        b[25] = 0;
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(&src(), &sn());
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&src(), &sn(), &p).unwrap_err(), Error::Malformed);
        // Option claims 16 bytes, 8 present.
        b[25] = 2;
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(&src(), &sn());
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&src(), &sn(), &p).unwrap_err(), Error::Malformed);
        // Short message.
        let mut s = hex(NS);
        s.truncate(20);
        Icmpv6Packet::new_unchecked(&mut s[..]).fill_checksum(&src(), &sn());
        let p = Icmpv6Packet::new_checked(&s[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&src(), &sn(), &p).unwrap_err(), Error::Truncated);
        // Multicast target.
        let mut m = hex(NS);
        m[8] = 0xff;
        Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(&src(), &sn());
        let p = Icmpv6Packet::new_checked(&m[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&src(), &sn(), &p).unwrap_err(), Error::Malformed);
    }
}
