"""Draw weights and epochs, for the daemons (the verifier's uses this too, as it does ``provider.config``).

A verifier's weight in the draw follows its stake and secret commitment only in a sync phase (the
first ``SYNC_BLOCKS`` blocks of every ``EPOCH_BLOCKS``): a registration, stake change, slash or
commitment made outside one leaves the draw as it was until someone calls ``syncVerifier`` in the
next. A daemon calls it for its own account when its weight is stale, so that a new stake or secret
joins the draw (and a reduced one leaves it) at the first sync phase it sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.errors import ContractError
from marketplace.protocol import ZERO_HASH, in_sync_phase, next_sync_block

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightCheck:
    """A verifier's weight in the draw now, and the weight its stake and secret give it at the next sync."""

    weight: int
    due: int
    stake: int
    minimum: int
    committed: bool

    @property
    def stale(self) -> bool:
        return self.weight != self.due


def weight_check(market: JobMarket, verifier: str) -> WeightCheck:
    """The contract's rule: weighted by its stake while it has a commitment and at least the minimum stake."""
    stake = market.verifier_stake(verifier).stake
    committed = market.secret_of(verifier) != ZERO_HASH
    minimum = market.params().min_verifier_stake
    due = stake if committed and stake >= minimum else 0
    return WeightCheck(market.verifier_weight(verifier), due, stake, minimum, committed)


def can_sync_now(block_number: int) -> bool:
    """Whether a ``syncVerifier`` sent after block ``block_number`` is accepted: it is estimated on that
    block and mined in the next, and both must be in a sync phase."""
    return in_sync_phase(block_number) and in_sync_phase(block_number + 1)


def sync_own_weight(market: JobMarket, account: LocalAccount) -> WeightCheck | None:
    """Calls ``syncVerifier`` for ``account`` when its draw weight is stale and the chain is in a sync
    phase; the check it acted on, or ``None`` when it sent nothing.

    Outside a sync phase nothing is read (one block-number call). A ``NotSyncPhase`` refusal (the
    phase ended between the check and the transaction) means "next time".
    """
    latest = int(market.client.w3.eth.block_number)
    if not can_sync_now(latest):
        return None
    check = weight_check(market, str(account.address))
    if not check.stale:
        return None
    try:
        market.sync_verifier(account, str(account.address))
    except ContractError as error:
        if error.name != "NotSyncPhase":
            raise
        log.debug("syncVerifier for %s: %s; at the next sync phase", account.address, error)
        return None
    log.info("verifier %s: draw weight %d -> %d (syncVerifier)", account.address, check.weight, check.due)
    if check.committed and 0 < check.stake < check.minimum:
        log.warning("verifier %s: stake %d is below the minimum %d: out of the draw until stake is added",
                    account.address, check.stake, check.minimum)
    return check


def joins_at(block_number: int) -> int:
    """The first block of the sync phase at or after the block after ``block_number``: where a change
    made now reaches the draw (at once when that block is in a sync phase)."""
    return next_sync_block(block_number + 1)
