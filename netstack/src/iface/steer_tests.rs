//! Shards sharing one address and one TCP port space through
//! [`crate::steer`]: how ports are chosen, registered and released, and a
//! simulated run where a steering link hands each frame to the shard
//! [`Steering::classify`] names.

use core::time::Duration;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::*;
use crate::sim::MemoryNic;
use crate::steer::{Dest, PortOwners, PortUse, Steering};
use crate::time::Instant;
use crate::wire::EthernetAddress;

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SEED: u64 = 0x05ee_d0f5_ba2d;

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn any(port: u16) -> SocketAddr {
    sa(Ipv4Addr::UNSPECIFIED, port)
}

fn host(mac: [u8; 6], ip: Ipv4Addr, steering: Option<Steering>, ephemeral: (u16, u16)) -> Interface {
    let mut c = Config::new(EthernetAddress(mac));
    c.ipv4 = Some(Ipv4Cidr::new(ip, 24));
    c.tcp.ephemeral_ports = ephemeral;
    c.steering = steering;
    Interface::new(c)
}

/// Two shards (same MAC, address and seed) on one port table.
fn shards(ephemeral: (u16, u16)) -> (Arc<PortOwners>, Steering, [Interface; 2]) {
    let ports = PortOwners::new(2);
    let st = |i| Steering::new(i, 2, SEED, ports.clone());
    let s = [
        host(MAC, US, Some(st(0)), ephemeral),
        host(MAC, US, Some(st(1)), ephemeral),
    ];
    (ports.clone(), st(0), s)
}

const LINUX_RANGE: (u16, u16) = (32768, 60999);

fn hashed(shard: usize) -> Option<PortUse> {
    Some(PortUse { shard, by_port: false })
}

fn by_port(shard: usize) -> Option<PortUse> {
    Some(PortUse { shard, by_port: true })
}

/// A SYN from `from` to our `port`, as the wire carries it (checksums
/// left zero: steering reads no checksum).
fn syn_to(from: SocketAddr, port: u16) -> Vec<u8> {
    let IpAddr::V4(src) = from.ip() else { unreachable!() };
    let mut f = Vec::new();
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&US.octets());
    f.extend_from_slice(&from.port().to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

#[test]
fn connect_takes_ports_that_hash_to_the_connecting_shard() {
    let (ports, st, mut s) = shards(LINUX_RANGE);
    let remote = sa(PEER, 80);
    let mut seen = HashSet::new();
    for (i, shard) in s.iter_mut().enumerate() {
        for _ in 0..300 {
            let h = shard.tcp_open(Family::V4);
            shard.tcp_connect(h, remote).unwrap();
            let p = shard.tcp_local_addr(h).unwrap().unwrap().port();
            assert!((32768..=60999).contains(&p));
            assert_eq!(st.tcp_owner(remote.ip(), 80, p), i, "port {p} of shard {i}");
            assert!(seen.insert(p), "port {p} handed out twice");
            assert_eq!(ports.get(p), hashed(i), "reserved, not by port");
            // The SYN-ACK comes back to the shard.
            assert_eq!(st.classify(&syn_to(remote, p)), Dest::Shard(i));
        }
    }
}

#[test]
fn a_port_held_by_one_shard_cannot_be_bound_on_another() {
    let (ports, _, [mut s0, mut s1]) = shards(LINUX_RANGE);
    let c = s1.tcp_open(Family::V4);
    s1.tcp_connect(c, sa(PEER, 80)).unwrap();
    let p = s1.tcp_local_addr(c).unwrap().unwrap().port();
    for addr in [any(p), sa(US, p)] {
        let h = s0.tcp_open(Family::V4);
        s0.tcp_set_reuse_addr(h, true).unwrap();
        s0.tcp_set_reuse_port(h, true).unwrap();
        assert_eq!(s0.tcp_bind(h, addr), Err(SocketError::AddrInUse), "{addr}");
    }
    let h6 = s0.tcp_open(Family::V6 { v6only: false });
    let v6any = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), p);
    assert_eq!(s0.tcp_bind(h6, v6any), Err(SocketError::AddrInUse));

    // Sharing within a shard works as in a single stack.
    let a = s0.tcp_open(Family::V4);
    let b = s0.tcp_open(Family::V4);
    for h in [a, b] {
        s0.tcp_set_reuse_addr(h, true).unwrap();
        s0.tcp_bind(h, any(8080)).unwrap();
    }
    assert_eq!(ports.get(8080), by_port(0));
    let x = s1.tcp_open(Family::V4);
    s1.tcp_set_reuse_addr(x, true).unwrap();
    assert_eq!(s1.tcp_bind(x, any(8080)), Err(SocketError::AddrInUse));
    // The failed bind left the socket usable.
    assert_eq!(s1.tcp_bind(x, any(8081)), Ok(any(8081)));
    assert_eq!(ports.get(8081), by_port(1));
    // One of two sharing sockets closes: still held.
    s0.tcp_close(a).unwrap();
    assert_eq!(ports.get(8080), by_port(0));
    s0.tcp_close(b).unwrap();
    assert_eq!(ports.get(8080), None);
}

