"""Watchtower mode on a real chain with real tiny models: a lazy verifier passes a cheat without looking,
the watchtower re-checks, challenges within the window, honest panel verifiers overturn; and the
refusals (not staked, a party, outputs it cannot read, a bond it cannot pay, a bad share) lose nothing."""

from __future__ import annotations

import json

import pytest
from eth_account.signers.local import LocalAccount
from pydantic import ValidationError

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import dev_account
from marketplace.protocol import BPS, CreditKind, JobState, Role, Verdict
from provider.cheater import WrongAnswers
from provider.factory import create_daemon
from tests.conftest import MAX_UINT, OUTPUT_CID, Chain
from tests.support.epochs import wait_drawn
from tests.support.jobs import Market
from tests.support.waiting import wait_for
from tests.verifier.test_panels import AUDIT_ALL, close, credited, panel_duty, running, verifier_daemon, wait_panel
from verifier.config import VerifierConfig
from verifier.watchtower import WatchJournal, WatchStage, Watchtower, contradicts, watch_draw, watched


def lazy_pass(chain: Chain, lazy: LocalAccount, job_id: int) -> None:
    """A lazy verifier: passes the job without fetching or running anything."""
    secret, next_hash = chain.open_secret(lazy, job_id)
    chain.market.submit_verdict(lazy, job_id, Verdict.PASS, OUTPUT_CID, secret, next_hash)


def watchtower(daemon) -> Watchtower:
    tower = next(service for service in daemon.services if isinstance(service, Watchtower))
    return tower


def test_the_watchtower_catches_a_lazy_pass_of_a_cheat_and_the_panel_overturns_it(
        chain: Chain, market: Market, config_for, requester, provider, verifier, stranger, tmp_path, devnet,
        store_node, deployments) -> None:
    lazy, tower_account, juror_account = verifier, dev_account(6), stranger
    chain.register(lazy, Role.VERIFIER, 1_000 * WEI)
    cheater = create_daemon(config_for(provider), provider, runtime_class=WrongAnswers)
    with running(cheater):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, timeout=120, what="the cheat")
        assert wait_drawn(chain, job_id).verifier == lazy.address  # the only verifier in the draw then
    chain.register(tower_account, Role.VERIFIER, 1_000 * WEI)
    chain.register(juror_account, Role.VERIFIER, 1_000 * WEI)
    tower_balance = chain.token.balance_of(tower_account.address)
    lazy_pass(chain, lazy, job_id)
    tower = verifier_daemon(tmp_path, devnet, store_node, deployments, tower_account, watch_share=1.0)
    juror = verifier_daemon(tmp_path, devnet, store_node, deployments, juror_account)
    with running(tower, juror):
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.CHALLENGED, timeout=120,
                 what="the watchtower's challenge")
        panel = wait_panel(chain, job_id)
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.REJECTED, timeout=120,
                 what="the panel to overturn the pass")
        wait_for(lambda: watchtower(tower).journal.get(job_id).stage == WatchStage.RESOLVED, what="the tower")
    terms, params = chain.market.terms_of(job_id), chain.market.params()
    challenger = chain.market.panel_of(job_id)
    assert (challenger.challenger, challenger.bond) == (tower_account.address, terms.bond)
    assert panel.members == (juror_account.address,) * 3 and challenger.votes == (Verdict.FAIL,) * 3
    record = watchtower(tower).journal.get(job_id)
    assert (record.first_verdict, record.our_verdict, record.conclusive) == (Verdict.PASS, Verdict.FAIL, True)
    assert record.challenge_tx and record.outcome == "fail (overturned)"
    evidence = json.loads(market.read(record.evidence_cid))
    assert (evidence["kind"], evidence["verdict"], evidence["contradicts"]) == ("webi-watch-evidence", "fail", True)
    assert not any(check["passed"] for check in evidence["checks"])
    assert panel_duty(tower).journal.get(job_id).stage.value == "resolved", "the tower followed its challenge"
    # Exact settlement: the lazy verifier slashed, the job rejected, the panel paid, the tower rewarded.
    slash = 1_000 * WEI * params.verifier_slash_bps // BPS
    panel_pay = min(slash, terms.bond)
    assert chain.market.get_job(job_id).state == JobState.REJECTED
    assert chain.market.audit_of(job_id).verdict == Verdict.FAIL
    assert chain.market.verifier_stake(lazy.address).stake == 1_000 * WEI - slash
    assert chain.market.credits(lazy.address) == 0
    assert chain.market.credits(juror_account.address) == panel_pay
    tower_reward = (slash - panel_pay) * params.reward_bps // BPS + terms.collateral * params.reward_bps // BPS
    assert chain.market.credits(tower_account.address) == terms.bond + tower_reward
    assert chain.market.credits(requester.address) == terms.price + terms.audit_fee, "made whole"
    assert chain.token.balance_of(tower_account.address) == tower_balance - terms.bond, "bonded until withdrawn"
    assert (tower_account.address, CreditKind.BOND_REFUND, terms.bond) in credited(chain, job_id)


