"""Panel votes and watchtower re-checks follow the audit's own path and rule, on a real chain with real
tiny models: a panel member votes inconclusive on an unstable model (its references disagree) and the
panel overturns a wrong fail to inconclusive; a watchtower does not challenge a pass of such a model's
honest work (no conclusive contradiction); our own store being down is retried, blamed on nobody, and
loses nothing; outputs nobody can read make a panel member vote the first verdict (after retrying) and
a watchtower challenge nothing; closing the daemon closes its services."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy.pool import QueuePool

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.journal import SqliteJournal
from marketplace.protocol import ZERO_HASH, JobState, Role, Verdict
from provider.config import ProviderConfig
from provider.factory import create_daemon
from tests.conftest import Chain
from tests.support.epochs import wait_drawn
from tests.support.jobs import TEXTS, Market, StoreNode
from tests.support.servers import serve
from tests.support.waiting import wait_for
from tests.verifier.test_panels import (
    AUDIT_ALL,
    challenge,
    close,
    draw_by_steps,
    panel_duty,
    running,
    verifier_daemon,
)
from tests.verifier.test_unavailable_outputs import Outage, outage_proxy
from tests.verifier.test_verdict_rule import unstable
from tests.verifier.test_watchtower import lazily_audited, lazy_pass, step_tower, watchtower
from verifier.panels import PanelStage
from verifier.watchtower import WatchStage

__all__ = ["lazily_audited", "unstable"]  # fixtures, shared with the panel and rule tests
ConfigFor = Callable[..., ProviderConfig]


def unstable_submission(chain: Chain, market: Market, config_for: ConfigFor, unstable: Path, requester: LocalAccount,
                        provider: LocalAccount, verifier: LocalAccount) -> int:
    """An honest (fp32) provider daemon computes and submits a job on the unstable classifier, every task
    sampled; ``verifier``, the only one in the draw, is drawn and left to the test."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    shaky = Market(chain, market.store, {**market.bundles, "unstable": unstable})
    with running(create_daemon(config_for(provider), provider)):
        spec_cid = shaky.upload_spec("unstable", TEXTS, task="classify", max_input_tokens=128)
        job_id = shaky.post(requester, spec_cid=spec_cid, sample_tasks=AUDIT_ALL["sample_tasks"],
                            price=AUDIT_ALL["price"])
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, timeout=120, what="the result")
        assert wait_drawn(chain, job_id).verifier == verifier.address
    return job_id


def test_a_panel_member_votes_inconclusive_where_its_references_disagree(
        chain: Chain, market: Market, config_for: ConfigFor, unstable: Path, requester: LocalAccount,
        provider: LocalAccount, verifier: LocalAccount, stranger: LocalAccount, tmp_path: Path, devnet: Devnet,
        store_node: StoreNode, deployments: Path) -> None:
    job_id = unstable_submission(chain, market, config_for, unstable, requester, provider, verifier)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    chain.verdict(verifier, job_id, Verdict.FAIL)  # a fail of honest work on a model nobody can judge
    challenge(chain, provider, job_id)
    juror = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)  # bf16 A, fp32 B
    try:
        panel = draw_by_steps(chain, juror, job_id)  # every seat ours: commit, reveal, resolve in the pass
        record = panel_duty(juror).journal.get(job_id)
    finally:
        close(juror)
    assert panel.members == (stranger.address,) * 3
    assert record is not None and record.stage == PanelStage.RESOLVED
    assert (Verdict(record.vote), record.outcome) == (Verdict.INCONCLUSIVE, "inconclusive (overturned)")
    assert chain.market.panel_of(job_id).votes == (Verdict.INCONCLUSIVE,) * 3
    assert chain.market.get_job(job_id).state == JobState.FINALIZED, "inconclusive pays the provider"
    evidence = json.loads(market.read(record.evidence_cid))
    assert (evidence["kind"], evidence["version"], evidence["verdict"]) == ("webi-panel-evidence", 2, "inconclusive")
    assert evidence["outcomes"]["inconclusive"] >= 1 and evidence["outcomes"]["fail"] == 0
    unsure = [check for check in evidence["checks"] if check["outcome"] == "inconclusive"]
    assert all(check["a_vs_b"]["within"] is False for check in unsure), "the references disagreed"
    assert evidence["references"]["a"]["dtype"] == "bfloat16" and evidence["references"]["b"]["dtype"] == "float32"


