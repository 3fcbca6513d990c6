"""A job group's shards for the web app: the checked whole job cut as ``webi job post --shards K`` cuts it.

The page uploads the whole job's inputs once (``/v1/uploads/inputs``) and asks for K shards; the node cuts
them with ``marketplace.groups.plan`` (the CLI's cut: sizes within one task of each other, the price split in
proportion, the remainder to the first shards), stores each shard's inputs manifest and spec (with its
``shard`` section), and answers with what the page needs to post them with ``postJobGroup``. The page checks
each spec's bytes against its CID and the cut's totals against what it asked for before the wallet pays.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from marketplace.groups.plan import plan_shards
from marketplace.jobspec import JobSpec, Shard, inputs_manifest
from marketplace.storage.local import LocalStore


class ShardSpecBody(BaseModel):
    index: int
    first_task: int
    num_tasks: int
    price_wei: str = Field(description="this shard's share of the group's price, in wei")
    inputs: str = Field(description="CID of the shard's own inputs manifest")
    spec_cid: str = Field(description="CID of the shard's spec: one raw block of its bytes")


class GroupBody(BaseModel):
    total: int = Field(description="tasks in the whole job")
    shards: list[ShardSpecBody]


def shard_specs(store: LocalStore, whole: JobSpec, texts: list[str], shards: int, price_wei: int) -> GroupBody:
    """Cuts ``whole`` (its inputs ``texts``) into ``shards`` shards priced ``price_wei`` in all, stored in ``store``;
    ``ShardPlanError`` naming the limit when it cannot be cut so."""
    pieces = plan_shards(len(texts), price_wei, shards=shards)
    made = []
    for piece in pieces:
        inputs = str(store.add_bytes(inputs_manifest(texts[piece.first_task:piece.end])).cid)
        spec = whole.model_copy(update={
            "inputs": inputs, "num_tasks": piece.num_tasks,
            "shard": Shard(index=piece.index, count=piece.count, first_task=piece.first_task, total=len(texts))})
        spec = JobSpec.model_validate(spec.model_dump())  # validated again: the shard must fit the whole job
        made.append(ShardSpecBody(index=piece.index, first_task=piece.first_task, num_tasks=piece.num_tasks,
                                  price_wei=str(piece.price_wei), inputs=inputs,
                                  spec_cid=str(store.add_bytes(spec.to_bytes()).cid)))
    return GroupBody(total=len(texts), shards=made)
