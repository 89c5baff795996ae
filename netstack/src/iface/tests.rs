//! Interface tests over an in-memory device: frames in, frames out, and what
//! a program would see on its sockets.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;
use crate::nic::{Capabilities, ChecksumCaps, RxMeta, TxFull};
use crate::time::Instant;
use crate::wire::checksum::{ChecksumMode, PseudoHeader};
use crate::wire::ndp::{NaFlags, NdpRepr};
use crate::wire::*;

/// A device whose wire is two queues.
#[derive(Debug)]
pub(crate) struct TestNic {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: Vec<(Vec<u8>, TxMeta)>,
    pub caps: Capabilities,
    pub tx_limit: usize,
}

impl TestNic {
    pub fn new() -> Self {
        TestNic {
            rx: VecDeque::new(),
            tx: Vec::new(),
            caps: Capabilities {
                mtu: 1500,
                max_burst: 32,
                checksum: ChecksumCaps::default(),
            },
            tx_limit: usize::MAX,
        }
    }

    fn take(&mut self) -> Vec<Vec<u8>> {
        self.tx.drain(..).map(|(f, _)| f).collect()
    }
}

impl Nic for TestNic {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn mac(&self) -> [u8; 6] {
        US_MAC.0
    }

    fn receive<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, mut f: F) -> usize {
        let mut n = 0;
        while n < max {
            let Some(frame) = self.rx.pop_front() else { break };
            f(&frame, RxMeta::default());
            n += 1;
        }
        n
    }

    fn transmit<F: FnOnce(&mut [u8]) -> TxMeta>(&mut self, len: usize, f: F) -> core::result::Result<(), TxFull> {
        if self.tx.len() >= self.tx_limit {
            return Err(TxFull);
        }
        let mut b = vec![0u8; len];
        let m = f(&mut b);
        self.tx.push((b, m));
        Ok(())
    }

    fn flush(&mut self) {}
}

const US_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const US4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn us6() -> Ipv6Addr {
    "2001:db8::1".parse().unwrap()
}
fn peer6() -> Ipv6Addr {
    "2001:db8::2".parse().unwrap()
}

fn config(mac: EthernetAddress, v4: Ipv4Addr, v6: Ipv6Addr) -> Config {
    let mut c = Config::new(mac);
    c.ipv4 = Some(Ipv4Cidr::new(v4, 24));
    c.ipv4_gateway = Some(Ipv4Addr::new(10, 0, 0, 254));
    c.ipv6 = vec![Ipv6Cidr::new(v6, 64)];
    c
}

fn iface() -> Interface {
    Interface::new(config(US_MAC, US4, us6()))
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn eth(dst: EthernetAddress, src: EthernetAddress, ty: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + payload.len()];
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: ty,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[14..].copy_from_slice(payload);
    f
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let r = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let mut b = vec![0u8; 20 + payload.len()];
    r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]), ChecksumMode::Compute);
    b[20..].copy_from_slice(payload);
    b
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let r = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: nh,
        payload_len: payload.len(),
        hop_limit: hop,
    };
    let mut b = vec![0u8; 40 + payload.len()];
    r.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    b[40..].copy_from_slice(payload);
    b
}

fn udp(src: SocketAddr, dst: SocketAddr, data: &[u8]) -> Vec<u8> {
    let ph = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PseudoHeader::V4(s, d),
        (IpAddr::V6(s), IpAddr::V6(d)) => PseudoHeader::V6(s, d),
        _ => unreachable!(),
    };
    let r = UdpRepr {
        src_port: src.port(),
        dst_port: core::num::NonZeroU16::new(dst.port()).unwrap(),
    };
    let mut b = vec![0u8; r.buffer_len(data.len())];
    r.emit(
        &mut UdpPacket::new_unchecked(&mut b[..]),
        &ph,
        data,
        ChecksumMode::Compute,
    );
    b
}

/// A UDP datagram from the peer, in a frame.
fn udp_frame(src: SocketAddr, dst: SocketAddr, data: &[u8]) -> Vec<u8> {
    let u = udp(src, dst, data);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth(US_MAC, PEER_MAC, EtherType::Ipv4, &ipv4(s, d, 17, &u)),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ipv6(s, d, 17, 64, &u)),
        _ => unreachable!(),
    }
}

fn arp_frame(op: ArpOperation, sha: EthernetAddress, spa: Ipv4Addr, tha: EthernetAddress, tpa: Ipv4Addr) -> Vec<u8> {
    let r = ArpRepr {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
    let dst = if op == ArpOperation::Request {
        EthernetAddress::BROADCAST
    } else {
        tha
    };
    eth(dst, sha, EtherType::Arp, &b)
}

/// Receives `frames` and returns what the interface sent.
fn run(i: &mut Interface, nic: &mut TestNic, now: Instant, frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    nic.rx.extend(frames);
    while !nic.rx.is_empty() {
        i.poll(now, nic);
    }
    i.poll(now, nic);
    nic.take()
}

/// Teaches the interface the peer's addresses so sends go out at once.
fn learn_peer(i: &mut Interface) {
    i.arp_cache().insert_static(Instant::ZERO, PEER4, PEER_MAC);
    i.ndp_cache().insert_static(Instant::ZERO, peer6(), PEER_MAC);
}

struct Parsed {
    eth: EthernetRepr,
    ip_src: IpAddr,
    ip_dst: IpAddr,
    proto: u8,
    hop_limit: u8,
    payload: Vec<u8>,
}

/// Parses an unfragmented IP frame we sent, checking every checksum.
fn parse(f: &[u8]) -> Parsed {
    let e = EthernetFrame::new_checked(f).unwrap();
    let er = EthernetRepr::parse(&e).unwrap();
    match er.ethertype {
        EtherType::Ipv4 => {
            let p = Ipv4Packet::new_checked(e.payload()).unwrap();
            let r = Ipv4Repr::parse(&p, ChecksumMode::Compute).unwrap();
            Parsed {
                eth: er,
                ip_src: r.src_addr.into(),
                ip_dst: r.dst_addr.into(),
                proto: r.protocol,
                hop_limit: r.hop_limit,
                payload: p.payload().to_vec(),
            }
        }
        EtherType::Ipv6 => {
            let p = Ipv6Packet::new_checked(e.payload()).unwrap();
            let r = Ipv6Repr::parse(&p).unwrap();
            Parsed {
                eth: er,
                ip_src: r.src_addr.into(),
                ip_dst: r.dst_addr.into(),
                proto: r.next_header,
                hop_limit: r.hop_limit,
                payload: p.payload().to_vec(),
            }
        }
        t => panic!("not IP: {t:?}"),
    }
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

// ---------------------------------------------------------------------------
// ARP, ICMP, NDP.

#[test]
fn answers_arp_requests_for_our_address_only() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let req = arp_frame(ArpOperation::Request, PEER_MAC, PEER4, EthernetAddress([0; 6]), US4);
    let out = run(&mut i, &mut nic, t(0), vec![req]);
    assert_eq!(out.len(), 1);
    let e = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(
        (e.dst_addr(), e.src_addr(), e.ethertype()),
        (PEER_MAC, US_MAC, EtherType::Arp)
    );
    let r = ArpRepr::parse(&ArpPacket::new_checked(e.payload()).unwrap()).unwrap();
    assert_eq!(
        r,
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: US_MAC,
            source_protocol_addr: US4,
            target_hardware_addr: PEER_MAC,
            target_protocol_addr: PEER4,
        }
    );
    // The requester was learned: a datagram to it leaves without a request.
    let s = i.udp_open(Family::V4);
    i.udp_send_to(s, b"x", Some(sa(PEER4, 9))).unwrap();
    let out = run(&mut i, &mut nic, t(1), vec![]);
    assert_eq!(out.len(), 1);
    assert_eq!(parse(&out[0]).eth.dst_addr, PEER_MAC);

    let other = arp_frame(
        ArpOperation::Request,
        PEER_MAC,
        PEER4,
        EthernetAddress([0; 6]),
        Ipv4Addr::new(10, 0, 0, 3),
    );
    assert!(run(&mut i, &mut nic, t(2), vec![other]).is_empty());
    assert_eq!(i.counters().drop_arp_not_for_us, 1);
    assert_eq!(i.counters().arp_replies_sent, 1);
}

#[test]
fn resolves_with_arp_then_sends() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V4);
    i.udp_send_to(s, b"hello", Some(sa(PEER4, 7))).unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    assert_eq!(out.len(), 1, "an ARP request, the datagram waits");
    let e = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(
        (e.dst_addr(), e.ethertype()),
        (EthernetAddress::BROADCAST, EtherType::Arp)
    );
    let r = ArpRepr::parse(&ArpPacket::new_checked(e.payload()).unwrap()).unwrap();
    assert_eq!(
        (r.operation, r.target_protocol_addr, r.source_protocol_addr),
        (ArpOperation::Request, PEER4, US4)
    );
    let reply = arp_frame(ArpOperation::Reply, PEER_MAC, PEER4, US_MAC, US4);
    let out = run(&mut i, &mut nic, t(5), vec![reply]);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    assert_eq!((p.eth.dst_addr, p.ip_dst, p.proto), (PEER_MAC, IpAddr::V4(PEER4), 17));
    assert_eq!(&p.payload[8..], b"hello");
}

#[test]
fn replies_to_icmpv4_echo() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let req = Icmpv4Repr::EchoRequest {
        ident: 7,
        seq_no: 3,
        data: b"ping data",
    };
    let mut b = vec![0u8; req.buffer_len()];
    req.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]));
    let f = eth(US_MAC, PEER_MAC, EtherType::Ipv4, &ipv4(PEER4, US4, 1, &b));
    let out = run(&mut i, &mut nic, t(0), vec![f]);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    assert_eq!((p.ip_src, p.ip_dst, p.proto), (IpAddr::V4(US4), IpAddr::V4(PEER4), 1));
    let r = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    assert_eq!(
        r,
        Icmpv4Repr::EchoReply {
            ident: 7,
            seq_no: 3,
            data: b"ping data"
        }
    );
    assert_eq!(i.counters().icmp_echo_replies_sent, 1);
}

