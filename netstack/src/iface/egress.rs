//! Output: source address selection, routing, neighbor resolution,
//! fragmentation (IPv4 and IPv6), checksum offload, and the transmit queue
//! (or the loopback queue, for packets to local addresses).

use core::num::NonZeroU16;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{IcmpErrorKind, Interface, OutFrame, PmtuDiscovery, SocketError, EV_ERROR, EV_WRITABLE};
use crate::neighbor::{Event, SendOutcome};
use crate::nic::{L4Proto, TxMeta};
use crate::wire::checksum::{ChecksumMode, PseudoHeader};
use crate::wire::ipv6::addr as v6addr;
use crate::wire::ndp::NdpRepr;
use crate::wire::{
    ethernet, ip_proto, ipv4, ipv6, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    Icmpv6Packet, Icmpv6Repr, Ipv4Packet, Ipv4Repr, Ipv6FragmentHeader, Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr,
    UdpPacket, UdpRepr,
};

const ETH: usize = ethernet::HEADER_LEN;

/// Where a packet goes on the link.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LinkDst {
    /// A known Ethernet address (broadcast, multicast, or given).
    Direct(EthernetAddress),
    /// Resolve this next hop through the neighbor cache.
    Resolve(IpAddr),
    /// A local address: loop it back (see [`super::loopback`]).
    Loopback,
}

/// Per-socket options (or one datagram's ancillary data) that shape a UDP
/// datagram on the wire.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UdpOpts {
    pub(crate) pmtu_discovery: PmtuDiscovery,
    pub(crate) hop_limit: Option<u8>,
    /// IPv4 TOS byte / IPv6 traffic class.
    pub(crate) traffic_class: u8,
}

/// An IP packet to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpOut {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) proto: u8,
    pub(crate) l4_len: usize,
    pub(crate) dont_frag: bool,
    pub(crate) hop_limit: u8,
    /// Skip resolution and send to this Ethernet address.
    pub(crate) link: Option<EthernetAddress>,
}

