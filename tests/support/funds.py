"""What a refused command must leave untouched, and a wallet's ETH set by hand (anvil only)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from tests.conftest import Chain


def spent(chain: Chain, account: LocalAccount) -> tuple[int, int, int, int]:
    """WEBI held, nonce, allowance to the market and ETH: a refusal changes none of them."""
    address = account.address
    return (chain.token.balance_of(address), chain.client.w3.eth.get_transaction_count(address),
            chain.token.allowance(address, chain.market.address), chain.client.w3.eth.get_balance(address))


def set_eth(chain: Chain, address: str, wei: int) -> None:
    """Sets ``address``'s ETH balance (``anvil_setBalance``): a wallet with WEBI and no gas money."""
    chain.client.w3.provider.make_request("anvil_setBalance", [address, hex(wei)])  # type: ignore[arg-type]