#[test]
fn replies_to_icmpv6_echo_and_answers_neighbor_solicitation() {
    let mut i = iface();
    let mut nic = TestNic::new();
    // NS from the peer for our global address, to its solicited-node group.
    let sn = crate::wire::ipv6::addr::solicited_node(&us6());
    let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target_addr: us6(),
        lladdr: Some(PEER_MAC),
    });
    let mut b = vec![0u8; ns.buffer_len()];
    ns.emit(&peer6(), &sn, &mut Icmpv6Packet::new_unchecked(&mut b[..]));
    let f = eth(
        EthernetAddress::from_ipv6_multicast(&sn),
        PEER_MAC,
        EtherType::Ipv6,
        &ipv6(peer6(), sn, 58, 255, &b),
    );
    let out = run(&mut i, &mut nic, t(0), vec![f.clone()]);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    assert_eq!(
        (p.eth.dst_addr, p.ip_src, p.ip_dst, p.hop_limit),
        (PEER_MAC, IpAddr::V6(us6()), IpAddr::V6(peer6()), 255)
    );
    let r = Icmpv6Repr::parse(&us6(), &peer6(), &Icmpv6Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    assert_eq!(
        r,
        Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
            flags: NaFlags {
                router: false,
                solicited: true,
                override_: true
            },
            target_addr: us6(),
            lladdr: Some(US_MAC),
        })
    );
    // Hop limit other than 255: invalid, ignored.
    let bad = eth(
        EthernetAddress::from_ipv6_multicast(&sn),
        PEER_MAC,
        EtherType::Ipv6,
        &ipv6(peer6(), sn, 58, 64, &b),
    );
    assert!(run(&mut i, &mut nic, t(1), vec![bad]).is_empty());
    assert_eq!(i.counters().drop_ndp_invalid, 1);

    // Echo: the peer is known now (STALE), the reply goes straight out.
    let req = Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 2,
        data: b"v6 ping",
    };
    let mut b = vec![0u8; req.buffer_len()];
    req.emit(&peer6(), &us6(), &mut Icmpv6Packet::new_unchecked(&mut b[..]));
    let f = eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ipv6(peer6(), us6(), 58, 64, &b));
    let out = run(&mut i, &mut nic, t(2), vec![f]);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let r = Icmpv6Repr::parse(&us6(), &peer6(), &Icmpv6Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    assert_eq!(
        r,
        Icmpv6Repr::EchoReply {
            ident: 1,
            seq_no: 2,
            data: b"v6 ping"
        }
    );
}

#[test]
fn link_local_address_is_derived_from_mac() {
    let i = iface();
    assert_eq!(i.ipv6_link_local(), "fe80::ff:fe00:1".parse::<Ipv6Addr>().unwrap());
    assert!(i.has_ipv6(i.ipv6_link_local()));
}

#[test]
fn port_unreachable_is_rate_limited() {
    let mut c = config(US_MAC, US4, us6());
    c.icmp_error_burst = 3;
    c.icmp_error_rate = 1;
    let mut i = Interface::new(c);
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let frames: Vec<_> = (0..10)
        .map(|k| udp_frame(sa(PEER4, 1000 + k), sa(US4, 9999), b"knock"))
        .collect();
    let out = run(&mut i, &mut nic, t(0), frames);
    assert_eq!(out.len(), 3);
    let p = parse(&out[0]);
    let r = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    let Icmpv4Repr::DstUnreachable { code, data, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(code, icmpv4::unreachable::PORT);
    // The quote starts with the offending IP header.
    let q = Ipv4Packet::new_unchecked(data);
    assert_eq!((q.src_addr(), q.dst_addr(), q.protocol()), (PEER4, US4, 17));
    assert_eq!(i.counters().icmp_errors_rate_limited, 7);
    assert_eq!(i.counters().drop_udp_no_socket, 10);
    // A second later one token has come back.
    let out = run(
        &mut i,
        &mut nic,
        t(1000),
        vec![udp_frame(sa(PEER4, 1), sa(US4, 9999), b"x")],
    );
    assert_eq!(out.len(), 1);
    // Never about broadcasts.
    let bc = udp_frame(sa(PEER4, 1), sa(Ipv4Addr::new(10, 0, 0, 255), 9999), b"x");
    assert!(run(&mut i, &mut nic, t(5000), vec![bc]).is_empty());
}

#[test]
fn ipv6_port_unreachable() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let out = run(
        &mut i,
        &mut nic,
        t(0),
        vec![udp_frame(sa(peer6(), 5), sa(us6(), 6), b"x")],
    );
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let r = Icmpv6Repr::parse(&us6(), &peer6(), &Icmpv6Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    assert!(matches!(r, Icmpv6Repr::DstUnreachable { code: 4, .. }), "{r:?}");
}

// ---------------------------------------------------------------------------
// UDP sockets.

#[test]
fn udp_receive_and_reply() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    assert_eq!(i.udp_bind(s, sa(US4, 5000)).unwrap(), sa(US4, 5000));
    run(
        &mut i,
        &mut nic,
        t(0),
        vec![udp_frame(sa(PEER4, 4000), sa(US4, 5000), b"question")],
    );
    let ev: Vec<_> = i.drain_events().collect();
    assert_eq!(
        ev,
        vec![SocketEvent {
            handle: s,
            readable: true,
            writable: false,
            error: false
        }]
    );
    let mut buf = [0u8; 64];
    let m = i.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!(
        (&buf[..m.len], m.from, m.to),
        (&b"question"[..], sa(PEER4, 4000), IpAddr::V4(US4))
    );
    assert_eq!(i.udp_recv_from(s, &mut buf).unwrap_err(), SocketError::WouldBlock);
    i.udp_send_to(s, b"answer", Some(m.from)).unwrap();
    let out = run(&mut i, &mut nic, t(1), vec![]);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let u = UdpPacket::new_checked(&p.payload[..]).unwrap();
    let ph = PseudoHeader::V4(US4, PEER4);
    UdpRepr::parse(&u, &ph, ChecksumMode::Compute).unwrap();
    assert_eq!((u.src_port(), u.dst_port(), u.payload()), (5000, 4000, &b"answer"[..]));
    assert_eq!(i.counters().udp_tx_datagrams, 1);
}

#[test]
fn udp_truncates_like_linux() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V4);
    i.udp_bind(s, sa(Ipv4Addr::UNSPECIFIED, 53)).unwrap();
    run(
        &mut i,
        &mut nic,
        t(0),
        vec![udp_frame(sa(PEER4, 1), sa(US4, 53), b"0123456789")],
    );
    let mut small = [0u8; 4];
    let peeked = i.udp_peek_from(s, &mut small).unwrap();
    assert_eq!(i.udp_peek_len(s).unwrap(), Some(10));
    let m = i.udp_recv_from(s, &mut small).unwrap();
    assert_eq!(peeked, m);
    assert_eq!((m.len, m.datagram_len, &small[..]), (4, 10, &b"0123"[..]));
}

#[test]
fn dual_stack_socket_sees_mapped_ipv4() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V6 { v6only: false });
    i.udp_bind(s, sa(Ipv6Addr::UNSPECIFIED, 7000)).unwrap();
    run(
        &mut i,
        &mut nic,
        t(0),
        vec![udp_frame(sa(PEER4, 1234), sa(US4, 7000), b"v4")],
    );
    run(
        &mut i,
        &mut nic,
        t(0),
        vec![udp_frame(sa(peer6(), 1234), sa(us6(), 7000), b"v6")],
    );
    let mut buf = [0u8; 8];
    let m = i.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!(m.from, sa(PEER4.to_ipv6_mapped(), 1234));
    let m = i.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!(m.from, sa(peer6(), 1234));
    // An IPv4 socket on the same port conflicts with the dual-stack one...
    let v4 = i.udp_open(Family::V4);
    assert_eq!(
        i.udp_bind(v4, sa(Ipv4Addr::UNSPECIFIED, 7000)).unwrap_err(),
        SocketError::AddrInUse
    );
    // ...but not with a v6-only one.
    let v6only = i.udp_open(Family::V6 { v6only: true });
    i.udp_bind(v6only, sa(Ipv6Addr::UNSPECIFIED, 7001)).unwrap();
    i.udp_bind(v4, sa(Ipv4Addr::UNSPECIFIED, 7001)).unwrap();
}

#[test]
fn bind_conflicts_follow_linux() {
    let mut i = iface();
    let a = i.udp_open(Family::V4);
    let b = i.udp_open(Family::V4);
    i.udp_bind(a, sa(Ipv4Addr::UNSPECIFIED, 8000)).unwrap();
    // Wildcard and specific overlap.
    assert_eq!(i.udp_bind(b, sa(US4, 8000)).unwrap_err(), SocketError::AddrInUse);
    // Not our address.
    assert_eq!(
        i.udp_bind(b, sa(Ipv4Addr::new(10, 9, 9, 9), 8001)).unwrap_err(),
        SocketError::AddrNotAvailable
    );
    // Bound twice.
    assert_eq!(i.udp_bind(a, sa(US4, 8002)).unwrap_err(), SocketError::InvalidState);
    // SO_REUSEADDR on one side only: still a conflict; on both: shared.
    let c = i.udp_open(Family::V4);
    let d = i.udp_open(Family::V4);
    i.udp_set_reuse_addr(c, true).unwrap();
    i.udp_bind(c, sa(Ipv4Addr::UNSPECIFIED, 8100)).unwrap();
    assert_eq!(
        i.udp_bind(d, sa(Ipv4Addr::UNSPECIFIED, 8100)).unwrap_err(),
        SocketError::AddrInUse
    );
    i.udp_set_reuse_addr(d, true).unwrap();
    i.udp_bind(d, sa(Ipv4Addr::UNSPECIFIED, 8100)).unwrap();
    // SO_REUSEPORT on both.
    let e = i.udp_open(Family::V4);
    let f = i.udp_open(Family::V4);
    i.udp_set_reuse_port(e, true).unwrap();
    i.udp_set_reuse_port(f, true).unwrap();
    i.udp_bind(e, sa(US4, 8200)).unwrap();
    i.udp_bind(f, sa(US4, 8200)).unwrap();
    // ...but only between sockets of the same owner.
    let other_user = i.udp_open(Family::V4);
    i.udp_set_reuse_port(other_user, true).unwrap();
    i.udp_set_owner(other_user, 1000).unwrap();
    assert_eq!(
        i.udp_bind(other_user, sa(US4, 8200)).unwrap_err(),
        SocketError::AddrInUse
    );
    // Closing frees the port.
    i.udp_close(a).unwrap();
    i.udp_bind(b, sa(US4, 8000)).unwrap();
    // A closed handle stays dead even when its slot is reused.
    let g = i.udp_open(Family::V4);
    assert_ne!(g, a);
    assert_eq!(i.udp_local_addr(a).unwrap_err(), SocketError::BadHandle);
    // Wrong family.
    let h = i.udp_open(Family::V4);
    assert_eq!(i.udp_bind(h, sa(us6(), 1)).unwrap_err(), SocketError::AddressFamily);
}

#[test]
fn reuseport_spreads_flows_and_keeps_each_flow_on_one_socket() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let socks: Vec<_> = (0..4)
        .map(|_| {
            let s = i.udp_open(Family::V4);
            i.udp_set_reuse_port(s, true).unwrap();
            i.udp_bind(s, sa(Ipv4Addr::UNSPECIFIED, 9000)).unwrap();
            s
        })
        .collect();
    let frames: Vec<_> = (0..64)
        .map(|k| udp_frame(sa(PEER4, 2000 + k), sa(US4, 9000), b"x"))
        .collect();
    run(&mut i, &mut nic, t(0), frames.clone());
    let counts: Vec<usize> = socks.iter().map(|&s| i.udp.get(s).unwrap().rx.len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 64);
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    run(&mut i, &mut nic, t(0), frames);
    let again: Vec<usize> = socks.iter().map(|&s| i.udp.get(s).unwrap().rx.len()).collect();
    assert_eq!(again, counts.iter().map(|c| c * 2).collect::<Vec<_>>());
}

