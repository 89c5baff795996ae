#!/usr/bin/env python3
"""Writes the seed corpora under corpus/<target>/: valid packets of each kind
and the malformed-length cases the wire tests cover (IHL < 5, IPv6
extension-header length wrap, overlapping fragments, fragments past 64 KiB,
TCP options with length 0 or 1). Run from netstack/fuzz."""
import os, struct, ipaddress

def cs(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

US_MAC = bytes([2, 0, 0, 0, 0, 1]); PEER_MAC = bytes([2, 0, 0, 0, 0, 2])
US4 = bytes([10, 0, 0, 1]); PEER4 = bytes([10, 0, 0, 2])
US6 = ipaddress.IPv6Address('2001:db8::1').packed; PEER6 = ipaddress.IPv6Address('2001:db8::2').packed

def eth(ty, payload, dst=US_MAC):
    return dst + PEER_MAC + struct.pack('!H', ty) + payload

def ip4(proto, payload, ident=1, flags_off=0, ihl=5, src=PEER4, dst=US4):
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, 20 + len(payload), ident, flags_off, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack('!H', cs(h)) + h[12:]
    return h + payload

def ip6(nh, payload, hop=64, src=PEER6, dst=US6):
    return struct.pack('!IHBB', 0x60000000, len(payload), nh, hop) + src + dst + payload

def udp4(sport, dport, data, src=PEER4, dst=US4):
    u = struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data
    c = cs(src + dst + struct.pack('!BBH', 0, 17, len(u)) + u) or 0xffff
    return u[:6] + struct.pack('!H', c) + u[8:]

def udp6(sport, dport, data, src=PEER6, dst=US6):
    u = struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data
    c = cs(src + dst + struct.pack('!IxxxB', len(u), 17) + u) or 0xffff
    return u[:6] + struct.pack('!H', c) + u[8:]

def icmp6(t, code, body, src=PEER6, dst=US6):
    m = struct.pack('!BBH', t, code, 0) + body
    c = cs(src + dst + struct.pack('!IxxxB', len(m), 58) + m)
    return m[:2] + struct.pack('!H', c) + m[4:]

def icmp4(t, code, body):
    m = struct.pack('!BBH', t, code, 0) + body
    return m[:2] + struct.pack('!H', cs(m)) + m[4:]

arp_req = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + PEER_MAC + PEER4 + bytes(6) + US4
udp_ok = udp4(1234, 53, b'hello')
ip_udp = ip4(17, udp_ok)
ihl4 = bytearray(ip_udp); ihl4[0] = 0x44
ihl_big = bytearray(ip_udp); ihl_big[0] = 0x4f
whole = udp4(1, 53, b'\x55' * 40)
frag_a = ip4(17, whole[:24], ident=9, flags_off=0x2000)
frag_overlap = ip4(17, b'\xaa' * 16, ident=9, flags_off=0x2000 | 2)
frag_c = ip4(17, whole[24:], ident=9, flags_off=3)
frag_64k = ip4(17, bytes(16), ident=3, flags_off=65528 // 8)
ext_wrap = ip6(60, bytes([17, 255, 1, 4, 0, 0, 0, 0]) + udp6(1, 5353, b'x'))
ext_chain = ip6(0, bytes([60, 0, 1, 4, 0, 0, 0, 0, 44, 0, 1, 4, 0, 0, 0, 0]) +
                struct.pack('!BBHI', 17, 0, 1, 7) + udp6(1, 5353, b'chain')[:16])
frag6_64k = ip6(44, struct.pack('!BBHI', 17, 0, 65528, 1) + bytes(16))
sn = ipaddress.IPv6Address('ff02::1:ff00:1').packed
ns = ip6(58, icmp6(135, 0, bytes(4) + US6 + bytes([1, 1]) + PEER_MAC, dst=sn), hop=255, dst=sn)
echo6 = ip6(58, icmp6(128, 0, struct.pack('!HH', 1, 1) + b'ping'))
echo4 = ip4(1, icmp4(8, 0, struct.pack('!HH', 1, 1) + b'ping'))
unreach4 = ip4(1, icmp4(3, 4, struct.pack('!HH', 0, 1000) + ip4(17, udp4(53, 1000, b''), src=US4, dst=PEER4)[:28]))
tcp_syn = struct.pack('!HHIIBBHHH', 40000, 80, 1, 0, 0xb0, 2, 64240, 0, 0) + \
    bytes.fromhex('020405b40103030701010402' '0101080a0000006400000000')
tcp_len0 = bytearray(tcp_syn); tcp_len0[21] = 0
tcp_len1 = bytearray(tcp_syn); tcp_len1[21] = 1

seeds = {
    'parse_ethernet': [eth(0x0800, ip_udp), eth(0x0806, arp_req), bytes(13)],
    'parse_arp': [arp_req, arp_req[:27], bytes([0, 1, 8, 0, 255, 4]) + arp_req[6:]],
    'parse_ipv4': [ip_udp, bytes(ihl4), bytes(ihl_big), frag_a, frag_64k, ip_udp[:19]],
    'parse_ipv6': [ip6(17, udp6(1, 2, b'x')), ext_wrap, ext_chain, frag6_64k],
    'parse_icmpv4': [icmp4(8, 0, struct.pack('!HH', 1, 1) + b'ping'), unreach4[20:]],
    'parse_icmpv6': [ns[40:], echo6[40:], ns[40:][:20]],
    'parse_udp': [udp_ok, udp_ok[:4] + b'\x00\x07' + udp_ok[6:]],
    'parse_tcp': [tcp_syn, bytes(tcp_len0), bytes(tcp_len1), tcp_syn[:20]],
}

def rec(frame, dt=1):
    return bytes([dt]) + struct.pack('!H', len(frame)) + frame

poll = [
    rec(eth(0x0806, arp_req, dst=b'\xff' * 6)) + rec(eth(0x0800, ip_udp)),
    rec(eth(0x0800, bytes(ihl4))) + rec(eth(0x0800, echo4)),
    rec(eth(0x0800, frag_a)) + rec(eth(0x0800, frag_overlap)) + rec(eth(0x0800, frag_c)),
    rec(eth(0x0800, frag_64k)) + rec(eth(0x86dd, frag6_64k)),
    rec(eth(0x86dd, ext_wrap)) + rec(eth(0x86dd, ext_chain)),
    rec(eth(0x86dd, ns, dst=b'\x33\x33\xff\x00\x00\x01'), dt=3) + rec(eth(0x86dd, echo6), dt=200),
    rec(eth(0x0800, unreach4)) + rec(eth(0x86dd, ip6(17, udp6(9, 5353, b'dual')))),
]
seeds['iface_poll'] = poll

for target, items in seeds.items():
    d = os.path.join('corpus', target)
    os.makedirs(d, exist_ok=True)
    for k, b in enumerate(items):
        with open(os.path.join(d, 'seed-%02d' % k), 'wb') as f:
            f.write(bytes(b))
print('ok')
