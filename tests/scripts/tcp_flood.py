#!/usr/bin/env python3
"""Opens many TCP connections to a handshake port and keeps them half-open
(a third send garbage and are closed by the gateway; the rest stay silent,
holding handshake slots until the gateway's deadline), for SECONDS.

usage: tcp_flood.py HOST PORT CONNECTIONS SECONDS
Prints how many connections it opened.
"""
import socket
import sys
import time

host, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=2)
    except OSError:
        continue
    if i % 3 == 0:
        s.send(b"\x00\x20GET / HTTP/1.0\r\n\r\n garbage......")
    socks.append(s)
print(len(socks), flush=True)
time.sleep(secs)