#[test]
fn ephemeral_ports_are_distinct_and_in_range() {
    let mut c = config(US_MAC, US4, us6());
    c.udp.ephemeral_ports = (40000, 40009);
    let mut i = Interface::new(c);
    let mut ports = Vec::new();
    for _ in 0..10 {
        let s = i.udp_open(Family::V4);
        let a = i.udp_bind(s, sa(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        assert!((40000..=40009).contains(&a.port()));
        ports.push(a.port());
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 10);
    let s = i.udp_open(Family::V4);
    assert_eq!(
        i.udp_bind(s, sa(Ipv4Addr::UNSPECIFIED, 0)).unwrap_err(),
        SocketError::AddrInUse
    );
    // send_to on an unbound socket binds it implicitly; here nothing is left.
    assert_eq!(
        i.udp_send_to(s, b"x", Some(sa(PEER4, 1))).unwrap_err(),
        SocketError::AddrInUse
    );
}

#[test]
fn connected_socket_filters_and_wins() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let wild = i.udp_open(Family::V4);
    i.udp_set_reuse_addr(wild, true).unwrap();
    i.udp_bind(wild, sa(Ipv4Addr::UNSPECIFIED, 6000)).unwrap();
    let conn = i.udp_open(Family::V4);
    i.udp_set_reuse_addr(conn, true).unwrap();
    i.udp_bind(conn, sa(Ipv4Addr::UNSPECIFIED, 6000)).unwrap();
    i.udp_connect(conn, sa(PEER4, 53)).unwrap();
    assert_eq!(i.udp_local_addr(conn).unwrap(), Some(sa(US4, 6000)));
    assert_eq!(i.udp_peer_addr(conn).unwrap(), Some(sa(PEER4, 53)));
    run(
        &mut i,
        &mut nic,
        t(0),
        vec![
            udp_frame(sa(PEER4, 53), sa(US4, 6000), b"for conn"),
            udp_frame(sa(PEER4, 54), sa(US4, 6000), b"for wild"),
        ],
    );
    assert_eq!(i.udp_recv(conn).unwrap().data, b"for conn");
    assert_eq!(i.udp_recv(wild).unwrap().data, b"for wild");
    assert!(i.udp_recv(conn).is_err() && i.udp_recv(wild).is_err());
    // Without an address a connected socket sends to its peer; an
    // unconnected one cannot.
    assert_eq!(
        i.udp_send_to(wild, b"x", None).unwrap_err(),
        SocketError::DestinationRequired
    );
    learn_peer(&mut i);
    i.udp_send_to(conn, b"x", None).unwrap();
    let out = run(&mut i, &mut nic, t(1), vec![]);
    let p = parse(&out[0]);
    assert_eq!(p.ip_dst, IpAddr::V4(PEER4));
    // Disconnecting forgets the peer and the address connect picked.
    i.udp_disconnect(conn).unwrap();
    assert_eq!(i.udp_peer_addr(conn).unwrap(), None);
    assert_eq!(i.udp_local_addr(conn).unwrap(), Some(sa(Ipv4Addr::UNSPECIFIED, 6000)));
    run(
        &mut i,
        &mut nic,
        t(2),
        vec![udp_frame(sa(PEER4, 99), sa(US4, 6000), b"anyone")],
    );
    assert_eq!(
        i.udp_recv(conn).unwrap().data,
        b"anyone",
        "the most recently bound wildcard socket"
    );
}

#[test]
fn receive_queue_is_bounded() {
    let mut c = config(US_MAC, US4, us6());
    c.udp.rx_queue_datagrams = 3;
    let mut i = Interface::new(c);
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V4);
    i.udp_bind(s, sa(US4, 1)).unwrap();
    let frames: Vec<_> = (0..5).map(|_| udp_frame(sa(PEER4, 2), sa(US4, 1), b"x")).collect();
    run(&mut i, &mut nic, t(0), frames);
    assert_eq!(i.counters().drop_udp_queue_full, 2);
    assert_eq!(i.counters().udp_rx_datagrams, 3);
}

#[test]
fn send_queue_blocks_then_reports_writable() {
    let mut c = config(US_MAC, US4, us6());
    c.udp.tx_queue_datagrams = 2;
    let mut i = Interface::new(c);
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    i.udp_send_to(s, b"1", Some(sa(PEER4, 1))).unwrap();
    i.udp_send_to(s, b"2", Some(sa(PEER4, 1))).unwrap();
    assert_eq!(
        i.udp_send_to(s, b"3", Some(sa(PEER4, 1))).unwrap_err(),
        SocketError::WouldBlock
    );
    let out = run(&mut i, &mut nic, t(0), vec![]);
    assert_eq!(out.len(), 2);
    let ev: Vec<_> = i.drain_events().collect();
    assert_eq!(
        ev,
        vec![SocketEvent {
            handle: s,
            readable: false,
            writable: true,
            error: false
        }]
    );
}

#[test]
fn send_errors() {
    let mut c = config(US_MAC, US4, us6());
    c.ipv4_gateway = None;
    let mut i = Interface::new(c);
    let s = i.udp_open(Family::V4);
    assert_eq!(
        i.udp_send_to(s, b"x", Some(sa(Ipv4Addr::new(8, 8, 8, 8), 53)))
            .unwrap_err(),
        SocketError::NetworkUnreachable
    );
    assert_eq!(
        i.udp_send_to(s, &vec![0; 65508], Some(sa(PEER4, 53))).unwrap_err(),
        SocketError::MessageTooLong
    );
    assert_eq!(
        i.udp_send_to(s, b"x", Some(sa(PEER4, 0))).unwrap_err(),
        SocketError::InvalidArgument
    );
    assert_eq!(
        i.udp_send_to(s, b"x", Some(sa(peer6(), 1))).unwrap_err(),
        SocketError::AddressFamily
    );
    // Broadcast needs SO_BROADCAST.
    let bc = sa(Ipv4Addr::new(10, 0, 0, 255), 67);
    assert_eq!(
        i.udp_send_to(s, b"x", Some(bc)).unwrap_err(),
        SocketError::PermissionDenied
    );
    assert_eq!(i.udp_connect(s, bc).unwrap_err(), SocketError::PermissionDenied);
    i.udp_set_broadcast(s, true).unwrap();
    i.udp_send_to(s, b"x", Some(bc)).unwrap();
    let mut nic = TestNic::new();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    assert_eq!(parse(&out[0]).eth.dst_addr, EthernetAddress::BROADCAST);
}

// ---------------------------------------------------------------------------
// ICMP errors to sockets, path MTU.

fn icmpv4_error(repr: Icmpv4Repr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]));
    eth(US_MAC, PEER_MAC, EtherType::Ipv4, &ipv4(PEER4, US4, 1, &b))
}

#[test]
fn port_unreachable_reaches_connected_socket() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    i.udp_connect(s, sa(PEER4, 53)).unwrap();
    i.udp_set_recv_err(s, true).unwrap();
    i.udp_send_to(s, b"query", None).unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    let sent = &out[0][14..];
    let err = icmpv4_error(Icmpv4Repr::DstUnreachable {
        code: 3,
        next_hop_mtu: 0,
        data: &sent[..28],
    });
    run(&mut i, &mut nic, t(1), vec![err]);
    let ev: Vec<_> = i.drain_events().collect();
    assert_eq!(
        ev,
        vec![SocketEvent {
            handle: s,
            readable: false,
            writable: false,
            error: true
        }]
    );
    let q = i.udp_recv_error(s).unwrap().unwrap();
    assert_eq!(
        (q.kind, q.reporter, q.dst),
        (IcmpErrorKind::PortUnreachable, IpAddr::V4(PEER4), sa(PEER4, 53))
    );
    // Like Linux: the next call returns ECONNREFUSED once.
    let mut buf = [0u8; 4];
    assert_eq!(
        i.udp_recv_from(s, &mut buf).unwrap_err(),
        SocketError::ConnectionRefused
    );
    assert_eq!(i.udp_recv_from(s, &mut buf).unwrap_err(), SocketError::WouldBlock);
    // An error about a port nobody uses is counted and dropped.
    let mut other = sent[..28].to_vec();
    other[20] ^= 0xff;
    run(
        &mut i,
        &mut nic,
        t(2),
        vec![icmpv4_error(Icmpv4Repr::DstUnreachable {
            code: 3,
            next_hop_mtu: 0,
            data: &other,
        })],
    );
    assert_eq!(i.counters().drop_icmp_error_no_socket, 1);
}

#[test]
fn frag_needed_lowers_path_mtu_and_later_datagrams_fragment() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    i.udp_connect(s, sa(PEER4, 9)).unwrap();
    i.udp_send_to(s, &[7u8; 1400], None).unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    assert_eq!(out.len(), 1);
    assert!(Ipv4Packet::new_checked(&out[0][14..]).unwrap().dont_frag());
    let err = icmpv4_error(Icmpv4Repr::DstUnreachable {
        code: 4,
        next_hop_mtu: 1000,
        data: &out[0][14..14 + 28],
    });
    run(&mut i, &mut nic, t(1), vec![err]);
    assert_eq!(i.path_mtu(t(1), IpAddr::V4(PEER4)), 1000);
    // Linux (IP_PMTUDISC_WANT) reports EMSGSIZE once on a connected socket.
    assert_eq!(
        i.udp_send_to(s, &[7u8; 1400], None).unwrap_err(),
        SocketError::MessageTooLong
    );
    i.udp_send_to(s, &[7u8; 1400], None).unwrap();
    let out = run(&mut i, &mut nic, t(2), vec![]);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|f| f.len() - 14 <= 1000));
    // Ten minutes later the path MTU is forgotten.
    assert_eq!(i.path_mtu(t(601_000), IpAddr::V4(PEER4)), 1500);
}

#[test]
fn failed_resolution_reports_host_unreachable() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V4);
    i.udp_connect(s, sa(PEER4, 9)).unwrap();
    // A soft error: Linux reports it only with IP_RECVERR.
    i.udp_set_recv_err(s, true).unwrap();
    let quiet = i.udp_open(Family::V4);
    i.udp_connect(quiet, sa(PEER4, 10)).unwrap();
    i.udp_send_to(quiet, b"anyone?", None).unwrap();
    i.udp_send_to(s, b"anyone?", None).unwrap();
    let mut requests = 0;
    for ms in (0..5000).step_by(100) {
        requests += run(&mut i, &mut nic, t(ms), vec![]).len();
    }
    assert_eq!(requests, 3, "three ARP requests");
    assert_eq!(i.udp_take_error(s).unwrap(), Some(SocketError::HostUnreachable));
    assert_eq!(
        i.udp_recv_error(s).unwrap().unwrap().kind,
        IcmpErrorKind::HostUnreachable
    );
    assert_eq!(i.udp_take_error(quiet).unwrap(), None);
    assert_eq!(i.counters().drop_tx_neighbor, 2);
}

// ---------------------------------------------------------------------------
// Fragmentation and reassembly, end to end between two interfaces.

fn pair() -> (Interface, TestNic, Interface, TestNic) {
    let a = Interface::new(config(US_MAC, US4, us6()));
    let b = Interface::new(config(PEER_MAC, PEER4, peer6()));
    (a, TestNic::new(), b, TestNic::new())
}

/// Runs both ends, moving frames across, until nothing moves.
fn settle(a: &mut Interface, na: &mut TestNic, b: &mut Interface, nb: &mut TestNic, now: Instant) {
    for _ in 0..20 {
        a.poll(now, na);
        b.poll(now, nb);
        let ab: Vec<_> = na.take();
        let ba: Vec<_> = nb.take();
        if ab.is_empty() && ba.is_empty() {
            return;
        }
        nb.rx.extend(ab);
        na.rx.extend(ba);
    }
    panic!("did not settle");
}

