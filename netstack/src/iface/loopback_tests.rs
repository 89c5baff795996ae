//! Loopback inside one interface (and across shards): programs talking to
//! 127.0.0.0/8, `::1` and the interface's own addresses through the stack,
//! with nothing reaching the device.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::tests::TestNic;
use super::*;
use crate::steer::{PortOwners, Steering};
use crate::tcp::tcb::State;
use crate::time::Instant;
use crate::wire::EthernetAddress;

const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const OWN4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const LO6: Ipv6Addr = Ipv6Addr::LOCALHOST;

fn own6() -> Ipv6Addr {
    "2001:db8::2".parse().unwrap()
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn config(loopback: bool) -> Config {
    let mut c = Config::new(MAC);
    c.ipv4 = Some(Ipv4Cidr::new(OWN4, 24));
    c.ipv4_gateway = Some(Ipv4Addr::new(10, 77, 0, 1));
    c.ipv6 = vec![Ipv6Cidr::new(own6(), 64)];
    c.ipv6_gateway = Some("2001:db8::1".parse().unwrap());
    c.loopback = loopback;
    c
}

fn lo_iface() -> Interface {
    Interface::new(config(true))
}

const T0: Instant = Instant::ZERO;

/// Polls at the time of the last poll until the interface has no work due
/// (as a caller's loop would before it sleeps).
#[track_caller]
fn settle(i: &mut Interface, nic: &mut TestNic) {
    let now = i.last_now;
    settle_at(i, nic, now);
}

/// Polls at `now` until the interface has no work due then; panics if it
/// never settles. Nothing looped may reach the device.
#[track_caller]
fn settle_at(i: &mut Interface, nic: &mut TestNic, now: Instant) {
    for _ in 0..1000 {
        i.poll(now, nic);
        assert!(
            nic.tx.is_empty(),
            "a looped packet reached the device: {:02x?}",
            nic.tx[0].0
        );
        if i.poll_at().is_none_or(|t| t > now) {
            return;
        }
    }
    panic!("the interface never settled");
}

/// Reads everything the connection holds (until it would block or ends).
fn read_all(i: &mut Interface, h: SocketHandle, out: &mut Vec<u8>) -> bool {
    let mut buf = vec![0u8; 100_000];
    loop {
        match i.tcp_recv(h, &mut buf) {
            Ok(0) => return true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(SocketError::WouldBlock) => return false,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Sends `data` from `from` to `to` through the stack, reading as it goes;
/// returns what `to` received. Time moves on to the next timer only when
/// nothing else moves (Nagle waits for the delayed ACK of the last bytes).
fn transfer(i: &mut Interface, nic: &mut TestNic, from: SocketHandle, to: SocketHandle, data: &[u8]) -> Vec<u8> {
    let (mut sent, mut got) = (0, Vec::new());
    let mut now = i.last_now;
    for _ in 0..10_000 {
        let before = (sent, got.len());
        if sent < data.len() {
            match i.tcp_send(from, &data[sent..]) {
                Ok(n) => sent += n,
                Err(SocketError::WouldBlock) => {}
                Err(e) => panic!("send: {e}"),
            }
        }
        settle_at(i, nic, now);
        read_all(i, to, &mut got);
        if got.len() == data.len() {
            return got;
        }
        if before == (sent, got.len()) {
            now = i.poll_at().expect("a stalled transfer has a timer").max(now);
        }
    }
    panic!("only {} of {} bytes arrived", got.len(), data.len());
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|k| (k * 7 + k / 251) as u8).collect()
}

/// A listener on `listen`, a client connected from `bind` (if any) to
/// `dst`: returns (listener, client, accepted, peer as accepted).
fn connect(
    i: &mut Interface,
    nic: &mut TestNic,
    family: Family,
    listen: SocketAddr,
    bind: Option<SocketAddr>,
    dst: SocketAddr,
) -> (SocketHandle, SocketHandle, SocketHandle, SocketAddr) {
    let l = i.tcp_open(family);
    i.tcp_bind(l, listen).unwrap();
    i.tcp_listen(l, 16).unwrap();
    let c = i.tcp_open(family);
    if let Some(b) = bind {
        i.tcp_bind(c, b).unwrap();
    }
    i.tcp_connect(c, dst).unwrap();
    // The SYN waits in the interface: the caller must not sleep.
    assert_eq!(i.poll_at(), Some(Instant::ZERO));
    // One poll runs the whole handshake.
    let now = i.last_now;
    i.poll(now, nic);
    assert_eq!(i.tcp_state(c).unwrap(), Some(State::Established));
    let (a, peer) = i.tcp_accept(l).expect("the listener has the connection");
    settle(i, nic);
    (l, c, a, peer)
}

/// Data both ways, then a close from each side: both read end of file and
/// the connections finish.
fn exchange_and_close(i: &mut Interface, nic: &mut TestNic, c: SocketHandle, a: SocketHandle) {
    let up = pattern(3 << 20);
    assert_eq!(transfer(i, nic, c, a, &up), up);
    let down = pattern(100_000);
    assert_eq!(transfer(i, nic, a, c, &down), down);
    i.tcp_close(c).unwrap();
    settle(i, nic);
    let mut rest = Vec::new();
    assert!(read_all(i, a, &mut rest), "the server reads end of file");
    assert!(rest.is_empty());
    i.tcp_close(a).unwrap();
    settle(i, nic);
    assert_eq!(i.tcp_unfinished(), 0, "both ends finished their close");
}

#[test]
fn tcp_to_127_0_0_1_and_127_0_0_5_through_a_wildcard_listener() {
    for (k, dst) in [LO, Ipv4Addr::new(127, 0, 0, 5)].into_iter().enumerate() {
        let mut i = lo_iface();
        let mut nic = TestNic::new();
        let port = 8080 + k as u16;
        let (_l, c, a, peer) = connect(
            &mut i,
            &mut nic,
            Family::V4,
            sa(Ipv4Addr::UNSPECIFIED, port),
            None,
            sa(dst, port),
        );
        // Linux picks lo's 127.0.0.1 as the source for all of 127/8.
        let local = i.tcp_local_addr(c).unwrap().unwrap();
        assert_eq!(local.ip(), IpAddr::V4(LO));
        assert_eq!(peer, local);
        assert_eq!(i.tcp_local_addr(a).unwrap(), Some(sa(dst, port)));
        assert_eq!(i.tcp_peer_addr(c).unwrap(), Some(sa(dst, port)));
        // Linux's MSS on lo.
        assert_eq!(i.tcp_info(c).unwrap().unwrap().snd_mss, 65495 - 12);
        exchange_and_close(&mut i, &mut nic, c, a);
        assert!(i.counters().loopback_frames > 0);
        assert_eq!(i.counters().tx_frames, 0);
        assert_eq!(i.tcp_counters().drop_checksum, 0);
    }
}

#[test]
fn tcp_over_ipv6_loopback_and_a_dual_stack_listener() {
    let mut i = lo_iface();
    let mut nic = TestNic::new();
    let v6 = Family::V6 { v6only: false };
    let (l, c, a, peer) = connect(&mut i, &mut nic, v6, sa(Ipv6Addr::UNSPECIFIED, 443), None, sa(LO6, 443));
    assert_eq!(i.tcp_local_addr(c).unwrap().unwrap().ip(), IpAddr::V6(LO6));
    assert_eq!(peer.ip(), IpAddr::V6(LO6));
    assert_eq!(i.tcp_local_addr(a).unwrap(), Some(sa(LO6, 443)));
    assert_eq!(i.tcp_info(c).unwrap().unwrap().snd_mss, 65476 - 12);
    exchange_and_close(&mut i, &mut nic, c, a);
    // The same dual-stack listener takes IPv4 loopback, shown mapped.
    let c4 = i.tcp_open(Family::V4);
    i.tcp_connect(c4, sa(LO, 443)).unwrap();
    settle(&mut i, &mut nic);
    let (a4, peer4) = i.tcp_accept(l).unwrap();
    assert_eq!(peer4.ip(), IpAddr::V6(LO.to_ipv6_mapped()));
    assert_eq!(i.tcp_local_addr(a4).unwrap(), Some(sa(LO.to_ipv6_mapped(), 443)));
}

#[test]
fn connections_to_our_own_addresses_loop_back_even_without_loopback() {
    for loopback in [false, true] {
        let mut i = Interface::new(config(loopback));
        let mut nic = TestNic::new();
        let (_l, c, a, peer) = connect(
            &mut i,
            &mut nic,
            Family::V4,
            sa(Ipv4Addr::UNSPECIFIED, 7000),
            None,
            sa(OWN4, 7000),
        );
        assert_eq!(peer.ip(), IpAddr::V4(OWN4), "a local address is its own source");
        exchange_and_close(&mut i, &mut nic, c, a);
        let v6 = Family::V6 { v6only: true };
        let (_l, c, a, peer) = connect(&mut i, &mut nic, v6, sa(own6(), 7001), None, sa(own6(), 7001));
        assert_eq!(peer.ip(), IpAddr::V6(own6()));
        exchange_and_close(&mut i, &mut nic, c, a);
        // And from a loopback-bound socket to our own address.
        if loopback {
            let (_l, c, a, peer) = connect(
                &mut i,
                &mut nic,
                Family::V4,
                sa(OWN4, 7002),
                Some(sa(LO, 0)),
                sa(OWN4, 7002),
            );
            assert_eq!(peer.ip(), IpAddr::V4(LO));
            exchange_and_close(&mut i, &mut nic, c, a);
        }
    }
}

#[test]
fn udp_over_loopback_both_ways_with_the_right_addresses() {
    for (family, server, client_src) in [
        (Family::V4, sa(LO, 5353), LO),
        (Family::V4, sa(Ipv4Addr::new(127, 1, 2, 3), 5353), LO),
        (Family::V4, sa(OWN4, 5353), OWN4),
    ]
    .map(|(f, s, c)| (f, s, IpAddr::V4(c)))
    .into_iter()
    .chain([(Family::V6 { v6only: false }, sa(LO6, 5353), IpAddr::V6(LO6))])
    {
        let mut i = lo_iface();
        let mut nic = TestNic::new();
        let srv = i.udp_open(family);
        i.udp_bind(srv, server).unwrap();
        let cli = i.udp_open(family);
        i.udp_send_to(cli, b"ping", Some(server)).unwrap();
        assert_eq!(i.poll_at(), Some(Instant::ZERO));
        settle(&mut i, &mut nic);
        let ready: Vec<_> = i.drain_events().filter(|e| e.readable).map(|e| e.handle).collect();
        assert_eq!(ready, [srv]);
        let mut buf = [0u8; 64];
        let m = i.udp_recv_from(srv, &mut buf).unwrap();
        assert_eq!(&buf[..m.len], b"ping");
        let cli_port = i.udp_local_addr(cli).unwrap().unwrap().port();
        assert_eq!(m.from, sa(client_src, cli_port));
        assert_eq!(m.to, server.ip());
        i.udp_send_to(srv, b"pong", Some(m.from)).unwrap();
        settle(&mut i, &mut nic);
        let m = i.udp_recv_from(cli, &mut buf).unwrap();
        assert_eq!(&buf[..m.len], b"pong");
        assert_eq!(m.from, server);
        assert_eq!(m.to, client_src);
        // A 64 KiB datagram fits lo's MTU whole.
        let big = pattern(65_000);
        i.udp_send_to(cli, &big, Some(server)).unwrap();
        settle(&mut i, &mut nic);
        let mut buf = vec![0u8; 70_000];
        let m = i.udp_recv_from(srv, &mut buf).unwrap();
        assert_eq!(&buf[..m.len], &big[..]);
        assert_eq!(i.reassembly_v4_stats(), &Default::default());
        assert_eq!(i.counters().drop_udp_checksum, 0);
        assert_eq!(i.counters().tx_frames, 0);
    }
}

/// A datagram a send accepted goes out even when its socket is closed
/// before the next poll (a client that sends and closes at once, as
/// CPython's test_socket does; the datagram used to be discarded).
#[test]
fn a_datagram_survives_its_socket_closing_before_the_poll() {
    let mut i = lo_iface();
    let mut nic = TestNic::new();
    let srv = i.udp_open(Family::V4);
    i.udp_bind(srv, sa(LO, 5354)).unwrap();
    let cli = i.udp_open(Family::V4);
    i.udp_send_to(cli, b"last words", Some(sa(LO, 5354))).unwrap();
    i.udp_close(cli).unwrap();
    settle(&mut i, &mut nic);
    let mut buf = [0u8; 64];
    let m = i.udp_recv_from(srv, &mut buf).unwrap();
    assert_eq!(&buf[..m.len], b"last words");
    assert_eq!(i.counters().udp_tx_datagrams, 1);
}

#[test]
fn a_closed_loopback_port_refuses_at_once() {
    let mut i = lo_iface();
    let mut nic = TestNic::new();
    for dst in [sa(LO, 9), sa(Ipv4Addr::new(127, 0, 0, 9), 9), sa(LO6, 9), sa(OWN4, 9)] {
        let family = if dst.is_ipv4() {
            Family::V4
        } else {
            Family::V6 { v6only: true }
        };
        let c = i.tcp_open(family);
        i.tcp_connect(c, dst).unwrap();
        i.poll(T0, &mut nic);
        let ev: Vec<_> = i.drain_events().filter(|e| e.handle == c).collect();
        assert!(
            ev.iter().any(|e| e.error),
            "{dst}: the RST is reported in the same poll"
        );
        assert_eq!(
            i.tcp_take_error(c).unwrap(),
            Some(SocketError::ConnectionRefused),
            "{dst}"
        );
        assert_eq!(i.tcp_state(c).unwrap(), Some(State::Closed));
        i.tcp_close(c).unwrap();
        // A connected UDP socket learns it from the ICMP port unreachable,
        // which is not rate limited on loopback.
        for _ in 0..100 {
            let u = i.udp_open(family);
            i.udp_connect(u, dst).unwrap();
            i.udp_send_to(u, b"anyone?", None).unwrap();
            settle(&mut i, &mut nic);
            assert_eq!(i.udp_recv(u).unwrap_err(), SocketError::ConnectionRefused, "{dst}");
            i.udp_close(u).unwrap();
        }
    }
    assert_eq!(i.counters().icmp_errors_rate_limited, 0);
    assert!(nic.tx.is_empty());
}

#[test]
fn without_loopback_its_addresses_stay_unavailable() {
    let mut i = Interface::new(config(false));
    let mut nic = TestNic::new();
    for (family, lo) in [
        (Family::V4, IpAddr::V4(LO)),
        (Family::V6 { v6only: true }, IpAddr::V6(LO6)),
    ] {
        let t = i.tcp_open(family);
        assert_eq!(i.tcp_bind(t, sa(lo, 80)), Err(SocketError::AddrNotAvailable));
        assert_eq!(i.tcp_connect(t, sa(lo, 80)), Err(SocketError::NetworkUnreachable));
        let u = i.udp_open(family);
        assert_eq!(i.udp_bind(u, sa(lo, 53)), Err(SocketError::AddrNotAvailable));
        assert_eq!(i.udp_connect(u, sa(lo, 53)), Err(SocketError::NetworkUnreachable));
        assert_eq!(
            i.udp_send_to(u, b"x", Some(sa(lo, 53))),
            Err(SocketError::NetworkUnreachable)
        );
        assert!(!i.is_local_addr(lo));
    }
    let t = i.tcp_open(Family::V4);
    assert_eq!(
        i.tcp_bind(t, sa(Ipv4Addr::new(127, 0, 0, 2), 80)),
        Err(SocketError::AddrNotAvailable)
    );
    i.poll(T0, &mut nic);
    assert!(nic.tx.is_empty(), "nothing for 127/8 reaches the wire");
}

#[test]
fn loopback_sources_never_reach_the_wire() {
    let mut i = lo_iface();
    let mut nic = TestNic::new();
    let t = i.tcp_open(Family::V4);
    i.tcp_bind(t, sa(LO, 0)).unwrap();
    assert_eq!(
        i.tcp_connect(t, sa(Ipv4Addr::new(10, 77, 0, 9), 80)),
        Err(SocketError::InvalidArgument)
    );
    let u = i.udp_open(Family::V6 { v6only: true });
    i.udp_bind(u, sa(LO6, 0)).unwrap();
    assert_eq!(
        i.udp_send_to(u, b"x", Some(sa(own6(), 53))),
        Ok(1),
        "our own address is local"
    );
    assert_eq!(
        i.udp_send_to(u, b"x", Some(sa("2001:db8::9".parse::<Ipv6Addr>().unwrap(), 53))),
        Err(SocketError::InvalidArgument)
    );
    settle(&mut i, &mut nic);
}

/// A frame from the wire (another station) to us.
fn wire_udp(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    use crate::wire::checksum::{ChecksumMode, PseudoHeader};
    use crate::wire::*;
    let r = UdpRepr {
        src_port: 1000,
        dst_port: core::num::NonZeroU16::new(53).unwrap(),
    };
    let mut u = vec![0u8; r.buffer_len(2)];
    r.emit(
        &mut UdpPacket::new_unchecked(&mut u[..]),
        &PseudoHeader::V4(src, dst),
        b"hi",
        ChecksumMode::Compute,
    );
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: 17,
        payload_len: u.len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + 20 + u.len()];
    EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 9]),
        dst_addr: MAC,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]), ChecksumMode::Compute);
    f[34..].copy_from_slice(&u);
    f
}

