"""The provider daemon: find jobs, claim, fetch, run, publish, commit, and follow each to the end.

Each job moves through the journal's stages (``provider.journal.Stage``). Every step first asks
the chain where the job stands, so repeating a step is harmless: a claim already made is not made
again, a result already on-chain is not submitted twice. That is what makes a restart after a crash
(or ``kill -9``) safe: the daemon re-reads its journal and the chain and carries on.

A job is refused on its on-chain terms (claim window, price, the requester's gating) before
anything is fetched. After the submission the provider sees its job through the audit, since it is
paid only once the job is finalized: it draws the verifier (``lockSeed``) when nobody has, arms a
new draw (``redrawVerifier``) when the drawn verifier lets its deadline pass, and settles the job
(``finalize``) once the verdict's challenge window is over. The seed block may lie a few blocks
ahead (the end of a sync phase), and a draw whose seed block has a sync phase after it re-arms
(``SeedRearmed``): the daemon draws again at a later pass. An operator staked as a verifier too (with
the same key) has its draw weight brought up to date in each sync phase (``syncVerifier``).

Failures of the world (RPC down, store unreachable, a lost claim race, a revert) are logged and
retried with backoff; they never stop the daemon. Only the job's own faults (a bad spec, a model
refused) end a job, as ``skipped`` before a claim or ``failed`` after one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from marketplace.chain.market import JobMarket
from marketplace.daemon import PollingDaemon
from marketplace.errors import ContractError, JobSpecError, ModelError, WebiError
from marketplace.jobspec import JobSpec
from marketplace.protocol import ZERO_HASH, Allowlist, CreditKind, JobState, JobStatus, JobTerms, allowlist_leaf
from marketplace.results import MerkleTree, output_manifest
from marketplace.storage import ContentStore
from provider.config import ProviderConfig
from provider.epochs import sync_own_weight
from provider.gpu import Gpus
from provider.journal import ACTIVE, JobRecord, Journal, Stage
from provider.metrics import ProviderMetrics
from provider.runtime import Runtime

log = logging.getLogger(__name__)

LOST_RACE = {"WrongState", "ClaimWindowClosed", "TermsMismatch"}
# The requester's allowlist refused us after all (the spec named members the root does not hold).
# (InsufficientStake is retried instead: it is most often collateral that other jobs still lock.)
GATED = {"NotAllowlisted"}
# Calls anyone may make to move an audit along; these refusals mean "not now" or "someone did".
NOT_YET = {"SeedNotReady", "NoEligibleVerifier", "AlreadyDrawn", "NotDrawn", "DeadlineNotReached", "WrongState"}
Hook = Callable[[str, int], None]


@dataclass
class ProviderDaemon(PollingDaemon):
    config: ProviderConfig
    account: LocalAccount
    market: JobMarket
    store: ContentStore
    runtime: Runtime
    journal: Journal
    gpus: Gpus
    metrics: ProviderMetrics | None = None
    hook: Hook | None = None  # called at named points of a job; tests use it to crash on purpose
    stopping: threading.Event = field(default_factory=threading.Event)
    _started: bool = field(default=False, repr=False)  # the first pass after a start ignores backoff
    _prepared: dict[int, tuple[JobSpec, list[str]]] = field(default_factory=dict, repr=False)

    # -- the loop ------------------------------------------------------------------------------

    def poll_interval(self) -> float:
        return self.config.poll_interval_s

    def run(self) -> None:
        mode = "GPU: " + ", ".join(fact.name for fact in self.gpus.facts()) if self.gpus.available else "CPU mode"
        log.info("provider %s serving (%s)", self.address, mode)
        super().run()

    def step(self) -> None:
        """One pass: pick up new jobs, then move every active job as far as it can go now."""
        try:
            self.poll()
        except WebiError as error:
            log.warning("could not read new jobs: %s", error)
        try:
            sync_own_weight(self.market, self.account)  # nothing to do unless staked as a verifier too
        except WebiError as error:
            log.warning("could not bring the draw weight up to date: %s; trying again", error)
        first_pass, self._started = not self._started, True
        for record in self.journal.due(ACTIVE, ignore_backoff=first_pass):
            if self.stopping.is_set():
                return
            try:
                self._advance_while_moving(record)
            except (ModelError, JobSpecError) as error:
                self._end(record, Stage.SKIPPED if record.stage == Stage.SEEN else Stage.FAILED, str(error))
            except WebiError as error:  # the world's fault: RPC, store, a revert we did not expect
                delay = self.journal.back_off(record, error, base_s=self.config.poll_interval_s, max_doublings=8,
                                              max_s=300.0)
                log.warning("job %d (%s): %s; retrying in %.0f s", record.job_id, record.stage, error, delay)
            except Exception as error:  # a model that breaks on its inputs must not stop every other job
                current = self.journal.get(record.job_id) or record
                log.exception("job %d (%s): inference failed", record.job_id, current.stage)
                self._end(current, Stage.SKIPPED if current.stage == Stage.SEEN else Stage.FAILED,
                          f"inference failed: {type(error).__name__}: {error}")
        if self.metrics is not None:
            self.metrics.observe(self.journal.all(), self.gpus.samples())

    def _advance_while_moving(self, record: JobRecord) -> None:
        """Claim, compute and submit back to back: waiting a poll interval between them only adds latency."""
        for _ in range(4):
            before = record.stage
            self.advance(record)
            updated = self.journal.get(record.job_id)
            if updated is None or updated.stage == before or updated.stage not in (Stage.CLAIMED, Stage.COMPUTED):
                return
            if self.stopping.is_set():
                return
            record = updated

    def poll(self) -> None:
        """Records new ``JobPosted`` events and moves the cursor in one transaction."""
        client = self.market.client
        head = client.w3.eth.block_number - self.config.confirmations
        start = (self.journal.cursor() or self.market.from_block - 1) + 1
        if head < start:
            return
        posted = []
        for event in client.events(self.market.contract, start, head):
            if event["event"] == "JobPosted":
                job = self.market.remember(event["args"])
                posted.append((job.job_id, job.spec_cid, job.terms.num_tasks, job.terms.price))
        self.journal.record_posted(posted, head)
        for job_id, *_ in posted:
            log.info("job %d posted", job_id)

    # -- one job -------------------------------------------------------------------------------

    def advance(self, record: JobRecord) -> None:
        status = self.market.get_job(record.job_id)
        mine = status.provider.lower() == self.address.lower()
        if record.stage == Stage.SEEN:
            if status.state != JobState.OPEN:
                self._follow_elsewhere(record, status, mine)
                return
            self._consider_and_claim(record)
        elif record.stage in (Stage.CLAIMED, Stage.COMPUTED):
            if status.state != JobState.CLAIMED or not mine:
                self._follow_elsewhere(record, status, mine)
            elif record.stage == Stage.CLAIMED:
                self._compute(record)
            else:
                self._submit(record)
        elif record.stage == Stage.SUBMITTED:
            self._settle(record, status)

    def _consider_and_claim(self, record: JobRecord) -> None:
        terms = self.market.terms_of(record.job_id)
        now = self.market.client.timestamp()
        # The on-chain terms first: a job this provider may not or will not claim costs no fetch.
        refusal = self._refusal_on_chain(terms, now)
        if refusal is not None:
            self._end(record, Stage.SKIPPED, refusal)
            return
        spec = self.runtime.read_spec(record.spec_cid)
        refusal = self._refusal(spec, terms.price, terms.num_tasks)
        proof: list[bytes] = []
        if refusal is None:
            proof, refusal = self._allowlist_proof(terms, spec)
        if refusal is not None:
            self._end(record, Stage.SKIPPED, refusal)
            return
        self.runtime.check_model(spec)  # refuses pickles, unknown architectures, too-large models: ModelError
        # Inputs are read and checked before collateral is at stake: a bad manifest is a skip, not a failure.
        self._prepared[record.job_id] = (spec, self.runtime.read_inputs(spec))
        if not self.gpus.idle(self.config.idle_threshold_pct):
            log.info("job %d: GPU busy with another process; waiting", record.job_id)
            self.journal.update(record.job_id, retry_at=time.time() + 5 * self.config.poll_interval_s)
            return
        self._hook("claiming", record.job_id)
        try:
            receipt = self.market.claim_job(self.account, record.job_id, terms, proof)
        except ContractError as error:
            if error.name in LOST_RACE:
                self._end(record, Stage.LOST, f"claim refused: {error}")
                return
            if error.name in GATED:
                self._end(record, Stage.SKIPPED, f"claim refused: {error}")
                return
            raise
        self._mined(record, receipt, "claim", Stage.CLAIMED)

    def _refusal_on_chain(self, terms: JobTerms, now: int) -> str | None:
        """Why the job is not for us, from its terms and our stake alone: nothing is fetched from a store."""
        if terms.claim_by < now:
            return "the claim window has closed"
        floors = [self.config.floor_wei(task) for task in self.config.tasks]
        if floors and terms.price // terms.num_tasks < min(floors):
            return f"{terms.price // terms.num_tasks} wei per task is under this provider's floor of {min(floors)}"
        stake = self.market.provider_stake(self.address).stake
        if terms.min_provider_stake > stake:
            return f"the requester asks for a provider stake of {terms.min_provider_stake} wei; ours is {stake}"
        return None

    def _allowlist_proof(self, terms: JobTerms, spec: JobSpec) -> tuple[list[bytes], str | None]:
        """Our proof for the job's allowlist (empty without one), or why we are not in it.

        The chain holds only the list's Merkle root; the spec names its members. A list of one is
        its own root, so that case needs no spec at all.
        """
        if terms.allowlist_root == ZERO_HASH or terms.allowlist_root == allowlist_leaf(self.address):
            return [], None
        if not spec.allowlist:
            return [], "the job has an allowlist, and its spec does not name the members"
        allowlist = Allowlist(spec.allowlist)
        if allowlist.root != terms.allowlist_root:
            return [], "the spec's allowlist does not match the job's allowlist root"
        try:
            return allowlist.proof(self.address), None
        except KeyError:
            return [], "this provider is not in the job's allowlist"

    def _refusal(self, spec: JobSpec, price: int, num_tasks: int) -> str | None:
        if spec.task not in self.config.tasks:
            return f"task type {spec.task.value} is not served here"
        if spec.num_tasks != num_tasks:
            return f"the spec says {spec.num_tasks} tasks but the job was posted for {num_tasks}"
        floor = self.config.floor_wei(spec.task)
        if price // num_tasks < floor:
            return f"{price // num_tasks} wei per task is under this provider's floor of {floor}"
        return None

    def _compute(self, record: JobRecord) -> None:
        started = time.perf_counter()
        prepared = self._prepared.pop(record.job_id, None)  # gone after a restart: read again
        if prepared is None:
            spec = self.runtime.read_spec(record.spec_cid)
            prepared = spec, self.runtime.read_inputs(spec)
        spec, inputs = prepared
        read = time.perf_counter()
        self._hook("inputs-read", record.job_id)
        outputs = self.runtime.run(spec, inputs)
        ran = time.perf_counter()
        self._hook("ran", record.job_id)
        with ThreadPoolExecutor(1, thread_name_prefix="webi-merkle") as pool:  # hash while uploading
            tree = pool.submit(MerkleTree, outputs)
            output_cid = self.store.add_bytes(output_manifest(outputs)).cid
            root = tree.result().root
        published = time.perf_counter()
        if self.metrics is not None:
            self.metrics.tasks_done(len(outputs), ran - read)
        self.journal.update(record.job_id, stage=Stage.COMPUTED, output_cid=str(output_cid), result_root=root.hex())
        log.info("job %d: inputs read in %.2f s, %d tasks run in %.2f s, outputs %s published in %.2f s",
                 record.job_id, read - started, len(outputs), ran - read, output_cid, published - ran)
        self._hook("computed", record.job_id)

    def _submit(self, record: JobRecord) -> None:
        try:
            receipt = self.market.submit_result(self.account, record.job_id, record.output_cid,
                                                bytes.fromhex(record.result_root))
        except ContractError as error:
            if error.name == "SubmitDeadlinePassed":
                self._end(record, Stage.FAILED, f"missed the submission deadline: {error}")
                return
            raise
        self._mined(record, receipt, "submit", Stage.SUBMITTED)

    def _mined(self, record: JobRecord, receipt: TxReceipt, action: str, stage: Stage) -> None:
        """Journals a mined transaction. A crash between the two hooks is what reconciliation covers."""
        self._hook(f"{action}-sent", record.job_id)
        self.journal.update(record.job_id, stage=stage, attempts=0, reason="",
                            **{f"{action}_tx": receipt["transactionHash"].to_0x_hex()})
        log.info("job %d %s", record.job_id, stage.value)
        self._hook(stage.value, record.job_id)

    def _settle(self, record: JobRecord, status: JobStatus) -> None:
        """Follows a submitted job to its end, making the calls that move its audit along."""
        job_id = record.job_id
        if status.state == JobState.FINALIZED:
            earned = self._earned(job_id)
            self._end(record, Stage.FINALIZED, "", earned_wei=str(earned))
            return
        if status.state == JobState.REJECTED:
            self._end(record, Stage.REJECTED, "the audit failed; collateral slashed")
            return
        changes: dict[str, object] = {"retry_at": time.time() + self.config.poll_interval_s}
        if status.state == JobState.SUBMITTED:
            self._audit_along(record, status)
        elif status.state == JobState.AUDITED:
            audit = self.market.audit_of(job_id)
            changes["reason"] = f"audited ({audit.verdict.name.lower()}); final after {audit.deadline}"
            if self.market.client.timestamp() > audit.deadline:
                self._anyone_may("finalize", job_id)
        elif status.state == JobState.CHALLENGED:
            changes["reason"] = "challenged: a panel decides"  # serving panels is a later issue
        self.journal.update(job_id, **changes)  # re-read the job at the next poll

    def _audit_along(self, record: JobRecord, status: JobStatus) -> None:
        """Submitted: draw the verifier once the seed block exists, and redraw when it lets its deadline pass."""
        audit = self.market.audit_of(record.job_id)
        if not audit.drawn:
            job_id = record.job_id
            readable = status.seed_block and self.market.client.w3.eth.block_number > status.seed_block
            if readable and self._anyone_may("lock_seed", job_id) and not self.market.audit_of(job_id).drawn:
                log.info("job %d: seed re-armed (a sync phase came after it) to block %d; drawing again later",
                         job_id, self.market.get_job(job_id).seed_block)
        elif not audit.reveal_pending and self.market.client.timestamp() > audit.deadline:
            # (An unanswered reveal demand would reject the job on a redraw; answering it is a later issue.)
            log.info("job %d: verifier %s missed its deadline; redrawing", record.job_id, audit.verifier)
            self._anyone_may("redraw_verifier", record.job_id)

    def _anyone_may(self, call: str, job_id: int) -> bool:
        """``lock_seed``, ``redraw_verifier`` or ``finalize``; a refusal that means "not now" is no error.

        Whether the call went through (a ``lock_seed`` that goes through may have re-armed the draw).
        """
        try:
            getattr(self.market, call)(self.account, job_id)
        except ContractError as error:
            if error.name not in NOT_YET:
                raise
            log.debug("job %d: %s: %s", job_id, call, error)
            return False
        log.info("job %d: %s", job_id, call.replace("_", " "))
        return True

    def _follow_elsewhere(self, record: JobRecord, status: JobStatus, mine: bool) -> None:
        """The chain moved without us noticing (a restart, a race): catch the journal up with it."""
        if mine and status.state == JobState.CLAIMED:
            self.journal.update(record.job_id, stage=Stage.CLAIMED)
        elif mine and status.state in (JobState.SUBMITTED, JobState.AUDITED, JobState.CHALLENGED):
            self.journal.update(record.job_id, stage=Stage.SUBMITTED)
        elif mine and status.state in (JobState.FINALIZED, JobState.REJECTED):
            self._settle(record, status)
        else:
            self._end(record, Stage.LOST, f"job is {status.state.name.lower()}" + ("" if mine else " by another"))

    def _earned(self, job_id: int) -> int:
        credited = self.market.contract.events.Credited()
        logs = credited.get_logs(argument_filters={"account": self.address, "jobId": job_id},
                                 from_block=self.market.from_block)
        return sum(int(entry["args"]["amount"]) for entry in logs
                   if entry["args"]["kind"] == CreditKind.PROVIDER_PAYMENT)

    def _end(self, record: JobRecord, stage: Stage, reason: str, **changes: object) -> None:
        self._prepared.pop(record.job_id, None)
        self.journal.update(record.job_id, stage=stage, reason=reason[:500], **changes)
        log.info("job %d %s%s", record.job_id, stage.value, f": {reason}" if reason else "")

    def _hook(self, point: str, job_id: int) -> None:
        if self.hook is not None:
            self.hook(point, job_id)