@pytest.fixture
def lazily_audited(chain: Chain, market: Market, requester, provider, verifier) -> int:
    """A job whose outputs are in no store, passed by a lazy verifier: no model runs on it."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    chain.register(provider, Role.PROVIDER, 1_000 * WEI)
    job_id = market.post(requester, "embed", **AUDIT_ALL)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, OUTPUT_CID, b"\x11" * 32)
    chain.draw(job_id)
    lazy_pass(chain, verifier, job_id)
    return job_id


def step_tower(tmp_path, devnet, store_node, deployments, account: LocalAccount, job_id: int):
    """One pass of ``account``'s daemon in watchtower mode; the watch record and the panel state after it."""
    daemon = verifier_daemon(tmp_path, devnet, store_node, deployments, account, watch_share=1.0)
    try:
        daemon.step()
        return watchtower(daemon).journal.get(job_id)
    finally:
        close(daemon)


def test_an_unstaked_watchtower_does_not_look_or_challenge(chain: Chain, lazily_audited, stranger, tmp_path, devnet,
                                                            store_node, deployments) -> None:
    balance = chain.token.balance_of(stranger.address)
    record = step_tower(tmp_path, devnet, store_node, deployments, stranger, lazily_audited)
    assert record.stage == WatchStage.SKIPPED and "staked verifier" in record.reason and not record.evidence_cid
    assert chain.market.get_job(lazily_audited).state == JobState.AUDITED
    assert chain.token.balance_of(stranger.address) == balance


def test_a_watchtower_never_watches_a_job_it_is_party_to(chain: Chain, lazily_audited, requester, tmp_path, devnet,
                                                          store_node, deployments) -> None:
    chain.register(requester, Role.VERIFIER, 1_000 * WEI)
    record = step_tower(tmp_path, devnet, store_node, deployments, requester, lazily_audited)
    assert record.stage == WatchStage.SKIPPED and "party" in record.reason
    assert chain.market.get_job(lazily_audited).state == JobState.AUDITED


def test_outputs_the_watchtower_cannot_read_never_risk_its_bond(chain: Chain, lazily_audited, stranger, tmp_path,
                                                               devnet, store_node, deployments) -> None:
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    balance = chain.token.balance_of(stranger.address)
    record = step_tower(tmp_path, devnet, store_node, deployments, stranger, lazily_audited)
    assert record.stage == WatchStage.AGREED and "no outputs compared" in record.reason
    assert (record.our_verdict, record.conclusive) == (Verdict.INCONCLUSIVE, False), "judged by nobody"
    assert chain.market.get_job(lazily_audited).state == JobState.AUDITED
    assert chain.token.balance_of(stranger.address) == balance


