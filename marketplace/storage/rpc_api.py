"""The Kubo RPC subset a WEBI node serves, so ``KuboStore`` (and other Kubo clients) work against it.

Every command is a POST under ``/api/v0``. Commands that write (add, block/put, dag/import,
pin/add, pin/rm) need ``Authorization: Bearer <token>`` when the node has a token, and every upload
is counted against ``max_upload_bytes`` as it streams in, so an oversized body is refused with 413
before it fills a disk. Uploads are parsed with Starlette's multipart parser, which spools parts
over 1 MiB to temporary files: memory stays bounded whatever the upload size.
"""

from __future__ import annotations

import hmac
import json
import platform
import urllib.parse
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from marketplace.errors import BlockMismatchError, ContentError, ContentNotFoundError, ContentTooLargeError
from marketplace.storage import reader
from marketplace.storage.api_errors import KuboRoute
from marketplace.storage.car import iter_car
from marketplace.storage.cid import Cid, split_ipfs_path
from marketplace.storage.dagpb import PBLink
from marketplace.storage.importer import Added, Importer
from marketplace.storage.local import CAR_IMPORT, LocalStore

NDJSON = "application/x-ndjson"
_DIRECTORY = "application/x-directory"


@dataclass(frozen=True)
class StoreApiSettings:
    """Limits and auth of the store's HTTP API. ``token=None`` leaves writes open (local use only)."""

    token: str | None = None
    max_upload_bytes: int = 4 * 1024**3
    max_block_bytes: int = 2 * 1024**2  # Kubo refuses larger blocks; peers could not exchange them
    max_files: int = 10_000


def multipart_body(files: str) -> dict[str, Any]:
    """The OpenAPI request body (``openapi_extra``) of a route that reads its multipart form itself, to count it as
    it streams: ``"one"`` file part named ``file``, or ``"many"``."""
    item = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": item} if files == "many" else item
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"file": schema}, "required": ["file"]}}}}}


def rpc_router(store: LocalStore, settings: StoreApiSettings) -> APIRouter:
    """The ``/api/v0`` routes over ``store``."""
    router = APIRouter(route_class=KuboRoute)
    writes = [Depends(_bearer(settings.token))]

    def resolved(arg: str) -> Cid:
        cid, path = split_ipfs_path(arg)
        return store.resolve(cid, path)

    @router.post("/version")
    def version() -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            release = installed("webi")
        except PackageNotFoundError:  # running from a checkout that was never pip-installed
            release = "0+checkout"
        return {"Version": f"webi-{release}", "Commit": "", "Repo": "webi-local",
                "System": f"{platform.machine()}/{platform.system().lower()}", "Golang": ""}

    @router.post("/add", dependencies=writes, openapi_extra=multipart_body("many"))
    async def add(request: Request,
                  only_hash: Annotated[bool, Query(alias="only-hash")] = False,
                  pin: bool = True,
                  cid_version: Annotated[int, Query(alias="cid-version")] = 1,
                  raw_leaves: Annotated[bool, Query(alias="raw-leaves")] = True,
                  chunker: str = "size-262144",
                  wrap_with_directory: Annotated[bool, Query(alias="wrap-with-directory")] = False) -> Response:
        if cid_version != 1 or not raw_leaves or chunker != "size-262144" or wrap_with_directory:
            raise HTTPException(400, "this node adds with cid-version=1, raw-leaves=true, chunker=size-262144 "
                                     "and no wrapping directory only")
        form = await _read_form(request, settings)
        try:
            added = await run_in_threadpool(_import_form, store, form, only_hash, pin)
        finally:
            await form.close()
        lines = [{"Name": item.path, "Hash": str(item.cid), "Size": str(item.tsize)} for item in added]
        return _ndjson(lines)

    @router.post("/cat")
    def cat(arg: str) -> StreamingResponse:
        target = resolved(arg)
        info = reader.stat(store.get_block, target)  # fails here, with a status, if absent or a directory
        if info.kind != "file":
            raise ContentError(f"{arg} is a directory, not a file")
        return StreamingResponse(store.cat(target), media_type="application/octet-stream",
                                 headers={"X-Content-Length": str(info.size)})

    @router.post("/block/get")
    def block_get(arg: str) -> Response:
        return Response(store.get_block(resolved(arg)), media_type="application/octet-stream")

    @router.post("/block/stat")
    def block_stat(arg: str) -> dict[str, Any]:
        target = resolved(arg)
        return {"Key": str(target), "Size": len(store.get_block(target))}

    @router.post("/block/put", dependencies=writes, openapi_extra=multipart_body("one"))
    async def block_put(request: Request, cid_codec: Annotated[str, Query(alias="cid-codec")] = "raw",
                        mhtype: str = "sha2-256") -> dict[str, Any]:
        if mhtype != "sha2-256" or cid_codec not in ("raw", "dag-pb"):
            raise HTTPException(400, "block/put takes mhtype=sha2-256 and cid-codec raw or dag-pb")
        form = await _read_form(request, StoreApiSettings(max_upload_bytes=settings.max_block_bytes + 64 * 1024))
        try:
            upload = _only_file(form)
            data = await upload.read()
        finally:
            await form.close()
        if len(data) > settings.max_block_bytes:
            raise ContentTooLargeError(f"block of {len(data)} bytes is over the {settings.max_block_bytes}-byte limit")
        cid = Cid.of(data, 0x55 if cid_codec == "raw" else 0x70)
        await run_in_threadpool(store.put_block, cid, data)
        return {"Key": str(cid), "Size": len(data)}

    @router.post("/dag/export")
    def dag_export(arg: str) -> StreamingResponse:
        root = resolved(arg)
        store.get_block(root)  # a missing root is a 404 now, not a broken stream later
        return StreamingResponse(iter_car([root], reader.walk(store.get_block, root)),
                                 media_type="application/vnd.ipld.car")

    @router.post("/dag/import", dependencies=writes, openapi_extra=multipart_body("many"))
    async def dag_import(request: Request, pin_roots: Annotated[bool, Query(alias="pin-roots")] = True) -> Response:
        form = await _read_form(request, settings)
        try:
            roots: list[Cid] = []
            for _, value in form.multi_items():
                if isinstance(value, UploadFile):
                    roots += await run_in_threadpool(_import_car, store, value.file, pin_roots)
        finally:
            await form.close()
        return _ndjson([{"Root": {"Cid": {"/": str(root)}, "PinErrorMsg": ""}} for root in roots])

    @router.post("/pin/add", dependencies=writes)
    def pin_add(arg: str) -> dict[str, Any]:
        target = resolved(arg)
        store.pin(target)
        return {"Pins": [str(target)]}

    @router.post("/pin/rm", dependencies=writes)
    def pin_rm(arg: str) -> dict[str, Any]:
        target = resolved(arg)
        store.unpin(target)
        return {"Pins": [str(target)]}

    @router.post("/pin/ls")
    def pin_ls(type: str = "recursive") -> dict[str, Any]:
        if type not in ("recursive", "all"):
            return {"Keys": {}}
        return {"Keys": {str(cid): {"Type": "recursive"} for cid in store.pins()}}

    return router


