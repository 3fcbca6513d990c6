"""The order a provider considers unclaimed jobs in (``provider.daemon.best_paying_first``).

Price a task first, as before; ties (a group's shards all tie) in an order of each provider's own, so
that providers spread over the shards instead of all racing for the oldest (one claim lands, the rest
revert or find it taken, and try again a poll later).
"""

from __future__ import annotations

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import dev_account
from provider.daemon import best_paying_first
from provider.journal import JobRecord, Stage


def _record(job_id: int, price_wei: int, num_tasks: int) -> JobRecord:
    return JobRecord(job_id=job_id, stage=Stage.SEEN, price_wei=str(price_wei), num_tasks=num_tasks)


def test_equal_shards_are_taken_in_different_orders_by_different_providers() -> None:
    shards = [_record(job_id, 6 * WEI, 6) for job_id in range(10, 26)]
    firsts = []
    for index in range(1, 9):
        order = [record.job_id for record in sorted(shards, key=best_paying_first(dev_account(index).address))]
        assert sorted(order) == list(range(10, 26))
        assert order == [record.job_id for record in sorted(reversed(shards),
                                                              key=best_paying_first(dev_account(index).address))]
        firsts.append(order[0])
    assert len(set(firsts)) >= 5, firsts  # eight providers: not all on one shard (ties by age would give 1)


def test_price_a_task_still_comes_first_and_dust_last() -> None:
    key = best_paying_first(dev_account(2).address)
    rich, fair, dust = _record(3, 10 * WEI, 5), _record(1, 6 * WEI, 6), _record(2, 1, 1_000)
    assert sorted([dust, fair, rich], key=key) == [rich, fair, dust]
