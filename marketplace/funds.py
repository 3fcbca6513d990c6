"""What an account needs before it sends anything, and what it can take out of the market.

A transaction from an account with no ETH fails inside the node's gas estimate with a bare RPC error;
``require_gas`` says so in words before anything is signed. Credits (payments, refunds, slash
compensation, audit fees) wait in the market until their owner withdraws them: ``withdraw_credits``
refuses an empty balance instead of paying gas for a revert.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_checksum_address, to_checksum_address

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Protocol
from marketplace.errors import ConfigError
from marketplace.units import webi

# Rough gas limits of what the CLI sends, with room: enough to tell "no ETH at all" from "enough".
WITHDRAW_GAS = 100_000
UNSTAKE_GAS = 200_000
REGISTER_GAS = 450_000  # approve + register (+ a verifier's first commitSecret)


def eth(amount: int) -> str:
    """Wei as ETH, to 6 places (ETH has 18 decimals, as WEBI does)."""
    return webi(amount, places=6)


def gas_cost(client: ChainClient, gas: int) -> int:
    """The most ``gas`` units can cost now, priced as ``ChainClient`` prices its transactions."""
    base_fee = client.w3.eth.get_block("latest").get("baseFeePerGas")
    if base_fee is None:
        return gas * int(client.w3.eth.gas_price)
    return gas * (2 * int(base_fee) + int(client.w3.eth.max_priority_fee))


def require_gas(client: ChainClient, address: str, what: str, gas: int) -> None:
    """A ConfigError when ``address`` cannot pay the gas of ``what`` (about ``gas`` units); sends nothing."""
    balance = int(client.w3.eth.get_balance(to_checksum_address(address)))
    needed = gas_cost(client, gas)
    if balance < needed:
        raise ConfigError(f"{address} has {eth(balance)} ETH, and {what} needs about {eth(needed)} ETH for gas: "
                          "send it some ETH first (on a devnet, from a dev account: `webi devnet accounts`)")


def parse_address(text: str) -> str:
    """``text`` as a checksummed address, or a ConfigError that says what is wrong with it.

    Mixed case must match the EIP-55 checksum (``is_address`` no longer checks it): a mistyped
    letter in a copied address is caught here rather than sent to.
    """
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) != 40 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError(f"{text} is not an address (an address is 0x and 40 hex digits, this has {len(digits)} "
                          "characters after 0x)")
    if not (digits.islower() or digits.isupper() or digits.isdigit()) and not is_checksum_address("0x" + digits):
        raise ConfigError(f"{text} is not an address (its capital letters do not match its EIP-55 checksum: "
                          "a typo?)")
    return to_checksum_address("0x" + digits)


@dataclass(frozen=True)
class Withdrawal:
    account: str
    amount: int
    tx_hash: str


def withdraw_credits(protocol: Protocol, account: LocalAccount) -> Withdrawal:
    """Withdraws every credited WEBI of ``account``; refuses, spending nothing, when there is none."""
    amount = protocol.market.credits(account.address)
    if amount == 0:
        raise ConfigError(f"{account.address} has no credits to withdraw: payments, refunds, slash compensation "
                          "and audit fees appear there once a job credits them (`webi wallet balance` shows them)")
    require_gas(protocol.market.client, account.address, "withdrawing", WITHDRAW_GAS)
    receipt = protocol.market.withdraw(account)
    return Withdrawal(account.address, amount, receipt["transactionHash"].to_0x_hex())
