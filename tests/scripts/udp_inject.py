#!/usr/bin/env python3
"""Re-sends captured native-protocol datagrams, as captured or damaged.

usage: udp_inject.py PCAP DST_IP DST_PORT MODE COUNT
MODE: replay (as captured), flip (an unseen counter in the header and one
ciphertext bit changed: what forging takes, since a seen counter is a
replay before it is ever decrypted), truncate
(the first 12 bytes), unknown (another session ID). Prints how many it sent.
"""
import socket
import struct
import sys


def payloads(path, port):
    data = open(path, "rb").read()
    linktype = struct.unpack("<I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8 : off + 12])[0]
        pkt = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        l2 = 14 if linktype == 1 else 0
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        udp = ip[ihl:]
        if len(udp) >= 8 and struct.unpack("!H", udp[2:4])[0] == port:
            yield udp[8:]


def main():
    path, dst, port, mode, count = sys.argv[1:6]
    port, count = int(port), int(count)
    got = list(payloads(path, port))[-count:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i, p in enumerate(got):
        p = bytearray(p)
        if mode == "flip":
            p[8:16] = struct.pack("!Q", (1 << 40) + i)
            p[20] ^= 0x01
        elif mode == "truncate":
            p = p[:12]
        elif mode == "unknown":
            p[4:8] = b"\xde\xad\xbe\xef"
        s.sendto(bytes(p), (dst, port))
    print(len(got))


main()
