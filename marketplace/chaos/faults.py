"""The faults a chaos run injects, and when: drawn from a seeded generator, so a seed names a run's plan.

Kinds:
  kill-provider  SIGKILL to one provider daemon's process group, restarted after a pause
  kill-verifier  the same for the verifier daemon
  kill-node      the same for the marketplace node (indexer, store, REST API)
  rpc-outage     the RPC proxy refuses and drops every connection for ``outage_s`` seconds
  reorg          the chain's state is dumped, and some blocks later anvil is killed and started again
                 from that dump: every block since is gone and replaced (a deep reorg)

The kinds cycle through a shuffled order across the runs of one seed, so the first runs already
inject every kind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    KILL_PROVIDER = "kill-provider"
    KILL_VERIFIER = "kill-verifier"
    KILL_NODE = "kill-node"
    RPC_OUTAGE = "rpc-outage"
    REORG = "reorg"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    at_s: float  # seconds after the jobs are posted
    target: str = ""  # the component killed (a provider's key), where the kind names one
    pause_s: float = 0.0  # how long the process stays dead, the outage lasts, or blocks pass before the reorg

    def describe(self) -> str:
        what = f"kill {self.target}" if self.target else str(self.kind)
        return f"{what} at +{self.at_s:.1f} s ({self.pause_s:.1f} s)"


@dataclass(frozen=True)
class FaultPlan:
    seed: int
    faults_per_run: int = 3
    window_s: float = 40.0  # faults start within this many seconds of the posts
    outage_s: float = 30.0

    def run(self, index: int, providers: tuple[str, ...]) -> list[Fault]:
        """Run ``index``'s faults, in time order."""
        order = list(FaultKind)
        random.Random(self.seed).shuffle(order)
        chooser = random.Random(f"{self.seed}/{index}")
        faults = []
        for slot in range(self.faults_per_run):
            kind = order[(index * self.faults_per_run + slot) % len(order)]
            at = round(chooser.uniform(1.0, self.window_s), 1)
            if kind == FaultKind.RPC_OUTAGE:
                faults.append(Fault(kind, at, pause_s=self.outage_s))
            elif kind == FaultKind.REORG:
                faults.append(Fault(kind, at, pause_s=round(chooser.uniform(4.0, 12.0), 1)))
            else:
                target = chooser.choice(providers) if kind == FaultKind.KILL_PROVIDER else kind.removeprefix("kill-")
                faults.append(Fault(kind, at, target, round(chooser.uniform(0.5, 5.0), 1)))
        return sorted(faults, key=lambda fault: fault.at_s)
