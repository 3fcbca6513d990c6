"""Panel duty: draw the panels of challenged verdicts, judge from the seats drawn to us, see them resolved.

A challenged verdict is re-decided by three stake-weighted seats (``Disputes.drawPanel``). For every
``Challenged`` event this duty:

1. draws the panel once its seed block is readable (anyone may; a seed with a sync phase after it
   re-arms, and the next pass draws again);
2. if seats are ours, re-checks the job's public sample by the audit's own path and rule
   (``verifier.recheck``: two references; our vote is pass, fail, or inconclusive where they
   disagree), journals the vote and its evidence document (``webi-panel-evidence``, version 2, as
   an audit's), then commits ``vote_commitment(job, us, vote, salt)`` before ``commit_by``. Outputs
   found neither in the store nor on-chain are retried until ``commit_by`` minus a quarter of the
   vote window; then the vote is the first verdict: we cannot judge, and erasing the outputs must
   not hand the challenger a win. A confidential job's key must reach every member (the provider
   releases it, ``verifier.confidential``): a member with none by the same margin votes fail, since
   a provider that withholds it must not win its appeal;
3. reveals once every seat has committed or ``commit_by`` has passed, before ``reveal_by``, and
   only then stores the evidence: published before, it would show the other seats our vote;
4. resolves the challenge (anyone may) once every seat has revealed or ``reveal_by`` has passed,
   for the panels it sits on and the challenges it made itself (a watchtower wants its reward).

The salt is HMAC-SHA256 of the account key over the chain, the market and the job (``vote_salt``):
nobody can guess the vote from the commitment, and a restarted daemon re-derives the salt, and
even the vote (the one whose commitment is on-chain), without anything stored; a reveal the chain
refuses as ``VoteMismatch`` (the journaled vote is not the committed one) recovers the vote from
the commitment the same way. A member that does not reveal loses 1 % of its stake, so reveals
outrank everything after a restart.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from eth_account.signers.local import LocalAccount
from sqlmodel import Field, SQLModel

from marketplace.chain.market import JobMarket
from marketplace.errors import ContractError, WebiError
from marketplace.journal import SqliteJournal
from marketplace.protocol import ZERO_HASH, JobState, Panel, Verdict, vote_commitment
from verifier.confidential import NoReleasedKeyError
from verifier.duty import EventDuty
from verifier.outputs import OutputsUnavailableError
from verifier.recheck import Rechecker

log = logging.getLogger(__name__)
# drawPanel refusals that mean "not now" or "done already".
NOT_YET = frozenset({"SeedNotReady", "AlreadyDrawn"})
# Outputs unavailable everywhere are retried until commit_by minus this share of the vote window.
UNAVAILABLE_MARGIN_SHARE = 0.25


class PanelStage(enum.StrEnum):
    WAITING = "waiting"        # challenged; the panel is not drawn yet (we draw it when the seed is ready)
    DECIDED = "decided"        # seated; our vote and evidence are journaled, the commitment is not on-chain
    # (the evidence document stays in the journal until our vote is revealed, then it is stored)
    COMMITTED = "committed"    # our commitment is on-chain; the reveal waits for the commit phase to end
    REVEALED = "revealed"      # our vote is revealed; the challenge waits to be resolved
    FOLLOWING = "following"    # not seated, but our challenge: we resolve it when the panel is done
    RESOLVED = "resolved"      # the challenge was resolved (or dismissed); final
    NOT_SEATED = "not-seated"  # the panel was drawn without us, and the challenge is not ours; final
    MISSED = "missed"          # a vote window passed before we could commit or reveal; final


OPEN = (PanelStage.WAITING, PanelStage.DECIDED, PanelStage.COMMITTED, PanelStage.REVEALED, PanelStage.FOLLOWING)


class PanelRecord(SQLModel, table=True):
    __tablename__ = "verifier_panels"

    job_id: int = Field(primary_key=True)
    stage: PanelStage = Field(index=True)
    challenger: str = ""
    seats: int = 0
    vote: int = 0  # a ``Verdict`` once decided
    evidence: str = ""  # the evidence document (JSON) until our vote is revealed; then stored, and cleared
    evidence_cid: str = ""
    outcome: str = ""
    reason: str = ""
    attempts: int = 0
    retry_at: float = 0.0
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class PanelCursor(SQLModel, table=True):
    __tablename__ = "verifier_panels_cursor"

    name: str = Field(primary_key=True)
    block: int
    block_hash: str = ""  # of ``block`` when recorded: a reorg under the cursor shows as another hash


class PanelJournal(SqliteJournal[PanelRecord]):
    """The panel duty's journal in ``path``: one row per challenge seen, and the event cursor."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, PanelRecord, PanelCursor, "challenged")


