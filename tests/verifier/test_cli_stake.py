"""`webi verifier register|unstake` on a real devnet: exact stakes, open duties and the draw hold the withdrawal."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.keystore import save_account
from marketplace.protocol import Role, Verdict
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.support.epochs import into_sync_phase, outside_sync_phase
from tests.support.funds import spent
from tests.support.jobs import PASSWORD, StoreNode

COOLDOWN = 3 * 24 * 3_600


@pytest.fixture
def verifier_cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode) -> Cli:
    return Cli(devnet, tmp_path / "home", deployments, store_node.url)


def config(tmp_path: Path, devnet: Devnet, deployments: Path, account: LocalAccount) -> str:
    keystore = save_account(account, tmp_path / "keystore.json", PASSWORD, kdf="pbkdf2", iterations=1_000)
    (tmp_path / "verifier-password").write_text(PASSWORD + "\n")
    path = tmp_path / "verifier.toml"
    path.write_text(f'[verifier]\nrpc_url = "{devnet.anvil.rpc_url}"\nkeystore = "{keystore}"\n'
                    f'password_file = "{tmp_path / "verifier-password"}"\nstate_dir = "{tmp_path / "state"}"\n'
                    f'deployments_dir = "{deployments}"\n')
    return str(path)


def test_register_stakes_to_the_wei_and_refuses_what_it_cannot_pay(
        chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path, verifier_cli: Cli) -> None:
    account = dev_account(11)
    path = config(tmp_path, devnet, deployments, account)
    before = spent(chain, account)
    out = verifier_cli("verifier", "register", "--stake", "1000001", "-c", path, deployments=False, code=1)
    assert "holds 1,000,000 WEBI, less than the 1,000,001 WEBI stake" in out
    assert spent(chain, account) == before
    out = verifier_cli("verifier", "register", "--stake", "1000.000000000000000001", "-c", path, deployments=False)
    assert "as a verifier with 1,000 WEBI staked; audit secret #0 committed" in out
    assert chain.market.verifier_stake(account.address).stake == 1_000 * WEI + 1
    assert chain.token.allowance(account.address, chain.market.address) == 0


def test_unstake_waits_for_duties_the_cooldown_and_the_draw(
        chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path, verifier_cli: Cli,
        requester: LocalAccount, provider: LocalAccount) -> None:
    account = dev_account(11)
    path = config(tmp_path, devnet, deployments, account)

    def unstake(*args: str, code: int = 0) -> str:
        return verifier_cli("verifier", "unstake", *args, "-c", path, deployments=False, code=code)

    chain.register(account, Role.VERIFIER, 2_000 * WEI)
    chain.register(provider, Role.PROVIDER)
    job_id = chain.submitted_job(requester, provider)
    assert chain.draw(job_id) == account.address  # the only verifier: one open duty
    before = spent(chain, account)
    assert ("would leave 500 WEBI staked, under the minimum verifier stake of 1,000 WEBI: unstake at most "
            "1,000 WEBI") in unstake("--amount", "1500", code=1)
    assert spent(chain, account) == before

    outside_sync_phase(chain, 2)  # the request cannot change the draw at once
    requested = unstake("--all")
    assert "unstaking 2,000 WEBI as a verifier: 2,000 WEBI unbonding until 20" in requested
    assert "(in 3 d)" in requested and "it leaves the draw in the sync phase at block" in requested
    assert "1 open audit(s) or panel vote(s) must close before the withdrawal" in requested
    assert "unbonding until" in verifier_cli("verifier", "status", "-c", path, deployments=False)
    chain.verdict(account, job_id, Verdict.PASS)  # the duty closes when the job settles

    chain.increase_time(COOLDOWN + 1)
    before = spent(chain, account)
    assert "still serves 1 open audit(s) or panel vote(s)" in unstake("--withdraw", code=1)
    assert spent(chain, account) == before
    chain.market.finalize(chain.owner, job_id)
    outside_sync_phase(chain, 2)
    before = spent(chain, account)
    held = unstake("--withdraw", code=1)
    assert "the unbonding stake still counts in the draw until the sync phase at block" in held
    assert spent(chain, account) == before

    into_sync_phase(chain)
    balance = chain.token.balance_of(account.address)
    assert "withdrew 2,000 WEBI of unbonded stake" in unstake("--withdraw")
    assert chain.token.balance_of(account.address) == balance + 2_000 * WEI
    assert chain.market.verifier_weight(account.address) == 0
