"""`webi provider register|unstake` on a real devnet: exact decimal stakes, refusals that spend nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace import staking
from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.errors import ContractError
from marketplace.protocol import Role
from marketplace.storage import Cid
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.support.funds import set_eth, spent
from tests.support.jobs import StoreNode, provider_config

COOLDOWN = 3 * 24 * 3_600


@pytest.fixture
def cli(devnet: Devnet, deployments: Path, tmp_path: Path, store_node: StoreNode) -> Cli:
    return Cli(devnet, tmp_path / "home", deployments, store_node.url)


def config(tmp_path: Path, devnet: Devnet, deployments: Path, account: LocalAccount, name: str = "provider",
           **extra: object) -> str:
    # The store is the Cli's WEBI_STORE (the store node), which overrides the config's.
    return str(provider_config(tmp_path, account, devnet.anvil.rpc_url, "unused", deployments, name, **extra))


def test_register_stakes_the_exact_decimal_and_publishes_tasks_and_floors(
        chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path, cli: Cli, store_node: StoreNode) -> None:
    account = dev_account(9)
    chain.token.transfer(chain.owner, account.address, 4_000_000 * WEI)  # 5,000,000 WEBI in all
    path = config(tmp_path, devnet, deployments, account, tasks=["generate", "embed"],
                  price_floor={"embed": 0.5, "generate": 1.25})
    out = cli("provider", "register", "--stake", "5000000", "-c", path, deployments=False)
    # As a float, 5000000 * 1e18 is 4999999999999999791559868 wei; parsed as a decimal it is exact.
    assert chain.market.provider_stake(account.address).stake == 5_000_000 * 10**18
    assert chain.token.balance_of(account.address) == 0
    assert chain.token.allowance(account.address, chain.market.address) == 0, "the exact approval was spent"
    assert "with 5,000,000 WEBI staked" in out
    metadata = json.loads(store_node.store.read_bytes(Cid.parse(out.split("metadata ")[1].split()[0])))
    assert metadata["tasks"] == ["embed", "generate"]
    assert metadata["price_floor"] == {"embed": "0.5", "generate": "1.25"}


@pytest.mark.parametrize(("stake", "message"), [
    ("50", "--stake 50 WEBI is below the minimum provider stake of 100 WEBI"),
    ("1000001", "holds 1,000,000 WEBI, less than the 1,000,001 WEBI stake"),
    ("abc", "'abc' is not an amount of WEBI"),
    ("-5", "give a positive amount of WEBI"),
    ("0.0000000000000000001", "at most 18 decimals"),
])
def test_register_refuses_before_sending_anything(chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path,
                                                  cli: Cli, stake: str, message: str) -> None:
    account = dev_account(9)
    path = config(tmp_path, devnet, deployments, account)
    before = spent(chain, account)
    out = cli("provider", "register", "--stake", stake, "-c", path, deployments=False, code=1)
    assert message in out
    assert spent(chain, account) == before


def test_register_refuses_a_second_registration_and_a_wallet_without_eth(
        chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path, cli: Cli) -> None:
    registered, broke = dev_account(9), dev_account(10)
    chain.register(registered, Role.PROVIDER, 500 * WEI)
    before = spent(chain, registered)
    out = cli("provider", "register", "--stake", "200", "-c", config(tmp_path, devnet, deployments, registered),
              deployments=False, code=1)
    assert "is already registered as a provider with 500 WEBI staked" in out
    assert spent(chain, registered) == before

    set_eth(chain, broke.address, 0)
    before = spent(chain, broke)
    out = cli("provider", "register", "--stake", "200", "-c", config(tmp_path, devnet, deployments, broke, "broke"),
              deployments=False, code=1)
    assert f"{broke.address} has 0 ETH, and registering as a provider needs about" in out
    assert spent(chain, broke) == before


def test_a_failed_registration_sets_the_allowance_back(chain: Chain) -> None:
    account = dev_account(9)
    # Past the checks (called directly): the contract refuses, and the approval made for it is undone.
    with pytest.raises(ContractError) as refused:
        staking.register(chain.protocol, account, Role.PROVIDER, 50 * WEI)
    assert refused.value.name == "InsufficientStake"
    assert chain.token.allowance(account.address, chain.market.address) == 0
    chain.token.approve(account, chain.market.address, 7 * WEI)
    with pytest.raises(ContractError):
        staking.register(chain.protocol, account, Role.PROVIDER, 50 * WEI)
    assert chain.token.allowance(account.address, chain.market.address) == 7 * WEI, "the earlier approval is kept"


def test_unstake_requests_waits_out_the_cooldown_and_withdraws(
        chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path, cli: Cli, requester: LocalAccount) -> None:
    account = dev_account(9)
    path = config(tmp_path, devnet, deployments, account)
    chain.register(account, Role.PROVIDER, 1_000 * WEI)
    chain.market.claim_job(account, chain.post(requester, price=20 * WEI))  # locks 10 WEBI of collateral

    def unstake(*args: str, code: int = 0) -> str:
        return cli("provider", "unstake", *args, "-c", path, deployments=False, code=code)

    before = spent(chain, account)
    assert "give exactly one of --amount WEBI, --all or --withdraw" in unstake(code=1)
    assert "give exactly one of" in unstake("--all", "--withdraw", code=1)
    assert ("unstaking 950 WEBI would leave 50 WEBI staked, under the minimum provider stake of 100 WEBI: unstake "
            "at most 900 WEBI, or all of it (--all)") in unstake("--amount", "950", code=1)
    assert ("only 990 of the 1,000 WEBI staked is free: 10 WEBI is locked as collateral for claimed jobs"
            in unstake("--all", code=1))
    assert "--amount 2,000 WEBI is more than the 1,000 WEBI staked" in unstake("--amount", "2000", code=1)
    assert "has nothing unbonding as a provider" in unstake("--withdraw", code=1)
    assert spent(chain, account) == before

    requested = unstake("--amount", "400")
    assert "unstaking 400 WEBI as a provider: 400 WEBI unbonding until 20" in requested
    assert "UTC (in 3 d)" in requested and "`webi provider unstake --withdraw`" in requested
    stake = chain.market.provider_stake(account.address)
    assert (stake.stake, stake.unbonding) == (600 * WEI, 400 * WEI)
    before = spent(chain, account)
    early = unstake("--withdraw", code=1)
    assert "400 WEBI is unbonding until 20" in early and "withdraw it then" in early
    assert spent(chain, account) == before
    again = unstake("--amount", "100.5")
    assert "500.5 WEBI unbonding" in again and "the cooldown started again for the 400 WEBI already unbonding" in again
    assert "unbonding until" in cli("provider", "status", "-c", path, deployments=False)

    chain.increase_time(COOLDOWN + 1)
    balance = chain.token.balance_of(account.address)
    assert f"withdrew 500.5 WEBI of unbonded stake to {account.address}" in unstake("--withdraw")
    assert chain.token.balance_of(account.address) == balance + 5_005 * WEI // 10
    assert chain.market.provider_stake(account.address).unbonding == 0


def test_withdraw_refuses_when_nothing_is_credited(chain: Chain, devnet: Devnet, deployments: Path, tmp_path: Path,
                                                   cli: Cli) -> None:
    account = dev_account(9)
    chain.register(account, Role.PROVIDER, 1_000 * WEI)
    before = spent(chain, account)
    out = cli("provider", "withdraw", "-c", config(tmp_path, devnet, deployments, account), deployments=False, code=1)
    assert f"{account.address} has no credits to withdraw" in out
    assert spent(chain, account) == before