#[test]
fn ephemeral_search_skips_ports_of_other_shards_and_fails_when_none_fits() {
    let (ports, _, [mut s0, mut s1]) = shards((50000, 50007));
    for p in 50000..=50005 {
        let h = s0.tcp_open(Family::V4);
        s0.tcp_bind(h, any(p)).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let h = s1.tcp_open(Family::V4);
        got.push(s1.tcp_bind(h, any(0)).unwrap().port());
    }
    got.sort();
    assert_eq!(got, [50006, 50007]);
    assert_eq!(ports.get(50006), by_port(1), "bind to port 0 registers by port");
    let h = s1.tcp_open(Family::V4);
    assert_eq!(s1.tcp_bind(h, any(0)), Err(SocketError::AddrInUse));

    // Connect: only the ports that hash to the shard qualify.
    let (_, st, [mut s0, mut s1]) = shards((40000, 40199));
    let fits: HashSet<u16> = (40000..=40199)
        .filter(|&p| st.tcp_owner(IpAddr::V4(PEER), 80, p) == 1)
        .collect();
    assert!(fits.len() > 50 && fits.len() < 150, "{}", fits.len());
    let mut got = HashSet::new();
    loop {
        let h = s1.tcp_open(Family::V4);
        match s1.tcp_connect(h, sa(PEER, 80)) {
            Ok(()) => assert!(got.insert(s1.tcp_local_addr(h).unwrap().unwrap().port())),
            Err(e) => {
                assert_eq!(e, SocketError::AddrInUse);
                break;
            }
        }
    }
    assert_eq!(got, fits, "every fitting port, each once, then EADDRINUSE");
    // The other shard still finds its own.
    let h = s0.tcp_open(Family::V4);
    s0.tcp_connect(h, sa(PEER, 80)).unwrap();
    let p = s0.tcp_local_addr(h).unwrap().unwrap().port();
    assert!(!fits.contains(&p));
}

#[test]
fn listening_registers_by_port_and_closing_releases() {
    let (ports, st, [mut s0, mut s1]) = shards(LINUX_RANGE);
    // listen's autobind.
    let l = s1.tcp_open(Family::V4);
    s1.tcp_listen(l, 8).unwrap();
    let p = s1.tcp_local_addr(l).unwrap().unwrap().port();
    assert_eq!(ports.get(p), by_port(1));
    // SYNs from anywhere come to shard 1, though many hash to shard 0.
    let mut hash0 = 0;
    for sport in 1000..1100 {
        hash0 += usize::from(st.tcp_owner(IpAddr::V4(PEER), sport, p) == 0);
        assert_eq!(st.classify(&syn_to(sa(PEER, sport), p)), Dest::Shard(1));
    }
    assert!(hash0 > 20);
    s1.tcp_close(l).unwrap();
    assert_eq!(ports.get(p), None);
    assert!((1000..1100).any(|sport| st.classify(&syn_to(sa(PEER, sport), p)) == Dest::Shard(0)));

    // An explicit bind, then listen, on shard 0.
    let l = s0.tcp_open(Family::V6 { v6only: false });
    s0.tcp_bind(l, "[::]:7000".parse().unwrap()).unwrap();
    assert_eq!(ports.get(7000), by_port(0));
    s0.tcp_listen(l, 8).unwrap();
    assert_eq!(st.classify(&syn_to(sa(PEER, 5555), 7000)), Dest::Shard(0));
    s0.tcp_close(l).unwrap();
    assert_eq!(ports.get(7000), None);

    // A bound socket that never listened.
    let h = s1.tcp_open(Family::V4);
    s1.tcp_bind(h, sa(US, 7001)).unwrap();
    assert_eq!(ports.get(7001), by_port(1));
    s1.tcp_close(h).unwrap();
    assert_eq!(ports.get(7001), None);

    // A connection closed in SYN-SENT goes at once.
    let c = s1.tcp_open(Family::V4);
    s1.tcp_connect(c, sa(PEER, 80)).unwrap();
    let p = s1.tcp_local_addr(c).unwrap().unwrap().port();
    assert_eq!(ports.get(p), hashed(1));
    s1.tcp_close(c).unwrap();
    assert_eq!(ports.get(p), None);

    // A dropped interface gives its ports back.
    let h = s1.tcp_open(Family::V4);
    s1.tcp_bind(h, any(7002)).unwrap();
    drop(s1);
    assert_eq!(ports.get(7002), None);
}

