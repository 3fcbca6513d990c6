"""Deploy WEBI's contracts and remember where they are (``<chainId>.json`` in a deployments folder).

A deployment file is looked up in the folder a caller names, else in ``$WEBI_HOME/deployments``
(where `webi devnet up` writes), else in ``$WEBI_CONTRACTS_DIR/deployments`` (default: the
checkout's ``contracts/deployments``, for files shipped with the code).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.chain.artifacts import contracts_dir, load_artifact
from marketplace.chain.client import ChainClient
from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import ConfigError
from marketplace.home import WebiHome
from marketplace.protocol import ZERO_ADDRESS, Params, Terms

WEI = 10**18

# Defaults for a new network. Every number is within the contract's hard bounds; the figures that
# justify them come from scripts/bench_economics.py (README, "Security model").
DEFAULT_SUPPLY = 1_000_000_000 * WEI
DEFAULT_TERMS = Terms(
    protocol_fee_bps=250,  # 2.5 % of the price to the treasury on every paid job
    # An audit pays 2x the per-task price per sampled task: a verifier computes two references
    # (its dtype and fp32) and still covers them at a provider cost of 0.9 x the price.
    verifier_fee_bps=20_000,
    collateral_bps=5_000,  # a provider locks half the price while it holds a job
    audit_window=3_600,  # one hour from the draw for the verdict: fetch a model, re-run a sample
    challenge_window=3_600,  # one hour in which a verdict can be challenged before it is final
)
DEFAULT_PARAMS = Params(
    min_provider_stake=100 * WEI,
    # A job's price is at most min_verifier_stake x verifier_slash_bps (500 WEBI): a wrong verdict always
    # costs its verifier at least the price of the job it judged.
    min_verifier_stake=1_000 * WEI,
    # 0.05 WEBI a task: every audit is paid for, and an honest verifier's margin on even a 1-task
    # sample covers its gas on an L2 (scripts/bench_economics.py)
    min_task_price=WEI // 20,
    unstake_cooldown=3 * 24 * 3_600,
    reveal_window=3_600,  # a provider has an hour to reveal demanded outputs on-chain
    vote_window=3_600,  # a panel has an hour to commit, then an hour to reveal
    verifier_slash_bps=5_000,  # a verifier a panel contradicts loses half its stake
    no_show_slash_bps=100,  # 1 % for a missed verdict or vote
    reward_bps=1_000,  # 10 % of a slash to whoever proved the fault; the rest is burned
)
# The devnet's owner is a TimelockController: every change of terms waits this long.
DEFAULT_GOVERNANCE_DELAY = 2 * 24 * 3_600

CONTRACT_NAMES = ("WebiToken", "JobMarket", "Disputes", "Requests", "Governance")


@dataclass(frozen=True)
class Deployment:
    """Where the protocol lives on one chain."""

    chain_id: int
    token: str
    market: str
    deployer: str
    block: int
    token_block: int | None = None  # where the token's history (its mint) starts; older files lack it
    disputes: str | None = None  # the Disputes code the market delegates to
    governance: str | None = None  # the TimelockController that owns the market, if any

    def save(self, folder: Path | None = None) -> Path:
        """Writes ``<chainId>.json`` into ``folder`` (default ``$WEBI_HOME/deployments``); returns its path."""
        folder = folder or WebiHome.from_env().deployments
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.chain_id}.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, chain_id: int, folder: Path | None = None) -> Deployment:
        """The deployment on ``chain_id`` from ``folder``, else from the default folders (module docstring)."""
        folders = [folder] if folder else [WebiHome.from_env().deployments, contracts_dir() / "deployments"]
        for candidate in folders:
            path = candidate / f"{chain_id}.json"
            if path.is_file():
                return cls(**json.loads(path.read_text()))
        raise ConfigError(f"no WEBI deployment for chain {chain_id} (looked for {chain_id}.json in "
                          f"{', '.join(str(candidate) for candidate in folders)}): deploy first, e.g. "
                          "`webi devnet up`, or pass --deployments DIR")


@dataclass(frozen=True)
class Protocol:
    """The deployed contracts, ready to use."""

    deployment: Deployment
    token: WebiToken
    market: JobMarket


def protocol_abis() -> list[list[dict[str, object]]]:
    """ABIs of every contract a client may meet, so that all their custom errors decode."""
    return [load_artifact(name).abi for name in CONTRACT_NAMES]


def deploy_protocol(client: ChainClient, deployer: LocalAccount, *, treasury: str | None = None,
                    supply: int = DEFAULT_SUPPLY, terms: Terms = DEFAULT_TERMS, params: Params = DEFAULT_PARAMS,
                    governance_delay: int | None = None) -> Protocol:
    """Deploys the token (whole supply to the deployer), the dispute code and the market.

    With ``governance_delay``, the market's owner is a new TimelockController (the deployer
    proposes, anyone executes once the delay has passed); without, the deployer owns it.
    """
    token_contract, token_receipt = client.deploy(deployer, load_artifact("WebiToken"), deployer.address, supply)
    disputes, _ = client.deploy(deployer, load_artifact("Disputes"), token_contract.address)
    requests, _ = client.deploy(deployer, load_artifact("Requests"), token_contract.address)
    owner: str = deployer.address
    governance: str | None = None
    if governance_delay is not None:
        timelock, _ = client.deploy(deployer, load_artifact("Governance"), governance_delay, [deployer.address],
                                    [ZERO_ADDRESS], ZERO_ADDRESS)
        owner = governance = str(timelock.address)
    market_contract, receipt = client.deploy(
        deployer, load_artifact("JobMarket"), token_contract.address, disputes.address, requests.address, owner,
        treasury or deployer.address, terms.as_tuple(), params.as_tuple())
    deployment = Deployment(client.chain_id, str(token_contract.address), str(market_contract.address),
                            deployer.address, int(receipt["blockNumber"]), int(token_receipt["blockNumber"]),
                            str(disputes.address), governance)
    market = JobMarket(client, market_contract, from_block=deployment.block)
    return Protocol(deployment, WebiToken(client, token_contract), market)


def connect_protocol(client: ChainClient, deployment: Deployment) -> Protocol:
    """The protocol as deployed at ``deployment``; checks that code exists there."""
    if client.chain_id != deployment.chain_id:
        raise ConfigError(f"deployment is for chain {deployment.chain_id}, the RPC endpoint is chain {client.chain_id}")
    for name, address in (("WebiToken", deployment.token), ("JobMarket", deployment.market)):
        if not client.w3.eth.get_code(address):  # type: ignore[arg-type]
            raise ConfigError(f"no {name} code at {address} on chain {client.chain_id}: the deployment file is stale")
    token = WebiToken(client, client.contract(load_artifact("WebiToken"), deployment.token))
    market = JobMarket(client, client.contract(load_artifact("JobMarket"), deployment.market),
                       from_block=deployment.block)
    return Protocol(deployment, token, market)
