"""``webi wallet withdraw|balance`` and ``webi devnet accounts`` against a real devnet: money that gets out."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.cli.main import app
from marketplace.protocol import Role
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.support.funds import set_eth, spent
from tests.support.jobs import StoreNode


@pytest.fixture
def cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode) -> Cli:
    return Cli(devnet, tmp_path / "home", deployments, store_node.url)


def refund(chain: Chain, requester: LocalAccount) -> int:
    """Posts and cancels a job: the escrow comes back as credits; their amount."""
    job_id = chain.post(requester)
    chain.market.cancel_job(requester, job_id)
    return chain.market.credits(requester.address)


def test_withdraw_pays_out_a_refund_then_refuses_when_nothing_is_left(
        chain: Chain, cli: Cli, requester: LocalAccount) -> None:
    cli.import_wallet("alice", requester)
    credited = refund(chain, requester)
    assert credited == 20 * WEI + chain.market.terms_of(chain.market.next_job_id() - 1).audit_fee
    balance = chain.token.balance_of(requester.address)
    out = cli("wallet", "withdraw", "alice", *cli.password)
    assert f"withdrew 30 WEBI of credits to alice ({requester.address}); tx 0x" in out
    assert chain.token.balance_of(requester.address) == balance + credited
    assert chain.market.credits(requester.address) == 0
    before = spent(chain, requester)
    out = cli("wallet", "withdraw", "alice", *cli.password, code=1)
    assert f"{requester.address} has no credits to withdraw" in out
    assert spent(chain, requester) == before


def test_withdraw_refuses_a_wallet_without_eth_for_gas(chain: Chain, cli: Cli, requester: LocalAccount) -> None:
    cli.import_wallet("alice", requester)
    credited = refund(chain, requester)
    set_eth(chain, requester.address, 0)
    before = spent(chain, requester)
    out = cli("wallet", "withdraw", "alice", *cli.password, code=1)
    assert f"{requester.address} has 0 ETH, and withdrawing needs about" in out and "\n" not in out.strip()
    assert spent(chain, requester) == before and chain.market.credits(requester.address) == credited


@pytest.mark.parametrize(("address", "reason"), [
    ("0x1234", "0x1234 is not an address (an address is 0x and 40 hex digits, this has 4 characters after 0x)"),
    (dev_account(1).address.replace("C5", "c5"), "its capital letters do not match its EIP-55 checksum: a typo?"),
])
def test_balance_refuses_what_is_not_an_address_in_one_line(cli: Cli, address: str, reason: str) -> None:
    out = cli("wallet", "balance", address, code=1)
    assert reason in out and "Traceback" not in out


def test_balance_shows_gas_credits_stakes_and_unbonding(chain: Chain, cli: Cli, provider: LocalAccount) -> None:
    chain.register(provider, Role.PROVIDER, 1_000 * WEI)
    chain.market.request_unstake(provider, Role.PROVIDER, 300 * WEI)
    out = cli("wallet", "balance", provider.address.lower())
    assert "gas" in out and " ETH" in out and "withdrawable credits" in out
    assert "provider stake" in out and "700 WEBI" in out
    assert "provider unbonding" in out and "300 WEBI" in out and "UTC (in 3 d)" in out


def test_devnet_accounts_prints_importable_dev_keys_with_balances(chain: Chain, cli: Cli) -> None:
    out = cli("devnet", "accounts", "--count", "3")
    assert "PUBLISHED dev keys: DEVNET ONLY" in out
    for index in range(3):
        assert dev_account(index).address in out and "0x" + bytes(dev_account(index).key).hex() in out
    assert dev_account(3).address not in out
    assert "1,000,000" in out, "WEBI balances, from the deployment"
    key = next(word for word in out.split() if len(word) == 66 and word.startswith("0x"))
    (cli.home / "dev.key").write_text(key)
    cli("wallet", "import", "dev", "--key-file", str(cli.home / "dev.key"), *cli.password, deployments=False)
    assert dev_account(0).address in cli("wallet", "list", deployments=False)


def test_devnet_accounts_without_a_devnet_lists_keys_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["devnet", "accounts", "--count", "2"],
                                env={"WEBI_HOME": str(tmp_path), "COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "no devnet running: balances not shown" in result.output
    assert "0x" + bytes(dev_account(1).key).hex() in result.output, "never cut, whatever the terminal's width"
