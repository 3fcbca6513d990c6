"""Driving the market's epochs from a test: draws that span a sync phase re-arm, weights follow at sync.

Verifier weights change only in the first ``SYNC_BLOCKS`` blocks of every ``EPOCH_BLOCKS``; a draw
(``lockSeed``, ``drawPanel``) whose seed block has a sync phase between it and the call re-arms
instead of drawing. Anvil mines only on transactions, so where a test stands in its epoch depends on
how many transactions came before; these helpers put it where the test needs to be, so every run
takes the same path whatever the block number.
"""

from __future__ import annotations

from marketplace.protocol import EPOCH_BLOCKS, SYNC_BLOCKS, Audit, JobState, in_sync_phase, next_sync_block
from tests.conftest import Chain
from tests.support.waiting import wait_for


def seed_readable(chain: Chain, seed_block: int) -> None:
    """Mines until the latest block is past ``seed_block``: calls are estimated on the latest block."""
    latest = chain.block_number()
    if latest <= seed_block:
        chain.mine(seed_block - latest + 1)


def outside_sync_phase(chain: Chain, room: int) -> None:
    """Mines until the next ``room`` blocks all lie outside a sync phase (a change there waits for a sync)."""
    latest = chain.block_number()
    if all(not in_sync_phase(block) for block in range(latest + 1, latest + room + 1)):
        return
    phase = next_sync_block(latest + 1)
    after_sync = phase - phase % EPOCH_BLOCKS + SYNC_BLOCKS  # the first block after that sync phase
    assert room <= EPOCH_BLOCKS - SYNC_BLOCKS, f"{room} blocks do not fit between two sync phases"
    chain.mine(after_sync - 1 - latest)


def into_sync_phase(chain: Chain) -> None:
    """Mines until both the latest block and the next are in a sync phase (``syncVerifier`` needs both)."""
    latest = chain.block_number()
    if latest % EPOCH_BLOCKS > SYNC_BLOCKS - 2:
        chain.mine(next_sync_block(latest + 1) - latest)


def past_a_sync_phase(chain: Chain, seed_block: int) -> None:
    """Mines into the epoch after ``seed_block``'s: a draw asked for now re-arms, whatever the offset."""
    latest = chain.block_number()
    target = next_sync_block(seed_block + 1)
    if seed_block % EPOCH_BLOCKS + 1 < SYNC_BLOCKS:
        target = seed_block + 1  # a seed block early in a sync phase: the rest of that phase lies after it
    if latest < target:
        chain.mine(target - latest)


def draw_panel(chain: Chain, job_id: int) -> None:
    """Mines past the panel's seed block and draws it (again after a re-arm), as ``Chain.draw`` does for
    verifiers; returns once the panel sits or the challenge was dismissed (nobody eligible)."""
    for _ in range(4):
        seed_readable(chain, chain.market.panel_of(job_id).seed_block)
        chain.market.draw_panel(chain.owner, job_id)
        if chain.market.panel_of(job_id).size or chain.market.get_job(job_id).state != JobState.CHALLENGED:
            return
    raise AssertionError(f"job {job_id}: no panel drawn after 4 tries")


def wait_drawn(chain: Chain, job_id: int, *, timeout: float = 120.0) -> Audit:
    """Mines past the job's seed block and waits for a daemon to draw its verifier (``lockSeed``); when
    the daemon's call re-arms the draw instead (a sync phase came between), mines past the new seed
    block and waits again. Blocks come when the test says, so every run takes the same path."""
    for _ in range(4):
        seed_block = chain.market.get_job(job_id).seed_block
        seed_readable(chain, seed_block)
        wait_for(lambda seed_block=seed_block: chain.market.audit_of(job_id).drawn
                 or chain.market.get_job(job_id).seed_block != seed_block,
                 timeout=timeout, what=f"a daemon to draw job {job_id}")
        audit = chain.market.audit_of(job_id)
        if audit.drawn:
            return audit
    raise AssertionError(f"job {job_id}: no verifier drawn after 4 seed blocks")
