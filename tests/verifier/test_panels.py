"""Panel duty on a real chain with real tiny models: a challenged verdict's panel is drawn by a daemon,
our verifier re-executes the sample from its seats, commits, reveals and resolves; a restart between
commit and reveal still reveals (the salt is derived from the key, the vote journaled, or recovered
from the commitment when the journal is lost); a challenge nobody can judge is dismissed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet, dev_account
from marketplace.errors import ContentNotFoundError, ContractError, TransactionError
from marketplace.keystore import save_account
from marketplace.protocol import BPS, ZERO_HASH, CreditKind, JobState, Panel, Role, Verdict, vote_commitment
from marketplace.storage.importer import Importer
from provider.factory import create_daemon
from tests.conftest import Chain
from tests.support.epochs import seed_readable, wait_drawn
from tests.support.jobs import PASSWORD, TEXTS, Market, StoreNode
from tests.support.waiting import wait_for
from tests.verifier.test_verifier_daemon import running
from verifier.config import VerifierConfig
from verifier.daemon import VerifierDaemon
from verifier.factory import create_verifier
from verifier.panels import PanelDuty, PanelJournal, PanelStage, vote_salt

# Every task sampled, so the re-check does not depend on the seed; at 4 WEBI the sampled work stays
# under the contract's cap (SampleValueAboveMaximum).
AUDIT_ALL: dict[str, Any] = {"sample_tasks": len(TEXTS), "price": 4 * WEI}


def verifier_daemon(tmp_path: Path, devnet: Devnet, store_node: StoreNode, deployments: Path,
                    account: LocalAccount, **overrides: Any) -> VerifierDaemon:
    """A verifier daemon for ``account`` built by the factory (its services included), as ``webi verifier
    run`` builds it; the same account gets the same state folder, so a second one resumes the journals."""
    folder = tmp_path / f"verifier-{account.address[:8]}"
    folder.mkdir(exist_ok=True)
    keystore = folder / "keystore.json"
    if not keystore.exists():
        save_account(account, keystore, PASSWORD, kdf="pbkdf2", iterations=1_000)
        (folder / "password").write_text(PASSWORD)
    config = VerifierConfig(rpc_url=devnet.anvil.rpc_url, keystore=keystore, password_file=folder / "password",
                            store=store_node.url, state_dir=folder / "state", deployments_dir=deployments,
                            dtype="bfloat16", poll_interval_s=0.1, **overrides)
    return create_verifier(config, account)


def close(daemon: VerifierDaemon) -> None:
    daemon.close()  # its services (their journals) too


def panel_duty(daemon: VerifierDaemon) -> PanelDuty:
    duty = daemon.services[0]
    assert isinstance(duty, PanelDuty)
    return duty


def wait_panel(chain: Chain, job_id: int, timeout: float = 120.0) -> Panel:
    """Mines past the panel's seed block and waits for a daemon to draw it (``drawPanel``); mines past the
    new seed block after a re-arm. Blocks come when the test says, so every run takes the same path."""
    for _ in range(4):
        seed_block = chain.market.panel_of(job_id).seed_block
        seed_readable(chain, seed_block)
        wait_for(lambda seed_block=seed_block: chain.market.panel_of(job_id).size
                 or chain.market.panel_of(job_id).seed_block != seed_block, timeout=timeout,
                 what=f"a daemon to draw job {job_id}'s panel")
        panel = chain.market.panel_of(job_id)
        if panel.size:
            return panel
    raise AssertionError(f"job {job_id}: no panel drawn after 4 seed blocks")


def draw_by_steps(chain: Chain, daemon: VerifierDaemon, job_id: int) -> Panel:
    """As ``wait_panel``, with the daemon stepped by the test instead of running in a thread."""
    for _ in range(4):
        seed_readable(chain, chain.market.panel_of(job_id).seed_block)
        daemon.step()
        panel = chain.market.panel_of(job_id)
        if panel.size:
            return panel
    raise AssertionError(f"job {job_id}: no panel drawn after 4 steps")


def lost_connection(*args, **kwargs):
    raise TransactionError("connection lost before the reveal was sent")


def challenge(chain: Chain, challenger: LocalAccount, job_id: int) -> None:
    chain.approve(challenger)
    chain.market.challenge(challenger, job_id)


def honest_submission(chain: Chain, market: Market, config_for, requester, provider, verifier) -> int:
    """An honest provider daemon computes and submits a job (every task sampled); ``verifier``, the only
    one in the draw, is drawn. The provider daemon is stopped then: the test drives the rest."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    with running(create_daemon(config_for(provider), provider)):
        job_id = market.post(requester, "embed", **AUDIT_ALL)
        wait_for(lambda: chain.market.get_job(job_id).state == JobState.SUBMITTED, timeout=120, what="the result")
        assert wait_drawn(chain, job_id).verifier == verifier.address
    return job_id


