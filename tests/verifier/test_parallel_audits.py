"""Parallel audits on a real chain: drawn a flood of dust jobs and one paid job, the verifier gives the
paid one its verdict first (or among the first the workers take together), and journals every one."""

from __future__ import annotations

import pytest

from marketplace.chain.deployment import WEI
from marketplace.protocol import JobState, Role, Verdict
from provider.factory import create_daemon
from tests.conftest import Chain
from tests.support.jobs import TEXTS, Market
from tests.support.waiting import wait_for
from tests.verifier.test_verifier_daemon import make_verifier, running, seed_visible, state_of
from verifier.journal import AuditStage

__all__ = ["make_verifier"]  # the fixture, shared with the daemon's tests


@pytest.mark.parametrize("workers", [1, 2])
def test_a_paid_audit_goes_ahead_of_a_flood_of_dust(chain: Chain, market: Market, config_for, make_verifier,
                                                     requester, provider, verifier, workers: int) -> None:
    """Six dust jobs (the minimum price) are posted before the paid one, so an audit in arrival order
    would do it last. All are drawn to the one verifier before it starts."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    texts = TEXTS[:4]
    spec_cid = market.upload_spec("embed", texts)
    dust_price = len(texts) * chain.market.params().min_task_price
    with running(create_daemon(config_for(provider), provider)):
        dust = [market.post(requester, texts=texts, spec_cid=spec_cid, price=dust_price, sample_tasks=len(texts))
                for _ in range(6)]
        paid = market.post(requester, texts=texts, spec_cid=spec_cid, price=5 * WEI, sample_tasks=len(texts))
        for job_id in [*dust, paid]:
            seed_visible(chain, job_id)  # the provider draws each (lockSeed): our verifier is the only one
    assert chain.market.terms_of(paid).audit_fee > 10 * chain.market.terms_of(dust[0]).audit_fee
    auditing = make_verifier(verifier, max_parallel_audits=workers)
    with running(auditing):
        wait_for(lambda: all(state_of(chain, job_id) == JobState.AUDITED for job_id in [*dust, paid]),
                 timeout=180, what="every verdict")
        wait_for(lambda: all(auditing.journal.get(job_id).stage == AuditStage.VERDICT for job_id in [*dust, paid]),
                 what="the journal")
    verdicts = chain.market.contract.events.VerdictSubmitted().get_logs(from_block=0)
    order = [int(entry["args"]["jobId"]) for entry in sorted(verdicts, key=lambda e: (e["blockNumber"], e["logIndex"]))]
    assert sorted(order) == sorted([*dust, paid]), "one verdict each"
    assert paid in order[:workers], f"the paid job's verdict came {order.index(paid) + 1}th of {len(order)}"
    if workers == 1:
        deadlines = [chain.market.audit_of(job_id).deadline for job_id in order[1:]]
        assert order[0] == paid and deadlines == sorted(deadlines), "then the dust by deadline"
    assert all(chain.market.audit_of(job_id).verdict == Verdict.PASS for job_id in order)
    records = [auditing.journal.get(job_id) for job_id in order]
    assert all(record.verdict == "pass" and record.evidence_cid and record.verdict_tx for record in records)
    assert len({record.evidence_cid for record in records}) == len(records), "an evidence document per job"
