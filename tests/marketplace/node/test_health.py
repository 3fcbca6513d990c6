"""``/healthz`` over real HTTP: a healthy node, a hung RPC, and an indexer that falls behind a moving chain.

The node reaches anvil through ``RpcRelay``, a JSON-RPC relay on 127.0.0.1 that passes requests on
until told to hold some unanswered (a hung RPC: the socket accepts and never answers) or to refuse
one method with a JSON-RPC error (as a public endpoint refuses a log query), while the head still answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.chain.devnet import Devnet
from marketplace.node import NodeSettings, create_node_app
from marketplace.storage.local import LocalStore
from tests.conftest import Chain
from tests.support.node import Node
from tests.support.servers import serve
from tests.support.waiting import wait_for

ALL = "*"
REFUSAL = "query returned more than 10000 results"


class RpcRelay:
    """Relays JSON-RPC POSTs to ``upstream``; ``hold`` names methods left unanswered, ``refuse`` methods refused."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.hold: frozenset[str] = frozenset()
        self.refuse: frozenset[str] = frozenset()
        self.released = threading.Event()
        self.held = 0  # requests left unanswered so far
        self._count = threading.Lock()
        self._client = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="rpc-relay", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RpcRelay:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.released.set()  # held requests end, unanswered
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._client.close()

    def _answer(self, body: bytes) -> tuple[int, bytes] | None:
        """The reply to send, or None to hold the request."""
        request = json.loads(body)
        calls: list[dict[str, Any]] = request if isinstance(request, list) else [request]
        methods = {call["method"] for call in calls}
        if ALL in self.hold or methods & self.hold:
            return None
        if methods & self.refuse:
            errors = [{"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32005, "message": REFUSAL}}
                      for call in calls]
            return 200, json.dumps(errors if isinstance(request, list) else errors[0]).encode()
        reply = self._client.post(self.upstream, content=body, headers={"content-type": "application/json"})
        return reply.status_code, reply.content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                answer = relay._answer(self.rfile.read(int(self.headers.get("content-length", 0))))
                if answer is None:
                    with relay._count:
                        relay.held += 1
                    relay.released.wait()
                    self.close_connection = True
                    return
                status, content = answer
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def relay(devnet: Devnet) -> Iterator[RpcRelay]:
    with RpcRelay(devnet.anvil.rpc_url) as running:
        yield running


@pytest.fixture
def relayed_node(tmp_path: Path, relay: RpcRelay, deployments: Path) -> Iterator[Node]:
    """A node that reaches the chain through ``relay``, with a 1 s RPC timeout."""
    settings = NodeSettings(
        rpc_url=relay.url,
        deployments_dir=deployments,
        database=str(tmp_path / "node" / "index.db"),
        store_dir=tmp_path / "node" / "store",
        poll_interval_s=0.05,
        rpc_timeout_s=1.0,
    )
    with serve(create_node_app(settings), lifespan="on") as url:
        yield Node(url, settings, LocalStore(settings.store_dir))


def health(node: Node) -> tuple[int, dict[str, Any]]:
    """Status code and body of ``/healthz``, which must answer within 2 s whatever the chain does."""
    reply = httpx.get(f"{node.url}/healthz", timeout=2)
    return reply.status_code, reply.json()


def healthy(node: Node) -> dict[str, Any]:
    def ok() -> dict[str, Any]:  # empty (falsy) until it holds
        code, body = health(node)
        return body if code == 200 and body["status"] == "ok" else {}

    return wait_for(ok, timeout=30, what="/healthz to say ok")


def test_a_healthy_node_says_ok_with_the_chains_last_answer(chain: Chain, node: Node) -> None:
    node.caught_up(chain.block_number())
    body = healthy(node)
    assert body["reasons"] == []
    assert body["chain"]["reachable"] is True and body["chain"]["error"] is None
    answered = datetime.fromisoformat(body["chain"]["last_success"])
    assert abs(datetime.now(UTC) - answered) < timedelta(seconds=30)
    assert 0 <= body["chain"]["seconds_since_success"] < node.settings.stale_after_s
    indexer = body["indexer"]
    assert indexer["lag"] == 0 and indexer["lag_growing"] is False and indexer["error"] is None
    assert indexer["polls"] >= 1 and indexer["indexed_block"] == indexer["head"] >= chain.block_number()
    # The keys older readers use stay where they were.
    assert (body["indexed_block"], body["head"], body["lag"]) == (indexer["indexed_block"], indexer["head"], 0)
    assert body["chain_id"] == chain.client.chain_id and body["market"] == chain.market.address
    assert {"events", "reorgs"} <= body.keys()
    paths = httpx.get(f"{node.url}/openapi.json").json()["paths"]
    assert "slashes" in paths["/v1/ledger"]["get"]["summary"]


def test_a_hung_rpc_is_reported_down_within_its_timeout_and_up_again(
    chain: Chain, relay: RpcRelay, relayed_node: Node
) -> None:
    relayed_node.caught_up(chain.block_number())
    healthy(relayed_node)
    relay.hold = frozenset({ALL})

    def down() -> dict[str, Any]:
        code, body = health(relayed_node)
        return body if code == 503 and body["chain"]["error"] else {}

    body = wait_for(down, timeout=20, what="/healthz to report the hung chain")
    assert relay.held >= 1
    assert body["status"] == "down" and body["chain"]["reachable"] is False
    assert "did not answer within 1 s" in body["chain"]["error"]
    assert relay.url in body["chain"]["error"]  # a plain host and port is shown as it is
    assert body["reasons"][0] == body["chain"]["error"]
    assert body["chain"]["last_success"] is not None and body["chain"]["seconds_since_success"] >= 1.0
    assert body["indexed_block"] == body["indexer"]["indexed_block"]  # still there while down

    relay.hold = frozenset()
    healthy(relayed_node)


def test_a_hung_log_query_is_down_with_the_lag_growing(chain: Chain, relay: RpcRelay, relayed_node: Node) -> None:
    relayed_node.caught_up(chain.block_number())
    healthy(relayed_node)
    relay.hold = frozenset({"eth_getLogs"})  # the head still answers; the logs never come
    chain.mine(1)
    first = chain.block_number()

    def behind(blocks: int) -> dict[str, Any]:
        code, body = health(relayed_node)
        growing = body["indexer"]["lag"] >= blocks and body["indexer"]["lag_growing"]
        return body if code == 503 and growing and body["chain"]["error"] else {}

    wait_for(lambda: behind(1), timeout=20, what="the lag to grow while the logs hang")
    chain.mine(1)
    body = wait_for(lambda: behind(2), timeout=20, what="the lag to grow further")
    assert body["head"] > first and body["indexed_block"] < first
    assert "eth_getLogs" in body["chain"]["error"] and body["status"] == "down"
    assert any("falling further behind" in reason for reason in body["reasons"])

    relay.hold = frozenset()
    relayed_node.caught_up(chain.block_number())
    assert healthy(relayed_node)["indexer"]["lag_growing"] is False


def test_a_refused_log_query_is_degraded_while_the_chain_answers(
    chain: Chain, relay: RpcRelay, relayed_node: Node
) -> None:
    relayed_node.caught_up(chain.block_number())
    healthy(relayed_node)
    relay.refuse = frozenset({"eth_getLogs"})
    chain.mine(2)

    def degraded() -> dict[str, Any]:
        code, body = health(relayed_node)
        return body if code == 200 and body["indexer"]["lag_growing"] and body["indexer"]["error"] else {}

    body = wait_for(degraded, timeout=20, what="/healthz to report the refused log query")
    assert body["status"] == "degraded" and body["indexer"]["lag"] >= 2
    assert body["chain"]["reachable"] is True and body["chain"]["error"] is None
    assert REFUSAL in body["indexer"]["error"]
    assert body["reasons"][0] == f"the indexer's last poll failed: {body['indexer']['error']}"

    relay.refuse = frozenset()
    relayed_node.caught_up(chain.block_number())
    body = healthy(relayed_node)
    assert body["indexer"]["error"] is None and body["lag"] == 0
