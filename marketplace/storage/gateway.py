"""A read-only content store over any trustless HTTP gateway (``/ipfs/{cid}?format=raw|car``).

The gateway is not trusted: each raw block is hashed against the CID asked for, and a CAR is
checked block by block as it streams, so a lying or broken gateway is refused with
``BlockMismatchError`` naming the CID before a byte of its answer is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

import httpx

from marketplace.errors import ContentError, ContentNotFoundError, StoreUnavailableError
from marketplace.storage.car import CarBlockSource, CarReader
from marketplace.storage.cid import Cid
from marketplace.storage.gateway_api import CAR_TYPE, RAW_TYPE
from marketplace.storage.httpio import response_stream
from marketplace.storage.importer import Added, Progress
from marketplace.storage.reader import GetBlock
from marketplace.storage.store import ContentStore


class GatewayStore(ContentStore):
    """Reads content from the gateway at ``url`` (e.g. ``https://trustless-gateway.link``)."""

    def __init__(self, url: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.name = f"gateway {self.url}"
        self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout, connect=10.0),
                                  transport=transport, follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def get_block(self, cid: Cid) -> bytes:
        with self._get(cid, "raw", RAW_TYPE) as response:
            return cid.verify(response.read(), self.name)

    @contextlib.contextmanager
    def dag_reader(self, root: Cid) -> Iterator[GetBlock]:
        with self._get(root, "car", f"{CAR_TYPE}; version=1; order=dfs; dups=n") as response:
            car = CarReader(response_stream(response, self.name), source=self.name)
            if [cid.to_v1() for cid in car.roots] != [root.to_v1()]:
                raise ContentError(f"{self.name} answered a CAR for {root} with roots {car.roots}")
            yield CarBlockSource(car, fallback=self.get_block).get_block

    @contextlib.contextmanager
    def _get(self, cid: Cid, kind: str, accept: str) -> Iterator[httpx.Response]:
        try:
            with self._http.stream("GET", f"/ipfs/{cid}", params={"format": kind},
                                   headers={"Accept": accept}) as response:
                if response.status_code == 404:
                    raise ContentNotFoundError(f"{self.name} has no {cid}")
                if response.status_code != 200:
                    response.read()
                    raise StoreUnavailableError(f"{self.name}: {cid}?format={kind}: HTTP {response.status_code} "
                                                f"{response.text.strip()[:200]}")
                yield response
        except httpx.HTTPError as error:
            raise StoreUnavailableError(f"{self.name}: {cid}: {error}") from None

    # -- a gateway is read-only ------------------------------------------------------------------

    def _read_only(self) -> NoReturn:
        raise ContentError(f"{self.name} is read-only; add content through a node's RPC API or the local store")

    def put_block(self, cid: Cid, data: bytes) -> None:
        self._read_only()

    def add_path(self, path: Path, *, recursive: bool = False, pin: bool = True,
                 progress: Progress | None = None) -> Added:
        self._read_only()

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None) -> Added:
        self._read_only()

    def pin(self, cid: Cid) -> None:
        self._read_only()

    def unpin(self, cid: Cid) -> None:
        self._read_only()

    def pins(self) -> list[Cid]:
        return []

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[Cid]:
        self._read_only()
