"""Job groups: one big job cut into shards, posted in one transaction, merged back into one verified result.

The chain knows a group as its ``GroupPosted`` events; each shard is an ordinary job there (claimed,
audited, challenged and settled on its own). This package is the requester's side:

- ``plan``: how the inputs are cut, and the limits a group is refused on before anything moves;
- ``post``: one model upload, one check, one approval, one ``postJobGroup``; re-posts into a group;
- ``view``: which job holds each shard now and how far it got;
- ``merge``: each shard's outputs checked against its root, put back in input order;
- ``retry``: failed shards re-posted within a budget;
- ``requests``: all of it as ``Client.groups``.
"""

from marketplace.groups.merge import GroupIncompleteError, MergedResult
from marketplace.groups.plan import ShardPlanError, ShardSlice, plan_shards
from marketplace.groups.post import GroupDraft, GroupPosting
from marketplace.groups.requests import GroupRequests, GroupTimeoutError
from marketplace.groups.retry import Retrier, RetryRound
from marketplace.groups.view import GroupView, ShardView

__all__ = [
    "GroupDraft",
    "GroupIncompleteError",
    "GroupPosting",
    "GroupRequests",
    "GroupTimeoutError",
    "GroupView",
    "MergedResult",
    "Retrier",
    "RetryRound",
    "ShardPlanError",
    "ShardSlice",
    "ShardView",
    "plan_shards",
]
