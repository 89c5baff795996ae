//! Two Joyride stacks talking TCP over a simulated, impaired link: loss,
//! reordering, duplication, corruption and a partition that heals. Every
//! run is one seed; a failure names its seed and replays exactly.
//!
//! The suite runs 5,000 seeds (the issue asks for at least 2,000). More: `JOYRIDE_TCP_SEEDS=20000 cargo test
//! --release -p joyride-netstack --test tcp_sim` (and `JOYRIDE_TCP_SEED_BASE`
//! to start elsewhere).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use joyride_netstack::iface::route::Ipv6Cidr;
use joyride_netstack::iface::{Config, Family, Interface, Ipv4Cidr, SocketError, SocketHandle};
use joyride_netstack::sim::{LinkConfig, MemoryNic, NodeId, SimNetwork, SimNode, SimRng};
use joyride_netstack::tcp::tcb::State;
use joyride_netstack::time::Instant;
use joyride_netstack::wire::EthernetAddress;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const IP6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 1);
const IP6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 2);
const PORT: u16 = 7000;

/// The byte at offset `i` of the stream a seed sends.
fn pattern(seed: u64, dir: u8, i: usize) -> u8 {
    let x =
        (i as u64 ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (dir as u64) << 62).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8
}

/// One connection's program: writes `to_send` bytes, then shuts down
/// writing; reads until end of file, checking every byte; then closes.
#[derive(Debug)]
struct Flow {
    sock: SocketHandle,
    dir: u8,
    to_send: usize,
    sent: usize,
    expect: usize,
    received: usize,
    eof: bool,
    closed: bool,
    shut: bool,
    error: Option<SocketError>,
}

impl Flow {
    fn new(sock: SocketHandle, dir: u8, to_send: usize, expect: usize) -> Self {
        Flow {
            sock,
            dir,
            to_send,
            sent: 0,
            expect,
            received: 0,
            eof: false,
            closed: false,
            shut: false,
            error: None,
        }
    }

    fn run(&mut self, seed: u64, iface: &mut Interface, buf: &mut [u8]) {
        if self.closed {
            return;
        }
        while self.sent < self.to_send {
            let n = (self.to_send - self.sent).min(buf.len());
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(seed, self.dir, self.sent + k);
            }
            match iface.tcp_send(self.sock, &buf[..n]) {
                Ok(k) => self.sent += k,
                Err(SocketError::WouldBlock) => break,
                Err(e) => {
                    self.error = Some(e);
                    self.closed = true;
                    let _ = iface.tcp_close(self.sock);
                    return;
                }
            }
        }
        if self.sent == self.to_send && !self.shut {
            iface.tcp_shutdown(self.sock, false, true).unwrap();
            self.shut = true;
        }
        loop {
            match iface.tcp_recv(self.sock, buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    for (k, &b) in buf[..n].iter().enumerate() {
                        let want = pattern(seed, self.dir ^ 1, self.received + k);
                        assert_eq!(
                            b,
                            want,
                            "seed {seed}: byte {} of flow {} corrupted",
                            self.received + k,
                            self.dir
                        );
                    }
                    self.received += n;
                    assert!(self.received <= self.expect, "seed {seed}: more bytes than sent");
                }
                Err(SocketError::WouldBlock) => break,
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            }
        }
        if (self.eof && self.shut) || self.error.is_some() {
            iface.tcp_close(self.sock).unwrap();
            self.closed = true;
        }
    }
}

/// A stack and its program.
struct Host {
    iface: Interface,
    seed: u64,
    listener: Option<SocketHandle>,
    flows: Vec<Flow>,
    /// For a server: bytes each accepted connection sends back.
    reply: usize,
    expect: usize,
    buf: Vec<u8>,
}

