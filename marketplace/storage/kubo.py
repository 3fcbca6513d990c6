"""A content store reached over the Kubo RPC API (``/api/v0``): a real IPFS node or a WEBI node.

Only the RPC subset both speak is used (add, block/get, block/put, dag/export, dag/import, pin/*,
version), over httpx; every call is a POST, as Kubo requires. Nothing the node returns is trusted:
blocks are hashed on arrival, reads stream the DAG as one CAR (``dag/export``) and check each block,
and ``add`` hashes the content here too and refuses a node that answers with another CID.
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from marketplace.errors import ContentError, ContentNotFoundError, ContentTooLargeError, StoreUnavailableError
from marketplace.storage.car import CarBlockSource, CarReader
from marketplace.storage.cid import Cid
from marketplace.storage.httpio import response_stream
from marketplace.storage.importer import Added, Importer, Progress
from marketplace.storage.reader import GetBlock
from marketplace.storage.store import ContentStore

log = logging.getLogger(__name__)
_ADD_PARAMS = {"cid-version": "1", "raw-leaves": "true", "chunker": "size-262144"}


class KuboStore(ContentStore):
    """Content on a node with a Kubo RPC API at ``api_url`` (e.g. ``http://127.0.0.1:5001``).

    ``token`` is sent as ``Authorization: Bearer``: Kubo's ``API.Authorizations`` and WEBI nodes
    with a write token both accept it.
    """

    def __init__(self, api_url: str, *, token: str | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.name = f"Kubo RPC {self.api_url}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"{self.api_url}/api/v0", headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=10.0), transport=transport)

    def close(self) -> None:
        self._http.close()

    def version(self) -> dict[str, Any]:
        """The node's ``version`` answer: a cheap check that the API is there and speaks RPC."""
        result: dict[str, Any] = self._json("version")
        return result

    def get_block(self, cid: Cid) -> bytes:
        with self._post("block/get", params={"arg": str(cid)}) as response:
            return cid.verify(response.read(), self.name)

    def put_block(self, cid: Cid, data: bytes) -> None:
        cid.verify(data, "a block to put")
        answer = self._json("block/put", params={"cid-codec": cid.codec_name, "mhtype": "sha2-256"},
                            files={"file": ("block", data, "application/octet-stream")})
        if Cid.parse(answer["Key"]).to_v1() != cid.to_v1():
            raise ContentError(f"{self.name} stored block {cid} as {answer['Key']}")

    def add_path(self, path: Path, *, recursive: bool = False, pin: bool = True,
                 progress: Progress | None = None) -> Added:
        expected = Importer().add_path(path, recursive=recursive)
        opened: list[_Counting] = []
        try:
            parts = _multipart_parts(path, expected.is_directory, opened, progress)
            lines = self._lines("add", params={**_ADD_PARAMS, "pin": _flag(pin)}, files=parts)
        finally:
            for stream in opened:
                stream.close()
        return self._check_added(lines, expected)

    def add_stream(self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None) -> Added:
        """Uploads ``stream`` while hashing it here, so the node's CID is checked without reading twice."""
        hasher = _HashingReader(stream, progress)
        try:
            lines = self._lines("add", params={**_ADD_PARAMS, "pin": _flag(pin)},
                                files={"file": ("file", hasher, "application/octet-stream")})
        finally:
            expected = hasher.finish()
        return self._check_added(lines, expected)

    def pin(self, cid: Cid) -> None:
        self._json("pin/add", params={"arg": str(cid)})

    def unpin(self, cid: Cid) -> None:
        self._json("pin/rm", params={"arg": str(cid)})

    def pins(self) -> list[Cid]:
        keys = self._json("pin/ls", params={"type": "recursive"}).get("Keys") or {}
        return sorted((Cid.parse(key) for key in keys), key=str)

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[Cid]:
        lines = self._lines("dag/import", params={"pin-roots": _flag(pin_roots)},
                            files={"file": ("import.car", stream, "application/vnd.ipld.car")})
        roots = []
        for line in lines:
            root = line.get("Root")
            if root:
                if root.get("PinErrorMsg"):
                    raise ContentError(f"{self.name} could not pin {root['Cid']['/']}: {root['PinErrorMsg']}")
                roots.append(Cid.parse(root["Cid"]["/"]))
        return roots

    @contextlib.contextmanager
    def dag_reader(self, root: Cid) -> Iterator[GetBlock]:
        with self._post("dag/export", params={"arg": str(root)}) as response:
            source = CarBlockSource(CarReader(response_stream(response, self.name), source=self.name),
                                    fallback=self.get_block)
            yield source.get_block

    # -- HTTP ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _post(self, command: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self._http.stream("POST", command, **kwargs) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error(self.name, command, kwargs.get("params", {}), response)
                yield response
        except httpx.HTTPError as error:
            raise StoreUnavailableError(f"{self.name}: {command} failed: {error}") from None

    def _json(self, command: str, **kwargs: Any) -> dict[str, Any]:
        lines = self._lines(command, **kwargs)
        return lines[-1] if lines else {}

    def _lines(self, command: str, **kwargs: Any) -> list[dict[str, Any]]:
        """The JSON objects of an answer (Kubo streams one per line for add and dag/import)."""
        with self._post(command, **kwargs) as response:
            text = response.read().decode()
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise StoreUnavailableError(f"{self.name}: {command} answered with something other than JSON") from None

    def _check_added(self, lines: list[dict[str, Any]], expected: Added) -> Added:
        if not lines or "Hash" not in lines[-1]:
            raise StoreUnavailableError(f"{self.name}: add answered without a CID")
        got = Cid.parse(lines[-1]["Hash"])
        if got.to_v1() != expected.cid:
            raise ContentError(f"{self.name} named the added content {got}, but it hashes to {expected.cid}; "
                               "is the node set to other import options (chunker, raw leaves)?")
        return expected


class _HashingReader:
    """Passes a stream through to the upload while importing it with no sink (hash only)."""

    def __init__(self, stream: BinaryIO, progress: Progress | None) -> None:
        import os
        import threading

        read_end, write_end = os.pipe()
        self._source = stream
        self._progress = progress
        self._pipe = os.fdopen(write_end, "wb")
        self._result: list[Added] = []
        self._errors: list[BaseException] = []

        def hash_all() -> None:
            try:
                with os.fdopen(read_end, "rb") as pipe:
                    self._result.append(Importer().add_stream(pipe))
            except BaseException as error:  # handed to finish()
                self._errors.append(error)

        self._thread = threading.Thread(target=hash_all, name="webi-hash", daemon=True)
        self._thread.start()

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._pipe.write(data)
            if self._progress is not None:
                self._progress(len(data))
        return data

    def finish(self) -> Added:
        self._pipe.close()
        self._thread.join()
        if self._errors:
            raise self._errors[0]
        return self._result[0]


def _multipart_parts(path: Path, is_directory: bool, opened: list[_Counting],
                     progress: Progress | None) -> list[tuple[str, tuple[str, Any, str]]]:
    """Kubo's flat multipart layout: one part per file and directory, named by its escaped relative path."""
    if not is_directory:
        stream = _Counting(path.open("rb"), progress)
        opened.append(stream)
        return [("file", (urllib.parse.quote(path.name, safe=""), stream, "application/octet-stream"))]
    parts: list[tuple[str, tuple[str, Any, str]]] = []

    def visit(directory: Path, name: str) -> None:
        parts.append(("file", (urllib.parse.quote(name, safe=""), b"", "application/x-directory")))
        for child in sorted(directory.iterdir(), key=lambda entry: entry.name.encode()):
            if child.name.startswith("."):
                continue
            child_name = f"{name}/{child.name}"
            if child.is_dir():
                visit(child, child_name)
            else:
                stream = _Counting(child.open("rb"), progress)
                opened.append(stream)
                parts.append(("file", (urllib.parse.quote(child_name, safe=""), stream, "application/octet-stream")))

    visit(path, path.name)
    return parts


class _Counting:
    """A file wrapper that reports bytes read, for upload progress bars."""

    def __init__(self, stream: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self._stream = stream
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def close(self) -> None:
        self._stream.close()


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _error(name: str, command: str, params: dict[str, Any], response: httpx.Response) -> ContentError:
    try:
        message = str(response.json().get("Message", response.text))
    except (ValueError, AttributeError):
        message = response.text.strip() or response.reason_phrase
    arg = f" {params['arg']}" if "arg" in params else ""
    text = f"{name}: {command}{arg}: {message} (HTTP {response.status_code})"
    if response.status_code == 404 or "not found" in message.lower():
        return ContentNotFoundError(text)
    if response.status_code == 413:
        return ContentTooLargeError(text)
    if response.status_code in (401, 403):
        return StoreUnavailableError(f"{text}; pass the node's write token (--token / WEBI_STORE_TOKEN)")
    if response.status_code == 400:
        return ContentError(text)
    return StoreUnavailableError(text)
