"""Posting a job group: one model upload, one check, one approval and one transaction for every shard.

Everything a shard could be refused for is checked before anything is uploaded or spent: the cut
(``plan``), the gas of one transaction against the block gas limit, each distinct shard size against the
contract's bounds, the model (once), the providers, and the wallet against the sum of the escrows. The
model is uploaded once and every shard's spec names it, so providers fetch and load it once too.

A re-post (``repost``) puts failed shards back into their group under the terms they were first posted
with (the fee and collateral bounds are the first post's: a change of terms since makes it revert instead
of costing more), with a fresh claim window; each keeps its spec, hence its CID and its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from marketplace.errors import JobSpecError
from marketplace.groups.plan import ShardPlanError, ShardSlice, check_gas, group_gas, plan_shards
from marketplace.job_inputs import allowlist_of, read_inputs
from marketplace.job_limits import MAX_GROUP_SHARDS, MAX_TASKS
from marketplace.job_views import RequestRefusedError
from marketplace.jobspec import JobSpec, Shard, TaskType, inputs_manifest, parse_parameters
from marketplace.preflight import JobDraft, Preflight, PreflightError, preflight
from marketplace.protocol import ZERO_HASH, JobRequest
from marketplace.storage.importer import Progress

if TYPE_CHECKING:
    from marketplace.client import Client
    from marketplace.groups.view import ShardView


@dataclass(frozen=True)
class GroupPosting:
    """A posted group: its id, its shards' job ids in shard order, and what it escrowed in all."""

    group_id: int
    job_ids: tuple[int, ...]
    escrow_wei: int
    shards: tuple[ShardSlice, ...]


@dataclass(frozen=True)
class GroupDraft:
    """What the requester asks for, before anything is uploaded: the whole job and how to cut it."""

    task: TaskType | str
    model: str | Path
    inputs: list[str] | Path
    price_wei: int  # for the whole job, split over the shards by tasks
    shard_tasks: int | None = None
    shards: int | None = None
    sample_tasks: int = 4  # a shard's: each is audited on its own
    claim_window_s: int = 3_600
    exec_window_s: int = 1_800
    parameters: dict[str, int] | None = None
    min_provider_stake: int = 0
    allowlist: list[str] | None = None
    max_protocol_fee_bps: int | None = None
    max_verifier_fee_bps: int | None = None
    min_collateral_bps: int | None = None


