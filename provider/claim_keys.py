"""A claimed confidential job's key, its sealed inputs and model, or the claim given back.

The daemon's part of ``provider.confidential`` between the claim and the computation. A Directed
job's key was opened from the spec before the claim, so its inputs and its model (opened into the
cache when encrypted) were checked as a public job's are. An Open job's key comes only after the
claim, from the requester's ``KeyReleased``: the job waits in ``claimed`` (re-reading the chain each
pass: nothing about the key is journaled, so a restart simply looks again) until it arrives, and
then its inputs and model are checked. When no key comes within ``key_window`` of the claim, or the
key, the inputs or the model it opens are unusable (the requester's fault), the claim is given back
unslashed: journaled ``releasing`` first, then ``releaseClaim``, so a restart between the two sees
the job Open again and ends the record as given back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.errors import ContractError, JobSpecError, ModelError, SealedError
from marketplace.jobspec import JobSpec
from marketplace.protocol import Confidentiality, JobState, JobStatus, JobTerms
from marketplace.sealed.keys import JobKey
from provider.confidential import KeyRing, read_sealed_inputs
from provider.config import ProviderConfig
from provider.journal import JobRecord, Journal, Stage
from provider.runtime import Runtime
from provider.runtime.runtime import MAX_INPUT_MANIFEST

log = logging.getLogger(__name__)

End = Callable[..., None]
Hook = Callable[[str, int], None]
GIVEN_BACK = "claim given back: "


@dataclass
class ClaimKeys:
    """Shares the daemon's journal, account and runtimes; ``end`` and ``hook`` are the daemon's."""

    config: ProviderConfig
    account: LocalAccount
    market: JobMarket
    runtime: Runtime  # fetches and opens encrypted models (the long timeout)
    reader: Runtime  # reads specs and inputs (the short timeout)
    journal: Journal
    keys: KeyRing
    end: End
    hook: Hook

    def read_inputs(self, job_id: int, spec: JobSpec) -> list[str]:
        """The job's inputs; a confidential job's opened with its key (which ``keys`` must hold by now)."""
        if spec.confidential is None:
            return self.reader.read_inputs(spec)
        key = self.keys.job_key(job_id, self.market.terms_of(job_id), spec)
        if key is None:
            raise SealedError(f"job {job_id}: its key was never released to this provider")
        return read_sealed_inputs(self.reader.store, spec, key, MAX_INPUT_MANIFEST)

    def model_checkable(self, job_id: int, terms: JobTerms, spec: JobSpec) -> bool:
        """Whether the model can be checked before the claim; opens a Directed job's encrypted model first.

        An Open job's encrypted model cannot be (no key yet): it is checked once the key comes.
        """
        if spec.confidential is None or not spec.confidential.model_encrypted:
            return True
        key = self.keys.job_key(job_id, terms, spec)
        if key is None:
            return False
        self.open_model(spec, key)
        return True

    def open_model(self, spec: JobSpec, key: JobKey) -> None:
        """The encrypted model fetched and opened into the cache; one that does not open is the job's fault."""
        try:
            self.runtime.open_model(spec, key)
        except SealedError as error:
            raise ModelError(f"the encrypted model does not open with the job key: {error}") from None

    def job_key(self, record: JobRecord, status: JobStatus, terms: JobTerms) -> JobKey | None:
        """The claimed job's key once it is usable; ``None`` while an Open job waits for it, or once the
        claim is given back (the contract allows that until ``key_window`` after the first release)."""
        job_id = record.job_id
        spec = self.keys.spec_of(job_id, record.spec_cid, self.reader.read_spec)  # read once while it waits
        try:
            key = self.keys.job_key(job_id, terms, spec)
        except SealedError as error:
            if terms.confidentiality != Confidentiality.OPEN:
                raise JobSpecError("confidential", str(error)) from None  # it opened before the claim
            self.give_back(record, status, f"the released key does not open the job: {error}")
            return None
        if key is None:
            self._wait_or_give_back(record, status, terms)
            return None
        if terms.confidentiality != Confidentiality.OPEN:
            return key
        try:  # what a public job's claim checks first, checked now that it can be
            if self.model_checkable(job_id, terms, spec):
                self.reader.check_model(spec)
            self.read_inputs(job_id, spec)
        except (ModelError, JobSpecError, SealedError) as error:
            self.give_back(record, status, f"the job the key opens cannot be run: {error}")
            return None
        return key

    def _wait_or_give_back(self, record: JobRecord, status: JobStatus, terms: JobTerms) -> None:
        """No key yet: wait (journaled, retried at the next poll) until ``key_window`` after the claim."""
        claimed_at = status.stamp - terms.exec_window  # ``stamp`` is the submission deadline while claimed
        until = claimed_at + terms.key_window
        if self.market.client.timestamp() > until:
            self.give_back(record, status, f"no key was released to us within the key window (until {until})")
            return
        if not record.reason.startswith("waiting for"):
            log.info("job %d: claimed; waiting for the requester to release the key (until %d)", record.job_id,
                     until)
        self.journal.update(record.job_id, reason=f"waiting for the job key until {until}",
                            retry_at=time.time() + self.config.poll_interval_s)

    def give_back(self, record: JobRecord, status: JobStatus, why: str) -> None:
        """Journals ``releasing`` and gives the claim back."""
        log.warning("job %d: giving the claim back: %s", record.job_id, why)
        self.journal.update(record.job_id, stage=Stage.RELEASING, reason=why)
        self.release_claim(self.journal.get(record.job_id) or record, status, mine=True)

    def release_claim(self, record: JobRecord, status: JobStatus, mine: bool) -> None:
        """``releaseClaim`` for a job in ``releasing``; one the chain shows given back already just ends."""
        why = record.reason.removeprefix(GIVEN_BACK)
        if not mine or status.state != JobState.CLAIMED:  # sent before a restart, or the job moved on
            self.end(record, Stage.SKIPPED, GIVEN_BACK + why)
            return
        try:
            receipt = self.market.release_claim(self.account, record.job_id)
        except ContractError as error:
            if error.name == "ClaimNotReleasable":
                self.end(record, Stage.FAILED, f"{why}; the window to give the claim back had closed: {error}")
                return
            raise
        self.hook("release-sent", record.job_id)
        self.end(record, Stage.SKIPPED, GIVEN_BACK + why, release_tx=receipt["transactionHash"].to_0x_hex())
