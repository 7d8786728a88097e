"""Sends handshake message 1s with a spoofed IPv4 source (raw socket, needs CAP_NET_RAW).

Usage: _spoof_sender.py SRC_IP SRC_PORT DST_IP DST_PORT RATE SECONDS TEMPLATE_HEX
Each datagram is TEMPLATE with a new random sender index (bytes 1-4) and a new
random ephemeral (bytes 5-36). Prints the number sent on stdout. Bounded by
SECONDS; stops by itself.
"""
import os
import socket
import struct
import sys
import time

src_ip, src_port, dst_ip, dst_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rate, seconds, template = float(sys.argv[5]), float(sys.argv[6]), bytes.fromhex(sys.argv[7])
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
udp_len = 8 + len(template)
src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
start = time.monotonic()
deadline = start + min(seconds, 600)
sent = 0
while True:
    now = time.monotonic()
    if now >= deadline:
        break
    due = int((now - start) * rate)
    if sent >= due:
        time.sleep(0.001)
        continue
    for _ in range(min(due - sent, 256)):
        payload = template[:1] + os.urandom(36) + template[37:]
        # The kernel fills in the IP checksum and id; a zero UDP checksum means none (IPv4).
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0, src, dst)
        udp = struct.pack("!HHHH", src_port, dst_port, udp_len, 0)
        try:
            sock.sendto(ip + udp + payload, (dst_ip, 0))
            sent += 1
        except OSError:
            pass
print(sent)
