"""`webi verifier register|status` as an operator runs them: registering also commits audit secret #0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.keystore import save_account
from marketplace.protocol import secret_hash
from tests.conftest import Chain
from tests.support.epochs import outside_sync_phase
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

    below = webi("register", "--stake", "500")
    assert below.returncode == 1 and "below the minimum verifier stake of 1,000 WEBI" in below.stderr
    assert chain.market.verifier_stake(account.address).stake == 0 and chain.token.allowance(
        account.address, chain.market.address) == 0, "refused before anything was sent"
    outside_sync_phase(chain, 3)  # the approval, the registration and the commitment wait for a sync
    registered = webi("register", "--stake", "1000")
    assert registered.returncode == 0, registered.stderr
    assert "it joins the draw in the sync phase at block" in registered.stdout
    assert chain.market.verifier_stake(account.address).stake == 1_000 * WEI
    assert chain.market.secret_of(account.address) == secret_hash(chain.secret(account, 0))
    assert chain.market.verifier_weight(account.address) == 0, "not before a sync phase"
    waiting = webi("status")
    assert waiting.returncode == 0, waiting.stderr
    assert "stake 1,000 WEBI, NOT in the draw yet" in waiting.stdout
    chain.sync(account.address)
    assert chain.market.verifier_weight(account.address) == 1_000 * WEI, "in the draw"
    status = webi("status")
    assert status.returncode == 0, status.stderr
    assert "stake 1,000 WEBI, in the draw," in status.stdout
    again = webi("register", "--stake", "1000")
    assert again.returncode == 1 and "is already registered as a verifier" in again.stderr
