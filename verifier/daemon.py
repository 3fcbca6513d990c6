"""The verifier daemon: lock the seed of every submission, audit the ones drawn to us, submit verdicts.

For each ``ResultSubmitted``: once the seed block exists, draw the job's verifier (``lockSeed``;
anyone may, and the first call that needs the seed must). A job drawn to us: derive the secret the
draw committed us to, compute the sampled tasks from ``keccak256(seed, secret)`` (nobody else can
yet), fetch the output manifest, prove every sampled output against the on-chain root, re-execute
(or teacher-force) those tasks with the provider's own runtime, compare with tolerance, store the
evidence document, and call ``submitVerdict`` before the draw's deadline, revealing the secret
and committing the next one. The verdict is provisional for the job's challenge window; after it
the daemon settles the job (``finalize``: the audit fee is paid then). A job whose verifier
missed its deadline comes back to the draw (``VerifierMissed``), and the daemon looks again.

Weights in the draw change only in sync phases (the first blocks of every epoch): a stake or secret
committed outside one counts once someone calls ``syncVerifier``, and the daemon does so for itself
whenever its weight is stale and the chain is in a sync phase (after registering, adding stake, a
slash). A draw whose seed block has a sync phase after it re-arms; the daemon draws again later.

The journal makes a restart resume where it stopped; the chain refuses a second verdict.
"""

from __future__ import annotations

import json
import logging
import platform
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.daemon import PollingDaemon
from marketplace.errors import (
    BlockMismatchError,
    ContentError,
    ContentNotFoundError,
    ContractError,
    JobSpecError,
    ModelError,
    StoreUnavailableError,
    WebiError,
)
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
from marketplace.results import MerkleTree, parse_output_manifest, verify_proof
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from provider.epochs import joins_at, sync_own_weight
from provider.runtime import Runtime
from verifier import compare
from verifier.journal import OPEN, AuditJournal, AuditRecord, AuditStage
from verifier.secrets import AuditSecrets

log = logging.getLogger(__name__)
_MAX_MANIFEST = 1024**3
# lockSeed refusals that only mean "not now" or "done already": the next pass looks again. (A seed
# block with a sync phase after it is no refusal: lockSeed re-arms it, and the next pass draws.)
NOT_YET = {"SeedNotReady", "NoEligibleVerifier", "AlreadyDrawn"}
SETTLED_STATES = (JobState.FINALIZED, JobState.REJECTED)


