"""Watchtower mode: re-check a share of other verifiers' verdicts, and challenge the wrong ones.

A verifier that passes without re-running the sample saves its compute and is caught only when a
wrong pass is challenged; watchtowers make that happen often enough to deter laziness (the
break-even rate in ``marketplace.economics``). With ``watch_share`` > 0, for every
``VerdictSubmitted`` by another verifier, on a job where we are no party, this service decides
whether to look: HMAC-SHA256 of our key over the chain, the market and the job, read as a number
in [0, 1), below ``watch_share`` (``watched``). Runs are reproducible, and nobody without our key
can tell which jobs we will look at, so a lazy verifier cannot skip the checks only on those.

A look re-checks the public sample exactly as a panel would, by the audit's own path and rule
(``verifier.recheck``: two references, inconclusive where they disagree), and stores an evidence
document (``webi-watch-evidence``, version 2, as an audit's). We challenge, within the verdict's
challenge window, only a conclusive contradiction: a pass (or inconclusive) of outputs that fail
by the rule, or a fail of outputs that pass. Our own inconclusive answer contradicts nothing (the
model is unstable: no one can tell who is right). The contract pulls the bond (``3 x auditFee``), so we approve
exactly that and first check that we are staked and can pay; an answer that does not rest on
what the provider committed (our store lacks the manifest and nothing was revealed, the inputs
are unusable) never risks the bond.
The panel decides; ``verifier.panels`` resolves our challenge, and the contract credits our bond
and reward at the resolution.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from eth_account.signers.local import LocalAccount
from sqlmodel import Field, SQLModel

from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import ContractError
from marketplace.journal import SqliteJournal
from marketplace.protocol import JobState, Verdict
from verifier.duty import EventDuty
from verifier.recheck import Rechecker

log = logging.getLogger(__name__)


class WatchStage(enum.StrEnum):
    PENDING = "pending"        # sampled for a look; not re-checked yet
    CHECKED = "checked"        # re-checked; our verdict and evidence journaled, the decision not acted on
    CHALLENGED = "challenged"  # our challenge is on-chain; a panel decides
    AGREED = "agreed"          # our re-check agrees with the verdict (or cannot contradict it); final
    RESOLVED = "resolved"      # our challenge ended (upheld, overturned or dismissed); final
    SKIPPED = "skipped"        # not looked at: not sampled, our own verdict, a party, unable to bond; final
    CLOSED = "closed"          # the challenge window closed, or the job moved on, before we acted; final


OPEN = (WatchStage.PENDING, WatchStage.CHECKED, WatchStage.CHALLENGED)


class WatchRecord(SQLModel, table=True):
    __tablename__ = "verifier_watch"

    job_id: int = Field(primary_key=True)
    stage: WatchStage = Field(index=True)
    verifier: str = ""
    first_verdict: int = 0  # the verdict watched (a ``Verdict``)
    our_verdict: int = 0
    conclusive: bool = False
    evidence_cid: str = ""
    challenge_tx: str = ""
    outcome: str = ""
    reason: str = ""
    attempts: int = 0
    retry_at: float = 0.0
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class WatchCursor(SQLModel, table=True):
    __tablename__ = "verifier_watch_cursor"

    name: str = Field(primary_key=True)
    block: int
    block_hash: str = ""  # of ``block`` when recorded: a reorg under the cursor shows as another hash


class WatchJournal(SqliteJournal[WatchRecord]):
    """The watchtower's journal in ``path``: one row per verdict seen, and the event cursor."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, WatchRecord, WatchCursor, "verdict_submitted")


def watch_draw(key: bytes, chain_id: int, market: str, job_id: int) -> float:
    """Our private, reproducible number in [0, 1) for ``job_id``: HMAC-SHA256 of the key."""
    message = b"webi-watch" + chain_id.to_bytes(32, "big") + bytes.fromhex(market.removeprefix("0x")) \
        + job_id.to_bytes(32, "big")
    return int.from_bytes(hmac.new(key, message, hashlib.sha256).digest()[:8], "big") / 2**64


