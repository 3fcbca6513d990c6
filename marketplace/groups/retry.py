"""``--retry``: failed shards re-posted into their group until every shard is done or the budget is spent.

A shard is re-posted when its latest job was rejected (its audit failed, for good), cancelled, or left open
past its claim window (cancelled first, which refunds it). A shard whose provider walked away (claimed, its
result deadline passed) is reclaimed first (``reclaimExpired``: the collateral slashed, the reward to the
requester), so that nobody else need come by: it is open again, for another provider, or to be re-posted.
Refunds come back as credits, so they are withdrawn before a re-post needs them. The budget caps the escrow
the re-posts pull in all (each re-post escrows its price and audit fee again; its refund, if it fails too,
comes back as credits): a shard that fails every time costs at most the budget, never an unbounded loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from marketplace.groups.post import repost
from marketplace.groups.view import GroupView, ShardView
from marketplace.protocol import JobState

if TYPE_CHECKING:
    from marketplace.client import Client


@dataclass(frozen=True)
class RetryRound:
    """What one round did: the shards re-posted (index → new job id), those left for want of budget."""

    reposted: dict[int, int]
    cancelled: tuple[int, ...] = ()  # expired open jobs cancelled (refunded) first
    over_budget: tuple[int, ...] = ()
    reclaimed: tuple[int, ...] = ()  # shards whose claim expired unsubmitted, reclaimed (open again)

    def line(self) -> str:
        parts = []
        if self.reclaimed:
            parts.append(f"reclaimed the abandoned claims of shards {list(self.reclaimed)} (open again)")
        if self.cancelled:
            parts.append(f"cancelled expired jobs {list(self.cancelled)}")
        if self.reposted:
            parts.append("re-posted " + ", ".join(f"shard {i} as job {j}" for i, j in sorted(self.reposted.items())))
        if self.over_budget:
            parts.append(f"shards {list(self.over_budget)} not re-posted: the retry budget is spent")
        return "; ".join(parts) or "nothing to re-post"


@dataclass
class Retrier:
    """Re-posts a group's failed shards, round after round, within ``budget_wei`` of escrow in all."""

    client: Client
    group_id: int
    budget_wei: int
    claim_window_s: int = 3_600
    spent_wei: int = 0
    rounds: list[RetryRound] = field(default_factory=list)

    def round(self, view: GroupView) -> RetryRound | None:
        """Reclaims abandoned claims, re-posts what failed in ``view`` (None when nothing needed doing)."""
        reclaimed = self._reclaim_abandoned(view)
        failed = view.failed
        if not failed:
            return RetryRound({}, reclaimed=reclaimed) if reclaimed else None
        cancelled = []
        for shard in failed:
            if shard.job.state == JobState.OPEN:  # expired: its escrow comes back once cancelled
                self.client.cancel(shard.job.job_id)
                cancelled.append(shard.index)
        chosen: list[ShardView] = []
        over: list[int] = []
        cost = 0
        for shard in failed:
            escrow = self.client.protocol.market.posted(shard.job.job_id).terms.escrow
            if self.spent_wei + cost + escrow > self.budget_wei:
                over.append(shard.index)
                continue
            chosen.append(shard)
            cost += escrow
        if chosen and self.client.protocol.token.balance_of(self.client.signer().address) < cost:
            self.client.withdraw()  # the failed shards' refunds are credits
        new_ids = repost(self.client, self.group_id, chosen, claim_window_s=self.claim_window_s)
        self.spent_wei += cost
        made = RetryRound(dict(zip((shard.index for shard in chosen), new_ids, strict=True)), tuple(cancelled),
                          tuple(over), reclaimed)
        self.rounds.append(made)
        return made

    def _reclaim_abandoned(self, view: GroupView) -> tuple[int, ...]:
        """The shards whose provider let the result deadline pass, reclaimed: without this, a walked-away claim
        would hold the group (neither failed nor settled) until a stranger reclaimed it for the reward."""
        market = self.client.protocol.market
        reclaimed = []
        for shard in view.shards:
            if shard.job.state == JobState.CLAIMED and view.now > market.get_job(shard.job.job_id).stamp:
                self.client.reclaim(shard.job.job_id)
                reclaimed.append(shard.index)
        return tuple(reclaimed)

    @property
    def exhausted(self) -> bool:
        """The last round left a shard for want of budget: the group cannot finish without more."""
        return bool(self.rounds and self.rounds[-1].over_budget)