#[test]
fn without_steering_nothing_is_registered() {
    let mut i = host(MAC, US, None, LINUX_RANGE);
    let h = i.tcp_open(Family::V4);
    i.tcp_bind(h, any(80)).unwrap();
    i.tcp_listen(h, 8).unwrap();
    let c = i.tcp_open(Family::V4);
    i.tcp_connect(c, sa(PEER, 80)).unwrap();
    assert!(i.config().steering.is_none());
}

/// Two shards and a peer. The peer's frames go through
/// [`Steering::classify`] to the shard it names (or to both); the shards'
/// frames go straight to the peer.
struct Steered {
    shards: [Interface; 2],
    nics: [MemoryNic; 2],
    peer: Interface,
    pnic: MemoryNic,
    steer: Steering,
    now: Instant,
    /// Frames delivered to each shard (copies of `All` included).
    delivered: [u64; 2],
}

impl Steered {
    fn new() -> (Steered, Arc<PortOwners>) {
        let (ports, steer, shards) = shards(LINUX_RANGE);
        let nic = |mac| {
            let mut n = MemoryNic::new(mac);
            n.set_queue_limits(1 << 16, 1 << 16);
            n
        };
        let s = Steered {
            shards,
            nics: [nic(MAC), nic(MAC)],
            peer: host(PEER_MAC, PEER, None, LINUX_RANGE),
            pnic: nic(PEER_MAC),
            steer,
            now: Instant::from_secs(1),
            delivered: [0; 2],
        };
        (s, ports)
    }

    /// Advances the clock by `tick`, polls everyone and moves the frames.
    fn turn(&mut self, tick: Duration) {
        self.now += tick;
        for (s, n) in self.shards.iter_mut().zip(&mut self.nics) {
            s.poll(self.now, n);
            s.drain_events().for_each(drop);
        }
        self.peer.poll(self.now, &mut self.pnic);
        self.peer.drain_events().for_each(drop);
        while let Some(f) = self.pnic.pop_transmitted() {
            match self.steer.classify(&f) {
                Dest::Shard(k) => {
                    self.delivered[k] += 1;
                    assert!(self.nics[k].inject(f));
                }
                Dest::All => {
                    for k in 0..2 {
                        self.delivered[k] += 1;
                        assert!(self.nics[k].inject(f.clone()));
                    }
                }
            }
        }
        for n in &mut self.nics {
            while let Some(f) = n.pop_transmitted() {
                assert!(self.pnic.inject(f));
            }
        }
    }
}

fn pattern(id: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + id * 7 + k / 251) as u8).collect()
}

fn send_some(i: &mut Interface, h: SocketHandle, data: &[u8], sent: &mut usize) {
    while *sent < data.len() {
        match i.tcp_send(h, &data[*sent..]) {
            Ok(n) if n > 0 => *sent += n,
            _ => break,
        }
    }
}