def _bearer(token: str | None) -> Any:
    def check(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "this node needs a bearer token for writes", {"WWW-Authenticate": "Bearer"})

    return check


async def _read_form(request: Request, settings: StoreApiSettings) -> FormData:
    return await read_multipart(request, settings.max_upload_bytes, max_files=settings.max_files)


async def read_multipart(request: Request, limit: int, *, max_files: int) -> FormData:
    """The multipart body of ``request``, counted as it streams in: ``ContentTooLargeError`` past ``limit``
    bytes (the declared length is checked first), so an oversized upload never reaches the disk whole.
    Close the form when done: parts over 1 MiB are spooled to temporary files."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ContentTooLargeError(f"upload of {declared} bytes is over this node's {limit}-byte limit")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(400, "expected a multipart/form-data body")

    async def counted() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise ContentTooLargeError(f"upload is over this node's {limit}-byte limit")
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=max_files, max_fields=100)
    try:
        return await parser.parse()
    except MultiPartException as error:
        raise HTTPException(400, f"bad multipart body: {error.message}") from None


def _import_car(store: LocalStore, stream: BinaryIO, pin_roots: bool) -> list[Cid]:
    """``store.import_car``, with the upload's faults as 400s: a block of the CAR that does not match its CID (not
    a damaged block of this store, which stays a 500), and a root the CAR does not hold (nor the store) to pin."""
    try:
        return store.import_car(stream, pin_roots=pin_roots)
    except BlockMismatchError as error:
        if error.source != CAR_IMPORT:
            raise
        raise ContentError(f"the uploaded CAR is corrupt: {error}") from None
    except ContentNotFoundError as error:
        raise ContentError(f"cannot pin the CAR's roots, their DAG is neither in the CAR nor in this store: "
                           f"{error}") from None


def _only_file(form: FormData) -> UploadFile:
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if len(files) != 1:
        raise HTTPException(400, f"expected one file part, got {len(files)}")
    return files[0]


def _import_form(store: LocalStore, form: FormData, only_hash: bool, pin: bool) -> list[Added]:
    """Imports Kubo's flat multipart layout: each part's filename is its escaped path from the top."""
    tree: dict[str, Any] = {}
    for _, value in form.multi_items():
        if not isinstance(value, UploadFile):
            continue
        names = [part for part in urllib.parse.unquote(value.filename or "").split("/") if part]
        if any(name in (".", "..") or "\\" in name for name in names):
            raise HTTPException(400, f"unsafe path in upload: {value.filename!r}")
        is_directory = (value.content_type or "").startswith(_DIRECTORY)
        if not names:
            if is_directory:
                raise HTTPException(400, "a directory part needs a name")
            names = [""]
        node = tree
        for name in names[:-1]:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise HTTPException(400, f"{value.filename!r} is under a file")
        if is_directory:
            node.setdefault(names[-1], {})
        elif names[-1] in node:
            raise HTTPException(400, f"{value.filename!r} appears twice in the upload")
        else:
            node[names[-1]] = value
    if not tree:
        raise HTTPException(400, "no file in the upload")
    added: list[Added] = []
    importer = Importer(on_added=added.append) if only_hash else store.importer(on_added=added.append)
    with store.writing():
        roots = [_import_entry(importer, name, entry) for name, entry in tree.items()]
        if pin and not only_hash:
            for root in roots:
                store.pin(root.cid, check=False)
    return added


def _import_entry(importer: Importer, path: str, entry: UploadFile | dict[str, Any]) -> Added:
    if isinstance(entry, UploadFile):
        return importer.add_stream(entry.file, path)
    links, size = [], 0
    for name in sorted(entry, key=str.encode):
        child = _import_entry(importer, f"{path}/{name}", entry[name])
        links.append(PBLink(child.cid, name, child.tsize))
        size += child.size
    return importer.add_directory(path, links, size)


def _ndjson(lines: list[dict[str, Any]]) -> Response:
    def body() -> Iterator[bytes]:
        for line in lines:
            yield json.dumps(line).encode() + b"\n"

    return StreamingResponse(body(), media_type=NDJSON)
