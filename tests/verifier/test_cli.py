"""`webi verifier register|status` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.keystore import save_account
from tests.conftest import Chain
from tests.support.jobs import PASSWORD, StoreNode


def test_register_and_status(chain: Chain, devnet: Devnet, store_node: StoreNode, deployments: Path,
                             tmp_path: Path) -> None:
    account = dev_account(8)
    keystore = save_account(account, tmp_path / "keystore.json", PASSWORD, kdf="pbkdf2", iterations=1_000)
    config = tmp_path / "verifier.toml"
    config.write_text(f'[verifier]\nrpc_url = "{devnet.anvil.rpc_url}"\nkeystore = "{keystore}"\n'
                      f'password_env = "WEBI_TEST_VERIFIER_PASSWORD"\nstore = "{store_node.url}"\n'
                      f'state_dir = "{tmp_path / "state"}"\ndeployments_dir = "{deployments}"\n')
    env = {**os.environ, "WEBI_TEST_VERIFIER_PASSWORD": PASSWORD, "COLUMNS": "200"}

    def webi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "marketplace.cli", "verifier", *args, "-c", str(config)],
                              capture_output=True, text=True, env=env, timeout=120, check=False)

    registered = webi("register", "--stake", "500")
    assert registered.returncode == 0, registered.stderr
    assert chain.market.verifier_stake(account.address).stake == 500 * WEI
    status = webi("status")
    assert status.returncode == 0, status.stderr
    assert "stake 500 WEBI" in status.stdout
    again = webi("register", "--stake", "500")
    assert again.returncode == 1 and "AlreadyRegistered" in again.stderr
