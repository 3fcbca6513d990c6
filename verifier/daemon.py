"""The verifier daemon: lock the seed of every submission, audit the ones drawn to us, submit verdicts.

For each ``ResultSubmitted``, the first action (before any fetch), once the seed block exists, is
to draw the job's verifier (``lockSeed``: anyone may, and the first call that needs the seed must).
A job drawn to us: derive the secret the draw committed us to, compute the sampled tasks from
``keccak256(seed, secret)`` (nobody else can yet), fetch the output manifest, prove every sampled
output against the on-chain root, re-execute (or teacher-force) those tasks under two references
(``verifier.verdict``: our dtype, batched, and fp32, one task at a time), judge by the protocol's
rule (pass, fail, or inconclusive when the references disagree), store the evidence document, and
call ``submitVerdict`` before the draw's deadline, revealing the secret and committing the next
one. The verdict is provisional for the job's challenge window; after it the daemon settles the
job (``finalize``: the audit fee is paid then). A job whose verifier missed its deadline comes back
to the draw (``VerifierMissed``), and the daemon looks again.

Audits drawn to us run on a bounded pool of workers (``verifier.pool``), the highest audit fee
first, then the soonest deadline; the daemon's own pass (new events, draws, settlement, reveal
demands) stays on its thread and never waits for a re-execution.

Outputs that cannot be fetched are retried with backoff; those the store persistently answers NOT
FOUND for, for ``unavailable_grace_s`` of chain time (default: half the audit window; our store
down or timing out never leads to a demand); then the daemon demands them on-chain
(``demandReveal``, which opens the secret; ``verifier.reveals``). When the provider reveals
(``OutputsRevealed``) the audit goes on with the revealed outputs, which the contract proved
against the root; when the reveal deadline passes without one, the daemon calls ``failUnrevealed``
and the job is rejected.

Beside its audits the daemon runs its services once a pass (``Service``: the panel duty and the
watchtower), which re-check other verifiers' samples by the same path (``verifier.recheck``) and
share the daemon's references and device lock; ``close()`` closes them with the daemon.

Weights in the draw change only in sync phases (the first blocks of every epoch): a stake or secret
committed outside one counts once someone calls ``syncVerifier``, and the daemon does so for itself
whenever its weight is stale and the chain is in a sync phase (after registering, adding stake, a
slash). A draw whose seed block has a sync phase after it re-arms; the daemon draws again later.

The journal makes a restart resume where it stopped (a demand included); the chain refuses a
second verdict.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.daemon import PollingDaemon
from marketplace.errors import ContractError, WebiError
from marketplace.protocol import (
    ZERO_HASH,
    Audit,
    JobState,
    JobStatus,
    JobTerms,
    Verdict,
    sample_seed,
    sampled_task_indices,
)
from marketplace.sealed.keys import PartyKey
from marketplace.storage import ContentStore
from provider.epochs import joins_at, sync_own_weight
from provider.runtime import Runtime
from verifier import confidential, evidence, outputs
from verifier.confidential import JobKeys
from verifier.journal import OPEN, AuditJournal, AuditRecord, AuditStage, wait_for_redraw
from verifier.pool import AuditPool
from verifier.reveals import RevealDemands
from verifier.secrets import AuditSecrets
from verifier.verdict import References, SampleAudit

log = logging.getLogger(__name__)
# lockSeed refusals that only mean "not now" or "done already": the next pass looks again. (A seed
# block with a sync phase after it is no refusal: lockSeed re-arms it, and the next pass draws.)
NOT_YET = frozenset({"SeedNotReady", "NoEligibleVerifier", "AlreadyDrawn"})
SETTLED_STATES = (JobState.FINALIZED, JobState.REJECTED)
# States before ``Submitted``: a node that reports one for a job whose ``ResultSubmitted`` we saw lags
# behind (another node behind a load balancer); nothing is concluded from it, the record waits.
# A verdict's challenge window is followed at most this many poll intervals apart (``_follow_verdict``).
SETTLE_POLLS = 30
BEFORE_SUBMITTED = frozenset({JobState.NONE, JobState.OPEN, JobState.CLAIMED})
# Stages whose work is an audit (the pool's); the others are the pass's.
AUDITING = (AuditStage.WAITING, AuditStage.DEMANDED)


class Service(Protocol):
    """A duty the daemon runs once every pass (``verifier.panels``, ``verifier.watchtower``); the daemon
    closes it (its journal) when it is closed itself."""

    def step(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class VerifierDaemon(PollingDaemon):
    account: LocalAccount
    market: JobMarket
    store: ContentStore
    runtime: Runtime
    journal: AuditJournal
    poll_interval_s: float = 2.0
    # Duties beside the daemon's own audits (panel seats, watchtower re-checks): each ``step()`` runs
    # once a pass, after the audits, and handles its own errors and journal.
    services: list[Service] = field(default_factory=list)
    max_parallel_audits: int = 2
    unavailable_grace_s: float | None = None  # None: half each job's audit window (``verifier.reveals``)
    stopping: threading.Event = field(default_factory=threading.Event)
    _started: bool = field(default=False, repr=False)  # the first pass after a start ignores backoff
    _committed: bool = field(default=False, repr=False)  # the commitment was checked since the start
    secrets: AuditSecrets = field(init=False, repr=False)
    references: References = field(init=False, repr=False)  # shared with the services' re-checks
    pool: AuditPool = field(init=False, repr=False)
    reveals: RevealDemands = field(init=False, repr=False)
    _offers: list[tuple[int, int, int]] = field(default_factory=list, repr=False)  # this pass's audits to queue
    # Our encryption keys (``verifier.confidential``): without one, confidential jobs are inconclusive.
    party_keys: list[PartyKey] = field(default_factory=list, repr=False)
    keys: JobKeys = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.secrets = AuditSecrets.of(self.account, self.market)
        self.references = References.of(self.runtime)
        self.pool = AuditPool(self._work, self.max_parallel_audits, self.stopping)
        self.keys = JobKeys(self.market, self.address, self.party_keys)
        self.reveals = RevealDemands(self.account, self.market, self.journal, self.secrets, self.poll_interval_s,
                                     self.unavailable_grace_s)

    def poll_interval(self) -> float:
        return self.poll_interval_s

    def run(self) -> None:
        log.info("verifier %s serving (%d audit workers)", self.address, self.max_parallel_audits)
        if not self.keys.usable:
            log.warning("verifier %s: %s", self.address, confidential.NO_KEY)
        self.pool.start()
        try:
            super().run()
        finally:
            self.stopping.set()  # a pass that raised must not leave the workers waiting for work forever
            self.pool.join(timeout=600)

    def close(self) -> None:
        """Closes every service (its journal), then the chain connection, the store and the journal."""
        for service in self.services:
            service.close()
        super().close()

    def step(self) -> None:
        """One pass: commitment, weight, new events, then every open record; audits go to the pool
        (done here, in order, when the pool has no workers: a single pass from a test or a tool)."""
        first_pass = not self._started
        if not self._committed:
            try:
                self.ensure_commitment()
                self._committed = True
            except WebiError as error:
                log.warning("could not check the audit-secret commitment: %s; trying again", error)
        try:
            sync_own_weight(self.market, self.account)
        except WebiError as error:
            log.warning("could not bring the draw weight up to date: %s; trying again", error)
        try:
            self.poll()
        except WebiError as error:
            log.warning("could not read new submissions: %s", error)
        self._started = True
        self._offers = []
        for due in self.journal.due(OPEN, ignore_backoff=first_pass):
            if self.stopping.is_set():
                continue
            if self.pool.busy(due.job_id):
                continue  # a worker has it
            record = self.journal.get(due.job_id) or due  # fresh: a worker may have moved it meanwhile
            self._guarded(record, self.advance)
        self.pool.offer_all(self._offers)  # together: the most valuable goes first, not the first found
        if not self.pool.started:
            self.pool.run_pending()
        for service in self.services:
            if self.stopping.is_set():
                break
            try:
                service.step()
            except WebiError as error:
                log.warning("%s: %s; trying again next pass", type(service).__name__, error)

    def _guarded(self, record: AuditRecord, action: Callable[[AuditRecord], None]) -> None:
        """Runs ``action``; a failure backs the record off instead of stopping the daemon."""
        try:
            action(record)
        except WebiError as error:
            delay = self.journal.back_off(record, error, base_s=self.poll_interval_s, max_doublings=6, max_s=60.0)
            log.warning("audit of job %d: %s; retrying in %.0f s", record.job_id, error, delay)
        except Exception as error:  # re-execution broke here: out of memory, a driver error
            # Our failure, not the provider's: no verdict on it, and no reason to stop auditing the
            # other jobs. Retry with backoff; if it never succeeds the deadline passes and the job
            # is redrawn, as the contract does for a verifier that does not answer.
            delay = self.journal.back_off(record, f"re-execution failed: {type(error).__name__}: {error}",
                                          base_s=self.poll_interval_s, max_doublings=6, max_s=60.0)
            log.exception("audit of job %d: re-execution failed; retrying in %.0f s", record.job_id, delay)

    def ensure_commitment(self) -> None:
        """Commits a fresh audit secret when this staked verifier has none: without one it is never drawn."""
        if self.market.verifier_stake(self.address).stake == 0 or self.market.secret_of(self.address) != ZERO_HASH:
            return
        index = self.secrets.first_unused(self.market, self.address)
        receipt = self.market.commit_secret(self.account, self.secrets.commitment(index))
        log.info("verifier %s committed audit secret #%d: in the draw from the sync phase at block %d",
                 self.address, index, joins_at(int(receipt["blockNumber"]) - 1))

    def poll(self) -> None:
        client = self.market.client
        head = client.w3.eth.block_number
        window = self.journal.scan_window(client, self.market.from_block, head)
        if window is None:
            return
        start, head_hash = window
        found, redrawn = [], []
        for entry in client.events(self.market.contract, start, head):
            if entry["event"] == "JobPosted":
                self.market.remember(entry["args"])
            elif entry["event"] == "ResultSubmitted":
                args = entry["args"]
                found.append((int(args["jobId"]), str(args["outputCid"]), bytes(args["resultRoot"]).hex()))
            elif entry["event"] == "VerifierMissed":
                redrawn.append(int(entry["args"]["jobId"]))
        self.journal.record_events(found, redrawn, head, head_hash)

    # ───────────────────────────────────────────── the pass (this thread)

    def advance(self, record: AuditRecord) -> None:
        """Moves one record on: draw (``lockSeed``, the first action on a submission), classify,
        submit a decided verdict, follow a demand, settle; an audit to do goes to the pool."""
        job_id = record.job_id
        status = self.market.get_job(job_id)
        if record.stage == AuditStage.VERDICT:
            if status.state != JobState.SUBMITTED or self.market.audit_of(job_id).verdict != Verdict.NONE:
                self._follow_verdict(record, status)
                return
            # Our verdict is not on this chain: a reorg replaced its block. Audit again, or we miss the deadline.
            log.warning("job %d: our verdict (tx %s) is no longer on the chain; auditing again", job_id,
                        record.verdict_tx)
            record = self.journal.update(job_id, stage=AuditStage.WAITING, evidence_cid="", passed=None, verdict="",
                                         verdict_tx="", reason="verdict gone from the chain (a reorg)")
        if status.state in BEFORE_SUBMITTED:
            log.info("job %d: the node reports it %s, behind its own ResultSubmitted; looking again", job_id,
                     status.state.name.lower())
            self.journal.update(job_id, retry_at=time.time() + self.poll_interval_s)
            return
        terms = self.market.terms_of(job_id)
        audit = self.market.audit_of(job_id)
        if status.state != JobState.SUBMITTED:
            self._left_submitted(record, status, audit)
            return
        record = self._current_submission(record)
        if not audit.drawn:
            drawn = self._lock_seed(job_id, status, terms)
            if drawn is None:
                return  # no verifier drawn yet: the next pass tries again
            audit = drawn
        if not self._is_mine(audit):
            self._end(record, AuditStage.NOT_OURS, f"verifier {audit.verifier} drawn")
            return
        if self.market.client.timestamp() > audit.deadline and not audit.reveal_pending:
            self._end(record, AuditStage.MISSED, f"the verdict deadline {audit.deadline} passed")
            return
        if record.stage == AuditStage.CHECKED and record.draw != audit.draws:
            record = self.journal.update(job_id, stage=AuditStage.WAITING, evidence_cid="", passed=None, verdict="")
        if record.stage == AuditStage.CHECKED:
            self._submit(record, terms, audit)
        elif audit.reveal_pending:
            self.reveals.follow(record, terms, audit)
        else:
            self._offers.append((job_id, terms.audit_fee, audit.deadline))

    def _current_submission(self, record: AuditRecord) -> AuditRecord:
        """The record, on the submission the chain holds now. After a reorg the job may have been submitted
        again, by another provider or with other outputs: auditing the journaled root would judge outputs
        the chain never committed to (and fail an honest provider whose proofs do not match it)."""
        job_id = record.job_id
        root = self.market.result_root(job_id).hex()
        if root == record.result_root:
            return record
        submission = self.market.latest_submission(job_id)
        if submission is None:
            return record  # a lagging node: its logs are behind its state; look again at the next pass
        output_cid, latest_root = submission
        log.warning("job %d: the chain's submission is not the one journaled (a reorg): auditing root %s", job_id,
                    root)
        return self.journal.update(job_id, stage=AuditStage.WAITING, output_cid=output_cid,
                                   result_root=latest_root.hex(), evidence_cid="", passed=None,
                                   verdict="", reason="submitted again after a reorg")

    def _left_submitted(self, record: AuditRecord, status: JobStatus, audit: Audit) -> None:
        if self._is_mine(audit) and audit.verdict != Verdict.NONE:
            # Our verdict was mined but not journaled (a crash in between): follow it from here.
            record = self.journal.update(record.job_id, stage=AuditStage.VERDICT, reason="verdict found on-chain")
            self._follow_verdict(record, status)
        elif record.stage == AuditStage.DEMANDED and status.state == JobState.REJECTED:
            self._end(record, AuditStage.SETTLED, "job rejected: the provider did not reveal the outputs")
        else:
            self._end(record, AuditStage.CLOSED, f"job is {status.state.name.lower()}")

    def _is_mine(self, audit: Audit) -> bool:
        return audit.verifier.lower() == self.address.lower()

    def _lock_seed(self, job_id: int, status: JobStatus, terms: JobTerms) -> Audit | None:
        """Draws the job's verifier once the seed block is readable; the audit record if one is drawn."""
        if status.seed_block == 0 or self.market.client.w3.eth.block_number <= status.seed_block:
            return None  # the seed block's hash is not readable yet: the randomness does not exist
        try:
            self.market.lock_seed(self.account, job_id, terms)
        except ContractError as error:
            if error.name not in NOT_YET:
                raise
            log.debug("job %d: lockSeed: %s", job_id, error)
        audit = self.market.audit_of(job_id)
        if not audit.drawn:
            log.info("job %d: no verifier drawn yet (seed block %d); drawing again later", job_id,
                     self.market.get_job(job_id).seed_block)
            return None
        log.info("job %d: verifier %s drawn (deadline %d)", job_id, audit.verifier, audit.deadline)
        return audit

    def _submit(self, record: AuditRecord, terms: JobTerms, audit: Audit) -> None:
        job_id = record.job_id
        secret, next_hash = self.secrets.for_audit(audit)
        verdict = Verdict[record.verdict.upper()] if record.verdict else Verdict.of(bool(record.passed))
        try:
            receipt = self.market.submit_verdict(self.account, job_id, verdict, record.evidence_cid, secret,
                                                 next_hash, terms)
        except ContractError as error:
            if wait_for_redraw(self.market, self.journal, job_id, error):
                return
            if error.name in ("DeadlinePassed", "NotAssignedVerifier"):
                self._end(record, AuditStage.MISSED, str(error))
                return
            if error.name == "WrongState":
                self._end(record, AuditStage.CLOSED, str(error))
                return
            raise
        self._end(record, AuditStage.VERDICT, verdict.name.lower(), verdict_tx=receipt["transactionHash"].to_0x_hex())

    def _follow_verdict(self, record: AuditRecord, status: JobStatus) -> None:
        """After our verdict: settle the job once its challenge window has passed (we are paid then)."""
        job_id = record.job_id
        if status.state in SETTLED_STATES:
            self._end(record, AuditStage.SETTLED, f"job {status.state.name.lower()}")
            return
        if status.state == JobState.AUDITED:
            audit = self.market.audit_of(job_id)
            now = self.market.client.timestamp()
            if now > audit.deadline:
                try:
                    self.market.finalize(self.account, job_id)
                except ContractError as error:
                    if error.name not in ("WrongState", "DeadlineNotReached"):  # someone else settled it first
                        raise
                return
            # Within the challenge window (``audit.deadline`` is its end once the verdict is in): nothing
            # to do until it closes, so wake then, not every poll. Chain time is not wall time (a devnet's
            # clock jumps, a chain's blocks lag), so the wait is capped at SETTLE_POLLS polls.
            wait = min(max(self.poll_interval_s, float(audit.deadline + 1 - now)),
                       SETTLE_POLLS * self.poll_interval_s)
            self.journal.update(job_id, retry_at=time.time() + wait)
            return
        # Challenged (a panel decides), or a lagging node: look again in a while.
        self.journal.update(job_id, retry_at=time.time() + self.poll_interval_s)

    # ───────────────────────────────────────────── audits (the pool's workers)

    def _work(self, job_id: int) -> None:
        record = self.journal.get(job_id)
        if record is not None:
            self._guarded(record, self._audit_and_submit)

    def _audit_and_submit(self, record: AuditRecord) -> None:
        """Re-checks that the audit is still ours to do, does it, and submits the verdict."""
        job_id = record.job_id
        if record.stage not in AUDITING:
            return
        status = self.market.get_job(job_id)
        audit = self.market.audit_of(job_id)
        if status.state != JobState.SUBMITTED or not self._is_mine(audit) or audit.reveal_pending \
                or self.market.client.timestamp() > audit.deadline:
            return  # the pass classifies it
        terms = self.market.terms_of(job_id)
        try:
            record = self._audit(record, status.provider, terms, audit)
        except outputs.OutputsUnavailableError as error:
            self.reveals.unavailable(record, terms, audit, error)
            return
        self._submit(record, terms, audit)

    def _audit(self, record: AuditRecord, provider: str, terms: JobTerms, audit: Audit) -> AuditRecord:
        job_id = record.job_id
        posted = self.market.posted(job_id)
        secret, _ = self.secrets.for_audit(audit)
        seed = audit.secret if audit.revealed else sample_seed(audit.seed, secret)
        sampled = sampled_task_indices(seed, terms.num_tasks, terms.sample_tasks)
        log.info("job %d: auditing tasks %s", job_id, sampled)
        if terms.confidential:
            answered = audit.reveal_by == 1  # the sealed outputs are on-chain: the key must be here by now
            try:
                sample = confidential.audit_sealed(self.keys, self.references, self.store, job_id, posted.spec_cid,
                                                   record.output_cid, record.result_root, terms.num_tasks, sampled,
                                                   "chain" if answered else "store")
            except confidential.NoReleasedKeyError:
                if not answered:
                    raise
                sample = confidential.withheld(sampled, "the verifier, whose reveal demand was answered")
        else:
            if audit.reveal_by == 1:  # our demand was answered: the outputs are on-chain, proven
                found = outputs.from_chain(self.market, job_id, sampled)
            else:
                found = outputs.from_store(self.store, record.output_cid, record.result_root, terms.num_tasks,
                                           sampled)
            sample = self.references.judge_sample(posted.spec_cid, sampled, found)
        facts = evidence.AuditFacts(job_id, provider, self.address, posted.spec_cid, record.output_cid,
                                    record.result_root)
        return self._decide(record, facts, sample, audit, terms.confidential)

    def _decide(self, record: AuditRecord, facts: evidence.AuditFacts, sample: SampleAudit,
                audit: Audit, sealed: bool = False) -> AuditRecord:
        verdict = sample.verdict
        document = evidence.document(facts, audit, sample, self.references)
        evidence_cid = evidence.publish(self.store, evidence.redacted(document) if sealed else document)
        log.info("job %d audited: %s (%d tasks), evidence %s", record.job_id, verdict.name, len(sample.sampled),
                 evidence_cid)
        return self.journal.update(record.job_id, stage=AuditStage.CHECKED, evidence_cid=evidence_cid,
                                   passed=verdict is not Verdict.FAIL, verdict=verdict.name.lower(), draw=audit.draws,
                                   attempts=0, reason="")

    def _end(self, record: AuditRecord, stage: AuditStage, reason: str, **changes: object) -> None:
        self.journal.end(record, stage, reason, **changes)
