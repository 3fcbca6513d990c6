"""A marketplace node (``create_node_app``) served on 127.0.0.1 with its indexer running."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from marketplace.chain.devnet import Devnet
from marketplace.node import NodeSettings, create_node_app
from marketplace.storage.local import LocalStore
from tests.support.postgres import database_location
from tests.support.servers import serve
from tests.support.waiting import wait_for


@dataclass
class Node:
    url: str
    settings: NodeSettings
    store: LocalStore

    def caught_up(self, block: int, timeout: float = 30.0) -> None:
        """Waits until the indexer has reached ``block``."""
        wait_for(
            lambda: httpx.get(f"{self.url}/healthz").json()["indexed_block"] >= block,
            timeout=timeout,
            what=f"the indexer to reach block {block}",
        )


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path, devnet: Devnet, deployments: Path) -> Iterator[Node]:
    """The node on a SQLite file; ``@pytest.mark.parametrize("node", ["sqlite", "postgresql"], indirect=True)``
    runs a test on the throwaway PostgreSQL cluster too."""
    settings = NodeSettings(
        rpc_url=devnet.anvil.rpc_url,
        deployments_dir=deployments,
        database=database_location(request, tmp_path / "node" / "index.db"),
        store_dir=tmp_path / "node" / "store",
        poll_interval_s=0.05,
        page_size=2,
    )
    store = LocalStore(settings.store_dir)
    with serve(create_node_app(settings), lifespan="on") as url:
        yield Node(url, settings, store)
