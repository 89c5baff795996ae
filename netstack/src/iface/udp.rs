//! UDP sockets: bounded datagram queues over the shared socket table
//! ([`super::ports`]), which binds (Linux's `SO_REUSEADDR`/`SO_REUSEPORT`
//! rules, ephemeral ports), connects and demultiplexes by hash.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use super::ports::{Endpoint, Ends, Proto, SocketTable};
use super::{IcmpError, SocketError, SocketHandle};

pub use super::ports::{canonical, canonical_ip, Family};

/// Limits of UDP sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// Bytes of payload a receive queue holds (`SO_RCVBUF`-like).
    pub rx_queue_bytes: usize,
    /// Datagrams a receive queue holds.
    pub rx_queue_datagrams: usize,
    /// Bytes of payload a send queue holds before `send_to` would block.
    pub tx_queue_bytes: usize,
    /// Datagrams a send queue holds.
    pub tx_queue_datagrams: usize,
    /// Ephemeral port range (Linux `ip_local_port_range`: 32768-60999).
    pub ephemeral_ports: (u16, u16),
    /// Errors remembered per socket with `IP_RECVERR`.
    pub error_queue_len: usize,
    /// Largest `SO_RCVBUF`/`SO_SNDBUF` a program may ask for, before Linux's
    /// doubling (`net.core.rmem_max`/`wmem_max`).
    pub max_buffer_request: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            rx_queue_bytes: 212_992,
            rx_queue_datagrams: 1024,
            tx_queue_bytes: 212_992,
            tx_queue_datagrams: 1024,
            ephemeral_ports: (32768, 60999),
            error_queue_len: 16,
            max_buffer_request: 212_992,
        }
    }
}

/// A received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender (canonical).
    pub from: SocketAddr,
    /// The local address it was sent to (for `IP_PKTINFO`).
    pub to: IpAddr,
    /// The IPv4 TTL or IPv6 hop limit it arrived with (`IP_TTL`,
    /// `IPV6_HOPLIMIT` control messages).
    pub hop_limit: u8,
    /// The IPv4 TOS byte or IPv6 traffic class it arrived with, ECN bits
    /// included (`IP_TOS`, `IPV6_TCLASS` control messages).
    pub traffic_class: u8,
    /// Payload.
    pub data: Vec<u8>,
}

/// What [`super::Interface::udp_recv_from`] returns besides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// Length of the whole datagram (larger than `len` when truncated, as
    /// with `MSG_TRUNC`).
    pub datagram_len: usize,
    /// Sender, as the socket's family shows it.
    pub from: SocketAddr,
    /// The local address it was sent to.
    pub to: IpAddr,
    /// The TTL / hop limit it arrived with.
    pub hop_limit: u8,
    /// The TOS byte / traffic class it arrived with.
    pub traffic_class: u8,
}

/// What one datagram asks for besides its socket's options: the ancillary
/// data of a `sendmsg` (`IP_TTL`/`IPV6_HOPLIMIT`, `IP_TOS`/`IPV6_TCLASS`,
/// `IP_PKTINFO`/`IPV6_PKTINFO`, `IPV6_DONTFRAG`), values already checked
/// as Linux checks them. The default asks for nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOpts {
    /// TTL / hop limit for this datagram instead of the socket's.
    pub hop_limit: Option<u8>,
    /// TOS byte / traffic class for this datagram instead of the socket's.
    pub traffic_class: Option<u8>,
    /// Source address instead of the one the socket would use; must be one
    /// of ours, of the destination's family (canonical).
    pub src: Option<IpAddr>,
    /// Never fragment this datagram locally: too long for the path MTU is
    /// `MessageTooLong` (`IPV6_DONTFRAG`).
    pub dont_fragment: bool,
}

#[derive(Debug)]
pub(crate) struct TxDatagram {
    pub(crate) dst: SocketAddr,
    pub(crate) data: Vec<u8>,
    pub(crate) opts: SendOpts,
}

