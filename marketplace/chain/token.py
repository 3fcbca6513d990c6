"""The WEBI token: balances, approvals and EIP-2612 permits signed locally."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import TxReceipt

from marketplace.chain.client import ChainClient


@dataclass(frozen=True)
class PermitSignature:
    deadline: int
    v: int
    r: bytes
    s: bytes


class WebiToken:
    """Typed access to the deployed WebiToken."""

    def __init__(self, client: ChainClient, contract: Contract) -> None:
        self.client = client
        self.contract = contract

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def balance_of(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.balanceOf(account)))

    def total_supply(self) -> int:
        return int(self.client.call(self.contract.functions.totalSupply()))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self.client.call(self.contract.functions.allowance(owner, spender)))

    def approve(self, account: LocalAccount, spender: str, amount: int) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.approve(spender, amount))

    def transfer(self, account: LocalAccount, to: str, amount: int) -> TxReceipt:
        return self.client.transact(account, self.contract.functions.transfer(to, amount))

    def sign_permit(self, owner: LocalAccount, spender: str, value: int, deadline: int) -> PermitSignature:
        """Signs an EIP-2612 permit off-chain, so that approval needs no transaction of its own."""
        nonce = int(self.client.call(self.contract.functions.nonces(owner.address)))
        signed = owner.sign_typed_data(
            domain_data={"name": "WEBI", "version": "1", "chainId": self.client.chain_id,
                         "verifyingContract": self.address},
            message_types={"Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]},
            message_data={"owner": owner.address, "spender": spender, "value": value, "nonce": nonce,
                          "deadline": deadline},
        )
        return PermitSignature(deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))