@dataclass
class VerifierDaemon(PollingDaemon):
    account: LocalAccount
    market: JobMarket
    store: ContentStore
    runtime: Runtime
    journal: AuditJournal
    poll_interval_s: float = 2.0
    stopping: threading.Event = field(default_factory=threading.Event)
    _started: bool = field(default=False, repr=False)  # the first pass after a start ignores backoff
    _committed: bool = field(default=False, repr=False)  # the commitment was checked since the start
    secrets: AuditSecrets = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.secrets = AuditSecrets.of(self.account, self.market)

    def poll_interval(self) -> float:
        return self.poll_interval_s

    def run(self) -> None:
        log.info("verifier %s serving", self.address)
        super().run()

    def step(self) -> None:
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
        for record in self.journal.due(OPEN, ignore_backoff=first_pass):
            if self.stopping.is_set():
                continue
            try:
                self.advance(record)
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
        start = (self.journal.cursor() or self.market.from_block - 1) + 1
        if head < start:
            return
        found, redrawn = [], []
        for entry in client.events(self.market.contract, start, head):
            if entry["event"] == "JobPosted":
                self.market.remember(entry["args"])
            elif entry["event"] == "ResultSubmitted":
                args = entry["args"]
                found.append((int(args["jobId"]), str(args["outputCid"]), bytes(args["resultRoot"]).hex()))
            elif entry["event"] == "VerifierMissed":
                redrawn.append(int(entry["args"]["jobId"]))
        self.journal.record_events(found, redrawn, head)

    def advance(self, record: AuditRecord) -> None:
        job_id = record.job_id
        status = self.market.get_job(job_id)
        if record.stage == AuditStage.VERDICT:
            self._follow_verdict(record, status)
            return
        terms = self.market.terms_of(job_id)
        audit = self.market.audit_of(job_id)
        if status.state != JobState.SUBMITTED:
            if self._is_mine(audit) and audit.verdict != Verdict.NONE:
                # Our verdict was mined but not journaled (a crash in between): follow it from here.
                record = self.journal.update(job_id, stage=AuditStage.VERDICT, reason="verdict found on-chain")
                self._follow_verdict(record, status)
            else:
                self._end(record, AuditStage.CLOSED, f"job is {status.state.name.lower()}")
            return
        if not audit.drawn:
            drawn = self._lock_seed(job_id, status, terms)
            if drawn is None:
                return  # no verifier drawn yet: the next pass tries again
            audit = drawn
        if not self._is_mine(audit):
            self._end(record, AuditStage.NOT_OURS, f"verifier {audit.verifier} drawn")
            return
        if self.market.client.timestamp() > audit.deadline:
            self._end(record, AuditStage.MISSED, f"the verdict deadline {audit.deadline} passed")
            return
        if record.stage == AuditStage.CHECKED and record.draw != audit.draws:
            record = self.journal.update(job_id, stage=AuditStage.WAITING, evidence_cid="", passed=None)
        if record.stage == AuditStage.WAITING:
            record = self._audit(record, status.provider, terms, audit)
        self._submit(record, terms, audit)

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

    def _secrets_for(self, audit: Audit) -> tuple[bytes, bytes]:
        """The secret the draw committed us to and the hash of the next one (zeros once revealed)."""
        if audit.revealed:
            return ZERO_HASH, ZERO_HASH  # a reveal demand opened it already: the contract ignores both
        index = self.secrets.index_of(audit.secret)
        return self.secrets.secret(index), self.secrets.commitment(index + 1)

    def _submit(self, record: AuditRecord, terms: JobTerms, audit: Audit) -> None:
        job_id = record.job_id
        secret, next_hash = self._secrets_for(audit)
        verdict = Verdict.PASS if record.passed else Verdict.FAIL
        try:
            receipt = self.market.submit_verdict(self.account, job_id, verdict, record.evidence_cid, secret,
                                                 next_hash, terms)
        except ContractError as error:
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
            if self.market.client.timestamp() > audit.deadline:
                try:
                    self.market.finalize(self.account, job_id)
                except ContractError as error:
                    if error.name not in ("WrongState", "DeadlineNotReached"):  # someone else settled it first
                        raise
                return
        # Audited within its window, or challenged (a panel decides): look again in a while.
        self.journal.update(job_id, retry_at=time.time() + self.poll_interval_s)

    def _audit(self, record: AuditRecord, provider: str, terms: JobTerms, audit: Audit) -> AuditRecord:
        job_id = record.job_id
        posted = self.market.posted(job_id)
        secret, _ = self._secrets_for(audit)
        seed = audit.secret if audit.revealed else sample_seed(audit.seed, secret)
        sampled = sampled_task_indices(seed, terms.num_tasks, terms.sample_tasks)
        log.info("job %d: auditing tasks %s", job_id, sampled)
        try:
            spec = self.runtime.read_spec(posted.spec_cid)
            inputs = self.runtime.read_inputs(spec)
        except (JobSpecError, ModelError, ContentNotFoundError) as error:
            # The requester's own inputs are broken: nothing the provider could have done right.
            checks = [compare.TaskCheck(index, True, f"job inputs unusable ({error}); provider not at fault")
                      for index in sampled]
            return self._decide(record, provider, posted.spec_cid, sampled, checks, audit)
        checks = self._check(record, spec, inputs, sampled, posted.terms.num_tasks)
        return self._decide(record, provider, posted.spec_cid, sampled, checks, audit)

    def _check(self, record: AuditRecord, spec: Any, inputs: list[str], sampled: list[int],
               num_tasks: int) -> list[compare.TaskCheck]:
        try:
            manifest = self.store.read_bytes(Cid.parse(record.output_cid), limit=_MAX_MANIFEST)
            outputs = parse_output_manifest(manifest, num_tasks)
        except ContentNotFoundError as error:
            return [compare.TaskCheck(index, False, f"outputs not available: {error}") for index in sampled]
        except (StoreUnavailableError, BlockMismatchError):
            raise  # our store is down or damaged: retry rather than blame the provider
        except ContentError as error:  # a malformed manifest or output CID: the provider's doing
            return [compare.TaskCheck(index, False, f"output manifest unusable: {error}") for index in sampled]
        tree = MerkleTree(outputs)
        root = bytes.fromhex(record.result_root)
        proven = [index for index in sampled if verify_proof(root, index, outputs[index], tree.proof(index))]
        refused = {index: compare.TaskCheck(index, False, "output is not under the committed root")
                   for index in sampled if index not in proven}
        checked = compare.check_tasks(self.runtime, spec, inputs, proven, {i: outputs[i] for i in proven})
        by_index = {check.index: check for check in checked} | refused
        return [by_index[index] for index in sampled]

    def _decide(self, record: AuditRecord, provider: str, spec_cid: str, sampled: list[int],
                checks: list[compare.TaskCheck], audit: Audit) -> AuditRecord:
        passed = all(check.passed for check in checks)
        device = self.runtime.devices[0]
        evidence = {
            "kind": "webi-audit-evidence", "version": 1, "job_id": record.job_id, "provider": provider,
            "verifier": self.address, "spec": spec_cid, "outputs": record.output_cid,
            "result_root": "0x" + record.result_root, "draw": audit.draws, "seed": "0x" + audit.seed.hex(),
            "sampled_tasks": sampled, "passed": passed, "verdict": "pass" if passed else "fail",
            "checks": [check.as_dict() for check in checks],
            "thresholds": {"embed_min_cosine": compare.EMBED_MIN_COSINE,
                           "classify_prob_tolerance": compare.CLASSIFY_PROB_TOLERANCE,
                           "near_tie_logits": compare.NEAR_TIE_LOGITS, "near_tie_budget": compare.NEAR_TIE_BUDGET,
                           "near_tie_floor": compare.NEAR_TIE_FLOOR},
            "runtime": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                        "dtype": str(self.runtime.dtype_for(device)).removeprefix("torch."),
                        "torch": torch.__version__, "python": platform.python_version()},
        }
        evidence_cid = self.store.add_bytes(json.dumps(evidence, sort_keys=True).encode()).cid
        log.info("job %d audited: %s (%d tasks), evidence %s", record.job_id, "passed" if passed else "FAILED",
                 len(sampled), evidence_cid)
        return self.journal.update(record.job_id, stage=AuditStage.CHECKED, evidence_cid=str(evidence_cid),
                                   passed=passed, draw=audit.draws, attempts=0, reason="")

    def _end(self, record: AuditRecord, stage: AuditStage, reason: str, **changes: object) -> None:
        self.journal.update(record.job_id, stage=stage, reason=reason[:500], **changes)
        log.info("audit of job %d: %s (%s)", record.job_id, stage.value, reason)
