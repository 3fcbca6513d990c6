"""Shared fixtures: a real anvil chain with WEBI deployed, reset between tests by snapshots."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import WEI, Protocol
from marketplace.chain.devnet import Anvil, Devnet, deploy_devnet, dev_account, increase_time, mine, revert, snapshot
from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import ContractError
from marketplace.protocol import JobRequest, Role

pytest_plugins = ["tests.support.jobs", "tests.support.node"]

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MAX_UINT = 2**256 - 1
SPEC_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
OUTPUT_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    with Anvil(accounts=20, log_path=log) as anvil:
        yield deploy_devnet(anvil, fund_accounts=19)


@dataclass
class Chain:
    """One test's view of the devnet: fresh wrappers, named actors, helpers."""

    client: ChainClient
    protocol: Protocol
    token: WebiToken
    market: JobMarket

    @property
    def owner(self) -> LocalAccount:
        return dev_account(0)

    def now(self) -> int:
        return self.client.timestamp()

    def block_number(self) -> int:
        return int(self.client.w3.eth.block_number)

    def increase_time(self, seconds: int) -> None:
        increase_time(self.client, seconds)

    def mine(self, blocks: int = 1) -> None:
        mine(self.client, blocks)

    def approve(self, account: LocalAccount) -> None:
        self.token.approve(account, self.market.address, MAX_UINT)

    def register(self, account: LocalAccount, role: Role, amount: int = 1_000 * WEI) -> None:
        self.approve(account)
        self.market.register(account, role, amount)

    def request(self, **overrides: Any) -> JobRequest:
        fields: dict[str, Any] = {
            "spec_cid": SPEC_CID, "num_tasks": 16, "price": 100 * WEI, "claim_by": self.now() + 3_600,
            "exec_window": 600, "sample_rate_bps": 1_000, "sample_tasks": 4,
        }
        fields.update(overrides)
        return JobRequest(**fields)

    def post(self, account: LocalAccount, **overrides: Any) -> int:
        self.approve(account)
        return self.market.post_job(account, self.request(**overrides))

    def submitted_job(self, requester: LocalAccount, provider: LocalAccount, **overrides: Any) -> int:
        job_id = self.post(requester, **overrides)
        self.market.claim_job(provider, job_id)
        self.market.submit_result(provider, job_id, OUTPUT_CID, b"\x11" * 32)
        return job_id


@pytest.fixture
def chain(devnet: Devnet) -> Iterator[Chain]:
    """The devnet as deployed; every change a test makes is rolled back afterwards."""
    client = devnet.client
    taken = snapshot(client)
    market = JobMarket(client, devnet.protocol.market.contract, from_block=devnet.protocol.deployment.block)
    try:
        yield Chain(client, devnet.protocol, devnet.protocol.token, market)
    finally:
        revert(client, taken)


# Named actors (anvil dev accounts; public keys, devnet only).
@pytest.fixture
def requester() -> LocalAccount:
    return dev_account(1)


@pytest.fixture
def provider() -> LocalAccount:
    return dev_account(2)


@pytest.fixture
def verifier() -> LocalAccount:
    return dev_account(3)


@pytest.fixture
def stranger() -> LocalAccount:
    return dev_account(4)


@contextmanager
def reverts(name: str, *args: Any) -> Iterator[None]:
    """Asserts that the block raises the contract's custom error ``name`` with exactly ``args``."""
    with pytest.raises(ContractError) as caught:
        yield
    assert caught.value.name == name, f"expected {name}{args}, got {caught.value}"
    if args:
        assert caught.value.values == args, f"expected {name}{args}, got {caught.value}"