def credited(chain: Chain, job_id: int) -> list[tuple[str, CreditKind, int]]:
    return [(e["args"]["account"], CreditKind(e["args"]["kind"]), e["args"]["amount"]) for e in
            chain.market.contract.events.Credited().get_logs(from_block=0, argument_filters={"jobId": job_id})]


def test_a_seated_verifier_re_executes_and_the_panel_overturns_a_wrong_fail(
        chain: Chain, market: Market, config_for, requester, provider, verifier, stranger, tmp_path, devnet,
        store_node, deployments) -> None:
    job_id = honest_submission(chain, market, config_for, requester, provider, verifier)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)  # after the draw: the only one eligible for the panel
    chain.verdict(verifier, job_id, Verdict.FAIL)  # a wrong fail of honest outputs
    challenge(chain, provider, job_id)
    juror = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)
    with running(juror):
        panel = wait_panel(chain, job_id)
        wait_for(lambda: chain.market.get_job(job_id).state != JobState.CHALLENGED, timeout=120,
                 what="the panel to vote and resolve")
        wait_for(lambda: panel_duty(juror).journal.get(job_id).stage == PanelStage.RESOLVED, what="the journal")
    assert panel.members == (stranger.address,) * 3, "the only eligible verifier holds every seat"
    record = panel_duty(juror).journal.get(job_id)
    assert (record.stage, record.vote, record.seats, record.outcome) == (PanelStage.RESOLVED, Verdict.PASS, 3,
                                                                        "pass (overturned)")
    salt = vote_salt(bytes(stranger.key), chain.client.chain_id, chain.market.address, job_id)
    committed = chain.market.contract.events.VoteCommitted().get_logs(from_block=0, argument_filters={"jobId": job_id})
    revealed = chain.market.contract.events.VoteRevealed().get_logs(from_block=0, argument_filters={"jobId": job_id})
    assert [e["args"]["member"] for e in committed] == [stranger.address]
    assert [(e["args"]["member"], e["args"]["vote"]) for e in revealed] == [(stranger.address, Verdict.PASS)]
    assert chain.market.panel_of(job_id).commits == (vote_commitment(job_id, stranger.address, Verdict.PASS, salt),) * 3
    evidence = json.loads(market.read(record.evidence_cid))
    assert (evidence["kind"], evidence["version"], evidence["verdict"], evidence["first_verdict"],
            evidence["outputs_source"], evidence["conclusive"]) == ("webi-panel-evidence", 2, "pass", "fail", "store",
                                                                    True)
    assert evidence["rule"] and set(evidence["references"]) == {"a", "b"}
    assert all(check["outcome"] == "pass" and check["provider_vs_b"]["within"] is not None
               and check["a_vs_b"]["within"] for check in evidence["checks"])
    assert evidence["sampled_tasks"] == list(range(len(TEXTS))) and all(c["passed"] for c in evidence["checks"])
    # The chain: settled by the panel's verdict, the wrong verifier slashed, the challenger rewarded.
    terms, params = chain.market.terms_of(job_id), chain.market.params()
    assert chain.market.get_job(job_id).state == JobState.FINALIZED
    assert chain.market.audit_of(job_id).verdict == Verdict.PASS
    slash = 1_000 * WEI * params.verifier_slash_bps // BPS
    assert chain.market.verifier_stake(verifier.address).stake == 1_000 * WEI - slash
    panel_pay = min(slash, terms.bond)
    assert sum(amount for account, kind, amount in credited(chain, job_id)
               if (account, kind) == (stranger.address, CreditKind.PANEL_FEE)) == panel_pay
    assert chain.market.credits(stranger.address) == panel_pay
    assert chain.market.credits(provider.address) == (terms.split().provider + terms.bond
                                                      + (slash - panel_pay) * params.reward_bps // BPS)
    assert chain.market.credits(requester.address) == terms.audit_fee, "the contradicted audit's fee back"


def test_a_restart_between_commit_and_reveal_reveals_the_journaled_vote(
        chain: Chain, market: Market, config_for, requester, provider, verifier, stranger, tmp_path, devnet,
        store_node, deployments, monkeypatch) -> None:
    job_id = honest_submission(chain, market, config_for, requester, provider, verifier)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    chain.verdict(verifier, job_id, Verdict.PASS)
    challenge(chain, requester, job_id)  # the requester disputes a right pass
    first = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)
    monkeypatch.setattr(first.market, "reveal_vote", lost_connection)
    draw_by_steps(chain, first, job_id)
    committed = panel_duty(first).journal.get(job_id)
    # The first verifier's duty, meanwhile: excluded from its own panel, it leaves the challenge alone.
    duty = panel_duty(first)
    bystander = PanelDuty(verifier, duty.market, duty.rechecker, PanelJournal(tmp_path / "bystander.sqlite"), 0.1)
    try:
        bystander.step()
        left = bystander.journal.get(job_id)
    finally:
        bystander.close()
    assert left.stage == PanelStage.NOT_SEATED and stranger.address in left.reason
    close(first)
    panel = chain.market.panel_of(job_id)
    assert committed.stage == PanelStage.COMMITTED and committed.vote == Verdict.PASS
    # The evidence waits in the journal: stored before the reveal, it would show the other seats our vote.
    assert committed.evidence and not committed.evidence_cid
    unrevealed = str(Importer().add_bytes(committed.evidence.encode()).cid)
    with pytest.raises(ContentNotFoundError):
        market.read(unrevealed)
    assert all(commit != ZERO_HASH for commit in panel.commits) and set(panel.votes) == {Verdict.NONE}
    second = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)

    def no_second_look(*args, **kwargs):
        raise AssertionError("the vote is journaled: no second re-execution")

    monkeypatch.setattr(panel_duty(second).rechecker, "recheck", no_second_look)
    try:
        second.step()
        done = panel_duty(second).journal.get(job_id)
    finally:
        close(second)
    assert done.stage == PanelStage.RESOLVED and done.outcome == "pass (upheld)"
    assert done.evidence_cid == unrevealed and not done.evidence, "stored once the vote is revealed"
    assert json.loads(market.read(done.evidence_cid))["vote"] == "pass"
    assert chain.market.panel_of(job_id).votes == (Verdict.PASS,) * 3
    terms = chain.market.terms_of(job_id)
    assert chain.market.get_job(job_id).state == JobState.FINALIZED
    assert chain.market.credits(stranger.address) == terms.bond, "an upheld verdict: the bond to the panel"
    assert chain.market.credits(verifier.address) == terms.audit_fee


