"""A provider's measured capacity (``webi provider bench``'s report, signed in its registration metadata) on its
dashboard page; a report altered after signing, or signed by another account, is not shown."""

from __future__ import annotations

import json

import httpx
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.protocol import Role
from marketplace.signed_capacity import sign_capacity, verified_capacity
from tests.conftest import Chain
from tests.marketplace.node.test_dashboard_pages import PAGE, text
from tests.support.node import Node

REPORT = {"workload": "standard", "measured_at": 1_800_000_000.0,
          "devices": [{"kind": "cpu", "name": "x86_64", "tasks_per_s": {"embed": 120.5, "generate": 2.25}},
                      {"kind": "cuda", "name": "NVIDIA H200", "tasks_per_s": {"embed": 9_876.5}}]}


def test_a_signed_capacity_is_shown_and_an_altered_one_is_not(chain: Chain, node: Node, provider: LocalAccount,
                                                               stranger: LocalAccount) -> None:
    chain_id = chain.client.chain_id
    signed = sign_capacity(provider, REPORT, chain_id)
    assert verified_capacity(signed, provider.address, chain_id) == REPORT
    altered = {"capacity": {**signed["capacity"], "report": {**REPORT, "workload": "tiny"}}}
    assert verified_capacity(altered, provider.address, chain_id) is None
    assert verified_capacity(signed, provider.address, chain_id + 1) is None  # another chain's
    assert verified_capacity(sign_capacity(stranger, REPORT, chain_id), provider.address, chain_id) is None
    assert verified_capacity({"capacity": {"report": REPORT, "signature": "0x12"}}, provider.address, chain_id) is None

    chain.approve(provider)
    chain.approve(stranger)
    def published(document: dict[str, object]) -> str:
        return str(node.store.add_bytes(json.dumps(document).encode()).cid)

    chain.market.register(provider, Role.PROVIDER, 1_000 * WEI, published(signed))
    chain.market.register(stranger, Role.PROVIDER, 1_000 * WEI, published(signed))  # the provider's, on another's page
    node.caught_up(chain.block_number())
    shown = text(httpx.get(f"{node.url}/providers/{provider.address}", headers=PAGE).text)
    assert "Measured capacity" in shown and "NVIDIA H200 (cuda) 9,876.5" in shown and "x86_64 (cpu) 120.5 2.2" in shown
    assert "signed by the provider" in shown
    other = text(httpx.get(f"{node.url}/providers/{stranger.address}", headers=PAGE).text)
    assert "No signed capacity published" in other and "9,876.5" not in other
