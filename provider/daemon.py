"""The provider daemon: find jobs, claim, fetch, run, publish, commit, and follow each to the end.

Each job moves through the journal's stages (``provider.journal.Stage``). Every step first asks
the chain where the job stands, so repeating a step is harmless: a claim already made is not made
again, a result already on-chain is not submitted twice. That is what makes a restart after a crash
(or ``kill -9``) safe: the daemon re-reads its journal and the chain and carries on.

A job is refused on its on-chain terms (``provider.refusals``: claim window, price, stake, collateral,
the requester's gating) before anything is fetched, and the spec, inputs and model listing of the
jobs it considers are read with a short timeout (``fetch_timeout_s``). Claimed work comes first: each
pass advances the jobs we hold (compute, submit, follow) before it considers any unclaimed one, and
spends at most ``consider_budget_s`` on those, best-paying first, so a flood of dust jobs on a store
that hangs can delay new claims but never a job we hold. After the submission ``provider.follow``
sees the job through its audit: draws, redraws, reveal demands, appeals of a failed verdict, and
finalization.

Computing runs on a worker thread (one job at a time), never on the loop's thread: while a long job
runs, the loop keeps polling and following the jobs already submitted, so a reveal demand, an
appeal or a finalization timed to coincide with a large job is still answered within its window.
The worker only computes, publishes and journals ``computed``; every transaction is sent from the
loop's thread (they share the account's nonce). New jobs are still considered while one computes:
a claim is made only within the provider's capacity (``provider.capacity``: its measured throughput
against the deadlines of every job it holds, and at most ``max_claims`` held but not computed), and
the held jobs are computed earliest deadline first. Jobs of one model share the loaded model.

A confidential job (``provider.confidential``) is claimed only when its key will open: a Directed
job's from the spec, before the claim; an Open job's from the requester's on-chain release after it,
waited for in ``claimed`` for the job's ``key_window`` and the claim given back (``releasing``) when
none comes or it does not open. Its inputs are opened with the key, and its output manifest is sealed
to it before it reaches the store or the archive; the Merkle root is over the plaintext outputs.

Failures of the world (RPC down, store unreachable, a lost claim race, a revert) are logged and
retried with backoff; they never stop the daemon. Only the job's own faults (a bad spec, a model
refused) end a job, as ``skipped`` before a claim or ``failed`` after one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.daemon import PollingDaemon
from marketplace.errors import ContractError, JobSpecError, ModelError, WebiError
from marketplace.jobspec import JobSpec
from marketplace.protocol import Confidentiality, JobState, JobStatus, Params
from marketplace.results import MerkleTree, output_manifest
from marketplace.sealed.envelope import seal
from marketplace.sealed.keys import PartyKey
from marketplace.storage import ContentStore
from provider.bench import BenchReport
from provider.capacity import Held, Limits, Throughput, refusal
from provider.claim_keys import ClaimKeys
from provider.confidential import KeyRing
from provider.config import ProviderConfig
from provider.epochs import sync_own_weight
from provider.follow import Follower
from provider.gpu import Gpus
from provider.heartbeats import Pulse
from provider.journal import ACTIVE, FINAL, FOLLOWING, JobRecord, Journal, Stage
from provider.metrics import ProviderMetrics
from provider.outputs import OutputArchive
from provider.pipeline import Pipeline
from provider.refusals import allowlist_proof, refusal_for_confidentiality, refusal_for_spec, refusal_on_chain
from provider.runtime import Runtime
from provider.screen import screen_model

log = logging.getLogger(__name__)

LOST_RACE = frozenset({"WrongState", "ClaimWindowClosed", "TermsMismatch"})
# The requester's allowlist refused us after all (the spec named members the root does not hold).
# (InsufficientStake is retried instead: it is most often collateral that other jobs still lock.)
GATED = frozenset({"NotAllowlisted"})
Hook = Callable[[str, int], None]
Prepared = tuple[JobSpec, list[str]]


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
    token: WebiToken | None = None  # approves challenge bonds; without it the allowance must exist
    # Reads the untrusted parts of a job (spec, inputs, model listing) through a store with a short
    # timeout; defaults to ``runtime``.
    intake: Runtime | None = None
    archive: OutputArchive | None = None  # our copy of committed outputs; without it the store is asked
    party_keys: list[PartyKey] = field(default_factory=list)  # our encryption keys; none: confidential jobs refused
    stopping: threading.Event = field(default_factory=threading.Event)
    _started: bool = field(default=False, repr=False)  # the first pass after a start ignores backoff
    _prepared: dict[int, Prepared] = field(default_factory=dict, repr=False)
    _params: Params | None = field(default=None, repr=False)  # read once a pass
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)  # a stage ended, or stop
    pipeline: Pipeline = field(init=False, repr=False)  # computes and publishes, each on its own thread
    _holding: dict[int, Held] = field(default_factory=dict, repr=False)  # claimed, not computed: size and deadline
    _last_rate: float = field(default=0.0, repr=False)  # the last computed job's tasks/s, for the heartbeat
    follower: Follower = field(init=False, repr=False)
    keys: KeyRing = field(init=False, repr=False)
    claims: ClaimKeys = field(init=False, repr=False)
    throughput: Throughput = field(init=False, repr=False)
    bench: BenchReport | None = field(init=False, repr=False)  # ``webi provider bench``'s, saved in the state folder

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(self._wake)
        self.keys = KeyRing(self.market, self.reader.store, self.address, self.party_keys)
        self.follower = Follower(self.config, self.account, self.market, self.store, self.runtime, self.reader,
                                 self.journal, self.token, self.archive, self._end, self._hook, self.keys)
        self.claims = ClaimKeys(self.config, self.account, self.market, self.runtime, self.reader, self.journal,
                                self.keys, self._end, self._hook)
        self.throughput = Throughput(Path(str(self.journal.engine.url.database)))
        self.bench = BenchReport.load(self.config.state)

    def pulse(self) -> Pulse:
        """What the heartbeat reports (read from its thread: two plain reads, no journal query)."""
        return Pulse(jobs_running=len(self._holding), tasks_per_s=self._last_rate)

    @property
    def reader(self) -> Runtime:
        return self.intake or self.runtime

    # -- the loop ------------------------------------------------------------------------------

    def poll_interval(self) -> float:
        return self.config.poll_interval_s

    def close(self) -> None:
        self._finish_computing()
        self.throughput.close()
        super().close()
        if self.intake is not None and self.intake.store is not self.store:
            self.intake.store.close()

    def run(self) -> None:
        mode = "GPU: " + ", ".join(fact.name for fact in self.gpus.facts()) if self.gpus.available else "CPU mode"
        log.info("provider %s serving (%s)", self.address, mode)
        try:
            while not self.stopping.is_set():
                self._wake.clear()
                self.step()
                self._wake.wait(self.poll_interval())  # a computation that ends is submitted at once
        finally:
            self._finish_computing()  # the computation in progress finishes (journaled), like a step
        log.info("%s %s stopped", type(self).__name__, self.address)

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    def step(self) -> None:
        """One pass: pick up new jobs, advance every job we hold, then consider new ones for a bounded time."""
        try:
            self.poll()
        except WebiError as error:
            log.warning("could not read new jobs: %s", error)
        try:
            sync_own_weight(self.market, self.account)  # nothing to do unless staked as a verifier too
        except WebiError as error:
            log.warning("could not bring the draw weight up to date: %s; trying again", error)
        first_pass, self._started = not self._started, True
        self._params = None
        self._collect()
        due = self.journal.due(ACTIVE, ignore_backoff=first_pass)
        held = [record for record in sorted((record for record in due if record.stage != Stage.SEEN),
                                            key=self._deadline_first) if not self.pipeline.holds(record.job_id)]
        # The compute thread first: the next claimed job starts before the computed one is submitted.
        ready = next((record for record in held if record.stage == Stage.CLAIMED), None)
        if ready is not None and self.pipeline.computing is None:
            self._attempt(ready)
        else:
            ready = None  # the compute thread is busy: it goes in deadline order below, like the others
        for record in held:
            if self.stopping.is_set():
                return
            if record is ready or self.pipeline.holds(record.job_id):
                continue  # started above, or in a stage: the pass after it ends goes on with it
            self._attempt(record)
        unclaimed = sorted((record for record in due if record.stage == Stage.SEEN),
                           key=best_paying_first(self.address))
        budget_ends = time.monotonic() + self.config.consider_budget_s
        for considered, record in enumerate(unclaimed):
            if self.stopping.is_set():
                return
            if self.pipeline.stage_ended():
                break  # a computed job's submission, or the next computation, goes first; the next pass goes on
            if time.monotonic() > budget_ends:
                log.info("%d unclaimed jobs left for the next pass (the %.0f s budget is spent)",
                         len(unclaimed) - considered, self.config.consider_budget_s)
                break
            self._attempt(record)
        if self.metrics is not None:
            self.metrics.observe(self.journal.all(), self.gpus.samples())

    def _attempt(self, record: JobRecord) -> None:
        """Advances one job; its failure is that job's alone."""
        try:
            self._advance_while_moving(record)
        except Exception as error:
            self._failed(record, error)

    def _failed(self, record: JobRecord, error: Exception) -> None:
        """A job's step raised (on the loop's thread or a pipeline stage's): end it, or retry it with backoff."""
        if isinstance(error, WebiError):
            current = self.journal.get(record.job_id) or record
            if isinstance(error, ModelError | JobSpecError) and current.stage not in FOLLOWING:
                self._end(current, Stage.SKIPPED if current.stage == Stage.SEEN else Stage.FAILED, str(error))
                return
            # The world's fault (RPC, store, a revert we did not expect), or a submitted job's: retried.
            delay = self.journal.back_off(current, error, base_s=self.config.poll_interval_s, max_doublings=8,
                                          max_s=300.0 if current.stage == Stage.SEEN else 60.0)
            log.warning("job %d (%s): %s; retrying in %.0f s", record.job_id, current.stage, error, delay)
        else:  # a model that breaks on its inputs must not stop every other job
            current = self.journal.get(record.job_id) or record
            if current.stage in FOLLOWING:  # a re-check for an appeal: retried, the job is still ours
                delay = self.journal.back_off(current, f"{type(error).__name__}: {error}",
                                              base_s=self.config.poll_interval_s, max_doublings=6, max_s=60.0)
                log.error("job %d (%s): failed; retrying in %.0f s", record.job_id, current.stage, delay,
                          exc_info=error)
                return
            log.error("job %d (%s): inference failed", record.job_id, current.stage, exc_info=error)
            self._end(current, Stage.SKIPPED if current.stage == Stage.SEEN else Stage.FAILED,
                      f"inference failed: {type(error).__name__}: {error}")

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
        window = self.journal.scan_window(client, self.market.from_block, head)
        if window is None:
            return
        start, head_hash = window
        posted = []
        for event in client.events(self.market.contract, start, head):
            if event["event"] == "JobPosted":
                job = self.market.remember(event["args"])
                posted.append((job.job_id, job.spec_cid, job.terms.num_tasks, job.terms.price))
        self.journal.record_posted(posted, head, head_hash)
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
                self._start_computing(record, status)
            else:
                self._submit(record)
        elif record.stage == Stage.RELEASING:
            self.claims.release_claim(record, status, mine)
        elif record.stage in FOLLOWING:
            if status.state in (JobState.OPEN, JobState.CLAIMED):  # our submission is gone: a reorg replaced it
                self._follow_elsewhere(record, status, mine)
            else:
                self.follower.follow(record, status)

    def _consider_and_claim(self, record: JobRecord) -> None:
        terms = self.market.terms_of(record.job_id)
        # The on-chain terms first: a job this provider may not or will not claim costs no fetch.
        if self._params is None:
            self._params = self.market.params()
        refusal = refusal_on_chain(terms, now=self.market.client.timestamp(), params=self._params,
                                   stake=self.market.provider_stake(self.address), config=self.config)
        if refusal is not None and refusal.final:
            self._end(record, Stage.SKIPPED, refusal.reason)
            return
        if refusal is not None:  # collateral our other jobs lock: free again once they settle
            log.info("job %d: %s; waiting", record.job_id, refusal.reason)
            self.journal.update(record.job_id, reason=refusal.reason,
                                retry_at=time.time() + 5 * self.config.poll_interval_s)
            return
        spec = self.reader.read_spec(record.spec_cid)
        reason = refusal_for_spec(spec, terms, self.config)
        proof: list[bytes] = []
        if reason is None:
            proof, reason = allowlist_proof(terms, spec, self.address)
        if reason is None:
            reason = refusal_for_confidentiality(spec, terms)
        if reason is None and terms.confidential:
            reason = self.keys.refusal(record.job_id, terms, spec)  # opens a Directed job's key
        if reason is not None:
            self._end(record, Stage.SKIPPED, reason)
            return
        new = Held(record.job_id, terms.num_tasks, spec.task.value, self.market.client.timestamp() + terms.exec_window)
        too_much = self._over_capacity(new)
        if too_much is not None:  # not final: the job is claimed later, while it is open, once there is room
            log.info("job %d: %s; waiting", record.job_id, too_much)
            self.journal.update(record.job_id, reason=too_much[:500],
                                retry_at=time.time() + 5 * self.config.poll_interval_s)
            return
        if self.claims.model_checkable(record.job_id, terms, spec):  # an encrypted one is opened first
            self.reader.check_model(spec)  # refuses pickles, unknown architectures, too-large models: ModelError
        # Inputs are read and checked before collateral is at stake: a bad manifest is a skip, not a failure.
        # An Open confidential job's inputs cannot be: its key comes after the claim.
        if terms.confidentiality != Confidentiality.OPEN:
            inputs = self.claims.read_inputs(record.job_id, spec)
            if self.config.model_screen:
                reason = screen_model(self.runtime, spec, inputs, self.config.screen_inputs)
                if reason is not None:
                    self._end(record, Stage.SKIPPED, reason)
                    return
            self._prepared[record.job_id] = (spec, inputs)
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
        self._holding[record.job_id] = Held(new.job_id, new.tasks, new.task,
                                            self.market.get_job(record.job_id).stamp)

    def _over_capacity(self, new: Held) -> str | None:
        """Why claiming ``new`` is more than this provider can finish in time (``provider.capacity``), or None."""
        held = [self._held(record) for record in self.journal.in_stages([Stage.CLAIMED])]
        tasks = {job.task for job in [*held, new]}
        return refusal(held, new, now=self.market.client.timestamp(),
                       rates={task: self._rate(task) for task in tasks},
                       limits=Limits(self.config.max_claims, self.config.capacity_safety, self.config.job_overhead_s))

    def _rate(self, task: str) -> float | None:
        """Tasks a second for ``task``: measured on real jobs, else ``webi provider bench``'s, else None (assumed)."""
        measured = self.throughput.tasks_per_s(task)
        return measured if measured is not None or self.bench is None else self.bench.rate(task)

    def _held(self, record: JobRecord) -> Held:
        """A claimed job's size, task and deadline (read once: after a restart, from the chain and its spec)."""
        if record.job_id not in self._holding:
            task = self.reader.read_spec(record.spec_cid).task.value
            self._holding[record.job_id] = Held(record.job_id, record.num_tasks, task,
                                                self.market.get_job(record.job_id).stamp)
        return self._holding[record.job_id]

    def _deadline_first(self, record: JobRecord) -> tuple[int, int]:
        """Held jobs in the order they are computed: claimed ones by submit deadline (earliest first, as the
        capacity check assumed), the rest (submitted, following) before them, by id."""
        if record.stage != Stage.CLAIMED:
            return 0, record.job_id
        held = self._holding.get(record.job_id)
        return (held.deadline if held is not None else 1), record.job_id

    # -- computing and publishing, on the pipeline's threads ------------------------------------

    def _start_computing(self, record: JobRecord, status: JobStatus) -> None:
        """Hands the job to the compute thread, unless it is busy with another (this one waits its turn).

        A confidential job goes once its key is in hand (``provider.claim_keys``)."""
        if self.pipeline.computing is not None:
            return
        terms = self.market.terms_of(record.job_id)
        if terms.confidential and self.claims.job_key(record, status, terms) is None:
            return
        prepared = self._prepared.pop(record.job_id, None)  # gone after a restart: read again
        self.pipeline.start(record.job_id, lambda: self._compute(record, prepared),
                            lambda computed: self._publish(record, *computed))
        log.info("job %d: computing", record.job_id)
        self._hook("computing", record.job_id)

    def _collect(self) -> None:
        """Takes in the stages that ended: a success is journaled already, a failure is handled here."""
        for job_id, error in self.pipeline.ended():
            if not isinstance(error, Exception):  # KeyboardInterrupt and the like stop the daemon, as before
                raise error
            record = self.journal.get(job_id)
            if record is not None:
                self._failed(record, error)

    def _finish_computing(self) -> None:
        """Waits for the job computing and the jobs publishing (a stop lets them finish and journal)."""
        self.pipeline.close()
        self._collect()

    def _compute(self, record: JobRecord, prepared: Prepared | None) -> tuple[JobSpec, list[bytes]]:
        """The compute stage: inputs read (unless the claim did) and the inference."""
        started = time.perf_counter()
        if prepared is None:
            spec = self.reader.read_spec(record.spec_cid)
            prepared = spec, self.claims.read_inputs(record.job_id, spec)
        spec, inputs = prepared
        self.claims.model_checkable(record.job_id, self.market.terms_of(record.job_id), spec)  # opened, if encrypted
        read = time.perf_counter()
        self._hook("inputs-read", record.job_id)
        outputs = self.runtime.run(spec, inputs)
        ran = time.perf_counter()
        if self.metrics is not None:
            self.metrics.tasks_done(len(outputs), ran - read)
        self.throughput.record(spec.task.value, len(outputs), ran - read)  # what the next claims are sized by
        self._last_rate = len(outputs) / (ran - read) if ran > read else 0.0
        log.info("job %d: inputs read in %.2f s, %d tasks run in %.2f s", record.job_id, read - started,
                 len(outputs), ran - read)
        self._hook("ran", record.job_id)
        return spec, outputs

    def _publish(self, record: JobRecord, spec: JobSpec, outputs: list[bytes]) -> None:
        """The publish stage: the output manifest stored (sealed if confidential), the root, the journal."""
        self._hook("publishing", record.job_id)
        started = time.perf_counter()
        manifest = output_manifest(outputs)
        if spec.confidential is not None:  # the root is over the plaintext; only the stored copy is sealed
            manifest = seal(manifest, spec.confidential, f"job {record.job_id}'s output manifest")
        with ThreadPoolExecutor(1, thread_name_prefix="webi-merkle") as pool:  # hash while uploading
            tree = pool.submit(MerkleTree, outputs)
            if self.archive is not None:  # kept for reveal demands and appeals, whatever the store does
                self.archive.keep(record.job_id, manifest)  # a confidential job's: the exact ciphertext
            output_cid = self.store.add_bytes(manifest).cid
            root = tree.result().root
        self.journal.update(record.job_id, stage=Stage.COMPUTED, output_cid=str(output_cid), result_root=root.hex())
        log.info("job %d: outputs %s published in %.2f s", record.job_id, output_cid, time.perf_counter() - started)
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

    def _follow_elsewhere(self, record: JobRecord, status: JobStatus, mine: bool) -> None:
        """The chain moved without us noticing (a restart, a race): catch the journal up with it."""
        if mine and status.state == JobState.CLAIMED:
            self.journal.update(record.job_id, stage=Stage.CLAIMED)
        elif mine and status.state in (JobState.SUBMITTED, JobState.AUDITED, JobState.CHALLENGED):
            self.journal.update(record.job_id, stage=Stage.SUBMITTED)
        elif mine and status.state in (JobState.FINALIZED, JobState.REJECTED):
            self.follower.follow(record, status)
        elif status.state == JobState.OPEN:
            # Our claim is gone without us releasing it: a reorg replaced its block (or it expired). The job is
            # anyone's again, ours too: consider it afresh rather than drop it (two providers dropping it would
            # leave it open for good).
            self._forget_in_flight(record.job_id)
            log.warning("job %d: open again on the chain (our claim is gone); considering it afresh", record.job_id)
            self.journal.update(record.job_id, stage=Stage.SEEN, attempts=0, retry_at=0.0,
                                reason="open again: our claim is gone (a reorg or an expiry)")
        else:
            self._end(record, Stage.LOST, f"job is {status.state.name.lower()}" + ("" if mine else " by another"))

    def _forget_in_flight(self, job_id: int) -> None:
        """Drops what this process held in memory for a job it no longer works on: its read inputs, its hold."""
        self._prepared.pop(job_id, None)
        self._holding.pop(job_id, None)

    def _end(self, record: JobRecord, stage: Stage, reason: str, **changes: object) -> None:
        self._forget_in_flight(record.job_id)
        self.journal.update(record.job_id, stage=stage, reason=reason[:500], **changes)
        if stage in FINAL:
            self.keys.forget(record.job_id)
        if stage in FINAL and self.archive is not None:
            self.archive.drop(record.job_id)
        log.info("job %d %s%s", record.job_id, stage.value, f": {reason}" if reason else "")

    def _hook(self, point: str, job_id: int) -> None:
        if self.hook is not None:
            self.hook(point, job_id)


def best_paying_first(address: str) -> Callable[[JobRecord], tuple[int, bytes]]:
    """Unclaimed jobs by price per task, highest first; dust last. Ties in an order of this provider's own (a
    hash of its address and the job id), not by age: the shards of a group tie, and providers that all tried
    the oldest first would race for one shard at a time (one claim lands, the others revert and try again)
    instead of spreading over them."""
    salt = bytes.fromhex(address.removeprefix("0x"))

    def key(record: JobRecord) -> tuple[int, bytes]:
        order = hashlib.blake2b(salt + record.job_id.to_bytes(32, "big"), digest_size=8).digest()
        return -(int(record.price_wei) // max(record.num_tasks, 1)), order

    return key