def test_the_watchtower_does_not_challenge_a_pass_its_references_cannot_judge(
        chain: Chain, market: Market, config_for: ConfigFor, unstable: Path, requester: LocalAccount,
        provider: LocalAccount, verifier: LocalAccount, tmp_path: Path,
        devnet: Devnet, store_node: StoreNode, deployments: Path) -> None:
    """One reference alone (bf16) would call the honest fp32 outputs a fail and bond against a right pass;
    with two, the answer is inconclusive, which contradicts nothing."""
    job_id = unstable_submission(chain, market, config_for, unstable, requester, provider, verifier)
    tower_account = dev_account(6)
    chain.register(tower_account, Role.VERIFIER, 1_000 * WEI)
    balance = chain.token.balance_of(tower_account.address)
    lazy_pass(chain, verifier, job_id)
    record = step_tower(tmp_path, devnet, store_node, deployments, tower_account, job_id)
    assert record is not None and record.stage == WatchStage.AGREED
    assert (Verdict(record.our_verdict), record.conclusive) == (Verdict.INCONCLUSIVE, True)
    assert not record.challenge_tx and chain.market.get_job(job_id).state == JobState.AUDITED
    assert chain.token.balance_of(tower_account.address) == balance
    evidence = json.loads(market.read(record.evidence_cid))
    assert (evidence["kind"], evidence["version"], evidence["verdict"], evidence["contradicts"]) == (
        "webi-watch-evidence", 2, "inconclusive", False)
    assert evidence["first_verdict"] == "pass" and evidence["outputs_source"] == "store" and evidence["rule"]
    assert any(check["provider_vs_a"]["within"] is False for check in evidence["checks"]), "A alone: a fail"


def test_outputs_missing_everywhere_are_evidence_of_nothing_conclusive(
        chain: Chain, market: Market, lazily_audited: int, stranger: LocalAccount, tmp_path: Path, devnet: Devnet,
        store_node: StoreNode, deployments: Path) -> None:
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    record = step_tower(tmp_path, devnet, store_node, deployments, stranger, lazily_audited)
    assert record is not None and record.stage == WatchStage.AGREED
    evidence = json.loads(market.read(record.evidence_cid))
    # Nobody can judge outputs that are nowhere: no task is blamed on the provider, nothing is challenged.
    assert (evidence["outputs_source"], evidence["conclusive"], evidence["verdict"]) == (
        "unavailable", False, "inconclusive")
    assert all(check["outcome"] == "inconclusive" and "not available" in check["reason"]
               for check in evidence["checks"])
    assert not record.challenge_tx and chain.market.get_job(lazily_audited).state == JobState.AUDITED


def test_outputs_nobody_can_read_are_retried_then_the_first_verdict_stands(
        chain: Chain, market: Market, lazily_audited: int, requester, stranger, tmp_path, devnet, store_node,
        deployments) -> None:
    """The outputs are in no store and were never revealed: the seated member cannot judge. It retries
    until the commit deadline minus a quarter of the vote window, then votes the first verdict: erasing
    the outputs must not hand the challenger a win."""
    job_id = lazily_audited
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    challenge(chain, requester, job_id)
    first = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)
    try:
        panel = draw_by_steps(chain, first, job_id)
        waiting = panel_duty(first).journal.get(job_id)
    finally:
        close(first)
    assert waiting.stage == PanelStage.WAITING and waiting.attempts >= 1
    assert "neither the store nor the chain" in waiting.reason and not waiting.evidence
    assert set(chain.market.panel_of(job_id).commits) == {ZERO_HASH}, "no vote while it may still be readable"
    margin = (panel.reveal_by - panel.commit_by) // 4
    chain.increase_time(panel.commit_by - margin - chain.market.client.timestamp())
    second = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)
    try:
        second.step()
        done = panel_duty(second).journal.get(job_id)
    finally:
        close(second)
    assert chain.market.panel_of(job_id).votes == (Verdict.PASS,) * 3, "the first verdict, a pass"
    assert (done.stage, done.outcome, Verdict(done.vote)) == (PanelStage.RESOLVED, "pass (upheld)", Verdict.PASS)
    evidence = json.loads(market.read(done.evidence_cid))
    assert (evidence["outputs_source"], evidence["conclusive"], evidence["vote"]) == ("unavailable", False, "pass")
    assert "cannot judge" in evidence["vote_reason"]
    assert chain.market.get_job(job_id).state == JobState.FINALIZED


def test_our_store_down_is_retried_and_blames_nobody(chain: Chain, lazily_audited: int, stranger: LocalAccount,
                                                    tmp_path: Path, devnet: Devnet, store_node: StoreNode,
                                                    deployments: Path) -> None:
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    outage = Outage()
    outage.down.set()
    with serve(outage_proxy(store_node.url, outage)) as proxy:
        down = StoreNode(proxy, store_node.store)
        record = step_tower(tmp_path, devnet, down, deployments, stranger, lazily_audited)
    assert outage.refused >= 1
    assert record is not None and record.stage == WatchStage.PENDING, "still to look at, nothing concluded"
    assert record.attempts == 1 and "unavailable" in record.reason and not record.evidence_cid
    assert chain.market.get_job(lazily_audited).state == JobState.AUDITED


def test_closing_the_daemon_closes_its_services(tmp_path: Path, devnet: Devnet, store_node: StoreNode,
                                                deployments: Path, chain: Chain) -> None:
    daemon = verifier_daemon(tmp_path, devnet, store_node, deployments, dev_account(6), watch_share=1.0)
    daemon.step()
    journals: list[SqliteJournal[Any]] = [panel_duty(daemon).journal, watchtower(daemon).journal]
    pools = [journal.engine.pool for journal in journals]
    assert all(isinstance(pool, QueuePool) and pool.checkedin() > 0 for pool in pools), "the pass used both"
    daemon.close()
    assert [pool.checkedin() for pool in pools if isinstance(pool, QueuePool)] == [0, 0]
