"""Shared fixtures: a real anvil chain with WEBI deployed, reset between tests by snapshots."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, settings
from web3.logs import DISCARD

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import WEI, Protocol
from marketplace.chain.devnet import Anvil, Devnet, deploy_devnet, dev_account, increase_time, mine, revert, snapshot
from marketplace.chain.governance import Governance
from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import ContractError
from marketplace.protocol import (
    EPOCH_BLOCKS,
    SYNC_BLOCKS,
    JobRequest,
    Role,
    Verdict,
    audit_secret,
    find_audit_secret,
    next_sync_block,
    secret_hash,
)

# postgres before node: the node fixture imports its database helper.
pytest_plugins = ["tests.support.jobs", "tests.support.postgres", "tests.support.node", "tests.support.browser",
                  "tests.support.telemetry"]

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MAX_UINT = 2**256 - 1
SPEC_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
OUTPUT_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


@pytest.fixture(autouse=True)
def webi_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's $WEBI_HOME is its own empty folder, and no WEBI_RPC_URL leaks in: nothing a test runs
    finds the developer's ~/.webi devnet, wallets or deployments."""
    home = tmp_path_factory.mktemp("webi-home")
    monkeypatch.setenv("WEBI_HOME", str(home))
    monkeypatch.delenv("WEBI_RPC_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    # A pinned clock: the same transactions give the same block hashes, so the same audit seeds,
    # on every run (no test branches on a block hash or the wall clock).
    with Anvil(accounts=20, log_path=log, pinned_clock=True) as anvil:
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
        """Registers with ``amount``; a verifier also commits its first audit secret and joins the draw."""
        self.approve(account)
        self.market.register(account, role, amount)
        if role is Role.VERIFIER:
            self.market.commit_secret(account, secret_hash(self.secret(account, 0)))
            self.sync(account.address)

    def sync(self, *verifiers: str) -> None:
        """Mines to the next sync phase if needed and applies each verifier's stake to the draw."""
        for verifier in verifiers:
            # The transaction lands in the next block, which must be in a sync phase (kept
            # clear of the phase's last block, so that a retry still lands inside it).
            latest = self.block_number()
            if latest % EPOCH_BLOCKS > SYNC_BLOCKS - 2:
                self.mine(next_sync_block(latest + 1) - latest)
            self.market.sync_verifier(self.owner, verifier)

    def secret(self, account: LocalAccount, index: int) -> bytes:
        """``account``'s ``index``-th audit secret, as the reference verifier daemon derives it."""
        return audit_secret(bytes(account.key), self.client.chain_id, self.market.address, index)

    def open_secret(self, account: LocalAccount, job_id: int) -> tuple[bytes, bytes]:
        """The secret the draw committed ``account`` to for ``job_id``, and the hash of its next one."""
        secret = find_audit_secret(bytes(account.key), self.client.chain_id, self.market.address,
                                   self.market.audit_of(job_id).secret, limit=1_000)
        index = next(i for i in range(1_000) if self.secret(account, i) == secret)
        return secret, secret_hash(self.secret(account, index + 1))

    def draw(self, job_id: int) -> str:
        """Mines past the seed block and draws the job's verifier (again after a re-arm); returns it."""
        for _ in range(4):
            # The seed block must exist before the block the draw lands in.
            seed_block = self.market.get_job(job_id).seed_block
            if self.block_number() <= seed_block:
                self.mine(seed_block - self.block_number() + 1)
            self.market.lock_seed(self.owner, job_id)
            audit = self.market.audit_of(job_id)
            if audit.drawn:
                return audit.verifier
        raise AssertionError(f"job {job_id}: no verifier drawn after 4 tries")

    def verdict(self, verifier: LocalAccount, job_id: int, verdict: Verdict | bool, evidence: str = OUTPUT_CID) -> Any:
        """The drawn ``verifier``'s verdict on ``job_id`` (drawing first when nobody is drawn yet)."""
        if not self.market.audit_of(job_id).drawn:
            self.draw(job_id)
        secret, next_hash = self.open_secret(verifier, job_id)
        return self.market.submit_verdict(verifier, job_id, verdict, evidence, secret, next_hash)

    def settle(self, job_id: int) -> Any:
        """Waits out the challenge window and finalizes the job."""
        self.increase_time(self.market.terms_of(job_id).challenge_window + 1)
        return self.market.finalize(self.owner, job_id)

    def govern(self, call: Any) -> Any:
        """Makes an owner call through the devnet's timelock: schedule, wait out the delay, execute."""
        governance = Governance(self.client, self.protocol.deployment.governance or "")
        proposal = governance.schedule(self.owner, call)
        self.increase_time(governance.delay() + 1)
        return governance.execute(self.owner, proposal)

    def request(self, **overrides: Any) -> JobRequest:
        fields: dict[str, Any] = {
            "spec_cid": SPEC_CID, "num_tasks": 16, "price": 20 * WEI, "claim_by": self.now() + 3_600,
            "exec_window": 600, "sample_tasks": 4,
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

    def emitted(self, receipt: Any, name: str) -> list[dict[str, Any]]:
        """The decoded arguments of every ``name`` event the market emitted in ``receipt``, in log order."""
        event = getattr(self.market.contract.events, name)()
        return [dict(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]

    def draws(self, seeds: Sequence[bytes], excluded: Sequence[str] = ()) -> list[str]:
        """``market.draw_verifier(seed, excluded)`` for every seed, in one JSON-RPC batch.

        Thousands of draws one call at a time would take a minute; batched they take well under a second.
        """
        function = self.market.contract.functions.drawVerifier
        url = str(getattr(self.client.w3.provider, "endpoint_uri", ""))
        drawn: list[str] = []
        for start in range(0, len(seeds), 1_000):  # anvil caps the size of a batch
            payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                        "params": [{"to": self.market.address,
                                    "data": function(seed, list(excluded))._encode_transaction_data()}, "latest"]}
                       for i, seed in enumerate(seeds[start:start + 1_000])]
            replies = {r["id"]: r for r in requests.post(url, json=payload, timeout=60).json()}
            drawn += [to_checksum_address("0x" + replies[i]["result"][-40:]) for i in range(len(payload))]
        return drawn


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
