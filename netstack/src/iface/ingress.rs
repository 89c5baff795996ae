//! Input: Ethernet, ARP, IPv4, IPv6 (extension headers, reassembly), ICMP,
//! NDP and UDP demultiplexing. Every drop is counted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::egress::IpOut;
use super::loopback::Origin;
use super::udp::Datagram;
use super::{IcmpError, IcmpErrorKind, Interface, PmtuDiscovery, EV_ERROR, EV_READABLE};
use crate::neighbor::Evidence;
use crate::nic::RxMeta;
use crate::reassembly::{Ipv4FragKey, Ipv6FragKey};

use super::FragKey;
use crate::time::Instant;
use crate::wire::checksum::{ChecksumMode, PseudoHeader};
use crate::wire::icmpv4::{self, Icmpv4Packet, Icmpv4Repr};
use crate::wire::icmpv6::{self, Icmpv6Packet, Icmpv6Repr};
use crate::wire::ipv6::{addr as v6addr, ExtHeaderError, Ipv6ExtHeaders};
use crate::wire::ndp::{NaFlags, NdpRepr};
use crate::wire::{
    ip_proto, ipv4, ArpOperation, ArpPacket, ArpRepr, Error, EtherType, EthernetAddress, EthernetFrame, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

/// An ICMP error to send.
#[derive(Debug, Clone, Copy)]
enum IcmpOut {
    /// Destination unreachable with this code (ICMPv4 or ICMPv6 numbering,
    /// per the datagram's version).
    Unreachable(u8),
    /// ICMPv6 parameter problem: code and pointer.
    ParamProblem(u8, u32),
}

/// The upper-layer part of a received IP datagram.
#[derive(Debug, Clone, Copy)]
struct Upper<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    /// The IP header(s), for ICMP errors we send about this datagram.
    header: &'a [u8],
    payload: &'a [u8],
    /// Checksum mode for UDP/TCP (offload does not apply to reassembled
    /// datagrams).
    l4_mode: ChecksumMode,
    /// Sent to a broadcast or multicast address.
    group: bool,
    hop_limit: u8,
    /// IPv6: offset in the received packet of the byte naming `proto`
    /// (for Parameter Problem pointers); `None` when the packet was
    /// reassembled or is IPv4.
    nh_pointer: Option<u32>,
}

/// The TOS byte (IPv4) or traffic class (IPv6) of a datagram, from its IP
/// header. `up.header` always holds at least the fixed header of
/// `up.src`'s version (checked before any `Upper` is made), so the
/// unchecked views read inside it.
fn traffic_class(up: &Upper<'_>) -> u8 {
    match up.src {
        IpAddr::V4(_) => Ipv4Packet::new_unchecked(up.header).dscp_ecn(),
        IpAddr::V6(_) => Ipv6Packet::new_unchecked(up.header).traffic_class(),
    }
}