impl Interface {
    /// Our address to send from towards `dst`, if we can reach it at all.
    /// Loopback destinations only when loopback is on; a local address is
    /// its own source, as on Linux.
    pub(crate) fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        if dst.is_loopback() {
            return self.loopback_source(dst);
        }
        match dst {
            IpAddr::V4(d) => {
                let c = self.config.ipv4?;
                if d.is_broadcast() || d.is_multicast() || self.routes.next_hop(d).is_some() {
                    Some(IpAddr::V4(c.addr))
                } else {
                    None
                }
            }
            IpAddr::V6(d) => {
                if v6addr::is_link_local(&d) || (d.is_multicast() && d.segments()[0] & 0x000f <= 2) {
                    return Some(IpAddr::V6(self.link_local));
                }
                if d.is_unspecified() {
                    return None;
                }
                let on_link = self.config.ipv6.iter().find(|c| c.contains(d));
                if let Some(c) = on_link {
                    return Some(IpAddr::V6(c.addr));
                }
                if self.config.ipv6_gateway.is_some() || d.is_multicast() {
                    let g = self.config.ipv6.first().map_or(self.link_local, |c| c.addr);
                    return Some(IpAddr::V6(g));
                }
                None
            }
        }
    }

    /// How to reach `dst` on the link.
    pub(crate) fn link_dst(&self, dst: IpAddr) -> Option<LinkDst> {
        match dst {
            IpAddr::V4(d) => {
                if d.is_broadcast() || self.config.ipv4.and_then(|c| c.broadcast()) == Some(d) {
                    Some(LinkDst::Direct(EthernetAddress::BROADCAST))
                } else if d.is_multicast() {
                    Some(LinkDst::Direct(EthernetAddress::from_ipv4_multicast(&d)))
                } else {
                    self.routes.next_hop(d).map(|nh| LinkDst::Resolve(IpAddr::V4(nh)))
                }
            }
            IpAddr::V6(d) => {
                if d.is_multicast() {
                    Some(LinkDst::Direct(EthernetAddress::from_ipv6_multicast(&d)))
                } else if v6addr::is_link_local(&d) || self.config.ipv6.iter().any(|c| c.contains(d)) {
                    Some(LinkDst::Resolve(IpAddr::V6(d)))
                } else {
                    self.config.ipv6_gateway.map(|g| LinkDst::Resolve(IpAddr::V6(g)))
                }
            }
        }
    }

    /// Remembers a smaller path MTU towards `dst` (RFC 1191, RFC 8201).
    pub(crate) fn learn_pmtu(&mut self, now: crate::time::Instant, dst: IpAddr, mtu: usize) {
        if self.is_local_addr(dst) {
            return;
        }
        let floor = if dst.is_ipv4() { ipv4::MIN_MTU } else { ipv6::MIN_MTU };
        let mtu = mtu.max(floor);
        if mtu >= self.path_mtu(now, dst) {
            return;
        }
        if self.pmtu.len() >= self.config.pmtu_entries {
            self.pmtu.retain(|_, (_, exp)| *exp > now);
            if self.pmtu.len() >= self.config.pmtu_entries {
                return;
            }
        }
        self.pmtu
            .insert(dst, (mtu, now.saturating_add(self.config.pmtu_timeout)));
    }

    fn next_ipv4_ident(&mut self) -> u16 {
        self.ipv4_ident = self.ipv4_ident.wrapping_add(1);
        self.ipv4_ident
    }

    fn next_ipv6_ident(&mut self) -> u32 {
        self.ipv6_ident = self.ipv6_ident.wrapping_add(1);
        self.ipv6_ident
    }

    /// Builds and sends one IP packet whose upper-layer part `fill` writes
    /// (given the checksum mode to use), fragmenting if it does not fit the
    /// path MTU.
    pub(crate) fn output_ip<F>(&mut self, now: crate::time::Instant, ip: IpOut, fill: F) -> Result<(), SocketError>
    where
        F: FnOnce(&mut [u8], ChecksumMode),
    {
        self.output_ip_tc(now, ip, 0, fill)
    }

    /// [`Interface::output_ip`] with IPv4 TOS byte / IPv6 traffic class `tc`.
    fn output_ip_tc<F>(&mut self, now: crate::time::Instant, ip: IpOut, tc: u8, fill: F) -> Result<(), SocketError>
    where
        F: FnOnce(&mut [u8], ChecksumMode),
    {
        let local = self.is_local_addr(ip.dst);
        if !local && ip.src.is_loopback() {
            // Linux's ip_route_output_key: a loopback source never leaves.
            self.counters.drop_tx_no_route += 1;
            return Err(SocketError::InvalidArgument);
        }
        let link = match ip.link {
            _ if local => LinkDst::Loopback,
            Some(m) => LinkDst::Direct(m),
            None => match self.link_dst(ip.dst) {
                Some(l) => l,
                None => {
                    self.counters.drop_tx_no_route += 1;
                    return Err(SocketError::NetworkUnreachable);
                }
            },
        };
        let v4 = ip.dst.is_ipv4();
        let hl = if v4 { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
        // The largest datagram either version can express (fragment offsets
        // and the IPv4 total length are 16 bits).
        let max = if v4 { 65535 - hl } else { 65535 };
        if ip.l4_len > max {
            self.counters.drop_tx_too_big += 1;
            return Err(SocketError::MessageTooLong);
        }
        let mtu = self.path_mtu(now, ip.dst);
        let caps = if local {
            // Looped back: left undone as by a device that offloads them,
            // unless another shard may have to verify them.
            let skip = !self.loopback_checksums();
            crate::nic::ChecksumCaps {
                ipv4_tx: skip,
                l4_tx: skip,
                ..Default::default()
            }
        } else {
            self.caps_checksum
        };
        if hl + ip.l4_len <= mtu {
            let l4_offload = matches!(ip.proto, ip_proto::TCP | ip_proto::UDP) && caps.l4_tx;
            let l4_mode = if l4_offload {
                ChecksumMode::Offload
            } else {
                ChecksumMode::Compute
            };
            let v4_mode = ChecksumMode::tx_ipv4(&caps);
            let mut f = self.take_buf(ETH + hl + ip.l4_len);
            let ident = if v4 { self.next_ipv4_ident() } else { 0 };
            self.write_eth(&mut f, v4);
            self.write_ip_header(
                &mut f[ETH..],
                &ip,
                tc,
                ip.l4_len,
                ident,
                ip.dont_frag,
                false,
                0,
                v4_mode,
            );
            fill(&mut f[ETH + hl..], l4_mode);
            let meta = TxMeta {
                l2_len: ETH as u16,
                l3_len: hl as u16,
                ipv4_csum: v4 && v4_mode == ChecksumMode::Offload,
                l4_csum: if l4_offload {
                    Some(if ip.proto == ip_proto::TCP {
                        L4Proto::Tcp
                    } else {
                        L4Proto::Udp
                    })
                } else {
                    None
                },
            };
            self.dispatch(now, link, OutFrame { data: f, meta });
            return Ok(());
        }
        if ip.dont_frag {
            self.counters.drop_tx_too_big += 1;
            return Err(SocketError::MessageTooLong);
        }
        // Fragment: the checksum covers the whole datagram, so it is computed
        // here, not offloaded.
        let mut payload = self.take_buf(ip.l4_len);
        fill(&mut payload, ChecksumMode::Compute);
        let v4_mode = ChecksumMode::tx_ipv4(&caps);
        if v4 {
            let chunk = (mtu - hl) & !7;
            let ident = self.next_ipv4_ident();
            let mut off = 0;
            while off < payload.len() {
                let len = chunk.min(payload.len() - off);
                let more = off + len < payload.len();
                let mut f = self.take_buf(ETH + hl + len);
                self.write_eth(&mut f, true);
                self.write_ip_header(&mut f[ETH..], &ip, tc, len, ident, false, more, off as u16, v4_mode);
                f[ETH + hl..].copy_from_slice(&payload[off..off + len]);
                let meta = TxMeta {
                    l2_len: ETH as u16,
                    l3_len: hl as u16,
                    ipv4_csum: v4_mode == ChecksumMode::Offload,
                    l4_csum: None,
                };
                self.dispatch(now, link, OutFrame { data: f, meta });
                off += len;
            }
        } else {
            let fh = ipv6::FRAG_HEADER_LEN;
            let chunk = (mtu - hl - fh) & !7;
            let ident = self.next_ipv6_ident();
            let mut off = 0;
            while off < payload.len() {
                let len = chunk.min(payload.len() - off);
                let more = off + len < payload.len();
                let mut f = self.take_buf(ETH + hl + fh + len);
                self.write_eth(&mut f, false);
                let frag_ip = IpOut {
                    proto: ip_proto::IPV6_FRAG,
                    ..ip
                };
                self.write_ip_header(&mut f[ETH..], &frag_ip, tc, fh + len, 0, false, false, 0, v4_mode);
                Ipv6FragmentHeader {
                    next_header: ip.proto,
                    offset: off as u16,
                    more_frags: more,
                    ident,
                }
                .emit(&mut f[ETH + hl..]);
                f[ETH + hl + fh..].copy_from_slice(&payload[off..off + len]);
                let meta = TxMeta {
                    l2_len: ETH as u16,
                    l3_len: (hl + fh) as u16,
                    ipv4_csum: false,
                    l4_csum: None,
                };
                self.dispatch(now, link, OutFrame { data: f, meta });
                off += len;
            }
        }
        self.recycle(payload);
        Ok(())
    }

    fn write_eth(&self, f: &mut [u8], v4: bool) {
        let mut e = EthernetFrame::new_unchecked(f);
        e.set_src_addr(self.config.mac);
        e.set_dst_addr(EthernetAddress::BROADCAST);
        e.set_ethertype(if v4 { EtherType::Ipv4 } else { EtherType::Ipv6 });
    }

    #[allow(clippy::too_many_arguments)]
    fn write_ip_header(
        &self,
        b: &mut [u8],
        ip: &IpOut,
        tc: u8,
        payload_len: usize,
        ident: u16,
        df: bool,
        more: bool,
        offset: u16,
        mode: ChecksumMode,
    ) {
        match (ip.src, ip.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut p = Ipv4Packet::new_unchecked(b);
                Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol: ip.proto,
                    payload_len,
                    hop_limit: ip.hop_limit,
                }
                .emit(&mut p, mode);
                p.set_dscp_ecn(tc);
                p.set_ident(ident);
                p.set_frag(df, more, offset);
                p.fill_checksum(mode);
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut p = Ipv6Packet::new_unchecked(b);
                Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: ip.proto,
                    payload_len,
                    hop_limit: ip.hop_limit,
                }
                .emit(&mut p);
                p.set_traffic_class(tc);
            }
            // Callers pick the source for the destination's family.
            _ => debug_assert!(false, "mixed address families"),
        }
    }

    /// Sends a built frame towards `link`, resolving the next hop if needed.
    fn dispatch(&mut self, now: crate::time::Instant, link: LinkDst, mut frame: OutFrame) {
        let outcome = match link {
            LinkDst::Loopback => {
                EthernetFrame::new_unchecked(&mut frame.data[..]).set_dst_addr(self.config.mac);
                self.push_looped(frame.data, false);
                return;
            }
            LinkDst::Direct(mac) => {
                EthernetFrame::new_unchecked(&mut frame.data[..]).set_dst_addr(mac);
                self.push_outbox(frame);
                return;
            }
            LinkDst::Resolve(IpAddr::V4(nh)) => self.arp.send(now, nh, frame),
            LinkDst::Resolve(IpAddr::V6(nh)) => self.ndp.send(now, nh, frame),
        };
        match outcome {
            SendOutcome::Transmit { link, mut packet } => {
                EthernetFrame::new_unchecked(&mut packet.data[..]).set_dst_addr(link);
                self.push_outbox(packet);
            }
            SendOutcome::Queued => {}
            SendOutcome::Dropped { packet, .. } => {
                self.counters.drop_tx_neighbor += 1;
                self.recycle(packet.data);
            }
        }
    }

    /// Queues `frame` for the device. Connections and sockets check
    /// [`Interface::tx_room`] first; past it, only control frames use the
    /// reserve, and beyond the reserve frames are dropped and counted.
    pub(crate) fn push_outbox(&mut self, frame: OutFrame) {
        if self.outbox.len() >= self.config.tx_queue_frames.saturating_add(super::TX_CONTROL_RESERVE) {
            self.counters.drop_tx_queue_full += 1;
            self.recycle(frame.data);
        } else {
            self.outbox.push_back(frame);
        }
    }

    /// Acts on what the neighbor caches ask for: requests to send, packets
    /// now resolved, packets whose resolution failed.
    pub(crate) fn drain_neighbor_events(&mut self, now: crate::time::Instant) {
        while let Some(ev) = self.arp.poll(now) {
            match ev {
                Event::SendRequest { target, unicast } => self.send_arp_request(target, unicast),
                Event::Transmit { link, mut packet, .. } => {
                    EthernetFrame::new_unchecked(&mut packet.data[..]).set_dst_addr(link);
                    self.push_outbox(packet);
                }
                Event::Unreachable { target, packet } => self.neighbor_failed(now, IpAddr::V4(target), packet),
            }
        }
        while let Some(ev) = self.ndp.poll(now) {
            match ev {
                Event::SendRequest { target, unicast } => self.send_neighbor_solicit(now, target, unicast),
                Event::Transmit { link, mut packet, .. } => {
                    EthernetFrame::new_unchecked(&mut packet.data[..]).set_dst_addr(link);
                    self.push_outbox(packet);
                }
                Event::Unreachable { target, packet } => self.neighbor_failed(now, IpAddr::V6(target), packet),
            }
        }
    }

    /// A packet we originated could not be delivered: tell its socket, as
    /// Linux does with a local "host unreachable".
    fn neighbor_failed(&mut self, now: crate::time::Instant, target: IpAddr, packet: OutFrame) {
        self.counters.drop_tx_neighbor += 1;
        let reporter = self.source_for(target).unwrap_or(target);
        let ip = &packet.data[ETH..];
        self.deliver_icmp_error(now, IcmpErrorKind::HostUnreachable, reporter, ip, target.is_ipv4());
        self.recycle(packet.data);
    }

    fn send_arp_request(&mut self, target: Ipv4Addr, unicast: Option<EthernetAddress>) {
        let Some(c) = self.config.ipv4 else { return };
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: c.addr,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        self.send_arp(repr, unicast.unwrap_or(EthernetAddress::BROADCAST));
    }

    pub(crate) fn send_arp(&mut self, repr: ArpRepr, dst: EthernetAddress) {
        let mut f = self.take_buf(ETH + repr.buffer_len());
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_src_addr(self.config.mac);
        e.set_dst_addr(dst);
        e.set_ethertype(EtherType::Arp);
        repr.emit(&mut ArpPacket::new_unchecked(&mut f[ETH..]));
        self.push_outbox(OutFrame {
            data: f,
            meta: TxMeta {
                l2_len: ETH as u16,
                ..Default::default()
            },
        });
    }

    fn send_neighbor_solicit(&mut self, now: crate::time::Instant, target: Ipv6Addr, unicast: Option<EthernetAddress>) {
        let dst = if unicast.is_some() {
            target
        } else {
            v6addr::solicited_node(&target)
        };
        let Some(IpAddr::V6(src)) = self.source_for(IpAddr::V6(target)) else {
            self.counters.drop_tx_no_route += 1;
            return;
        };
        let link = unicast.unwrap_or_else(|| EthernetAddress::from_ipv6_multicast(&dst));
        let repr = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target_addr: target,
            lladdr: Some(self.config.mac),
        });
        self.send_icmpv6(now, src, dst, 255, Some(link), repr);
    }

    /// Sends an ICMPv6 message.
    pub(crate) fn send_icmpv6(
        &mut self,
        now: crate::time::Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        link: Option<EthernetAddress>,
        repr: Icmpv6Repr<'_>,
    ) {
        let ip = IpOut {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            proto: ip_proto::ICMPV6,
            l4_len: repr.buffer_len(),
            dont_frag: false,
            hop_limit,
            link,
        };
        let _ = self.output_ip(now, ip, |b, _| {
            repr.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(b))
        });
    }

    /// Builds and sends one UDP datagram.
    pub(crate) fn output_udp(
        &mut self,
        now: crate::time::Instant,
        src: IpAddr,
        src_port: u16,
        dst: SocketAddr,
        data: &[u8],
        opts: UdpOpts,
    ) -> Result<(), SocketError> {
        let dst_port = NonZeroU16::new(dst.port()).ok_or(SocketError::InvalidArgument)?;
        let Some(ph) = PseudoHeader::between(src, dst.ip()) else {
            return Err(SocketError::AddressFamily);
        };
        let l4_len = 8 + data.len();
        let hl = if dst.is_ipv4() {
            ipv4::HEADER_LEN
        } else {
            ipv6::HEADER_LEN
        };
        let fits = hl + l4_len <= self.path_mtu(now, dst.ip());
        // IPv4: the DF bit. IPv6 has none; there "don't fragment" means no
        // local fragmentation (IPV6_PMTUDISC_DO).
        let dont_frag = match opts.pmtu_discovery {
            PmtuDiscovery::Dont => false,
            PmtuDiscovery::Want => dst.is_ipv4() && fits,
            PmtuDiscovery::Do => true,
        };
        let ip = IpOut {
            src,
            dst: dst.ip(),
            proto: ip_proto::UDP,
            l4_len,
            dont_frag,
            hop_limit: opts.hop_limit.unwrap_or(self.config.hop_limit),
            link: None,
        };
        let repr = UdpRepr { src_port, dst_port };
        self.output_ip_tc(now, ip, opts.traffic_class, |b, mode| {
            repr.emit(&mut UdpPacket::new_unchecked(b), &ph, data, mode)
        })
    }

    /// Builds and sends one TCP segment: `repr`'s header and options, then
    /// the payload from `payload.0` followed by `payload.1` (the two halves
    /// of a send ring; `repr.payload` is not used). Never fragmented: IPv4
    /// segments carry DF (TCP does path MTU discovery) and a segment larger
    /// than the path MTU fails with `MessageTooLong`; the checksum is offloaded when the
    /// device can (as learned at the last [`Interface::poll`]). For the TCP
    /// layer, which plugs in with the next issue.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn output_tcp(
        &mut self,
        now: crate::time::Instant,
        src: IpAddr,
        dst: IpAddr,
        repr: &TcpRepr<'_>,
        payload: (&[u8], &[u8]),
    ) -> Result<(), SocketError> {
        let Some(ph) = PseudoHeader::between(src, dst) else {
            return Err(SocketError::AddressFamily);
        };
        let (a, b) = payload;
        let ip = IpOut {
            src,
            dst,
            proto: ip_proto::TCP,
            l4_len: repr.header_len() + a.len() + b.len(),
            dont_frag: true,
            hop_limit: self.config.hop_limit,
            link: None,
        };
        self.output_ip(now, ip, |buf, mode| {
            let mut p = TcpPacket::new_unchecked(buf);
            repr.emit_header(&mut p);
            let pl = p.payload_mut();
            pl[..a.len()].copy_from_slice(a);
            pl[a.len()..].copy_from_slice(b);
            p.fill_checksum(&ph, mode);
        })
    }

    /// Sends what sockets queued, oldest socket first, until the transmit
    /// queue is full.
    pub(crate) fn send_queued(&mut self, now: crate::time::Instant) {
        while let Some(i) = self.tx_pending.pop_front() {
            loop {
                if !self.tx_room() {
                    self.tx_pending.push_front(i);
                    return;
                }
                if !self.send_one_queued(now, i) {
                    break;
                }
            }
        }
    }

    /// Sends every datagram socket `i` still has queued, room or not: it is
    /// being closed, and its sends were accepted (Linux's `sendto` hands a
    /// datagram to the device queue before it returns, and a close after
    /// it loses nothing).
    pub(crate) fn flush_udp(&mut self, now: crate::time::Instant, i: u32) {
        while self.send_one_queued(now, i) {}
    }

    /// Sends the next datagram queued on UDP socket `i`; false when it has
    /// none (or is gone).
    fn send_one_queued(&mut self, now: crate::time::Instant, i: u32) -> bool {
        let Some(s) = self.udp.by_index_mut(i) else {
            return false;
        };
        let Some(d) = s.tx.pop_front() else {
            s.tx_listed = false;
            return false;
        };
        s.tx_bytes -= d.data.len();
        let unblocked = core::mem::take(&mut s.tx_blocked);
        let Some(local) = s.ends.local else { return false };
        // The datagram's ancillary data first, then the socket's.
        let opts = UdpOpts {
            pmtu_discovery: if d.opts.dont_fragment {
                PmtuDiscovery::Do
            } else {
                s.pmtu_discovery
            },
            hop_limit: d.opts.hop_limit.or(s.hop_limit),
            traffic_class: d
                .opts
                .traffic_class
                .unwrap_or(if d.dst.is_ipv4() { s.tos } else { s.tclass }),
        };
        if unblocked {
            self.notify(i, EV_WRITABLE);
        }
        let src = if d.opts.src.is_some() {
            d.opts.src
        } else if local.ip().is_unspecified() || local.is_ipv4() != d.dst.is_ipv4() {
            self.source_for(d.dst.ip())
        } else {
            Some(local.ip())
        };
        let r = match src {
            Some(src) => self.output_udp(now, src, local.port(), d.dst, &d.data, opts),
            None => Err(SocketError::NetworkUnreachable),
        };
        match r {
            Ok(()) => self.counters.udp_tx_datagrams += 1,
            Err(e) => {
                if let Some(s) = self.udp.by_index_mut(i) {
                    s.error = Some(e);
                }
                self.notify(i, EV_ERROR);
            }
        }
        self.recycle(d.data);
        true
    }
}