def test_a_bond_the_watchtower_cannot_pay_is_refused_before_any_transfer(
        chain: Chain, market: Market, config_for, requester, provider, verifier, stranger, tmp_path, devnet,
        store_node, deployments) -> None:
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    with running(create_daemon(config_for(provider), provider, runtime_class=WrongAnswers)):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, timeout=120, what="the cheat")
        wait_drawn(chain, job_id)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    lazy_pass(chain, verifier, job_id)
    chain.token.transfer(stranger, chain.owner.address, chain.token.balance_of(stranger.address))  # spent it all
    record = step_tower(tmp_path, devnet, store_node, deployments, stranger, job_id)
    assert record.stage == WatchStage.SKIPPED and "exceeds our balance" in record.reason
    assert (record.our_verdict, record.conclusive) == (Verdict.FAIL, True), "it did see the cheat"
    assert chain.market.get_job(job_id).state == JobState.AUDITED
    assert chain.token.allowance(stranger.address, chain.market.address) == MAX_UINT, "untouched"


def test_the_watch_draw_is_reproducible_private_and_follows_the_share() -> None:
    market = "0x" + "ab" * 20
    key, other = bytes(dev_account(6).key), bytes(dev_account(7).key)
    draws = [watch_draw(key, 31337, market, job_id) for job_id in range(2_000)]
    assert draws == [watch_draw(key, 31337, market, job_id) for job_id in range(2_000)], "reproducible"
    assert all(0 <= draw < 1 for draw in draws)
    assert draws != [watch_draw(other, 31337, market, job_id) for job_id in range(2_000)], "another key, other jobs"
    picked = sum(watched(key, 31337, market, job_id, 0.3) for job_id in range(2_000))
    assert 500 < picked < 700, picked  # 600 expected; the binomial's sd is ~20
    assert not any(watched(key, 31337, market, job_id, 0.0) for job_id in range(200))
    assert all(watched(key, 31337, market, job_id, 1.0) for job_id in range(200))


@pytest.mark.parametrize(("first", "ours", "conclusive", "challenge"), [
    (Verdict.PASS, Verdict.FAIL, True, True), (Verdict.INCONCLUSIVE, Verdict.FAIL, True, True),
    (Verdict.FAIL, Verdict.PASS, True, True), (Verdict.PASS, Verdict.PASS, True, False),
    (Verdict.FAIL, Verdict.FAIL, True, False), (Verdict.INCONCLUSIVE, Verdict.PASS, True, False),
    (Verdict.PASS, Verdict.FAIL, False, False), (Verdict.FAIL, Verdict.PASS, False, False),
    # Our inconclusive (the references disagree) contradicts nothing, however conclusive the outputs.
    (Verdict.PASS, Verdict.INCONCLUSIVE, True, False), (Verdict.FAIL, Verdict.INCONCLUSIVE, True, False),
    (Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, True, False)])
def test_only_a_conclusive_contradiction_is_challenged(first, ours, conclusive, challenge) -> None:
    assert contradicts(first, ours, conclusive) is challenge


def test_a_watch_share_outside_0_to_1_is_refused(tmp_path, chain: Chain) -> None:
    with pytest.raises(ValidationError, match="watch_share"):
        VerifierConfig(rpc_url="http://127.0.0.1:9", keystore=tmp_path / "k.json", store=str(tmp_path / "store"),
                       watch_share=1.5)
    journal = WatchJournal(tmp_path / "w.sqlite")
    try:
        with pytest.raises(ValueError, match=r"watch_share must lie in \[0, 1\]"):
            Watchtower(dev_account(6), chain.market, chain.token, None, journal, watch_share=-0.1)  # type: ignore[arg-type]
    finally:
        journal.close()


def test_watch_share_zero_adds_no_watchtower(tmp_path, devnet, store_node, deployments, chain: Chain) -> None:
    daemon = verifier_daemon(tmp_path, devnet, store_node, deployments, dev_account(6))
    try:
        assert [type(service).__name__ for service in daemon.services] == ["PanelDuty"]
    finally:
        close(daemon)