def vote_salt(key: bytes, chain_id: int, market: str, job_id: int) -> bytes:
    """The salt of our vote on ``job_id``'s panel: derived, never stored, unguessable without the key."""
    message = b"webi-panel-salt" + chain_id.to_bytes(32, "big") + bytes.fromhex(market.removeprefix("0x")) \
        + job_id.to_bytes(32, "big")
    return hmac.new(key, message, hashlib.sha256).digest()


def seats_of(panel: Panel, member: str) -> list[int]:
    """The seats ``member`` holds on ``panel`` (a verifier may be drawn for several)."""
    return [seat for seat, drawn in enumerate(panel.members) if drawn.lower() == member.lower()]


@dataclass
class PanelDuty(EventDuty):
    """A verifier daemon's service (``VerifierDaemon.services``) that serves on panels."""

    noun: ClassVar[str] = "panel"
    source: ClassVar[str] = "challenges"

    account: LocalAccount
    market: JobMarket
    rechecker: Rechecker
    journal: PanelJournal
    poll_interval_s: float = 2.0
    _started: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def salt(self, job_id: int) -> bytes:
        return vote_salt(bytes(self.account.key), self.market.client.chain_id, self.market.address, job_id)

    def open_stages(self) -> tuple[PanelStage, ...]:
        return OPEN

    def records_of(self, entry: Any) -> list[PanelRecord]:
        if entry["event"] != "Challenged":
            return []
        args = entry["args"]
        return [PanelRecord(job_id=int(args["jobId"]), stage=PanelStage.WAITING, challenger=str(args["challenger"]))]

    def advance(self, record: PanelRecord) -> None:
        job_id = record.job_id
        if self.market.get_job(job_id).state != JobState.CHALLENGED:
            self._resolved(record)
            return
        panel = self.market.panel_of(job_id)
        if panel.size == 0:
            drawn = self._draw(job_id)
            if drawn is None:
                if self.market.get_job(job_id).state != JobState.CHALLENGED:
                    self._resolved(record)  # nobody could judge: the draw dismissed the challenge
                else:
                    self._later(record)
                return
            panel = drawn
        seats = seats_of(panel, self.address)
        if not seats:
            if record.challenger.lower() == self.address.lower():
                record = self.journal.update(job_id, stage=PanelStage.FOLLOWING, reason="our challenge")
                self._resolve(record, panel)
            else:
                self._end(record, PanelStage.NOT_SEATED, f"panel {', '.join(panel.members)}")
            return
        if record.stage == PanelStage.WAITING:
            record = self._decide(record, panel, seats)
            if record.stage == PanelStage.MISSED:
                return
        if record.stage == PanelStage.DECIDED:
            record = self._commit(record, panel, seats)
        if record.stage == PanelStage.COMMITTED:
            record = self._reveal(record, self.market.panel_of(job_id), seats)
        if record.stage == PanelStage.REVEALED:
            record = self._publish(record)
            self._resolve(record, self.market.panel_of(job_id))

    def _draw(self, job_id: int) -> Panel | None:
        """Draws the panel once its seed block is readable; the panel if one sits now."""
        seed_block = self.market.panel_of(job_id).seed_block
        if self.market.client.w3.eth.block_number <= seed_block:
            return None  # the seed block's hash is not readable yet
        try:
            self.market.draw_panel(self.account, job_id)
        except ContractError as error:
            if error.name not in NOT_YET:
                raise
            log.debug("job %d: drawPanel: %s", job_id, error)
        panel = self.market.panel_of(job_id)
        if panel.size == 0:
            log.info("job %d: no panel drawn (seed block now %d)", job_id, panel.seed_block)
            return None
        log.info("job %d: panel %s drawn (commit by %d, reveal by %d)", job_id, list(panel.members),
                 panel.commit_by, panel.reveal_by)
        return panel

    def _decide(self, record: PanelRecord, panel: Panel, seats: list[int]) -> PanelRecord:
        """Our vote: recovered from our commitment when one is on-chain already (journal lost), else the
        outcome of re-checking the sample, journaled with its evidence document (stored after the reveal).
        Outputs nobody can read: retried (``OutputsUnavailableError``, backed off) until the margin before
        ``commit_by``, then the first verdict stands as our vote."""
        job_id = record.job_id
        committed = panel.commits[seats[0]]
        if committed != ZERO_HASH:
            vote = self._vote_behind(job_id, committed)
            log.info("job %d: our commitment is on-chain already (vote %s recovered)", job_id, vote.name.lower())
            return self.journal.update(job_id, stage=PanelStage.COMMITTED, seats=len(seats), vote=int(vote),
                                       reason="commitment found on-chain")
        if self.market.client.timestamp() >= panel.commit_by:
            return self._end(record, PanelStage.MISSED, f"the commit deadline {panel.commit_by} passed")
        margin = int((panel.reveal_by - panel.commit_by) * UNAVAILABLE_MARGIN_SHARE)
        try:
            result = self.rechecker.recheck(job_id)
        except NoReleasedKeyError:
            # A confidential job's key is the provider's to release to every member: one that withholds it
            # must not win by it. Waited for until the margin, then the vote is fail.
            if self.market.client.timestamp() < panel.commit_by - margin:
                raise
            result = self.rechecker.withheld(job_id)
        first = self.market.audit_of(job_id)
        vote, why = result.verdict, ""
        if result.sample.outputs_source == "unavailable":
            if self.market.client.timestamp() < panel.commit_by - margin:
                raise OutputsUnavailableError(f"job {job_id}: the sampled outputs are in neither the store nor "
                                              f"the chain; retrying until chain time {panel.commit_by - margin}")
            vote, why = first.verdict, "outputs unavailable: we cannot judge, the first verdict stands"
        document = self.rechecker.document("webi-panel-evidence", result, member=self.address, seats=seats,
                                           first_verdict=first.verdict.name.lower(), first_verifier=first.verifier,
                                           challenger=panel.challenger, vote=vote.name.lower(), vote_reason=why)
        log.info("job %d: panel vote %s on %d sampled tasks (first verdict %s)%s", job_id, vote.name.lower(),
                 len(result.sampled), first.verdict.name.lower(), f": {why}" if why else "")
        return self.journal.update(job_id, stage=PanelStage.DECIDED, seats=len(seats), vote=int(vote),
                                   evidence=json.dumps(document, sort_keys=True), attempts=0, reason=why)

    def _vote_behind(self, job_id: int, commitment: bytes) -> Verdict:
        for vote in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE):
            if vote_commitment(job_id, self.address, vote, self.salt(job_id)) == commitment:
                return vote
        raise WebiError(f"job {job_id}: the commitment on our seat was not made with this key's salt")

    def _commit(self, record: PanelRecord, panel: Panel, seats: list[int]) -> PanelRecord:
        job_id = record.job_id
        if panel.commits[seats[0]] != ZERO_HASH:  # mined before a crash, not journaled
            return self.journal.update(job_id, stage=PanelStage.COMMITTED, reason="commitment found on-chain")
        vote = Verdict(record.vote)
        try:
            self.market.commit_vote(self.account, job_id, vote, self.salt(job_id))
        except ContractError as error:
            if error.name == "DeadlinePassed":
                return self._end(record, PanelStage.MISSED, str(error))
            if error.name == "AlreadyVoted":
                return self.journal.update(job_id, stage=PanelStage.COMMITTED, reason=str(error))
            raise
        log.info("job %d: committed our panel vote (%d seat%s)", job_id, len(seats), "s" if len(seats) > 1 else "")
        return self.journal.update(job_id, stage=PanelStage.COMMITTED, reason="")

    def _reveal(self, record: PanelRecord, panel: Panel, seats: list[int]) -> PanelRecord:
        job_id = record.job_id
        if panel.votes[seats[0]] != Verdict.NONE:
            return self.journal.update(job_id, stage=PanelStage.REVEALED, reason="vote found on-chain")
        all_committed = all(commit != ZERO_HASH for commit in panel.commits)
        if not all_committed and self.market.client.timestamp() < panel.commit_by:
            self._later(record)  # the others may still commit: revealing now would show them our vote
            return record
        try:
            self.market.reveal_vote(self.account, job_id, Verdict(record.vote), self.salt(job_id))
        except ContractError as error:
            if error.name == "DeadlineNotReached":
                self._later(record)
                return record
            if error.name == "DeadlinePassed":
                return self._end(record, PanelStage.MISSED, str(error))
            if error.name != "VoteMismatch":
                raise
            # The journaled vote is not the committed one (a journal from another run): the commitment
            # says which it is; retrying the same reveal would only run into the no-show slash.
            vote = self._vote_behind(job_id, panel.commits[seats[0]])
            log.warning("job %d: the journaled vote was not the committed one; revealing %s", job_id,
                        vote.name.lower())
            record = self.journal.update(job_id, vote=int(vote))
            self.market.reveal_vote(self.account, job_id, vote, self.salt(job_id))
        log.info("job %d: revealed our panel vote %s", job_id, Verdict(record.vote).name.lower())
        return self.journal.update(job_id, stage=PanelStage.REVEALED, reason="")

    def _resolve(self, record: PanelRecord, panel: Panel) -> None:
        """Resolves the challenge once every seat revealed or the reveal window is over (anyone may)."""
        everyone = all(vote != Verdict.NONE for vote in panel.votes)
        if not everyone and self.market.client.timestamp() < panel.reveal_by:
            self._later(record)
            return
        try:
            self.market.resolve_challenge(self.account, record.job_id)
        except ContractError as error:
            if error.name == "DeadlineNotReached":
                self._later(record)
                return
            if error.name != "WrongState":  # someone else resolved it first
                raise
        self._resolved(record)

    def _publish(self, record: PanelRecord) -> PanelRecord:
        """Stores the journaled evidence once our vote is revealed (never before: it would show the vote).
        A store that refuses now is tried again next pass; the vote does not wait for it."""
        if not record.evidence:
            return record
        try:
            cid = self.rechecker.publish(json.loads(record.evidence))
        except WebiError as error:
            log.warning("job %d: could not store the panel evidence: %s; trying again", record.job_id, error)
            return record
        log.info("job %d: panel evidence %s", record.job_id, cid)
        return self.journal.update(record.job_id, evidence_cid=cid, evidence="")

    def _resolved(self, record: PanelRecord) -> None:
        """Ends a record whose job left ``Challenged``, noting how the challenge ended."""
        if record.stage == PanelStage.REVEALED:
            record = self._publish(record)
        events = self.market.contract.events.ChallengeResolved().get_logs(
            from_block=self.market.from_block, argument_filters={"jobId": record.job_id})
        if events:
            args = events[-1]["args"]
            outcome = f"{Verdict(args['verdict']).name.lower()} ({'upheld' if args['upheld'] else 'overturned'})"
        else:
            outcome = self.market.get_job(record.job_id).state.name.lower()
        self._end(record, PanelStage.RESOLVED, outcome, outcome=outcome)

    def _later(self, record: PanelRecord) -> None:
        self.journal.update(record.job_id, retry_at=time.time() + self.poll_interval_s)

    def _end(self, record: PanelRecord, stage: PanelStage, reason: str, **changes: object) -> PanelRecord:
        log.info("panel of job %d: %s (%s)", record.job_id, stage.value, reason)
        return self.journal.update(record.job_id, stage=stage, reason=reason[:500], **changes)
