"""Following a submitted job to its end: the calls that move its audit along, and our answers in it.

The provider is paid only once its job is finalized, so after the submission it acts on every
state the audit can be in:

- submitted, nobody drawn: ``lockSeed`` once the seed block is readable (a re-arm means "again
  later"); the drawn verifier's deadline passed without a verdict: ``redrawVerifier`` (never while
  a reveal demand on the job is pending: that redraw would reject it);
- a reveal demand (``RevealDemanded``): ``revealOutputs`` with the sampled outputs and their proofs
  from our own copy (``provider.reveals``), journaled as ``revealing`` first so a restart resumes it;
- audited with a fail: re-check the sampled tasks and challenge when our outputs hold up
  (``provider.appeals``, ``appeal_fails``), journaled as ``appealing``; the decision is kept in the
  record's ``appeal`` so it is taken once;
- drawn, and again when challenged: the archived outputs are added to the store again
  (``provider.outputs.republish``) before the verifier or the panel fetches them, so a store that
  dropped them (a requester that garbage-collects its own store) cannot blind the audit; journaled
  in ``republished``, so it is done once per draw and once per challenge;
- a confidential job (``provider.confidential``): once a verifier is drawn, the job key wrapped to
  its published key (``releaseKey``), once per verifier; a reveal demand is answered on-chain with
  the sampled outputs sealed to the job key, each with its proof inside; each panel member gets the
  key once the panel is drawn;
- challenged: ``drawPanel`` once its seed block exists and ``resolveChallenge`` once the panel's
  votes are in (anyone may; the provider wants its answer);
- audited, window over: ``finalize``; finalized or rejected: the journal records the end, and the
  payment from the ``Credited`` events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.chain.token import WebiToken
from marketplace.errors import ContractError, JobSpecError, ModelError, WebiError
from marketplace.jobspec import JobSpec
from marketplace.protocol import Audit, CreditKind, JobState, JobStatus, JobTerms, Role, Verdict
from marketplace.results import MerkleTree
from marketplace.storage import ContentStore
from provider.appeals import InsufficientBondError, challenge_verdict, failed_in_evidence, review, verdict_evidence
from provider.confidential import KeyRing, read_sealed_inputs
from provider.config import ProviderConfig
from provider.journal import JobRecord, Journal, Stage
from provider.outputs import Opener, OutputArchive, committed_outputs, republish
from provider.reveals import reveal_payload, sealed_reveal
from provider.runtime import Runtime
from provider.runtime.runtime import MAX_INPUT_MANIFEST

log = logging.getLogger(__name__)

# Calls anyone may make to move an audit along; these refusals mean "not now" or "someone did".
NOT_YET = frozenset({"SeedNotReady", "NoEligibleVerifier", "AlreadyDrawn", "NotDrawn", "DeadlineNotReached",
                     "WrongState", "PanelNotDrawn"})
End = Callable[..., None]
Hook = Callable[[str, int], None]


@dataclass
class Follower:
    """The provider daemon's part after ``submitResult``; it shares the daemon's journal and account."""

    config: ProviderConfig
    account: LocalAccount
    market: JobMarket
    store: ContentStore
    runtime: Runtime  # re-executes the sampled tasks of an appeal, as the job was run
    reader: Runtime  # reads the spec and inputs, with the short timeout
    journal: Journal
    token: WebiToken | None
    archive: OutputArchive | None
    end: End  # the daemon's ``_end(record, stage, reason, **changes)``
    hook: Hook
    keys: KeyRing | None = None  # confidential jobs' keys; shared with the daemon

    @property
    def address(self) -> str:
        return str(self.account.address)

    def follow(self, record: JobRecord, status: JobStatus) -> None:
        job_id = record.job_id
        if status.state == JobState.FINALIZED:
            self.end(record, Stage.FINALIZED, "", earned_wei=str(self._earned(job_id)))
            return
        if status.state == JobState.REJECTED:
            self.end(record, Stage.REJECTED, "the audit failed; collateral slashed")
            return
        # Back to plain ``submitted`` unless a reveal or an appeal below is still under way.
        changes: dict[str, object] = {"stage": Stage.SUBMITTED, "retry_at": time.time() + self.config.poll_interval_s}
        if status.state == JobState.SUBMITTED:
            audit = self.market.audit_of(job_id)
            sealed = self._sealed(record)
            if audit.drawn:
                changes.update(self._republish(record, f"draw-{audit.draws}"))
                if sealed is not None and not audit.reveal_pending:
                    changes.update(self._hand_key(record, sealed, audit.verifier))
            if audit.reveal_pending:
                if sealed is not None:  # the verifier needs the key to open the sealed reveal
                    changes.update(self._hand_key(record, sealed, audit.verifier))
                changes.update(self._reveal(record, audit, sealed))
            else:
                self._audit_along(record, status, audit)
        elif status.state == JobState.AUDITED:
            audit = self.market.audit_of(job_id)
            if audit.verdict == Verdict.FAIL and self.config.appeal_fails and not record.appeal:
                changes.update(self._appeal(record, audit))
            changes.setdefault("reason", f"audited ({audit.verdict.name.lower()}); final after {audit.deadline}")
            if self.market.client.timestamp() > audit.deadline:
                self._anyone_may("finalize", job_id)
        elif status.state == JobState.CHALLENGED:
            changes.update(self._republish(record, "challenge"))
            changes["reason"] = self._challenged(record)
        self.journal.update(job_id, **changes)  # re-read the job at the next poll

    # -- the audit -----------------------------------------------------------------------------

    def _republish(self, record: JobRecord, occasion: str) -> dict[str, object]:
        """Our outputs back in the store for the verifier or the panel, once per ``occasion``; the journal changes.

        A store that fails now is tried again at the next pass; it never holds up the rest of the follow.
        """
        if self.archive is None or record.republished == occasion:
            return {}
        job_id = record.job_id
        output_cid = record.output_cid or self._submitted_cid(job_id)
        try:
            done = republish(job_id, self.market.result_root(job_id), record.num_tasks, self.archive, self.store,
                             output_cid, self._opener(record))
        except WebiError as error:
            log.warning("job %d: could not publish the outputs again (%s): %s; trying again", job_id, occasion,
                        error)
            return {}
        if done:
            self.hook("republished", job_id)
        return {"republished": occasion}  # when we had nothing to add, there is nothing to retry either

    def _audit_along(self, record: JobRecord, status: JobStatus, audit: Audit) -> None:
        """Draw the verifier once the seed block exists, and redraw when it lets its deadline pass."""
        job_id = record.job_id
        if not audit.drawn:
            readable = status.seed_block and self.market.client.w3.eth.block_number > status.seed_block
            if readable and self._anyone_may("lock_seed", job_id) and not self.market.audit_of(job_id).drawn:
                log.info("job %d: seed re-armed (a sync phase came after it) to block %d; drawing again later",
                         job_id, self.market.get_job(job_id).seed_block)
        elif self.market.client.timestamp() > audit.deadline:
            log.info("job %d: verifier %s missed its deadline; redrawing", job_id, audit.verifier)
            self._anyone_may("redraw_verifier", job_id)

    def _reveal(self, record: JobRecord, audit: Audit, sealed: tuple[JobTerms, JobSpec] | None) -> dict[str, object]:
        """Puts the demanded outputs on-chain with their proofs (a confidential job's each sealed to the
        job key with its proof inside: ``envelope.seal_revealed``); the journal changes to make."""
        job_id = record.job_id
        if self.market.client.timestamp() > audit.reveal_by:
            log.error("job %d: the reveal demanded by %s was due at %d; too late", job_id, audit.verifier,
                      audit.reveal_by)
            return {"stage": Stage.SUBMITTED, "reason": f"missed the reveal deadline {audit.reveal_by}"}
        self.journal.update(job_id, stage=Stage.REVEALING,
                            reason=f"reveal demanded by {audit.verifier}, due {audit.reveal_by}")
        self.hook("revealing", job_id)
        terms = self.market.terms_of(job_id)
        outputs, tree = self._outputs(record)
        payload = reveal_payload(outputs, tree, self.market.sampled_tasks(job_id, terms))
        if sealed is not None and sealed[1].confidential is not None:
            payload = sealed_reveal(payload, sealed[1].confidential)
        try:
            receipt = self.market.reveal_outputs(self.account, job_id, payload.outputs, payload.proofs, terms)
        except ContractError as error:
            if error.name == "NoRevealDemand":  # answered already (a restart after the transaction)
                return {"stage": Stage.SUBMITTED, "reason": "outputs revealed"}
            if error.name == "DeadlinePassed":
                return {"stage": Stage.SUBMITTED, "reason": f"missed the reveal deadline: {error}"}
            raise
        self.hook("reveal-sent", job_id)
        log.info("job %d: revealed the %d sampled outputs %s", job_id, len(payload.indices), list(payload.indices))
        return {"stage": Stage.SUBMITTED, "reason": "outputs revealed", "attempts": 0,
                "reveal_tx": receipt["transactionHash"].to_0x_hex()}

    def _hand_key(self, record: JobRecord, sealed: tuple[JobTerms, JobSpec], to: str) -> dict[str, object]:
        """The job key to a drawn verifier or panel member, once; the journal changes (a note when it cannot)."""
        assert self.keys is not None  # ``sealed`` comes from it
        if self.keys.hand_on(self.account, record.job_id, *sealed, to, Role.VERIFIER):
            return {}
        return {"reason": f"{to} published no encryption key: it cannot open the job"}

    def _sealed(self, record: JobRecord) -> tuple[JobTerms, JobSpec] | None:
        """A confidential job's terms and spec; ``None`` for a public one (nothing read)."""
        terms = self.market.terms_of(record.job_id)
        if not terms.confidential or self.keys is None:
            return None
        return terms, self.keys.spec_of(record.job_id, record.spec_cid, self.reader.read_spec)

    def _opener(self, record: JobRecord) -> Opener | None:
        """What opens a confidential job's sealed output manifest; ``None`` for a public job."""
        sealed = self._sealed(record)
        return None if sealed is None or self.keys is None else self.keys.opener(record.job_id, *sealed)

    # -- an appeal -----------------------------------------------------------------------------

    def _appeal(self, record: JobRecord, audit: Audit) -> dict[str, object]:
        """Re-checks a failed job's sampled tasks and challenges when they hold up; the journal changes."""
        job_id = record.job_id
        if self.market.client.timestamp() > audit.deadline:
            return {"appeal": "not challenged: the challenge window had closed"}
        self.journal.update(job_id, stage=Stage.APPEALING, reason=f"failed by {audit.verifier}; re-checking")
        self.hook("appealing", job_id)
        evidence_cid, evidence = verdict_evidence(self.market, self.reader.store, job_id)
        terms = self.market.terms_of(job_id)
        indices = self.market.sampled_tasks(job_id, terms)
        try:
            spec = self.reader.read_spec(record.spec_cid)
            key = None if self.keys is None or spec.confidential is None else self.keys.job_key(job_id, terms, spec)
            inputs = (self.reader.read_inputs(spec) if key is None else
                      read_sealed_inputs(self.reader.store, spec, key, MAX_INPUT_MANIFEST))
            if key is not None and spec.confidential is not None and spec.confidential.model_encrypted:
                self.runtime.open_model(spec, key)  # into the cache again, if it was cleared
        except (JobSpecError, ModelError) as error:  # the job ran from them; they will not improve
            return self._decided(f"not challenged: the job's spec or inputs are unusable now: {error}")
        outputs, _ = self._outputs(record)
        checked = review(self.runtime, spec, inputs, outputs, indices)
        blamed = failed_in_evidence(evidence)
        log.info("job %d: verifier %s failed it (evidence %s, failed tasks %s); our re-check: %s", job_id,
                 audit.verifier, evidence_cid or "none", blamed or "unstated", checked.summary())
        if not checked.holds:
            log.warning("job %d: not challenging the fail: %s", job_id, checked.summary())
            return self._decided(f"not challenged: {checked.summary()}")
        try:
            receipt = challenge_verdict(self.market, self.token, self.account, job_id, terms)
        except InsufficientBondError as error:
            log.warning("%s; not challenging", error)
            return self._decided(f"not challenged: {error}")
        except ContractError as error:
            if error.name in ("DeadlinePassed", "WrongState"):  # too late, or someone challenged first
                return self._decided(f"not challenged: {error}")
            raise
        self.hook("challenge-sent", job_id)
        log.info("job %d: challenged the fail (bond %d wei): %s", job_id, terms.bond, checked.summary())
        return {**self._decided(f"challenged: {checked.summary()}"),
                "challenge_tx": receipt["transactionHash"].to_0x_hex()}

    @staticmethod
    def _decided(appeal: str) -> dict[str, object]:
        """The journal changes that record an appeal decided, taken once."""
        return {"stage": Stage.SUBMITTED, "appeal": appeal[:500], "attempts": 0}

    def _challenged(self, record: JobRecord) -> str:
        """Draws the panel once its seed block exists, hands a confidential job's key to each member, and
        resolves the challenge once the votes are in."""
        job_id = record.job_id
        panel = self.market.panel_of(job_id)
        if panel.size == 0:
            if self.market.client.w3.eth.block_number > panel.seed_block:
                self._anyone_may("draw_panel", job_id)
            return f"challenged by {panel.challenger}: drawing the panel"
        sealed = self._sealed(record)
        if sealed is not None:
            for member in panel.members:
                self._hand_key(record, sealed, member)
        if self.market.client.timestamp() > panel.reveal_by:
            self._anyone_may("resolve_challenge", job_id)
        return f"challenged by {panel.challenger}: the panel votes until {panel.reveal_by}"

    # -- shared --------------------------------------------------------------------------------

    def _outputs(self, record: JobRecord) -> tuple[list[bytes], MerkleTree]:
        output_cid = record.output_cid or self._submitted_cid(record.job_id)
        return committed_outputs(record.job_id, self.market.result_root(record.job_id), record.num_tasks,
                                 self.archive, self.store, output_cid, self._opener(record))

    def _submitted_cid(self, job_id: int) -> str:
        submission = self.market.latest_submission(job_id)
        return submission[0] if submission else ""

    def _anyone_may(self, call: str, job_id: int) -> bool:
        """``lock_seed``, ``redraw_verifier``, ``finalize``, ``draw_panel`` or ``resolve_challenge``; a refusal
        that means "not now" is no error. Whether the call went through (a ``lock_seed`` that goes
        through may have re-armed the draw)."""
        try:
            getattr(self.market, call)(self.account, job_id)
        except ContractError as error:
            if error.name not in NOT_YET:
                raise
            log.debug("job %d: %s: %s", job_id, call, error)
            return False
        log.info("job %d: %s", job_id, call.replace("_", " "))
        return True

    def _earned(self, job_id: int) -> int:
        credited = self.market.contract.events.Credited()
        logs = credited.get_logs(argument_filters={"account": self.address, "jobId": job_id},
                                 from_block=self.market.from_block)
        return sum(int(entry["args"]["amount"]) for entry in logs
                   if entry["args"]["kind"] == CreditKind.PROVIDER_PAYMENT)