impl Host {
    /// A host whose program sends and checks the streams of `seed`.
    fn new(mac: [u8; 6], v4: Ipv4Addr, v6: Ipv6Addr, seed: u64) -> Self {
        let mut c = Config::new(EthernetAddress(mac));
        c.ipv4 = Some(Ipv4Cidr::new(v4, 24));
        c.ipv6 = vec![Ipv6Cidr::new(v6, 64)];
        // Each stack's own randomness (ports, ISNs) differs per host.
        c.seed = seed ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
        // Small buffers: windows close and open, and the runs stay short.
        c.tcp.send_buffer = 24 * 1024;
        c.tcp.recv_buffer = 32 * 1024;
        Host {
            iface: Interface::new(c),
            seed,
            listener: None,
            flows: Vec::new(),
            reply: 0,
            expect: 0,
            buf: vec![0; 4096],
        }
    }

    fn program(&mut self) {
        if let Some(l) = self.listener {
            while let Ok((s, _peer)) = self.iface.tcp_accept(l) {
                self.flows.push(Flow::new(s, 1, self.reply, self.expect));
            }
        }
        for f in &mut self.flows {
            f.run(self.seed, &mut self.iface, &mut self.buf);
        }
    }
}

impl SimNode for Host {
    fn poll(&mut self, now: Instant, nic: &mut MemoryNic) {
        self.iface.poll(now, nic);
        self.iface.drain_events().for_each(drop);
        self.program();
        self.iface.poll(now, nic);
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.iface.poll_at()
    }
}

struct Outcome {
    elapsed: Duration,
}

