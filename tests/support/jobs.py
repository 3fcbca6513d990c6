"""Job fixtures shared by provider and verifier tests: tiny real models, a served store, keystores, posted jobs.

Registered for the whole suite by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.jobspec import JobSpec, inputs_manifest
from marketplace.keystore import save_account
from marketplace.protocol import JobState, Role, Verdict
from marketplace.storage.app import create_store_app
from marketplace.storage.cid import Cid
from marketplace.storage.local import LocalStore
from marketplace.storage.rpc_api import StoreApiSettings
from provider.config import ProviderConfig, load_config
from tests.conftest import Chain
from tests.support.epochs import wait_drawn
from tests.support.models import KINDS, build_bundle
from tests.support.servers import serve
from tests.support.waiting import wait_for

PASSWORD = "test-password"  # a test keystore's password, not a secret
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world",
    "a gpu job with a price and a proof",
    "the verifier was happy",
    "the market was slow and the data was bad",
    "one two three four five six seven",
    "great honest provider paid fast",
    "the cheat was slashed",
]


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {kind: build_bundle(kind, root / kind) for kind in KINDS}


@dataclass
class StoreNode:
    url: str
    store: LocalStore


@pytest.fixture
def store_node(tmp_path: Path) -> Iterator[StoreNode]:
    store = LocalStore(tmp_path / "node-store")
    with serve(create_store_app(store, StoreApiSettings())) as url:
        yield StoreNode(url, store)


@dataclass
class Market:
    """The chain plus a store: posts jobs the way a requester does."""

    chain: Chain
    store: LocalStore
    bundles: dict[str, Path]

    def upload_spec(self, kind: str, texts: list[str], task: str | None = None,
                    allowlist: tuple[str, ...] = (), **parameters: Any) -> str:
        """Uploads bundle ``kind``, the inputs and a spec for ``task`` (default: ``kind``); returns the spec CID."""
        model = self.store.add_path(self.bundles[kind], recursive=True).cid
        inputs = self.store.add_bytes(inputs_manifest(texts)).cid
        spec = JobSpec(task=task or kind, model=str(model), inputs=str(inputs), num_tasks=len(texts),
                       parameters=parameters or {"max_new_tokens": 6}, allowlist=allowlist)
        return str(self.store.add_bytes(spec.to_bytes()).cid)

    def post(self, requester: LocalAccount, kind: str = "embed", texts: list[str] | None = None,
             spec_cid: str | None = None, **request: Any) -> int:
        """Posts a job over ``texts`` (default ``TEXTS``); ``request`` overrides ``JobRequest`` fields."""
        texts = texts or TEXTS
        spec_cid = spec_cid or self.upload_spec(kind, texts)
        # 10 WEI over 8 tasks keeps the 4 sampled ones under the contract's sample-value cap (6.25 WEI).
        fields = {"spec_cid": spec_cid, "num_tasks": len(texts), "price": 10 * WEI, **request}
        return self.chain.post(requester, **fields)

    def read(self, cid: str) -> bytes:
        return self.store.read_bytes(Cid.parse(cid))


@pytest.fixture
def market(chain: Chain, store_node: StoreNode, bundles: dict[str, Path]) -> Market:
    return Market(chain, store_node.store, bundles)


@pytest.fixture
def deployments(tmp_path: Path, devnet: Devnet) -> Path:
    folder = tmp_path / "deployments"
    devnet.protocol.deployment.save(folder)
    return folder


def provider_config(tmp_path: Path, account: LocalAccount, rpc_url: str, store_url: str, deployments: Path,
                    name: str = "provider", **extra: Any) -> Path:
    """A TOML config and keystore for ``account``, as an operator would write them."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    keystore = save_account(account, folder / "keystore.json", PASSWORD, kdf="pbkdf2", iterations=1_000)
    (folder / "password").write_text(PASSWORD + "\n")
    settings = {"rpc_url": rpc_url, "keystore": str(keystore), "password_file": str(folder / "password"),
                "store": store_url, "state_dir": str(folder / "state"), "deployments_dir": str(deployments),
                "poll_interval_s": 0.1, **extra}
    lines = ["[provider]", *(f"{key} = {_toml(value)}" for key, value in settings.items())]
    path = folder / "provider.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture
def config_for(tmp_path: Path, devnet: Devnet, store_node: StoreNode, deployments: Path, chain: Chain):
    """Registers ``account`` as a provider and returns its loaded config."""

    def make(account: LocalAccount, name: str = "provider", **extra: Any) -> ProviderConfig:
        chain.register(account, Role.PROVIDER, 10_000 * WEI)
        path = provider_config(tmp_path, account, devnet.anvil.rpc_url, store_node.url, deployments, name, **extra)
        return load_config(path)

    return make


def audit_by_hand(chain: Chain, verifier: LocalAccount, job_id: int, verdict: Verdict = Verdict.PASS,
                  timeout: float = 120.0) -> None:
    """Audits a job that a provider daemon submits, with ``verifier`` (registered before the job was
    posted) as the only one in the draw: waits for the result, mines past the seed block, waits for
    the daemon to draw the verifier (``lockSeed``: the provider wants to be paid; again after a
    re-arm), gives ``verdict`` and moves the clock past the challenge window, so that the daemon can
    finalize. Blocks come when the test says, so every run takes the same path."""
    wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, timeout=timeout,
             what=f"job {job_id} submitted")
    wait_drawn(chain, job_id, timeout=timeout)
    chain.verdict(verifier, job_id, verdict)
    chain.increase_time(chain.market.terms_of(job_id).challenge_window + 1)