impl Interface {
    /// Processes one received frame; `origin` says whether it came from
    /// the device or was looped back (which only then may carry loopback
    /// or our own source addresses).
    pub(crate) fn process_frame(&mut self, now: Instant, frame: &[u8], meta: RxMeta, origin: Origin) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.counters.drop_eth_truncated += 1;
            return;
        };
        let dst = eth.dst_addr();
        if dst != self.config.mac && !dst.is_broadcast() && !self.accepts_multicast(dst) {
            self.counters.drop_eth_not_for_us += 1;
            return;
        }
        match eth.ethertype() {
            EtherType::Arp => self.process_arp(now, eth.payload()),
            EtherType::Ipv4 => self.process_ipv4(now, eth.payload(), meta, origin),
            EtherType::Ipv6 => self.process_ipv6(now, eth.payload(), meta, origin),
            EtherType::Unknown(_) => self.counters.drop_eth_unknown_type += 1,
        }
    }

    /// IPv6 all-nodes and solicited-node groups, IPv4 all-hosts; the IP
    /// layer checks the exact group.
    fn accepts_multicast(&self, a: EthernetAddress) -> bool {
        let b = a.0;
        (b[0] == 0x33 && b[1] == 0x33) || (b[0] == 0x01 && b[1] == 0x00 && b[2] == 0x5e)
    }

    fn process_arp(&mut self, now: Instant, p: &[u8]) {
        let Ok(r) = ArpPacket::new_checked(p).and_then(|p| ArpRepr::parse(&p)) else {
            self.counters.drop_arp_malformed += 1;
            return;
        };
        let Some(c) = self.config.ipv4 else {
            self.counters.drop_arp_not_for_us += 1;
            return;
        };
        let spa = r.source_protocol_addr;
        let sha = r.source_hardware_addr;
        if sha.is_multicast() || spa.is_multicast() || spa.is_broadcast() || spa == c.addr {
            self.counters.drop_arp_malformed += 1;
            return;
        }
        if r.target_protocol_addr != c.addr {
            self.counters.drop_arp_not_for_us += 1;
            return;
        }
        match r.operation {
            ArpOperation::Request => {
                // An ARP probe (sender 0.0.0.0) teaches nothing.
                if !spa.is_unspecified() {
                    self.arp.update(now, spa, sha, Evidence::Unsolicited);
                }
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: self.config.mac,
                    source_protocol_addr: c.addr,
                    target_hardware_addr: sha,
                    target_protocol_addr: spa,
                };
                self.send_arp(reply, sha);
                self.counters.arp_replies_sent += 1;
            }
            ArpOperation::Reply => {
                if !spa.is_unspecified() {
                    self.arp.update(now, spa, sha, Evidence::Solicited);
                }
            }
            ArpOperation::Unknown(_) => self.counters.drop_arp_malformed += 1,
        }
    }

    fn is_ipv4_broadcast(&self, a: Ipv4Addr) -> bool {
        a.is_broadcast() || self.config.ipv4.and_then(|c| c.broadcast()) == Some(a)
    }

    fn process_ipv4(&mut self, now: Instant, p: &[u8], meta: RxMeta, origin: Origin) {
        let pkt = match Ipv4Packet::new_checked(p) {
            Ok(pkt) => pkt,
            Err(_) => {
                self.counters.drop_ipv4_malformed += 1;
                return;
            }
        };
        let repr = match Ipv4Repr::parse(&pkt, ChecksumMode::rx_ipv4(&meta)) {
            Ok(r) => r,
            Err(Error::Checksum) => {
                self.counters.drop_ipv4_checksum += 1;
                return;
            }
            Err(_) => {
                self.counters.drop_ipv4_malformed += 1;
                return;
            }
        };
        match pkt.options() {
            Ok(o) if o.source_route => {
                self.counters.drop_ipv4_source_route += 1;
                return;
            }
            Ok(_) => {}
            Err(_) => {
                self.counters.drop_ipv4_malformed += 1;
                return;
            }
        }
        let (src, dst) = (repr.src_addr, repr.dst_addr);
        let group = self.is_ipv4_broadcast(dst) || dst.is_multicast();
        let looped = origin == Origin::Loopback;
        let ours = self.has_ipv4(dst)
            || (looped && self.is_loopback_addr(IpAddr::V4(dst)))
            || (self.config.ipv4.is_some() && (self.is_ipv4_broadcast(dst) || dst == Ipv4Addr::new(224, 0, 0, 1)));
        if !ours {
            self.counters.drop_ipv4_not_for_us += 1;
            return;
        }
        // From the wire, our own and loopback sources are martians (Linux
        // fib_validate_source, without route_localnet).
        let martian = !looped && (self.has_ipv4(src) || src.is_loopback());
        if src.is_multicast() || self.is_ipv4_broadcast(src) || martian {
            self.counters.drop_ipv4_bad_src += 1;
            return;
        }
        let header = pkt.header();
        if pkt.is_fragment() {
            let key = Ipv4FragKey {
                src: src.octets(),
                dst: dst.octets(),
                id: pkt.ident(),
                proto: repr.protocol,
            };
            let off = pkt.frag_offset() as usize;
            match self.reasm_v4.push(now, key, off, pkt.more_frags(), pkt.payload()) {
                Ok(Some(whole)) => {
                    self.counters.ipv4_reassembled += 1;
                    self.frag_quotes.forget(&FragKey::V4(key));
                    // The header an ICMP error quotes: the datagram as a
                    // whole, not the last fragment (whose offset would make
                    // the peer ignore the quote).
                    let mut fixed = [0u8; 60];
                    let hl = header.len();
                    fixed[..hl].copy_from_slice(header);
                    let mut fp = Ipv4Packet::new_unchecked(&mut fixed[..hl]);
                    fp.set_frag(false, false, 0);
                    fp.set_total_len((hl + whole.len()).min(u16::MAX as usize) as u16);
                    fp.fill_checksum(ChecksumMode::Compute);
                    let up = Upper {
                        src: IpAddr::V4(src),
                        dst: IpAddr::V4(dst),
                        proto: repr.protocol,
                        header: &fixed[..hl],
                        payload: &whole,
                        l4_mode: ChecksumMode::Compute,
                        group,
                        hop_limit: repr.hop_limit,
                        nh_pointer: None,
                    };
                    self.process_upper(now, up);
                }
                Ok(None) if off == 0 && !group => {
                    // Keep the first fragment's start for a Time Exceeded
                    // should the datagram never complete (RFC 792).
                    let n = (header.len() + 8).min(p.len());
                    self.frag_quotes.remember(FragKey::V4(key), &p[..n]);
                }
                Ok(None) => {}
                Err(_) => self.counters.drop_ipv4_fragment += 1,
            }
            return;
        }
        let up = Upper {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            proto: repr.protocol,
            header,
            payload: pkt.payload(),
            l4_mode: ChecksumMode::rx_l4(&meta),
            group,
            hop_limit: repr.hop_limit,
            nh_pointer: None,
        };
        self.process_upper(now, up);
    }

    fn accepts_ipv6_dst(&self, d: Ipv6Addr) -> bool {
        if self.has_ipv6(d) || v6addr::is_all_nodes(&d) {
            return true;
        }
        d == v6addr::solicited_node(&self.link_local)
            || self.config.ipv6.iter().any(|c| v6addr::solicited_node(&c.addr) == d)
    }

    fn process_ipv6(&mut self, now: Instant, p: &[u8], meta: RxMeta, origin: Origin) {
        let Ok(pkt) = Ipv6Packet::new_checked(p) else {
            self.counters.drop_ipv6_malformed += 1;
            return;
        };
        let Ok(repr) = Ipv6Repr::parse(&pkt) else {
            self.counters.drop_ipv6_malformed += 1;
            return;
        };
        let (src, dst) = (repr.src_addr, repr.dst_addr);
        let looped = origin == Origin::Loopback;
        let ours = self.accepts_ipv6_dst(dst) || (looped && self.is_loopback_addr(IpAddr::V6(dst)));
        if !ours {
            self.counters.drop_ipv6_not_for_us += 1;
            return;
        }
        // Linux ipv6_rcv: "RFC4291 2.5.3 ... packets with loopback source
        // or destination must be dropped" when not received on `lo`.
        if src.is_multicast() || (!looped && src.is_loopback()) {
            self.counters.drop_ipv6_bad_src += 1;
            return;
        }
        let payload = pkt.payload();
        let group = dst.is_multicast();
        let ext = match Ipv6ExtHeaders::parse(repr.next_header, payload, true) {
            Ok(e) => e,
            Err(e) => {
                if let ExtHeaderError::ParamProblem { code, at } = e {
                    let whole = Upper {
                        src: IpAddr::V6(src),
                        dst: IpAddr::V6(dst),
                        proto: repr.next_header,
                        header: p,
                        payload: &[],
                        l4_mode: ChecksumMode::rx_l4(&meta),
                        group,
                        hop_limit: repr.hop_limit,
                        nh_pointer: None,
                    };
                    let pointer = (ipv6::HEADER_LEN + at) as u32;
                    self.send_icmp_error(now, &whole, IcmpOut::ParamProblem(code, pointer));
                }
                self.ext_error(e);
                return;
            }
        };
        let header_end = ipv6::HEADER_LEN + ext.offset;
        let mut up = Upper {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            proto: ext.next_header,
            header: &p[..header_end],
            payload: &payload[ext.offset..],
            l4_mode: ChecksumMode::rx_l4(&meta),
            group,
            hop_limit: repr.hop_limit,
            nh_pointer: Some(ext.next_header_at.map_or(6, |x| (ipv6::HEADER_LEN + x) as u32)),
        };
        let Some(frag) = ext.fragment else {
            self.process_upper(now, up);
            return;
        };
        let data = &payload[ext.offset..];
        up.nh_pointer = None;
        if frag.is_atomic() {
            // RFC 6946: process in isolation.
            self.process_ipv6_fragmentable(now, up, frag.next_header, data, false);
            return;
        }
        let key = Ipv6FragKey {
            src: src.octets(),
            dst: dst.octets(),
            id: frag.ident,
        };
        match self
            .reasm_v6
            .push(now, key, frag.offset as usize, frag.more_frags, data)
        {
            Ok(Some(whole)) => {
                self.counters.ipv6_reassembled += 1;
                self.frag_quotes.forget(&FragKey::V6(key));
                up.l4_mode = ChecksumMode::Compute;
                self.process_ipv6_fragmentable(now, up, frag.next_header, &whole, true);
            }
            Ok(None) if frag.offset == 0 && !group => {
                // RFC 4443 section 3.3: as much of the first fragment as
                // fits in a minimum-MTU error.
                let n = (ipv6::MIN_MTU - ipv6::HEADER_LEN - icmpv6::HEADER_LEN).min(p.len());
                self.frag_quotes.remember(FragKey::V6(key), &p[..n]);
            }
            Ok(None) => {}
            Err(_) => self.counters.drop_ipv6_fragment += 1,
        }
    }

    /// The fragmentable part of an IPv6 datagram: more extension headers
    /// (never hop-by-hop, never another fragment header), then the upper
    /// layer. For a `reassembled` datagram, ICMP errors quote a fixed header
    /// followed directly by the upper layer, as if it had never been
    /// fragmented.
    fn process_ipv6_fragmentable<'a>(
        &mut self,
        now: Instant,
        mut up: Upper<'a>,
        next_header: u8,
        data: &'a [u8],
        reassembled: bool,
    ) {
        let ext = match Ipv6ExtHeaders::parse(next_header, data, false) {
            Ok(e) if e.fragment.is_none() => e,
            Ok(_) => {
                self.counters.drop_ipv6_malformed += 1;
                return;
            }
            Err(e) => {
                self.ext_error(e);
                return;
            }
        };
        up.proto = ext.next_header;
        up.payload = &data[ext.offset..];
        if !reassembled {
            self.process_upper(now, up);
            return;
        }
        let mut fixed = [0u8; ipv6::HEADER_LEN];
        fixed.copy_from_slice(&up.header[..ipv6::HEADER_LEN]);
        let mut fp = Ipv6Packet::new_unchecked(&mut fixed[..]);
        fp.set_next_header(up.proto);
        fp.set_payload_len(up.payload.len().min(u16::MAX as usize) as u16);
        self.process_upper(now, Upper { header: &fixed, ..up });
    }

    /// Counts an ICMP message that failed to parse; `ndp` says it was a
    /// neighbor solicitation or advertisement (malformed ones count apart).
    fn count_icmp_drop(&mut self, e: Error, ndp: bool) {
        match e {
            Error::Checksum => self.counters.drop_icmp_checksum += 1,
            Error::Unsupported => self.counters.drop_icmp_unsupported += 1,
            _ if ndp => self.counters.drop_ndp_invalid += 1,
            _ => self.counters.drop_icmp_malformed += 1,
        }
    }

    fn ext_error(&mut self, e: ExtHeaderError) {
        match e {
            ExtHeaderError::Discard | ExtHeaderError::ParamProblem { .. } => self.counters.drop_ipv6_ext_discard += 1,
            ExtHeaderError::Malformed | ExtHeaderError::Truncated => self.counters.drop_ipv6_malformed += 1,
        }
    }

    fn process_upper(&mut self, now: Instant, up: Upper<'_>) {
        match (up.proto, up.src) {
            (ip_proto::UDP, _) => self.process_udp(now, up),
            (ip_proto::ICMP, IpAddr::V4(_)) => self.process_icmpv4(now, up),
            (ip_proto::ICMPV6, IpAddr::V6(_)) => self.process_icmpv6(now, up),
            (ip_proto::TCP, _) => self.process_tcp_segment(now, up),
            (ip_proto::IPV6_NONXT, IpAddr::V6(_)) => {}
            _ => {
                self.counters.drop_unknown_protocol += 1;
                match up.nh_pointer {
                    _ if up.src.is_ipv4() => {
                        self.send_icmp_error(now, &up, IcmpOut::Unreachable(icmpv4::unreachable::PROTOCOL))
                    }
                    // RFC 8200 section 4: "send an ICMP Parameter Problem
                    // message ... Code value of 1 ... Pointer field
                    // containing the offset of the unrecognized value".
                    Some(pointer) => self.send_icmp_error(
                        now,
                        &up,
                        IcmpOut::ParamProblem(icmpv6::param_problem::NEXT_HEADER, pointer),
                    ),
                    None => {}
                }
            }
        }
    }

    fn process_udp(&mut self, now: Instant, up: Upper<'_>) {
        let Ok(pkt) = UdpPacket::new_checked(up.payload) else {
            self.counters.drop_udp_malformed += 1;
            return;
        };
        let Some(ph) = PseudoHeader::between(up.src, up.dst) else {
            return;
        };
        let repr = match UdpRepr::parse(&pkt, &ph, up.l4_mode) {
            Ok(r) => r,
            Err(Error::Checksum) if pkt.is_partial_checksum(&ph) => {
                self.counters.drop_partial_checksum += 1;
                return;
            }
            Err(Error::Checksum) => {
                self.counters.drop_udp_checksum += 1;
                return;
            }
            Err(_) => {
                self.counters.drop_udp_malformed += 1;
                return;
            }
        };
        let from = SocketAddr::new(up.src, repr.src_port);
        let to = SocketAddr::new(up.dst, repr.dst_port.get());
        let data = pkt.payload();
        if !up.group {
            match self.udp.lookup(from, to) {
                Some(i) => self.deliver_udp(i, from, &up, data),
                None => {
                    self.counters.drop_udp_no_socket += 1;
                    let code = if up.src.is_ipv4() {
                        icmpv4::unreachable::PORT
                    } else {
                        icmpv6::unreachable::PORT
                    };
                    self.send_icmp_error(now, &up, IcmpOut::Unreachable(code));
                }
            }
            return;
        }
        let mut out = core::mem::take(&mut self.scratch);
        self.udp.lookup_all(to, &mut out);
        if out.is_empty() {
            self.counters.drop_udp_no_socket += 1;
        }
        for &i in &out {
            self.deliver_udp(i, from, &up, data);
        }
        self.scratch = out;
    }

    fn process_tcp_segment(&mut self, now: Instant, up: Upper<'_>) {
        if up.group {
            self.tcp_counters.drop_not_unicast += 1;
            return;
        }
        let Some(ph) = PseudoHeader::between(up.src, up.dst) else {
            return;
        };
        let Ok(pkt) = TcpPacket::new_checked(up.payload) else {
            self.tcp_counters.drop_malformed += 1;
            return;
        };
        match TcpRepr::parse(&pkt, &ph, up.l4_mode) {
            Ok(seg) => self.process_tcp(now, up.src, up.dst, &seg),
            // Never accepted: on a real wire a corrupted segment may match
            // by chance (one in 65536).
            Err(Error::Checksum) if pkt.is_partial_checksum(&ph) => self.counters.drop_partial_checksum += 1,
            Err(Error::Checksum) => self.tcp_counters.drop_checksum += 1,
            Err(_) => self.tcp_counters.drop_malformed += 1,
        }
    }

    fn deliver_udp(&mut self, i: u32, from: SocketAddr, up: &Upper<'_>, data: &[u8]) {
        let max_dgrams = self.udp.config.rx_queue_datagrams;
        let Some(s) = self.udp.by_index_mut(i) else { return };
        if s.rx.len() >= max_dgrams || s.rx_bytes + data.len() > s.rx_limit {
            self.counters.drop_udp_queue_full += 1;
            return;
        }
        s.rx_bytes += data.len();
        s.rx.push_back(Datagram {
            from,
            to: up.dst,
            hop_limit: up.hop_limit,
            traffic_class: traffic_class(up),
            data: data.to_vec(),
        });
        self.counters.udp_rx_datagrams += 1;
        self.notify(i, EV_READABLE);
    }

    /// Sends "fragment reassembly time exceeded" about the datagram whose
    /// first fragment starts with `quote` (rate limited like other errors).
    pub(crate) fn send_reassembly_timeout(&mut self, now: Instant, quote: &[u8]) {
        if !self.icmp_limit.allow(now) {
            self.counters.icmp_errors_rate_limited += 1;
            return;
        }
        match quote.first().map(|b| b >> 4) {
            Some(4) if quote.len() >= ipv4::HEADER_LEN => {
                let q = Ipv4Packet::new_unchecked(quote);
                let repr = Icmpv4Repr::TimeExceeded { code: 1, data: quote };
                let ip = IpOut {
                    src: IpAddr::V4(q.dst_addr()),
                    dst: IpAddr::V4(q.src_addr()),
                    proto: ip_proto::ICMP,
                    l4_len: repr.buffer_len(),
                    dont_frag: false,
                    hop_limit: self.config.hop_limit,
                    link: None,
                };
                let _ = self.output_ip(now, ip, |b, _| repr.emit(&mut Icmpv4Packet::new_unchecked(b)));
            }
            Some(6) if quote.len() >= ipv6::HEADER_LEN => {
                let q = Ipv6Packet::new_unchecked(quote);
                let repr = Icmpv6Repr::TimeExceeded { code: 1, data: quote };
                let hl = self.config.hop_limit;
                self.send_icmpv6(now, q.dst_addr(), q.src_addr(), hl, None, repr);
            }
            _ => return,
        }
        self.counters.icmp_errors_sent += 1;
    }

    /// Sends an ICMP error about `up`, unless RFC 1122 section 3.2.2 /
    /// RFC 4443 section 2.4 (e) forbid it or the rate limit says no.
    fn send_icmp_error(&mut self, now: Instant, up: &Upper<'_>, what: IcmpOut) {
        if up.group || up.src.is_unspecified() {
            return;
        }
        if let IpAddr::V4(s) = up.src {
            if s.is_broadcast() || s.is_multicast() {
                return;
            }
        }
        // Linux icmpv4_xrlim_allow/icmpv6_xrlim_allow: "No rate limit on
        // loopback".
        if !self.is_local_addr(up.src) && !self.icmp_limit.allow(now) {
            self.counters.icmp_errors_rate_limited += 1;
            return;
        }
        let mut inv = self.take_buf(0);
        inv.extend_from_slice(up.header);
        match (up.dst, up.src) {
            (IpAddr::V4(ours), IpAddr::V4(peer)) => {
                // RFC 1812 section 4.3.2.3: as much as fits in 576 bytes.
                let room = 576 - ipv4::HEADER_LEN - icmpv4::HEADER_LEN;
                let take = room.saturating_sub(inv.len()).min(up.payload.len());
                inv.extend_from_slice(&up.payload[..take]);
                inv.truncate(room);
                let IcmpOut::Unreachable(code) = what else { return };
                let repr = Icmpv4Repr::DstUnreachable {
                    code,
                    next_hop_mtu: 0,
                    data: &inv,
                };
                let ip = IpOut {
                    src: IpAddr::V4(ours),
                    dst: IpAddr::V4(peer),
                    proto: ip_proto::ICMP,
                    l4_len: repr.buffer_len(),
                    dont_frag: false,
                    hop_limit: self.config.hop_limit,
                    link: None,
                };
                let _ = self.output_ip(now, ip, |b, _| repr.emit(&mut Icmpv4Packet::new_unchecked(b)));
            }
            (IpAddr::V6(ours), IpAddr::V6(peer)) => {
                // RFC 4443 section 2.4 (c): as much as fits in the minimum MTU.
                let room = ipv6::MIN_MTU - ipv6::HEADER_LEN - icmpv6::HEADER_LEN;
                let take = room.saturating_sub(inv.len()).min(up.payload.len());
                inv.extend_from_slice(&up.payload[..take]);
                inv.truncate(room);
                let repr = match what {
                    IcmpOut::Unreachable(code) => Icmpv6Repr::DstUnreachable { code, data: &inv },
                    IcmpOut::ParamProblem(code, pointer) => Icmpv6Repr::ParamProblem {
                        code,
                        pointer,
                        data: &inv,
                    },
                };
                let hl = self.config.hop_limit;
                self.send_icmpv6(now, ours, peer, hl, None, repr);
            }
            _ => {}
        }
        self.counters.icmp_errors_sent += 1;
        self.recycle(inv);
    }

    fn process_icmpv4(&mut self, now: Instant, up: Upper<'_>) {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (up.src, up.dst) else {
            return;
        };
        let Ok(pkt) = Icmpv4Packet::new_checked(up.payload) else {
            self.counters.drop_icmp_malformed += 1;
            return;
        };
        let repr = match Icmpv4Repr::parse(&pkt) {
            Ok(r) => r,
            Err(e) => {
                self.count_icmp_drop(e, false);
                return;
            }
        };
        match repr {
            Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
                // Linux default icmp_echo_ignore_broadcasts = 1.
                if up.group {
                    self.counters.drop_icmp_unsupported += 1;
                    return;
                }
                let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
                let ip = IpOut {
                    src: IpAddr::V4(dst),
                    dst: IpAddr::V4(src),
                    proto: ip_proto::ICMP,
                    l4_len: reply.buffer_len(),
                    dont_frag: false,
                    hop_limit: self.config.hop_limit,
                    link: None,
                };
                if self
                    .output_ip(now, ip, |b, _| reply.emit(&mut Icmpv4Packet::new_unchecked(b)))
                    .is_ok()
                {
                    self.counters.icmp_echo_replies_sent += 1;
                }
            }
            Icmpv4Repr::EchoReply { .. } => self.counters.drop_icmp_unsupported += 1,
            Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => {
                use icmpv4::unreachable as u;
                let kind = match code {
                    u::NET => IcmpErrorKind::NetUnreachable,
                    u::HOST => IcmpErrorKind::HostUnreachable,
                    u::PROTOCOL => IcmpErrorKind::ProtocolUnreachable,
                    u::PORT => IcmpErrorKind::PortUnreachable,
                    // RFC 1191 section 5: an old router reports MTU 0; assume
                    // the smallest plateau below what we used.
                    u::FRAG_NEEDED => {
                        IcmpErrorKind::PacketTooBig(if next_hop_mtu == 0 { 576 } else { next_hop_mtu as u32 })
                    }
                    _ => IcmpErrorKind::Other {
                        msg_type: icmpv4::msg_type::DST_UNREACHABLE,
                        code,
                    },
                };
                self.deliver_icmp_error(now, kind, IpAddr::V4(src), data, true);
            }
            Icmpv4Repr::TimeExceeded { data, .. } => {
                self.deliver_icmp_error(now, IcmpErrorKind::TimeExceeded, IpAddr::V4(src), data, true)
            }
        }
    }

    fn process_icmpv6(&mut self, now: Instant, up: Upper<'_>) {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (up.src, up.dst) else {
            return;
        };
        let Ok(pkt) = Icmpv6Packet::new_checked(up.payload) else {
            self.counters.drop_icmp_malformed += 1;
            return;
        };
        let repr = match Icmpv6Repr::parse(&src, &dst, &pkt) {
            Ok(r) => r,
            Err(e) => {
                let ndp = matches!(
                    pkt.msg_type(),
                    icmpv6::msg_type::NEIGHBOR_SOLICIT | icmpv6::msg_type::NEIGHBOR_ADVERT
                );
                self.count_icmp_drop(e, ndp);
                return;
            }
        };
        match repr {
            Icmpv6Repr::EchoRequest { ident, seq_no, data } => {
                let Some(IpAddr::V6(from)) = (if up.group {
                    self.source_for(IpAddr::V6(src))
                } else {
                    Some(up.dst)
                }) else {
                    self.counters.drop_tx_no_route += 1;
                    return;
                };
                let reply = Icmpv6Repr::EchoReply { ident, seq_no, data };
                let hl = self.config.hop_limit;
                self.send_icmpv6(now, from, src, hl, None, reply);
                self.counters.icmp_echo_replies_sent += 1;
            }
            Icmpv6Repr::EchoReply { .. } => self.counters.drop_icmp_unsupported += 1,
            Icmpv6Repr::DstUnreachable { code, data } => {
                let kind = match code {
                    icmpv6::unreachable::NO_ROUTE => IcmpErrorKind::NetUnreachable,
                    icmpv6::unreachable::ADDRESS => IcmpErrorKind::HostUnreachable,
                    icmpv6::unreachable::PORT => IcmpErrorKind::PortUnreachable,
                    _ => IcmpErrorKind::Other {
                        msg_type: icmpv6::msg_type::DST_UNREACHABLE,
                        code,
                    },
                };
                self.deliver_icmp_error(now, kind, up.src, data, false);
            }
            Icmpv6Repr::PktTooBig { mtu, data } => {
                self.deliver_icmp_error(now, IcmpErrorKind::PacketTooBig(mtu), up.src, data, false)
            }
            Icmpv6Repr::TimeExceeded { data, .. } => {
                self.deliver_icmp_error(now, IcmpErrorKind::TimeExceeded, up.src, data, false)
            }
            Icmpv6Repr::ParamProblem { data, .. } => {
                self.deliver_icmp_error(now, IcmpErrorKind::ParameterProblem, up.src, data, false)
            }
            Icmpv6Repr::Ndp(ndp) => self.process_ndp(now, &up, src, dst, ndp),
        }
    }

    /// RFC 4861 sections 7.1.1, 7.1.2 (validation) and 7.2.3-7.2.5.
    fn process_ndp(&mut self, now: Instant, up: &Upper<'_>, src: Ipv6Addr, dst: Ipv6Addr, ndp: NdpRepr) {
        if up.hop_limit != 255 {
            self.counters.drop_ndp_invalid += 1;
            return;
        }
        match ndp {
            NdpRepr::NeighborSolicit { target_addr, lladdr } => {
                if !self.has_ipv6(target_addr) {
                    self.counters.drop_ipv6_not_for_us += 1;
                    return;
                }
                let na = |solicited| {
                    Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
                        flags: NaFlags {
                            router: false,
                            solicited,
                            override_: true,
                        },
                        target_addr,
                        lladdr: Some(self.config.mac),
                    })
                };
                if src.is_unspecified() {
                    // Duplicate address detection by someone else: "If the IP
                    // source address is the unspecified address, the IP
                    // destination address is a solicited-node multicast
                    // address" and "there is no source link-layer address
                    // option" (7.1.1). Defend by advertising to all nodes.
                    if !dst.is_multicast() || lladdr.is_some() {
                        self.counters.drop_ndp_invalid += 1;
                        return;
                    }
                    let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    self.send_icmpv6(now, target_addr, all, 255, None, na(false));
                } else {
                    if let Some(l) = lladdr {
                        if l.is_multicast() {
                            self.counters.drop_ndp_invalid += 1;
                            return;
                        }
                        self.ndp.update(now, src, l, Evidence::Unsolicited);
                    }
                    self.send_icmpv6(now, target_addr, src, 255, lladdr, na(true));
                }
                self.counters.ndp_adverts_sent += 1;
            }
            NdpRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                // "If the IP Destination Address is a multicast address the
                // Solicited flag is zero" (7.1.2).
                if dst.is_multicast() && flags.solicited {
                    self.counters.drop_ndp_invalid += 1;
                    return;
                }
                let Some(l) = lladdr else { return };
                if l.is_multicast() || self.has_ipv6(target_addr) {
                    self.counters.drop_ndp_invalid += 1;
                    return;
                }
                let ev = if flags.solicited {
                    Evidence::Solicited
                } else {
                    Evidence::Unsolicited
                };
                if flags.solicited || flags.override_ {
                    self.ndp.update(now, target_addr, l, ev);
                }
            }
        }
    }

    /// Delivers an ICMP error (or a local resolution failure) about
    /// `invoking`, the start of a datagram we sent, to the socket that sent
    /// it; learns the path MTU from "too big".
    pub(crate) fn deliver_icmp_error(
        &mut self,
        now: Instant,
        kind: IcmpErrorKind,
        reporter: IpAddr,
        invoking: &[u8],
        v4: bool,
    ) {
        let Some((orig_src, orig_dst, proto, l4)) = invoking_headers(invoking, v4) else {
            self.counters.drop_icmp_malformed += 1;
            return;
        };
        if !self.is_local_addr(orig_src) {
            self.counters.drop_icmp_error_no_socket += 1;
            return;
        }
        if let IcmpErrorKind::PacketTooBig(mtu) = kind {
            self.learn_pmtu(now, orig_dst, mtu as usize);
        }
        if proto == ip_proto::TCP && l4.len() >= 8 {
            let sport = u16::from_be_bytes([l4[0], l4[1]]);
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            let seq = crate::tcp::SeqNum(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]));
            let local = SocketAddr::new(orig_src, sport);
            let remote = SocketAddr::new(orig_dst, dport);
            if !self.tcp_icmp_error(now, local, remote, seq, kind) {
                self.counters.drop_icmp_error_no_socket += 1;
            }
            return;
        }
        if proto != ip_proto::UDP || l4.len() < 4 {
            self.counters.drop_icmp_error_no_socket += 1;
            return;
        }
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        let local = SocketAddr::new(orig_src, sport);
        let remote = SocketAddr::new(orig_dst, dport);
        let Some(i) = self.udp.lookup(remote, local) else {
            self.counters.drop_icmp_error_no_socket += 1;
            return;
        };
        let qlen = self.udp.config.error_queue_len;
        let Some(s) = self.udp.by_index_mut(i) else { return };
        let (err, mut hard) = kind.linux_error();
        if let IcmpErrorKind::PacketTooBig(_) = kind {
            if s.pmtu_discovery == PmtuDiscovery::Dont {
                // Linux: IPv4 reports nothing at all, IPv6 only to IP_RECVERR.
                if v4 {
                    self.counters.icmp_errors_delivered += 1;
                    return;
                }
                hard = false;
            }
        }
        // __udp4_lib_err: "if (!inet->recverr) { if (!harderr ||
        // sk->sk_state != TCP_ESTABLISHED) goto out; } else ip_icmp_error()";
        // then sk_err is set.
        let ev = if s.recv_err {
            if s.errqueue.len() >= qlen {
                s.errqueue.pop_front();
            }
            s.errqueue.push_back(IcmpError {
                kind,
                reporter,
                dst: remote,
            });
            true
        } else {
            hard && s.ends.remote.is_some()
        };
        if ev {
            s.error = Some(err);
        }
        self.counters.icmp_errors_delivered += 1;
        if ev {
            self.notify(i, EV_ERROR);
        }
    }
}

