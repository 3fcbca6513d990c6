"""A job group as the chain and the shards' specs show it: which job holds each shard now, and how far it got.

A group is its ``GroupPosted`` events (the first post and every re-post into it); each names a run of job
ids. A shard's place in the whole job is in its spec (``JobSpec.shard``). When a shard was re-posted, its
latest job is the one that counts; the earlier ones are its ``attempts``. The shards must tile the whole
job (indices ``0..count-1``, tasks ``0..total-1``, each once): what does not is listed in ``problems``,
and the merge refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marketplace.errors import ConfigError, WebiError
from marketplace.job_views import JobInfo
from marketplace.jobspec import JobSpec, Shard
from marketplace.protocol import JobState, Verdict

if TYPE_CHECKING:
    from marketplace.client import Client

# Where a shard's job ended without results: re-posting it is the way on (``marketplace.groups.retry``).
FAILED_STATES = frozenset({JobState.REJECTED, JobState.CANCELLED})


@dataclass(frozen=True)
class ShardView:
    """One shard: its place, the job that holds it now, and the jobs that held it before."""

    index: int
    first_task: int
    num_tasks: int
    job: JobInfo
    attempts: tuple[int, ...] = ()  # earlier job ids of this shard, oldest first
    claim_by: int = 0

    @property
    def verified(self) -> bool:
        """Its outputs passed their audit (final, or provisional while the challenge window runs)."""
        return self.job.state == JobState.FINALIZED or (
            self.job.state in (JobState.AUDITED, JobState.CHALLENGED) and self.job.verdict == Verdict.PASS)

    def expired(self, now: int) -> bool:
        """Open past its claim window: nobody took it, and nobody can now."""
        return self.job.state == JobState.OPEN and now > self.claim_by

    def failed(self, now: int) -> bool:
        """Ended (or stuck) without results the requester can use: a re-post is the way on."""
        return self.job.state in FAILED_STATES or self.expired(now)

    def label(self, now: int) -> str:
        if self.expired(now):
            return "expired"
        if self.job.state == JobState.AUDITED:
            return f"audited ({self.job.verdict.name.lower()})"
        return self.job.state.name.lower()

    def as_dict(self, now: int) -> dict[str, Any]:
        return {"index": self.index, "first_task": self.first_task, "num_tasks": self.num_tasks,
                "job_id": self.job.job_id, "state": self.label(now), "provider": self.job.provider,
                "verifier": self.job.verifier,
                "verdict": None if self.job.verdict == Verdict.NONE else self.job.verdict.name.lower(),
                "output_cid": self.job.output_cid, "result_root": self.job.result_root,
                "verified": self.verified, "attempts": list(self.attempts)}


@dataclass(frozen=True)
class GroupView:
    """A group now: its shards by index (the job that holds each), and what does not add up."""

    group_id: int
    requester: str
    count: int
    total: int
    shards: tuple[ShardView, ...]
    jobs: tuple[int, ...]  # every job ever posted into the group, in posting order
    now: int
    problems: tuple[str, ...] = ()

    @property
    def tasks_verified(self) -> int:
        return sum(shard.num_tasks for shard in self.shards if shard.verified)

    @property
    def finalized(self) -> int:
        return sum(1 for shard in self.shards if shard.job.state == JobState.FINALIZED)

    @property
    def claimed(self) -> int:
        """Shards a provider holds or held (claimed or further, not counting failures)."""
        return sum(1 for shard in self.shards if shard.job.provider is not None and not shard.failed(self.now))

    @property
    def providers(self) -> dict[str, int]:
        """How many shards each provider holds or completed."""
        spread: dict[str, int] = {}
        for shard in self.shards:
            if shard.job.provider is not None and not shard.failed(self.now):
                spread[shard.job.provider] = spread.get(shard.job.provider, 0) + 1
        return spread

    @property
    def failed(self) -> list[ShardView]:
        return [shard for shard in self.shards if shard.failed(self.now)]

    @property
    def done(self) -> bool:
        """Every shard finalized (paid): the merged result is final."""
        return not self.problems and self.finalized == self.count

    @property
    def settled(self) -> bool:
        """Nothing moves without someone acting: every shard finalized or failed."""
        return all(shard.job.state == JobState.FINALIZED or shard.failed(self.now) for shard in self.shards)

    def as_dict(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "requester": self.requester, "shards": self.count, "total_tasks": self.total,
                "tasks_verified": self.tasks_verified, "finalized": self.finalized, "claimed": self.claimed,
                "providers": self.providers, "failed": [shard.index for shard in self.failed], "done": self.done,
                "jobs": list(self.jobs), "problems": list(self.problems),
                "shard_states": [shard.as_dict(self.now) for shard in self.shards]}


@dataclass
class GroupReader:
    """Reads groups through a ``Client``; a shard's spec is read once (it never changes)."""

    client: Client
    _specs: dict[int, JobSpec] = field(default_factory=dict, repr=False)
    _posts: dict[int, list[tuple[int, int]]] = field(default_factory=dict, repr=False)  # (first job, shards)
    _scanned: dict[int, int] = field(default_factory=dict, repr=False)  # the block each group was read to

    def job_ids(self, group_id: int) -> tuple[str, list[int]]:
        """The group's requester and every job posted into it, in posting order; ``ConfigError`` if unknown."""
        market = self.client.protocol.market
        head = market.client.w3.eth.block_number
        start = self._scanned.get(group_id, market.from_block - 1) + 1
        if start <= head:
            events = market.contract.events.GroupPosted().get_logs(
                from_block=start, to_block=head, argument_filters={"groupId": group_id})
            for event in events:
                self._posts.setdefault(group_id, []).append(
                    (int(event["args"]["firstJobId"]), int(event["args"]["shards"])))
                self._remember_jobs(int(event["blockNumber"]), event["args"])
            self._scanned[group_id] = head
        posts = self._posts.get(group_id)
        if not posts:
            raise ConfigError(f"group {group_id} does not exist on this deployment (no GroupPosted event)")
        jobs = [job for first, shards in posts for job in range(first, first + shards)]
        return market.posted(jobs[0]).terms.requester, jobs

    def read(self, group_id: int) -> GroupView:
        requester, jobs = self.job_ids(group_id)
        market = self.client.protocol.market
        by_index: dict[int, list[tuple[int, Shard]]] = {}
        problems: list[str] = []
        for job_id in jobs:
            shard = self._spec(job_id).shard
            if shard is None:
                problems.append(f"job {job_id}'s spec has no shard section")
                continue
            by_index.setdefault(shard.index, []).append((job_id, shard))
        count, total = group_size(by_index, problems)
        shards = []
        for index in sorted(by_index):
            held = by_index[index]
            job_id, shard = held[-1]
            info = self.client.status(job_id)
            shards.append(ShardView(index, shard.first_task, info.num_tasks, info, tuple(j for j, _ in held[:-1]),
                                    market.posted(job_id).terms.claim_by))
        problems += tiling_problems(shards, count, total)
        return GroupView(group_id, requester, count, total, tuple(shards), tuple(jobs), market.client.timestamp(),
                         tuple(problems))

    def _spec(self, job_id: int) -> JobSpec:
        if job_id not in self._specs:
            try:
                self._specs[job_id] = self.client.spec(job_id)
            except WebiError as error:
                raise ConfigError(f"job {job_id}'s spec cannot be read: {error}") from None
        return self._specs[job_id]

    def _remember_jobs(self, block: int, group: Any) -> None:
        """The shards' ``JobPosted`` events, read in one call (they share the group's transaction's block)."""
        market = self.client.protocol.market
        first, shards = int(group["firstJobId"]), int(group["shards"])
        for event in market.contract.events.JobPosted().get_logs(from_block=block, to_block=block):
            if first <= int(event["args"]["jobId"]) < first + shards:
                market.remember(event["args"])


def group_size(by_index: dict[int, list[tuple[int, Shard]]], problems: list[str]) -> tuple[int, int]:
    """The group's shard count and total tasks as its shards' sections say; a disagreement joins ``problems``."""
    counts = {shard.count for held in by_index.values() for _, shard in held}
    totals = {shard.total for held in by_index.values() for _, shard in held}
    if len(counts) > 1 or len(totals) > 1:
        problems.append(f"the shards disagree on the group's size: counts {sorted(counts)}, totals {sorted(totals)}")
    return max(counts, default=0), max(totals, default=0)


def tiling_problems(shards: Sequence[ShardView], count: int, total: int) -> list[str]:
    """Why the shards' current jobs do not cover tasks ``0..total-1`` once each, in index order."""
    problems = []
    indices = [shard.index for shard in shards]
    missing = sorted(set(range(count)) - set(indices))
    if missing:
        problems.append(f"shards {missing} were never posted")
    expected = 0
    for shard in shards:
        if shard.first_task != expected:
            problems.append(f"shard {shard.index} starts at task {shard.first_task}, not {expected}")
        expected = shard.first_task + shard.num_tasks
    if shards and expected != total:
        problems.append(f"the shards end at task {expected}, not at the job's {total}")
    return problems
