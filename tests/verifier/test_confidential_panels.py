"""Panel seats on confidential jobs, with a real panel member's daemon: a member the provider released the
key to re-checks in clear (and overturns a wrong fail); a member with no key by the margin before its
commit deadline votes fail (a provider that withholds the key must not win its appeal); a watchtower skips
confidential jobs (it is given no key)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from marketplace.chain.deployment import WEI
from marketplace.protocol import JobState, Role, Verdict
from marketplace.sealed.envelope import release_for
from tests.conftest import Chain
from tests.support.jobs import Market
from tests.support.waiting import wait_for
from tests.verifier.test_confidential_audits import CANARY, make_sealed_verifier, sealed_job
from tests.verifier.test_panels import challenge, panel_duty, wait_panel
from tests.verifier.test_verifier_daemon import running
from verifier.panels import UNAVAILABLE_MARGIN_SHARE, PanelStage
from verifier.watchtower import WatchStage, Watchtower

__all__ = ["make_sealed_verifier"]  # the fixture


@pytest.mark.parametrize("released", [True, False], ids=["key-released", "key-withheld"])
def test_a_panel_member_judges_with_the_released_key_and_votes_fail_without_one(
        chain: Chain, market: Market, make_sealed_verifier, requester, provider, verifier, stranger,
        tmp_path: Path, released: bool) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    job_id, job_key, _ = sealed_job(chain, market, requester, provider, tmp_path)
    chain.verdict(verifier, job_id, Verdict.FAIL)  # a wrong fail of honest outputs (drawn: the only verifier)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)  # after the draw: the only one eligible for the panel
    juror, key = make_sealed_verifier(stranger, watch_share=0.0)
    assert key is not None
    if released:
        chain.market.release_key(provider, job_id, stranger.address, release_for(job_key, key.recipient))
    challenge(chain, provider, job_id)
    with running(juror):
        panel = wait_panel(chain, job_id)
        assert panel.members == (stranger.address,) * 3
        if not released:
            def tried() -> bool:
                record = panel_duty(juror).journal.get(job_id)
                return record is not None and record.attempts >= 1 and "no key released" in record.reason

            wait_for(tried, what="the member's first try without a key")
            assert panel_duty(juror).journal.get(job_id).stage == PanelStage.WAITING
            margin = int((panel.reveal_by - panel.commit_by) * UNAVAILABLE_MARGIN_SHARE)
            chain.increase_time(panel.commit_by - margin - chain.client.timestamp() + 1)
        wait_for(lambda: chain.market.get_job(job_id).state != JobState.CHALLENGED, timeout=180,
                 what="the panel to vote and resolve")
        wait_for(lambda: panel_duty(juror).journal.get(job_id).stage == PanelStage.RESOLVED, what="the journal")
    record = panel_duty(juror).journal.get(job_id)
    assert record.vote == (Verdict.PASS if released else Verdict.FAIL)
    assert chain.market.get_job(job_id).state == (JobState.FINALIZED if released else JobState.REJECTED)
    raw = market.read(record.evidence_cid)
    assert CANARY.encode() not in raw
    evidence = json.loads(raw)
    assert evidence["confidential"] is True and evidence["kind"] == "webi-panel-evidence"
    if not released:
        assert all("the provider withheld it" in check["reason"] for check in evidence["checks"])


def test_a_watchtower_skips_confidential_jobs_and_says_so_once(
        chain: Chain, market: Market, make_sealed_verifier, requester, provider, verifier, stranger,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    jobs = [sealed_job(chain, market, requester, provider, tmp_path)[0] for _ in range(2)]
    for job_id in jobs:
        chain.verdict(verifier, job_id, Verdict.PASS)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    watcher, _ = make_sealed_verifier(stranger, watch_share=1.0)
    tower = next(service for service in watcher.services if isinstance(service, Watchtower))
    for _ in range(3):
        watcher.step()
    assert [tower.journal.get(job_id).stage for job_id in jobs] == [WatchStage.SKIPPED] * 2
    assert all("confidential" in tower.journal.get(job_id).reason for job_id in jobs)
    assert caplog.text.count("skips confidential jobs") == 1
    assert chain.market.get_job(jobs[0]).state == JobState.AUDITED  # nothing challenged
