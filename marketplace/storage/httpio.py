"""A readable binary stream over an httpx streaming response, so CAR and file parsers read HTTP bodies
the way they read files: in bounded pieces, never the whole body in memory."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx

from marketplace.errors import StoreUnavailableError


class _ResponseRaw(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes], where: str) -> None:
        self._chunks = chunks
        self._where = where
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.HTTPError as error:
                raise StoreUnavailableError(f"{self._where}: connection lost mid-stream ({error})") from None
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def response_stream(response: httpx.Response, where: str) -> io.BufferedReader:
    """A buffered reader over ``response``'s body (the response must have been opened with ``stream``)."""
    return io.BufferedReader(_ResponseRaw(response.iter_bytes(), where), buffer_size=256 * 1024)
