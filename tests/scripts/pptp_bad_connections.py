#!/usr/bin/env python3
"""N PPTP control connections to HOST, one after the other, each sending a
start request with a wrong magic cookie (the gateway closes each).

usage: pptp_bad_connections.py HOST N
"""
import socket
import struct
import sys

host, n = sys.argv[1], int(sys.argv[2])
msg = struct.pack("!HHIHH", 156, 1, 0xDEADBEEF, 1, 0) + b"\0" * 144
done = 0
for _ in range(n):
    try:
        s = socket.create_connection((host, 1723), timeout=5)
        s.sendall(msg)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
        done += 1
    except OSError:
        pass
print(done)
