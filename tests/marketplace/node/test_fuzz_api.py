"""API fuzzing: schemathesis against the node's own OpenAPI schema over real HTTP, and hand-written hostile requests.

Every response is held to two rules (``problem``):

- no 5xx;
- a 4xx names the problem in JSON: a ``detail`` that is a non-empty sentence or FastAPI's validation list (each
  entry with a ``msg``), or, on the Kubo RPC routes (``/api/v0``), Kubo's ``Message``.

Two answers are not JSON, and are asserted as what they are:

- the gateway (``/ipfs``) answers its own errors in plain text, as Kubo's gateway does and ``GatewayStore`` reads
  them (``test_gateway.py::test_errors_are_plain_4xx``): there a text/plain 4xx with a non-empty message passes too
  (the app's 405 and 422 before the gateway's code runs are JSON);
- uvicorn answers a request it cannot parse (a garbage request line, a header line without a colon, a
  Content-Length that is not a number) with its own plain-text ``400 Invalid HTTP request received.`` before the
  app runs; no route can change that.

Headers: uvicorn's httptools parser (the node's) sets no ceiling and hands the app a 16 MiB header; the node's
``HeaderLimit`` refuses headers over 32 KiB with a JSON 431 (the bytes were read by then: a public node wants a
proxy's limit in front as well).

How the schema is driven: schemathesis 4.32's fixture loader (``schemathesis.pytest.from_fixture``) does not run
under pytest 9.2 (it sets ``Function._nodeid``, which pytest 9 removed), and the node's URL exists only inside the
``node`` fixture. So the schema is loaded from the served node (``schemathesis.openapi.from_url``) and each
operation is sent, over HTTP, (1) schemathesis' coverage cases (``iter_coverage_cases``: boundary values, wrong
types, missing parts, unexpected methods; deterministic) and (2) ``as_strategy()`` cases, positive and negative,
driven by a derandomized hypothesis loop with a fixed budget: every run sends the same requests. Upload routes get
their coverage cases both as generated (401s) and signed in, their strategy cases signed in. ``POST /v1/heartbeats``
reads its body itself (to count it), so its schema documents no body; the loop adds one built from
``SignedHeartbeat``. The figures (requests per family, time) are logged at INFO (``--log-cli-level=INFO``).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import dag_cbor
import httpx
import pytest
import schemathesis
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from multiformats import CID, multihash
from schemathesis import Case, GenerationMode

from marketplace.heartbeat import SignedHeartbeat
from marketplace.node.app import MAX_HEADER_BYTES
from marketplace.node.uploads import MAX_JSON_BODY
from marketplace.storage.car import car_header, car_section
from marketplace.storage.cid import DAG_PB, RAW, Cid
from marketplace.storage.dagpb import encode_varint
from marketplace.storage.rpc_api import StoreApiSettings
from tests.conftest import Chain
from tests.marketplace.node.test_uploads import sign_in
from tests.support.history import settle_history
from tests.support.node import Node

log = logging.getLogger(__name__)

EXAMPLES = 15  # per operation and generation mode, by default: 862 generated requests, and 1,029 coverage cases
SLOW_EXAMPLES = 200  # with -m slow: 11,407 generated requests

Sent = Callable[[], httpx.Response]


# ───────────────────────────────────────────── the rules


def family(path: str) -> str:
    """The route family a path belongs to, as the figures in README's "API fuzzing" count them."""
    if path.startswith(("/v1/auth", "/v1/uploads", "/v1/prices")):
        return "/v1 web app"
    if path == "/v1/heartbeats" or path.endswith("/telemetry"):
        return "/v1 telemetry"
    if path.startswith("/v1"):
        return "/v1 REST"
    if path.startswith("/api/v0"):
        return "/api/v0"
    if path.startswith("/ipfs"):
        return "/ipfs"
    return "health"


