"""The task types and the bounds of a job, without the machinery that enforces them.

``webi job post`` names these in its options and help, and typer reads a command's signature when
the CLI starts: kept here, with nothing but the standard library, they cost nothing to import. The
modules that enforce them re-export them where they always were: ``marketplace.jobspec`` (the
spec's types and sizes), ``marketplace.protocol`` (the contract's sample limit) and
``marketplace.preflight`` (the contract's windows).
"""

from __future__ import annotations

import enum

# The job spec (``marketplace.jobspec``).
MAX_TASKS = 100_000
MAX_INPUT_CHARS = 100_000
MAX_NEW_TOKENS = 1_024
# ``JobMarket.MAX_GROUP_SHARDS``: the most shards one ``postJobGroup`` posts (its loop's gas stays bounded).
MAX_GROUP_SHARDS = 256
# ``JobMarket.MAX_SAMPLE_TASKS``: the most tasks one audit re-executes.
MAX_SAMPLE_TASKS = 64
# ``JobMarket.MIN_EXEC_WINDOW`` and ``MAX_EXEC_WINDOW`` (contracts/src/MarketBase.sol).
MIN_EXEC_WINDOW_S = 60
MAX_EXEC_WINDOW_S = 30 * 86_400
# The chain only asks that the claim deadline be ahead when the post is mined; a minute at least gives a
# provider's poll the time to see the job before it closes.
MIN_CLAIM_WINDOW_S = 60


class TaskType(enum.StrEnum):
    EMBED = "embed"
    GENERATE = "generate"
    CLASSIFY = "classify"
    SUMMARIZE = "summarize"
