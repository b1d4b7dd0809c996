#!/usr/bin/env python3
"""The baseline for ferry through a transit relay: a plain byte pipe through the same relay.

    relay_pipe.py send HOST PORT TOKEN FILE          # side ...01: streams FILE, then waits
    relay_pipe.py receive HOST PORT TOKEN FILE SIZE  # side ...02: writes SIZE bytes, hangs up

Same handshake as ferry (`please relay TOKEN for side SIDE\\n`, wait for `ok\\n`), then nothing
but the bytes: no framing, no encryption. The relay closes both directions when one side closes,
so the end is in band too: the receiver hangs up once SIZE bytes are in, and the sender then
reads EOF.
"""
import socket
import sys

mode, host, port, token, path = sys.argv[1:6]
side = "0000000000000001" if mode == "send" else "0000000000000002"
sock = socket.create_connection((host, int(port)))
sock.sendall(f"please relay {token} for side {side}\n".encode())
line = b""
while not line.endswith(b"\n"):
    byte = sock.recv(1)
    if not byte:
        sys.exit("relay closed before ok")
    line += byte
if line != b"ok\n":
    sys.exit(f"relay said {line!r}")
if mode == "send":
    with open(path, "rb") as f:
        sock.sendfile(f)
    while sock.recv(65536):
        pass
else:
    left = int(sys.argv[6])
    with open(path, "wb") as f:
        while left > 0:
            data = sock.recv(min(left, 1 << 20))
            if not data:
                sys.exit(f"relay closed with {left} bytes to go")
            f.write(data)
            left -= len(data)
sock.close()
