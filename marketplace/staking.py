"""Staking as an operator does it: each refusal the contract would make, said in words before anything is sent.

The market has no register-with-permit (only ``postJobWithPermit``), so ``register`` approves exactly
the stake, registers, and when the registration fails sets the allowance back to what it was: no
approval is left behind. A successful registration spends the exact approval, so none is left then
either. Unstaking is two steps, as in ``Staking.sol``: ``requestUnstake`` starts a cooldown
(``params.unstake_cooldown``), ``withdrawStake`` pays out after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from marketplace.chain.deployment import Protocol
from marketplace.chain.market import JobMarket
from marketplace.errors import ConfigError
from marketplace.funds import REGISTER_GAS, UNSTAKE_GAS, require_gas
from marketplace.protocol import Role, Stake, in_sync_phase, next_sync_block
from marketplace.units import webi

log = logging.getLogger(__name__)

UINT96_MAX = 2**96 - 1


def role_name(role: Role) -> str:
    return role.name.lower()


def stake_of(market: JobMarket, role: Role, address: str) -> Stake:
    return market.provider_stake(address) if role is Role.PROVIDER else market.verifier_stake(address)


def minimum_stake(market: JobMarket, role: Role) -> int:
    params = market.params()
    return params.min_provider_stake if role is Role.PROVIDER else params.min_verifier_stake


def duration(seconds: int) -> str:
    """``266400`` as ``3 d 2 h``: the largest unit and the next one when it is not zero, rounded down."""
    units = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))
    seconds = max(0, seconds)
    first = next((i for i, (_, size) in enumerate(units) if seconds >= size), len(units) - 1)
    unit, size = units[first]
    text = f"{seconds // size} {unit}"
    if first + 1 < len(units):
        next_unit, next_size = units[first + 1]
        rest = seconds % size // next_size
        if rest:
            text += f" {rest} {next_unit}"
    return text


def when(timestamp: int, now: int) -> str:
    """A chain time as UTC and relative to the chain's ``now``: ``2027-01-18 08:00 UTC (in 3 d)``."""
    moment = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{moment} (in {duration(timestamp - now)})" if timestamp > now else f"{moment} (passed)"


# ───────────────────────────────────────────── registering

def check_register(protocol: Protocol, address: str, role: Role, amount: int) -> None:
    """Refuses, in words, what ``register`` would revert on or cannot pay for; reads only."""
    market, name = protocol.market, role_name(role)
    current = stake_of(market, role, address)
    if current.stake:
        raise ConfigError(f"{address} is already registered as a {name} with {webi(current.stake)} WEBI staked "
                          f"(`webi {name} status` shows it)")
    minimum = minimum_stake(market, role)
    if amount < minimum:
        raise ConfigError(f"--stake {webi(amount, 18)} WEBI is below the minimum {name} stake of {webi(minimum)} WEBI"
                          + (": only verifiers with at least the minimum are drawn" if role is Role.VERIFIER else ""))
    if amount > UINT96_MAX:
        raise ConfigError(f"--stake {webi(amount)} WEBI is more than a stake can hold ({webi(UINT96_MAX)} WEBI)")
    balance = protocol.token.balance_of(address)
    if balance < amount:
        raise ConfigError(f"{address} holds {webi(balance, 18)} WEBI, less than the {webi(amount, 18)} WEBI stake")
    require_gas(market.client, address, f"registering as a {name}", REGISTER_GAS)


def register(protocol: Protocol, account: LocalAccount, role: Role, amount: int, metadata_cid: str = "") -> TxReceipt:
    """Approves exactly ``amount`` (unless enough is approved already), registers, and on any failure sets
    the allowance back to what it was before."""
    token, market = protocol.token, protocol.market
    before = token.allowance(account.address, market.address)
    if before < amount:
        token.approve(account, market.address, amount)
    try:
        return market.register(account, role, amount, metadata_cid)
    except BaseException as error:
        if before < amount:
            try:
                token.approve(account, market.address, before)
            except Exception as reset_error:  # the first error is the one to report; say the approval remains
                log.warning("could not reset the allowance after a failed registration: %s", reset_error)
                error.add_note(f"the approval of {webi(amount)} WEBI to the market is still in place: "
                               f"approve 0 to remove it ({reset_error})")
        raise


# ───────────────────────────────────────────── unstaking

