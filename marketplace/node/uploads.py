"""The web app's routes under ``/v1``: a wallet signs in (``marketplace.node.sessions``), then uploads a job's
inputs, its model folder and its spec into the node's store; the page then posts the job from the wallet.

Uploads need ``Authorization: Bearer <session token>`` from ``POST /v1/auth/session``; the operator's store
token is not accepted here, only a wallet session. Each upload is checked by the rules ``webi job post``
applies before it spends anything: the inputs parse as the CLI parses them, the model folder is a bundle a
provider would load, the spec names inputs this store holds with one line per task. Bodies are counted as
they stream in (``read_multipart``), so an oversized one is refused with 413 before it fills a disk.

Every error is ``{"detail": "..."}`` naming the problem: 400 for a malformed request (validation errors
included, as one sentence), 401 for sign-in and session problems, 413 for an upload over a limit.

@dev Warning: any wallet can sign in, staked or not: what bounds one signed-in wallet's use of the disk is
the per-upload limits alone, and the uploads are pinned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from marketplace.errors import (
    ArgumentError,
    ContentNotFoundError,
    ContentTooLargeError,
    JobSpecError,
    ModelError,
    WebiError,
)
from marketplace.job_views import RequestRefusedError
from marketplace.jobspec import (
    MAX_TASKS,
    JobSpec,
    TaskType,
    input_lines,
    input_text,
    inputs_manifest,
    parse_inputs,
    parse_parameters,
    parse_spec,
)
from marketplace.model_bundle import BundleListing, check_positions, check_task_fit, inspect_bundle, store_listing
from marketplace.node.group_uploads import GroupBody, shard_specs
from marketplace.node.price_queries import PriceQueries
from marketplace.node.queries import Queries
from marketplace.node.sessions import SessionError, Sessions
from marketplace.storage.api_errors import status_of
from marketplace.storage.cid import Cid
from marketplace.storage.dagpb import PBLink
from marketplace.storage.importer import Added, Importer
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import multipart_body, read_multipart

# Stateless: it reads the header, and names the scheme in the OpenAPI schema.
_BEARER = HTTPBearer(auto_error=False, description="a wallet session token from POST /v1/auth/session")


MULTIPART_SLACK = 64 * 1024  # a multipart body's own bytes (headers, boundaries) on top of a file's
MAX_JSON_BODY = 256 * 1024  # the JSON routes' bodies (a sign-in, a spec request) are a few hundred bytes


@dataclass(frozen=True)
class UploadLimits:
    """How large one upload may be (bytes of the multipart body, counted as it arrives), and how many files
    one model folder may hold."""

    max_inputs_bytes: int = 64 * 1024**2
    max_model_bytes: int = 8 * 1024**3
    max_files: int = 10_000


# ───────────────────────────────────────────── bodies


class ErrorBody(BaseModel):
    detail: str = Field(description="what is wrong, in a sentence the page can show")


class ChallengeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="the wallet's address, 0x and 40 hex digits (any case)")


class ChallengeBody(BaseModel):
    nonce: str = Field(description="pass back to /v1/auth/session with the signature")
    message: str = Field(description="the EIP-4361 text for the wallet to sign with personal_sign, as it is")
    expires_at: float = Field(description="Unix time (seconds) after which the challenge is refused")


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nonce: str
    signature: str = Field(description="the wallet's personal_sign signature of the message: 0x and 130 hex digits")


class SessionBody(BaseModel):
    token: str = Field(description="send as Authorization: Bearer <token> to /v1/uploads/*")
    address: str = Field(description="the signed-in address, EIP-55 checksummed")
    expires_at: float = Field(description="Unix time (seconds) when the session ends")


class InputsBody(BaseModel):
    cid: str = Field(description="CID of the canonical manifest (one {\"text\": ...} per line) stored")
    num_tasks: int
    bytes: int = Field(description="size of the stored manifest")


class ModelBody(BaseModel):
    cid: str = Field(description="CID of the model folder, a UnixFS directory")
    files: int = Field(description="how many files it holds")
    bytes: int = Field(description="their total size")
    skipped: list[str] = Field(description="hidden files left out (names starting with '.'), as `ipfs add -r` does")


class SpecRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="embed, generate, classify or summarize")
    model: str = Field(description="CID of a model folder in this store")
    inputs: str = Field(description="CID of an inputs manifest in this store")
    num_tasks: int
    parameters: dict[str, Any] = Field(default_factory=dict, description="max_input_tokens, max_new_tokens")


class GroupRequest(SpecRequest):
    shards: int = Field(description="how many shards (as webi job post --shards K)")
    price_wei: int = Field(ge=1, lt=2**96, description="the whole group's price in wei, split over the shards in "
                           "proportion (a uint96, as the contract's)")


class SpecBody(BaseModel):
    cid: str = Field(description="CID of the spec: one raw block (CIDv1, raw codec, sha2-256) of its bytes")
    bytes: int


class PriceBody(BaseModel):
    task: TaskType
    num_tasks: int
    per_task_wei: str | None = Field(description="median price per task of recent jobs, wei; null with no data")
    price_wei: str | None = Field(description="per_task_wei times num_tasks")
    jobs: int = Field(description="how many jobs informed the median")
    basis: str = Field(description='"same task and size", "same task" or "none"')


_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody}, 413: {"model": ErrorBody}}
_SIGNED_IN: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody}, 401: {"model": ErrorBody},
                                               413: {"model": ErrorBody}}


# ───────────────────────────────────────────── routes


def uploads_router(sessions: Sessions, store: LocalStore, queries: Queries, limits: UploadLimits) -> APIRouter:
    """The sign-in, upload and price routes over ``store``; mount under ``/v1``."""
    router = APIRouter(route_class=_WebAppRoute)
    prices = PriceQueries(queries.engine, store)

    def signed_in(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> str:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise SessionError("sign in with your wallet first (no session token in the Authorization header)")
        return sessions.authenticate(credentials.credentials)

    # A route-level dependency: this module's annotations are strings, resolved in its globals, not in here.
    session_needed = [Depends(signed_in)]

    @router.post("/auth/challenge", summary="An EIP-4361 message for a wallet to sign", responses=_ERRORS)
    def challenge(body: ChallengeRequest, request: Request) -> ChallengeBody:
        issued = sessions.challenge(body.address, request.headers.get("host", ""))
        return ChallengeBody(nonce=issued.nonce, message=issued.message, expires_at=issued.expires_at)

    @router.post("/auth/session", summary="Sign in: a session token for the signed challenge",
                 responses={**_ERRORS, 401: {"model": ErrorBody}})
    def session(body: SessionRequest) -> SessionBody:
        opened = sessions.sign_in(body.nonce, body.signature)
        return SessionBody(token=opened.token, address=opened.address, expires_at=opened.expires_at)

    @router.post("/uploads/inputs", summary="Upload a job's inputs (JSONL): stored as its canonical manifest",
                 responses=_SIGNED_IN, dependencies=session_needed, openapi_extra=multipart_body("one"))
    async def upload_inputs(request: Request) -> InputsBody:
        # The body holds the multipart headers and boundaries too: the limit is the file's, as the page checks it.
        form = await read_multipart(request, limits.max_inputs_bytes + MULTIPART_SLACK, max_files=1)
        try:
            data = await _file_part(form).read()
        finally:
            await form.close()
        if len(data) > limits.max_inputs_bytes:
            raise ContentTooLargeError(f"the inputs file is {len(data):,} bytes: this node takes at most "
                                       f"{limits.max_inputs_bytes:,}")
        texts = await run_in_threadpool(_parse_inputs, data)
        manifest = inputs_manifest(texts)
        added = await run_in_threadpool(store.add_bytes, manifest)
        return InputsBody(cid=str(added.cid), num_tasks=len(texts), bytes=len(manifest))

    @router.post("/uploads/model", summary="Upload a model folder (each file's name its path in the folder)",
                 responses=_SIGNED_IN, dependencies=session_needed, openapi_extra=multipart_body("many"))
    async def upload_model(request: Request) -> ModelBody:
        form = await read_multipart(request, limits.max_model_bytes, max_files=limits.max_files)
        try:
            return await run_in_threadpool(_import_model, store, form)
        finally:
            await form.close()

    def checked(body: SpecRequest) -> tuple[JobSpec, list[str]]:
        """The spec ``body`` asks for, its inputs read back (one a task) and its model fit for the task."""
        document = {**body.model_dump(include=set(SpecRequest.model_fields)),
                    "parameters": parse_parameters(body.parameters).model_dump()}
        spec = parse_spec(json.dumps(document).encode())
        try:
            # The canonical manifest wraps each line as {"text": ...}: a line as short as "a" grows 3.5 times.
            manifest = store.read_bytes(Cid.parse(spec.inputs), limit=4 * limits.max_inputs_bytes)
            texts = parse_inputs(manifest, spec.num_tasks)
        except ContentNotFoundError:
            raise JobSpecError("inputs", f"{spec.inputs} is not in this node's store: upload the inputs "
                                         "first (POST /v1/uploads/inputs)") from None
        try:
            facts = inspect_bundle(store_listing(store, Cid.parse(spec.model)), None)
        except ContentNotFoundError:
            raise JobSpecError("model", f"{spec.model} is not in this node's store: upload the model folder "
                                        "first (POST /v1/uploads/model)") from None
        check_task_fit(facts, spec.task)
        check_positions(facts, spec.task, spec.parameters)
        return spec, texts

    @router.post("/uploads/spec", summary="Store a job spec naming uploaded inputs and model", responses=_SIGNED_IN,
                 dependencies=session_needed)
    def upload_spec(body: SpecRequest) -> SpecBody:
        spec, _ = checked(body)
        data = spec.to_bytes()
        added = store.add_bytes(data)
        return SpecBody(cid=str(added.cid), bytes=len(data))

    @router.post("/uploads/group", summary="Cut an uploaded job into a group's shards: their inputs and specs",
                 responses=_SIGNED_IN, dependencies=session_needed)
    def upload_group(body: GroupRequest) -> GroupBody:
        spec, texts = checked(body)
        return shard_specs(store, spec, texts, body.shards, body.price_wei)

    @router.get("/prices", summary="A price suggestion from recent jobs of the same task and size")
    def price(task: TaskType, num_tasks: Annotated[int, Query(ge=1, le=MAX_TASKS)]) -> PriceBody:
        found = prices.suggest(task, num_tasks)
        return PriceBody(task=found.task, num_tasks=found.num_tasks, jobs=found.jobs, basis=found.basis,
                         per_task_wei=None if found.per_task_wei is None else str(found.per_task_wei),
                         price_wei=None if found.price_wei is None else str(found.price_wei))

    return router


class _WebAppRoute(APIRoute):
    """Every error as ``{"detail": "..."}``: a page shows one sentence, never a list of pydantic errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            if self.body_field is not None:  # a JSON body: read here, counted, then handed on
                read = await _bounded_body(request, MAX_JSON_BODY)
                if isinstance(read, Response):
                    return read
                request = read
            try:
                return await handler(request)
            except SessionError as error:
                return JSONResponse({"detail": str(error)}, 401, {"WWW-Authenticate": "Bearer"})
            except (ArgumentError, JobSpecError, ModelError, RequestRefusedError) as error:
                return JSONResponse({"detail": str(error)}, 400)
            except WebiError as error:
                return JSONResponse({"detail": str(error)}, status_of(error))
            except RequestValidationError as error:
                return JSONResponse({"detail": _sentence(error)}, 400)
            except HTTPException as error:
                return JSONResponse({"detail": str(error.detail)}, error.status_code, error.headers)

        return handle


