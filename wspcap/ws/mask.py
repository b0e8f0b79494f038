"""Client-to-server payload masking (RFC 6455 section 5.3).

The payload is XORed with the 4-byte key repeated, on whole buffers, never
with a per-byte Python loop. Where the optional compiled kernel
(``wspcap/ws/_speedups.c``, built where a C compiler is at hand) is present,
one C loop XORs 8 bytes at a time: 64 MiB in 60 ms, against 155 ms for NumPy,
measured side by side. Without it, :func:`py_unmask`, the reference the tests
compare the kernel with, chooses between two methods by size (measured on
this project's 2-core machine):

- small payloads: Python's big integers XOR at C speed; 0.45 us for 40 bytes,
  where setting up NumPy arrays alone costs about 2 us;
- from :data:`NUMPY_THRESHOLD` bytes: NumPy XORs 32-bit words in place,
  1.1 ms per MiB (about 900 MB/s) against 3.9 ms for the integer method.

:func:`frame_payloads` takes out, and unmasks, the payloads of a block's frames:
one Python loop turn a frame in :func:`py_frame_payloads` (about 1 us for a
chat's small frames), or one C loop in its compiled mirror
(``wspcap/ws/_speedups.c``, built where a C compiler is at hand, XORing 8
bytes at a time), which the tests compare with it.
"""

from __future__ import annotations

import numpy as np

from wspcap.constants import SPEEDUPS

__all__ = ["NUMPY_THRESHOLD", "frame_payloads", "py_frame_payloads", "py_unmask", "unmask"]

#: Payloads at least this long are unmasked with NumPy.
NUMPY_THRESHOLD = 1024


def unmask(payload: bytes | bytearray | memoryview, key: bytes | bytearray,
           start: int = 0) -> bytes:
    """XOR ``payload`` with the masking ``key``: :func:`py_unmask`, or its
    compiled mirror where that is built (about 4 times NumPy's speed on large
    payloads; see the module's note)."""
    return _unmask(payload, key, start)


def py_unmask(payload: bytes | bytearray | memoryview, key: bytes | bytearray,
              start: int = 0) -> bytes:
    """XOR ``payload`` with the masking ``key``.

    Masking is its own inverse, so this both masks and unmasks.

    Args:
        payload: the bytes, as they are on the wire.
        key: the 4-byte masking key.
        start: the payload offset of ``payload[0]`` (for a chunk that does not
            start the payload: the key rotates by ``start % 4``).

    Returns:
        The unmasked bytes.
    """
    n = len(payload)
    if not n:
        return b""
    if start & 3:
        r = start & 3
        key = key[r:] + key[:r]
    if n < NUMPY_THRESHOLD:
        stream = key * ((n >> 2) + 1)
        return (int.from_bytes(payload, "little")
                ^ int.from_bytes(stream[:n], "little")).to_bytes(n, "little")
    words = n >> 2
    out = bytearray(n)
    np.bitwise_xor(np.frombuffer(payload, dtype=np.uint32, count=words),
                   np.frombuffer(key, dtype=np.uint32)[0],
                   out=np.frombuffer(out, dtype=np.uint32, count=words))
    for i in range(words << 2, n):  # at most 3 tail bytes
        out[i] = payload[i] ^ key[i & 3]
    return bytes(out)


def frame_payloads(buf: bytes, starts: np.ndarray, lengths: np.ndarray,
                   masked: np.ndarray) -> list[bytes]:
    """The payloads ``buf[starts[i]:starts[i] + lengths[i]]`` of many frames,
    each unmasked where ``masked[i]`` by the 4-byte key just before it (where a
    frame header puts it): :func:`py_frame_payloads`, or its compiled mirror
    where that is built."""
    return _frame_payloads(buf, np.ascontiguousarray(starts, np.int64),
                           np.ascontiguousarray(lengths, np.int64),
                           np.ascontiguousarray(masked, np.bool_))


def py_frame_payloads(buf: bytes, starts: np.ndarray, lengths: np.ndarray,
                      masked: np.ndarray) -> list[bytes]:
    """The payloads ``buf[starts[i]:starts[i] + lengths[i]]`` of many frames,
    each unmasked where ``masked[i]`` by the 4-byte key just before it (where a
    frame header puts it).

    One pass, in the method :func:`unmask` would choose for each payload's
    size: for a chat's small frames about 1.5 us a frame, where gathering
    every byte of a block with NumPy index arrays costed 5 times that.
    """
    from_bytes = int.from_bytes
    out: list[bytes] = []
    append = out.append
    for x, n, m in zip(starts.tolist(), lengths.tolist(), masked.tolist(), strict=True):
        y = x + n
        if not m:
            append(buf[x:y])
        elif n < NUMPY_THRESHOLD:
            append((from_bytes(buf[x:y], "little")
                    ^ from_bytes((buf[x - 4:x] * ((n >> 2) + 1))[:n], "little")
                    ).to_bytes(n, "little"))
        else:
            append(py_unmask(buf[x:y], buf[x - 4:x]))
    return out


_frame_payloads = py_frame_payloads
_unmask = py_unmask
if SPEEDUPS:
    try:
        from wspcap.ws._speedups import frame_payloads as _frame_payloads
        from wspcap.ws._speedups import unmask as _unmask
    except ImportError:  # not built: the references above
        pass