def test_a_lost_journal_recovers_the_vote_from_the_commitment(
        chain: Chain, market: Market, config_for, requester, provider, verifier, stranger, tmp_path, devnet,
        store_node, deployments, monkeypatch) -> None:
    job_id = honest_submission(chain, market, config_for, requester, provider, verifier)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    chain.verdict(verifier, job_id, Verdict.FAIL)
    challenge(chain, provider, job_id)
    first = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)
    monkeypatch.setattr(first.market, "reveal_vote", lost_connection)
    draw_by_steps(chain, first, job_id)
    assert panel_duty(first).journal.get(job_id).stage == PanelStage.COMMITTED
    duty = panel_duty(first)
    # A new state folder: the journal is gone, only the key is left.
    fresh = PanelDuty(stranger, duty.market, duty.rechecker, PanelJournal(tmp_path / "fresh" / "panels.sqlite"), 0.1)
    monkeypatch.undo()
    monkeypatch.setattr(fresh.rechecker, "recheck", lambda *a, **k: pytest.fail("recovered, not recomputed"))
    try:
        fresh.step()
        record = fresh.journal.get(job_id)
    finally:
        fresh.close()
        close(first)
    assert record.stage == PanelStage.RESOLVED and record.vote == Verdict.PASS
    assert record.outcome == "pass (overturned)"
    assert chain.market.panel_of(job_id).votes == (Verdict.PASS,) * 3