async def _bounded_body(request: Request, limit: int) -> Request | Response:
    """``request`` with its body read, or a JSON 413 once it passes ``limit`` bytes: the declared length first,
    then the bytes as they arrive, so a chunked body, or one of another content type, is bounded too."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return JSONResponse({"detail": f"a body of {int(declared):,} bytes is over this route's {limit:,}-byte "
                                       "limit"}, 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return JSONResponse({"detail": f"the body is over this route's {limit:,}-byte limit"}, 413)
    replayed = False

    async def receive() -> Message:
        nonlocal replayed
        if replayed:  # the body is spent: what follows is the client's disconnect
            return await request.receive()
        replayed = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    return Request(request.scope, receive)


def _sentence(error: RequestValidationError) -> str:
    """The first validation error as "body.address: Field required"."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))


def _file_part(form: FormData) -> UploadFile:
    files = [value for value in form.getlist("file") if isinstance(value, UploadFile)]
    if len(files) != 1:
        raise HTTPException(400, "expected one file part named 'file'")
    return files[0]


def _parse_inputs(data: bytes) -> list[str]:
    """The texts of an inputs file, by ``webi job post --inputs``'s rules; errors name the file's line."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise HTTPException(400, "the inputs file is not UTF-8") from None
    texts = []
    for count, (number, line) in enumerate(input_lines(text), start=1):
        if count > MAX_TASKS:  # stop here: a file of short lines must not become a list of millions first
            raise HTTPException(400, f"over {MAX_TASKS:,} inputs: a job has at most {MAX_TASKS:,}")
        try:
            texts.append(input_text(line, count))
        except JobSpecError as error:  # named by the line of the file, blank lines counted, as the page shows it
            raise HTTPException(400, f"line {number}: {error.reason}") from None
    if not texts:
        raise HTTPException(400, 'the inputs file is empty: write one JSON string or {"text": "..."} per line')
    return texts


def _import_model(store: LocalStore, form: FormData) -> ModelBody:
    """Checks the folder's parts as a model bundle, then stores them as one UnixFS directory and pins it."""
    parts: dict[str, UploadFile] = {}
    skipped: list[str] = []
    for value in form.getlist("file"):
        if not isinstance(value, UploadFile):
            raise HTTPException(400, "every 'file' part must be a file with its path as its filename")
        path = _safe_path(value.filename or "")
        if path in parts:
            raise HTTPException(400, f"{path!r} appears twice in the upload")
        parts[path] = value
    if not parts:
        raise HTTPException(400, "no file in the upload: send each file of the folder as a part named 'file'")
    tops = {path.split("/")[0] for path in parts}
    name = "model folder (uploaded)"
    if len(tops) == 1 and all("/" in path for path in parts):  # a browser names files from the folder chosen
        name = f"model folder {tops.pop()}"
        parts = {path.split("/", 1)[1]: value for path, value in parts.items()}
    for path in list(parts):
        if any(name.startswith(".") for name in path.split("/")):
            skipped.append(path)
            del parts[path]
    tree: dict[str, Any] = {}
    for path, value in parts.items():
        *folders, leaf = path.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
            if not isinstance(node, dict):
                raise HTTPException(400, f"{path!r} is under a file of the same name")
        if leaf in node:
            raise HTTPException(400, f"{path!r} is both a file and a folder")
        node[leaf] = value
    inspect_bundle(_form_listing(name, parts), None)
    with store.writing():
        root = _import_entry(store.importer(), "", tree)
        store.pin(root.cid, check=False)
    return ModelBody(cid=str(root.cid), files=len(parts), bytes=root.size, skipped=sorted(skipped))


