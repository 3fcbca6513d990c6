"""`webi verifier register` publishes the verifier's encryption key: providers release confidential jobs'
keys to the recipient its registration metadata names, and the daemon opens them with the key beside
its keystore."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from marketplace.chain.devnet import Devnet, dev_account
from marketplace.keystore import save_account
from marketplace.protocol import Role
from marketplace.sealed import PartyKey, key_path_for
from marketplace.sealed.directory import published_recipient
from tests.conftest import Chain
from tests.support.jobs import PASSWORD, StoreNode
from verifier.confidential import load_party_keys


def test_register_publishes_the_key_beside_the_keystore(chain: Chain, devnet: Devnet, store_node: StoreNode,
                                                        deployments: Path, tmp_path: Path) -> None:
    account = dev_account(8)
    keystore = save_account(account, tmp_path / "keystore.json", PASSWORD, kdf="pbkdf2", iterations=1_000)
    config = tmp_path / "verifier.toml"
    config.write_text(f'[verifier]\nrpc_url = "{devnet.anvil.rpc_url}"\nkeystore = "{keystore}"\n'
                      f'password_env = "WEBI_TEST_VERIFIER_PASSWORD"\nstore = "{store_node.url}"\n'
                      f'state_dir = "{tmp_path / "state"}"\ndeployments_dir = "{deployments}"\n')
    env = {**os.environ, "WEBI_TEST_VERIFIER_PASSWORD": PASSWORD, "COLUMNS": "200"}
    assert load_party_keys(keystore, PASSWORD) == []  # no key yet: the daemon would say so at start
    registered = subprocess.run([sys.executable, "-m", "marketplace.cli", "verifier", "register", "--stake", "1000",
                                 "-c", str(config)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert registered.returncode == 0, registered.stderr
    key = PartyKey.load(key_path_for(keystore), PASSWORD)
    assert published_recipient(chain.market, store_node.store, account.address, Role.VERIFIER) == key.recipient
    assert [party.recipient for party in load_party_keys(keystore, PASSWORD)] == [key.recipient]
    cid = chain.market.contract.events.Registered().get_logs(
        from_block=0, argument_filters={"account": account.address})[-1]["args"]["metadataCid"]
    assert f"metadata {cid}" in registered.stdout
