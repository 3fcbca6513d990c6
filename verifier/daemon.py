"""The verifier daemon: follow submissions, audit the ones the chain assigns to us, submit verdicts.

For each ``ResultSubmitted``: once the seed block exists, ask the contract (``auditOf``) whether the
job is audited and by whom; the sampled task indices come from ``sampledTasks``. An assigned audit:
fetch the output manifest, prove every sampled output against the on-chain root, re-execute (or
teacher-force) those tasks with the provider's own runtime, compare with tolerance, store the
evidence document, and call ``submitVerdict`` inside the audit window. The journal makes a
restart resume where it stopped; the chain refuses a second verdict.
"""

from __future__ import annotations

import json
import logging
import platform
import threading
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
from marketplace.protocol import JobState
from marketplace.results import MerkleTree, parse_output_manifest, verify_proof
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from provider.runtime import Runtime
from verifier import compare
from verifier.journal import OPEN, AuditJournal, AuditRecord, AuditStage

log = logging.getLogger(__name__)
_MAX_MANIFEST = 1024**3


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

    def poll_interval(self) -> float:
        return self.poll_interval_s

    def run(self) -> None:
        log.info("verifier %s serving", self.address)
        super().run()

    def step(self) -> None:
        try:
            self.poll()
        except WebiError as error:
            log.warning("could not read new submissions: %s", error)
        first_pass, self._started = not self._started, True
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
                # other jobs. Retry with backoff; if it never succeeds the window closes and the job
                # settles as the contract says for a verifier that does not answer.
                delay = self.journal.back_off(record, f"re-execution failed: {type(error).__name__}: {error}",
                                              base_s=self.poll_interval_s, max_doublings=6, max_s=60.0)
                log.exception("audit of job %d: re-execution failed; retrying in %.0f s", record.job_id, delay)

    def poll(self) -> None:
        client = self.market.client
        head = client.w3.eth.block_number
        start = (self.journal.cursor() or self.market.from_block - 1) + 1
        if head < start:
            return
        found = []
        for entry in client.events(self.market.contract, start, head):
            if entry["event"] == "JobPosted":
                self.market.remember(entry["args"])
            elif entry["event"] == "ResultSubmitted":
                args = entry["args"]
                found.append((int(args["jobId"]), str(args["outputCid"]), bytes(args["resultRoot"]).hex()))
        self.journal.record_submitted(found, head)

    def advance(self, record: AuditRecord) -> None:
        job_id = record.job_id
        status = self.market.get_job(job_id)
        if status.state != JobState.SUBMITTED:
            self._end(record, AuditStage.CLOSED, f"job is {status.state.name.lower()}")
            return
        if self.market.client.w3.eth.block_number <= status.seed_block:
            return  # the seed block's hash is not readable yet: the randomness does not exist
        terms = self.market.terms_of(job_id)
        if record.stage == AuditStage.WAITING:
            audit = self.market.audit_of(job_id, terms)
            if not audit.audited or audit.verifier.lower() != self.address.lower():
                self._end(record, AuditStage.NOT_OURS, "not audited" if not audit.audited else "another verifier")
                return
            record = self._audit(record, status.provider)
        try:
            receipt = self.market.submit_verdict(self.account, job_id, bool(record.passed), record.evidence_cid, terms)
        except ContractError as error:
            if error.name == "AuditWindowClosed":
                self._end(record, AuditStage.MISSED, str(error))
                return
            if error.name == "WrongState":
                self._end(record, AuditStage.CLOSED, str(error))
                return
            raise
        self._end(record, AuditStage.VERDICT, "passed" if record.passed else "failed",
                  verdict_tx=receipt["transactionHash"].to_0x_hex())

    def _audit(self, record: AuditRecord, provider: str) -> AuditRecord:
        job_id = record.job_id
        posted = self.market.posted(job_id)
        sampled = self.market.sampled_tasks(job_id, posted.terms)
        try:
            spec = self.runtime.read_spec(posted.spec_cid)
            inputs = self.runtime.read_inputs(spec)
        except (JobSpecError, ModelError, ContentNotFoundError) as error:
            # The requester's own inputs are broken: nothing the provider could have done right.
            checks = [compare.TaskCheck(index, True, f"job inputs unusable ({error}); provider not at fault")
                      for index in sampled]
            return self._decide(record, provider, posted.spec_cid, sampled, checks)
        checks = self._check(record, spec, inputs, sampled, posted.terms.num_tasks)
        return self._decide(record, provider, posted.spec_cid, sampled, checks)

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
                checks: list[compare.TaskCheck]) -> AuditRecord:
        passed = all(check.passed for check in checks)
        device = self.runtime.devices[0]
        evidence = {
            "kind": "webi-audit-evidence", "version": 1, "job_id": record.job_id, "provider": provider,
            "verifier": self.address, "spec": spec_cid, "outputs": record.output_cid,
            "result_root": "0x" + record.result_root, "sampled_tasks": sampled, "passed": passed,
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
                                   passed=passed, attempts=0, reason="")

    def _end(self, record: AuditRecord, stage: AuditStage, reason: str, **changes: object) -> None:
        self.journal.update(record.job_id, stage=stage, reason=reason[:500], **changes)
        log.info("audit of job %d: %s (%s)", record.job_id, stage.value, reason)
