"""COMPRESS=DEFLATE (RFC 4978) for one connection — sans-I/O: bytes in, bytes out.

Both directions are raw deflate (RFC 1951, no zlib header: negative window bits).  Choices,
with memory per connection bounded (zlib's own formulas):

* inflate (client → server) uses a 32 KiB window (``-15``): a client may use the largest
  window the format allows (RFC 4978 §4), so we must be able to read it; ≈ 40 KiB.
* deflate (server → client) uses level 6 (zlib's and Dovecot's default: most of the gain of
  level 9 for a fraction of its CPU), an 8 KiB window (``-13``) and ``memLevel`` 7:
  ``(1 << (13 + 2)) + (1 << (7 + 9))`` = 96 KiB.  A window smaller than the peer's is always
  readable (raw deflate distances never exceed the window the sender used).  Dovecot uses a
  32 KiB window and memLevel 8 (256 KiB); IMAP responses repeat within a few KiB, so the
  smaller window costs little ratio (see bench/imap/compress.py).
* every write ends with ``Z_SYNC_FLUSH`` so the client can decode each response as soon as it
  arrives (RFC 4978 §4: "the sender MUST flush ... when it has no more data to send").
* inflated input is produced in pieces of at most :data:`INFLATE_PIECE` bytes, each handed to
  the command reader (whose own limits apply) before the next is inflated: a small compressed
  input cannot make us hold a large inflated one (no "zip bomb").
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

LEVEL = 6
DEFLATE_WBITS = -13
DEFLATE_MEMLEVEL = 7
INFLATE_WBITS = -15
INFLATE_PIECE = 64 * 1024

__all__ = ["CompressError", "Deflate"]


class CompressError(Exception):
    """The client's deflate stream is corrupt."""


class Deflate:
    __slots__ = ("_in", "_out", "bytes_in", "bytes_out", "plain_in", "plain_out")

    def __init__(self) -> None:
        self._out = zlib.compressobj(LEVEL, zlib.DEFLATED, DEFLATE_WBITS, DEFLATE_MEMLEVEL)
        self._in = zlib.decompressobj(INFLATE_WBITS)
        # counters (wire vs. plain bytes), for logs and the benchmark
        self.bytes_in = self.bytes_out = self.plain_in = self.plain_out = 0

    def compress(self, chunks: Iterable[bytes | bytearray | memoryview]) -> bytes:
        """Compress one batch of output, flushed so the client can decode all of it now."""
        plain = b"".join(chunks)  # one call into zlib: responses come as many small pieces
        self.plain_out += len(plain)
        data = self._out.compress(plain) + self._out.flush(zlib.Z_SYNC_FLUSH)
        self.bytes_out += len(data)
        return data

    def inflate(self, data: bytes) -> Iterator[bytes]:
        """The plain bytes of ``data``, in pieces of at most INFLATE_PIECE bytes."""
        self.bytes_in += len(data)
        d = self._in
        try:
            piece = d.decompress(data, INFLATE_PIECE)
            while True:
                if piece:
                    self.plain_in += len(piece)
                    yield piece
                if not d.unconsumed_tail:
                    break
                piece = d.decompress(d.unconsumed_tail, INFLATE_PIECE)
        except zlib.error as exc:
            raise CompressError(str(exc)) from None
        if d.eof:  # the client ended its stream (Z_FINISH): nothing more may follow
            raise CompressError("deflate stream ended")
