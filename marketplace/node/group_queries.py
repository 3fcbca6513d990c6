"""Job groups as the indexer's tables hold them: each shard's job, its state and milestones, and the progress.

A group is its ``GroupPosted`` events. The contract makes a new group's id its first job's id and lets only
that job's requester re-post into it, so a group is found from two indexed columns (the events' account,
which is the requester, and the block of its first job) without reading every group. A shard's place in
the whole job is in its spec, which is read from the node's store; a spec the store lacks leaves its job
unplaced, named in ``problems`` (``marketplace.groups.view``'s rules, over indexed rows instead of calls).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlmodel import col

from marketplace.groups.view import GroupView, ShardView, group_size, tiling_problems
from marketplace.indexer.models import BlockRow, EventRow, JobRow, fits_integer
from marketplace.job_views import JobInfo
from marketplace.jobspec import Shard
from marketplace.node.ledger import block_times
from marketplace.node.queries import Queries, confidentiality
from marketplace.protocol import JobState, Verdict

# A shard's milestones, by the event that marks each (the last one wins: a claim given back and taken again).
MILESTONES = {
    "JobPosted": "posted",
    "JobClaimed": "claimed",
    "ResultSubmitted": "submitted",
    "VerdictSubmitted": "audited",
    "Challenged": "challenged",
    "ChallengeResolved": "resolved",
    "JobSettled": "settled",
    "JobCancelled": "cancelled",
}
# Where a verdict of pass arrives: the first of these after which a shard counts as verified.
_PASSING = frozenset({"VerdictSubmitted", "ChallengeResolved", "JobSettled"})


@dataclass(frozen=True)
class _Milestones:
    """When a job reached each milestone, and when its tasks first counted as verified."""

    times: dict[str, int]
    passed_at: int | None  # the first verdict of pass (the audit's, a panel's or the settlement's)
    settled_at: int | None


class GroupQueries:
    """Reads groups for the API and the dashboard; ``queries`` reads the specs from the node's store."""

    def __init__(self, engine: Engine, queries: Queries) -> None:
        self.engine = engine
        self.queries = queries

    def group_of(self, job_id: int) -> int | None:
        """The group ``job_id`` was posted in, if any: the ``GroupPosted`` of its posting transaction whose
        shard range holds it (a contract wallet may post several groups, or a job and a group, in one transaction)."""
        if not fits_integer(job_id):
            return None
        with Session(self.engine) as session:
            posted = session.execute(
                select(EventRow).where(col(EventRow.name) == "JobPosted", col(EventRow.job_id) == job_id)
            ).scalars().first()
            if posted is None:
                return None
            groups = session.execute(
                select(EventRow).where(col(EventRow.name) == "GroupPosted",
                                       col(EventRow.block_number) == posted.block_number,
                                       col(EventRow.tx_hash) == posted.tx_hash)
            ).scalars()
            for group in groups:
                args = json.loads(group.args)
                if int(args["firstJobId"]) <= job_id < int(args["firstJobId"]) + int(args["shards"]):
                    return int(args["groupId"])
        return None

    def group(self, group_id: int) -> dict[str, Any] | None:
        """The group as ``GroupView.as_dict`` has it, with each shard's milestones and the progress over time;
        ``None`` when no group has this id."""
        if not fits_integer(group_id):
            return None
        with Session(self.engine) as session:
            first = session.get(JobRow, group_id)
            if first is None:
                return None
            posts = [
                args for args in (json.loads(row.args) for row in session.execute(
                    select(EventRow)
                    .where(col(EventRow.name) == "GroupPosted", col(EventRow.account) == first.requester,
                           col(EventRow.block_number) >= first.posted_block)
                    .order_by(EventRow.block_number, EventRow.log_index)  # type: ignore[arg-type]
                ).scalars())
                if int(args["groupId"]) == group_id
            ]
            if not posts:
                return None
            job_ids = [job for args in posts
                       for job in range(int(args["firstJobId"]), int(args["firstJobId"]) + int(args["shards"]))]
            rows = {row.job_id: row for row in session.execute(
                select(JobRow).where(JobRow.job_id.in_(job_ids))).scalars()}  # type: ignore[attr-defined]
            events = list(session.execute(
                select(EventRow)
                .where(EventRow.job_id.in_(job_ids), EventRow.name.in_(list(MILESTONES)))  # type: ignore[union-attr,attr-defined]
                .order_by(EventRow.block_number, EventRow.log_index)  # type: ignore[arg-type]
            ).scalars())
            times = block_times(session, {event.block_number for event in events})
            latest = session.execute(
                select(col(BlockRow.timestamp)).order_by(col(BlockRow.number).desc()).limit(1)).first()
        milestones = {job: _milestones([e for e in events if e.job_id == job], times) for job in job_ids}
        view = self._view(group_id, first.requester, job_ids, rows, int(latest[0]) if latest else 0)
        return _describe(view, rows, milestones)

    def _view(self, group_id: int, requester: str, job_ids: list[int], rows: dict[int, JobRow], now: int) -> GroupView:
        by_index: dict[int, list[tuple[int, Shard]]] = {}
        problems: list[str] = []
        for job_id in job_ids:
            shard, problem = self._shard(job_id, rows.get(job_id))
            if shard is None:
                problems.append(problem)
            else:
                by_index.setdefault(shard.index, []).append((job_id, shard))
        count, total = group_size(by_index, problems)
        shards = []
        for index in sorted(by_index):
            job_id, shard = by_index[index][-1]
            row = rows[job_id]
            shards.append(ShardView(index, shard.first_task, row.num_tasks, _info(row),
                                    tuple(job for job, _ in by_index[index][:-1]),
                                    int(json.loads(row.terms)["claimBy"])))
        problems += tiling_problems(shards, count, total)
        return GroupView(group_id, requester, count, total, tuple(shards), tuple(job_ids), now, tuple(problems))

    def _shard(self, job_id: int, row: JobRow | None) -> tuple[Shard | None, str]:
        """The job's shard section, or why it cannot be placed."""
        if row is None:
            return None, f"job {job_id} is not indexed yet"
        spec = self.queries.document(row.spec_cid)
        if spec is None or "error" in spec:
            reason = spec["error"] if spec else "this node has no store"
            return None, f"job {job_id}'s spec {row.spec_cid} cannot be read here ({reason})"
        if spec.get("shard") is None:
            return None, f"job {job_id}'s spec has no shard section"
        try:
            return Shard.model_validate(spec["shard"]), ""
        except ValidationError as error:
            return None, f"job {job_id}'s shard section is malformed: {error.errors()[0]['msg']}"