def plan_unstake(market: JobMarket, address: str, role: Role, amount: int | None) -> int:
    """The WEBI a ``requestUnstake`` of ``amount`` (None: all of it) would move to unbonding, or a
    ConfigError saying why the contract would refuse it; reads only."""
    name, current = role_name(role), stake_of(market, role, address)
    if current.stake == 0:
        if current.unbonding:
            raise ConfigError(f"{address} has nothing left staked as a {name}: {webi(current.unbonding)} WEBI is "
                              f"unbonding (`webi {name} unstake --withdraw` after the cooldown)")
        raise ConfigError(f"{address} is not registered as a {name}: there is no stake to unstake")
    requested = current.stake if amount is None else amount
    if requested > current.stake:
        raise ConfigError(f"--amount {webi(requested)} WEBI is more than the {webi(current.stake)} WEBI staked")
    if requested > current.free:
        raise ConfigError(f"only {webi(current.free)} of the {webi(current.stake)} WEBI staked is free: "
                          f"{webi(current.locked)} WEBI is locked as collateral for claimed jobs until they settle")
    remaining, minimum = current.stake - requested, minimum_stake(market, role)
    if 0 < remaining < minimum:
        most = min(current.free, current.stake - minimum)
        raise ConfigError(f"unstaking {webi(requested)} WEBI would leave {webi(remaining)} WEBI staked, under the "
                          f"minimum {name} stake of {webi(minimum)} WEBI: unstake at most {webi(most)} WEBI, "
                          "or all of it (--all)")
    return requested


@dataclass(frozen=True)
class UnstakeRequest:
    amount: int
    unbonding: int  # all that is unbonding now, the earlier requests included
    restarted: int  # WEBI that was unbonding already and whose cooldown started again
    unlock_at: int
    now: int


def request_unstake(market: JobMarket, account: LocalAccount, role: Role, amount: int | None) -> UnstakeRequest:
    """Checks (``plan_unstake``, gas) and sends ``requestUnstake``; what is unbonding now and until when."""
    requested = plan_unstake(market, account.address, role, amount)
    require_gas(market.client, account.address, "requesting an unstake", UNSTAKE_GAS)
    earlier = stake_of(market, role, account.address).unbonding
    market.request_unstake(account, role, requested)
    after = stake_of(market, role, account.address)
    return UnstakeRequest(requested, after.unbonding, earlier, after.unlock_at, market.client.timestamp())


def check_withdraw_stake(market: JobMarket, address: str, role: Role) -> int:
    """The unbonded WEBI a ``withdrawStake`` would pay now, or a ConfigError saying what it waits for."""
    name, current = role_name(role), stake_of(market, role, address)
    if current.unbonding == 0:
        raise ConfigError(f"{address} has nothing unbonding as a {name}: request it first with "
                          f"`webi {name} unstake --amount WEBI` or `--all`")
    now = market.client.timestamp()
    if now < current.unlock_at:
        raise ConfigError(f"{webi(current.unbonding)} WEBI is unbonding until {when(current.unlock_at, now)}: "
                          "withdraw it then")
    if current.duties:
        raise ConfigError(f"{address} still serves {current.duties} open audit(s) or panel vote(s): the stake can "
                          "be withdrawn once they close (`webi verifier run` serves them)")
    if role is Role.VERIFIER and market.verifier_weight(address) > current.stake:
        block = int(market.client.w3.eth.block_number)
        # withdrawStake syncs the weight itself, but only in a sync phase: the block it is estimated on
        # (the latest) and the one it is mined in (the next) must both lie in one.
        if not (in_sync_phase(block) and in_sync_phase(block + 1)):
            at = next_sync_block(block + 1)
            raise ConfigError(f"the unbonding stake still counts in the draw until the sync phase at block {at} "
                              f"({at - block} blocks from now): withdraw it then")
    return current.unbonding


def withdraw_stake(market: JobMarket, account: LocalAccount, role: Role) -> int:
    """Checks (``check_withdraw_stake``, gas) and sends ``withdrawStake``; the WEBI paid out."""
    amount = check_withdraw_stake(market, account.address, role)
    require_gas(market.client, account.address, "withdrawing stake", UNSTAKE_GAS)
    market.withdraw_stake(account, role)
    return amount


def describe_request(role: Role, request: UnstakeRequest) -> str:
    """What an unstake request did, for people: the amount, the cooldown's end, the next command."""
    name = role_name(role)
    text = (f"unstaking {webi(request.amount)} WEBI as a {name}: {webi(request.unbonding)} WEBI unbonding until "
            f"{when(request.unlock_at, request.now)}; then `webi {name} unstake --withdraw`")
    if request.restarted:
        text += f" (the cooldown started again for the {webi(request.restarted)} WEBI already unbonding)"
    return text