#[derive(Debug)]
pub(crate) struct UdpSocket {
    pub(crate) ends: Ends,
    /// `SO_BROADCAST`.
    pub(crate) broadcast: bool,
    /// `IP_MTU_DISCOVER`.
    pub(crate) pmtu_discovery: super::PmtuDiscovery,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS`.
    pub(crate) hop_limit: Option<u8>,
    /// `IP_TOS`: the TOS byte of IPv4 datagrams.
    pub(crate) tos: u8,
    /// `IPV6_TCLASS`: the traffic class of IPv6 datagrams.
    pub(crate) tclass: u8,
    pub(crate) recv_err: bool,
    pub(crate) rx: VecDeque<Datagram>,
    pub(crate) rx_bytes: usize,
    /// Payload bytes the receive queue may hold (`SO_RCVBUF`).
    pub(crate) rx_limit: usize,
    /// Payload bytes the send queue may hold (`SO_SNDBUF`).
    pub(crate) tx_limit: usize,
    pub(crate) tx: VecDeque<TxDatagram>,
    pub(crate) tx_bytes: usize,
    pub(crate) tx_blocked: bool,
    pub(crate) tx_listed: bool,
    pub(crate) error: Option<SocketError>,
    pub(crate) errqueue: VecDeque<IcmpError>,
    pub(crate) events: u8,
}

impl UdpSocket {
    fn new(family: Family, config: &UdpConfig) -> Self {
        UdpSocket {
            ends: Ends::new(family),
            rx_limit: config.rx_queue_bytes,
            tx_limit: config.tx_queue_bytes,
            broadcast: false,
            pmtu_discovery: super::PmtuDiscovery::Want,
            hop_limit: None,
            tos: 0,
            tclass: 0,
            recv_err: false,
            rx: VecDeque::new(),
            rx_bytes: 0,
            tx: VecDeque::new(),
            tx_bytes: 0,
            tx_blocked: false,
            tx_listed: false,
            error: None,
            errqueue: VecDeque::new(),
            events: 0,
        }
    }

    /// An address as this socket shows it to the program.
    pub(crate) fn present(&self, a: SocketAddr) -> SocketAddr {
        self.ends.present(a)
    }

    /// Whether the socket's family can talk to `a` (canonical).
    pub(crate) fn can_reach(&self, a: &SocketAddr) -> bool {
        self.ends.can_reach(a)
    }
}

impl Endpoint for UdpSocket {
    fn ends(&self) -> &Ends {
        &self.ends
    }

    fn ends_mut(&mut self) -> &mut Ends {
        &mut self.ends
    }
}

/// The table of UDP sockets.
pub(crate) type UdpTable = SocketTable<UdpSocket, UdpConfig>;

impl UdpTable {
    pub(crate) fn udp(config: UdpConfig) -> Self {
        SocketTable::new(Proto::Udp, config)
    }

    pub(crate) fn open(&mut self, family: Family) -> SocketHandle {
        let s = UdpSocket::new(family, &self.config);
        self.insert(s)
    }

    pub(crate) fn close(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        self.get(h)?;
        self.remove(h.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use super::super::tests::TestNic;
    use super::super::{Config, Family, Interface, Ipv4Cidr, Ipv6Cidr, SendOpts, SocketError};
    use crate::time::Instant;
    use crate::wire::checksum::{ChecksumMode, PseudoHeader};
    use crate::wire::{
        EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket,
        UdpRepr,
    };

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn us6() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }

    fn peer6() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }

    fn iface(loopback: bool) -> Interface {
        let mut c = Config::new(MAC);
        c.ipv4 = Some(Ipv4Cidr::new(US4, 24));
        c.ipv6 = vec![Ipv6Cidr::new(us6(), 64)];
        c.loopback = loopback;
        Interface::new(c)
    }

    /// A UDP datagram from the peer with the given TTL / hop limit and TOS
    /// byte / traffic class, in a frame.
    fn frame(src: SocketAddr, dst: SocketAddr, hop_limit: u8, tc: u8, data: &[u8]) -> Vec<u8> {
        let (ph, hl) = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (PseudoHeader::V4(s, d), 20),
            (IpAddr::V6(s), IpAddr::V6(d)) => (PseudoHeader::V6(s, d), 40),
            _ => unreachable!(),
        };
        let udp = UdpRepr {
            src_port: src.port(),
            dst_port: core::num::NonZeroU16::new(dst.port()).unwrap(),
        };
        let l4 = udp.buffer_len(data.len());
        let mut f = vec![0u8; 14 + hl + l4];
        let ethertype = if src.is_ipv4() {
            EtherType::Ipv4
        } else {
            EtherType::Ipv6
        };
        EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: MAC,
            ethertype,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = Ipv4Packet::new_unchecked(&mut f[14..]);
                Ipv4Repr {
                    src_addr: s,
                    dst_addr: d,
                    protocol: 17,
                    payload_len: l4,
                    hop_limit,
                }
                .emit(&mut p, ChecksumMode::Compute);
                p.set_dscp_ecn(tc);
                p.fill_checksum(ChecksumMode::Compute);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = Ipv6Packet::new_unchecked(&mut f[14..]);
                Ipv6Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: 17,
                    payload_len: l4,
                    hop_limit,
                }
                .emit(&mut p);
                p.set_traffic_class(tc);
            }
            _ => unreachable!(),
        }
        udp.emit(
            &mut UdpPacket::new_unchecked(&mut f[14 + hl..]),
            &ph,
            data,
            ChecksumMode::Compute,
        );
        f
    }

    fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }

    /// Polls until nothing is due, as a caller's loop would.
    fn settle(i: &mut Interface, nic: &mut TestNic) {
        for _ in 0..100 {
            i.poll(Instant::ZERO, nic);
            if i.poll_at().is_none_or(|t| t > Instant::ZERO) {
                return;
            }
        }
        panic!("the interface never settled");
    }

    #[test]
    fn a_received_datagram_carries_the_hop_limit_and_traffic_class_it_arrived_with() {
        let mut i = iface(false);
        let mut nic = TestNic::new();
        let v4 = i.udp_open(Family::V4);
        i.udp_bind(v4, sa(Ipv4Addr::UNSPECIFIED, 4000)).unwrap();
        let v6 = i.udp_open(Family::V6 { v6only: true });
        i.udp_bind(v6, sa(Ipv6Addr::UNSPECIFIED, 6000)).unwrap();
        nic.rx.push_back(frame(sa(PEER4, 9), sa(US4, 4000), 37, 0xb9, b"four"));
        nic.rx
            .push_back(frame(sa(peer6(), 9), sa(us6(), 6000), 5, 0x2d, b"six"));
        settle(&mut i, &mut nic);

        let d = i.udp_recv(v4).unwrap();
        assert_eq!(
            (d.from, d.to, d.hop_limit, d.traffic_class, &d.data[..]),
            (sa(PEER4, 9), IpAddr::V4(US4), 37, 0xb9, &b"four"[..])
        );
        let mut buf = [0u8; 16];
        let m = i.udp_recv_from(v6, &mut buf).unwrap();
        assert_eq!(
            (m.from, m.to, m.hop_limit, m.traffic_class, &buf[..m.len]),
            (sa(peer6(), 9), IpAddr::V6(us6()), 5, 0x2d, &b"six"[..])
        );
        // A peek shows them too.
        nic.rx.push_back(frame(sa(PEER4, 9), sa(US4, 4000), 1, 0x03, b"x"));
        settle(&mut i, &mut nic);
        let m = i.udp_peek_from(v4, &mut buf).unwrap();
        assert_eq!((m.hop_limit, m.traffic_class), (1, 0x03));
    }

    #[test]
    fn a_datagram_s_options_override_its_socket_s_on_the_wire() {
        let mut i = iface(true);
        let mut nic = TestNic::new();
        let srv = i.udp_open(Family::V6 { v6only: false });
        i.udp_bind(srv, sa(Ipv6Addr::UNSPECIFIED, 5353)).unwrap();
        let cli = i.udp_open(Family::V6 { v6only: false });
        i.udp_set_hop_limit(cli, Some(9)).unwrap();
        i.udp_set_tos(cli, 0x40).unwrap();
        i.udp_set_tclass(cli, 0x48).unwrap();
        let lo6 = sa(Ipv6Addr::LOCALHOST, 5353);
        let lo4 = sa(Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 5353);
        let once = SendOpts {
            hop_limit: Some(2),
            traffic_class: Some(0x28),
            ..SendOpts::default()
        };
        let mut got = Vec::new();
        for (to, opts) in [
            (lo6, once),
            (lo6, SendOpts::default()),
            (lo4, once),
            (lo4, SendOpts::default()),
        ] {
            i.udp_send_with(cli, b"x", Some(to), opts).unwrap();
            settle(&mut i, &mut nic);
            let d = i.udp_recv(srv).unwrap();
            got.push((d.from.is_ipv4(), d.hop_limit, d.traffic_class));
        }
        // IPv6 datagrams take IPV6_TCLASS, IPv4 ones IP_TOS.
        assert_eq!(
            got,
            [(false, 2, 0x28), (false, 9, 0x48), (true, 2, 0x28), (true, 9, 0x40)]
        );
        assert!(nic.tx.is_empty());
    }

    #[test]
    fn a_datagram_s_source_must_be_ours_and_of_its_family() {
        let mut i = iface(true);
        let mut nic = TestNic::new();
        let srv = i.udp_open(Family::V4);
        i.udp_bind(srv, sa(Ipv4Addr::UNSPECIFIED, 53)).unwrap();
        let cli = i.udp_open(Family::V6 { v6only: false });
        let to = Some(sa(Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 53));
        let src = |a: IpAddr| SendOpts {
            src: Some(a),
            ..SendOpts::default()
        };
        let other: IpAddr = Ipv4Addr::new(127, 9, 9, 9).into();
        i.udp_send_with(cli, b"x", to, src(other.to_canonical())).unwrap();
        settle(&mut i, &mut nic);
        assert_eq!(i.udp_recv(srv).unwrap().from.ip(), other);
        // Given mapped, as an IPv6 socket's program gives it.
        i.udp_send_with(cli, b"x", to, src(Ipv4Addr::new(127, 0, 0, 7).to_ipv6_mapped().into()))
            .unwrap();
        settle(&mut i, &mut nic);
        assert_eq!(
            i.udp_recv(srv).unwrap().from.ip(),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7))
        );
        assert_eq!(
            i.udp_send_with(cli, b"x", to, src(PEER4.into())),
            Err(SocketError::NetworkUnreachable)
        );
        assert_eq!(
            i.udp_send_with(cli, b"x", to, src(us6().into())),
            Err(SocketError::InvalidArgument)
        );
        let to6 = Some(sa(Ipv6Addr::LOCALHOST, 53));
        assert_eq!(
            i.udp_send_with(cli, b"x", to6, src(peer6().into())),
            Err(SocketError::InvalidArgument)
        );
    }

    #[test]
    fn dont_fragment_refuses_what_the_path_mtu_cannot_carry_whole() {
        let mut i = iface(false);
        let s = i.udp_open(Family::V6 { v6only: true });
        let to = Some(sa(peer6(), 9));
        let df = SendOpts {
            dont_fragment: true,
            ..SendOpts::default()
        };
        assert_eq!(i.udp_send_with(s, &[0; 1500], to, df), Err(SocketError::MessageTooLong));
        i.udp_send_with(s, &[0; 1452], to, df).unwrap();
        // Without it, the stack fragments.
        i.udp_send_with(s, &[0; 1500], to, SendOpts::default()).unwrap();
    }
}