def _info(row: JobRow) -> JobInfo:
    """The job as ``Client.status`` would give it, from its indexed row."""
    return JobInfo(row.job_id, JobState[row.state.upper()], row.requester, row.provider, row.spec_cid, int(row.price),
                   row.num_tasks, row.output_cid, row.result_root, int(row.audit_fee), row.verifier,
                   Verdict[row.verdict.upper()] if row.verdict else Verdict.NONE)


def _milestones(events: list[EventRow], times: dict[int, int]) -> _Milestones:
    marks: dict[str, int] = {}
    passed_at = settled_at = None
    for event in events:
        when = times.get(event.block_number, 0)
        marks[MILESTONES[event.name]] = when
        if event.name in _PASSING and passed_at is None and int(json.loads(event.args)["verdict"]) == Verdict.PASS:
            passed_at = when
        if event.name == "JobSettled":
            settled_at = when
    return _Milestones(marks, passed_at, settled_at)


def _describe(view: GroupView, rows: dict[int, JobRow], milestones: dict[int, _Milestones]) -> dict[str, Any]:
    """``view.as_dict()`` with what the page draws: milestones, earlier attempts' states, tasks verified over time."""
    detail = view.as_dict()
    progress: list[tuple[int, int, ShardView]] = []
    for shard, entry in zip(view.shards, detail["shard_states"], strict=True):
        marks = milestones[shard.job.job_id]
        entry["milestones"] = marks.times
        entry["confidential"] = confidentiality(rows[shard.job.job_id])
        entry["attempt_states"] = [{"job_id": job, "state": rows[job].state} for job in shard.attempts if job in rows]
        verified_at = (marks.passed_at or marks.settled_at) if shard.verified else None
        entry["verified_at"] = verified_at
        if verified_at is not None:
            progress.append((verified_at, shard.num_tasks, shard))
    verified, detail["progress"] = 0, []
    for when, tasks, shard in sorted(progress, key=lambda item: (item[0], item[2].index)):
        verified += tasks
        detail["progress"].append({"time": when, "shard": shard.index, "job_id": shard.job.job_id,
                                   "tasks_verified": verified})
    posted = [marks.times["posted"] for marks in milestones.values() if "posted" in marks.times]
    detail["posted_at"] = min(posted, default=None)
    detail["now"] = view.now
    detail["provider_count"] = len(view.providers)
    detail["results"] = f"/v1/groups/{view.group_id}/results"
    detail["page"] = f"/groups/{view.group_id}"
    return detail