#[test]
fn loopback_addresses_from_the_wire_are_martians() {
    let mut i = lo_iface();
    let mut nic = TestNic::new();
    let s = i.udp_open(Family::V4);
    i.udp_bind(s, sa(Ipv4Addr::UNSPECIFIED, 53)).unwrap();
    let peer = Ipv4Addr::new(10, 77, 0, 9);
    nic.rx.push_back(wire_udp(peer, LO));
    nic.rx.push_back(wire_udp(LO, OWN4));
    nic.rx.push_back(wire_udp(OWN4, OWN4));
    nic.rx.push_back(wire_udp(peer, OWN4));
    i.poll(T0, &mut nic);
    let c = *i.counters();
    assert_eq!(c.drop_ipv4_not_for_us, 1);
    assert_eq!(c.drop_ipv4_bad_src, 2);
    assert_eq!(c.udp_rx_datagrams, 1);
    assert_eq!(i.udp_recv(s).unwrap().from, sa(peer, 1000));
}

#[test]
fn looped_packets_wait_for_room_like_the_device_queue() {
    let mut c = config(true);
    c.tx_queue_frames = 4;
    let mut i = Interface::new(c);
    let mut nic = TestNic::new();
    let (_l, c, a, _) = connect(&mut i, &mut nic, Family::V4, sa(LO, 80), None, sa(LO, 80));
    // 3 MiB through a queue of four frames, and a budget per poll.
    exchange_and_close(&mut i, &mut nic, c, a);
    assert_eq!(i.counters().drop_tx_queue_full, 0);
}