/// Reads what arrived into `got`; true at the end of the stream.
fn recv_some(i: &mut Interface, h: SocketHandle, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 16384];
    loop {
        match i.tcp_recv(h, &mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

/// A connection opened from a shard to the peer's echo server.
struct Client {
    shard: usize,
    h: SocketHandle,
    port: u16,
    data: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    closed: bool,
}

/// The peer's side of a connection: an echo (the peer's server) or a
/// sender (the peer connecting to a shard's listener).
struct PeerConn {
    h: SocketHandle,
    /// Echo: what was read and not yet written back. Sender: the data.
    buf: Vec<u8>,
    sent: usize,
    eof: bool,
    closed: bool,
}

#[test]
fn sim_connections_from_and_to_both_shards_carry_their_bytes() {
    let (mut net, ports) = Steered::new();
    let tick = Duration::from_micros(100);
    // The peer echoes on 9000; each shard listens on its own port.
    let echo = net.peer.tcp_open(Family::V4);
    net.peer.tcp_bind(echo, any(9000)).unwrap();
    net.peer.tcp_listen(echo, 64).unwrap();
    let listen_ports = [7000u16, 7001];
    let mut listeners = Vec::new();
    for (k, s) in net.shards.iter_mut().enumerate() {
        let l = s.tcp_open(Family::V4);
        s.tcp_bind(l, any(listen_ports[k])).unwrap();
        s.tcp_listen(l, 64).unwrap();
        listeners.push(l);
    }
    let mut clients = Vec::new();
    for shard in 0..2 {
        for j in 0..6 {
            let s = &mut net.shards[shard];
            let h = s.tcp_open(Family::V4);
            s.tcp_connect(h, sa(PEER, 9000)).unwrap();
            let port = s.tcp_local_addr(h).unwrap().unwrap().port();
            clients.push(Client {
                shard,
                h,
                port,
                data: pattern(shard * 16 + j, 60_000 + j * 7_777),
                sent: 0,
                got: Vec::new(),
                closed: false,
            });
        }
    }
    // The peer connects to each shard's listener.
    let mut senders = Vec::new();
    let mut expected: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    for (k, &lp) in listen_ports.iter().enumerate() {
        for j in 0..4 {
            let h = net.peer.tcp_open(Family::V4);
            net.peer.tcp_connect(h, sa(US, lp)).unwrap();
            let data = pattern(100 + k * 16 + j, 50_000 + j * 3_001);
            expected[k].push(data.clone());
            senders.push(PeerConn {
                h,
                buf: data,
                sent: 0,
                eof: false,
                closed: false,
            });
        }
    }
    let mut echoes: Vec<PeerConn> = Vec::new();
    // Each shard's accepted connections: (handle, bytes, done, peer).
    type Served = Vec<(SocketHandle, Vec<u8>, bool, SocketAddr)>;
    let mut served: [Served; 2] = [Vec::new(), Vec::new()];

    let mut turns = 0;
    loop {
        turns += 1;
        assert!(turns < 200_000, "the run did not finish");
        net.turn(tick);
        // Shards: clients send, read the echo, close when it is whole.
        for c in clients.iter_mut().filter(|c| !c.closed) {
            let s = &mut net.shards[c.shard];
            send_some(s, c.h, &c.data, &mut c.sent);
            recv_some(s, c.h, &mut c.got);
            if c.got.len() >= c.data.len() {
                s.tcp_close(c.h).unwrap();
                c.closed = true;
            }
        }
        // Shards: servers read to the end, then close.
        for (k, s) in net.shards.iter_mut().enumerate() {
            while let Ok((h, from)) = s.tcp_accept(listeners[k]) {
                assert_eq!(from.ip(), IpAddr::V4(PEER));
                served[k].push((h, Vec::new(), false, from));
            }
            for (h, got, done, _) in served[k].iter_mut().filter(|c| !c.2) {
                if recv_some(s, *h, got) {
                    s.tcp_close(*h).unwrap();
                    *done = true;
                }
            }
        }
        // Peer: echo, and close when the client did and all went back.
        while let Ok((h, _)) = net.peer.tcp_accept(echo) {
            echoes.push(PeerConn {
                h,
                buf: Vec::new(),
                sent: 0,
                eof: false,
                closed: false,
            });
        }
        for e in echoes.iter_mut().filter(|e| !e.closed) {
            e.eof |= recv_some(&mut net.peer, e.h, &mut e.buf);
            send_some(&mut net.peer, e.h, &e.buf, &mut e.sent);
            if e.eof && e.sent == e.buf.len() {
                net.peer.tcp_close(e.h).unwrap();
                e.closed = true;
            }
        }
        // Peer: senders send all, then close.
        for p in senders.iter_mut().filter(|p| !p.closed) {
            send_some(&mut net.peer, p.h, &p.buf, &mut p.sent);
            if p.sent == p.buf.len() {
                net.peer.tcp_close(p.h).unwrap();
                p.closed = true;
            }
        }
        let done = clients.iter().all(|c| c.closed)
            && echoes.len() == clients.len()
            && echoes.iter().all(|e| e.closed)
            && senders.iter().all(|p| p.closed)
            && (0..2).all(|k| served[k].len() == expected[k].len() && served[k].iter().all(|c| c.2));
        if done {
            break;
        }
    }
    for c in &clients {
        assert!(c.got == c.data, "shard {} port {}: echo differs", c.shard, c.port);
    }
    for k in 0..2 {
        let mut got: Vec<Vec<u8>> = served[k].iter().map(|c| c.1.clone()).collect();
        got.sort();
        expected[k].sort();
        assert!(got == expected[k], "shard {k} received other bytes");
    }
    // Nothing went to the wrong shard: no segment found no socket.
    for (k, s) in net.shards.iter().enumerate() {
        assert_eq!(s.tcp_counters().no_socket, 0, "shard {k}");
        assert_eq!(s.tcp_counters().failed, 0, "shard {k}");
    }
    assert_eq!(net.peer.tcp_counters().no_socket, 0);
    assert!(net.delivered.iter().all(|&n| n > 100), "{:?}", net.delivered);
    // The peer's connections to shard 1's listener were steered by port:
    // some of them hash to shard 0.
    assert!(
        (0..2).any(|k| served[k]
            .iter()
            .any(|c| net.steer.tcp_owner(c.3.ip(), c.3.port(), listen_ports[k]) != k)),
        "some accepted connection needed its port's registration"
    );

    // The clients closed first: TIME-WAIT holds their ports.
    for c in &clients {
        assert_eq!(ports.get(c.port), hashed(c.shard), "port {} in TIME-WAIT", c.port);
    }
    for _ in 0..70 {
        net.turn(Duration::from_secs(1));
    }
    for c in &clients {
        assert_eq!(ports.get(c.port), None, "port {} after TIME-WAIT", c.port);
    }
    for (k, &lp) in listen_ports.iter().enumerate() {
        assert_eq!(ports.get(lp), by_port(k));
        net.shards[k].tcp_close(listeners[k]).unwrap();
        assert_eq!(ports.get(lp), None);
    }
    assert!((0..=u16::MAX).all(|p| ports.get(p).is_none()), "every port released");
}

#[test]
fn a_refused_socket_connecting_elsewhere_keeps_its_port_steered_by_port() {
    let (mut net, ports) = Steered::new();
    let tick = Duration::from_millis(1);
    // Nothing listens on the peer's port 81: refused.
    let c = net.shards[1].tcp_open(Family::V4);
    net.shards[1].tcp_connect(c, sa(PEER, 81)).unwrap();
    let p = net.shards[1].tcp_local_addr(c).unwrap().unwrap().port();
    assert_eq!(ports.get(p), hashed(1));
    for _ in 0..50 {
        net.turn(tick);
    }
    assert_eq!(
        net.shards[1].tcp_take_error(c),
        Ok(Some(SocketError::ConnectionRefused))
    );
    // Again, from the same port, to a port whose hash names shard 0.
    let rp = (1000..u16::MAX)
        .find(|&rp| net.steer.tcp_owner(IpAddr::V4(PEER), rp, p) == 0)
        .unwrap();
    let l = net.peer.tcp_open(Family::V4);
    net.peer.tcp_bind(l, any(rp)).unwrap();
    net.peer.tcp_listen(l, 8).unwrap();
    net.shards[1].tcp_connect(c, sa(PEER, rp)).unwrap();
    assert_eq!(
        net.shards[1].tcp_local_addr(c).unwrap().unwrap().port(),
        p,
        "the port stays"
    );
    assert_eq!(ports.get(p), by_port(1));
    for _ in 0..50 {
        net.turn(tick);
    }
    assert_eq!(
        net.shards[1].tcp_state(c),
        Ok(Some(crate::tcp::tcb::State::Established))
    );
    assert_eq!(net.shards[0].tcp_counters().no_socket, 0);
}
