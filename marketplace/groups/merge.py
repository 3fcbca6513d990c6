"""A group's merged result: each shard's outputs checked against its own on-chain root, put back in input order.

The merge trusts neither the store nor the shards' specs: each shard's outputs must rebuild the root
its provider committed (``Client.results``), and the shards must tile the whole job exactly
(``GroupView.problems``) before a single output is returned. A shard without results, or with results
its audit failed, stops the merge with the shard named: the caller re-posts it (``retry``) or waits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marketplace.errors import WebiError
from marketplace.groups.view import GroupView
from marketplace.job_standing import Standing, result_standing
from marketplace.protocol import JobState

if TYPE_CHECKING:
    from marketplace.client import Client


class GroupIncompleteError(WebiError):
    """The group has no whole result yet (a shard without results, failed, or missing); nothing was written."""


@dataclass(frozen=True)
class MergedResult:
    """The outputs in input order, and how far to trust them."""

    group_id: int
    outputs: list[dict[str, Any]]
    provisional: tuple[int, ...]  # shards whose audit or challenge window is still open
    rejected: tuple[int, ...] = ()  # shards written anyway (``force``)

    @property
    def final(self) -> bool:
        return not self.provisional and not self.rejected


def merge(client: Client, view: GroupView, *, force: bool = False,
          on_shard: Callable[[int, int], None] | None = None) -> MergedResult:
    """The merged outputs of ``view``; ``GroupIncompleteError`` naming the shards that stop it.

    ``force`` merges a shard whose audit failed (reported in ``rejected``); ``on_shard(done, count)`` sees
    each shard once its outputs are checked."""
    if view.problems:
        raise GroupIncompleteError(f"group {view.group_id} does not tile its job: " + "; ".join(view.problems))
    waiting = [f"shard {shard.index} (job {shard.job.job_id}, {shard.label(view.now)})" for shard in view.shards
               if shard.job.output_cid is None]
    if waiting:
        raise GroupIncompleteError(f"group {view.group_id}: {len(waiting)} of {view.count} shards have no results yet: "
                                   + ", ".join(waiting[:8]) + (" ..." if len(waiting) > 8 else "")
                                   + f" (`webi job status g{view.group_id} --watch --retry` re-posts failed ones)")
    outputs: list[dict[str, Any]] = []
    provisional, rejected = [], []
    for done, shard in enumerate(view.shards, start=1):
        standing = result_standing(client.protocol.market, shard.job)
        if standing.standing == Standing.REJECTED:
            if not force:
                raise GroupIncompleteError(f"group {view.group_id}: shard {shard.index} (job {shard.job.job_id}) "
                                           f"was rejected: {standing.refusal()}; re-post it (--retry) or --force")
            rejected.append(shard.index)
        elif shard.job.state != JobState.FINALIZED:
            provisional.append(shard.index)
        outputs += client.results_of(shard.job, force=True)  # refused above unless forced
        if on_shard is not None:
            on_shard(done, view.count)
    return MergedResult(view.group_id, outputs, tuple(provisional), tuple(rejected))
