#!/usr/bin/env python3
"""One PPTP control connection to HOST that starts and then asks for N
outgoing calls (distinct call IDs), reading the answers as they come. Prints
"sent N" once all requests are out, then holds the connection open until
stdin closes, printing the number of OCRPs that accepted a call.

usage: pptp_call_flood.py HOST N
"""
import socket
import struct
import sys
import threading

host, n = sys.argv[1], int(sys.argv[2])
COOKIE = 0x1A2B3C4D


def ctl(kind, body):
    return struct.pack("!HHIHH", 12 + len(body), 1, COOKIE, kind, 0) + body


s = socket.create_connection((host, 1723), timeout=30)
s.sendall(ctl(1, struct.pack("!HH", 0x0100, 0) + b"\0" * 140))
accepted = [0]
buf = bytearray()


def reader():
    while True:
        try:
            d = s.recv(65536)
        except OSError:
            return
        if not d:
            return
        buf.extend(d)
        while len(buf) >= 12:
            length, _, _, kind, _ = struct.unpack("!HHIHH", buf[:12])
            if len(buf) < length:
                break
            msg = bytes(buf[:length])
            del buf[:length]
            if kind == 8 and msg[16] == 1:  # OCRP, result "connected"
                accepted[0] += 1


threading.Thread(target=reader, daemon=True).start()
for i in range(n):
    s.sendall(ctl(7, struct.pack("!HH", (i + 1) & 0xFFFF, i & 0xFFFF) + b"\0" * 152))
print("sent", n, flush=True)
sys.stdin.read()
print("accepted", accepted[0], flush=True)
