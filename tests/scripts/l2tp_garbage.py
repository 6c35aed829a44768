#!/usr/bin/env python3
"""Bad L2TP input against HOST:1701, each kind a few times: truncated
headers, data for bogus tunnel/session IDs, control for a bogus tunnel,
AVP lengths 0 and past the end, a hidden AVP without a Random Vector, an
Ns far outside the window of a real tunnel, and (with `flood N`) N SCCRQs
from different tunnel IDs that are never completed.

usage: l2tp_garbage.py HOST [flood N]
       l2tp_garbage.py HOST refused   (expects StopCCN "not authorized")
"""
import socket
import struct
import sys

host = sys.argv[1]
PORT = 1701


def avp(attr, value, m=True, hidden=False):
    bits = (0x8000 if m else 0) | (0x4000 if hidden else 0) | (6 + len(value))
    return struct.pack("!HHH", bits, 0, attr) + value


def control(tunnel, session, ns, nr, body):
    return struct.pack("!HHHHHH", 0xC802, 12 + len(body), tunnel, session, ns, nr) + body


def sccrq(peer_tunnel):
    return control(0, 0, 0, 0,
                   avp(0, struct.pack("!H", 1)) + avp(2, struct.pack("!H", 0x0100))
                   + avp(7, b"garbage") + avp(3, struct.pack("!I", 3))
                   + avp(9, struct.pack("!H", peer_tunnel)))


def open_tunnel(s, peer_tunnel):
    """SCCRQ; returns our tunnel ID from the SCCRP."""
    s.sendto(sccrq(peer_tunnel), (host, PORT))
    while True:
        d, _ = s.recvfrom(2048)
        flags, length, tunnel, session, ns, nr = struct.unpack("!HHHHHH", d[:12])
        body = d[12:length]
        i = 0
        while i + 6 <= len(body):
            bits, vendor, attr = struct.unpack("!HHH", body[i:i + 6])
            n = bits & 0x3FF
            if attr == 9 and n == 8:
                return struct.unpack("!H", body[i + 6:i + 8])[0]
            if n < 6:
                break
            i += n
        if not body:
            continue
        raise SystemExit("no Assigned Tunnel ID in the answer")


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    if sys.argv[2:3] == ["refused"]:
        s.sendto(sccrq(4242), (host, PORT))
        while True:
            d, _ = s.recvfrom(2048)
            body = d[12:]
            if len(body) >= 8 and body[6:8] == struct.pack("!H", 4):
                print("stopccn")
                return
    bad = []
    bad += [b"", b"\xc8", b"\xc8\x02\x00", b"\x00\x02\x00\x07"]  # truncated
    bad += [struct.pack("!HHH", 0x0002, 999, 999) + b"\xff\x03\x00\x21"] * 5  # data, bogus IDs
    bad += [control(999, 0, 0, 0, avp(0, struct.pack("!H", 6)))] * 5  # control, bogus tunnel
    # A fresh tunnel for each, as a bad AVP ends the tunnel.
    hello = avp(0, struct.pack("!H", 6))
    tid = open_tunnel(s, 777)
    bad += [control(tid, 0, 1, 1, hello + struct.pack("!HHH", 0x8000, 0, 7))]  # AVP length 0
    tid = open_tunnel(s, 776)
    bad += [control(tid, 0, 1, 1, hello + struct.pack("!HHH", 0x8040, 0, 7))]  # past the end
    tid = open_tunnel(s, 778)
    bad += [control(tid, 0, 1, 1, hello + avp(7, b"\x00" * 18, hidden=True))]  # hidden, no RV
    tid = open_tunnel(s, 779)
    bad += [control(tid, 0, 30000, 1, hello)] * 3  # Ns far outside the window
    for m in bad:
        s.sendto(m, (host, PORT))
    if sys.argv[2:3] == ["flood"]:
        for i in range(int(sys.argv[3])):
            s.sendto(sccrq(1000 + i), (host, PORT))
    print("sent", len(bad))


main()
