"""Reveal demands: outputs the drawn verifier cannot fetch are retried, then demanded on-chain.

Outputs that cannot be fetched (not found, the store down, timeouts) are nobody's fault yet. Only
a store that answers NOT FOUND says anything about the provider: our own store answering 5xx,
timing out or serving bad blocks is retried with backoff for as long as it takes, and never leads
to a demand (a demand opens the secret and puts the provider on a deadline for our outage). NOT
FOUND is retried for the grace (``grace_s``, by default half the job's audit window, from the job's
terms) of chain time from the first such answer (journaled as ``unavailable_since``, so the grace
survives a restart), and at the latest ``DEMAND_MARGIN_S`` before the verdict deadline; then
``demandReveal`` (which opens the audit secret: the sample is
public from then on) and the journal moves to ``demanded``. The provider's answer,
``revealOutputs``, puts the sampled outputs in calldata, where the contract proves each against the
root; the audit then goes on with them (``verifier.outputs.from_chain``, the daemon's audit stage).
A demand left unanswered past its reveal deadline ends in ``failUnrevealed``: the job is rejected.

This module is the flow's two decisions, kept out of ``verifier.daemon`` (which runs the loop and
the audit stages and calls them): when to demand, and what to do while a demand waits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from marketplace.chain.market import JobMarket
from marketplace.errors import ContractError, WebiError
from marketplace.protocol import Audit, JobTerms
from verifier.journal import AuditJournal, AuditRecord, AuditStage, wait_for_redraw
from verifier.outputs import OutputsNotFoundError
from verifier.secrets import AuditSecrets

log = logging.getLogger(__name__)
# A demand goes out at least this long (chain seconds) before the verdict deadline, whatever the grace.
DEMAND_MARGIN_S = 300


@dataclass
class RevealDemands:
    """The drawn verifier's side of reveal demands, on the daemon's journal."""

    account: LocalAccount
    market: JobMarket
    journal: AuditJournal
    secrets: AuditSecrets
    poll_interval_s: float
    grace_s: float | None = None  # None: half the job's audit window

    def grace_for(self, terms: JobTerms) -> float:
        return self.grace_s if self.grace_s is not None else terms.audit_window / 2

    def unavailable(self, record: AuditRecord, terms: JobTerms, audit: Audit, error: WebiError) -> None:
        """Outputs we cannot fetch: retry with backoff; persistently NOT FOUND for the grace, demand them."""
        job_id = record.job_id
        if not isinstance(error, OutputsNotFoundError):  # our store is down or lying: nobody else's fault
            delay = self.journal.back_off(record, error, base_s=self.poll_interval_s, max_doublings=4, max_s=30.0)
            log.warning("audit of job %d: %s; our store, not the provider: retrying in %.0f s", job_id, error, delay)
            return
        now = self.market.client.timestamp()
        since = record.unavailable_since or now
        if not record.unavailable_since:
            record = self.journal.update(job_id, unavailable_since=since)
        demand_at = min(since + self.grace_for(terms), audit.deadline - DEMAND_MARGIN_S)
        if audit.reveal_by != 0 or now < demand_at:
            delay = self.journal.back_off(record, error, base_s=self.poll_interval_s, max_doublings=4, max_s=30.0)
            log.warning("audit of job %d: %s; retrying in %.0f s (reveal demand from chain time %d)", job_id, error,
                        delay, demand_at)
            return
        secret, next_hash = self.secrets.for_audit(audit)
        try:
            self.market.demand_reveal(self.account, job_id, secret, next_hash, terms)
        except ContractError as failure:
            if wait_for_redraw(self.market, self.journal, job_id, failure):
                return
            if failure.name in ("DeadlinePassed", "NotAssignedVerifier"):
                self.journal.end(record, AuditStage.MISSED, str(failure))
                return
            if failure.name == "RevealAlreadyDemanded":
                self.journal.update(job_id, stage=AuditStage.DEMANDED, reason="reveal demand found on-chain")
                return
            raise
        self.journal.end(record, AuditStage.DEMANDED, f"reveal demanded: {error}", attempts=0, retry_at=0.0)

    def follow(self, record: AuditRecord, terms: JobTerms, audit: Audit) -> None:
        """Our demand waits for the provider: once its reveal deadline has passed, ``failUnrevealed``."""
        job_id = record.job_id
        if record.stage != AuditStage.DEMANDED:  # demanded, then a crash before the journal noted it
            record = self.journal.update(job_id, stage=AuditStage.DEMANDED, reason="reveal demand found on-chain")
        if self.market.client.timestamp() <= audit.reveal_by:
            self.journal.update(job_id, retry_at=time.time() + self.poll_interval_s)
            return
        try:
            self.market.fail_unrevealed(self.account, job_id, terms)
        except ContractError as error:
            if error.name not in ("WrongState", "NoRevealDemand"):  # someone else settled or it was answered
                raise
            return  # the next pass reads what happened
        self.journal.end(record, AuditStage.SETTLED, "job rejected: the provider did not reveal the outputs in time")