#[test]
fn large_datagrams_fragment_and_reassemble_v4_and_v6() {
    let (mut a, mut na, mut b, mut nb) = pair();
    let rx4 = b.udp_open(Family::V4);
    b.udp_bind(rx4, sa(PEER4, 4444)).unwrap();
    let rx6 = b.udp_open(Family::V6 { v6only: true });
    b.udp_bind(rx6, sa(peer6(), 6666)).unwrap();
    let tx = a.udp_open(Family::V6 { v6only: false });
    let big: Vec<u8> = (0..20_000u32).map(|k| (k * 7) as u8).collect();
    a.udp_send_to(tx, &big, Some(sa(PEER4.to_ipv6_mapped(), 4444))).unwrap();
    a.udp_send_to(tx, &big, Some(sa(peer6(), 6666))).unwrap();
    settle(&mut a, &mut na, &mut b, &mut nb, t(0));
    let d = b.udp_recv(rx4).unwrap();
    assert_eq!(d.data, big);
    assert_eq!(d.from.ip(), IpAddr::V4(US4));
    let d = b.udp_recv(rx6).unwrap();
    assert_eq!(d.data, big);
    assert_eq!(b.counters().ipv4_reassembled, 1);
    assert_eq!(b.counters().ipv6_reassembled, 1);
    // A 20000-byte ping both ways: reassembled, answered, fragmented.
    let req = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: &big,
    };
    let mut m = vec![0u8; req.buffer_len()];
    req.emit(&mut Icmpv4Packet::new_unchecked(&mut m[..]));
    a.output_ip(
        t(1),
        super::egress::IpOut {
            src: IpAddr::V4(US4),
            dst: IpAddr::V4(PEER4),
            proto: 1,
            l4_len: m.len(),
            dont_frag: false,
            hop_limit: 64,
            link: None,
        },
        |buf, _| buf.copy_from_slice(&m),
    )
    .unwrap();
    settle(&mut a, &mut na, &mut b, &mut nb, t(1));
    assert_eq!(b.counters().icmp_echo_replies_sent, 1);
    assert_eq!(a.counters().ipv4_reassembled, 1);
}

fn v4_fragment(ident: u16, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let mut ip = ipv4(PEER4, US4, 17, data);
    let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
    p.set_ident(ident);
    p.set_frag(false, more, offset);
    p.fill_checksum(ChecksumMode::Compute);
    eth(US_MAC, PEER_MAC, EtherType::Ipv4, &ip)
}

#[test]
fn overlapping_fragments_are_dropped() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    i.udp_bind(s, sa(US4, 77)).unwrap();
    let whole = udp(sa(PEER4, 1), sa(US4, 77), &[0x55; 40]);
    let frames = vec![
        v4_fragment(9, 0, true, &whole[..24]),
        // Overlaps bytes 16..24 with different content.
        v4_fragment(9, 16, true, &[0xaa; 16]),
        v4_fragment(9, 24, false, &whole[24..]),
    ];
    run(&mut i, &mut nic, t(0), frames);
    assert!(i.udp_recv(s).is_err());
    assert!(i.counters().drop_ipv4_fragment >= 1);
    assert_eq!(i.reassembly_v4_stats().overlap, 1);
}

#[test]
fn fragments_beyond_64k_are_dropped() {
    let mut i = iface();
    let mut nic = TestNic::new();
    // Offset 65528 plus 16 bytes ends past 65535; offset 65496 plus 24
    // ends past 65515, the most an IPv4 datagram carries after its header.
    let frames = vec![
        v4_fragment(3, 65528, false, &[0; 16]),
        v4_fragment(4, 65496, false, &[0; 24]),
    ];
    run(&mut i, &mut nic, t(0), frames);
    assert_eq!(i.counters().drop_ipv4_fragment, 2);
    assert_eq!(i.reassembly_v4_stats().too_long, 2);
    // IPv6 likewise.
    let mut fh = [0u8; 8];
    Ipv6FragmentHeader {
        next_header: 17,
        offset: 65528,
        more_frags: false,
        ident: 1,
    }
    .emit(&mut fh);
    let mut payload = fh.to_vec();
    payload.extend_from_slice(&[0; 16]);
    let f = eth(
        US_MAC,
        PEER_MAC,
        EtherType::Ipv6,
        &ipv6(peer6(), us6(), 44, 64, &payload),
    );
    run(&mut i, &mut nic, t(0), vec![f]);
    assert_eq!(i.counters().drop_ipv6_fragment, 1);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V6 { v6only: true });
    i.udp_bind(s, sa(us6(), 500)).unwrap();
    let u = udp(sa(peer6(), 1), sa(us6(), 500), b"through options");
    // Hop-by-hop (PadN) -> destination options (PadN) -> UDP.
    let mut p = vec![60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    p.extend_from_slice(&u);
    let f = eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ipv6(peer6(), us6(), 0, 64, &p));
    run(&mut i, &mut nic, t(0), vec![f]);
    assert_eq!(i.udp_recv(s).unwrap().data, b"through options");
    // Atomic fragment: processed at once.
    let mut p = vec![17, 0, 0, 0, 0, 0, 0, 9];
    p.extend_from_slice(&u);
    let f = eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ipv6(peer6(), us6(), 44, 64, &p));
    run(&mut i, &mut nic, t(0), vec![f]);
    assert_eq!(i.udp_recv(s).unwrap().data, b"through options");
    // Length that would wrap: dropped and counted.
    let mut p = vec![17, 255, 1, 4, 0, 0, 0, 0];
    p.extend_from_slice(&u);
    let f = eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ipv6(peer6(), us6(), 60, 64, &p));
    run(&mut i, &mut nic, t(0), vec![f]);
    assert_eq!(i.counters().drop_ipv6_malformed, 1);
    // Unknown option whose type says discard.
    let mut p = vec![17, 0, 0x81, 4, 0, 0, 0, 0];
    p.extend_from_slice(&u);
    let f = eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ipv6(peer6(), us6(), 60, 64, &p));
    run(&mut i, &mut nic, t(0), vec![f]);
    assert_eq!(i.counters().drop_ipv6_ext_discard, 1);
}

// ---------------------------------------------------------------------------
// Malformed input and offloads.

#[test]
fn malformed_frames_are_counted_not_fatal() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let good = udp_frame(sa(PEER4, 1), sa(US4, 2), b"x");
    let mut ihl4 = good.clone();
    ihl4[14] = 0x44;
    let mut bad_csum = good.clone();
    bad_csum[14 + 10] ^= 1;
    let mut udp_len = good.clone();
    udp_len[14 + 20 + 5] = 200;
    let mut udp_csum = good.clone();
    udp_csum[14 + 20 + 6] ^= 1;
    let frames = vec![
        vec![1, 2, 3],
        ihl4,
        bad_csum,
        udp_len,
        udp_csum,
        good[..30].to_vec(),
        eth(US_MAC, PEER_MAC, EtherType::Unknown(0x8100), &[0; 40]),
        eth(PEER_MAC, PEER_MAC, EtherType::Ipv4, &[0; 40]),
        eth(US_MAC, PEER_MAC, EtherType::Arp, &[0; 7]),
        eth(US_MAC, PEER_MAC, EtherType::Ipv6, &[0x60; 20]),
    ];
    assert!(run(&mut i, &mut nic, t(0), frames).is_empty());
    let c = i.counters();
    assert_eq!(c.rx_frames, 10);
    assert_eq!(c.drop_eth_truncated, 1);
    assert_eq!(c.drop_ipv4_malformed, 2);
    assert_eq!(c.drop_ipv4_checksum, 1);
    assert_eq!(c.drop_udp_malformed, 1);
    assert_eq!(c.drop_udp_checksum, 1);
    assert_eq!(c.drop_eth_unknown_type, 1);
    assert_eq!(c.drop_eth_not_for_us, 1);
    assert_eq!(c.drop_arp_malformed, 1);
    assert_eq!(c.drop_ipv6_malformed, 1);
}

#[test]
fn random_frames_never_panic() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V6 { v6only: false });
    i.udp_bind(s, sa(Ipv6Addr::UNSPECIFIED, 2)).unwrap();
    let mut rng = Rng(42);
    let seeds = [
        udp_frame(sa(PEER4, 1), sa(US4, 2), b"seed"),
        udp_frame(sa(peer6(), 1), sa(us6(), 2), b"seed"),
        arp_frame(ArpOperation::Request, PEER_MAC, PEER4, EthernetAddress([0; 6]), US4),
        v4_fragment(1, 0, true, &[0; 16]),
    ];
    for k in 0..20_000u64 {
        let mut f = seeds[(k % 4) as usize].clone();
        let flips = 1 + rng.next_u64() % 4;
        for _ in 0..flips {
            let at = (rng.next_u64() % f.len() as u64) as usize;
            f[at] = rng.next_u64() as u8;
        }
        if rng.next_u64().is_multiple_of(8) {
            f.truncate((rng.next_u64() % f.len() as u64) as usize);
        }
        nic.rx.push_back(f);
        i.poll(t(k), &mut nic);
        nic.tx.clear();
        while i.udp_recv(s).is_ok() {}
    }
    let c = *i.counters();
    assert_eq!(c.rx_frames, 20_000);
    // Most mutations are caught by some check; a few still get through.
    assert!(c.udp_rx_datagrams > 0 && c.udp_rx_datagrams < 20_000, "{c:?}");
}

#[test]
fn checksum_offload_is_requested_and_honoured() {
    let mut i = iface();
    let mut nic = TestNic::new();
    nic.caps.checksum = ChecksumCaps {
        ipv4_rx: true,
        ipv4_tx: true,
        l4_rx: true,
        l4_tx: true,
    };
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    i.udp_send_to(s, b"offloaded", Some(sa(PEER4, 53))).unwrap();
    i.poll(t(0), &mut nic);
    let (f, meta) = nic.tx.pop().unwrap();
    assert_eq!(
        meta,
        TxMeta {
            l2_len: 14,
            l3_len: 20,
            ipv4_csum: true,
            l4_csum: Some(crate::nic::L4Proto::Udp)
        }
    );
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(ip.checksum(), 0);
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    let ph = PseudoHeader::V4(US4, PEER4);
    assert_eq!(u.checksum(), ph.sum(17, u.len() as usize).fold());
    // Receive: a frame with a wrong UDP checksum that the device vouched
    // for is accepted (the device is trusted), one it did not is dropped.
    let r = i.udp_open(Family::V4);
    i.udp_bind(r, sa(US4, 3)).unwrap();
    let mut bad = udp_frame(sa(PEER4, 1), sa(US4, 3), b"x");
    bad[14 + 20 + 6] ^= 1;
    i.process_frame(
        t(1),
        &bad,
        RxMeta {
            ipv4_csum_good: true,
            l4_csum_good: true,
        },
        loopback::Origin::Wire,
    );
    assert!(i.udp_recv(r).is_ok());
    i.process_frame(t(1), &bad, RxMeta::default(), loopback::Origin::Wire);
    assert!(i.udp_recv(r).is_err());
}