def _safe_path(filename: str) -> str:
    """A part's filename as a relative path; 400 for one that could leave the folder or is not a plain name."""
    # Browsers escape a double quote in a filename as %22 (HTML's multipart encoding); the rest arrives as is.
    path = filename.replace("%22", '"')
    names = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path)
            or any(name in ("", ".", "..") for name in names)
            or any(ord(char) < 0x20 or ord(char) == 0x7F for char in path)):
        raise HTTPException(400, f"unsafe path in upload: {filename!r} (relative paths inside the folder only)")
    return path


def _form_listing(name: str, parts: dict[str, UploadFile]) -> BundleListing:
    """The bundle listing of the uploaded parts, so a refused bundle never reaches the store."""

    def head(path: str, size: int) -> bytes:
        file = parts[path].file
        file.seek(0)
        return file.read(size)

    return BundleListing(name, {path: _size(part) for path, part in parts.items()}, head)


def _size(part: UploadFile) -> int:
    if part.size is not None:
        return part.size
    part.file.seek(0, 2)
    return part.file.tell()


def _import_entry(importer: Importer, path: str, entry: UploadFile | dict[str, Any]) -> Added:
    if isinstance(entry, UploadFile):
        entry.file.seek(0)
        return importer.add_stream(entry.file, path)
    links, size = [], 0
    for name in sorted(entry, key=str.encode):
        child = _import_entry(importer, f"{path}/{name}" if path else name, entry[name])
        links.append(PBLink(child.cid, name, child.tsize))
        size += child.size
    return importer.add_directory(path, links, size)
