//! The whole interface fed random frames under a virtual clock.
//!
//! Input: a sequence of records `[ctl, len_hi, len_lo, frame...]`. Each
//! frame is received at the current virtual time, then the clock advances
//! by `(ctl & 0x7f) * 37` ms. With bit 7 of `ctl` set the device vouches for
//! the IPv4 and L4 checksums (offload), so mutated frames get past them. Sockets are open (bound, dual-stack, connected) and send now
//! and then, so neighbor resolution, fragmentation and ICMP error delivery
//! run too. TCP too: a dual-stack listener whose connections are accepted,
//! read, written and closed, and a connection of our own, so segments meet
//! the demultiplexer, the syncache (with cookies: it is tiny), live
//! tcpcbs, TIME-WAIT and RST replies. Nothing may panic; counters must add
//! up; memory stays bounded (socket count).
#![no_main]
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use joyride_netstack::iface::{Config, Family, Interface, Ipv4Cidr, Ipv6Cidr};
use joyride_netstack::nic::{Capabilities, ChecksumCaps, Nic, RxMeta, TxFull, TxMeta};
use joyride_netstack::time::Instant;
use joyride_netstack::wire::EthernetAddress;
use libfuzzer_sys::fuzz_target;

struct FuzzNic {
    rx: VecDeque<(Vec<u8>, RxMeta)>,
    sent: usize,
}

impl Nic for FuzzNic {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mtu: 1500,
            max_burst: 8,
            checksum: ChecksumCaps::default(),
        }
    }
    fn mac(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 1]
    }
    fn receive<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, mut f: F) -> usize {
        let mut n = 0;
        while n < max {
            let Some((fr, meta)) = self.rx.pop_front() else { break };
            f(&fr, meta);
            n += 1;
        }
        n
    }
    fn transmit<F: FnOnce(&mut [u8]) -> TxMeta>(&mut self, len: usize, f: F) -> Result<(), TxFull> {
        let mut b = vec![0u8; len];
        f(&mut b);
        self.sent += 1;
        Ok(())
    }
    fn flush(&mut self) {}
}

fuzz_target!(|data: &[u8]| {
    let mut c = Config::new(EthernetAddress([2, 0, 0, 0, 0, 1]));
    c.ipv4 = Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 1), 24));
    c.ipv4_gateway = Some(Ipv4Addr::new(10, 0, 0, 254));
    c.ipv6 = vec![Ipv6Cidr::new("2001:db8::1".parse().unwrap(), 64)];
    c.tcp.syncache.buckets = 2;
    c.tcp.syncache.bucket_limit = 2;
    c.tcp.syncache.cache_limit = 4;
    c.tcp.send_buffer = 8192;
    c.tcp.recv_buffer = 8192;
    let mut i = Interface::new(c);
    let peer4 = Ipv4Addr::new(10, 0, 0, 2);
    let peer6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    i.arp_cache()
        .insert_static(Instant::ZERO, peer4, EthernetAddress([2, 0, 0, 0, 0, 2]));
    let a = i.udp_open(Family::V4);
    i.udp_bind(a, SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53))
        .unwrap();
    let b = i.udp_open(Family::V6 { v6only: false });
    i.udp_bind(b, SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 5353))
        .unwrap();
    let conn = i.udp_open(Family::V6 { v6only: false });
    i.udp_set_recv_err(conn, true).unwrap();
    i.udp_connect(conn, SocketAddr::new(IpAddr::V6(peer6), 9)).unwrap();
    let l = i.tcp_open(Family::V6 { v6only: false });
    i.tcp_bind(l, SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 80))
        .unwrap();
    i.tcp_listen(l, 4).unwrap();
    let client = i.tcp_open(Family::V4);
    i.tcp_connect(client, SocketAddr::new(IpAddr::V4(peer4), 80)).unwrap();
    let mut conns = vec![client];
    let mut buf = [0u8; 3000];
    let mut nic = FuzzNic {
        rx: VecDeque::new(),
        sent: 0,
    };
    let mut now = Instant::ZERO;
    let mut rest = data;
    let mut frames = 0u64;
    while rest.len() >= 3 {
        let dt = (rest[0] & 0x7f) as u64;
        let good = rest[0] & 0x80 != 0;
        let meta = RxMeta {
            ipv4_csum_good: good,
            l4_csum_good: good,
        };
        let len = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        nic.rx.push_back((rest[3..3 + len].to_vec(), meta));
        rest = &rest[3 + len..];
        frames += 1;
        if dt & 1 == 1 {
            let _ = i.udp_send_to(conn, &vec![0xab; (dt as usize) * 40], None);
            let _ = i.udp_send_to(a, b"reply", Some(SocketAddr::new(IpAddr::V4(peer4), 1000 + dt as u16)));
        }
        i.poll(now, &mut nic);
        for s in [a, b, conn] {
            while i.udp_recv(s).is_ok() {}
            while let Ok(Some(_)) = i.udp_recv_error(s) {}
        }
        while let Ok((s, _)) = i.tcp_accept(l) {
            conns.push(s);
        }
        conns.retain(|&s| {
            let _ = i.tcp_recv(s, &mut buf);
            let _ = i.tcp_readiness(s);
            let _ = i.tcp_info(s);
            match dt % 8 {
                2 => {
                    let _ = i.tcp_send(s, &buf[..dt as usize * 20]);
                    true
                }
                5 => {
                    let _ = i.tcp_shutdown(s, false, true);
                    true
                }
                7 => {
                    let _ = i.tcp_close(s);
                    false
                }
                _ => true,
            }
        });
        assert!(i.tcp_socket_count() <= frames as usize + 2, "sockets grow only with input");
        let _ = i.drain_events().count();
        now = now + core::time::Duration::from_millis(dt * 37);
    }
    i.poll(now, &mut nic);
    assert_eq!(i.counters().rx_frames, frames);
});
