#!/usr/bin/env python3
"""Bad IKE and ESP input against HOST, each kind a few times: truncated
ISAKMP headers, lengths past the end, unknown exchange types, Aggressive
Mode, messages for SAs that do not exist, NAT-T keepalives, ESP in UDP and
raw ESP for unknown SPIs, ESP with a known SPI (argument) and a bad ICV,
and (with `flood N`) N first Main Mode messages from N spoofed addresses
that are never continued.

usage: ike_garbage.py HOST KNOWN_SPI_HEX [flood N]
"""
import os
import socket
import struct
import sys
import time

host, known_spi = sys.argv[1], int(sys.argv[2], 16)
flood = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "flood" else 0


def payload(next_type, body):
    return struct.pack("!BBH", next_type, 0, 4 + len(body)) + body


def header(icookie, rcookie, next_type, exchange, flags, mid, length):
    return icookie + rcookie + struct.pack("!BBBBII", next_type, 0x10, exchange, flags, mid, length)


def attr(t, v):
    return struct.pack("!HH", 0x8000 | t, v)


def mm1(icookie, exchange=2):
    # AES-128, SHA1, PSK, MODP2048: a proposal the gateway accepts.
    t = struct.pack("!BBH", 1, 1, 0) + attr(1, 7) + attr(14, 128) + attr(2, 2) + attr(3, 1) + attr(4, 14)
    prop = struct.pack("!BBBB", 1, 1, 0, 1) + payload(0, t)
    sa = struct.pack("!II", 1, 1) + payload(0, prop)
    body = payload(0, sa)
    return header(icookie, b"\0" * 8, 1, exchange, 0, 0, 28 + len(body)) + body


ike = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
natt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    ike.sendto(b"\x01" * 10, (host, 500))  # truncated header
    ike.sendto(header(os.urandom(8), b"\0" * 8, 1, 2, 0, 0, 500), (host, 500))  # length past the end
    m = bytearray(mm1(os.urandom(8)))
    m[30:32] = struct.pack("!H", 4000)  # SA payload length past the end
    ike.sendto(bytes(m), (host, 500))
    ike.sendto(mm1(os.urandom(8), exchange=99), (host, 500))  # unknown exchange
    ike.sendto(mm1(os.urandom(8), exchange=4), (host, 500))  # Aggressive Mode
    ike.sendto(header(os.urandom(8), os.urandom(8), 8, 32, 1, 7, 60) + b"\0" * 32, (host, 500))  # no such SA
    natt.sendto(b"\0\0\0\0" + b"\x02" * 12, (host, 4500))  # truncated IKE on 4500
    natt.sendto(b"\xff", (host, 4500))  # keepalive
    natt.sendto(struct.pack("!II", 0xDEAD0001, 1) + os.urandom(64), (host, 4500))  # unknown SPI
    natt.sendto(struct.pack("!II", known_spi, 1000) + os.urandom(64), (host, 4500))  # bad ICV
try:
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    for _ in range(3):
        raw.sendto(struct.pack("!II", 0xDEAD0002, 1) + os.urandom(48), (host, 0))
except PermissionError:
    pass

if flood:
    # First messages from spoofed sources: the gateway holds at most
    # ipsec.max_half_open of them and counts the rest.
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    dst = socket.inet_aton(host)
    for i in range(flood):
        src = socket.inet_aton("203.0.%d.%d" % (113 + i // 250, 1 + i % 250))
        msg = mm1(os.urandom(8))
        udp = struct.pack("!HHHH", 500, 500, 8 + len(msg), 0) + msg
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, dst)
        s.sendto(ip + udp, (host, 0))
        if i % 100 == 99:
            time.sleep(0.01)  # counted by the gateway, not lost in a socket buffer
print("sent")