#[test]
fn device_backpressure_keeps_frames() {
    let mut i = iface();
    let mut nic = TestNic::new();
    nic.tx_limit = 1;
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    for _ in 0..3 {
        i.udp_send_to(s, b"x", Some(sa(PEER4, 1))).unwrap();
    }
    i.poll(t(0), &mut nic);
    assert_eq!(nic.tx.len(), 1);
    assert!(i.poll_at().is_some());
    nic.tx.clear();
    i.poll(t(0), &mut nic);
    nic.tx.clear();
    i.poll(t(0), &mut nic);
    assert_eq!(i.counters().tx_frames, 3);
    assert_eq!(i.counters().udp_tx_datagrams, 3);
}

#[test]
fn tiny_device_mtu_is_floored_not_fatal() {
    let mut i = iface();
    let mut nic = TestNic::new();
    nic.caps.mtu = 10;
    learn_peer(&mut i);
    let s = i.udp_open(Family::V6 { v6only: false });
    i.udp_send_to(s, &[1u8; 300], Some(sa(PEER4.to_ipv6_mapped(), 9)))
        .unwrap();
    i.udp_send_to(s, &[1u8; 3000], Some(sa(peer6(), 9))).unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    let v4: Vec<_> = out.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
    let v6: Vec<_> = out.iter().filter(|f| f[12..14] == [0x86, 0xdd]).collect();
    // 308 bytes of UDP in 48-byte pieces; 3008 bytes in 1232-byte pieces.
    assert_eq!(v4.len(), 7);
    assert!(v4.iter().all(|f| f.len() - 14 <= 68));
    assert_eq!(v6.len(), 3);
    assert!(v6.iter().all(|f| f.len() - 14 <= 1280));
}

#[test]
fn broadcast_reaches_every_wildcard_socket() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let socks: Vec<_> = (0..3)
        .map(|_| {
            let s = i.udp_open(Family::V4);
            i.udp_set_reuse_addr(s, true).unwrap();
            i.udp_bind(s, sa(Ipv4Addr::UNSPECIFIED, 67)).unwrap();
            s
        })
        .collect();
    let specific = i.udp_open(Family::V4);
    i.udp_set_reuse_addr(specific, true).unwrap();
    i.udp_bind(specific, sa(US4, 67)).unwrap();
    let mut f = udp_frame(sa(PEER4, 68), sa(Ipv4Addr::BROADCAST, 67), b"discover");
    f[..6].copy_from_slice(&[0xff; 6]);
    assert!(
        run(&mut i, &mut nic, t(0), vec![f]).is_empty(),
        "no ICMP about broadcasts"
    );
    for s in socks {
        assert_eq!(i.udp_recv(s).unwrap().to, IpAddr::V4(Ipv4Addr::BROADCAST));
    }
    assert!(i.udp_recv(specific).is_err());
}

#[test]
fn packet_too_big_v6_lowers_path_mtu() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V6 { v6only: true });
    i.udp_connect(s, sa(peer6(), 9)).unwrap();
    i.udp_send_to(s, &[1u8; 1400], None).unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    assert_eq!(out.len(), 1);
    let ptb = Icmpv6Repr::PktTooBig {
        mtu: 1280,
        data: &out[0][14..14 + 48],
    };
    let mut b = vec![0u8; ptb.buffer_len()];
    ptb.emit(&peer6(), &us6(), &mut Icmpv6Packet::new_unchecked(&mut b[..]));
    run(
        &mut i,
        &mut nic,
        t(1),
        vec![eth(
            US_MAC,
            PEER_MAC,
            EtherType::Ipv6,
            &ipv6(peer6(), us6(), 58, 64, &b),
        )],
    );
    assert_eq!(i.path_mtu(t(1), IpAddr::V6(peer6())), 1280);
    assert_eq!(
        i.udp_send_to(s, &[1u8; 1400], None).unwrap_err(),
        SocketError::MessageTooLong
    );
    i.udp_send_to(s, &[1u8; 1400], None).unwrap();
    let out = run(&mut i, &mut nic, t(2), vec![]);
    assert_eq!(out.len(), 2);
    assert!(
        out.iter().all(|f| f.len() - 14 <= 1280 && f[14 + 6] == 44),
        "fragment headers"
    );
}

#[test]
fn port_unreachable_for_a_reassembled_datagram_quotes_it_whole() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let whole = udp(sa(PEER4, 1), sa(US4, 4242), &[9; 40]);
    let frames = vec![
        v4_fragment(5, 0, true, &whole[..24]),
        v4_fragment(5, 24, false, &whole[24..]),
    ];
    let out = run(&mut i, &mut nic, t(0), frames);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let r = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    let Icmpv4Repr::DstUnreachable { code: 3, data, .. } = r else {
        panic!("{r:?}")
    };
    let q = Ipv4Packet::new_checked(data).unwrap();
    assert!(!q.is_fragment());
    assert!(q.verify_checksum());
    assert_eq!(q.total_len() as usize, 20 + whole.len());
    assert_eq!(q.payload(), &whole[..]);
}

#[test]
fn ipv6_port_unreachable_for_a_reassembled_datagram_quotes_it_whole() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let whole = udp(sa(peer6(), 1), sa(us6(), 4242), &[9; 40]);
    let frag = |offset: u16, more: bool, data: &[u8]| {
        let mut p = vec![0u8; 8];
        Ipv6FragmentHeader {
            next_header: 17,
            offset,
            more_frags: more,
            ident: 77,
        }
        .emit(&mut p);
        p.extend_from_slice(data);
        eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ipv6(peer6(), us6(), 44, 64, &p))
    };
    let out = run(
        &mut i,
        &mut nic,
        t(0),
        vec![frag(0, true, &whole[..24]), frag(24, false, &whole[24..])],
    );
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let r = Icmpv6Repr::parse(&us6(), &peer6(), &Icmpv6Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    let Icmpv6Repr::DstUnreachable { code: 4, data } = r else {
        panic!("{r:?}")
    };
    let q = Ipv6Packet::new_checked(data).unwrap();
    assert_eq!((q.next_header(), q.payload()), (17, &whole[..]));
}

#[test]
fn unknown_ipv6_next_header_gets_parameter_problem() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let plain = eth(
        US_MAC,
        PEER_MAC,
        EtherType::Ipv6,
        &ipv6(peer6(), us6(), 253, 64, &[0; 8]),
    );
    // After a hop-by-hop header the naming byte is the first of that header.
    let hbh = eth(
        US_MAC,
        PEER_MAC,
        EtherType::Ipv6,
        &ipv6(peer6(), us6(), 0, 64, &[253, 0, 1, 4, 0, 0, 0, 0]),
    );
    let out = run(&mut i, &mut nic, t(0), vec![plain, hbh]);
    assert_eq!(out.len(), 2);
    for (f, want) in out.iter().zip([6u32, 40]) {
        let p = parse(f);
        let r = Icmpv6Repr::parse(&us6(), &peer6(), &Icmpv6Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
        let Icmpv6Repr::ParamProblem { code, pointer, data } = r else {
            panic!("{r:?}")
        };
        assert_eq!((code, pointer), (1, want));
        assert_eq!(data[pointer as usize], 253);
    }
    assert_eq!(i.counters().drop_unknown_protocol, 2);
}

#[test]
fn tcp_segments_go_out_with_payload_in_two_pieces() {
    for offload in [false, true] {
        let mut i = iface();
        let mut nic = TestNic::new();
        nic.caps.checksum = ChecksumCaps {
            ipv4_rx: false,
            ipv4_tx: offload,
            l4_rx: false,
            l4_tx: offload,
        };
        learn_peer(&mut i);
        // The interface learns the device's offloads when it polls it.
        i.poll(t(0), &mut nic);
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 1000,
            ack_number: Some(77),
            window_len: 512,
            timestamp: Some((5, 6)),
            ..Default::default()
        };
        for (src, dst) in [
            (IpAddr::V4(US4), IpAddr::V4(PEER4)),
            (IpAddr::V6(us6()), IpAddr::V6(peer6())),
        ] {
            i.output_tcp(t(0), src, dst, &repr, (b"GET / ", b"HTTP/1.1")).unwrap();
        }
        let out = run(&mut i, &mut nic, t(0), vec![]);
        assert_eq!(out.len(), 2);
        for f in out {
            let (ip_payload, ph) = if f[12..14] == [0x08, 0x00] {
                let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
                assert!(ip.dont_frag());
                (ip.payload().to_vec(), PseudoHeader::V4(US4, PEER4))
            } else {
                let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
                (ip.payload().to_vec(), PseudoHeader::V6(us6(), peer6()))
            };
            let p = TcpPacket::new_checked(&ip_payload[..]).unwrap();
            // Offload covers IPv6 too: the field holds the pseudo-header sum.
            let mode = if offload {
                ChecksumMode::Offload
            } else {
                ChecksumMode::Compute
            };
            let r = TcpRepr::parse(&p, &ph, mode).unwrap();
            assert_eq!(r.payload, b"GET / HTTP/1.1");
            assert_eq!(TcpRepr { payload: &[], ..r }, repr);
            if mode == ChecksumMode::Offload {
                assert_eq!(p.checksum(), ph.sum(6, ip_payload.len()).fold());
            }
        }
    }
}

#[test]
fn socket_buffers_follow_linux() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V4);
    assert_eq!(i.udp_buffer_sizes(s).unwrap(), (212_992, 212_992));
    assert_eq!(i.udp_set_recv_buffer(s, 1000).unwrap(), 2304);
    assert_eq!(i.udp_set_recv_buffer(s, 10_000_000).unwrap(), 425_984);
    assert_eq!(i.udp_set_send_buffer(s, 1).unwrap(), 4608);
    i.udp_set_recv_buffer(s, 1200).unwrap();
    i.udp_bind(s, sa(US4, 1)).unwrap();
    // 2400 bytes of room: two 1000-byte datagrams fit, the third does not.
    let frames: Vec<_> = (0..3)
        .map(|_| udp_frame(sa(PEER4, 2), sa(US4, 1), &[0; 1000]))
        .collect();
    run(&mut i, &mut nic, t(0), frames);
    assert_eq!(i.udp_queued(s).unwrap(), (2000, 0));
    assert_eq!(i.counters().drop_udp_queue_full, 1);
}

