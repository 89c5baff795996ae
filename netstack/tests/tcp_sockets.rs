//! The TCP socket layer between two Joyride stacks on a clean simulated
//! link: what a program sees from each call, errno for errno as on Linux —
//! connect/accept, refused ports, the accept backlog, bind conflicts,
//! `SO_REUSEPORT` spreading, half-close, RST on close with unread data,
//! `SO_LINGER` 0, TIME-WAIT and its reuse, SYN cookies, ICMP errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use joyride_netstack::iface::route::Ipv6Cidr;
use joyride_netstack::iface::{Config, Family, Interface, Ipv4Cidr, SocketError, SocketHandle};
use joyride_netstack::sim::{LinkConfig, MemoryNic, NodeId, SimNetwork, SimNode};
use joyride_netstack::tcp::tcb::State;
use joyride_netstack::time::Instant;
use joyride_netstack::wire::EthernetAddress;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 1, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 1, 0xb];
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 2);
const IP6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 8, 0, 0, 0, 0, 0, 2);

struct Host(Interface);

impl SimNode for Host {
    fn poll(&mut self, now: Instant, nic: &mut MemoryNic) {
        self.0.poll(now, nic);
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.0.poll_at()
    }
}

struct Pair {
    net: SimNetwork<Host>,
    a: NodeId,
    b: NodeId,
}

fn host(mac: [u8; 6], v4: Ipv4Addr, v6: Ipv6Addr, tweak: impl FnOnce(&mut Config)) -> Host {
    let mut c = Config::new(EthernetAddress(mac));
    c.ipv4 = Some(Ipv4Cidr::new(v4, 24));
    c.ipv6 = vec![Ipv6Cidr::new(v6, 64)];
    tweak(&mut c);
    Host(Interface::new(c))
}

impl Pair {
    fn new() -> Pair {
        Pair::with(|_| {})
    }

    fn with(tweak_b: impl FnOnce(&mut Config)) -> Pair {
        let mut net = SimNetwork::new(7);
        let a = net.add_node(
            host(MAC_A, IP_A, Ipv6Addr::new(0xfd00, 8, 0, 0, 0, 0, 0, 1), |_| {}),
            MemoryNic::new(MAC_A),
        );
        let b = net.add_node(host(MAC_B, IP_B, IP6_B, tweak_b), MemoryNic::new(MAC_B));
        net.connect(
            a,
            b,
            LinkConfig {
                latency: Duration::from_millis(1),
                ..LinkConfig::default()
            },
        );
        Pair { net, a, b }
    }

    fn a(&mut self) -> &mut Interface {
        &mut self.net.node_mut(self.a).0
    }

    fn b(&mut self) -> &mut Interface {
        &mut self.net.node_mut(self.b).0
    }

    /// Lets the network run for `ms` milliseconds after a call.
    fn run(&mut self, ms: u64) {
        self.net.kick(self.a);
        self.net.kick(self.b);
        self.net.run_for(Duration::from_millis(ms)).unwrap();
    }

    fn listen(&mut self, port: u16, backlog: u32) -> SocketHandle {
        let l = self.b().tcp_open(Family::V4);
        self.b().tcp_bind(l, sa(Ipv4Addr::UNSPECIFIED, port)).unwrap();
        self.b().tcp_listen(l, backlog).unwrap();
        l
    }

