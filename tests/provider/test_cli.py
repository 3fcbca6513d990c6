"""`webi provider ...` as an operator runs it, and the config rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.errors import ConfigError
from marketplace.jobspec import TaskType
from marketplace.signed_capacity import verified_capacity
from marketplace.storage import Cid
from provider.bench import BenchReport, DeviceBench
from provider.config import load_config
from tests.conftest import Chain
from tests.support.jobs import StoreNode, provider_config


def webi(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WEBI_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "marketplace.cli", "provider", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_register_status_earnings_withdraw(chain: Chain, devnet: Devnet, store_node: StoreNode, deployments: Path,
                                           tmp_path: Path) -> None:
    account = dev_account(7)
    config = provider_config(tmp_path, account, devnet.anvil.rpc_url, store_node.url, deployments)
    measured = BenchReport("tiny", (DeviceBench("cpu", "x86_64", {"embed": 321.0}),), 1_800_000_000.0)
    measured.save(load_config(config).state)  # as `webi provider bench` left it
    registered = webi("register", "--stake", "2500", "-c", str(config), home=tmp_path)
    assert registered.returncode == 0, registered.stderr
    assert chain.market.provider_stake(account.address).stake == 2_500 * WEI
    metadata = registered.stdout.split("metadata ")[1].split()[0]
    document = json.loads(store_node.store.read_bytes(Cid.parse(metadata)))
    assert document["kind"] == "webi-provider"
    assert verified_capacity(document, account.address, chain.client.chain_id) == measured.as_dict()  # signed
    status = webi("status", "-c", str(config), home=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "stake 2,500 WEBI" in status.stdout
    earnings = webi("earnings", "-c", str(config), home=tmp_path)
    assert "0 jobs paid 0 WEBI" in earnings.stdout
    withdraw = webi("withdraw", "-c", str(config), home=tmp_path)
    assert withdraw.returncode == 1
    assert "has no credits to withdraw" in withdraw.stderr and "Traceback" not in withdraw.stderr


@pytest.mark.parametrize(("extra", "message"), [
    ('private_key = "0xabc"', "must not hold private_key"),
    ("idle_treshold_pct = 5", "idle_treshold_pct"),
    ("max_vram_share = 1.5", "max_vram_share"),
    ("[broken", "not valid TOML"),
])
def test_config_refuses_keys_typos_and_bad_values(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "provider.toml"
    path.write_text(f'[provider]\nkeystore = "k.json"\nstore = "s"\n{extra}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_price_floor_is_in_webi(tmp_path: Path) -> None:
    path = tmp_path / "provider.toml"
    path.write_text('[provider]\nrpc_url = "http://127.0.0.1:9"\nkeystore = "k.json"\nstore = "s"\n'
                    'price_floor = { embed = 0.5 }\n')
    assert load_config(path).floor_wei(TaskType.EMBED) == WEI // 2
