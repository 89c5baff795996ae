//! [`MemoryPair`]: two interfaces on one in-memory wire, for benchmarks and
//! tests that want a connected TCP pair and full control of when frames
//! move, without a simulated network's links.

use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::MemoryNic;
use crate::iface::{Config, Family, Interface, Ipv4Cidr, SocketHandle};
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// Interface `a` (10.9.0.1/24) and interface `b` (10.9.0.2/24), MTU 1500,
/// each with a [`MemoryNic`] (4,096 frames each way) and the other's
/// Ethernet address as a static neighbour (no ARP exchange, no reachability
/// probes however long a run lasts). Frames move only in
/// [`MemoryPair::settle`], or by hand through the public devices.
pub struct MemoryPair {
    /// The first interface.
    pub a: Interface,
    /// `a`'s device.
    pub na: MemoryNic,
    /// The second interface.
    pub b: Interface,
    /// `b`'s device.
    pub nb: MemoryNic,
    /// The virtual clock both are polled with.
    pub now: Instant,
}

impl MemoryPair {
    /// `a`'s Ethernet address.
    pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    /// `b`'s Ethernet address.
    pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    /// `a`'s address.
    pub const IP_A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    /// `b`'s address.
    pub const IP_B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

    /// The two interfaces at virtual time 1 s, nothing sent yet.
    pub fn new() -> MemoryPair {
        let (a, na) = Self::host(Self::MAC_A, Self::IP_A, Self::IP_B, Self::MAC_B);
        let (b, nb) = Self::host(Self::MAC_B, Self::IP_B, Self::IP_A, Self::MAC_A);
        MemoryPair {
            a,
            na,
            b,
            nb,
            now: Instant::from_secs(1),
        }
    }

    fn host(mac: [u8; 6], ip: Ipv4Addr, peer_ip: Ipv4Addr, peer_mac: [u8; 6]) -> (Interface, MemoryNic) {
        let mut c = Config::new(EthernetAddress(mac));
        c.ipv4 = Some(Ipv4Cidr::new(ip, 24));
        let mut i = Interface::new(c);
        i.arp_cache()
            .insert_static(Instant::ZERO, peer_ip, EthernetAddress(peer_mac));
        let mut nic = MemoryNic::new(mac);
        nic.set_queue_limits(4096, 4096);
        (i, nic)
    }

    /// A TCP connection from `a` to `b`'s `port`, handshake done (settled
    /// in steps of `tick`): the socket on `a` and the one `b` accepted.
    pub fn connect_tcp(&mut self, port: u16, tick: Duration) -> (SocketHandle, SocketHandle) {
        let l = self.b.tcp_open(Family::V4);
        self.b
            .tcp_bind(l, SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
            .expect("bind");
        self.b.tcp_listen(l, 8).expect("listen");
        let client = self.a.tcp_open(Family::V4);
        self.a
            .tcp_connect(client, SocketAddr::new(IpAddr::V4(Self::IP_B), port))
            .expect("connect");
        self.settle(tick, |_| {});
        let (server, _) = self.b.tcp_accept(l).expect("accepted");
        (client, server)
    }

    /// Advances the clock by `tick`, polls both interfaces (dropping their
    /// events), calls `each_turn` with `b` (to let a program there read,
    /// say), and moves every transmitted frame across; repeats until a turn
    /// moves nothing and both devices' receive queues are empty. Panics if
    /// that takes 100,000 turns, or a device's queue overflows.
    pub fn settle(&mut self, tick: Duration, mut each_turn: impl FnMut(&mut Interface)) {
        for _ in 0..100_000 {
            self.now += tick;
            self.a.poll(self.now, &mut self.na);
            self.b.poll(self.now, &mut self.nb);
            self.a.drain_events().for_each(drop);
            self.b.drain_events().for_each(drop);
            each_turn(&mut self.b);
            let mut moved = false;
            while let Some(f) = self.na.pop_transmitted() {
                assert!(self.nb.inject(f), "b's receive queue is full");
                moved = true;
            }
            while let Some(f) = self.nb.pop_transmitted() {
                assert!(self.na.inject(f), "a's receive queue is full");
                moved = true;
            }
            if !moved && self.na.rx_len() == 0 && self.nb.rx_len() == 0 {
                return;
            }
        }
        panic!("the pair did not settle in 100,000 turns");
    }
}

impl Default for MemoryPair {
    fn default() -> Self {
        MemoryPair::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_and_carries_bytes() {
        let mut p = MemoryPair::new();
        let tick = Duration::from_micros(50);
        let (c, s) = p.connect_tcp(5001, tick);
        assert_eq!(p.a.tcp_send(c, b"hello"), Ok(5));
        let mut got = Vec::new();
        p.settle(tick, |b| {
            let mut buf = [0u8; 16];
            while let Ok(n) = b.tcp_recv(s, &mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        });
        assert_eq!(got, b"hello");
        // The lone segment's ACK is delayed: past the timer, it comes.
        p.now += Duration::from_millis(500);
        p.settle(tick, |_| {});
        assert_eq!(p.a.tcp_queued(c).unwrap(), (0, 0), "acknowledged");
    }
}
