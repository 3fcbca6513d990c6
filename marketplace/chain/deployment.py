"""Deploy WEBI's contracts and remember where they are (``contracts/deployments/<chainId>.json``)."""

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
from marketplace.protocol import Params, Terms

WEI = 10**18

# Defaults for a new network. Every number is within the contract's hard bounds.
DEFAULT_SUPPLY = 1_000_000_000 * WEI
DEFAULT_TERMS = Terms(
    protocol_fee_bps=250,  # 2.5 % to the treasury on every settled job
    verifier_fee_bps=500,  # 5 % to the verifier of an audited job
    collateral_bps=5_000,  # a provider locks half the price while it holds a job
    audit_window=3_600,  # one hour for the verdict: room to fetch a model and re-run a sample
)
DEFAULT_PARAMS = Params(
    min_provider_stake=100 * WEI,
    min_verifier_stake=100 * WEI,
    unstake_cooldown=3 * 24 * 3_600,
    min_sample_rate_bps=500,  # at least 5 % of jobs are audited
    max_sample_rate_bps=10_000,
)

CONTRACT_NAMES = ("WebiToken", "JobMarket")


@dataclass(frozen=True)
class Deployment:
    """Where the protocol lives on one chain."""

    chain_id: int
    token: str
    market: str
    deployer: str
    block: int
    token_block: int | None = None  # where the token's history (its mint) starts; older files lack it

    def save(self, folder: Path | None = None) -> Path:
        folder = folder or contracts_dir() / "deployments"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.chain_id}.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, chain_id: int, folder: Path | None = None) -> Deployment:
        path = (folder or contracts_dir() / "deployments") / f"{chain_id}.json"
        if not path.is_file():
            raise ConfigError(f"no WEBI deployment for chain {chain_id} ({path} is missing): deploy first, "
                              "e.g. `webi devnet up`")
        return cls(**json.loads(path.read_text()))


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
                    supply: int = DEFAULT_SUPPLY, terms: Terms = DEFAULT_TERMS,
                    params: Params = DEFAULT_PARAMS) -> Protocol:
    """Deploys the token (whole supply to the deployer) and the market (owned by the deployer)."""
    token_contract, token_receipt = client.deploy(deployer, load_artifact("WebiToken"), deployer.address, supply)
    market_contract, receipt = client.deploy(
        deployer, load_artifact("JobMarket"), token_contract.address, deployer.address,
        treasury or deployer.address, terms.as_tuple(), params.as_tuple())
    deployment = Deployment(client.chain_id, str(token_contract.address), str(market_contract.address),
                            deployer.address, int(receipt["blockNumber"]), int(token_receipt["blockNumber"]))
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
