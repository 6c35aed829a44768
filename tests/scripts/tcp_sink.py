#!/usr/bin/env python3
"""Accepts one TCP connection on PORT, reads to EOF, prints "<bytes> <sha256>".

usage: tcp_sink.py PORT   (prints "ready" first, once listening)
"""
import hashlib
import socket
import sys

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(1)
srv.settimeout(120)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(120)
h, n = hashlib.sha256(), 0
while True:
    b = conn.recv(65536)
    if not b:
        break
    h.update(b)
    n += len(b)
print(n, h.hexdigest(), flush=True)
