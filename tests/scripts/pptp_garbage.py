#!/usr/bin/env python3
"""Bad PPTP input against HOST: truncated and malformed control messages, a
wrong magic cookie, an unknown message type, GRE for unknown call IDs, and a
flood of half-open control connections (held for a few seconds).

usage: pptp_garbage.py HOST
"""
import socket
import struct
import sys
import time

host = sys.argv[1]
COOKIE = 0x1A2B3C4D


def ctl(kind, body=b"", cookie=COOKIE, length=None):
    n = 12 + len(body) if length is None else length
    return struct.pack("!HHIHH", n, 1, cookie, kind, 0) + body


def sccrq():
    return ctl(1, struct.pack("!HH", 0x0100, 0) + b"\0" * 140)


def send(*msgs):
    s = socket.create_connection((host, 1723), timeout=5)
    for m in msgs:
        s.sendall(m)
    try:
        s.recv(4096)  # the gateway answers or closes
    except OSError:
        pass
    s.close()


send(sccrq()[:7])                      # truncated, then the connection closes
send(ctl(1, b"\0" * 144, cookie=0xDEADBEEF))  # wrong magic cookie
send(ctl(1, b"", length=3))            # length below the header
send(sccrq(), ctl(99))                 # an unknown message type
send(sccrq(), ctl(7, b"\0" * 4))       # OCRQ too short
send(ctl(7, b"\0" * 156))              # OCRQ before SCCRQ

g = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
for call_id in range(10):
    gre = struct.pack("!HHHHI", 0x3001, 0x880B, 4, 4000 + call_id, 1) + b"\xff\x03\xc0\x21"
    g.sendto(gre, (host, 0))

held = []
for _ in range(40):
    try:
        held.append(socket.create_connection((host, 1723), timeout=2))
    except OSError:
        pass
time.sleep(3)
print(len(held))
