"""A node started while its chain does not answer yet waits for it (it needs the chain id to load its deployment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.chain.devnet import Devnet
from marketplace.errors import ChainUnreachableError
from marketplace.node import NodeSettings, create_node_app
from tests.support.chain_outage import chain_down_until_retried


def test_a_node_started_while_its_chain_is_down_waits_for_it(devnet: Devnet, deployments: Path,
                                                             tmp_path: Path) -> None:
    # Found by scripts/chaos.py: a node restarted during an RPC outage exited with "cannot reach the chain".
    with chain_down_until_retried(devnet) as (proxy, handler):
        settings = NodeSettings(rpc_url=proxy.url, deployments_dir=deployments, database=str(tmp_path / "index.db"),
                                store_dir=tmp_path / "store", rpc_timeout_s=2)
        with pytest.raises(ChainUnreachableError):
            create_node_app(settings.model_copy(update={"connect_wait_s": 0}))
        assert handler.retries == 0
        app = create_node_app(settings)
        assert handler.retries == 1
        assert app.state.deployment.chain_id == devnet.protocol.deployment.chain_id