def test_a_challenge_nobody_can_judge_is_dismissed_by_the_challenger_s_draw(
        chain: Chain, requester, provider, verifier, stranger, tmp_path, devnet, store_node, deployments) -> None:
    """The only other verifier is the challenger: ``drawPanel`` finds nobody eligible, dismisses the
    challenge and returns the bond; no model runs."""
    chain.register(verifier, Role.VERIFIER, 1_000 * WEI)
    chain.register(provider, Role.PROVIDER, 1_000 * WEI)
    job_id = chain.submitted_job(requester, provider, num_tasks=8, sample_tasks=8, price=4 * WEI)
    chain.verdict(verifier, job_id, Verdict.PASS)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    challenge(chain, stranger, job_id)
    watcher = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)
    try:
        for _ in range(4):
            seed_readable(chain, chain.market.panel_of(job_id).seed_block)
            watcher.step()
            if chain.market.get_job(job_id).state != JobState.CHALLENGED:
                break
        record = panel_duty(watcher).journal.get(job_id)
    finally:
        close(watcher)
    assert chain.market.get_job(job_id).state == JobState.FINALIZED
    assert (record.stage, record.outcome) == (PanelStage.RESOLVED, "pass (upheld)")
    terms = chain.market.terms_of(job_id)
    assert (stranger.address, CreditKind.BOND_REFUND, terms.bond) in credited(chain, job_id)
    assert chain.market.panel_of(job_id).size == 0


def test_a_vote_mismatch_reveals_the_committed_vote(
        chain: Chain, market: Market, config_for, requester, provider, verifier, stranger, tmp_path, devnet,
        store_node, deployments, monkeypatch) -> None:
    """A journal whose vote is not the committed one (restored from another run): the chain refuses the
    reveal (``VoteMismatch``) and the member reveals the vote its commitment holds, instead of retrying
    until the no-show slash."""
    job_id = honest_submission(chain, market, config_for, requester, provider, verifier)
    chain.register(stranger, Role.VERIFIER, 1_000 * WEI)
    chain.verdict(verifier, job_id, Verdict.FAIL)
    challenge(chain, provider, job_id)
    first = verifier_daemon(tmp_path, devnet, store_node, deployments, stranger)
    monkeypatch.setattr(first.market, "reveal_vote", lost_connection)
    draw_by_steps(chain, first, job_id)
    monkeypatch.undo()
    duty = panel_duty(first)
    assert duty.journal.get(job_id).stage == PanelStage.COMMITTED
    duty.journal.update(job_id, vote=int(Verdict.FAIL), retry_at=0.0)  # not what was committed (a pass)
    refused: list[str] = []
    reveal = duty.market.reveal_vote

    def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return reveal(*args, **kwargs)
        except ContractError as error:
            refused.append(error.name)
            raise

    monkeypatch.setattr(duty.market, "reveal_vote", watched)
    try:
        duty.step()
        record = duty.journal.get(job_id)
    finally:
        close(first)
    assert refused == ["VoteMismatch"]
    assert (record.stage, Verdict(record.vote)) == (PanelStage.RESOLVED, Verdict.PASS)
    assert chain.market.panel_of(job_id).votes == (Verdict.PASS,) * 3


def test_the_vote_salt_is_private_to_the_key_and_the_job() -> None:
    market = "0x" + "ab" * 20
    a, b = bytes(dev_account(3).key), bytes(dev_account(4).key)
    assert vote_salt(a, 31337, market, 1) == vote_salt(a, 31337, market, 1), "a restart derives the same salt"
    salts = {vote_salt(a, 31337, market, 1), vote_salt(a, 31337, market, 2), vote_salt(b, 31337, market, 1),
             vote_salt(a, 1, market, 1), vote_salt(a, 31337, "0x" + "cd" * 20, 1)}
    assert len(salts) == 5 and all(len(salt) == 32 for salt in salts)