#[test]
fn pmtu_discovery_modes() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let dont = i.udp_open(Family::V4);
    i.udp_set_pmtu_discovery(dont, PmtuDiscovery::Dont).unwrap();
    i.udp_set_hop_limit(dont, Some(3)).unwrap();
    i.udp_connect(dont, sa(PEER4, 9)).unwrap();
    let want = i.udp_open(Family::V4);
    i.udp_connect(want, sa(PEER4, 10)).unwrap();
    i.udp_send_to(dont, &[0; 100], None).unwrap();
    i.udp_send_to(want, &[0; 100], None).unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    let ip0 = Ipv4Packet::new_checked(&out[0][14..]).unwrap();
    let ip1 = Ipv4Packet::new_checked(&out[1][14..]).unwrap();
    assert!(!ip0.dont_frag() && ip1.dont_frag());
    assert_eq!((ip0.hop_limit(), ip1.hop_limit()), (3, 64));
    // "Too big" is no error for IP_PMTUDISC_DONT, EMSGSIZE for the default.
    for f in &out {
        let err = icmpv4_error(Icmpv4Repr::DstUnreachable {
            code: 4,
            next_hop_mtu: 576,
            data: &f[14..14 + 28],
        });
        run(&mut i, &mut nic, t(1), vec![err]);
    }
    assert_eq!(i.udp_take_error(dont).unwrap(), None);
    assert_eq!(i.udp_take_error(want).unwrap(), Some(SocketError::MessageTooLong));
    // IP_PMTUDISC_DO: larger than the path MTU fails at once, never fragments.
    let strict = i.udp_open(Family::V6 { v6only: true });
    i.udp_set_pmtu_discovery(strict, PmtuDiscovery::Do).unwrap();
    assert_eq!(
        i.udp_send_to(strict, &[0; 1500], Some(sa(peer6(), 9))).unwrap_err(),
        SocketError::MessageTooLong
    );
    i.udp_send_to(strict, &[0; 1452], Some(sa(peer6(), 9))).unwrap();
    assert_eq!(run(&mut i, &mut nic, t(2), vec![]).len(), 1);
}

#[test]
fn icmp_errors_follow_linux_hard_and_soft() {
    assert_eq!(
        IcmpErrorKind::PortUnreachable.linux_error(),
        (SocketError::ConnectionRefused, true)
    );
    assert_eq!(
        IcmpErrorKind::HostUnreachable.linux_error(),
        (SocketError::HostUnreachable, false)
    );
    assert_eq!(
        IcmpErrorKind::NetUnreachable.linux_error(),
        (SocketError::NetworkUnreachable, false)
    );
    assert_eq!(
        IcmpErrorKind::Other { msg_type: 3, code: 13 }.linux_error(),
        (SocketError::HostUnreachable, true)
    );
    assert_eq!(
        IcmpErrorKind::Other { msg_type: 1, code: 1 }.linux_error(),
        (SocketError::PermissionDenied, true)
    );
    // A soft error on a connected socket without IP_RECVERR: nothing.
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let s = i.udp_open(Family::V4);
    i.udp_connect(s, sa(PEER4, 53)).unwrap();
    i.udp_send_to(s, b"q", None).unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    let err = icmpv4_error(Icmpv4Repr::DstUnreachable {
        code: 1,
        next_hop_mtu: 0,
        data: &out[0][14..14 + 28],
    });
    run(&mut i, &mut nic, t(1), vec![err]);
    assert_eq!(i.udp_take_error(s).unwrap(), None);
    assert_eq!(i.drain_events().count(), 0);
}

// ---------------------------------------------------------------------------
// Two interfaces over the simulator's impaired link.

/// A host for the simulator: an interface with one UDP socket that sends
/// what it is given, a few datagrams per millisecond, and keeps what it
/// receives.
struct SimHost {
    iface: Interface,
    sock: SocketHandle,
    to_send: VecDeque<(Vec<u8>, SocketAddr)>,
    received: Vec<Vec<u8>>,
    next_send: Instant,
}

impl crate::sim::SimNode for SimHost {
    fn poll(&mut self, now: Instant, nic: &mut crate::sim::MemoryNic) {
        if now >= self.next_send {
            for _ in 0..4 {
                let Some((d, to)) = self.to_send.pop_front() else { break };
                match self.iface.udp_send_to(self.sock, &d, Some(to)) {
                    Ok(_) => {}
                    Err(SocketError::WouldBlock) => {
                        self.to_send.push_front((d, to));
                        break;
                    }
                    // Errors from ICMP (e.g. a lost ARP reply): move on.
                    Err(_) => {}
                }
            }
            self.next_send = now + core::time::Duration::from_millis(1);
        }
        loop {
            self.iface.poll(now, nic);
            if nic.rx_len() == 0 {
                break;
            }
        }
        while let Ok(d) = self.iface.udp_recv(self.sock) {
            self.received.push(d.data);
        }
        let _ = self.iface.drain_events().count();
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let send = if self.to_send.is_empty() {
            None
        } else {
            Some(self.next_send)
        };
        [send, self.iface.poll_at()].into_iter().flatten().min()
    }
}

/// Datagram `k`: its number, then bytes only it has, in a size from 1 byte
/// of pattern to several fragments.
fn numbered(k: u32) -> Vec<u8> {
    let len = [1usize, 100, 1472, 1473, 3000, 9000][k as usize % 6];
    let mut d = k.to_be_bytes().to_vec();
    d.extend((0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(k.wrapping_mul(7)) as u8));
    d
}

fn run_sim(seed: u64, link: crate::sim::LinkConfig, v6: bool, n: u32) -> (Vec<Vec<u8>>, Counters) {
    use crate::sim::{MemoryNic, SimNetwork};
    let mut net: SimNetwork<SimHost> = SimNetwork::new(seed);
    net.set_max_steps(5_000_000);
    let host = |mac: EthernetAddress, v4: Ipv4Addr, a6: Ipv6Addr, port: u16| {
        let mut c = config(mac, v4, a6);
        c.seed = seed ^ port as u64;
        let mut iface = Interface::new(c);
        let sock = iface.udp_open(Family::V6 { v6only: false });
        iface.udp_bind(sock, sa(Ipv6Addr::UNSPECIFIED, port)).unwrap();
        SimHost {
            iface,
            sock,
            to_send: VecDeque::new(),
            received: Vec::new(),
            next_send: Instant::ZERO,
        }
    };
    let mut a = host(US_MAC, US4, us6(), 1000);
    let b = host(PEER_MAC, PEER4, peer6(), 2000);
    let dst = if v6 {
        sa(peer6(), 2000)
    } else {
        sa(PEER4.to_ipv6_mapped(), 2000)
    };
    a.to_send.extend((0..n).map(|k| (numbered(k), dst)));
    let ia = net.add_node(a, MemoryNic::new(US_MAC.0));
    let mut nic_b = MemoryNic::new(PEER_MAC.0);
    nic_b.set_queue_limits(usize::MAX, MemoryNic::DEFAULT_QUEUE_LIMIT);
    let ib = net.add_node(b, nic_b);
    net.connect(ia, ib, link);
    net.kick(ia);
    net.run_for(core::time::Duration::from_secs(30)).unwrap();
    assert!(net.node(ia).to_send.is_empty(), "sender finished");
    let b = net.node(ib);
    (b.received.clone(), *b.iface.counters())
}

fn assert_intact(received: &[Vec<u8>]) {
    for d in received {
        let k = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        assert_eq!(d, &numbered(k), "datagram {k} arrived corrupted");
    }
}

#[test]
fn sim_clean_link_delivers_everything_in_order() {
    for v6 in [false, true] {
        let (got, c) = run_sim(1, crate::sim::LinkConfig::default(), v6, 60);
        assert_intact(&got);
        let order: Vec<u32> = got
            .iter()
            .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
            .collect();
        assert_eq!(order, (0..60).collect::<Vec<_>>(), "v6 {v6}");
        assert!(c.ipv4_reassembled + c.ipv6_reassembled >= 30);
    }
}

#[test]
fn sim_impaired_link_never_delivers_corrupted_datagrams() {
    let link = crate::sim::LinkConfig {
        loss: 0.03,
        duplicate: 0.03,
        reorder: 0.1,
        reorder_delay: core::time::Duration::from_micros(300),
        jitter: core::time::Duration::from_micros(50),
        corrupt: 0.05,
        ..Default::default()
    };
    for seed in 1..=4u64 {
        for v6 in [false, true] {
            let (got, c) = run_sim(seed, link, v6, 120);
            assert_intact(&got);
            // Small datagrams mostly get through; fragmented ones lose more.
            assert!(
                got.len() >= 40,
                "seed {seed} v6 {v6}: only {} of 120 ({c:?})",
                got.len()
            );
            // Corrupted frames were caught by checksums, not delivered.
            assert!(
                c.drop_ipv4_checksum + c.drop_udp_checksum > 0,
                "seed {seed} v6 {v6}: {c:?}"
            );
        }
    }
}

#[test]
fn off_link_destinations_go_through_the_gateway() {
    let mut c = config(US_MAC, US4, us6());
    c.ipv6_gateway = Some("fe80::1".parse().unwrap());
    let mut i = Interface::new(c);
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V6 { v6only: false });
    i.udp_send_to(s, b"far", Some(sa(Ipv4Addr::new(8, 8, 8, 8).to_ipv6_mapped(), 53)))
        .unwrap();
    i.udp_send_to(s, b"far", Some(sa("2001:4860::8888".parse::<Ipv6Addr>().unwrap(), 53)))
        .unwrap();
    let out = run(&mut i, &mut nic, t(0), vec![]);
    assert_eq!(out.len(), 2, "one ARP request and one neighbor solicitation");
    let arp = ArpRepr::parse(&ArpPacket::new_checked(&out[0][14..]).unwrap()).unwrap();
    assert_eq!(arp.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 254));
    let p = parse(&out[1]);
    let r = Icmpv6Repr::parse(
        &i.ipv6_link_local(),
        &"ff02::1:ff00:1".parse().unwrap(),
        &Icmpv6Packet::new_checked(&p.payload[..]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        r,
        Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target_addr: "fe80::1".parse().unwrap(),
            lladdr: Some(US_MAC)
        })
    );
    assert_eq!((p.ip_src, p.hop_limit), (IpAddr::V6(i.ipv6_link_local()), 255));
    // The answers release the datagrams, towards the gateway's address.
    let gw_mac = EthernetAddress([2, 0, 0, 0, 0, 0xfe]);
    let arp_reply = arp_frame(ArpOperation::Reply, gw_mac, Ipv4Addr::new(10, 0, 0, 254), US_MAC, US4);
    let na = Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
        flags: NaFlags {
            router: true,
            solicited: true,
            override_: true,
        },
        target_addr: "fe80::1".parse().unwrap(),
        lladdr: Some(gw_mac),
    });
    let gw6: Ipv6Addr = "fe80::1".parse().unwrap();
    let mut b = vec![0u8; na.buffer_len()];
    na.emit(&gw6, &i.ipv6_link_local(), &mut Icmpv6Packet::new_unchecked(&mut b[..]));
    let na_frame = eth(
        US_MAC,
        gw_mac,
        EtherType::Ipv6,
        &ipv6(gw6, i.ipv6_link_local(), 58, 255, &b),
    );
    let out = run(&mut i, &mut nic, t(10), vec![arp_reply, na_frame]);
    assert_eq!(out.len(), 2);
    for f in &out {
        let p = parse(f);
        assert_eq!(p.eth.dst_addr, gw_mac);
        assert_eq!(&p.payload[8..], b"far");
    }
    assert_eq!(
        parse(&out[1]).ip_src,
        IpAddr::V6(us6()),
        "global source for a global destination"
    );
}

