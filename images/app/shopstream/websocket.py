"""WebSocket framing (RFC 6455), enough for notification's server side."""

import base64
import hashlib
import secrets
import struct

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")  # noqa: S324


def ws_encode(opcode, payload=b"", mask=False):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask:
        key = secrets.token_bytes(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def ws_read(read, max_size=1 << 16):
    """(opcode, payload) of the next frame; read(n) returns exactly n bytes or fewer at EOF."""

    def exact(n):
        data = read(n)
        if len(data) != n:
            raise EOFError("connection closed")
        return data

    first, second = exact(2)
    opcode, n = first & 0x0F, second & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    if n > max_size:
        raise ValueError("frame too large")
    key = exact(4) if second & 0x80 else None
    payload = exact(n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload
