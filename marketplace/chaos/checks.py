"""What must hold after a chaos run, read from the chain and the node's database; each breach a ``Violation``.

- ``webi audit`` is clean, with the node's indexer database checked against the chain (``Auditor``'s
  ``database``: every job, stake, account and ledger row the replay vouches for);
- every posted job exists and ended FINALIZED: every party is honest, so a job cancelled, rejected
  or still live at the deadline is lost or stuck;
- no job was claimed twice (a second ``JobClaimed`` needs a ``ClaimExpired`` or ``ClaimReleased``
  before it) nor settled twice;
- nobody was slashed, no claim expired and no verifier missed its window: every party is honest, and
  a fault that lasts seconds must never cost one of them its stake or its work.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine

from marketplace.audit import Auditor
from marketplace.chain.deployment import Protocol
from marketplace.history.events import fetch_events
from marketplace.indexer.indexer import decoder_for, first_block
from marketplace.protocol import JobState


@dataclass(frozen=True)
class Violation:
    run: int
    check: str  # audit, job-lost, job-stuck, double-claim, double-settle, slashed, component-died
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"run": self.run, "check": self.check, "detail": self.detail}


def check_run(run: int, protocol: Protocol, database: Engine, jobs: dict[int, str],
              states: dict[int, JobState | None]) -> list[Violation]:
    """The violations of run ``run``; ``jobs`` maps each posted job to what it was (for the report), ``states``
    to the state the chain gives it now (None: the chain does not know it)."""
    found: list[Violation] = []
    for job_id, what in sorted(jobs.items()):
        state = states.get(job_id)
        if state is None:
            found.append(Violation(run, "job-lost", f"job {job_id} ({what}) is not on the chain"))
        elif state != JobState.FINALIZED:
            found.append(Violation(run, "job-stuck", f"job {job_id} ({what}) ended {state.name.lower()}, "
                                                     "not finalized"))
    report = Auditor(protocol, database=database).run()
    found += [Violation(run, "audit", str(discrepancy)) for discrepancy in report.discrepancies]
    client = protocol.market.client
    events = fetch_events(client, decoder_for(protocol.deployment), first_block(client, protocol.deployment),
                          int(client.w3.eth.block_number))
    claims: Counter[int] = Counter()
    freed: Counter[int] = Counter()
    settled: Counter[int] = Counter()
    for event in events:
        job = int(event.args.get("jobId", -1))
        if event.name == "JobClaimed":
            claims[job] += 1
            if claims[job] > freed[job] + 1:
                found.append(Violation(run, "double-claim", f"job {job} claimed again in block {event.block_number} "
                                                            "with no expiry or release of the first claim"))
        elif event.name in ("ClaimExpired", "ClaimReleased"):
            freed[job] += 1
            if event.name == "ClaimExpired":
                found.append(Violation(run, "claim-expired", f"job {job}: the claim of {event.args['provider']} "
                                                             f"expired in block {event.block_number}"))
        elif event.name == "VerifierMissed":
            found.append(Violation(run, "verifier-missed", f"job {job}: verifier {event.args['verifier']} missed "
                                                           f"its window (block {event.block_number})"))
        elif event.name == "JobSettled":
            settled[job] += 1
            if settled[job] > 1:
                found.append(Violation(run, "double-settle", f"job {job} settled again in block "
                                                             f"{event.block_number}"))
        elif event.name == "Slashed":
            found.append(Violation(run, "slashed", f"an honest party was slashed in block {event.block_number}: "
                                                   f"{dict(event.args)}"))
    return found
