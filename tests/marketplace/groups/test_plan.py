"""How a job is cut into shards, and the limits refused before anything moves."""

from __future__ import annotations

import pytest

from marketplace.groups.plan import ShardPlanError, check_gas, group_gas, plan_shards
from marketplace.job_limits import MAX_GROUP_SHARDS, MAX_TASKS


def test_shard_tasks_cut_full_shards_and_a_shorter_last_one_whose_prices_add_up() -> None:
    slices = plan_shards(10, 1_000_003, shard_tasks=4)
    assert [(s.index, s.first_task, s.num_tasks) for s in slices] == [(0, 0, 4), (1, 4, 4), (2, 8, 2)]
    assert {s.count for s in slices} == {3}
    assert sum(s.price_wei for s in slices) == 1_000_003  # not a wei lost to rounding
    assert [s.price_wei for s in slices] == [400_002, 400_001, 200_000]


def test_shards_cut_sizes_that_differ_by_one_at_most_the_larger_first() -> None:
    slices = plan_shards(10, 10, shards=4)
    assert [s.num_tasks for s in slices] == [3, 3, 2, 2]
    assert [s.first_task for s in slices] == [0, 3, 6, 8]
    assert slices[-1].end == 10


@pytest.mark.parametrize(("total", "options", "says"), [
    (10, {"shard_tasks": 0}, "--shard-tasks 0: a shard needs at least 1 task"),
    (10, {"shards": 11}, "--shards 11: more shards than the 10 tasks"),
    (10, {"shards": 0}, "--shards 0: a group needs at least 1 shard"),
    (10, {}, "give one of --shard-tasks N"),
    (10, {"shards": 2, "shard_tasks": 5}, "give one of --shard-tasks N"),
    (MAX_GROUP_SHARDS + 1, {"shard_tasks": 1}, f"{MAX_GROUP_SHARDS + 1} shards are over the {MAX_GROUP_SHARDS} "
                                               "one postJobGroup posts (the contract's MAX_GROUP_SHARDS"),
    (10, {"shard_tasks": MAX_TASKS + 1}, f"a shard is a job, of at most {MAX_TASKS:,} tasks"),
    (3 * MAX_TASKS, {"shards": 2}, "use at least 3 shards"),
])
def test_a_cut_that_cannot_be_posted_is_refused_naming_the_limit(total: int, options: dict[str, int],
                                                                  says: str) -> None:
    with pytest.raises(ShardPlanError, match=None) as refused:
        plan_shards(total, 100, **options)
    assert says in str(refused.value)


def test_a_group_over_the_block_gas_limit_is_refused_saying_how_many_fit() -> None:
    check_gas(256, 30_000_000)  # anvil's limit holds the contract's most
    with pytest.raises(ShardPlanError) as refused:
        check_gas(64, 2_000_000)
    assert f"64 shards need about {group_gas(64):,} gas, over this chain's block gas limit of 2,000,000: at most 38 " \
           "shards fit one transaction here" == str(refused.value)
