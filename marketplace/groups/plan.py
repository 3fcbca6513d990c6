"""How a big job is cut into a group's shards, and the limits a group is refused on before anything moves.

The cut is deterministic (the same inputs and options always give the same shards): ``--shard-tasks N``
gives shards of N tasks and a shorter last one; ``--shards K`` gives K shards whose sizes differ by at
most one, the larger first. The group's price is split in proportion to the tasks, the remainder to the
first shards, so the shards' prices add up to exactly the price asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.job_limits import MAX_GROUP_SHARDS, MAX_TASKS
from marketplace.job_views import RequestRefusedError

# postJobGroup's gas, from ``scripts/bench_gas.py`` (119,344 for one shard, 42,039 a shard more in a group
# of 64) with a margin: what the group is checked against the block gas limit with, before it is sent.
GROUP_BASE_GAS = 100_000
GAS_PER_SHARD = 50_000


class ShardPlanError(RequestRefusedError):
    """The group cannot be cut or posted as asked; the message names the limit. Nothing was uploaded or spent."""


@dataclass(frozen=True)
class ShardSlice:
    """One shard's place in the whole job: inputs ``first_task`` up to (not including) ``end``, and its price."""

    index: int
    count: int
    first_task: int
    num_tasks: int
    price_wei: int

    @property
    def end(self) -> int:
        return self.first_task + self.num_tasks


def plan_shards(total: int, price_wei: int, *, shard_tasks: int | None = None,
                shards: int | None = None) -> list[ShardSlice]:
    """The shards of a job of ``total`` tasks priced ``price_wei`` in all; ``ShardPlanError`` naming the limit."""
    if (shard_tasks is None) == (shards is None):
        raise ShardPlanError("give one of --shard-tasks N (tasks a shard) or --shards K (how many shards)")
    if total < 1:
        raise ShardPlanError("the job has no inputs: there is nothing to shard")
    if shard_tasks is not None:
        if shard_tasks < 1:
            raise ShardPlanError(f"--shard-tasks {shard_tasks}: a shard needs at least 1 task")
        if shard_tasks > MAX_TASKS:
            raise ShardPlanError(f"--shard-tasks {shard_tasks}: a shard is a job, of at most {MAX_TASKS:,} tasks")
        sizes = [shard_tasks] * (total // shard_tasks) + ([total % shard_tasks] if total % shard_tasks else [])
    else:
        assert shards is not None
        if shards < 1:
            raise ShardPlanError(f"--shards {shards}: a group needs at least 1 shard")
        if shards > total:
            raise ShardPlanError(f"--shards {shards}: more shards than the {total} tasks (a shard needs at least "
                                 "1 task)")
        size, extra = divmod(total, shards)
        sizes = [size + 1] * extra + [size] * (shards - extra)
        if sizes[0] > MAX_TASKS:
            raise ShardPlanError(f"--shards {shards}: shards of {sizes[0]:,} tasks are over the {MAX_TASKS:,} tasks "
                                 f"of a job: use at least {-(-total // MAX_TASKS)} shards")
    if len(sizes) > MAX_GROUP_SHARDS:
        raise ShardPlanError(f"{len(sizes)} shards are over the {MAX_GROUP_SHARDS} one postJobGroup posts (the "
                             f"contract's MAX_GROUP_SHARDS, which bounds its gas): use --shard-tasks "
                             f"{-(-total // MAX_GROUP_SHARDS)} or more")
    if price_wei < 0:
        raise ShardPlanError(f"--price {price_wei} wei: a price cannot be negative")
    prices = [price_wei * size // total for size in sizes]
    for index in range(price_wei - sum(prices)):  # the rounding's remainder: at most one wei a shard
        prices[index % len(prices)] += 1
    slices, first = [], 0
    for index, (size, price) in enumerate(zip(sizes, prices, strict=True)):
        slices.append(ShardSlice(index, len(sizes), first, size, price))
        first += size
    return slices


def group_gas(shards: int) -> int:
    """About what ``postJobGroup`` of ``shards`` costs, with a margin."""
    return GROUP_BASE_GAS + GAS_PER_SHARD * shards


def check_gas(shards: int, block_gas_limit: int) -> None:
    """``ShardPlanError`` when a group of ``shards`` would not fit one transaction on this chain."""
    needed = group_gas(shards)
    if needed > block_gas_limit:
        most = max(0, (block_gas_limit - GROUP_BASE_GAS) // GAS_PER_SHARD)
        raise ShardPlanError(f"{shards} shards need about {needed:,} gas, over this chain's block gas limit of "
                             f"{block_gas_limit:,}: at most {most} shards fit one transaction here")