#[test]
fn shards_hand_looped_packets_to_the_shard_that_owns_them() {
    let ports = PortOwners::new(2);
    let mut s: Vec<Interface> = (0..2)
        .map(|k| {
            let mut c = config(true);
            c.steering = Some(Steering::new(k, 2, 0x5eed, ports.clone()));
            Interface::new(c)
        })
        .collect();
    let mut nics = [TestNic::new(), TestNic::new()];
    // The listener lives on shard 1, the client on shard 0.
    let l = s[1].tcp_open(Family::V4);
    s[1].tcp_bind(l, sa(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    s[1].tcp_listen(l, 8).unwrap();
    let c = s[0].tcp_open(Family::V4);
    s[0].tcp_connect(c, sa(LO, 80)).unwrap();
    let mut run = |s: &mut Vec<Interface>| {
        for _ in 0..100 {
            let mut moved = Vec::new();
            for (k, (i, nic)) in s.iter_mut().zip(nics.iter_mut()).enumerate() {
                i.poll(T0, nic);
                assert!(nic.tx.is_empty());
                i.take_looped_for_shards(|to, f| {
                    assert_ne!(to, k);
                    moved.push((to, f.to_vec()));
                });
            }
            if moved.is_empty() && s.iter().all(|i| i.poll_at().is_none_or(|t| t > T0)) {
                return;
            }
            for (to, f) in moved {
                s[to].receive_looped(&f);
            }
        }
        panic!("the shards never settled");
    };
    run(&mut s);
    assert_eq!(s[0].tcp_state(c).unwrap(), Some(State::Established));
    let (a, _) = s[1].tcp_accept(l).unwrap();
    assert_eq!(s[0].tcp_send(c, b"across shards"), Ok(13));
    run(&mut s);
    let mut buf = [0u8; 32];
    assert_eq!(s[1].tcp_recv(a, &mut buf), Ok(13));
    assert_eq!(&buf[..13], b"across shards");
    for i in &s {
        assert_eq!(i.tcp_counters().drop_checksum, 0, "shards checksum what they hand over");
    }
}