    fn connect(&mut self, port: u16) -> SocketHandle {
        let s = self.a().tcp_open(Family::V4);
        self.a().tcp_connect(s, sa(IP_B, port)).unwrap();
        s
    }
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// Reads everything there is.
fn read_all(i: &mut Interface, s: SocketHandle) -> Result<Vec<u8>, SocketError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match i.tcp_recv(s, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(SocketError::WouldBlock) => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn connect_accept_exchange_and_close() {
    let mut p = Pair::new();
    let l = p.listen(80, 8);
    let c = p.connect(80);
    // Non-blocking connect: in progress, not yet writable.
    assert!(!p.a().tcp_readiness(c).unwrap().writable);
    assert_eq!(p.a().tcp_send(c, b"x"), Err(SocketError::WouldBlock));
    assert_eq!(p.a().tcp_connect(c, sa(IP_B, 80)), Err(SocketError::AlreadyInProgress));
    p.run(10);
    assert!(p.a().tcp_readiness(c).unwrap().writable, "EPOLLOUT once established");
    assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::Established));
    assert_eq!(p.a().tcp_connect(c, sa(IP_B, 80)), Err(SocketError::IsConnected));
    assert!(p.b().tcp_readiness(l).unwrap().readable, "the listener is readable");
    let (s, peer) = p.b().tcp_accept(l).unwrap();
    assert_eq!(p.b().tcp_accept(l), Err(SocketError::WouldBlock));
    let local_a = p.a().tcp_local_addr(c).unwrap().unwrap();
    assert_eq!(peer, local_a);
    assert_eq!(p.b().tcp_peer_addr(s).unwrap(), Some(local_a));
    assert_eq!(p.b().tcp_local_addr(s).unwrap(), Some(sa(IP_B, 80)));
    assert!((32768..=60999).contains(&local_a.port()));
    assert_eq!(p.a().tcp_send(c, b"hello").unwrap(), 5);
    p.run(10);
    assert_eq!(read_all(p.b(), s).unwrap(), b"hello");
    // Half-close: a's FIN; b reads end of file, and can still send.
    p.a().tcp_shutdown(c, false, true).unwrap();
    p.run(10);
    assert_eq!(p.b().tcp_recv(s, &mut [0; 8]), Ok(0));
    assert_eq!(p.b().tcp_state(s).unwrap(), Some(State::CloseWait));
    assert_eq!(p.b().tcp_send(s, b"bye").unwrap(), 3);
    p.b().tcp_close(s).unwrap();
    p.run(10);
    assert_eq!(read_all(p.a(), c).unwrap(), b"bye");
    assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::TimeWait));
    p.a().tcp_close(c).unwrap();
    assert_eq!(
        p.a().tcp_send(c, b"x"),
        Err(SocketError::BadHandle),
        "closed handles are invalid"
    );
    // The active closer holds TIME-WAIT, then nothing is left.
    assert_eq!(p.a().tcp_socket_count(), 1);
    p.run(61_000);
    assert_eq!(p.a().tcp_socket_count(), 0);
    assert_eq!(p.b().tcp_socket_count(), 1, "only the listener");
    assert_eq!(p.a().tcp_counters().active_opens, 1);
    assert_eq!(p.b().tcp_counters().passive_opens, 1);
}

#[test]
fn closed_port_refuses_with_rst() {
    let mut p = Pair::new();
    let c = p.connect(81);
    p.run(10);
    assert_eq!(p.a().tcp_take_error(c).unwrap(), Some(SocketError::ConnectionRefused));
    assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::Closed));
    assert!(p.b().tcp_counters().rst_sent >= 1);
    // A socket whose connect failed may connect again.
    let l = p.listen(81, 4);
    p.a().tcp_connect(c, sa(IP_B, 81)).unwrap();
    p.run(10);
    assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::Established));
    assert!(p.b().tcp_accept(l).is_ok());
}

#[test]
fn unconnected_sockets_answer_like_linux() {
    let mut p = Pair::new();
    let s = p.a().tcp_open(Family::V4);
    assert_eq!(p.a().tcp_recv(s, &mut [0; 4]), Err(SocketError::NotConnected));
    assert_eq!(p.a().tcp_send(s, b"x"), Err(SocketError::BrokenPipe));
    let r = p.a().tcp_readiness(s).unwrap();
    assert!(
        r.writable && r.hung_up,
        "EPOLLOUT|EPOLLHUP as Linux's tcp_poll for a closed socket"
    );
    assert_eq!(p.a().tcp_accept(s).map(|_| ()), Err(SocketError::InvalidState));
    assert_eq!(p.a().tcp_shutdown(s, true, true), Err(SocketError::NotConnected));
    assert_eq!(p.a().tcp_set_congestion(s, "bbr9"), Err(SocketError::NotFound));
    p.a().tcp_set_congestion(s, "newreno").unwrap();
    assert_eq!(p.a().tcp_congestion(s).unwrap(), "newreno");
    assert_eq!(
        p.a().tcp_set_send_buffer(s, 10_000).unwrap(),
        20_000,
        "doubled as Linux does"
    );
    assert_eq!(
        p.a().tcp_connect(s, sa(Ipv6Addr::LOCALHOST, 1)),
        Err(SocketError::AddressFamily)
    );
    assert_eq!(
        p.a().tcp_connect(s, sa(Ipv4Addr::new(224, 0, 0, 1), 1)),
        Err(SocketError::NetworkUnreachable)
    );
    assert_eq!(
        p.a().tcp_bind(s, sa(Ipv4Addr::new(10, 8, 0, 77), 1)),
        Err(SocketError::AddrNotAvailable)
    );
}