use crate::wire::ipv6;

/// Source, destination, protocol and upper-layer bytes of the (truncated)
/// datagram quoted in an ICMP error. Lengths are checked by hand because the
/// quote is shorter than its own length fields say.
fn invoking_headers(b: &[u8], v4: bool) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    if v4 {
        if b.len() < ipv4::HEADER_LEN {
            return None;
        }
        let p = Ipv4Packet::new_unchecked(b);
        let hl = p.header_len() as usize;
        if p.version() != 4 || hl < ipv4::HEADER_LEN || b.len() < hl {
            return None;
        }
        // A non-initial fragment carries no upper-layer header.
        if p.frag_offset() != 0 {
            return None;
        }
        Some((
            IpAddr::V4(p.src_addr()),
            IpAddr::V4(p.dst_addr()),
            p.protocol(),
            &b[hl..],
        ))
    } else {
        if b.len() < ipv6::HEADER_LEN {
            return None;
        }
        let p = Ipv6Packet::new_unchecked(b);
        if p.version() != 6 {
            return None;
        }
        let rest = &b[ipv6::HEADER_LEN..];
        let ext = Ipv6ExtHeaders::parse(p.next_header(), rest, true).ok()?;
        let (proto, off) = match ext.fragment {
            Some(f) if f.offset != 0 => return None,
            Some(f) => (f.next_header, ext.offset),
            None => (ext.next_header, ext.offset),
        };
        Some((IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()), proto, &rest[off..]))
    }
}