def problem(path: str, status: int, content_type: str, body: bytes) -> str | None:
    """What is wrong with a response by this module's rules, or ``None``."""
    if status >= 500:
        return f"a {status}: {body[:200]!r}"
    if status < 400:
        return None
    if path.startswith("/ipfs/") and content_type.startswith("text/plain"):
        return None if body.strip() else f"a gateway {status} with an empty body"
    try:
        document = json.loads(body)
    except ValueError:
        return f"a {status} whose body is not JSON: {content_type} {body[:200]!r}"
    if names_problem(document):
        return None
    return f"a {status} whose JSON names no problem: {body[:200]!r}"


def names_problem(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    detail = document.get("detail", document.get("Message"))
    if isinstance(detail, str):
        return bool(detail.strip())
    if isinstance(detail, list) and detail:  # FastAPI's validation errors
        return all(isinstance(error, dict) and str(error.get("msg", "")).strip() for error in detail)
    return False


def check(response: httpx.Response) -> httpx.Response:
    """``response``, asserted against the rules."""
    found = problem(response.request.url.path, response.status_code, response.headers.get("content-type", ""),
                    response.content)
    assert found is None, f"{response.request.method} {response.request.url}: {found}"
    return response


def detail(response: httpx.Response) -> str:
    body = check(response).json()
    return str(body.get("detail", body.get("Message")))


# ───────────────────────────────────────────── schema-driven


def heartbeat_schema() -> dict[str, Any]:
    """An OpenAPI document of ``POST /v1/heartbeats`` with the body the route reads itself: a ``SignedHeartbeat``."""
    body = SignedHeartbeat.model_json_schema(ref_template="#/components/schemas/{model}")
    components = body.pop("$defs", {})
    operation = {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                 "responses": {"202": {"description": "stored"}}}
    return {"openapi": "3.1.0", "info": {"title": "heartbeats", "version": "1"},
            "paths": {"/v1/heartbeats": {"post": operation}}, "components": {"schemas": components}}


def fuzz(node: Node, token: str, examples: int) -> tuple[Counter[str], set[str], list[str]]:
    """Sends every operation its coverage cases and ``examples`` generated requests (or as many as there are) per
    mode; returns the requests sent per family and per phase, the operations covered, and every response that
    breaks the rules."""
    config = schemathesis.Config.from_dict({"seed": 21, "generation": {"deterministic": True, "database": "none"}})
    schemas = [schemathesis.openapi.from_url(f"{node.url}/openapi.json", config=config),
               schemathesis.openapi.from_dict(heartbeat_schema(), config=config)]
    folder = node.settings.store_dir.parent / "fuzz-folder"  # a stored folder, so that /ipfs paths resolve for real
    (folder / "nested").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "nested" / "b.json").write_text("{}")
    directory = node.store.add_path(folder, recursive=True).cid
    sent: Counter[str] = Counter()
    covered: set[str] = set()
    broken: list[str] = []

    def send(case: Case, label: str, phase: str, headers: dict[str, str] | None = None) -> None:
        response = case.call(base_url=node.url, headers=headers, timeout=30)
        sent[family(case.operation.path)] += 1
        sent[phase] += 1
        found = problem(case.formatted_path, response.status_code,
                        ";".join(response.headers.get("content-type", [])), response.content)
        if found is not None and len(broken) < 50:  # every broken answer is listed, not the first alone
            broken.append(f"{label}: {found}\n    {case.as_curl_command()[:500]}")

    def drive(strategy: Any, label: str, mode: GenerationMode) -> None:
        # Generation is not what is under test: its health checks (slow, filtered, large) stay quiet.
        @given(case=strategy)
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                         HealthCheck.data_too_large, HealthCheck.large_base_example])
        def one(case: Case) -> None:
            send(case, f"{label} ({mode.value})", "generated")

        try:
            one()
        except Unsatisfiable:
            # Nothing in the operation can be made invalid (no parameters, or a free string): negative only.
            if mode is not GenerationMode.NEGATIVE:
                raise

    for schema in schemas:
        for result in schema.get_all_operations():
            operation = result.ok()
            covered.add(operation.label)
            headers = {"Authorization": f"Bearer {token}"} if "/uploads/" in operation.path else None
            generation = schema.config.generation_for(operation=operation, phase="coverage")
            for case in schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode),
                                                   generation_config=generation):
                send(case, f"{operation.label} (coverage, {case.method})", "coverage")
                if headers is not None:
                    send(case, f"{operation.label} (coverage, {case.method}, signed in)", "coverage", headers)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                drive(operation.as_strategy(generation_mode=mode, headers=headers), operation.label, mode)
                if operation.path.startswith("/ipfs/"):  # a folder that exists: its paths and formats
                    drive(operation.as_strategy(generation_mode=mode, path_parameters={"cid": str(directory)}),
                          f"{operation.label} of a stored folder", mode)
    assert httpx.get(f"{node.url}/healthz").status_code == 200  # the node serves on
    return sent, covered, broken