#[test]
fn bind_conflicts_follow_linux() {
    let mut p = Pair::new();
    let l = p.listen(8080, 4);
    let i = p.b();
    let s = i.tcp_open(Family::V4);
    assert_eq!(i.tcp_bind(s, sa(IP_B, 8080)), Err(SocketError::AddrInUse));
    // SO_REUSEADDR does not share a port with a listener.
    i.tcp_set_reuse_addr(l, true).unwrap();
    i.tcp_set_reuse_addr(s, true).unwrap();
    assert_eq!(i.tcp_bind(s, sa(IP_B, 8080)), Err(SocketError::AddrInUse));
    // But two non-listening sockets with SO_REUSEADDR may share one.
    let x = i.tcp_open(Family::V4);
    let y = i.tcp_open(Family::V4);
    i.tcp_set_reuse_addr(x, true).unwrap();
    i.tcp_set_reuse_addr(y, true).unwrap();
    i.tcp_bind(x, sa(IP_B, 9000)).unwrap();
    i.tcp_bind(y, sa(IP_B, 9000)).unwrap();
    // Only one of them may listen.
    i.tcp_listen(x, 1).unwrap();
    assert_eq!(i.tcp_listen(y, 1), Err(SocketError::AddrInUse));
    // A dual-stack IPv6 wildcard conflicts with an IPv4 wildcard.
    let v6 = i.tcp_open(Family::V6 { v6only: false });
    assert_eq!(
        i.tcp_bind(v6, sa(Ipv6Addr::UNSPECIFIED, 8080)),
        Err(SocketError::AddrInUse)
    );
    let v6only = i.tcp_open(Family::V6 { v6only: true });
    i.tcp_bind(v6only, sa(Ipv6Addr::UNSPECIFIED, 8080)).unwrap();
}

#[test]
fn reuseport_listeners_share_connections() {
    let mut p = Pair::new();
    let mut ls = Vec::new();
    for _ in 0..2 {
        let i = p.b();
        let l = i.tcp_open(Family::V4);
        i.tcp_set_reuse_port(l, true).unwrap();
        i.tcp_bind(l, sa(Ipv4Addr::UNSPECIFIED, 443)).unwrap();
        i.tcp_listen(l, 64).unwrap();
        ls.push(l);
    }
    for _ in 0..40 {
        p.connect(443);
    }
    p.run(20);
    let counts: Vec<usize> = ls
        .iter()
        .map(|&l| std::iter::from_fn(|| p.b().tcp_accept(l).ok()).count())
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 40);
    assert!(counts.iter().all(|&n| n >= 8), "spread by flow hash: {counts:?}");
}

#[test]
fn full_accept_queue_drops_and_the_client_retries() {
    let mut p = Pair::new();
    let l = p.listen(25, 1);
    // backlog 1: the queue holds two (Linux: backlog + 1).
    let cs: Vec<_> = (0..4).map(|_| p.connect(25)).collect();
    p.run(50);
    let est = |p: &mut Pair| {
        cs.iter()
            .filter(|&&c| p.a().tcp_state(c).unwrap() == Some(State::Established))
            .count()
    };
    assert!(p.b().tcp_counters().listen_overflows > 0);
    let first: Vec<_> = std::iter::from_fn(|| p.b().tcp_accept(l).ok()).collect();
    assert_eq!(first.len(), 2, "backlog + 1 queued");
    // The others' SYNs were dropped; their retransmissions get in now.
    p.run(3_500);
    let rest: Vec<_> = std::iter::from_fn(|| p.b().tcp_accept(l).ok()).collect();
    assert_eq!(first.len() + rest.len(), 4);
    assert_eq!(est(&mut p), 4);
}

#[test]
fn close_with_unread_data_resets_and_linger_zero_resets() {
    let mut p = Pair::new();
    let l = p.listen(7, 4);
    let c = p.connect(7);
    p.run(10);
    let (s, _) = p.b().tcp_accept(l).unwrap();
    p.a().tcp_send(c, b"unread").unwrap();
    p.run(10);
    p.b().tcp_close(s).unwrap();
    p.run(10);
    assert_eq!(p.a().tcp_take_error(c).unwrap(), Some(SocketError::ConnectionReset));
    assert_eq!(p.a().tcp_send(c, b"x"), Err(SocketError::BrokenPipe));
    // SO_LINGER 0: close resets at once, no TIME-WAIT.
    let c2 = p.connect(7);
    p.run(10);
    let (s2, _) = p.b().tcp_accept(l).unwrap();
    p.a().tcp_set_linger_zero(c2, true).unwrap();
    p.a().tcp_close(c2).unwrap();
    p.run(10);
    assert_eq!(p.b().tcp_recv(s2, &mut [0; 4]), Err(SocketError::ConnectionReset));
    assert_eq!(
        p.a().tcp_socket_count(),
        1,
        "the reset connection is gone; the first waits to be closed"
    );
}