def watched(key: bytes, chain_id: int, market: str, job_id: int, share: float) -> bool:
    """Whether we re-check ``job_id``'s verdict, with probability ``share`` over jobs."""
    return watch_draw(key, chain_id, market, job_id) < share


def contradicts(first: Verdict, ours: Verdict, conclusive: bool) -> bool:
    """Whether our re-check (``ours``, ``conclusive`` when it rests on what the provider committed) proves
    ``first`` wrong: only a conclusive pass or fail does. A pass or an inconclusive verdict (both pay the
    provider) is wrong when the outputs fail; a fail when they pass; our inconclusive proves nothing."""
    if not conclusive:
        return False
    if first == Verdict.FAIL:
        return ours == Verdict.PASS
    return ours == Verdict.FAIL


@dataclass
class Watchtower(EventDuty):
    """A verifier daemon's service (``VerifierDaemon.services``) re-checking ``watch_share`` of verdicts."""

    noun: ClassVar[str] = "watch"
    source: ClassVar[str] = "verdicts"

    account: LocalAccount
    market: JobMarket
    token: WebiToken
    rechecker: Rechecker
    journal: WatchJournal
    watch_share: float
    poll_interval_s: float = 2.0
    _started: bool = field(default=False, repr=False)
    _told_confidential: bool = field(default=False, repr=False)  # the skip of confidential jobs is logged once

    def __post_init__(self) -> None:
        if not 0.0 <= self.watch_share <= 1.0:
            raise ValueError(f"watch_share must lie in [0, 1], not {self.watch_share}")

    @property
    def address(self) -> str:
        return str(self.account.address)

    def is_watched(self, job_id: int) -> bool:
        return watched(bytes(self.account.key), self.market.client.chain_id, self.market.address, job_id,
                       self.watch_share)

    def open_stages(self) -> tuple[WatchStage, ...]:
        return OPEN

    def records_of(self, entry: Any) -> list[WatchRecord]:
        if entry["event"] != "VerdictSubmitted":
            return []
        args = entry["args"]
        job_id, verifier = int(args["jobId"]), str(args["verifier"])
        record = WatchRecord(job_id=job_id, stage=WatchStage.PENDING, verifier=verifier,
                             first_verdict=int(args["verdict"]))
        if verifier.lower() == self.address.lower():
            record.stage, record.reason = WatchStage.SKIPPED, "our own verdict"
        elif not self.is_watched(job_id):
            record.stage, record.reason = WatchStage.SKIPPED, f"not sampled (watch share {self.watch_share})"
        return [record]

    def advance(self, record: WatchRecord) -> None:
        job_id = record.job_id
        status = self.market.get_job(job_id)
        if record.stage == WatchStage.CHECKED and status.state == JobState.CHALLENGED \
                and self.market.panel_of(job_id).challenger.lower() == self.address.lower():
            record = self.journal.update(job_id, stage=WatchStage.CHALLENGED, reason="our challenge found on-chain")
        if record.stage == WatchStage.CHALLENGED:
            self._follow(record, status.state)
            return
        if status.state != JobState.AUDITED:
            self._end(record, WatchStage.CLOSED, f"job is {status.state.name.lower()}")
            return
        terms = self.market.terms_of(job_id)
        audit = self.market.audit_of(job_id)
        if self.address.lower() in (terms.requester.lower(), status.provider.lower(), audit.verifier.lower()):
            self._end(record, WatchStage.SKIPPED, "we are a party to the job")
            return
        if terms.confidential:  # its key goes to the drawn verifier and the panel only: nothing to re-check
            if not self._told_confidential:
                log.info("watchtower %s skips confidential jobs: it is given no key to open them", self.address)
                self._told_confidential = True
            self._end(record, WatchStage.SKIPPED, "a confidential job: a watchtower holds no key")
            return
        if self.market.client.timestamp() >= audit.deadline:
            self._end(record, WatchStage.CLOSED, f"the challenge window closed at {audit.deadline}")
            return
        if record.stage == WatchStage.PENDING:
            if self.market.verifier_stake(self.address).stake == 0:
                # Checked before the work: only a staked verifier may challenge a verdict it is no party to.
                self._end(record, WatchStage.SKIPPED, "a watchtower must be a staked verifier to challenge")
                log.warning("watchtower %s is not a staked verifier: job %d not re-checked", self.address, job_id)
                return
            record = self._check(record, audit.verdict)
        if not contradicts(Verdict(record.first_verdict), Verdict(record.our_verdict), record.conclusive):
            self._end(record, WatchStage.AGREED, f"our re-check: {Verdict(record.our_verdict).name.lower()}"
                      + ("" if record.conclusive else " (not conclusive: no outputs compared)"))
            return
        self._challenge(record, terms.bond)

    def _check(self, record: WatchRecord, first: Verdict) -> WatchRecord:
        result = self.rechecker.recheck(record.job_id)
        cid = self.rechecker.evidence("webi-watch-evidence", result, watchtower=self.address,
                                      first_verdict=first.name.lower(), first_verifier=record.verifier,
                                      contradicts=contradicts(first, result.verdict, result.conclusive))
        log.info("job %d: watchtower re-check %s (%s's verdict %s), evidence %s", record.job_id,
                 result.verdict.name.lower(), record.verifier, first.name.lower(), cid)
        return self.journal.update(record.job_id, stage=WatchStage.CHECKED, first_verdict=int(first),
                                   our_verdict=int(result.verdict), conclusive=result.conclusive,
                                   evidence_cid=cid, attempts=0, reason="")

    def _challenge(self, record: WatchRecord, bond: int) -> None:
        """Challenges the verdict, bonding ``bond``; refuses, with the reason journaled, when we cannot."""
        job_id = record.job_id
        balance = self.token.balance_of(self.address)
        if balance < bond:
            self._end(record, WatchStage.SKIPPED, f"the bond of {bond} wei exceeds our balance of {balance} wei")
            log.warning("job %d: the verdict looks wrong, but the bond of %d wei exceeds our balance", job_id, bond)
            return
        if self.token.allowance(self.address, self.market.address) < bond:
            self.token.approve(self.account, self.market.address, bond)
        try:
            receipt = self.market.challenge(self.account, job_id)
        except ContractError as error:
            if error.name in ("DeadlinePassed", "WrongState", "NotEntitledToChallenge"):
                self._end(record, WatchStage.CLOSED, str(error))
                return
            raise
        log.warning("job %d: challenged %s's %s verdict (bond %d wei); a panel decides", job_id, record.verifier,
                    Verdict(record.first_verdict).name.lower(), bond)
        self.journal.update(job_id, stage=WatchStage.CHALLENGED, challenge_tx=receipt["transactionHash"].to_0x_hex(),
                            reason="a panel decides", retry_at=time.time() + self.poll_interval_s)

    def _follow(self, record: WatchRecord, state: JobState) -> None:
        """After our challenge: note how it ended once the job settles (the panel duty resolves it)."""
        if state == JobState.CHALLENGED:
            self.journal.update(record.job_id, retry_at=time.time() + self.poll_interval_s)
            return
        events = self.market.contract.events.ChallengeResolved().get_logs(
            from_block=self.market.from_block, argument_filters={"jobId": record.job_id})
        outcome = state.name.lower()
        if events:
            args = events[-1]["args"]
            outcome = f"{Verdict(args['verdict']).name.lower()} ({'upheld' if args['upheld'] else 'overturned'})"
        self._end(record, WatchStage.RESOLVED, outcome, outcome=outcome)

    def _end(self, record: WatchRecord, stage: WatchStage, reason: str, **changes: object) -> WatchRecord:
        log.info("watch of job %d: %s (%s)", record.job_id, stage.value, reason)
        return self.journal.update(record.job_id, stage=stage, reason=reason[:500], **changes)

