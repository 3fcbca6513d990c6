"""A trustless HTTP gateway (specs.ipfs.tech/http-gateways/trustless-gateway) over a store.

``GET /ipfs/{cid}[/path]`` answers with the raw block (``?format=raw`` or ``Accept:
application/vnd.ipld.raw``), a CAR of the DAG (``?format=car`` or ``Accept: application/vnd.ipld.car``;
depth first, each block once, with the blocks of the path first so a client can check the path too),
or, without either, the file's bytes or a directory listing for people with a browser.
"""

from __future__ import annotations

import html
import itertools
import mimetypes
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from marketplace.storage import reader
from marketplace.storage.api_errors import GatewayRoute
from marketplace.storage.car import iter_car
from marketplace.storage.cid import Cid
from marketplace.storage.store import ContentStore

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
_IMMUTABLE = "public, max-age=29030400, immutable"


def response_format(format_param: str | None, accept: str | None) -> str:
    """``raw``, ``car`` or ``file``: the ``format`` parameter wins over the Accept header."""
    if format_param:
        if format_param not in ("raw", "car"):
            raise HTTPException(400, f"unsupported format {format_param!r}: use raw or car")
        return format_param
    for media in (accept or "").split(","):
        kind = media.split(";")[0].strip()
        if kind == RAW_TYPE:
            return "raw"
        if kind == CAR_TYPE:
            return "car"
    return "file"


def gateway_router(store: ContentStore) -> APIRouter:
    """The ``/ipfs`` routes over ``store``."""
    router = APIRouter(route_class=GatewayRoute)

    # HEAD shares the handler; kept out of the OpenAPI schema, whose operation ids must be unique.
    @router.head("/{cid}", include_in_schema=False)
    @router.head("/{cid}/{path:path}", include_in_schema=False)
    @router.get("/{cid}", operation_id="ipfs_root")
    @router.get("/{cid}/{path:path}", operation_id="ipfs_path")
    def get(request: Request, cid: str, path: str = "",
            format: Annotated[str | None, Query()] = None) -> Response:
        root = Cid.parse(cid)
        kind = response_format(format, request.headers.get("accept"))
        target, trail = reader.resolve(store.get_block, root, path)
        headers = {"Cache-Control": _IMMUTABLE, "X-Ipfs-Path": f"/ipfs/{cid}/{path}".rstrip("/"),
                   "X-Content-Type-Options": "nosniff", "Etag": f'"{target}.{kind}"'}
        head = request.method == "HEAD"
        if kind == "raw":
            block = store.get_block(target)
            headers["Content-Disposition"] = f'attachment; filename="{target}.bin"'
            return Response(b"" if head else block, media_type=RAW_TYPE,
                            headers={**headers, "Content-Length": str(len(block))})
        if kind == "car":
            store.get_block(target)  # a missing block is a 404 now, not a broken stream later
            headers["Content-Disposition"] = f'attachment; filename="{target}.car"'
            media = f"{CAR_TYPE}; version=1; order=dfs; dups=n"
            if head:
                return Response(media_type=media, headers=headers)
            blocks = itertools.chain(trail, reader.walk(store.get_block, target))
            return StreamingResponse(iter_car([root], blocks), media_type=media, headers=headers)
        info = reader.stat(store.get_block, target)
        if info.kind == "directory":
            listing = reader.list_directory(store.get_block, target)
            return HTMLResponse(_listing(f"/ipfs/{cid}/{path}".rstrip("/"), listing), headers=headers)
        media = mimetypes.guess_type(path or "")[0] or "application/octet-stream"
        headers["Content-Length"] = str(info.size)
        if head:
            return Response(media_type=media, headers=headers)
        return StreamingResponse(store.cat(target), media_type=media, headers=headers)

    return router


def _listing(base: str, entries: list[reader.DirEntry]) -> str:
    rows = "".join(f'<li><a href="{html.escape(base)}/{html.escape(entry.name)}">{html.escape(entry.name)}</a> '
                   f"<small>{entry.tsize} bytes · {entry.cid}</small></li>" for entry in entries)
    return f"<!doctype html><title>{html.escape(base)}</title><h1>{html.escape(base)}</h1><ul>{rows}</ul>"
