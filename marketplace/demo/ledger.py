"""The demo's books: who was credited what, whose stake was slashed, bonds, burns, and conservation.

Everything comes from the chain: credits, slashes and bonds from the market's events (the same
decoding the indexer and the auditor use), holdings (wallet + stake) from views before and after.
Once everyone has withdrawn, the books balance when the net changes sum to zero and the market
contract kept, beyond the stakes, exactly what slashes burned.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import Protocol
from marketplace.demo.cast import MARKET, TREASURY, Cast
from marketplace.history import fetch_events
from marketplace.indexer.indexer import decoder_for
from marketplace.protocol import CreditKind


def kind_name(kind: CreditKind) -> str:
    return kind.name.lower().replace("_", " ")


@dataclass(frozen=True)
class Ledger:
    """Wei amounts by account key (``marketplace.demo.cast``); an address the cast lacks keeps its address."""

    credits: dict[str, dict[str, int]]  # account -> credit kind ("verifier fee", "bond refund", ...) -> wei
    slashed: dict[str, int]  # account -> stake (and unbonding stake) taken by slashes
    bonds_paid: dict[str, int]  # challenger -> bonds it put up
    bonds_refunded: dict[str, int]  # challenger -> bonds credited back
    burned: int
    net: dict[str, int]  # account -> change in wallet + stake over the run
    conserved: bool


def holdings(protocol: Protocol, cast: Cast) -> dict[str, int]:
    """Wallet balance plus stake (staked WEBI is still the staker's) for every account in the cast, the
    treasury, and the market contract's own share: what it holds beyond those stakes."""
    market, token = protocol.market, protocol.token
    addresses = {**{key: cast.address(key) for key in cast.accounts}, TREASURY: market.treasury()}
    stakes = {key: sum(stake.stake + stake.unbonding
                       for stake in (market.provider_stake(address), market.verifier_stake(address)))
              for key, address in addresses.items()}
    held = {key: token.balance_of(address) + stakes[key] for key, address in addresses.items()}
    held[MARKET] = token.balance_of(market.address) - sum(stakes.values())
    return held


def withdraw_all(protocol: Protocol, cast: Cast, owner: LocalAccount) -> None:
    """Every credit out to its wallet, and the protocol fees to the treasury."""
    market = protocol.market
    for account in cast.accounts.values():
        if market.credits(account.address):
            market.withdraw(account)
    if market.protocol_fees():
        market.withdraw_protocol_fees(owner)


def ledger(protocol: Protocol, cast: Cast, before: dict[str, int]) -> Ledger:
    """The books after everyone withdrew (``withdraw_all``), against ``before`` (``holdings`` at the start)."""
    market = protocol.market
    keys = {cast.address(key).lower(): key for key in cast.accounts} | {market.treasury().lower(): TREASURY}
    credits: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    slashed: dict[str, int] = defaultdict(int)
    paid: dict[str, int] = defaultdict(int)
    refunded: dict[str, int] = defaultdict(int)
    client = market.client
    for event in fetch_events(client, decoder_for(protocol.deployment), protocol.deployment.block,
                              int(client.w3.eth.block_number)):
        if event.contract != "market":
            continue
        args = event.args
        if event.name == "Credited":
            account, kind = _key(keys, args["account"]), CreditKind(args["kind"])
            credits[account][kind_name(kind)] += int(args["amount"])
            if kind == CreditKind.BOND_REFUND:
                refunded[account] += int(args["amount"])
        elif event.name == "Slashed":
            slashed[_key(keys, args["account"])] += int(args["fromStake"]) + int(args["fromUnbonding"])
        elif event.name == "Challenged":
            paid[_key(keys, args["challenger"])] += int(args["bond"])
    after = holdings(protocol, cast)
    net = {key: after[key] - before[key] for key in before}
    burned = market.burned()
    # Every wei that left an account reached another, or was burned: what the market holds beyond the
    # stakes, once everyone has withdrawn, is exactly what slashes burned.
    conserved = sum(net.values()) == 0 and net[MARKET] == burned
    return Ledger({account: dict(kinds) for account, kinds in credits.items()}, dict(slashed), dict(paid),
                  dict(refunded), burned, net, conserved)


def _key(keys: dict[str, str], address: str) -> str:
    return keys.get(str(address).lower(), str(address))
