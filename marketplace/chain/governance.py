"""Changes to a market owned by its TimelockController: schedule, wait out the delay, execute.

The devnet's market (and any deployment made with ``governance_delay``) is owned by OpenZeppelin's
TimelockController, so a change of terms is public ``delay`` seconds before it applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.client import ChainClient

NO_PREDECESSOR = b"\x00" * 32


@dataclass(frozen=True)
class Proposal:
    """One call the timelock will make, as it was scheduled."""

    target: str
    data: bytes
    salt: bytes

    def args(self) -> tuple[str, int, bytes, bytes, bytes]:
        return (self.target, 0, self.data, NO_PREDECESSOR, self.salt)


class Governance:
    """A deployed TimelockController."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract: Contract = client.contract(load_artifact("Governance"), address)

    def delay(self) -> int:
        return int(self.client.call(self.contract.functions.getMinDelay()))

    def schedule(self, proposer: LocalAccount, call: ContractFunction, salt: bytes = NO_PREDECESSOR) -> Proposal:
        """Schedules ``call`` (a contract function with its arguments) after the minimum delay."""
        proposal = Proposal(str(call.address), bytes.fromhex(call._encode_transaction_data()[2:]), salt)
        self.client.transact(proposer, self.contract.functions.schedule(*proposal.args(), self.delay()))
        return proposal

    def execute(self, executor: LocalAccount, proposal: Proposal) -> TxReceipt:
        """Executes a scheduled call once its delay has passed (anyone may)."""
        return self.client.transact(executor, self.contract.functions.execute(*proposal.args()))
