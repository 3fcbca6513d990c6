"""Re-checking an audited job from chain data alone: the duty a panel seat and a watchtower share.

Once a verdict is on-chain the sample is public (``sampledTasks``: the verifier revealed its
secret), so anyone can redo the audit, and a re-check does it by the audit's own path: the sampled
outputs from ``verifier.outputs`` (the manifest named by ``ResultSubmitted``, each output proven
against the committed root, or the outputs revealed on-chain after a reveal demand) judged by
``References.judge_sample`` (``verifier.verdict``: two references, and inconclusive where they
disagree). So a panel judges as the first verifier should have: malformed requester inputs pass the
provider, unproven outputs count against it, an unstable model is inconclusive, and our own store
being down is retried (``OutputsUnavailableError``), never blamed on anyone. Outputs found neither
in the store nor on-chain leave the sample unjudged (``conclusive`` false): the panel member retries
and at last votes the first verdict, the watchtower never challenges on it.

``Recheck.conclusive`` says whether the answer rests on what the provider committed: a watchtower
puts its bond only behind such an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketplace.chain.market import JobMarket
from marketplace.protocol import Verdict
from marketplace.storage import ContentStore
from verifier import confidential, evidence, outputs
from verifier.confidential import JobKeys
from verifier.verdict import References, SampleAudit


@dataclass(frozen=True)
class Recheck:
    """The outcome of re-checking one job's sample."""

    job_id: int
    spec_cid: str
    submission: outputs.Submission
    sample: SampleAudit
    confidential: bool = False  # its evidence is redacted (``evidence.redacted``)

    @property
    def sampled(self) -> list[int]:
        return self.sample.sampled

    @property
    def verdict(self) -> Verdict:
        return self.sample.verdict

    @property
    def conclusive(self) -> bool:
        return self.sample.conclusive


@dataclass
class Rechecker:
    """Re-executes an audited job's public sample under the verifier's references (shared with its
    audits, and with them the device lock) and judges it by the audit's rule."""

    market: JobMarket
    store: ContentStore
    references: References
    keys: JobKeys | None = None  # the job keys released to us (confidential jobs); none: we cannot open them

    def recheck(self, job_id: int) -> Recheck:
        """Redoes the audit of ``job_id``'s revealed sample. Raises ``OutputsUnavailableError`` when our
        own store fails (retry), ``ContractError`` when the sample is not public yet (``SampleNotRevealed``),
        and, for a confidential job, ``NoReleasedKeyError`` while no key was released to us."""
        terms = self.market.terms_of(job_id)
        sampled = self.market.sampled_tasks(job_id, terms)
        submission = outputs.submission_of(self.market, job_id)
        spec_cid = self.market.spec_cid(job_id)
        if terms.confidential:
            return Recheck(job_id, spec_cid, submission, self._sealed(job_id, spec_cid, submission, terms.num_tasks,
                                                                      sampled), confidential=True)
        found = outputs.of_submission(self.market, self.store, job_id, submission, terms.num_tasks, sampled)
        return Recheck(job_id, spec_cid, submission, self.references.judge_sample(spec_cid, sampled, found))

    def withheld(self, job_id: int) -> Recheck:
        """A confidential job's re-check when no key reached us in time: fail (``confidential.withheld``)."""
        terms = self.market.terms_of(job_id)
        return Recheck(job_id, self.market.spec_cid(job_id), outputs.submission_of(self.market, job_id),
                       confidential.withheld(self.market.sampled_tasks(job_id, terms)), confidential=True)

    def _sealed(self, job_id: int, spec_cid: str, submission: outputs.Submission, num_tasks: int,
                sampled: list[int]) -> SampleAudit:
        keys = self.keys or JobKeys(self.market, "", [])
        try:
            return confidential.audit_sealed(keys, self.references, self.store, job_id, spec_cid,
                                             submission.output_cid, submission.result_root, num_tasks, sampled,
                                             "either")
        except confidential.NoReleasedKeyError:
            raise
        except outputs.OutputsNotFoundError as missing:  # neither in the store nor revealed on-chain
            found = outputs.SampledOutputs("unavailable", {}, missing=f"outputs not available: {missing}")
            return self.references.judge_sample(spec_cid, sampled, found)

    def document(self, kind: str, result: Recheck, **fields: Any) -> dict[str, Any]:
        """The evidence document of ``result`` (``kind``: ``webi-panel-evidence``, ...) with ``fields`` added."""
        document = evidence.recheck_document(kind, result.job_id, result.spec_cid, result.submission.output_cid,
                                             result.submission.result_root, result.sample, self.references, **fields)
        return evidence.redacted(document) if result.confidential else document

    def evidence(self, kind: str, result: Recheck, **fields: Any) -> str:
        """Stores the evidence document of ``result`` with ``fields`` added (``document``); its CID."""
        return self.publish(self.document(kind, result, **fields))

    def publish(self, document: dict[str, Any]) -> str:
        """Stores an evidence document; its CID."""
        return evidence.publish(self.store, document)