#[test]
fn source_routed_and_bad_option_packets_are_dropped() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V4);
    i.udp_bind(s, sa(US4, 2)).unwrap();
    let with_options = |opts: &[u8]| {
        let u = udp(sa(PEER4, 1), sa(US4, 2), b"x");
        let hl = 20 + opts.len();
        let mut ip = ipv4(PEER4, US4, 17, &u);
        ip.splice(20..20, opts.iter().copied());
        let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
        p.set_version_and_header_len(hl as u8);
        p.set_total_len((hl + u.len()) as u16);
        p.fill_checksum(ChecksumMode::Compute);
        eth(US_MAC, PEER_MAC, EtherType::Ipv4, &ip)
    };
    let lsrr = with_options(&[1, 0x83, 7, 4, 10, 0, 0, 3]);
    let bad = with_options(&[0x44, 1, 0, 0]);
    let fine = with_options(&[0x94, 4, 0, 0]);
    run(&mut i, &mut nic, t(0), vec![lsrr, bad, fine]);
    assert_eq!(i.counters().drop_ipv4_source_route, 1);
    assert_eq!(i.counters().drop_ipv4_malformed, 1);
    assert_eq!(i.udp_recv(s).unwrap().data, b"x");
    assert!(i.udp_recv(s).is_err());
}

#[test]
fn incomplete_datagrams_get_time_exceeded() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let whole = udp(sa(PEER4, 1), sa(US4, 4242), &[9; 40]);
    let first = v4_fragment(5, 0, true, &whole[..24]);
    assert!(run(&mut i, &mut nic, t(0), vec![first.clone()]).is_empty());
    // A second datagram whose first fragment never came: no error for it.
    run(&mut i, &mut nic, t(0), vec![v4_fragment(6, 24, false, &whole[24..])]);
    let out = run(&mut i, &mut nic, t(31_000), vec![]);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    assert_eq!(p.ip_dst, IpAddr::V4(PEER4));
    let r = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    assert_eq!(
        r,
        Icmpv4Repr::TimeExceeded {
            code: 1,
            data: &first[14..14 + 28]
        }
    );
    // IPv6, after 60 s.
    let w6 = udp(sa(peer6(), 1), sa(us6(), 4242), &[9; 40]);
    let mut fh = vec![0u8; 8];
    Ipv6FragmentHeader {
        next_header: 17,
        offset: 0,
        more_frags: true,
        ident: 3,
    }
    .emit(&mut fh);
    fh.extend_from_slice(&w6[..24]);
    let ip = ipv6(peer6(), us6(), 44, 64, &fh);
    run(
        &mut i,
        &mut nic,
        t(40_000),
        vec![eth(US_MAC, PEER_MAC, EtherType::Ipv6, &ip)],
    );
    let out = run(&mut i, &mut nic, t(101_000), vec![]);
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let r = Icmpv6Repr::parse(&us6(), &peer6(), &Icmpv6Packet::new_checked(&p.payload[..]).unwrap()).unwrap();
    assert_eq!(r, Icmpv6Repr::TimeExceeded { code: 1, data: &ip[..] });
    // A completed datagram leaves nothing behind.
    run(
        &mut i,
        &mut nic,
        t(102_000),
        vec![
            v4_fragment(7, 0, true, &whole[..24]),
            v4_fragment(7, 24, false, &whole[24..]),
        ],
    );
    assert!(run(&mut i, &mut nic, t(200_000), vec![]).iter().all(|f| {
        let p = parse(f);
        p.proto != 1 || Icmpv4Packet::new_checked(&p.payload[..]).unwrap().msg_type() != 11
    }));
}

#[test]
fn socket_errors_carry_linux_errnos() {
    assert_eq!(SocketError::ConnectionRefused.errno(), 111);
    assert_eq!(SocketError::WouldBlock.errno(), 11);
    assert_eq!(SocketError::AddrInUse.errno(), 98);
    assert_eq!(SocketError::MessageTooLong.errno(), 90);
    assert_eq!(SocketError::HostUnreachable.errno(), 113);
    assert_eq!(
        format!("{}", SocketError::AddrNotAvailable),
        "AddrNotAvailable (errno 99)"
    );
}

// ---------------------------------------------------------------------------
// TCP and ICMP.

/// A TCP segment from the peer (IPv4), in a frame.
fn tcp_frame(src: SocketAddr, dst: SocketAddr, repr: &TcpRepr<'_>) -> Vec<u8> {
    let ph = PseudoHeader::between(src.ip(), dst.ip()).unwrap();
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut b[..]), &ph, ChecksumMode::Compute);
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        unreachable!()
    };
    eth(US_MAC, PEER_MAC, EtherType::Ipv4, &ipv4(s, d, 6, &b))
}

/// The TCP header of a segment we sent.
fn tcp_of(f: &[u8]) -> (u16, u32, usize) {
    let p = parse(f);
    assert_eq!(p.proto, 6);
    let t = TcpPacket::new_checked(&p.payload[..]).unwrap();
    (t.src_port(), t.seq_number(), t.payload().len())
}

/// An established connection to the peer's port 80 (the peer offered MSS
/// 1460 and no other option); returns it, our port and our ISS.
fn tcp_established(i: &mut Interface, nic: &mut TestNic) -> (SocketHandle, u16, u32) {
    learn_peer(i);
    let s = i.tcp_open(Family::V4);
    i.tcp_connect(s, sa(PEER4, 80)).unwrap();
    let out = run(i, nic, t(0), vec![]);
    let (port, iss, _) = tcp_of(&out[0]);
    let synack = TcpRepr {
        src_port: 80,
        dst_port: port,
        control: TcpControl::Syn,
        seq_number: 7000,
        ack_number: Some(iss.wrapping_add(1)),
        window_len: 65535,
        max_seg_size: Some(1460),
        ..Default::default()
    };
    run(i, nic, t(1), vec![tcp_frame(sa(PEER4, 80), sa(US4, port), &synack)]);
    assert_eq!(i.tcp_state(s).unwrap(), Some(crate::tcp::tcb::State::Established));
    (s, port, iss)
}

#[test]
fn packet_too_big_shrinks_tcp_segments_and_spoofed_errors_change_nothing() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let (s, _port, iss) = tcp_established(&mut i, &mut nic);
    i.tcp_send(s, &[9u8; 4000]).unwrap();
    let out = run(&mut i, &mut nic, t(2), vec![]);
    let sizes: Vec<usize> = out.iter().map(|f| tcp_of(f).2).collect();
    // Nagle holds the last 1080 bytes while data is unacknowledged.
    assert_eq!(sizes, [1460, 1460]);
    assert!(out
        .iter()
        .all(|f| Ipv4Packet::new_checked(&f[14..]).unwrap().dont_frag()));
    // A "too big" quoting a sequence number we never sent (RFC 5927 §4.1):
    // ignored, counted.
    let mut spoofed = out[0][14..14 + 28].to_vec();
    spoofed[24..28].copy_from_slice(&iss.wrapping_add(1_000_000).to_be_bytes());
    let err = |data: &[u8]| {
        icmpv4_error(Icmpv4Repr::DstUnreachable {
            code: 4,
            next_hop_mtu: 1000,
            data,
        })
    };
    assert!(run(&mut i, &mut nic, t(3), vec![err(&spoofed)]).is_empty());
    assert_eq!(i.tcp_counters().icmp_out_of_window, 1);
    assert_eq!(i.tcp_info(s).unwrap().unwrap().snd_mss, 1460);
    // The real one, quoting our first segment: the connection sends again
    // at once in segments that fit 1000 bytes.
    let out = run(&mut i, &mut nic, t(4), vec![err(&out[0][14..14 + 28])]);
    assert_eq!(i.tcp_counters().icmp_delivered, 1);
    assert!(!out.is_empty(), "retransmitted at once");
    for f in &out {
        assert!(f.len() - 14 <= 1000, "{} bytes", f.len() - 14);
        assert_eq!(tcp_of(f).2, 960);
    }
    assert_eq!(tcp_of(&out[0]).1, iss.wrapping_add(1));
    assert_eq!(i.tcp_info(s).unwrap().unwrap().snd_mss, 960);
}

#[test]
fn unreachable_during_established_is_soft_and_reported_on_timeout() {
    let mut i = iface();
    let mut nic = TestNic::new();
    let (s, _port, _iss) = tcp_established(&mut i, &mut nic);
    i.tcp_send(s, b"hello").unwrap();
    let out = run(&mut i, &mut nic, t(2), vec![]);
    // Host unreachable (code 1) about the data: soft, the connection lives.
    let e = icmpv4_error(Icmpv4Repr::DstUnreachable {
        code: 1,
        next_hop_mtu: 0,
        data: &out[0][14..14 + 28],
    });
    run(&mut i, &mut nic, t(3), vec![e]);
    assert_eq!(i.tcp_state(s).unwrap(), Some(crate::tcp::tcb::State::Established));
    assert_eq!(i.tcp_take_error(s).unwrap(), None);
    // The peer never answers: when retransmissions run out, SO_ERROR says
    // what ICMP said, not ETIMEDOUT (Linux's tcp_write_err).
    i.tcp_set_user_timeout(s, Some(core::time::Duration::from_secs(5)))
        .unwrap();
    for ms in (3..20_000).step_by(250) {
        run(&mut i, &mut nic, t(ms), vec![]);
    }
    assert_eq!(i.tcp_take_error(s).unwrap(), Some(SocketError::HostUnreachable));
}

#[test]
fn segments_for_no_socket_get_rst_and_rst_gets_nothing() {
    let mut i = iface();
    let mut nic = TestNic::new();
    learn_peer(&mut i);
    let syn = TcpRepr {
        src_port: 5555,
        dst_port: 81,
        control: TcpControl::Syn,
        seq_number: 100,
        window_len: 1000,
        ..Default::default()
    };
    let out = run(
        &mut i,
        &mut nic,
        t(0),
        vec![tcp_frame(sa(PEER4, 5555), sa(US4, 81), &syn)],
    );
    assert_eq!(out.len(), 1);
    let p = parse(&out[0]);
    let r = TcpPacket::new_checked(&p.payload[..]).unwrap();
    // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    assert!(r.has(crate::wire::tcp::flags::RST) && r.has(crate::wire::tcp::flags::ACK));
    assert_eq!((r.seq_number(), r.ack_number()), (0, 101));
    let rst = TcpRepr {
        control: TcpControl::Rst,
        ..syn
    };
    assert!(run(
        &mut i,
        &mut nic,
        t(1),
        vec![tcp_frame(sa(PEER4, 5555), sa(US4, 81), &rst)]
    )
    .is_empty());
    // A bad checksum is counted and dropped, unanswered.
    let mut bad = tcp_frame(sa(PEER4, 5555), sa(US4, 81), &syn);
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    assert!(run(&mut i, &mut nic, t(2), vec![bad]).is_empty());
    assert_eq!(i.tcp_counters().drop_checksum, 1);
    assert_eq!(i.tcp_counters().no_socket, 2);
}

// ---------------------------------------------------------------------------
// Transmit-queue backpressure.