/// One seed: `conns` connections from A to B over an impaired link, each
/// sending a seed-chosen amount both ways.
fn run_seed(seed: u64) -> Outcome {
    let mut rng = SimRng::new(seed ^ 0x7463_705f_7369_6d00);
    let v6 = rng.chance(0.3);
    let up = 1 + rng.below(48 * 1024) as usize;
    let down = rng.below(32 * 1024) as usize;
    let conns = 1 + rng.below(3) as usize;
    let mut net: SimNetwork<Host> = SimNetwork::new(seed);
    net.set_max_steps(5_000_000);
    let mut a = Host::new(MAC_A, IP_A, IP6_A, seed);
    let mut b = Host::new(MAC_B, IP_B, IP6_B, seed);
    b.reply = down;
    b.expect = up;
    let l = b
        .iface
        .tcp_open(if v6 { Family::V6 { v6only: false } } else { Family::V4 });
    b.iface
        .tcp_bind(
            l,
            SocketAddr::new(
                if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                },
                PORT,
            ),
        )
        .unwrap();
    b.iface.tcp_listen(l, 16).unwrap();
    b.listener = Some(l);
    let dst = if v6 { IpAddr::V6(IP6_B) } else { IpAddr::V4(IP_B) };
    for _ in 0..conns {
        let s = a
            .iface
            .tcp_open(if v6 { Family::V6 { v6only: false } } else { Family::V4 });
        a.iface.tcp_connect(s, SocketAddr::new(dst, PORT)).unwrap();
        a.flows.push(Flow::new(s, 0, up, down));
    }
    let link = LinkConfig {
        latency: Duration::from_micros(200 + rng.below(20_000)),
        jitter: Duration::from_micros(rng.below(2_000)),
        loss: 0.05,
        duplicate: 0.01,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(1 + rng.below(10)),
        corrupt: 0.01,
        rate_bps: Some(10_000_000 + rng.below(90_000_000)),
        queue_limit: 200,
        ..LinkConfig::default()
    };
    // Static neighbors: ARP and NDP carry no checksum, so a corrupted reply
    // poisons a cache until neighbor unreachability detection repairs it
    // (some 40 s, as on Linux). That is the neighbor cache's business, tested
    // on its own; here corruption is TCP's to survive.
    for (h, ip, ip6, mac) in [(&mut a, IP_B, IP6_B, MAC_B), (&mut b, IP_A, IP6_A, MAC_A)] {
        h.iface
            .arp_cache()
            .insert_static(Instant::ZERO, ip, EthernetAddress(mac));
        h.iface
            .ndp_cache()
            .insert_static(Instant::ZERO, ip6, EthernetAddress(mac));
    }
    let ia = net.add_node(a, MemoryNic::new(MAC_A));
    let ib = net.add_node(b, MemoryNic::new(MAC_B));
    net.connect(ia, ib, link);
    let start = net.now();
    let cut = start + Duration::from_millis(rng.below(2_000));
    let heal = cut + Duration::from_millis(100 + rng.below(5_000));
    net.partition(&[ia], &[ib], cut, heal);
    net.kick(ia);
    // Every connection must finish well inside this: transfers take
    // seconds; retransmission backoff after the partition and TIME-WAIT
    // (60 s) bound the rest.
    let limit = Duration::from_secs(300);
    let deadline = start + limit;
    loop {
        let done = {
            let (a, b) = (net.node(ia), net.node(ib));
            let all_closed = |h: &Host| h.flows.iter().all(|f| f.closed);
            let failed = a.flows.iter().any(|f| f.error.is_some());
            all_closed(a) && all_closed(b) && (b.flows.len() == conns || failed)
        };
        if done {
            break;
        }
        assert!(
            net.now() < deadline,
            "seed {seed}: not done after {limit:?}: {}",
            report(&net, ia, ib)
        );
        net.run_for(Duration::from_millis(50))
            .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
    }
    let elapsed = net.now() - start;
    for (who, id) in [("client", ia), ("server", ib)] {
        for f in &net.node(id).flows {
            assert_eq!(
                f.error,
                None,
                "seed {seed}: {who} flow failed: {}",
                report(&net, ia, ib)
            );
            assert_eq!(f.received, f.expect, "seed {seed}: {who} received");
            assert_eq!(f.sent, f.to_send, "seed {seed}: {who} sent");
        }
    }
    // Then every connection reaches CLOSED: TIME-WAIT ends after 2 MSL
    // (60 s); a FIN whose last ACK was lost is retransmitted with backoff
    // (intervals up to 120 s) until the peer's RST or ACK ends LAST-ACK.
    // Nothing is left in either table.
    net.run_for(Duration::from_secs(600)).unwrap();
    assert_eq!(
        net.node(ia).iface.tcp_socket_count(),
        0,
        "seed {seed}: client sockets left"
    );
    assert_eq!(
        net.node(ib).iface.tcp_socket_count(),
        1,
        "seed {seed}: server keeps only its listener"
    );
    Outcome { elapsed }
}

fn report(net: &SimNetwork<Host>, ia: NodeId, ib: NodeId) -> String {
    let mut s = String::new();
    for (who, id) in [("client", ia), ("server", ib)] {
        let h = net.node(id);
        for f in &h.flows {
            let st = h.iface.tcp_state(f.sock).ok().flatten().unwrap_or(State::Closed);
            let info = h.iface.tcp_info(f.sock).ok().flatten();
            s += &format!(
                "\n  {who}: sent {}/{} received {}/{} eof {} closed {} error {:?} state {st} {info:?}",
                f.sent, f.to_send, f.received, f.expect, f.eof, f.closed, f.error
            );
        }
        s += &format!("\n  {who} counters: {:?}", h.iface.tcp_counters());
        s += &format!("\n  {who} interface: {:?}", h.iface.counters());
    }
    s
}

#[test]
fn five_thousand_seeds_of_impaired_transfers() {
    let seeds: u64 = std::env::var("JOYRIDE_TCP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let base: u64 = std::env::var("JOYRIDE_TCP_SEED_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut worst = Duration::ZERO;
    for seed in base..base + seeds {
        let o = run_seed(seed);
        worst = worst.max(o.elapsed);
    }
    eprintln!("{seeds} seeds; slowest transfer {worst:?} of virtual time");
}