#[test]
fn time_wait_is_reused_by_a_newer_syn() {
    let mut p = Pair::new();
    let l = p.listen(9, 4);
    let c = p.a().tcp_open(Family::V4);
    p.a().tcp_bind(c, sa(IP_A, 40000)).unwrap();
    p.a().tcp_connect(c, sa(IP_B, 9)).unwrap();
    p.run(10);
    let (s, _) = p.b().tcp_accept(l).unwrap();
    // The server closes first: it holds TIME-WAIT.
    p.b().tcp_close(s).unwrap();
    p.run(10);
    p.a().tcp_close(c).unwrap();
    p.run(10);
    assert_eq!(p.b().tcp_socket_count(), 2, "listener and the TIME-WAIT connection");
    // The same 4-tuple again within 2 MSL: the new SYN (newer timestamp)
    // takes over.
    p.run(1_000);
    let c = p.a().tcp_open(Family::V4);
    p.a().tcp_set_reuse_addr(c, true).unwrap();
    p.a().tcp_bind(c, sa(IP_A, 40000)).unwrap();
    p.a().tcp_connect(c, sa(IP_B, 9)).unwrap();
    p.run(10);
    assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::Established));
    assert_eq!(p.b().tcp_counters().time_wait_reused, 1);
    assert!(p.b().tcp_accept(l).is_ok());
}

#[test]
fn syn_cookies_when_the_syncache_overflows() {
    let mut p = Pair::with(|c| {
        c.tcp.syncache.buckets = 1;
        c.tcp.syncache.bucket_limit = 2;
        c.tcp.syncache.cache_limit = 2;
    });
    let l = p.listen(22, 64);
    let cs: Vec<_> = (0..10).map(|_| p.connect(22)).collect();
    p.run(50);
    let accepted = std::iter::from_fn(|| p.b().tcp_accept(l).ok()).count();
    assert_eq!(accepted, 10);
    for c in cs {
        assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::Established));
    }
    let st = *p.b().tcp_syncache_stats();
    assert!(st.cookies_sent >= 8 && st.cookies_valid >= 8, "{st:?}");
}

#[test]
fn ipv6_and_dual_stack_listeners() {
    let mut p = Pair::new();
    let i = p.b();
    let l = i.tcp_open(Family::V6 { v6only: false });
    i.tcp_bind(l, sa(Ipv6Addr::UNSPECIFIED, 80)).unwrap();
    i.tcp_listen(l, 8).unwrap();
    let c4 = p.connect(80);
    let c6 = p.a().tcp_open(Family::V6 { v6only: false });
    p.a().tcp_connect(c6, sa(IP6_B, 80)).unwrap();
    p.run(10);
    assert_eq!(p.a().tcp_state(c4).unwrap(), Some(State::Established));
    assert_eq!(p.a().tcp_state(c6).unwrap(), Some(State::Established));
    let peers: Vec<SocketAddr> = std::iter::from_fn(|| p.b().tcp_accept(l).ok())
        .map(|(_, a)| a)
        .collect();
    assert_eq!(peers.len(), 2);
    // The IPv4 client appears mapped to the IPv6 listener.
    assert!(peers
        .iter()
        .any(|a| matches!(a.ip(), IpAddr::V6(v) if v.to_ipv4_mapped() == Some(IP_A))));
}

#[test]
fn connect_to_a_host_that_is_not_there_fails_with_ehostunreach() {
    let mut p = Pair::new();
    let c = p.a().tcp_open(Family::V4);
    p.a().tcp_connect(c, sa(Ipv4Addr::new(10, 8, 0, 99), 80)).unwrap();
    p.run(2_500);
    assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::SynSent), "ARP still trying");
    // Three unanswered ARP requests, one second apart: the neighbor layer
    // reports the SYN undeliverable and the connect fails as on Linux.
    p.run(1_000);
    assert_eq!(p.a().tcp_take_error(c).unwrap(), Some(SocketError::HostUnreachable));
    assert_eq!(p.a().tcp_state(c).unwrap(), Some(State::Closed));
    assert!(p.a().tcp_readiness(c).unwrap().hung_up);
}