#[test]
fn full_transmit_queue_holds_tcp_back_and_control_frames_still_go() {
    let mut c = config(US_MAC, US4, us6());
    c.tx_queue_frames = 4;
    let mut i = Interface::new(c);
    let mut nic = TestNic::new();
    let (s, port, iss) = tcp_established(&mut i, &mut nic);
    // The device takes nothing: the queue fills with 4 segments and the
    // connection stops there, keeping the rest.
    nic.tx_limit = 0;
    i.tcp_send(s, &[7u8; 20_000]).unwrap();
    i.poll(t(2), &mut nic);
    assert_eq!(i.outbox.len(), 4);
    assert_eq!(i.poll_at(), Some(Instant::ZERO));
    // A SYN for no socket is still answered: the RST uses the reserve.
    let syn = TcpRepr {
        src_port: 5555,
        dst_port: 81,
        control: TcpControl::Syn,
        seq_number: 100,
        window_len: 1000,
        ..Default::default()
    };
    nic.rx.push_back(tcp_frame(sa(PEER4, 5555), sa(US4, 81), &syn));
    i.poll(t(3), &mut nic);
    assert_eq!(i.outbox.len(), 5);
    // The device drains: everything the window allows goes out, in
    // sequence, nothing dropped or sent twice.
    nic.tx_limit = usize::MAX;
    let mut out = Vec::new();
    for ms in 4..10 {
        out.extend(run(&mut i, &mut nic, t(ms), vec![]));
    }
    let data: Vec<(u32, usize)> = out
        .iter()
        .map(|f| tcp_of(f))
        .filter(|&(p, _, n)| p == port && n > 0)
        .map(|(_, seq, n)| (seq, n))
        .collect();
    let mut next = iss.wrapping_add(1);
    for &(seq, n) in &data {
        assert_eq!(seq, next, "segments in order, none repeated");
        next = seq.wrapping_add(n as u32);
    }
    // The initial window: 10 segments (RFC 6928), unacknowledged.
    assert_eq!(next, iss.wrapping_add(1 + 10 * 1460));
    assert_eq!(i.counters().drop_tx_queue_full, 0);
    assert_eq!(i.tcp_retransmits(), 0);
    assert_eq!(i.tcp_counters().rst_sent, 1);
    assert_eq!(i.poll_at().filter(|&at| at == Instant::ZERO), None);
}

/// A host for the bulk TCP simulations: connections that send or receive a
/// counted stream of bytes.
struct BulkHost {
    iface: Interface,
    listener: Option<SocketHandle>,
    /// (socket, bytes left to send, bytes received).
    conns: Vec<(SocketHandle, usize, usize)>,
    /// The program reads nothing before this.
    read_from: Instant,
    now: Instant,
    buf: Vec<u8>,
}

impl BulkHost {
    fn new(mac: EthernetAddress, v4: Ipv4Addr, peer_mac: EthernetAddress, peer4: Ipv4Addr) -> Self {
        let mut c = config(mac, v4, us6());
        c.ipv6 = Vec::new();
        // The queue holds a small part of what one connection may send.
        c.tx_queue_frames = 16;
        c.tcp.send_buffer = 2 << 20;
        c.tcp.recv_buffer = 1 << 20;
        let mut iface = Interface::new(c);
        iface.arp_cache().insert_static(Instant::ZERO, peer4, peer_mac);
        BulkHost {
            iface,
            listener: None,
            conns: Vec::new(),
            read_from: Instant::ZERO,
            now: Instant::ZERO,
            buf: vec![0x5a; 64 * 1024],
        }
    }

    fn program(&mut self) {
        if let Some(l) = self.listener {
            while let Ok((s, _)) = self.iface.tcp_accept(l) {
                self.conns.push((s, 0, 0));
            }
        }
        for (s, left, got) in &mut self.conns {
            while *left > 0 {
                let n = (*left).min(self.buf.len());
                match self.iface.tcp_send(*s, &self.buf[..n]) {
                    Ok(k) => *left -= k,
                    Err(_) => break,
                }
            }
            while self.now >= self.read_from {
                let Ok(n @ 1..) = self.iface.tcp_recv(*s, &mut self.buf) else {
                    break;
                };
                *got += n;
            }
        }
    }
}

impl crate::sim::SimNode for BulkHost {
    fn poll(&mut self, now: Instant, nic: &mut crate::sim::MemoryNic) {
        self.now = now;
        self.iface.poll(now, nic);
        self.iface.drain_events().for_each(drop);
        self.program();
        self.iface.poll(now, nic);
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let read = (self.now < self.read_from).then_some(self.read_from);
        [read, self.iface.poll_at()].into_iter().flatten().min()
    }
}

/// What a bulk run left behind.
#[derive(Debug, PartialEq, Eq)]
struct BulkOutcome {
    /// Frames either stack dropped at its own full transmit queue.
    own_drops: u64,
    /// Segments either stack retransmitted.
    retransmits: u64,
    /// The sender's device refused frames (it pushed back).
    device_full: bool,
}

/// `conns` connections each send `bytes` from A to B over a clean link
/// (nothing is lost, reordered or dropped on the way), A's device taking
/// at most 8 frames per poll (a busy transmit ring) and A's transmit queue
/// holding `queue` frames. B's program reads nothing before `read_from`,
/// then all it can. Every byte must arrive.
#[track_caller]
fn run_bulk(conns: usize, bytes: usize, queue: usize, read_from: Instant) -> BulkOutcome {
    use crate::sim::{LinkConfig, MemoryNic, SimNetwork};
    let mut net: SimNetwork<BulkHost> = SimNetwork::new(7);
    net.set_max_steps(20_000_000);
    let mut a = BulkHost::new(US_MAC, US4, PEER_MAC, PEER4);
    let mut b = BulkHost::new(PEER_MAC, PEER4, US_MAC, US4);
    a.iface.config.tx_queue_frames = queue;
    let l = b.iface.tcp_open(Family::V4);
    b.iface.tcp_bind(l, sa(PEER4, 9000)).unwrap();
    b.iface.tcp_listen(l, 16).unwrap();
    b.listener = Some(l);
    b.read_from = read_from;
    for _ in 0..conns {
        let s = a.iface.tcp_open(Family::V4);
        a.iface.tcp_connect(s, sa(PEER4, 9000)).unwrap();
        a.conns.push((s, bytes, 0));
    }
    let mut nic_a = MemoryNic::new(US_MAC.0);
    nic_a.set_queue_limits(MemoryNic::DEFAULT_QUEUE_LIMIT, 8);
    let ia = net.add_node(a, nic_a);
    let mut nic_b = MemoryNic::new(PEER_MAC.0);
    nic_b.set_queue_limits(usize::MAX, MemoryNic::DEFAULT_QUEUE_LIMIT);
    let ib = net.add_node(b, nic_b);
    let link = net.connect(
        ia,
        ib,
        LinkConfig {
            latency: core::time::Duration::from_micros(500),
            // Frames arrive spaced, and nothing is lost on the way.
            rate_bps: Some(1_000_000_000),
            queue_limit: usize::MAX,
            ..LinkConfig::default()
        },
    );
    net.kick(ia);
    net.run_for(core::time::Duration::from_secs(10)).unwrap();
    let b = net.node(ib);
    assert_eq!(b.conns.len(), conns);
    for &(_, _, got) in &b.conns {
        assert_eq!(got, bytes, "every byte arrived");
    }
    let l = net.link_stats(link);
    assert_eq!((l.lost, l.queue_dropped, l.rx_full), (0, 0, 0), "a clean link");
    let (a, b) = (&net.node(ia).iface, &b.iface);
    BulkOutcome {
        own_drops: a.counters().drop_tx_queue_full + b.counters().drop_tx_queue_full,
        retransmits: a.tcp_retransmits() + b.tcp_retransmits(),
        device_full: net.nic(ia).stats().tx_full > 0,
    }
}

#[test]
fn tcp_bulk_through_a_small_transmit_queue_loses_nothing() {
    // 2 MiB of send buffer is some 90 times the queue's 16 segments.
    for conns in [1, 4] {
        let o = run_bulk(conns, 6 << 20, 16, Instant::ZERO);
        let clean = BulkOutcome {
            own_drops: 0,
            retransmits: 0,
            device_full: true,
        };
        assert_eq!(o, clean, "{conns} connections");
    }
}

#[test]
fn tcp_window_opening_at_once_waits_for_a_small_transmit_queue() {
    // B's program reads nothing for 50 ms, then all it can: its window
    // closes, then opens by the whole 1 MiB receive buffer at once and A
    // may send far more than its queue holds, control reserve included
    // (before the queue pushed back on TCP, it dropped tens of its own
    // segments here). Nothing is retransmitted either: B's window, rounded
    // to its scale as it closed, never promised more than its buffer holds
    // (it once crept past it by up to 31 bytes per ACK, and A's last
    // segments before the zero window were dropped by B).
    for conns in [1, 4] {
        let o = run_bulk(conns, 6 << 20 >> (conns / 2), 16, Instant::from_millis(50));
        let clean = BulkOutcome {
            own_drops: 0,
            retransmits: 0,
            device_full: true,
        };
        assert_eq!(o, clean, "{conns} connections");
    }
}

// ---------------------------------------------------------------------------
// Acknowledging a receive burst.

/// Eight in-order full-sized segments in one receive burst, then three
/// out of order (a gap of two), then the gap filled; returns the ACK
/// numbers sent for each of the three bursts, relative to the peer's ISN + 1
/// in segments.
fn acks_for_bursts(stretch_acks: bool) -> [Vec<u32>; 3] {
    let mut c = config(US_MAC, US4, us6());
    c.tcp.stretch_acks = stretch_acks;
    let mut i = Interface::new(c);
    let mut nic = TestNic::new();
    let (s, port, iss) = tcp_established(&mut i, &mut nic);
    let data = [1u8; 1460];
    let seg = |k: u32| {
        let repr = TcpRepr {
            src_port: 80,
            dst_port: port,
            seq_number: 7001 + k * 1460,
            ack_number: Some(iss.wrapping_add(1)),
            window_len: 65535,
            payload: &data,
            ..Default::default()
        };
        tcp_frame(sa(PEER4, 80), sa(US4, port), &repr)
    };
    let acks = |out: &[Vec<u8>]| -> Vec<u32> {
        out.iter()
            .map(|f| {
                let p = parse(f);
                let t = TcpPacket::new_checked(&p.payload[..]).unwrap();
                assert!(t.payload().is_empty());
                (t.ack_number() - 7001) / 1460
            })
            .collect()
    };
    let first = acks(&run(&mut i, &mut nic, t(2), (0..8).map(seg).collect()));
    let ooo = acks(&run(&mut i, &mut nic, t(3), (10..13).map(seg).collect()));
    let filled = acks(&run(&mut i, &mut nic, t(4), (8..10).map(seg).collect()));
    let mut buf = vec![0u8; 64 * 1024];
    assert_eq!(i.tcp_recv(s, &mut buf), Ok(13 * 1460));
    [first, ooo, filled]
}

#[test]
fn every_second_segment_of_a_burst_is_acknowledged() {
    let [first, ooo, filled] = acks_for_bursts(false);
    assert_eq!(first, [2, 4, 6, 8]);
    // Out of order: a duplicate ACK for each, at once (RFC 5681 §4.2).
    assert_eq!(ooo, [8, 8, 8]);
    // Filling the gap is acknowledged at once, up to the end.
    assert_eq!(filled.last(), Some(&13));
}

#[test]
fn with_stretch_acks_a_burst_is_acknowledged_once() {
    let [first, ooo, filled] = acks_for_bursts(true);
    assert_eq!(first, [8]);
    assert_eq!(ooo, [8, 8, 8]);
    assert_eq!(filled.last(), Some(&13));
}