def fuzz_and_assert(chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount,
                    verifier: LocalAccount, examples: int) -> None:
    settle_history(chain, requester, provider, verifier)  # jobs, a provider, a verifier and a ledger to list
    node.caught_up(chain.block_number())
    started = time.monotonic()
    sent, covered, broken = fuzz(node, session_token(node, requester), examples)
    log.info("%d operations, %d coverage and %d generated requests in %.1f s: %s", len(covered), sent["coverage"],
             sent["generated"], time.monotonic() - started,
             ", ".join(f"{name} {count}" for name, count in sorted(sent.items()) if name.startswith(("/", "h"))))
    assert not broken, "\n".join(broken)
    assert {family(label.split(" ", 1)[1]) for label in covered} == {
        "/v1 REST", "/v1 web app", "/v1 telemetry", "/api/v0", "/ipfs", "health"}
    assert {"POST /api/v0/dag/import", "POST /v1/uploads/model", "GET /ipfs/{cid}/{path}"} <= covered
    assert len(covered) >= 34 and sent["generated"] >= 10 * examples and sent["coverage"] >= 100


@pytest.mark.fuzz
def test_generated_requests_get_no_5xx_and_every_4xx_names_the_problem(
        chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount) -> None:
    fuzz_and_assert(chain, node, requester, provider, verifier, EXAMPLES)


@pytest.mark.fuzz
@pytest.mark.slow
def test_generated_requests_at_a_larger_budget(
        chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount) -> None:
    fuzz_and_assert(chain, node, requester, provider, verifier, SLOW_EXAMPLES)


# ───────────────────────────────────────────── hand-written


def session_token(node: Node, account: LocalAccount) -> str:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        return sign_in(api, account)


