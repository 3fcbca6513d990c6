"""Hostile committed outputs end to end, with the real verifier daemon on anvil: a provider that commits
an integer too large for a float (re-execution used to raise ``OverflowError``, which the daemon took
for its own failure: it retried until the window closed, and the provider was paid) now gets a failed
verdict on the first audit and is slashed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from marketplace.chain.deployment import WEI
from marketplace.protocol import CreditKind, JobState, Role, Verdict
from provider.factory import create_daemon
from tests.conftest import Chain
from tests.support.hostile import HostileRuntime, huge_integer
from tests.support.jobs import TEXTS, Market
from tests.support.waiting import wait_for
from tests.verifier.test_verifier_daemon import AUDIT_ALL, make_verifier, running, seed_visible, settled, state_of
from verifier.journal import AuditStage

__all__ = ["make_verifier"]  # the fixture, shared with the daemon's tests


def test_integer_too_large_for_a_float_fails_the_job_on_the_first_audit(
        chain: Chain, market: Market, config_for, make_verifier, requester, provider, verifier, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    providing = create_daemon(config_for(provider), provider)
    providing.runtime = HostileRuntime(providing.store, tmp_path / "hostile-cache", rewrite=huge_integer)
    auditing = make_verifier(verifier)
    stake_before = chain.market.provider_stake(provider.address).stake
    caplog.set_level(logging.WARNING, logger="verifier")
    with running(providing, auditing):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        seed_visible(chain, job_id)
        settled(chain, job_id)
        wait_for(lambda: auditing.journal.get(job_id).stage == AuditStage.SETTLED, what="the verifier to see it")
    record = auditing.journal.get(job_id)
    assert record is not None and record.verdict == "fail" and record.passed is False
    # Judged once: no audit of this job raised and was retried (as an OverflowError was, until the window closed).
    assert not [entry.getMessage() for entry in caplog.records if f"audit of job {job_id}" in entry.getMessage()]
    evidence = json.loads(market.read(record.evidence_cid))
    assert evidence["verdict"] == "fail" and len(evidence["checks"]) == len(TEXTS)
    for check in evidence["checks"]:
        assert check["outcome"] == "fail" and "integer of 401 digits" in check["reason"], check
    assert state_of(chain, job_id) == JobState.REJECTED
    assert chain.market.audit_of(job_id).verdict == Verdict.FAIL
    terms = chain.market.terms_of(job_id)
    assert chain.market.provider_stake(provider.address).stake == stake_before - terms.collateral
    credited = {entry["args"]["kind"] for entry in
                chain.market.contract.events.Credited().get_logs(from_block=0, argument_filters={"jobId": job_id})}
    assert CreditKind.PROVIDER_PAYMENT not in credited