def post_group(client: Client, draft: GroupDraft, *, progress: Progress | None = None, check_providers: bool = True,
               on_checked: Callable[[Preflight], None] | None = None) -> GroupPosting:
    """Cuts, checks, uploads and posts ``draft`` as one group; ``PreflightError`` (or ``ShardPlanError``) names
    every problem before anything is uploaded or spent."""
    account = client.signer()
    texts = read_inputs(draft.inputs, MAX_GROUP_SHARDS * MAX_TASKS)
    slices = plan_shards(len(texts), draft.price_wei, shard_tasks=draft.shard_tasks, shards=draft.shards)
    market, token = client.protocol.market, client.protocol.token
    check_gas(len(slices), int(market.client.w3.eth.get_block("latest")["gasLimit"]))
    members = allowlist_of(draft.allowlist) if draft.allowlist else None
    try:
        chosen = parse_parameters(dict(draft.parameters or {}))
    except JobSpecError as error:
        raise PreflightError([str(error)]) from None
    largest = max(slices, key=lambda s: (s.num_tasks, s.price_wei))
    job = JobDraft(TaskType(draft.task), str(draft.model), largest.num_tasks, largest.price_wei, draft.sample_tasks,
                   draft.claim_window_s, draft.exec_window_s, chosen, draft.min_provider_stake,
                   members.accounts if members else (), draft.max_protocol_fee_bps, draft.max_verifier_fee_bps,
                   draft.min_collateral_bps)
    problems, quotes = [], {}
    for size, price in sorted({(s.num_tasks, s.price_wei) for s in slices}):
        try:
            quotes[size, price] = client.quote(price, size, draft.sample_tasks,
                                               max_protocol_fee_bps=draft.max_protocol_fee_bps,
                                               max_verifier_fee_bps=draft.max_verifier_fee_bps,
                                               min_collateral_bps=draft.min_collateral_bps)
        except RequestRefusedError as error:
            problems.append(f"a shard of {size:,} tasks priced {price} wei: {error}")
    escrows = [quotes[s.num_tasks, s.price_wei].escrow for s in slices] if not problems else []
    checked = preflight(client.protocol, client.store, job, account.address,
                        quote=quotes.get((largest.num_tasks, largest.price_wei)), check_providers=check_providers,
                        escrow=sum(escrows) if escrows else None, post_gas=group_gas(len(slices)))
    checked.problems[:0] = problems
    checked.raise_problems()
    if on_checked is not None:
        on_checked(checked)
    model_cid = client.upload_model(draft.model, progress)
    now = market.client.timestamp()
    quote = quotes[largest.num_tasks, largest.price_wei]
    requests = []
    for piece in slices:
        spec = JobSpec(task=job.task, model=model_cid, num_tasks=piece.num_tasks,
                       inputs=str(client.store.add_bytes(inputs_manifest(texts[piece.first_task:piece.end])).cid),
                       parameters=chosen, allowlist=job.allowlist,
                       shard=Shard(index=piece.index, count=piece.count, first_task=piece.first_task,
                                   total=len(texts)))
        spec_cid = str(client.store.add_bytes(spec.to_bytes()).cid)
        requests.append(JobRequest(
            spec_cid, piece.num_tasks, piece.price_wei, now + draft.claim_window_s, draft.exec_window_s,
            quotes[piece.num_tasks, piece.price_wei].sample_tasks, min_provider_stake=draft.min_provider_stake,
            allowlist_root=members.root if members else ZERO_HASH, max_protocol_fee_bps=quote.max_protocol_fee_bps,
            max_verifier_fee_bps=quote.max_verifier_fee_bps, min_collateral_bps=quote.min_collateral_bps))
    escrow = sum(escrows)
    if token.allowance(account.address, market.address) < escrow:  # postJobGroup has no permit form
        token.approve(account, market.address, escrow)
    group_id, job_ids = market.post_job_group(account, requests)
    return GroupPosting(group_id, tuple(job_ids), escrow, tuple(slices))


def repost(client: Client, group_id: int, shards: Sequence[ShardView], *, claim_window_s: int = 3_600) -> list[int]:
    """Re-posts ``shards`` (each's latest job failed) into ``group_id`` under their first terms; their new job
    ids. ``RequestRefusedError`` when the terms in force are worse than those, before anything is spent."""
    if not shards:
        return []
    account = client.signer()
    market, token = client.protocol.market, client.protocol.token
    check_gas(len(shards), int(market.client.w3.eth.get_block("latest")["gasLimit"]))
    now = market.client.timestamp()
    requests, escrow = [], 0
    for shard in shards:
        posted = market.posted(shard.job.job_id)
        terms = posted.terms
        quote = client.quote(terms.price, terms.num_tasks, terms.sample_tasks,
                             max_protocol_fee_bps=terms.protocol_fee_bps, max_verifier_fee_bps=terms.verifier_fee_bps,
                             min_collateral_bps=terms.collateral_bps)
        requests.append(JobRequest(
            posted.spec_cid, terms.num_tasks, terms.price, now + claim_window_s, terms.exec_window, terms.sample_tasks,
            min_provider_stake=terms.min_provider_stake, allowlist_root=terms.allowlist_root,
            max_protocol_fee_bps=terms.protocol_fee_bps, max_verifier_fee_bps=terms.verifier_fee_bps,
            min_collateral_bps=terms.collateral_bps))
        escrow += quote.escrow
    balance = token.balance_of(account.address)
    if balance < escrow:
        raise ShardPlanError(f"re-posting {len(shards)} shards escrows {escrow} wei and {account.address} holds "
                             f"{balance} wei (refunds are credits: `webi withdraw` first)")
    if token.allowance(account.address, market.address) < escrow:
        token.approve(account, market.address, escrow)
    _, job_ids = market.post_job_group(account, requests, group_id)
    return job_ids
