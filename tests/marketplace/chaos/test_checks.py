"""The chaos run's checks flag what a fault may break: a lost or stuck job, an expired claim that slashed an
honest provider; and they admit the re-claim that follows an expiry."""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.chaos.checks import check_run
from marketplace.indexer.db import create_db
from marketplace.protocol import JobState, Role
from tests.conftest import Chain


def test_an_expired_claim_is_a_slash_of_an_honest_provider_and_the_job_is_stuck(
        chain: Chain, requester: LocalAccount, provider: LocalAccount, stranger: LocalAccount, tmp_path: Path) -> None:
    chain.register(provider, Role.PROVIDER)
    job_id = chain.post(requester, exec_window=60)
    chain.market.claim_job(provider, job_id)
    chain.increase_time(61)
    chain.market.reclaim_expired(stranger, job_id)
    chain.market.claim_job(provider, job_id)  # allowed again after the expiry: not a double claim
    engine = create_db(tmp_path / "index.db")
    try:
        found = check_run(0, chain.protocol, engine, {job_id: "embed"}, {job_id: JobState.CLAIMED})
    finally:
        engine.dispose()
    checks = {violation.check for violation in found}
    assert {"claim-expired", "slashed", "job-stuck"} <= checks
    assert "double-claim" not in checks
    assert any(f"job {job_id} (embed) ended claimed" in violation.detail for violation in found)


def test_a_job_the_chain_does_not_know_is_lost(chain: Chain, tmp_path: Path) -> None:
    engine = create_db(tmp_path / "index.db")
    try:
        found = check_run(3, chain.protocol, engine, {99: "generate"}, {99: None})
    finally:
        engine.dispose()
    assert [(violation.run, violation.check) for violation in found] == [(3, "job-lost")]
    assert "job 99 (generate) is not on the chain" in found[0].detail