def raw_request(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends ``data`` as it is (no HTTP client would send it so) and reads one response: status, headers, body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(data)
        with connection.makefile("rb") as reader:
            status = int(reader.readline().split()[1])
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            return status, headers, reader.read(int(headers.get("content-length", "0")))


def framed(header: object) -> bytes:
    """A CAR header of any dag-cbor value."""
    encoded = dag_cbor.encode(header)
    return encode_varint(len(encoded)) + encoded


def car(*sections: bytes, roots: list[Cid]) -> bytes:
    return car_header(roots) + b"".join(sections)


def dag_import(node: Node, data: bytes) -> httpx.Response:
    return httpx.post(f"{node.url}/api/v0/dag/import", files={"file": ("upload.car", data)})


def test_malformed_car_uploads_are_400_naming_the_fault(node: Node) -> None:
    block = b"a block"
    cid = Cid.of(block, RAW)
    whole = car(car_section(cid, block), roots=[cid])
    cases = {
        "truncated in a section": (whole[:-3], "truncated"),
        "truncated in the header": (whole[:5], "truncated"),
        "empty": (b"", "truncated"),
        "garbage": (b"\xde\xad\xbe\xef" * 64, "CAR"),
        "a varint that never ends": (b"\xff" * 16, "bad varint"),
        "a header that is not dag-cbor": (b"\x04\xff\xff\xff\xff", "not dag-cbor"),
        "a CAR v2 header": (framed({"roots": [], "version": 2}), "not a CAR v1 header"),
        "roots that are not CIDs": (framed({"roots": ["bafy"], "version": 1}), "roots must be CIDs"),
        "a section holding no CID": (car(b"\x05hello", roots=[cid]), "not a binary CIDv1"),
        "a section over 4 MiB": (car(b"\x80\x80\x80\x04", roots=[cid]), "over"),
    }
    for name, (data, expected) in cases.items():
        answer = dag_import(node, data)
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        assert expected in detail(answer), (name, answer.text)
    assert dag_import(node, whole).status_code == 200  # and a whole one still imports


def test_car_block_not_matching_its_cid_is_400_not_500(node: Node) -> None:
    """A CAR whose block does not hash to its CID was a 500: the store's "damaged block" error, meant for its own
    disk, answered for a client's corrupt upload."""
    cid = Cid.of(b"the block", RAW)
    answer = dag_import(node, car(car_section(cid, b"the blocc"), roots=[cid]))
    assert answer.status_code == 400 and "the uploaded CAR is corrupt" in detail(answer)
    assert "does not match its CID" in detail(answer) and not node.store.has_block(cid)


def test_car_whose_root_it_lacks_is_400_not_404(node: Node) -> None:
    """A CAR naming a root it does not hold was a 404 ("block ... is not in the local store") for an upload."""
    held, missing = Cid.of(b"held", RAW), Cid.of(b"missing", RAW)
    answer = dag_import(node, car(car_section(held, b"held"), roots=[missing]))
    assert answer.status_code == 400 and "cannot pin the CAR's roots" in detail(answer)
    assert str(missing) in detail(answer)
    pinless = httpx.post(f"{node.url}/api/v0/dag/import", params={"pin-roots": "false"},
                         files={"file": ("upload.car", car(car_section(held, b"held"), roots=[missing]))})
    assert pinless.status_code == 200  # without pinning, a partial DAG is the caller's business


def test_invalid_cids_in_paths_and_args_are_4xx_naming_the_cid(node: Node, requester: LocalAccount) -> None:
    sha512 = str(CID("base32", 1, "raw", multihash.digest(b"x", "sha2-512")))  # CIDs, of a hash and a codec
    cbor = str(CID("base32", 1, "dag-cbor", multihash.digest(b"x", "sha2-256")))  # that WEBI does not store
    bad = ["not-a-cid", "Qm", "b" + "a" * 60, sha512, cbor, "%00", "\u00e9t\u00e9", "z" * 500, "b" * 5_000]
    with httpx.Client(base_url=node.url) as client:
        for value in bad:
            gateway = check(client.get(f"/ipfs/{value}"))
            assert gateway.status_code == 400 and ("not a CID" in gateway.text or "supported" in gateway.text), (
                value, gateway.text)
            assert check(client.get(f"/ipfs/{value}/a/b", params={"format": "car"})).status_code == 400
            for command in ("cat", "block/get", "block/stat", "dag/export", "pin/add", "pin/rm"):
                answer = client.post(f"/api/v0/{command}", params={"arg": f"/ipfs/{value}/x"})
                assert answer.status_code == 400, (command, value, answer.text)
                assert "CID" in detail(answer) or "supported" in detail(answer), (command, value, answer.text)
        absent = client.get(f"/ipfs/{Cid.of(b'nobody stored this', RAW)}")
        assert check(absent).status_code == 404 and "not in" in absent.text
        unknown = client.post("/api/v0/cat", params={"arg": str(Cid(DAG_PB, bytes(32)))})
        assert unknown.status_code == 404 and "not in the local store" in detail(unknown)
        auth = {"Authorization": f"Bearer {session_token(node, requester)}"}
        spec = client.post("/v1/uploads/spec", headers=auth,
                           json={"task": "embed", "model": "nope", "inputs": sha512, "num_tasks": 1})
        assert spec.status_code == 400 and "not a CID: 'nope'" in detail(spec)


def test_headers_over_32_kib_are_a_json_431(node: Node) -> None:
    """uvicorn's httptools parser took any header (16 MiB answered 200); the node now refuses over 32 KiB."""
    with httpx.Client(base_url=node.url) as client:
        assert check(client.get("/v1/stats", headers={"X-Padding": "a" * (MAX_HEADER_BYTES // 2)})).status_code == 200
        for path in ("/v1/stats", "/api/v0/version", f"/ipfs/{Cid.of(b'', RAW)}", "/", "/healthz"):
            method = "POST" if path.startswith("/api") else "GET"
            answer = client.request(method, path, headers={"X-Padding": "a" * 64 * 1024})
            assert answer.status_code == 431, (path, answer.status_code)
            assert answer.json()["detail"].startswith("the request headers total 65,")
        spread = {f"X-{index}": "a" * 100 for index in range(400)}  # many small ones add up the same
        assert client.get("/v1/stats", headers=spread).status_code == 431
    status, headers, body = raw_request(node.url, b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                                  b"X-Padding: " + b"a" * 16 * 1024**2 + b"\r\n\r\n")
    assert status == 431 and headers["content-type"] == "application/json" and b"16,777," in body


def test_json_body_over_the_limit_is_413_even_chunked_or_not_json(node: Node, requester: LocalAccount) -> None:
    """The 256 KiB limit of the JSON routes was checked on a declared application/json length only: a chunked body,
    or one sent as text/plain, was read whole, whatever its size."""
    def chunks() -> Iterator[bytes]:
        for _ in range(2 * MAX_JSON_BODY // 65_536):
            yield b" " * 65_536

    with httpx.Client(base_url=f"{node.url}/v1") as api:
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}
        for path in ("/auth/challenge", "/auth/session", "/uploads/spec", "/uploads/group"):
            for content_type in ("application/json", "text/plain", "application/octet-stream"):
                answer = api.post(path, content=chunks(), headers={**auth, "content-type": content_type})
                assert "transfer-encoding" in answer.request.headers
                assert answer.status_code == 413, (path, content_type, answer.text)
                assert detail(answer) == "the body is over this route's 262,144-byte limit"
        assert api.post("/auth/challenge", json={"address": requester.address}).status_code == 200
    status, headers, body = raw_request(
        node.url, b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: 300000\r\n\r\n{")
    assert status == 413 and headers["content-type"] == "application/json"
    assert b"a body of 300,000 bytes is over this route's 262,144-byte limit" in body


def test_bodies_over_the_upload_limits_are_413_naming_the_limit(node: Node, requester: LocalAccount) -> None:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        token = sign_in(api, requester)
    limit = node.settings.max_inputs_bytes + 64 * 1024
    for path in ("/v1/uploads/inputs", "/v1/uploads/model", "/api/v0/add", "/api/v0/dag/import"):
        declared = node.settings.max_upload_bytes + 1 if path != "/v1/uploads/inputs" else limit + 1
        status, headers, body = raw_request(
            node.url, f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {declared}\r\n\r\n--b\r\n"
                      .encode())
        assert status == 413 and headers["content-type"] == "application/json", (path, body)
        assert f"upload of {declared} bytes is over this node's".encode() in body
    # Streamed without a length: counted as it arrives (a block's limit is 2 MiB and its multipart framing).
    block_limit = StoreApiSettings().max_block_bytes + 64 * 1024

    def multipart() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="block"\r\n\r\n'
        for _ in range(block_limit // 65_536 + 4):
            yield b"x" * 65_536

    streamed = httpx.post(f"{node.url}/api/v0/block/put", content=multipart(),
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413 and f"over this node's {block_limit}-byte limit" in detail(streamed)
    heartbeat = httpx.post(f"{node.url}/v1/heartbeats", content=iter([b"[" * 5_000, b"1" * 5_000]))
    assert heartbeat.status_code == 413 and "at most 8,192 bytes" in detail(heartbeat)


def test_wrong_content_types_are_4xx_naming_the_problem(node: Node, requester: LocalAccount) -> None:
    cid = Cid.of(b"a block", RAW)
    whole = car(car_section(cid, b"a block"), roots=[cid])
    with httpx.Client(base_url=node.url) as client:
        auth = {"Authorization": f"Bearer {session_token(node, requester)}"}
        sent: dict[str, Sent] = {
            "a JSON route given text/plain": lambda: client.post(
                "/v1/auth/challenge", content=b'{"address": "0x0"}', headers={"content-type": "text/plain"}),
            "a JSON route given a form": lambda: client.post("/v1/auth/session", data={"nonce": "n", "signature": "s"}),
            "a JSON route given XML": lambda: client.post(
                "/v1/uploads/spec", content=b"<spec/>", headers={**auth, "content-type": "application/xml"}),
            "a JSON route given bad UTF-8": lambda: client.post(
                "/v1/uploads/group", content=b'{"task": "\xff"}', headers={**auth, "content-type": "application/json"}),
            "an upload given JSON": lambda: client.post("/v1/uploads/inputs", json={"file": "x"}, headers=auth),
            "an upload without a boundary": lambda: client.post(
                "/v1/uploads/model", content=b"x", headers={**auth, "content-type": "multipart/form-data"}),
            "an upload with a form field, no file": lambda: client.post("/v1/uploads/inputs", headers=auth,
                                                                        files={"file": (None, b'"a"')}),
            "a CAR sent bare, not as a form": lambda: client.post(
                "/api/v0/dag/import", content=whole, headers={"content-type": "application/vnd.ipld.car"}),
            "a block as url-encoded": lambda: client.post("/api/v0/block/put", data={"file": "x"}),
            "a multipart body that is not one": lambda: client.post(
                "/api/v0/add", content=b"--b\r\nno headers",
                headers={"content-type": "multipart/form-data; boundary=b"}),
            "a heartbeat as a form": lambda: client.post("/v1/heartbeats", data={"heartbeat": "x"}),
        }
        for name, send in sent.items():
            answer = send()
            assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
            assert detail(answer), name


CURSORS = ["garbage", "-1", "99999999999999999999999", "1e3", "0x10", "MTIz", "MTI6Mw==", "%00", "\u0661\u0662",
           " 7", "9" * 5_000, "", "\x00", "\ud7ff" * 100]


def test_bad_pagination_cursors_are_422_or_a_page(node: Node) -> None:
    """Garbage, negative, huge, base64 (an opaque-looking cursor), Unicode digits: a 422 naming the cursor or a page."""
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        for path in ("/jobs", "/ledger"):
            for cursor in CURSORS:
                for value in (cursor, f"{cursor}:{cursor}", f"1:{cursor}", base64.b64encode(cursor.encode()).decode()):
                    answer = check(api.get(path, params={"cursor": value}))
                    assert answer.status_code in (200, 422), (path, value[:40], answer.text)
                    if answer.status_code == 422:
                        assert answer.json()["detail"][0]["loc"] == ["query", "cursor"]
        for limit in ("0", "-1", "501", "99999999999999999999", "ten", "1.5"):
            answer = check(api.get("/jobs", params={"limit": limit}))
            assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "limit"]


def test_ids_past_64_bits_are_404_or_a_page_not_500(node: Node) -> None:
    """An id or cursor past 2^63 reached SQLite, which cannot bind it (OverflowError): every one was a 500."""
    huge = str(2**64)
    with httpx.Client(base_url=node.url) as client:
        for path in (f"/v1/jobs/{huge}", f"/v1/groups/{huge}", f"/v1/groups/{huge}/results", f"/v1/jobs/-{huge}"):
            answer = client.get(path)
            assert answer.status_code == 404 and huge in detail(answer), (path, answer.text)
        for path, params in (("/v1/jobs", {"cursor": huge}), ("/v1/ledger", {"cursor": f"{huge}:{huge}"}),
                             ("/v1/ledger", {"cursor": f"1:{huge}"}), ("/v1/ledger", {"job_id": huge}),
                             ("/v1/ledger", {"job_id": f"-{huge}"})):
            answer = check(client.get(path, params=params))
            assert answer.status_code == 200 and answer.json()["next_cursor"] is None, (path, params)
        # The dashboard reads through the same queries.
        assert client.get(f"/jobs/{huge}").status_code == 404 and client.get(f"/groups/{huge}").status_code == 404
        assert client.get("/jobs", params={"cursor": huge}).status_code == 200
        assert client.get("/ledger", params={"cursor": f"{huge}:1"}).status_code == 200


def test_ids_and_cursors_of_5000_digits_are_4xx_not_500(node: Node) -> None:
    """Python's ``int()`` refuses a string of over 4,300 digits (ValueError): the ledger cursor, which its pattern
    let through, and the dashboard's job and group ids, parsed by hand, were 500s."""
    digits = "9" * 5_000
    with httpx.Client(base_url=node.url) as client:
        assert check(client.get("/v1/ledger", params={"cursor": f"{digits}:1"})).status_code == 422
        assert check(client.get("/v1/jobs", params={"cursor": digits})).status_code == 422
        assert check(client.get(f"/v1/jobs/{digits}")).status_code == 422
        assert client.get("/ledger", params={"cursor": f"1:{digits}"}).status_code == 422
        for path in (f"/jobs/{digits}", f"/groups/{digits}"):
            page = client.get(path)
            assert page.status_code == 404 and "Not found" in page.text, path


def test_dashboard_ledger_garbage_cursor_is_422_not_500(node: Node) -> None:
    """The dashboard's /ledger handed any cursor to ``int()``: "abc" or "7" (no colon) was a 500."""
    with httpx.Client(base_url=node.url) as client:
        for cursor in ("abc", "7", "1:2:3", "-1:0"):
            answer = client.get("/ledger", params={"cursor": cursor})
            assert answer.status_code == 422 and detail(answer), cursor
        assert client.get("/ledger", params={"cursor": ""}).status_code == 200  # the form's empty field


UNPARSABLE = {
    "a garbage request line": b"GARBAGE\r\n\r\n",
    "a header line without a colon": b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "a Content-Length that is not a number":
        b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
    "a NUL in the target": b"GET /v1/\x00stats HTTP/1.1\r\nHost: x\r\n\r\n",
}


def test_requests_uvicorn_cannot_parse_get_its_plain_400(node: Node) -> None:
    """Answered by uvicorn before the app runs, in plain text: not JSON, the one exception to this module's rule,
    and nothing a route can change. The node serves on after each."""
    for name, request_bytes in UNPARSABLE.items():
        status, headers, body = raw_request(node.url, request_bytes)
        assert status == 400 and headers["content-type"].startswith("text/plain"), name
        assert body == b"Invalid HTTP request received.", name
        assert httpx.get(f"{node.url}/v1/stats").status_code == 200


def test_unknown_routes_and_methods_are_json_4xx(node: Node) -> None:
    with httpx.Client(base_url=node.url) as client:
        answers: Mapping[str, httpx.Response] = {
            "an unknown /v1 route": client.get("/v1/nothing-here"),
            "an unknown /api/v0 command": client.post("/api/v0/swarm/peers"),
            "GET of a Kubo command": client.get("/api/v0/cat"),
            "DELETE of a job": client.delete("/v1/jobs/1"),
            "a path under a JSON route": client.get("/v1/stats/more"),
        }
        for name, answer in answers.items():
            assert answer.status_code in (404, 405), (name, answer.status_code)
            assert detail(answer), name


def test_hand_written_heartbeats_are_4xx_naming_the_problem(node: Node) -> None:
    bodies = [b"", b"null", b"[]", b'"a string"', b"\xff\xfe\x00", b"[" * 4_000 + b"]" * 4_000, b"{" * 8_000,
              b'{"heartbeat": 1, "signature": 2}', b'{"heartbeat": {}, "signature": "0x' + b"0" * 130 + b'"}',
              b"1" * 8_000, b'{"a": NaN}', b'{"a": 1e999999}']
    for body in bodies:
        answer = httpx.post(f"{node.url}/v1/heartbeats", content=body)
        assert 400 <= answer.status_code < 500 and detail(answer), (body[:40], answer.text)


def test_refused_car_uploads_pin_nothing(node: Node) -> None:
    """After hostile CARs the only pin is the upload that succeeded."""
    cid = Cid.of(b"kept", RAW)
    assert dag_import(node, car(car_section(cid, b"kept"), roots=[cid])).status_code == 200
    for data in (b"garbage", car(car_section(cid, b"kepT"), roots=[cid]), car(roots=[Cid.of(b"gone", RAW)])):
        assert dag_import(node, data).status_code == 400
    assert node.store.pins() == [cid]
