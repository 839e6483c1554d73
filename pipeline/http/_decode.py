"""Content-Encoding decoding that never inflates past a limit.

httpx's own decoders inflate each network chunk in one call, without a bound:
one 64 KiB read of a gzip bomb (zeros compress about 1000:1) becomes ~64 MiB
in memory before any size check can run. Here every ``decompress`` call is
given ``max_length``, so memory stays within the cap however hostile the body.

Only gzip and deflate are decoded, and so only they are advertised in
Accept-Encoding. (brotli and zstandard are not installed in our environment;
adding them means a bounded loop like this one: brotli's
``Decompressor.process(output_buffer_limit=)``, zstandard's
``decompressobj().decompress`` with ``max_output_size``.)
"""

from __future__ import annotations

import zlib

__all__ = ["ACCEPT_ENCODING", "BoundedDecoder", "UnsupportedEncoding"]

ACCEPT_ENCODING = "gzip, deflate"


class UnsupportedEncoding(ValueError):
    pass


class BoundedDecoder:
    """Undo one Content-Encoding, returning at most ``max_length`` bytes a call.

    ``decode(data, max_length)`` returns fewer than ``max_length`` bytes only
    when all input so far has been consumed; a caller that asks for
    ``room + 1`` bytes therefore knows the body is over its cap as soon as it
    gets ``room + 1`` back. Raises ``zlib.error`` on corrupt data.
    """

    def __init__(self, content_encoding: str | None) -> None:
        codings = [
            c.strip().lower() for c in (content_encoding or "").split(",")
            if c.strip().lower() not in ("", "identity")
        ]
        if len(codings) > 1:
            # Stacked codings (RFC 9110 §8.4) are legal but practically unseen.
            raise UnsupportedEncoding(f"stacked Content-Encoding {content_encoding!r}")
        self._coding = codings[0] if codings else "identity"
        self._pending = b""
        self._raw_deflate_tried = False
        self._z: zlib._Decompress | None
        if self._coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._coding == "deflate":
            self._z = zlib.decompressobj()
        elif self._coding == "identity":
            self._z = None
        else:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {self._coding!r}")

    @property
    def coding(self) -> str:
        return self._coding

    def decode(self, data: bytes, max_length: int) -> bytes:
        if self._z is None:
            return data
        if self._z.eof:
            return b""  # trailing bytes after the stream end are ignored, as httpx does
        data = self._pending + data
        try:
            out = self._z.decompress(data, max_length)
        except zlib.error:
            # RFC 9110 "deflate" means zlib-wrapped, but some servers send raw
            # deflate (the old IIS bug); httpx and browsers accept both.
            if self._coding != "deflate" or self._raw_deflate_tried:
                raise
            self._raw_deflate_tried = True
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._z.decompress(data, max_length)
        self._raw_deflate_tried = True  # only the first bytes may switch modes
        self._pending = self._z.unconsumed_tail
        return out

    def flush(self, max_length: int) -> bytes:
        """Whatever is still buffered once the input has ended."""
        if self._z is None:
            return b""
        return self.decode(b"", max_length)
